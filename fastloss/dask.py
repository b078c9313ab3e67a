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

Parquet files without ``dask.dataframe``: ``score_parquet`` (the options of ``fastloss.score_parquet``,
``by=`` group keys included) runs one task per group of row groups, read by pyarrow in the worker::

    fld.score_parquet("scores/", "cross_entropy", "logits", "label", by="country").compute()   # pyarrow.Table

Every loss is also a function of its name: ``fld.cross_entropy(x, y)`` is ``fld.loss("cross_entropy", x, y)``.

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

__all__ = ["partial", "loss", "partial_frame", "loss_frame", "score_parquet"]


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


def _reduce(name, chunk_states, split_every, merge=_merge):
    """A fixed merge tree over the per-chunk states (left to right, split_every per node)."""
    parts = list(chunk_states)
    if not parts:
        return dask.delayed(LossState.empty, pure=True)(name)
    while len(parts) > 1:
        parts = [dask.delayed(merge, pure=True)(*parts[i:i + split_every])
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
        # Cells holding arrays or lists (dd.read_parquet's default for list columns): one pyarrow
        # conversion of the whole column, then scoring's (n, k) view of the list values -- no Python
        # loop per row.  (dtype_backend="pyarrow" avoids the per-row cells altogether.)
        import pyarrow as pa

        from . import scoring as S
        if len(s) == 0:
            return np.empty((0, 0))
        try:
            arr = pa.array(s.to_numpy())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise TypeError(f"column {column!r} holds cells that are not numbers or sequences of numbers of "
                            f"one type: {exc}") from None
        S.check_column_type(column, arr.type, "the frame")
        bad = S.null_rows(arr)
        if bad is not None:
            raise ValueError(f"column {column!r} has {int(bad.sum())} row(s) holding a null value")
        return S.column_array(arr, column)
    return s.to_numpy()


def _frame_array(df, spec):
    """A column spec -- a column name, or a list of numeric column names stacked as (n, k) -- as an ndarray."""
    if isinstance(spec, (list, tuple)):
        cols = [_series_array(df[c], c) for c in spec]
        return np.column_stack(cols) if cols else np.empty((len(df), 0))
    return _series_array(df[spec], spec)


def _frame_chunk_state(df, name, num_threads, kwargs, specs, weight_spec, by=None):
    arrays = [_frame_array(df, s) for s in specs]
    w = _frame_array(df, weight_spec) if weight_spec is not None else None
    if by is None:
        return _chunk_state(name, num_threads, kwargs, *arrays, weight=w)
    import pyarrow as pa
    keys = []
    for c in by:
        nulls = int(df[c].isna().sum())
        if nulls:
            raise ValueError(f"group key column {c!r} has {nulls} null value(s)")
        a = pa.array(df[c])
        keys.append(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a)
    groups = {}
    if len(df):
        _fold_groups(groups, name, arrays, w, keys, num_threads, kwargs)
    return groups


def _merge_group_dicts(dicts):
    """{key: [LossState, rows]} dicts merged left to right, per key."""
    out = {}
    for d in dicts:
        for key, (st, rows) in d.items():
            out[key] = [out[key][0].merge(st), out[key][1] + rows] if key in out else [st, rows]
    return out


def _merge_groups(*dicts):
    return _merge_group_dicts(dicts)


def _group_states(groups):
    return {k: st for k, (st, _) in groups.items()}


def _group_table(groups, reduction, key_columns):
    """{key: [LossState, rows]} -> pyarrow.Table of the key columns (``key_columns``: (name, Arrow type
    or None to infer)) and each group's loss, rows and weight_sum, sorted by key."""
    from .scoring import _pyarrow
    pa = _pyarrow()
    keys = sorted(groups)
    cols = {c: pa.array([k[i] for k in keys], type=t) for i, (c, t) in enumerate(key_columns)}
    cols["loss"] = pa.array([float(groups[k][0].finalize(reduction)) for k in keys], type=pa.float64())
    cols["rows"] = pa.array([groups[k][1] for k in keys], type=pa.int64())
    cols["weight_sum"] = pa.array([float(groups[k][0].weight_sum) for k in keys], type=pa.float64())
    return pa.table(cols)


def _by_columns(by):
    keys = [by] if isinstance(by, str) else list(by) if isinstance(by, (list, tuple)) else None
    if not keys or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"by must be a column name or a list of column names, got {by!r}")
    return keys


def _spec_columns(spec):
    return list(spec) if isinstance(spec, (list, tuple)) else [spec]


def partial_frame(loss: str | Callable[..., Any], frame: dd.DataFrame, input: _Column, target: _Column,
                  *args: _Column, weight: _Column | None = None, by: _Column | None = None, num_threads: int = 1,
                  split_every: int = 8, **loss_kwargs: Any) -> Delayed:
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
    by : str or list of str, optional
        Keyword-only.  Group key column(s): one state per distinct key, merged per key in the tree.
    num_threads : int, optional
        Keyword-only.  Kernel threads per task; default 1.
    split_every : int, optional
        Keyword-only.  States merged per node of the merge tree; default 8.
    **loss_kwargs
        The loss's own keyword arguments (its ``weight=`` as ``loss_weight=``).

    Returns
    -------
    dask.delayed.Delayed
        A lazy :class:`fastloss.LossState`; with ``by``, a lazy dict {key tuple: LossState}.

    Raises
    ------
    TypeError
        ``frame`` that is not a Dask DataFrame.
    ValueError
        Missing columns, a null value (naming its column), lists of different lengths in a column,
        an in-batch or unknown loss.
    """
    keys = None if by is None else _by_columns(by)
    root = _frame_root(loss, frame, [input, target, *args], weight, keys, num_threads, split_every, loss_kwargs)
    return root if keys is None else dask.delayed(_group_states, pure=True)(root)


def _frame_root(loss, frame, specs, weight, keys, num_threads, split_every, loss_kwargs):
    """The root of the frame graph: a lazy LossState, or with key columns {key: [LossState, rows]}."""
    try:
        import dask.dataframe as dd
    except ImportError as exc:       # pragma: no cover
        raise ImportError("fastloss.dask frames need dask.dataframe: pip install 'fastloss[dask]'") from exc
    if not isinstance(frame, dd.DataFrame):
        raise TypeError(f"frame must be a dask.dataframe.DataFrame, got {type(frame).__name__}")
    name = _name(loss)
    _check_threads(num_threads, split_every)
    needed = [c for s in specs + ([weight] if weight is not None else []) + (keys or [])
              for c in _spec_columns(s)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame (its columns: {list(frame.columns)})")
    frame = frame[list(dict.fromkeys(needed))]
    kw = _lazy_constants(loss_kwargs)
    chunk = dask.delayed(_frame_chunk_state, pure=True)
    states = [chunk(part, name, num_threads, kw, specs, weight, keys) for part in frame.to_delayed()]
    return _reduce(name, states, split_every, merge=_merge if keys is None else _merge_groups)


def loss_frame(loss: str | Callable[..., Any], frame: dd.DataFrame, input: _Column, target: _Column,
               *args: _Column, weight: _Column | None = None, by: _Column | None = None, reduction: str = "mean",
               num_threads: int = 1, split_every: int = 8, **loss_kwargs: Any) -> Delayed:
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
    by : str or list of str, optional
        Keyword-only.  Group key column(s): the result is then a ``pyarrow.Table`` of the key
        columns and each group's ``loss``, ``rows`` and ``weight_sum``, sorted by key.
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
        A lazy Python float; with ``by``, a lazy ``pyarrow.Table``.

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
    keys = None if by is None else _by_columns(by)
    root = _frame_root(loss, frame, [input, target, *args], weight, keys, num_threads, split_every, loss_kwargs)
    if keys is None:
        return dask.delayed(_finalize, pure=True)(root, reduction)
    return dask.delayed(_group_table, pure=True)(root, reduction, [(k, None) for k in keys])


# ------------------------------------------------------------------------------------ Parquet files
# fastloss.score_parquet's machinery (column checks, null policy, Arrow -> NumPy views) run inside
# each task on the task's row groups: pyarrow reads them in the worker, nothing goes through pandas.

def _row_group_tasks(files, rows_per_task):
    """[(path, [row group indices])]: each file's consecutive row groups, grouped until a task holds
    at least ``rows_per_task`` rows (a row group is never split: it is Parquet's unit of reading)."""
    tasks = []
    for path, pf in files:
        md = pf.metadata
        group, rows = [], 0
        for i in range(md.num_row_groups):
            group.append(i)
            rows += md.row_group(i).num_rows
            if rows >= rows_per_task:
                tasks.append((path, group))
                group, rows = [], 0
        if group:
            tasks.append((path, group))
    return tasks


def _dense(code):
    """Codes (ints >= 0) -> (dense ids 0..G-1 in the codes' order, G): by counting when the codes are
    small (O(n)), else by sorting."""
    m = int(code.max()) + 1 if len(code) else 0
    if m <= 4 * len(code) + 4096:
        used = np.bincount(code, minlength=m) > 0
        return (np.cumsum(used) - 1)[code], int(used.sum())
    uniq, inv = np.unique(code, return_inverse=True)
    return inv.reshape(-1), len(uniq)


def _group_ids(key_arrays):
    """One window's key columns -> (row order that sorts the rows by group, group bounds in that
    order, each group's key tuple).

    Each column is dictionary-encoded by pyarrow (dictionary columns keep their own indices); the
    per-column indices are combined into one code per row, re-densified after each column so the
    codes stay below the row count squared."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from .scoring import _numbers
    code, parts, n_groups = None, [], 0
    for a in key_arrays:
        d = a if pa.types.is_dictionary(a.type) else pc.dictionary_encode(a)
        idx = _numbers(d.indices).astype(np.int64)
        parts.append((d.dictionary, idx))
        code = idx if code is None else code * max(len(d.dictionary), 1) + idx
        code, n_groups = _dense(code)
    # a stable sort by group (NumPy's radix sort for 16-bit keys)
    order = np.argsort(code.astype(np.uint16) if n_groups <= 1 << 16 else code, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(code, minlength=n_groups))])
    first = order[bounds[:-1]]                           # the first row of each group
    keys = list(zip(*(dictionary.take(pa.array(idx[first])).to_pylist() for dictionary, idx in parts)))
    return order, bounds, keys


def _fold_groups(groups, loss, args, weight, key_arrays, num_threads, kwargs):
    """Adds one window of rows to ``groups`` ({key tuple: [LossState, rows]}): the rows sorted by
    group (one gather per argument), then fastloss.partial over each group's contiguous rows."""
    from .state import partial as _partial
    order, bounds, keys = _group_ids(key_arrays)
    if len(keys) > 1:
        args = [np.take(a, order, axis=0) for a in args]
        weight = np.take(weight, order, axis=0) if weight is not None else None
    for g, key in enumerate(keys):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        st = _partial(loss, *(a[lo:hi] for a in args), weight=None if weight is None else weight[lo:hi],
                      num_threads=num_threads, **kwargs)
        if key in groups:
            groups[key] = [groups[key][0].merge(st), groups[key][1] + hi - lo]
        else:
            groups[key] = [st, hi - lo]


# Grouped tasks score windows of at least this many rows (batches concatenated): one fastloss.partial
# per group and window, so with many small groups the per-call cost is paid per window, not per batch.
# The window's columns are the memory cost (about 50 MB for 10 float32 logits and an int64 label).
_GROUP_WINDOW = 1 << 20


def _concat_batches(pending):
    """[(args, weight, key arrays)] of consecutive batches -> one (args, weight, key arrays)."""
    import pyarrow as pa
    if len(pending) == 1:
        return pending[0]
    args = [np.concatenate(parts) for parts in zip(*(p[0] for p in pending))]
    w = None if pending[0][1] is None else np.concatenate([p[1] for p in pending])
    keys = []
    for parts in zip(*(p[2] for p in pending)):
        # each batch has its own dictionary: decode before concatenating (re-encoded by _group_ids)
        keys.append(pa.concat_arrays([a.dictionary_decode() if pa.types.is_dictionary(a.type) else a
                                      for a in parts]))
    return args, w, keys


def _parquet_task(path, row_groups, loss, inputs, target, weight, by, batch_size, nulls, num_threads, kwargs):
    """One task: the state (or per-group states) of some row groups of one file, read by pyarrow.

    Returns (start time, rows read, rows skipped for nulls, payload); payload is [LossState, rows]
    or, with ``by``, {key tuple: [LossState, rows]}."""
    import time

    from . import scoring as S
    from .state import partial as _partial
    started = time.time()
    pa = S._pyarrow()
    pf = pa.parquet.ParquetFile(path, pre_buffer=False)
    numeric = list(dict.fromkeys(c for c in (*inputs, target, weight) if c is not None))
    keys = list(by or ())
    columns = list(dict.fromkeys(numeric + keys))
    policy = S._Nulls(nulls)

    def count_all(name):           # the error counts the column's null rows in the whole file
        return sum(int(m.sum()) for b in pf.iter_batches(batch_size=batch_size, columns=[name])
                   if (m := S.null_rows(b.column(0))) is not None)

    payload = {} if by is not None else [LossState.empty(loss), 0]
    pending, pending_rows = [], 0          # grouped: batches gathered into windows of >= _GROUP_WINDOW rows

    def fold_pending():
        if pending:
            args, w, key_arrays = _concat_batches(pending)
            _fold_groups(payload, loss, args, w, key_arrays, num_threads, kwargs)
            pending.clear()

    read = 0
    for batch in pf.iter_batches(batch_size=batch_size, row_groups=row_groups, columns=columns):
        read += batch.num_rows
        cols = {c: batch.column(c) for c in columns}
        keep = policy.keep_mask({c: S.null_rows(cols[c]) for c in columns}, count_all, path)
        if keep is not None:
            cols = {c: a.filter(keep) for c, a in cols.items()}
        arrays = {c: S.column_array(cols[c], c) for c in numeric}
        args = [arrays[c] for c in (*inputs, target)]
        w = arrays[weight] if weight is not None else None
        if not len(args[0]):
            continue
        if by is None:
            payload = [payload[0].merge(_partial(loss, *args, weight=w, num_threads=num_threads, **kwargs)),
                       payload[1] + len(args[0])]
        else:
            pending.append((args, w, [cols[c] for c in keys]))
            pending_rows += len(args[0])
            if pending_rows >= _GROUP_WINDOW:
                fold_pending()
                pending_rows = 0
    fold_pending()
    return started, read, policy.skipped, payload


def _merge_parts(*parts):
    """Merges task results left to right (per key for grouped results)."""
    started = min(p[0] for p in parts)
    read = sum(p[1] for p in parts)
    skipped = sum(p[2] for p in parts)
    if isinstance(parts[0][3], dict):
        return started, read, skipped, _merge_group_dicts(p[3] for p in parts)
    return started, read, skipped, [LossState.merge_all(p[3][0] for p in parts), sum(p[3][1] for p in parts)]


def _score_result(part, reduction, num_threads, key_types):
    """The root: a ScoreResult, or with key columns a pyarrow.Table of per-group results."""
    import time

    from .scoring import ScoreResult
    started, read, skipped, payload = part
    if key_types is None:
        st, rows = payload
        return ScoreResult(loss=float(st.finalize(reduction)), reduction=reduction, rows=rows, skipped=skipped,
                           weight_sum=float(st.weight_sum), seconds=time.time() - started, state=st,
                           per_row=None, num_threads=num_threads)
    return _group_table(payload, reduction, key_types)


def _key_type(column, t, path):
    """The Arrow type of a group key column's values; TypeError for types that are no keys."""
    import pyarrow as pa
    v = t.value_type if pa.types.is_dictionary(t) else t
    if (pa.types.is_integer(v) or pa.types.is_string(v) or pa.types.is_large_string(v) or pa.types.is_boolean(v)
            or pa.types.is_temporal(v)):
        return v
    raise TypeError(f"group key column {column!r} of {path} has type {t}; expected integers, strings "
                    f"(or dictionary-encoded strings), booleans or dates/times")


def score_parquet(paths: Any, loss: str, input: str | Sequence[str], target: str, weight: str | None = None,
                  by: str | Sequence[str] | None = None, batch_size: int = 65536, nulls: str = "error",
                  num_threads: int = 1, reduction: str = "mean", rows_per_task: int = 1 << 20,
                  split_every: int = 8, **loss_kwargs: Any) -> Delayed:
    """The lazy :func:`fastloss.score_parquet` of Parquet files: one Dask task per group of row groups.

    Each task opens its file with pyarrow *in the worker* and reads only its row groups (no
    ``dask.dataframe``, no pandas), scores them batch by batch exactly as
    :func:`fastloss.score_parquet` does (same column conversion and null policy), and returns a
    mergeable :class:`fastloss.LossState` -- or, with ``by``, one state per group key -- which a
    fixed tree merges ``split_every`` per node (per key for groups).

    How the tasks are cut: each file's row groups, in order, are grouped until a task holds at
    least ``rows_per_task`` rows (default 1 048 576, pyarrow's default row-group size: one task
    per row group of such files).  A row group is never split, so a file written as one row group
    is one task; to spread a file over more workers, write it with smaller row groups or lower
    ``rows_per_task``.  Scaling out is a matter of having several tasks per worker.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        A Parquet file, a directory of ``*.parquet`` files, or a list of those.
    loss : str
        A fastloss loss name (not an in-batch loss).
    input : str or list of str
        Column name(s) passed as the loss's first argument(s), as :func:`fastloss.score_parquet`.
    target : str
        Column passed as the loss's next argument.
    weight : str, optional
        Column of per-row sample weights.
    by : str or list of str, optional
        Group key column(s) (integers, strings, dictionary-encoded strings, dates): the result is
        then a ``pyarrow.Table`` of the key columns and each group's ``loss``, ``rows`` and
        ``weight_sum``, sorted by key.
    batch_size : int, optional
        Rows per record batch inside a task; default 65536.
    nulls : {"error", "skip"}, optional
        As :func:`fastloss.score_parquet`; with ``by``, a null key counts as a null row.
    num_threads : int, optional
        Kernel threads per task; default 1 (Dask runs one task per worker thread).
    reduction : {"mean", "sum"}, optional
        Default ``"mean"``.
    rows_per_task : int, optional
        Rows per task at least (whole row groups); default 1 048 576.
    split_every : int, optional
        Task results merged per node of the merge tree, at least 2; default 8.
    **loss_kwargs
        The loss's own parameters; its ``weight=`` is passed as ``loss_weight=``.

    Returns
    -------
    dask.delayed.Delayed
        Computes to a :class:`fastloss.ScoreResult` (``seconds``: from the first task's start to
        the root's end), or with ``by`` to a ``pyarrow.Table``.

    Raises
    ------
    ValueError
        An unknown or in-batch loss, bad ``batch_size`` / ``nulls`` / ``reduction`` /
        ``rows_per_task``; at compute time nulls with ``nulls="error"`` and the loss's own errors.
    KeyError
        A column that is not in a file.
    TypeError
        A loss column that is not numbers or lists of numbers, a key column of another type.

    Examples
    --------
    >>> import numpy as np
    >>> import pyarrow as pa
    >>> import pyarrow.parquet as pq
    >>> import fastloss.dask as fld
    >>> rng = np.random.default_rng(0)
    >>> logits, labels = rng.standard_normal((1000, 4)), rng.integers(0, 4, 1000)
    >>> country = np.array(["fr", "jp"])[rng.integers(0, 2, 1000)]
    >>> pq.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), 4),
    ...                          "label": labels, "country": country}), "preds.parquet", row_group_size=100)
    >>> res = fld.score_parquet("preds.parquet", "cross_entropy", "logits", "label",
    ...                         rows_per_task=200).compute(scheduler="sync")
    >>> ce = np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(1000), labels]
    >>> res.rows, bool(np.isclose(res.loss, ce.mean(), rtol=1e-12, atol=0))
    (1000, True)
    >>> t = fld.score_parquet("preds.parquet", "cross_entropy", "logits", "label",
    ...                       by="country").compute(scheduler="sync")
    >>> t.column("country").to_pylist(), t.column("rows").to_pylist() == [(country == c).sum() for c in "fr jp".split()]
    (['fr', 'jp'], True)
    >>> bool(np.isclose(t.column("loss")[1].as_py(), ce[country == "jp"].mean(), rtol=1e-12, atol=0))
    True
    """
    from . import scoring as S
    from ._validate import check_choice
    _name(S._loss_function(loss))
    check_choice(reduction, "reduction", ("mean", "sum"))
    _check_threads(num_threads, split_every)
    S._check_arguments(paths, input, target, weight, None, None, None)
    for bad in ("reduction", "out", "return_grad", "per_row", "key", "progress"):
        if bad in loss_kwargs:
            raise ValueError(f"{bad}= is not a parameter of fastloss.dask.score_parquet"
                             + (" (use fastloss.score_parquet for per-row output and progress)"
                                if bad in ("per_row", "key", "progress") else ""))
    for what, value in (("batch_size", batch_size), ("rows_per_task", rows_per_task)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    check_choice(nulls, "nulls", S.NULL_POLICIES)
    keys = None if by is None else _by_columns(by)
    inputs = [input] if isinstance(input, str) else list(input)
    numeric = list(dict.fromkeys(c for c in (*inputs, target, weight) if c is not None))
    # opens every file's footer: columns, their types and the row groups, before any task runs
    src = S.ParquetSource(S._expand(paths), list(dict.fromkeys(numeric + (keys or []))), numeric, batch_size,
                          S._Nulls(nulls))
    key_types = None
    if keys is not None:
        schema = src.files[0].schema_arrow
        key_types = [(k, _key_type(k, schema.field(k).type, src.paths[0])) for k in keys]
    tasks = _row_group_tasks(list(zip(src.paths, src.files)), int(rows_per_task))
    kw = _lazy_constants(loss_kwargs)
    task = dask.delayed(_parquet_task, pure=True)
    parts = [task(path, rgs, loss, inputs, target, weight, keys, int(batch_size), nulls, num_threads, kw)
             for path, rgs in tasks]
    if not parts:
        parts = [dask.delayed((0.0, 0, 0, {} if keys is not None else [LossState.empty(loss), 0]))]
    root = _reduce(loss, parts, split_every, merge=_merge_parts)
    return dask.delayed(_score_result, pure=True)(root, reduction, num_threads, key_types)


# ------------------------------------------------------------------------------------ fld.<loss name>
# fastloss.dask.cross_entropy(x, y, ...) is fastloss.dask.loss("cross_entropy", x, y, ...), for every
# loss of the loss table but the in-batch ones (as dask-ml mirrors scikit-learn's names).

def _named_loss(name: str) -> Callable[..., Delayed]:
    def fn(input: da.Array, target: da.Array | ArrayLike, *args: da.Array | ArrayLike,
           weight: da.Array | ArrayLike | None = None, reduction: str = "mean", num_threads: int = 1,
           split_every: int = 8, **loss_kwargs: Any) -> Delayed:
        return loss(name, input, target, *args, weight=weight, reduction=reduction, num_threads=num_threads,
                    split_every=split_every, **loss_kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"""The lazy reduced :func:`fastloss.{name}` over Dask arrays chunked along axis 0.

    ``fastloss.dask.{name}(input, target, ...)`` is ``fastloss.dask.loss("{name}", input, target,
    ...)``: one :func:`fastloss.partial` per chunk, merged in a fixed tree; ``.compute()`` gives
    the in-memory loss within float64 rounding.

    Parameters
    ----------
    input : dask.array.Array
        The prediction, chunked along axis 0.
    target : dask.array.Array or array_like
        The target, batch-aligned with ``input``.
    *args
        Further positional arguments of the loss, batch-aligned like ``target``.
    weight : dask.array.Array or array_like, optional
        Keyword-only.  Per-item sample weights, as :func:`fastloss.partial`.
    reduction : {{"mean", "sum"}}, optional
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
    """
    return fn


def _loss_table() -> dict[str, Any]:
    from ._losses import LOSSES
    return LOSSES


_LOSS_NAMES = sorted(n for n, info in _loss_table().items() if not info.in_batch)
globals().update({_n: _named_loss(_n) for _n in _LOSS_NAMES})
__all__ += _LOSS_NAMES


def __getattr__(name: str) -> Any:
    info = _loss_table().get(name)
    if info is not None and info.in_batch:
        raise AttributeError(f"fastloss.dask has no {name}: it compares every item of a batch with the others, so "
                             f"a chunked computation would change its value; compute it on one in-memory batch")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
