# cython: language_level=3, binding=True, embedsignature=False, boundscheck=True, wraparound=True
"""The per-chunk path of mergeable loss states in C (compiled once, at the baseline level, like _runtime).

An evaluation loop pays ``fl.partial`` and a merge beside every batch's kernel, and issue 16 allows them
5% of the plain calls' time.  In Python the two cost ~6.5 us a batch on a 2 GHz core (call layers,
slot stores, the TwoSum); here ~3.6 us, most of it the loss's own call.  What stays here:

- ``StateFields``: the five read-only fields of a :class:`fastloss.LossState` (its base class), and
  ``new_state``, which fills them without the constructor's checks of user input;
- ``merge``: ``LossState.merge`` (TwoSum, Knuth);
- ``partial``: ``fl.partial``'s call, for the usual chunk (no sample weights, no keyword partial
  acts on itself); the rest is fastloss/state.py's Python, handed over by ``connect`` when it imports.
"""
cimport cython
from cpython.contextvars cimport PyContextVar_Reset, PyContextVar_Set
from libc.math cimport isfinite


@cython.auto_pickle(False)      # (LossState pickles through its own __reduce__)
cdef class StateFields:
    """The storage of a LossState: its loss name, float64 sums and item count, read-only."""
    cdef readonly object loss
    cdef readonly double total
    cdef readonly double compensation
    cdef readonly double weight_sum
    cdef readonly object count


# What fastloss/state.py hands over (connect): the LossState class, partial's plans by loss name and the
# function that makes one, the handler of partial's own keywords (and their names), the weighted path,
# and the reduction sink of _validate.reduced.
cdef type _LossState = None
cdef dict _plans = None
cdef object _make_plan = None
cdef object _own_keywords = None
cdef frozenset _own_keyword_names = frozenset()
cdef object _weighted_state = None
cdef object _sink = None


def connect(loss_state, plans, make_plan, own_keywords, own_keyword_names, weighted_state, sink):
    """Hand this module the Python pieces of fastloss/state.py (called once, as it imports)."""
    global _LossState, _plans, _make_plan, _own_keywords, _own_keyword_names, _weighted_state, _sink
    _LossState, _plans, _make_plan = loss_state, plans, make_plan
    _own_keywords, _own_keyword_names = own_keywords, frozenset(own_keyword_names)
    _weighted_state, _sink = weighted_state, sink


cdef inline StateFields new_state(object loss, double total, double compensation, double weight_sum,
                                  object count):
    cdef StateFields s = StateFields.__new__(_LossState)
    s.loss = loss
    s.total = total
    s.compensation = compensation
    s.weight_sum = weight_sum
    s.count = count
    return s


def init_state(StateFields state, loss, double total, double compensation, double weight_sum, count):
    """Fill a new LossState's fields (its constructor, after checking them)."""
    state.loss = loss
    state.total = total
    state.compensation = compensation
    state.weight_sum = weight_sum
    state.count = count


@cython.annotation_typing(False)       # (annotations for readers and inspect.signature, kept as text)
def merge(StateFields self, other: LossState) -> LossState:
    """The state of both chunks' data (also ``self + other``).

    Parameters
    ----------
    other : LossState
        A state of the same loss.

    Returns
    -------
    LossState
        A new state; ``self`` and ``other`` are unchanged.

    Raises
    ------
    TypeError
        ``other`` that is not a :class:`LossState`.
    ValueError
        States of different losses.
    """
    if not isinstance(other, _LossState):
        raise TypeError(f"other must be a LossState (can only merge states), got {type(other).__name__}")
    cdef StateFields o = <StateFields>other
    if o.loss != self.loss:
        raise ValueError(f"cannot merge states of different losses: {self.loss!r} and {o.loss!r}")
    # TwoSum (Knuth): total = fl(a + b) and its exact rounding error err (a + b = total + err); err = 0
    # once total is not finite.  (No -ffast-math here: the compiler keeps these operations as written.)
    cdef double a = self.total, b = o.total
    cdef double total = a + b, bp, err = 0.0
    if isfinite(total):
        bp = total - a
        err = (a - (total - bp)) + (b - bp)
    # (both states hold checked floats and ints, so their sums need no new check)
    return new_state(self.loss, total, self.compensation + o.compensation + err,
                     self.weight_sum + o.weight_sum, self.count + o.count)


@cython.annotation_typing(False)
def partial(loss: str | Callable[..., Any], input: ArrayLike, target: ArrayLike, *args: Any,
            weight: ArrayLike | None = None, **loss_kwargs: Any) -> LossState:
    """The mergeable :class:`LossState` of a loss over one chunk of data.

    Without ``weight``, ``total`` is the loss's float64 sum and ``weight_sum`` its own mean
    denominator (the number of items, or torch's sum of :math:`w_{y_i}` for class-weighted
    cross-entropy, ...), computed in the same single kernel pass as the loss itself, with nothing
    N-sized allocated; so ``finalize("mean")`` of merged chunks is the loss's mean over all the
    data within float64 rounding (1e-12 relative), for any chunking.

    With ``weight`` (one sample weight per item of the loss's ``reduction="none"`` output, or per
    leading row of it), ``total`` is :math:`\\sum_i w_i \\ell_i` and ``weight_sum`` is
    :math:`\\sum_i w_i`, from the per-item losses of one chunk-sized buffer (for ``"batchmean"``
    the weight sum is divided by the items per leading row).

    Losses that compare items within a batch (``batch_hard_triplet_loss``,
    ``batch_all_triplet_loss``, ``info_nce_loss``, ``nt_xent_loss``) are accepted, but their
    merged state is the mean of per-chunk losses, not the loss over all the data.

    Parameters
    ----------
    loss : str or callable
        A public loss name (``"cross_entropy"``) or the function (``fl.cross_entropy``); it must
        have a ``reduction`` parameter.
    input : array_like
        The loss's first argument (the prediction).
    target : array_like
        The loss's second argument.
    *args
        Further positional arguments of the loss (``triplet_margin_loss``'s negative,
        ``gaussian_nll_loss``'s ``var``, ...).
    weight : array_like, optional
        Keyword-only.  Per-item sample weights of the loss's ``reduction="none"`` shape, or of a
        leading part of it (one weight per row covers the row's items, e.g. (N,) for a (N, K)
        multilabel loss).  The loss's own ``weight=`` parameter (class weights, per-element
        weights) is passed as ``loss_weight=``.
    **loss_kwargs
        The loss's keyword arguments, passed on unchanged (``label_smoothing=0.1``,
        ``num_threads=2``, ``loss_weight=...``).  ``reduction`` may be ``"mean"`` or, for
        ``kl_div`` and ``distillation_loss``, ``"batchmean"``: it picks the mean's denominator
        (default: the loss's default if it is one of those).  ``out``, ``return_grad`` and
        ``grad_out`` are refused.

    Returns
    -------
    LossState
        The chunk's state; ``count`` is the number of items either way.

    Raises
    ------
    ValueError
        An unknown loss or one without ``reduction``, ``out=``, ``return_grad=`` or ``grad_out=`` given, a
        ``weight`` of the wrong shape, a ``reduction`` that is not a mean; and whatever the loss
        raises for its arguments.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal(100), rng.standard_normal(100)
    >>> w = rng.random(100)
    >>> a = fl.partial("mse_loss", x[:60], y[:60], weight=w[:60])
    >>> b = fl.partial(fl.mse_loss, x[60:], y[60:], weight=w[60:])
    >>> bool(np.isclose((a + b).finalize(), np.sum(w * (x - y) ** 2) / w.sum()))
    True
    """
    plan = _plans.get(loss) if type(loss) is str else None
    if plan is None:
        plan = _make_plan(loss)
    name, info, fn, red, count_items = <tuple>plan
    kw = loss_kwargs            # (a fresh dict: ** collected it)
    if not _own_keyword_names.isdisjoint(kw):
        red = _own_keywords(info, kw)
    pos = (input, target) + args if args else (input, target)
    if weight is not None:
        return _weighted_state(name, fn, pos, kw, weight, red)
    sink = []
    token = PyContextVar_Set(_sink, sink)
    try:
        kw["reduction"] = red
        fn(*pos, **kw)
    finally:
        PyContextVar_Reset(_sink, token)
    if not sink:       # a loss that finishes its reduction elsewhere: per-item losses, unit weights
        del kw["reduction"]
        return _weighted_state(name, fn, pos, kw, None, red)
    total, denom = sink[-1]      # (_validate.reduced appended them as Python floats)
    return new_state(name, total, 0.0, denom, count_items(*pos))
