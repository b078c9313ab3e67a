"""fastloss losses over Dask collections, as lazy reductions of mergeable states.

Arrays chunked along the batch axis (axis 0)::

    import dask.array as da
    import fastloss.dask as fld
    x = da.from_array(logits, chunks=(100_000, -1))
    y = da.from_array(labels, chunks=100_000)
    fld.loss("cross_entropy", x, y).compute()          # == fl.cross_entropy(logits, labels), 1e-12 rel.

DataFrame partitions (e.g. read from Parquet), columns chosen like ``fastloss score``: a list column of
logits (fixed-size or constant-length lists, pyarrow or object cells) or a list of numeric columns::

    df = dd.read_parquet("scores/*.parquet", columns=["logits", "label"])
    fld.loss_frame("cross_entropy", df, input="logits", target="label").compute()

The graph: one task per chunk computes ``fastloss.partial`` (one kernel pass over the chunk, on
``num_threads=1`` kernel threads by default: Dask already runs one task per worker thread, and more
threads per task would oversubscribe the cores), then a fixed tree merges ``split_every`` states per
node (TwoSum-compensated, see ``fastloss/state.py``) and the root finalizes.  For a given chunking the
tree is fixed, so the result is the same bits on every run, cluster and worker count; any chunking
agrees with the in-memory loss within float64 rounding.

``partial`` / ``partial_frame`` return the lazy :class:`fastloss.LossState` (a ``dask.delayed``
object), to merge with states of other data; ``loss`` / ``loss_frame`` the lazy float.  Losses that look
at the whole batch (in-batch mining and negatives: ``batch_hard_triplet_loss``, ``info_nce_loss``, ...)
are refused: chunking would change their value.
"""
from __future__ import annotations

try:
    import dask
    import dask.array as da
except ImportError as exc:       # pragma: no cover - exercised without dask only
    raise ImportError("fastloss.dask needs Dask: pip install 'fastloss[dask]' (dask[array,dataframe] and "
                      "distributed)") from exc

import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import state as _state
from ._typing import ArrayLike
from .state import LossState

if TYPE_CHECKING:
    import dask.dataframe as dd
    from dask.delayed import Delayed

    _Column = Union[str, Sequence[str]]     # a column name, or names stacked into an (n, k) array

__all__ = ["partial", "loss", "partial_frame", "loss_frame"]


def _name(loss):
    name, info = _state._resolve(loss)
    if info.in_batch:
        raise ValueError(f"{name} compares every item of a batch with the others: a chunked computation would "
                         f"change its value; compute it on one in-memory batch instead")
    return name


def _check_threads(num_threads, split_every):
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    if isinstance(split_every, bool) or not isinstance(split_every, numbers.Integral) or split_every < 2:
        raise ValueError(f"split_every must be an integer >= 2, got {split_every!r}")


# ------------------------------------------------------------------------------------ the graph
def _chunk_state(name, num_threads, kwargs, input, target, *args, weight=None):
    return _state.partial(name, input, target, *args, weight=weight, num_threads=num_threads, **kwargs)


def _merge(*states):
    return LossState.merge_all(states)


def _finalize(st, reduction):
    return st.finalize(reduction)


def _reduce(name, chunk_states, split_every):
    """A fixed merge tree over the per-chunk states (left to right, split_every per node)."""
    parts = list(chunk_states)
    if not parts:
        return dask.delayed(LossState.empty, pure=True)(name)
    while len(parts) > 1:
        parts = [dask.delayed(_merge, pure=True)(*parts[i:i + split_every])
                 for i in range(0, len(parts), split_every)]
    return parts[0]


def _lazy_constants(kwargs):
    """The loss's keyword arguments as one graph node (shipped once, not once per chunk)."""
    return dask.delayed(dict(kwargs), pure=True, traverse=False) if kwargs else {}


# ------------------------------------------------------------------------------------ dask.array
def _batch_blocks(arrays, names):
    """Per-chunk blocks of the batch-aligned arguments: lists (one per argument) of delayed blocks,
    all chunked like the first one along axis 0 and in one chunk along every other axis."""
    lead = arrays[0]
    if not isinstance(lead, da.Array):
        raise TypeError(f"{names[0]} must be a dask.array.Array (use fastloss.<loss> for in-memory arrays), "
                        f"got {type(lead).__name__}")
    if lead.ndim == 0:
        raise ValueError(f"{names[0]} must have a batch axis (axis 0), got a 0-d array")
    unknown = any(np.isnan(c) for c in lead.chunks[0])
    out = []
    for a, name in zip(arrays, names):
        if not isinstance(a, da.Array):
            a = np.asarray(a)
            if unknown:
                raise ValueError(f"{names[0]} has unknown chunk sizes: pass {name} as a dask array too")
            if a.ndim == 0 or a.shape[0] != lead.shape[0]:
                raise ValueError(f"{name} must have {names[0]}'s length {lead.shape[0]} along axis 0, "
                                 f"got shape {a.shape}")
            a = da.from_array(a, chunks=(lead.chunks[0],) + a.shape[1:])
        if a.ndim == 0:
            raise ValueError(f"{name} must have a batch axis (axis 0), got a 0-d array")
        if unknown or any(np.isnan(c) for c in a.chunks[0]):
            if a.numblocks[0] != lead.numblocks[0]:
                raise ValueError(f"{name} and {names[0]} have unknown chunk sizes and different numbers of "
                                 f"chunks ({a.numblocks[0]} and {lead.numblocks[0]}); call compute_chunk_sizes()")
            a = a.rechunk({i: -1 for i in range(1, a.ndim)})
        else:
            if a.shape[0] != lead.shape[0]:
                raise ValueError(f"{name} has length {a.shape[0]} along axis 0, {names[0]} {lead.shape[0]}")
            a = a.rechunk((lead.chunks[0],) + tuple((s,) for s in a.shape[1:]))
        out.append(list(a.to_delayed().reshape(-1)))
    return out


def partial(loss: str | Callable[..., Any], input: da.Array, target: da.Array | ArrayLike,
            *args: da.Array | ArrayLike, weight: da.Array | ArrayLike | None = None, num_threads: int = 1,
            split_every: int = 8, **loss_kwargs: Any) -> Delayed:
    """The lazy :class:`fastloss.LossState` of a loss over Dask arrays chunked along axis 0.

    One task per chunk computes :func:`fastloss.partial` (one kernel pass over the chunk), then a
    fixed tree merges ``split_every`` states per node.  For a given chunking the tree is fixed, so
    the result is the same bits on every run, scheduler and worker count; any chunking agrees with
    the in-memory loss within float64 rounding.  Merge the state with states of other data, or
    use :func:`loss` for the finalized value.

    Parameters
    ----------
    loss : str or callable
        A fastloss loss name or function.  Losses that compare items within a batch
        (``batch_hard_triplet_loss``, ``info_nce_loss``, ...) are refused: chunking would change
        their value.
    input : dask.array.Array
        The prediction, chunked along axis 0 (the batch axis).
    target : dask.array.Array or array_like
        The target: a dask array (rechunked to ``input``'s chunks along axis 0 and one chunk along
        the other axes) or a NumPy array of the same length.
    *args
        Further positional arguments of the loss, batch-aligned like ``target``.
    weight : dask.array.Array or array_like, optional
        Keyword-only.  Per-item sample weights, as :func:`fastloss.partial`, batch-aligned like
        ``target``.
    num_threads : int, optional
        Keyword-only.  Kernel threads per task; default 1 (Dask already runs one task per worker
        thread; more threads per task would oversubscribe the cores).
    split_every : int, optional
        Keyword-only.  States merged per node of the merge tree, at least 2; default 8.
    **loss_kwargs
        The loss's own keyword arguments (its ``weight=`` as ``loss_weight=``).

    Returns
    -------
    dask.delayed.Delayed
        A lazy :class:`fastloss.LossState`.

    Raises
    ------
    TypeError
        ``input`` that is not a dask array.
    ValueError
        An in-batch or unknown loss, arguments of different lengths, unknown chunk sizes that
        cannot be aligned, or bad ``num_threads`` / ``split_every``.
    """
    name = _name(loss)
    _check_threads(num_threads, split_every)
    batch = [input, target, *args] + ([weight] if weight is not None else [])
    names = ["input", "target"] + [f"args[{i}]" for i in range(len(args))] + (["weight"] if weight is not None else [])
    blocks = _batch_blocks(batch, names)
    kw = _lazy_constants(loss_kwargs)
    chunk = dask.delayed(_chunk_state, pure=True)
    states = []
    for i in range(len(blocks[0])):
        pos = [b[i] for b in blocks[:len(batch) - (weight is not None)]]
        w = blocks[-1][i] if weight is not None else None
        states.append(chunk(name, num_threads, kw, *pos, weight=w))
    return _reduce(name, states, split_every)


def loss(loss: str | Callable[..., Any], input: da.Array, target: da.Array | ArrayLike,
         *args: da.Array | ArrayLike, weight: da.Array | ArrayLike | None = None, reduction: str = "mean",
         num_threads: int = 1, split_every: int = 8, **loss_kwargs: Any) -> Delayed:
    """The lazy reduced loss of a fastloss loss over Dask arrays chunked along axis 0.

    ``.compute()`` gives a Python float, equal to the in-memory loss (for example
    ``fastloss.cross_entropy(x, y)``) within float64 rounding.

    Parameters
    ----------
    loss : str or callable
        A fastloss loss name or function (not an in-batch loss).
    input : dask.array.Array
        The prediction, chunked along axis 0.
    target : dask.array.Array or array_like
        The target, batch-aligned with ``input``.
    *args
        Further positional arguments of the loss, batch-aligned like ``target``.
    weight : dask.array.Array or array_like, optional
        Keyword-only.  Per-item sample weights, as :func:`fastloss.partial`.
    reduction : {"mean", "sum"}, optional
        Keyword-only.  ``"mean"`` (default: the loss's own mean, or the ``weight``-ed mean) or
        ``"sum"``.
    num_threads : int, optional
        Keyword-only.  Kernel threads per task; default 1.
    split_every : int, optional
        Keyword-only.  States merged per node of the merge tree; default 8.
    **loss_kwargs
        The loss's own keyword arguments (its ``weight=`` as ``loss_weight=``).

    Returns
    -------
    dask.delayed.Delayed
        A lazy Python float.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import fastloss.dask as fld
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((1000, 5)), rng.integers(0, 5, 1000)
    >>> lazy = fld.loss("cross_entropy", da.from_array(x, chunks=(250, 5)), da.from_array(y, chunks=250))
    >>> ref = np.mean(np.log(np.exp(x).sum(axis=1)) - x[np.arange(1000), y])
    >>> bool(np.isclose(lazy.compute(scheduler="sync"), ref, rtol=1e-12, atol=0))
    True
    """
    from ._validate import check_reduction
    check_reduction(reduction, ("mean", "sum"))
    st = partial(loss, input, target, *args, weight=weight, num_threads=num_threads, split_every=split_every,
                 **loss_kwargs)
    return dask.delayed(_finalize, pure=True)(st, reduction)


# ------------------------------------------------------------------------------------ dask.dataframe
def _is_list_type(t):
    import pyarrow as pa
    return pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)


def _series_array(s, column):
    """One column of a pandas partition as an ndarray: numbers as they are, a list column (pyarrow
    fixed-size / variable-length lists of constant length, or object cells holding sequences) as an
    (n, k) array.  Nulls are a ValueError naming the column and their count."""
    nulls = int(s.isna().sum())
    if nulls:
        raise ValueError(f"column {column!r} has {nulls} null value(s)")
    dtype = s.dtype
    if getattr(dtype, "pyarrow_dtype", None) is not None:          # pandas.ArrowDtype
        import pyarrow as pa
        import pyarrow.compute as pc
        arr = pa.Array.from_pandas(s)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if not _is_list_type(arr.type):
            return arr.to_numpy(zero_copy_only=False)
        if pa.types.is_fixed_size_list(arr.type):
            k = arr.type.list_size
        else:
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            k = int(lengths[0]) if len(lengths) else 0
            if len(lengths) and not np.all(lengths == k):
                raise ValueError(f"column {column!r} holds lists of different lengths ({lengths.min()} to "
                                 f"{lengths.max()}); a loss needs one length per column")
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), k)
    if dtype == object:
        cells = s.to_numpy()
        if len(cells) == 0:
            return np.empty((0, 0))
        try:
            return np.stack([np.asarray(c) for c in cells])
        except ValueError:
            raise ValueError(f"column {column!r} holds sequences of different lengths; a loss needs one length "
                             f"per column") from None
    return s.to_numpy()


def _frame_array(df, spec):
    """A column spec -- a column name, or a list of numeric column names stacked as (n, k) -- as an ndarray."""
    if isinstance(spec, (list, tuple)):
        cols = [_series_array(df[c], c) for c in spec]
        return np.column_stack(cols) if cols else np.empty((len(df), 0))
    return _series_array(df[spec], spec)


def _frame_chunk_state(df, name, num_threads, kwargs, specs, weight_spec):
    arrays = [_frame_array(df, s) for s in specs]
    w = _frame_array(df, weight_spec) if weight_spec is not None else None
    return _chunk_state(name, num_threads, kwargs, *arrays, weight=w)


def _spec_columns(spec):
    return list(spec) if isinstance(spec, (list, tuple)) else [spec]


def partial_frame(loss: str | Callable[..., Any], frame: dd.DataFrame, input: _Column, target: _Column,
                  *args: _Column, weight: _Column | None = None, num_threads: int = 1, split_every: int = 8,
                  **loss_kwargs: Any) -> Delayed:
    """The lazy :class:`fastloss.LossState` of a loss over the partitions of a Dask DataFrame.

    Columns are chosen as for ``fastloss score``; only those columns are read (a Parquet-backed
    frame reads just them).  The merge tree and its guarantees are those of :func:`partial`.

    Parameters
    ----------
    loss : str or callable
        A fastloss loss name or function (not an in-batch loss).
    frame : dask.dataframe.DataFrame
        The data.
    input : str or list of str
        A column name (numbers, or a list column: fixed-size or constant-length lists, e.g. 10
        logits per row), or a list of numeric column names stacked into an (n, k) array.
    target : str or list of str
        The target column(s), as ``input``.
    *args
        Further positional arguments of the loss, as columns.
    weight : str or list of str, optional
        Keyword-only.  Column of per-row sample weights.
    num_threads : int, optional
        Keyword-only.  Kernel threads per task; default 1.
    split_every : int, optional
        Keyword-only.  States merged per node of the merge tree; default 8.
    **loss_kwargs
        The loss's own keyword arguments (its ``weight=`` as ``loss_weight=``).

    Returns
    -------
    dask.delayed.Delayed
        A lazy :class:`fastloss.LossState`.

    Raises
    ------
    TypeError
        ``frame`` that is not a Dask DataFrame.
    ValueError
        Missing columns, a null value (naming its column), lists of different lengths in a column,
        an in-batch or unknown loss.
    """
    try:
        import dask.dataframe as dd
    except ImportError as exc:       # pragma: no cover
        raise ImportError("fastloss.dask frames need dask.dataframe: pip install 'fastloss[dask]'") from exc
    if not isinstance(frame, dd.DataFrame):
        raise TypeError(f"frame must be a dask.dataframe.DataFrame, got {type(frame).__name__}")
    name = _name(loss)
    _check_threads(num_threads, split_every)
    specs = [input, target, *args]
    needed = [c for s in specs + ([weight] if weight is not None else []) for c in _spec_columns(s)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame (its columns: {list(frame.columns)})")
    frame = frame[list(dict.fromkeys(needed))]
    kw = _lazy_constants(loss_kwargs)
    chunk = dask.delayed(_frame_chunk_state, pure=True)
    states = [chunk(part, name, num_threads, kw, specs, weight) for part in frame.to_delayed()]
    return _reduce(name, states, split_every)


def loss_frame(loss: str | Callable[..., Any], frame: dd.DataFrame, input: _Column, target: _Column,
               *args: _Column, weight: _Column | None = None, reduction: str = "mean", num_threads: int = 1,
               split_every: int = 8, **loss_kwargs: Any) -> Delayed:
    """The lazy reduced loss of a fastloss loss over a Dask DataFrame's partitions.

    Parameters
    ----------
    loss : str or callable
        A fastloss loss name or function (not an in-batch loss).
    frame : dask.dataframe.DataFrame
        The data.
    input : str or list of str
        The prediction column(s), as :func:`partial_frame`.
    target : str or list of str
        The target column(s).
    *args
        Further positional arguments of the loss, as columns.
    weight : str or list of str, optional
        Keyword-only.  Column of per-row sample weights.
    reduction : {"mean", "sum"}, optional
        Keyword-only.  Default ``"mean"``.
    num_threads : int, optional
        Keyword-only.  Kernel threads per task; default 1.
    split_every : int, optional
        Keyword-only.  States merged per node of the merge tree; default 8.
    **loss_kwargs
        The loss's own keyword arguments (its ``weight=`` as ``loss_weight=``).

    Returns
    -------
    dask.delayed.Delayed
        A lazy Python float.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import dask.dataframe as dd
    >>> import fastloss.dask as fld
    >>> rng = np.random.default_rng(0)
    >>> pdf = pd.DataFrame({"pred": rng.standard_normal(1000), "y": rng.standard_normal(1000)})
    >>> lazy = fld.loss_frame("mse_loss", dd.from_pandas(pdf, npartitions=4), "pred", "y")
    >>> bool(np.isclose(lazy.compute(scheduler="sync"), np.mean((pdf.pred - pdf.y) ** 2), rtol=1e-12, atol=0))
    True
    """
    from ._validate import check_reduction
    check_reduction(reduction, ("mean", "sum"))
    st = partial_frame(loss, frame, input, target, *args, weight=weight, num_threads=num_threads,
                       split_every=split_every, **loss_kwargs)
    return dask.delayed(_finalize, pure=True)(st, reduction)
