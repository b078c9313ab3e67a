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


def _frame_chunk_state(df, name, num_threads, kwargs, specs, weight_spec, by=None, loss_specs=None):
    """One partition: a LossState, or with ``by`` fastloss.scoring's GroupStates (its engine, on the
    partition's columns as arrays and its key columns as Arrow arrays)."""
    arrays = [_frame_array(df, s) for s in specs]
    w = _frame_array(df, weight_spec) if weight_spec is not None else None
    if by is None:
        return _chunk_state(name, num_threads, kwargs, *arrays, weight=w)
    import pyarrow as pa

    from .scoring import Batch, _score_batches
    cols = {}
    names = [",".join(s) if isinstance(s, (list, tuple)) else s for s in specs]
    for c, a in zip(names, arrays):
        cols[c] = a
    weight = None
    if w is not None:
        weight = ",".join(weight_spec) if isinstance(weight_spec, (list, tuple)) else weight_spec
        cols[weight] = w
    for c in by:
        nulls = int(df[c].isna().sum())
        if nulls:
            raise ValueError(f"group key column {c!r} has {nulls} null value(s)")
        a = pa.array(df[c])
        cols[c] = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    _, groups, _ = _score_batches([Batch(len(df), cols, "a partition of the frame")], loss_specs,
                                  inputs=names[:-1], target=names[-1], weight=weight, by=by,
                                  num_threads=num_threads)
    return groups


def _merge_groups(*groups):
    return _merge_group_states(groups)


def _group_states(groups):
    return {k: sts[0] for k, (_, sts) in groups.states().items()}


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
    lspecs = None
    if keys is not None:
        from . import scoring as S
        lspecs = S.loss_specs(name, loss_kwargs, "loss_frame")
        loss_cols = {c for s in specs + ([weight] if weight is not None else []) for c in _spec_columns(s)}
        for c in keys:
            if c in loss_cols:
                raise ValueError(f"group column {c!r} is also a loss column")
        lspecs = dask.delayed(lspecs, pure=True, traverse=False)
    chunk = dask.delayed(_frame_chunk_state, pure=True)
    states = [chunk(part, name, num_threads, kw, specs, weight, keys, lspecs) for part in frame.to_delayed()]
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
    return dask.delayed(_groups_table, pure=True)(root, reduction)


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


def _parquet_task(path, row_groups, partitions, specs, inputs, target, weight, by, key_types, batch_size, nulls,
                  num_threads):
    """One task: fastloss.scoring's engine over some row groups of one file, read by pyarrow.

    Returns (start time, rows skipped for nulls, [LossState per loss], GroupStates or None, rows)."""
    import time

    from . import scoring as S
    started = time.time()
    pf = S._pyarrow().parquet.ParquetFile(path, pre_buffer=False)
    numeric = list(dict.fromkeys(c for c in (*inputs, target, weight) if c is not None))
    columns = list(dict.fromkeys(numeric + list(by)))
    policy = S._Nulls(nulls)
    batches = S.file_batches(pf, path, columns, numeric, batch_size, policy, partitions, row_groups)
    states, groups, rows = S._score_batches(batches, specs, inputs=inputs, target=target, weight=weight, by=by,
                                            num_threads=num_threads, key_types=key_types)
    return started, policy.skipped, states, groups, rows


def _merge_group_states(parts):
    """GroupStates merged left to right into a new one (the tasks' results are left as they are)."""
    from .scoring import GroupStates
    first = parts[0]
    out = GroupStates(first.by, first.specs, first.schema_types)
    for g in parts:
        out.merge(g)
    return out


def _merge_parts(*parts):
    """Merges task results left to right (per loss, and per key for groups)."""
    states = [LossState.merge_all(col) for col in zip(*(p[2] for p in parts))]
    groups = None if parts[0][3] is None else _merge_group_states([p[3] for p in parts])
    return min(p[0] for p in parts), sum(p[1] for p in parts), states, groups, sum(p[4] for p in parts)


def _groups_table(groups, reduction):
    """GroupStates.table, with dask's column order for one loss (keys, loss, rows, weight_sum)."""
    table = groups.table(reduction)
    if len(groups.specs) == 1:
        table = table.select(groups.by + ["loss", "rows", "weight_sum"])
    return table


def _score_result(part, reduction, num_threads, labels):
    """The root: a ScoreResult (as fastloss.score_parquet's), or with key columns a pyarrow.Table of
    per-group results."""
    import time

    from .scoring import ScoreResult
    started, skipped, states, groups, rows = part
    if groups is not None:
        return _groups_table(groups, reduction)
    first = states[0]
    return ScoreResult(loss=float(first.finalize(reduction)), reduction=reduction, rows=rows, skipped=skipped,
                       weight_sum=float(first.weight_sum), seconds=time.time() - started, state=first,
                       per_row=None, num_threads=num_threads,
                       losses={lab: float(st.finalize(reduction)) for lab, st in zip(labels, states)},
                       states=dict(zip(labels, states)))


def score_parquet(paths: Any, loss: str | Sequence[str | tuple[str, dict[str, Any]]], input: str | Sequence[str],
                  target: str, weight: str | Sequence[float] | None = None,
                  by: str | Sequence[str] | None = None, batch_size: int = 65536, nulls: str = "error",
                  num_threads: int = 1, reduction: str = "mean", rows_per_task: int = 1 << 20,
                  split_every: int = 8, **loss_kwargs: Any) -> Delayed:
    """The lazy :func:`fastloss.score_parquet` of Parquet files: one Dask task per group of row groups.

    Each task opens its file with pyarrow *in the worker* and reads only its row groups (no
    ``dask.dataframe``, no pandas), and runs :func:`fastloss.score_parquet`'s engine on them (the
    same column conversion, null policy, loss specs and grouping): it returns a mergeable
    :class:`fastloss.LossState` per loss -- and, with ``by``, one state per group key and loss --
    which a fixed tree merges ``split_every`` per node (per key for groups).

    How the tasks are cut: each file's row groups, in order, are grouped until a task holds at
    least ``rows_per_task`` rows (default 1 048 576, pyarrow's default row-group size: one task
    per row group of such files).  A row group is never split, so a file written as one row group
    is one task; to spread a file over more workers, write it with smaller row groups or lower
    ``rows_per_task``.  Scaling out is a matter of having several tasks per worker.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        A Parquet file, a directory of Parquet files (read recursively; ``key=value`` directories
        are Hive partitions, whose columns can be ``by`` columns), or a list of those.
    loss : str or list
        A fastloss loss name (not an in-batch loss), ``"name:key=value,..."``, a ``(name, kwargs)``
        pair, or a list of those: several losses scored in the same read, as
        :func:`fastloss.score_parquet`.
    input : str or list of str
        Column name(s) passed as the loss's first argument(s), as :func:`fastloss.score_parquet`.
    target : str
        Column passed as the loss's next argument.
    weight : str or list of float, optional
        Column of per-row sample weights (or the loss's class weights, given as numbers).
    by : str or list of str, optional
        Group key column(s) (integers, strings, dictionary-encoded strings, dates; Hive partition
        columns too): the result is then a ``pyarrow.Table`` of the key columns and each group's
        ``loss``, ``rows`` and ``weight_sum``, sorted by key (with several losses, the table of
        :func:`fastloss.score_parquet`'s ``res.groups``: the keys, ``rows``, then ``<label>`` and
        ``<label>.weight_sum`` per loss).
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
        the root's end; ``losses`` / ``states`` per loss label), or with ``by`` to a
        ``pyarrow.Table``.

    Raises
    ------
    ValueError
        An unknown or in-batch loss, bad ``batch_size`` / ``nulls`` / ``reduction`` /
        ``rows_per_task``, ``per_row`` / ``key`` / ``progress`` (use :func:`fastloss.score_parquet`);
        at compute time nulls with ``nulls="error"`` and the loss's own errors.
    KeyError
        A column that is not in a file.
    TypeError
        A loss column that is not numbers or lists of numbers, a key column of another type, an
        unknown keyword.

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
    check_choice(reduction, "reduction", ("mean", "sum"))
    _check_threads(num_threads, split_every)
    S._check_arguments(input, target, None, None)
    for bad in ("per_row", "key", "progress"):
        if bad in loss_kwargs:
            raise ValueError(f"{bad}= is not a parameter of fastloss.dask.score_parquet (use "
                             "fastloss.score_parquet for per-row output and progress)")
    if S._class_weights(weight):                # numbers: the loss's own weights, as fastloss.score_parquet
        if "loss_weight" in loss_kwargs:
            raise ValueError("weight= is given as numbers (the loss's own weights) and loss_weight= too; give one")
        loss_kwargs, weight = dict(loss_kwargs, loss_weight=weight), None
    elif weight is not None and not isinstance(weight, str):
        raise TypeError(f"weight must be a column name (str), a list of class weights or None, got "
                        f"{type(weight).__name__}")
    specs = S.loss_specs(loss, loss_kwargs, "score_parquet")
    for what, value in (("batch_size", batch_size), ("rows_per_task", rows_per_task)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    check_choice(nulls, "nulls", S.NULL_POLICIES)
    keys = [] if by is None else _by_columns(by)
    inputs = S._names(input, "input")
    for sp in specs:
        S._arguments(sp, inputs, target)          # a wrong number of input columns, before any task
    numeric = list(dict.fromkeys(c for c in (*inputs, target, weight) if c is not None))
    for c in keys:
        if c in numeric:
            raise ValueError(f"group column {c!r} is also a loss column")
    # opens every file's footer: columns, their types (group keys too) and the row groups, before any task
    src = S.ParquetSource(paths, list(dict.fromkeys(numeric + keys)), numeric, batch_size, S._Nulls(nulls), keys)
    key_types = [S._key_type(src.column_type(c)) for c in keys]
    tasks = _row_group_tasks(list(zip(src.paths, src.files)), int(rows_per_task))
    lazy_specs = dask.delayed(specs, pure=True, traverse=False)     # shipped once, not once per task
    task = dask.delayed(_parquet_task, pure=True)
    parts = [task(path, rgs, src.file_partitions(path), lazy_specs, inputs, target, weight, keys, key_types,
                  int(batch_size), nulls, num_threads)
             for path, rgs in tasks]
    if not parts:           # files of no row groups
        empty = (0.0, 0, [LossState.empty(sp.name) for sp in specs],
                 S.GroupStates(keys, specs, key_types) if keys else None, 0)
        parts = [dask.delayed(empty, pure=True, traverse=False)]
    root = _reduce(specs[0].name, parts, split_every, merge=_merge_parts)
    return dask.delayed(_score_result, pure=True)(root, reduction, num_threads, [sp.label for sp in specs])


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
