"""Scoring files: a loss over millions of stored predictions, in memory bounded by the batch size.

``score_parquet`` streams record batches with pyarrow (``ParquetFile.iter_batches(columns=...)``),
turns the needed columns into NumPy arrays and folds one mergeable ``LossState`` per batch
(``fastloss.partial``) into the result.  ``score_file`` does the same for ``.npy`` / ``.npz`` input
(and dispatches Parquet paths to the same engine); ``fastloss score`` is its command line.

``score_table`` reads any in-memory table with the Arrow stream interface the same way.  Several
losses can be scored in one read, and ``by=`` keeps one state per group (hash aggregation of the
key columns).  The engine, ``_score_batches``, folds an iterable of ``Batch`` objects into one
state per loss (and per group); sources (Parquet files, NumPy files, Arrow streams) make them.

Column conversion, without a copy where Arrow allows it:

* numeric columns (no nulls): the Arrow data buffer viewed as a 1-d array;
* fixed-size-list columns of numbers (a logit vector, a 4-float box): the child ``values`` buffer
  viewed as an (n, width) array;
* variable-length list columns whose rows all have the same length: accepted, after a check that
  the offsets are uniform; then the same (n, width) view of the child values;
* booleans (bit-packed in Arrow) and columns with nulls cost one copy of that batch's column.

Nulls: ``nulls="error"`` (default) raises a ValueError with the number of null rows of the column;
``nulls="skip"`` drops every row with a null in any column used (a null element inside a vector
counts as a null row) and reports how many were skipped.

Memory: pyarrow decodes one row group's column chunks at a time (with ``pre_buffer=False``; its
default caches all the chunks it has read), so the peak is about one row group plus one batch of
each used column, whatever the size of the file.  Per-row losses go to a Parquet
file written batch by batch to a temporary file in the destination's directory and renamed into
place (``os.replace``) only after the last batch: a failure leaves no partial output behind.
"""
from __future__ import annotations

import difflib
import functools
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._typing import StrPath

if TYPE_CHECKING:
    from .state import LossState

__all__ = ["score_parquet", "score_file", "score_table", "ScoreResult"]

NULL_POLICIES = ("error", "skip")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
NUMPY_SUFFIXES = (".npy", ".npz")


def _pyarrow():
    """pyarrow and pyarrow.parquet, or an ImportError that says how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError("Parquet scoring needs pyarrow: pip install 'fastloss[parquet]'") from None
    return pa


# ----------------------------------------------------------------------------------------------
# The result
# ----------------------------------------------------------------------------------------------

@dataclass
class ScoreResult:
    """What a scoring run returns: the finalized loss and how it was obtained.

    Returned by :func:`score_parquet` and :func:`score_file` (and printed by ``fastloss score``).

    Attributes
    ----------
    loss : float
        The reduced loss, ``state.finalize(reduction)``.
    reduction : str
        ``"mean"`` or ``"sum"``.
    rows : int
        Rows scored.
    skipped : int
        Rows dropped for nulls (``nulls="skip"``).
    weight_sum : float
        The state's weight sum: the mean's denominator.
    seconds : float
        Wall time of the whole run.
    state : LossState
        The merged state, mergeable with other runs' states.
    per_row : str or None
        Path of the per-row Parquet file, if one was written.
    num_threads : int
        Kernel threads used per batch.
    losses : dict
        Every loss's value by label (one entry for one loss).
    states : dict
        Every loss's merged state by label.
    groups : pyarrow.Table or None
        With ``by``: the key columns, ``rows``, and each loss's value and weight sum per group.
    group_states : dict or None
        With ``by``: {key tuple: (rows, {label: LossState})}, mergeable with other runs' groups.
    """
    loss: float                  # state.finalize(reduction)
    reduction: str               # "mean" or "sum"
    rows: int                    # rows scored
    skipped: int                 # rows dropped for nulls (nulls="skip")
    weight_sum: float            # the state's weight sum (the mean's denominator)
    seconds: float               # wall time of the whole run
    state: LossState = field(repr=False)   # the merged fastloss.LossState
    per_row: str | None = None       # path of the per-row Parquet file, if written
    num_threads: int = 1             # kernel threads used per batch
    losses: dict[str, float] = field(default_factory=dict)         # every loss by label
    states: dict[str, LossState] = field(default_factory=dict, repr=False)
    groups: Any = field(default=None, repr=False)                  # pyarrow.Table with by=
    group_states: dict[Any, Any] | None = field(default=None, repr=False)

    @property
    def rows_per_s(self) -> float:
        """Rows scored per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: every field but the state, plus ``rows_per_s``.

        Returns
        -------
        dict
        """
        out = {"loss": self.loss, "reduction": self.reduction, "rows": self.rows, "skipped": self.skipped,
               "weight_sum": self.weight_sum, "seconds": self.seconds, "rows_per_s": self.rows_per_s,
               "per_row": self.per_row, "num_threads": self.num_threads}
        if len(self.losses) > 1:
            out["losses"] = dict(self.losses)
            out["weight_sums"] = {k: s.weight_sum for k, s in self.states.items()}
        if self.groups is not None:
            out["groups"] = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                             for row in self.groups.to_pylist()]
        return out


# ----------------------------------------------------------------------------------------------
# Loss lookup and the per-batch state
# ----------------------------------------------------------------------------------------------

def loss_names():
    """The losses a file can be scored with: the public losses (fastloss._losses.LOSSES), less the
    in-batch losses, whose value depends on which rows share a batch."""
    from ._losses import LOSSES
    return sorted(n for n, info in LOSSES.items() if not info.in_batch)


def _loss_function(name):
    """The public loss ``fastloss.<name>``; a ValueError listing close matches for unknown names."""
    from ._losses import LOSSES
    if not isinstance(name, str):
        raise TypeError(f"loss must be a loss name (str), got {type(name).__name__}")
    info = LOSSES.get(name)
    if info is not None and info.in_batch:
        raise ValueError(f"{name} mines or contrasts within a batch: its value depends on how rows are "
                         "batched, so it cannot be scored batch by batch")
    if info is not None:
        return info.function
    names = loss_names()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known losses: {', '.join(names)}"
    raise ValueError(f"unknown loss {name!r}{hint}")


# ----------------------------------------------------------------------------------------------
# Arrow columns -> NumPy
# ----------------------------------------------------------------------------------------------

def _is_number(t):
    pa = _pyarrow()
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _is_list(t):
    pa = _pyarrow()
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def check_column_type(name, t, source):
    """TypeError unless ``t`` is a number or a list of numbers."""
    if _is_number(t) or (_is_list(t) and _is_number(t.value_type)):
        return
    raise TypeError(f"column {name!r} of {source} has type {t}; expected numbers or a list of numbers")


def null_rows(arr):
    """Boolean mask of the rows of ``arr`` that are null or hold a null element; None if there are none."""
    pa = _pyarrow()
    pc = pa.compute
    mask = None
    if arr.null_count:
        mask = _numbers(arr.is_null())
    if _is_list(arr.type):
        flat = pc.list_flatten(arr)
        if flat.null_count:
            mask = np.zeros(len(arr), dtype=bool) if mask is None else mask
            parents = pc.list_parent_indices(arr).filter(flat.is_null())
            mask[_numbers(parents)] = True
    return mask


def _numbers(arr):
    """A numeric Arrow array (no nulls) as ndarray: a read-only view of its data buffer.

    Built with ``np.frombuffer`` rather than ``Array.to_numpy``, whose first call imports pandas
    (about a second).  Booleans (bit-packed in Arrow) cost one copy.
    """
    pa = _pyarrow()
    if pa.types.is_boolean(arr.type):
        return np.unpackbits(np.frombuffer(arr.buffers()[1], dtype=np.uint8), bitorder="little")[
            arr.offset:arr.offset + len(arr)].astype(bool)
    dtype = np.dtype(arr.type.to_pandas_dtype())
    data = arr.buffers()[1]
    if data is None:        # a zero-length array may have no buffer
        return np.empty(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def column_array(arr, name):
    """An Arrow column of one batch (no nulls left) as a NumPy array, a view where Arrow allows.

    Numbers give shape (n,); lists give (n, width) — fixed-size lists directly, variable-length
    lists after checking that every row has the same length (ValueError otherwise).
    """
    pa = _pyarrow()
    n = len(arr)
    if not _is_list(arr.type):
        return _numbers(arr)
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
    else:
        offsets = _numbers(arr.offsets)
        lengths = np.diff(offsets)
        width = int(lengths[0]) if n else 0
        if n and np.any(lengths != width):
            bad = int(np.argmax(lengths != width))
            raise ValueError(f"column {name!r} holds lists of different lengths ({width} in its first row, "
                             f"{int(lengths[bad])} in row {bad} of a batch); expected one length")
    values = _numbers(arr.flatten())      # flatten() honours the array's slice offset
    return values.reshape(n, width)


# ----------------------------------------------------------------------------------------------
# Sources: each yields Batch objects (the columns of some rows, after the null policy)
# ----------------------------------------------------------------------------------------------

def _suggest(name, columns):
    close = difflib.get_close_matches(name, columns, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _missing(name, columns, source):
    return KeyError(f"column {name!r} not found in {source}{_suggest(name, columns)}; "
                    f"columns are: {', '.join(columns)}")


def check_key_type(name, t, source):
    """TypeError unless ``t`` can be a group key: integers, strings (dictionary-encoded or not), dates."""
    pa = _pyarrow()
    v = t.value_type if pa.types.is_dictionary(t) else t
    if (pa.types.is_integer(v) or pa.types.is_string(v) or pa.types.is_large_string(v)
            or getattr(pa.types, "is_string_view", lambda _: False)(v) or pa.types.is_date(v)):
        return
    raise TypeError(f"group column {name!r} of {source} has type {t}; a group key must be integers, "
                    "strings or dates")


@dataclass
class Batch:
    """Some rows of a source, ready to score.

    ``cols``: {column: ndarray} for the numeric (loss) columns, Arrow arrays for the key and group
    columns; ``n_read``: rows read (before the null policy); ``where``: the file (or "the table")
    the rows come from; ``first_row``: the file row of the batch's first row read; ``kept``: the
    batch rows kept by the null policy (indices into the rows read), None when all were kept.
    """
    n_read: int
    cols: dict
    where: str = "the table"
    first_row: int = 0
    kept: Any = None

    def file_row(self, i):
        """The row in ``where`` of row ``i`` of this batch (as scored)."""
        return self.first_row + (int(self.kept[i]) if self.kept is not None else int(i))


class _Nulls:
    """Applies the null policy to one batch and keeps the count of skipped rows."""

    def __init__(self, policy):
        from ._validate import check_choice
        check_choice(policy, "nulls", NULL_POLICIES)
        self.policy = policy
        self.skipped = 0

    def keep_mask(self, masks, count_all, source):
        """``masks``: {column: null-row mask or None}; ``count_all(column)`` counts the column's null
        rows in all of ``source`` (for the error).  Returns the rows to keep (None = all)."""
        drop = None
        for name, m in masks.items():
            if m is None:
                continue
            if self.policy == "error":
                total = count_all(name)
                rows = "row" if total == 1 else "rows"
                raise ValueError(f"column {name!r} of {source} has {total} null {rows}; "
                                 "pass nulls='skip' (--nulls skip) to drop them")
            drop = m if drop is None else (drop | m)
        if drop is None:
            return None
        self.skipped += int(drop.sum())
        return ~drop


def _arrow_batch(batch, columns, numeric, nulls, where, first_row, count_all):
    """One pyarrow RecordBatch (or {name: Arrow array}) -> Batch: the null policy applied, the numeric
    columns as NumPy views of their buffers."""
    cols = batch if isinstance(batch, dict) else {c: batch.column(c) for c in columns}
    n = len(next(iter(cols.values()))) if cols else 0
    keep = nulls.keep_mask({c: null_rows(cols[c]) for c in columns}, count_all, where)
    kept = None
    if keep is not None:
        kept = np.flatnonzero(keep)
        cols = {c: a.filter(keep) for c, a in cols.items()}
    return Batch(n, {c: column_array(a, c) if c in numeric else a for c, a in cols.items()}, where,
                 first_row, kept)


def _check_columns(schema_names, field_type, columns, numeric, keys, source):
    for c in columns:
        if c not in schema_names:
            raise _missing(c, list(schema_names), source)
        if c in numeric:
            check_column_type(c, field_type(c), source)
        elif c in keys:
            check_key_type(c, field_type(c), source)


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _hive_values(root, path):
    """{partition column: raw value} of the ``key=value`` directories between ``root`` and ``path``."""
    from urllib.parse import unquote
    rel = os.path.relpath(os.path.dirname(path), root)
    out = {}
    if rel == os.curdir:
        return out
    for part in rel.split(os.sep):
        k, sep, v = part.partition("=")
        if sep and k:
            out[unquote(k)] = None if v == HIVE_NULL else unquote(v)
    return out


def _hive_columns(files):
    """{column: (arrow type, {file: value})} of the Hive partition columns (``key=value`` directories):
    int64 when every value is an integer, else string."""
    pa = _pyarrow()
    found = {}
    for f, values in files:
        for k, v in values.items():
            found.setdefault(k, {})[f] = v
    out = {}
    for k, per_file in found.items():
        vals = [v for v in per_file.values() if v is not None]
        is_int = all(v.lstrip("-").isdigit() for v in vals)
        typ = pa.int64() if is_int else pa.string()
        out[k] = (typ, {f: (int(v) if (is_int and v is not None) else v) for f, v in per_file.items()})
    return out


def _constant(value, typ, n):
    """An Arrow array of ``n`` copies of ``value`` (a partition column of one file)."""
    pa = _pyarrow()
    if value is None:
        return pa.nulls(n, type=typ)
    if pa.types.is_integer(typ):
        return pa.array(np.full(n, value, dtype=np.int64))
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], type=typ))


def _key_type(t):
    """The type of a group key column in the groups table: a dictionary's values, string for string_view."""
    pa = _pyarrow()
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.string() if getattr(pa.types, "is_string_view", lambda _: False)(t) else t


class ParquetSource:
    """Record batches of the needed columns of one or more Parquet files (or directories of them, read
    recursively; ``key=value`` directories give Hive partition columns, usable as group or key
    columns)."""

    def __init__(self, paths, columns, numeric, batch_size, nulls, keys=()):
        pa = _pyarrow()
        self.pq = pa.parquet
        found = _expand(paths)
        self.paths = [f for f, _ in found]
        self.partitions = _hive_columns(found)
        self.columns, self.numeric, self.keys = columns, numeric, set(keys)
        self.batch_size = int(batch_size)
        self.nulls = nulls
        self.files = []
        for p in self.paths:
            # pre_buffer=False: pyarrow's default (True) caches every requested column chunk of the
            # file for the reader's lifetime -- memory would grow with the file, not the batch.
            try:
                pf = self.pq.ParquetFile(p, pre_buffer=False)
            except (OSError, pa.ArrowException) as exc:
                raise ValueError(f"cannot read {p} as Parquet: {exc}") from None
            schema = pf.schema_arrow
            names = list(schema.names) + [k for k, (_, per) in self.partitions.items()
                                          if p in per and k not in schema.names]

            def ftype(c, schema=schema):
                return schema.field(c).type if c in schema.names else self.partitions[c][0]
            _check_columns(names, ftype, self.columns, self.numeric, self.keys, p)
            self.files.append(pf)
        self.total_rows = sum(pf.metadata.num_rows for pf in self.files)

    def column_type(self, c):
        schema = self.files[0].schema_arrow
        return schema.field(c).type if c in schema.names else self.partitions[c][0]

    def file_partitions(self, path):
        """{partition column: (arrow type, value)} of the file ``path``, for :func:`file_batches`."""
        return {c: (typ, per.get(path)) for c, (typ, per) in self.partitions.items()}

    def batches(self):
        """Yields a Batch per record batch."""
        for path, pf in zip(self.paths, self.files):
            yield from file_batches(pf, path, self.columns, self.numeric, self.batch_size, self.nulls,
                                    self.file_partitions(path))


def _count_nulls(pf, name, batch_size):
    if name not in pf.schema_arrow.names:            # a partition column: null for the whole file
        return pf.metadata.num_rows
    return sum(int(m.sum()) for b in pf.iter_batches(batch_size=batch_size, columns=[name])
               if (m := null_rows(b.column(0))) is not None)


def file_batches(pf, path, columns, numeric, batch_size, nulls, partitions, row_groups=None):
    """The Batches of one Parquet file (a ``pyarrow.parquet.ParquetFile``), or of its consecutive
    ``row_groups`` only (fastloss.dask's tasks); ``partitions``: {column: (arrow type, value)}, the
    file's Hive partition columns (:meth:`ParquetSource.file_partitions`)."""
    own = [c for c in columns if c in pf.schema_arrow.names]
    extra = [c for c in columns if c not in own]
    md = pf.metadata
    start = 0 if not row_groups else sum(md.row_group(i).num_rows for i in range(row_groups[0]))
    for batch in pf.iter_batches(batch_size=batch_size, columns=own, row_groups=row_groups):
        n = batch.num_rows
        cols = {c: batch.column(c) for c in own}
        for c in extra:
            typ, value = partitions[c]
            cols[c] = _constant(value, typ, n)
        yield _arrow_batch({c: cols[c] for c in columns}, columns, numeric, nulls, path, start,
                           lambda name: _count_nulls(pf, name, batch_size))
        start += n


class TableSource:
    """The record batches of an in-memory table (anything with ``__arrow_c_stream__``), sliced to
    ``batch_size`` rows (zero-copy)."""

    def __init__(self, obj, columns, numeric, batch_size, nulls, keys=()):
        pa = _pyarrow()
        if isinstance(obj, pa.RecordBatchReader):
            reader = obj
        elif hasattr(obj, "__arrow_c_stream__"):
            reader = pa.RecordBatchReader.from_stream(obj)
        else:
            raise TypeError(f"table must export the Arrow stream interface (__arrow_c_stream__: a pyarrow "
                            f"Table, a pandas >= 2.2 or Polars DataFrame, ...), got {type(obj).__name__}")
        self.reader = reader
        schema = reader.schema
        _check_columns(schema.names, lambda c: schema.field(c).type, columns, numeric, set(keys), "the table")
        self.columns, self.numeric = columns, numeric
        self.batch_size = int(batch_size)
        self.nulls = nulls
        self.total_rows = 0      # not known before the stream is read
        self._counted = {}

    def column_type(self, c):
        return self.reader.schema.field(c).type

    def batches(self):
        start = 0
        for rb in self.reader:
            for off in range(0, rb.num_rows, self.batch_size):
                part = rb.slice(off, self.batch_size)
                yield _arrow_batch(part, self.columns, self.numeric, self.nulls, "the table", start,
                                   lambda name: "some")
                start += part.num_rows

    def close(self):
        self.reader.close()


class NumpySource:
    """Batches of rows of ``.npy`` files (memory-mapped) or ``.npz`` archives (named arrays).

    A ``.npz`` archive's arrays are columns by name; a ``.npy`` file is one column named by its file
    stem, or, for a structured array, one column per field.  All columns must have the same length.
    """

    def __init__(self, paths, columns, numeric, batch_size, nulls, keys=()):
        self.paths = [os.fspath(p) for p in paths]
        self.columns, self.numeric = columns, numeric
        self.batch_size = int(batch_size)
        self.nulls = nulls
        found = {}
        self._archives = []
        for p in self.paths:
            if p.endswith(".npz"):
                z = np.load(p, allow_pickle=False)
                self._archives.append(z)
                found.update({k: (_NpzMember(p, z), k) for k in z.files})
            else:
                a = np.load(p, mmap_mode="r", allow_pickle=False)
                if a.dtype.names:
                    found.update({f: (a, f) for f in a.dtype.names})
                else:
                    found[os.path.splitext(os.path.basename(p))[0]] = (a, None)
        self.source = ", ".join(self.paths)
        self.arrays = {}
        for c in self.columns:
            if c not in found:
                raise _missing(c, list(found), self.source)
            holder, key = found[c]
            a = holder[key] if key is not None else holder
            if c in keys:
                if not (a.dtype.kind in "iuUM" and a.ndim == 1):
                    raise TypeError(f"group column {c!r} of {self.source} has dtype {a.dtype}; a group key "
                                    "must be integers, strings or dates")
            elif a.dtype.kind not in "biuf" or a.ndim == 0:
                raise TypeError(f"column {c!r} of {self.source} has dtype {a.dtype} and shape {a.shape}; "
                                "expected an array of numbers with rows along axis 0")
            self.arrays[c] = a
        lengths = {c: len(a) for c, a in self.arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns have different numbers of rows: {lengths}")
        self.total_rows = next(iter(lengths.values()), 0)

    def column_type(self, c):
        return _pyarrow().from_numpy_dtype(self.arrays[c].dtype)

    def batches(self):
        pa = _pyarrow() if len(self.numeric) < len(self.columns) else None
        for start in range(0, self.total_rows, self.batch_size):
            cols = {c: a[start:start + self.batch_size] for c, a in self.arrays.items()}
            n = len(next(iter(cols.values())))
            # NumPy has no nulls: NaN is a value and propagates (SPEC §4), so the null policy has
            # nothing to drop here.  Key and group columns become Arrow arrays, as from Parquet.
            cols = {c: a if c in self.numeric else pa.array(np.asarray(a)) for c, a in cols.items()}
            yield Batch(n, cols, self.source, start)

    def close(self):
        for z in self._archives:
            z.close()


class _NpzMember:
    """``holder[name]`` of an ``.npz`` archive: a read-only memory map for a stored (uncompressed)
    member, as ``np.savez`` writes them; the loaded array for a compressed one (``np.savez_compressed``)."""

    def __init__(self, path, archive):
        self.path, self.archive = path, archive

    def __getitem__(self, name):
        import zipfile
        with zipfile.ZipFile(self.path) as zf:
            info = zf.getinfo(name + ".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                return self.archive[name]
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)                       # the zip local file header
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        if dtype.hasobject:
            return self.archive[name]               # (np.load raises its own error for object arrays)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if fortran else "C")


def _expand(paths):
    """A path, a directory or a list of those -> [(file path, {hive partition column: value})].

    A directory is read recursively (sorted; names starting with "." or "_" are skipped, like
    ``_SUCCESS`` markers and hidden files): its ``*.parquet`` files, with the ``key=value``
    directories below it as partition columns (Hive partitioning).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            inner = []
            for d, dirs, files in os.walk(p):
                dirs[:] = sorted(x for x in dirs if not x.startswith((".", "_")))
                inner.extend(os.path.join(d, f) for f in sorted(files)
                             if f.endswith(PARQUET_SUFFIXES) and not f.startswith((".", "_")))
            if not inner:
                raise FileNotFoundError(f"no Parquet files in directory {p}")
            out.extend((f, _hive_values(p, f)) for f in inner)
        elif not os.path.exists(p):
            raise FileNotFoundError(f"no such file: {p}")
        else:
            out.append((p, {}))
    if not out:
        raise ValueError("no input files given")
    return out


def prefetched(batches, depth=2):
    """Iterate the generator ``batches`` on a reader thread, at most ``depth`` items ahead.

    pyarrow decodes (and NumPy slices) with the GIL released, as the kernels compute, so reading
    batch k+1 overlaps the loss of batch k; ``depth`` bounds the batches alive at once.  An exception
    of the reader is raised here; leaving the loop early (an error in the loss) stops and joins the
    reader before returning.
    """
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            for item in batches:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    reader = threading.Thread(target=produce, name="fastloss-score-reader", daemon=True)
    reader.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        reader.join()
        batches.close()


# ----------------------------------------------------------------------------------------------
# Output files
# ----------------------------------------------------------------------------------------------

def _umask():
    """The process umask (read by setting it and putting it back: os has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary(path):
    """A new temporary file beside ``path`` (same file system: the final rename is atomic)."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    return tmp


def _put_in_place(tmp, path):
    """Rename the finished temporary file onto ``path``, with the mode a newly created file gets
    (0666 less the umask): mkstemp's 0600 must not survive the rename."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def write_table_atomic(table, path):
    """Write a pyarrow Table to the Parquet file ``path`` through a temporary file and a rename."""
    pa = _pyarrow()
    path = os.fspath(path)
    tmp = _temporary(path)
    try:
        pa.parquet.write_table(table, tmp)
        _put_in_place(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class PerRowWriter:
    """Per-row losses (and the key columns) written batch by batch to ``path`` via a temporary file.

    The temporary file lives in the destination's directory (so the final ``os.replace`` is an
    atomic rename on the same file system); ``abort()`` removes it.  ``key_names``: the key columns
    passed through (empty: a ``row`` index); ``loss_names``: the names of the loss columns.
    """

    def __init__(self, path, key_names, loss_names=("loss",)):
        self.pa = _pyarrow()
        self.path = os.fspath(path)
        self.key_names = list(key_names)
        self.loss_names = list(loss_names)
        self.tmp = _temporary(self.path)
        self.writer = None
        self.row = 0

    def write(self, losses, keys):
        """``losses``: one per-item loss array per loss column (a row's items are averaged);
        ``keys``: the key columns' Arrow arrays (ignored without key names)."""
        pa = self.pa
        rows = []
        for v in losses:
            v = np.asarray(v)
            if v.ndim > 1:     # elementwise losses over vector rows: the row's mean
                v = v.reshape(len(v), -1).mean(axis=1)
            rows.append(v)
        n = len(rows[0])
        if self.key_names:
            names, arrays = list(self.key_names), list(keys)
        else:
            names, arrays = ["row"], [pa.array(np.arange(self.row, self.row + n, dtype=np.int64))]
        self.row += n
        table = pa.Table.from_arrays(arrays + [pa.array(v) for v in rows], names=names + self.loss_names)
        if self.writer is None:
            self.writer = pa.parquet.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table)

    def commit(self):
        if self.writer is None:   # no rows at all: still write a valid, empty file
            pa = self.pa
            keys = [pa.array([], type=pa.null()) for _ in self.key_names]
            self.write([np.empty(0, dtype=np.float64)] * len(self.loss_names), keys)
        self.writer.close()
        _put_in_place(self.tmp, self.path)

    def abort(self):
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


# ----------------------------------------------------------------------------------------------
# What to score: one LossSpec per loss
# ----------------------------------------------------------------------------------------------

# score_file's own options: a misspelled one is reported as such, not as an argument of the loss.
SCORE_OPTIONS = ("input", "target", "weight", "per_row", "key", "by", "batch_size", "nulls", "num_threads",
                 "reduction", "progress")
_NOT_FOR_SCORING = {"reduction": "pass reduction='mean' or 'sum' to the scoring call",
                    "out": "not for scoring", "return_grad": "not for scoring",
                    "num_threads": "pass num_threads to the scoring call",
                    "size_average": "deprecated", "reduce": "deprecated"}


def _split_params(text):
    """``"a=1, b=[1, 2]"`` -> ["a=1", "b=[1, 2]"]: commas inside brackets or quotes do not split."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_param(text):
    """``key=value`` -> (key, value); the value is a Python literal when it parses as one, else a string
    (``weight=@head.npy``: a string, the array file that :func:`loss_specs` loads)."""
    import ast
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ValueError(f"a loss parameter must be key=value, got {text!r}")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return key, value


def parse_loss(text):
    """``"softmax_focal_loss:gamma=2,alpha=0.25"`` -> ("softmax_focal_loss", {"gamma": 2, "alpha": 0.25})."""
    name, _, params = text.partition(":")
    return name.strip(), dict(parse_param(p) for p in _split_params(params))


def _is_array_file(value):
    """Whether a loss parameter's value names a ``.npy`` file to load: a path object, ``"@file.npy"``
    (the command line's spelling) or a string ending in ``.npy``."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and (value.startswith("@") or value.endswith(".npy"))


def _load_array(value, key):
    """The array a loss parameter names (see :func:`_is_array_file`), memory-mapped read-only;
    FileNotFoundError / ValueError naming the parameter."""
    path = os.fspath(value)
    path = path.removeprefix("@")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"loss parameter {key}: no such file: {path}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"loss parameter {key}: cannot read {path} as a .npy array: {exc}") from None


def _show(value):
    """A loss parameter's value in a label: an array by its shape, not its elements."""
    return f"<array {value.shape} {value.dtype}>" if isinstance(value, np.ndarray) else repr(value)


@dataclass
class LossSpec:
    """One loss of a scoring run: its name, its keyword arguments (the loss's own ``weight`` under
    that name, as the function takes it) and the label of its result (the name, or the full
    ``name:k=v`` text when a name is scored more than once)."""
    name: str
    kwargs: dict
    label: str = ""
    info: Any = field(default=None, repr=False)

    def __post_init__(self):
        from ._losses import LOSSES
        _loss_function(self.name)
        self.info = LOSSES[self.name]
        self.label = self.label or self.name

    @functools.cached_property
    def parameters(self):
        """The loss function's signature parameters."""
        import inspect
        return inspect.signature(self.info.function).parameters

    @functools.cached_property
    def data_params(self):
        """The loss's required positional parameters (its data arguments), in order."""
        ps = self.parameters
        return [p for p, v in ps.items()
                if v.default is v.empty and v.kind in (v.POSITIONAL_ONLY, v.POSITIONAL_OR_KEYWORD)]

    @property
    def target_param(self):
        """The data argument that ``target=`` names: the one called target/label(s), else the last
        (``gaussian_nll_loss(input, target, var)`` has its target in the middle)."""
        data = self.data_params
        return next((p for p in data if p in ("target", "label", "labels")), data[-1])

    @property
    def constants(self):
        """The data arguments given as keyword arguments: the same array for every batch, not a column
        (``linear_cross_entropy``'s ``weight``, the (V, d) head matrix)."""
        data = self.data_params
        return {p: self.kwargs[p] for p in data[1:] if p != self.target_param and p in self.kwargs}

    @property
    def column_params(self):
        """The data arguments read from columns: ``data_params`` less the constants."""
        consts = self.constants
        return [p for p in self.data_params if p not in consts]

    def positional(self, columns):
        """The loss's positional arguments: the column arrays with the constants in their places."""
        consts = self.constants
        if not consts:
            return list(columns)
        it = iter(columns)
        return [consts[p] if p in consts else next(it) for p in self.data_params]

    def check_kwargs(self, caller):
        """TypeError for a keyword the loss does not take: a misspelled scoring option (``batchsize``)
        is named as one, with the close match; ValueError for the reserved ones."""
        ps = self.parameters
        names = [p for p, v in ps.items() if (v.default is not v.empty or p in self.data_params[1:-1])
                 and p not in _NOT_FOR_SCORING]
        for k in self.kwargs:
            if k in _NOT_FOR_SCORING:
                raise ValueError(f"{k}= is not a scoring parameter ({_NOT_FOR_SCORING[k]})")
            if k in names:
                continue
            close = difflib.get_close_matches(k, SCORE_OPTIONS, n=1, cutoff=0.75)
            if close:
                raise TypeError(f"{caller}() got an unknown option {k!r} (did you mean {close[0]}=?)")
            close = difflib.get_close_matches(k, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{caller}() got an unknown option {k!r}: neither a scoring option nor a "
                            f"parameter of {self.name}{hint}; {self.name}'s parameters are: {', '.join(names)}")

    def __getstate__(self):
        # the cached signature (a mappingproxy) does not pickle: a Dask worker rebuilds it from the name
        return {"name": self.name, "kwargs": self.kwargs, "label": self.label}

    def __setstate__(self, state):
        self.__init__(**state)

    def call_kwargs(self):
        """The keyword arguments with list-valued class weights etc. as float arrays (hashable-free,
        converted once); the constants (:attr:`constants`) are passed positionally instead."""
        out = {}
        consts = self.constants
        for k, v in self.kwargs.items():
            if k in consts:
                continue
            if isinstance(v, (list, tuple)) and v and all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                          for e in v):
                v = np.asarray(v, dtype=np.float64)
            out[k] = v
        return out


def loss_specs(loss, loss_kwargs, caller="score_parquet"):
    """``loss`` (a name, ``"name:k=v"``, a (name, kwargs) pair, or a list of those) and the shared
    ``loss_kwargs`` -> [LossSpec]; the kwargs are checked against each loss's parameters."""
    pair = isinstance(loss, tuple) and len(loss) == 2 and isinstance(loss[1], dict)
    items = [loss] if isinstance(loss, str) or pair else loss
    if not isinstance(items, (list, tuple)) or not items:
        raise TypeError(f"loss must be a loss name or a list of them, got {type(loss).__name__}")
    shared = dict(loss_kwargs)
    if "loss_weight" in shared:
        shared["weight"] = shared.pop("loss_weight")
    specs = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict):
            name, own, text = item[0], dict(item[1]), None
        elif isinstance(item, str):
            name, own = parse_loss(item)
            text = item
        else:
            raise TypeError(f"loss must be a loss name, 'name:key=value,...' or a (name, kwargs) pair, got "
                            f"{item!r}")
        if "loss_weight" in own:
            own["weight"] = own.pop("loss_weight")
        kwargs = {**shared, **own}
        if text is None:
            text = name + (":" + ",".join(f"{k}={_show(v)}" for k, v in own.items()) if own else "")
        specs.append((name, kwargs, text))
    names = [n for n, _, _ in specs]
    labels = [t if names.count(n) > 1 else n for n, _, t in specs]
    if len(set(labels)) < len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise ValueError(f"loss {dup!r} is given twice")
    out = [LossSpec(n, kw, lab) for (n, kw, _), lab in zip(specs, labels)]
    for s in out:
        s.check_kwargs(caller)
        # array parameters given as files (the head matrix, class weights): loaded once, memory-mapped
        s.kwargs = {k: _load_array(v, k) if _is_array_file(v) else v for k, v in s.kwargs.items()}
    return out


def _arguments(spec, inputs, target):
    """The loss's positional arguments as columns: a column name, or a tuple of names to stack into
    one (n, k) array.  Several input columns are several arguments when the loss takes them
    (``margin_ranking_loss(input1, input2, target)``); for a loss of one input they are stacked into
    one (n, k) input (``input=["p0", "p1", "p2", "p3"]``: four class scores per row)."""
    data = spec.column_params
    if spec.constants and len(inputs) + 1 != len(data):
        raise ValueError(f"{spec.name} takes {len(data) - 1} input column(s) before the target "
                         f"({', '.join(data)}; {', '.join(spec.constants)} given as a parameter); got "
                         f"{len(inputs)}: {', '.join(inputs)}")
    if len(inputs) == 1 and len(data) > 2:
        middle = data[1:-1]
        hint = (" (the loss's own weight: loss_weight=, --param weight=@FILE.npy)" if "weight" in middle else "")
        raise ValueError(f"{spec.name} takes {len(data) - 1} input column(s) before the target "
                         f"({', '.join(data)}); got 1: {inputs[0]}; or give {', '.join(middle)} as a "
                         f"parameter, one array for every row{hint}")
    if len(inputs) == 1:
        return [inputs[0], target]
    if len(inputs) + 1 <= len(data):
        args = [*inputs, target]
        # the target column goes where the loss takes it: gaussian_nll_loss(input, target, var)
        args.insert(data.index(spec.target_param), args.pop())
        return args
    if len(data) == 2:
        return [tuple(inputs), target]
    raise ValueError(f"{spec.name} takes {len(data) - 1} input column(s) before the target "
                     f"({', '.join(data)}); got {len(inputs)}: {', '.join(inputs)}")


# ----------------------------------------------------------------------------------------------
# Group keys: hash aggregation, one state per group
# ----------------------------------------------------------------------------------------------

class _Coded:
    """A key column of one batch as integer codes: ``codes`` (int64, one per row), ``size`` (codes are
    in [0, size)) and ``decode(idx)``, the Python key values of codes ``idx``."""

    def __init__(self, arr, n):
        pa = _pyarrow()
        if pa.types.is_integer(arr.type) and n:
            # integers of a small range: the value less the minimum is the code (no hashing)
            v = _numbers(arr)
            lo, hi = int(v.min()), int(v.max())
            if hi - lo <= 4 * n + 1024:
                self.codes = (v - v.min()).astype(np.int64)     # (in the key's own dtype: uint64 too)
                self.size = hi - lo + 1
                self.decode = lambda idx: (np.asarray(idx, dtype=np.int64) + lo).tolist()
                return
        if getattr(pa.types, "is_string_view", lambda _: False)(arr.type):
            arr = arr.cast(pa.large_string())      # (Arrow's take has no string_view kernel)
        if not pa.types.is_dictionary(arr.type):
            arr = pa.compute.dictionary_encode(arr)
        d = arr.dictionary
        self.codes = _numbers(arr.indices).astype(np.int64, copy=False)
        self.size = len(d)
        self.decode = lambda idx: d.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pylist()


class GroupStates:
    """One mergeable state per group and loss, kept as float64 arrays indexed by group id.

    ``assign`` maps a batch's key columns to group ids (``pyarrow.compute.dictionary_encode`` per key
    column, combined codes for several columns, and a dict from key tuples to ids: the work in Python
    is per distinct key of a batch, not per row); ``add`` folds per-group sums in with TwoSum, as
    :meth:`LossState.merge` does.  Memory: a few arrays of the number of groups.
    """

    def __init__(self, by, specs, types=None):
        self.by = list(by)
        self.specs = list(specs)
        self.types = None
        self.schema_types = types        # the key types of the table of no rows
        self.index = {}                 # key tuple -> group id
        self.keys = []
        cap = 64
        self.rows = np.zeros(cap, dtype=np.int64)
        k = len(self.specs)
        self.total = np.zeros((k, cap))
        self.comp = np.zeros((k, cap))
        self.wsum = np.zeros((k, cap))
        self.count = np.zeros((k, cap), dtype=np.int64)

    def _grow(self, need):
        cap = self.rows.shape[0]
        if need <= cap:
            return
        new = max(need, 2 * cap)
        self.rows = np.concatenate([self.rows, np.zeros(new - cap, dtype=np.int64)])
        for name in ("total", "comp", "wsum", "count"):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros((a.shape[0], new - cap), dtype=a.dtype)], axis=1))

    def assign(self, key_arrays):
        """Key columns of a batch -> (local ids (n,), global ids of the local groups, rows per local group)."""
        if self.types is None:
            self.types = [_key_type(a.type) for a in key_arrays]     # (Polars' string_view keys: plain strings)
        n = len(key_arrays[0])
        coded = [_Coded(a, n) for a in key_arrays]
        if len(coded) == 1:
            local, uniq_codes, n_local = coded[0].codes, None, coded[0].size
        else:
            sizes = [max(c.size, 1) for c in coded]
            combined = np.zeros(n, dtype=np.int64)
            for c, size in zip(coded, sizes):
                combined = combined * size + c.codes
            span = int(np.prod(sizes, dtype=np.float64))
            if span <= 4 * n + 1024:
                seen = np.bincount(combined, minlength=span)
                uniq_codes = np.flatnonzero(seen)
                remap = np.empty(span, dtype=np.int64)
                remap[uniq_codes] = np.arange(len(uniq_codes))
                local = remap[combined]
            else:
                uniq_codes, local = np.unique(combined, return_inverse=True)
            n_local = len(uniq_codes)
        counts = np.bincount(local, minlength=n_local)
        present = np.flatnonzero(counts)
        # the key tuple of each present local group
        if uniq_codes is None:
            tuples = [(v,) for v in coded[0].decode(present)]
        else:
            cols, rest = [], uniq_codes[present]
            for c, size in reversed(list(zip(coded, sizes))):
                cols.append(c.decode(rest % size))
                rest = rest // size
            tuples = list(zip(*reversed(cols)))
        gids = np.full(n_local, -1, dtype=np.int64)
        index = self.index
        for i, t in zip(present.tolist(), tuples):
            g = index.get(t)
            if g is None:
                g = index[t] = len(self.keys)
                self.keys.append(t)
            gids[i] = g
        self._grow(len(self.keys))
        self.rows[gids[present]] += counts[present]
        return local, gids, counts

    def add(self, s, gids, total, wsum, count):
        """Fold per-local-group sums of loss ``s`` into the groups ``gids`` (TwoSum on the totals)."""
        keep = gids >= 0
        g = gids[keep]
        b = np.asarray(total, dtype=np.float64)[keep]
        a = self.total[s, g]
        t = a + b
        bp = t - a
        err = (a - (t - bp)) + (b - bp)
        err[~np.isfinite(t)] = 0.0
        self.total[s, g] = t
        self.comp[s, g] += err
        self.wsum[s, g] += np.asarray(wsum, dtype=np.float64)[keep]
        self.count[s, g] += np.asarray(count, dtype=np.int64)[keep]

    def states(self):
        """{key tuple: (rows, [LossState per loss])}."""
        from .state import LossState
        out = {}
        for g, key in enumerate(self.keys):
            out[key] = (int(self.rows[g]), [LossState(sp.name, float(self.total[s, g]), float(self.comp[s, g]),
                                                      float(self.wsum[s, g]), int(self.count[s, g]))
                                            for s, sp in enumerate(self.specs)])
        return out

    def merge(self, other):
        """Fold another GroupStates of the same keys and losses into this one (e.g. a worker's):
        the same TwoSum as :meth:`LossState.merge`, vectorized over the groups (Python work per
        distinct key is only the key lookup)."""
        if self.types is None:
            self.types = other.types
        m = len(other.keys)
        ids = np.empty(m, dtype=np.int64)
        for j, key in enumerate(other.keys):
            g = self.index.get(key)
            if g is None:
                g = self.index[key] = len(self.keys)
                self.keys.append(key)
            ids[j] = g
        self._grow(len(self.keys))
        self.rows[ids] += other.rows[:m]            # (the ids are distinct: a fancy-indexed += is exact)
        for s in range(len(self.specs)):
            self.add(s, ids, other.total[s, :m], other.wsum[s, :m], other.count[s, :m])
            self.comp[s, ids] += other.comp[s, :m]
        return self

    def table(self, reduction):
        """A pyarrow Table: the key columns, ``rows``, then per loss its value and weight sum
        (``loss`` / ``weight_sum`` for one loss, ``<label>`` / ``<label>.weight_sum`` for several),
        sorted by the keys."""
        pa = _pyarrow()
        keys, g = self.keys, len(self.keys)
        types = self.types or self.schema_types or [pa.null()] * len(self.by)
        cols = {name: pa.array([k[j] for k in keys], type=types[j]) for j, name in enumerate(self.by)}
        cols["rows"] = pa.array(self.rows[:g])
        one = len(self.specs) == 1
        for s, sp in enumerate(self.specs):
            total, wsum = self.total[s, :g], self.wsum[s, :g]
            # LossState.finalize, vectorized: the compensation is added while the total is finite;
            # a mean over a zero weight sum is nan (0/0) or a signed infinity
            value = np.where(np.isfinite(total), total + self.comp[s, :g], total)
            if reduction == "mean":
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = value / wsum
            cols["loss" if one else sp.label] = pa.array(value, type=pa.float64())
            cols["weight_sum" if one else f"{sp.label}.weight_sum"] = pa.array(wsum, type=pa.float64())
        table = pa.table(cols)
        return table.sort_by([(name, "ascending") for name in self.by]) if keys else table


# ----------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------

def _count_is_denominator(spec, kwargs, args):
    """Whether the loss's mean divides by its item count for these arguments, so that the state can be
    derived from the per-item losses (no second kernel pass).  Not so with the loss's own ``weight``
    (class-weighted cross-entropy divides by the summed class weights) or when a target equals
    ``ignore_index`` (those rows leave the denominator)."""
    if kwargs.get("weight") is not None:
        return False
    ps = spec.parameters
    if "ignore_index" not in ps:
        return True
    ii = kwargs.get("ignore_index", ps["ignore_index"].default)
    if ii is None:
        return True
    target = args[1]
    if target.dtype.kind in "iu":
        return not bool(np.any(target == ii))
    return spec.info.items == "class"       # class losses ignore ignore_index for probability targets


def _kept_tokens(spec, kwargs, args, w):
    """For a loss of one item per row with an ``ignore_index`` (``linear_cross_entropy``), without
    sample weights: the rows whose target is not ``ignore_index`` -- the mean's denominator, so that
    the state still comes from the per-row losses (0 for an ignored token) and the head is not
    multiplied a second time.  None where that does not apply."""
    ps = spec.parameters
    if w is not None or spec.info.items != "rows" or "ignore_index" not in ps or kwargs.get("weight") is not None:
        return None
    ii = kwargs.get("ignore_index", ps["ignore_index"].default)
    target = args[1]
    if ii is None or target.dtype.kind not in "iu" or target.ndim != 1:
        return None
    return target != ii


_POSITION = re.compile(r"^(\w+) (.*?) at position (\d+|\((\d+)(?:, \d+)*\))(.*)$", re.DOTALL)


def _located(exc, spec, argcols, batch, weight=None):
    """The loss's error for a batch, re-worded to name the column, the file and the row in the file
    (the kernel reports the position within the batch)."""
    msg = str(exc.args[0]) if exc.args else str(exc)
    m = _POSITION.match(msg)
    if not m:
        return None
    arg, middle, pos, first, rest = m.groups()
    i = int(first) if first is not None else int(pos)
    params = spec.column_params
    col = argcols[params.index(arg)] if arg in params and params.index(arg) < len(argcols) else None
    if arg == "weight" and weight is not None and middle.startswith("(sample weights)"):
        col = weight
    if isinstance(col, tuple):
        inner = [int(x) for x in re.findall(r"\d+", pos)]
        col = col[inner[1]] if len(inner) > 1 and inner[1] < len(col) else ", ".join(col)
    what = f"column {col!r} ({arg})" if col is not None else arg
    text = f"{spec.label}: {what} {middle} in row {batch.file_row(i)} of {batch.where}{rest}"
    new = type(exc)(text)
    return new


def _per_item(spec, kwargs, args, nt):
    return np.asarray(spec.info.function(*spec.positional(args), reduction="none", num_threads=nt, **kwargs))


def _partial(spec, kwargs, args, w, nt):
    from .state import partial
    kw = dict(kwargs)
    if "weight" in kw:
        kw["loss_weight"] = kw.pop("weight")
    return partial(spec.name, *spec.positional(args), weight=w, num_threads=nt, **kw)


def _sample_weights(w, name):
    w = np.asarray(w, dtype=np.float64)
    negative = np.flatnonzero(w < 0)
    if negative.size:
        i = int(negative[0])
        raise ValueError(f"weight (sample weights) must be >= 0, got {float(w[i])} at position {i}")
    return w


def _score_one(spec, s, kwargs, args, w, nt, want_rows, groups, grouping):
    """Score one loss on one batch: returns (batch LossState, per-item losses or None)."""
    from .state import LossState
    n = len(args[0])
    if not want_rows and groups is None:
        return _partial(spec, kwargs, args, w, nt), None
    derivable = (w is None or np.ndim(w) == 1) and _count_is_denominator(spec, kwargs, args)
    kept = None if derivable else _kept_tokens(spec, kwargs, args, w)
    derivable = derivable or kept is not None
    per_item = _per_item(spec, kwargs, args, nt) if (derivable or want_rows) else None
    derivable = derivable and per_item.ndim >= 1 and per_item.shape[0] == n
    derivable = derivable and (kept is None or per_item.ndim == 1)
    if not derivable:
        # a second pass: the kernel's own denominator (class weights, ignore_index)
        state = _partial(spec, kwargs, args, w, nt)
        if groups is not None:
            local, gids, counts = grouping
            order = np.argsort(local, kind="stable")
            bounds = np.concatenate([[0], np.cumsum(counts)])
            tot, den, cnt = (np.zeros(len(counts)) for _ in range(3))
            for j in np.flatnonzero(counts):
                idx = order[bounds[j]:bounds[j + 1]]
                st = _partial(spec, kwargs, [a[idx] for a in args], None if w is None else w[idx], nt)
                tot[j], den[j], cnt[j] = st.total, st.weight_sum, st.count
            groups.add(s, gids, tot, den, cnt)
        return state, per_item
    rep = per_item.size // n if n else 1
    if per_item.ndim > 1:
        row = per_item.reshape(n, -1).sum(axis=1, dtype=np.float64)
    else:
        row = per_item.astype(np.float64, copy=False)
    # the mean's denominator per row: its items, or 1 for "batchmean" (kl_div, distillation_loss)
    from .state import _mean_reduction
    per_row_den = 1.0 if (_mean_reduction(spec.info, dict(kwargs)) == "batchmean" and per_item.ndim > 1) else rep
    if kept is not None:             # ignored tokens leave the denominator (their loss is 0)
        den_rows = kept.astype(np.float64)
        den = float(np.sum(den_rows))
    elif w is not None:
        w = _sample_weights(w, "weight")
        row = row * w
        den_rows = w * per_row_den
        den = float(np.sum(den_rows))
    else:
        den_rows = None
        den = float(n * per_row_den)
    state = LossState(spec.name, float(np.sum(row)), 0.0, den, per_item.size)
    if groups is not None:
        local, gids, counts = grouping
        tot = np.bincount(local, weights=row, minlength=len(counts))
        dsum = (np.bincount(local, weights=den_rows, minlength=len(counts)) if den_rows is not None
                else counts * float(per_row_den))
        groups.add(s, gids, tot, dsum, counts * rep)
    return state, per_item


def _stacked(cols, names):
    return np.column_stack([cols[c] for c in names])


def _score_batches(batches, specs, *, inputs, target, weight=None, by=(), key=(), num_threads=1,
                   writer=None, progress=None, total_rows=0, key_types=None):
    """The scoring engine: fold batches into one state per loss (and per group).

    Parameters: ``batches``, an iterable of :class:`Batch` (``cols``: numeric columns as ndarrays,
    group/key columns as Arrow arrays; :func:`_arrow_batch` makes one from a pyarrow RecordBatch);
    ``specs``, a list of :class:`LossSpec` (:func:`loss_specs`); ``inputs`` (list of column names)
    and ``target``, the loss's data columns (see :func:`_arguments`); ``weight``, the sample-weight
    column or None; ``by``, the group columns (empty: no groups); ``key``, the columns passed to
    ``writer`` (a :class:`PerRowWriter` or None); ``num_threads``, kernel threads; ``progress``,
    ``progress(rows_read, total_rows)`` after each batch; ``key_types``, the Arrow types of the ``by``
    columns for a groups table of no rows (optional).

    Returns ``(states, groups, rows)``: ``states`` a list of :class:`LossState` (one per spec, merged
    in batch order), ``groups`` a :class:`GroupStates` (None without ``by``; ``.states()`` gives
    {key tuple: (rows, [LossState per spec])}, ``.merge(other)`` folds another in, ``.table()`` the
    result table), ``rows`` the number of rows scored.  Each batch's columns are converted once and
    every loss is called on them; with ``by`` or a writer, one ``reduction="none"`` pass per loss
    gives the per-row values and the states (a second pass only where the mean's denominator is not
    the item count: the loss's own ``weight``, labels equal to ``ignore_index``).
    """
    from .state import LossState
    groups = GroupStates(by, specs, key_types) if by else None
    states = [LossState.empty(sp.name) for sp in specs]
    argcols = [_arguments(sp, inputs, target) for sp in specs]
    kwargs = [dict(sp.call_kwargs()) for sp in specs]
    rows = read = 0
    for batch in batches:
        read += batch.n_read
        cols = batch.cols
        n = len(cols[target])
        if n:
            stacks = {}
            w = cols[weight] if weight is not None else None
            grouping = groups.assign([cols[c] for c in by]) if groups is not None else None
            per_rows = []
            for s, sp in enumerate(specs):
                args = []
                for c in argcols[s]:
                    if isinstance(c, tuple):
                        if c not in stacks:
                            stacks[c] = _stacked(cols, c)
                        args.append(stacks[c])
                    else:
                        args.append(cols[c])
                try:
                    st, per_item = _score_one(sp, s, kwargs[s], args, w, num_threads, writer is not None,
                                              groups, grouping)
                except (IndexError, ValueError) as exc:
                    located = _located(exc, sp, argcols[s], batch, weight)
                    if located is None:
                        raise
                    raise located from None
                states[s] = states[s].merge(st)
                per_rows.append(per_item)
            if writer is not None:
                writer.write(per_rows, [cols[c] for c in key])
            rows += n
        if progress is not None:
            progress(read, total_rows)
    return states, groups, rows


def _is_parquet(path):
    p = os.fspath(path)
    return os.path.isdir(p) or not p.endswith(NUMPY_SUFFIXES)


def _names(value, what):
    """A column name or a list of them -> list (empty for None); TypeError naming the argument."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(c, str) for c in value):
        if len(set(value)) < len(value):
            raise ValueError(f"{what} names a column twice: {list(value)}")
        return list(value)
    raise TypeError(f"{what} must be a column name or a list of column names, got {type(value).__name__}")


def _check_arguments(input, target, per_row, progress):
    """Types of the scoring arguments, each named in its error (before any file is opened)."""
    if not isinstance(input, str) and not (isinstance(input, (list, tuple)) and input
                                           and all(isinstance(c, str) for c in input)):
        raise TypeError(f"input must be a column name or a list of column names, got {type(input).__name__}")
    if not isinstance(target, str):
        raise TypeError(f"target must be a column name (str), got {type(target).__name__}")
    if per_row is not None and not isinstance(per_row, (str, os.PathLike)):
        raise TypeError(f"per_row must be None or an output path, got {type(per_row).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(rows_read, total_rows), got "
                        f"{type(progress).__name__}")


def _class_weights(weight):
    """``weight`` given as numbers (a list or an array): the loss's own class weights, not a column."""
    return (isinstance(weight, np.ndarray) or (isinstance(weight, (list, tuple)) and weight
                                               and all(isinstance(v, (int, float, np.number))
                                                       and not isinstance(v, bool) for v in weight)))


def _score(make_source, caller, loss, input, target, weight, per_row, key, by, batch_size, nulls,
           num_threads, reduction, progress, loss_kwargs):
    """What score_file and score_table share: check the arguments, open the source, run the engine,
    write the outputs, build the ScoreResult."""
    from ._threads import get_num_threads
    from ._validate import check_choice
    check_choice(reduction, "reduction", ("mean", "sum"))
    _check_arguments(input, target, per_row, progress)
    if _class_weights(weight) or isinstance(weight, os.PathLike):   # (a path: a .npy file of them)
        if "loss_weight" in loss_kwargs:
            raise ValueError("weight= is given as numbers (the loss's own weights) and loss_weight= too; "
                             "give one")
        loss_kwargs = dict(loss_kwargs, loss_weight=weight)
        weight = None
    elif weight is not None and not isinstance(weight, str):
        raise TypeError(f"weight must be a column name (str), a list of class weights or None, got "
                        f"{type(weight).__name__}")
    specs = loss_specs(loss, loss_kwargs, caller)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    policy = _Nulls(nulls)
    inputs = _names(input, "input")
    keys = _names(key, "key")
    groups_by = _names(by, "by")
    if keys and per_row is None:
        raise ValueError("key= names the column passed through to the per_row output; give per_row= too")
    for sp in specs:
        _arguments(sp, inputs, target)          # a wrong number of input columns, before reading
    numeric = list(dict.fromkeys(c for c in (*inputs, target, weight) if c is not None))
    for c in groups_by:
        if c in numeric:
            raise ValueError(f"group column {c!r} is also a loss column")
    columns = list(dict.fromkeys(numeric + keys + groups_by))
    src = make_source(columns, numeric, batch_size, policy, groups_by)
    try:
        if per_row is not None:
            for p in getattr(src, "paths", []):
                if os.path.abspath(p) == os.path.abspath(os.fspath(per_row)):
                    raise ValueError(f"per_row output {per_row} is one of the inputs")
        if num_threads is None:     # leave a core to pyarrow's decoding, which runs alongside (prefetched)
            num_threads = max(1, get_num_threads() - 1)
        labels = ["loss"] if len(specs) == 1 else [sp.label for sp in specs]
        writer = PerRowWriter(per_row, keys, labels) if per_row is not None else None
        started = time.perf_counter()
        batches = prefetched(src.batches())
        try:
            states, groups, rows = _score_batches(batches, specs, inputs=inputs,
                                                  target=target, weight=weight, by=groups_by, key=keys,
                                                  num_threads=num_threads, writer=writer, progress=progress,
                                                  total_rows=src.total_rows,
                                                  key_types=[_key_type(src.column_type(c)) for c in groups_by])
            if writer is not None:
                writer.commit()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            batches.close()     # stop and join the reader thread here, not whenever the generator is collected
    finally:
        if hasattr(src, "close"):
            src.close()
    first = states[0]
    return ScoreResult(loss=float(first.finalize(reduction)), reduction=reduction, rows=rows,
                       skipped=policy.skipped, weight_sum=float(first.weight_sum),
                       seconds=time.perf_counter() - started, state=first,
                       per_row=None if per_row is None else os.fspath(per_row), num_threads=num_threads,
                       losses={sp.label: float(st.finalize(reduction)) for sp, st in zip(specs, states)},
                       states={sp.label: st for sp, st in zip(specs, states)},
                       groups=None if groups is None else groups.table(reduction),
                       group_states=None if groups is None else {
                           k: (r, dict(zip((sp.label for sp in specs), sts)))
                           for k, (r, sts) in groups.states().items()})


def score_file(paths: StrPath | Sequence[StrPath], loss: str | Sequence[str | tuple[str, dict[str, Any]]],
               input: str | Sequence[str], target: str, weight: str | Sequence[float] | None = None,
               per_row: StrPath | None = None, key: str | Sequence[str] | None = None,
               by: str | Sequence[str] | None = None,
               batch_size: int = 65536, nulls: str = "error", num_threads: int | None = None,
               reduction: str = "mean", progress: Callable[[int, int], object] | None = None,
               **loss_kwargs: Any) -> ScoreResult:
    """Score a loss over Parquet files (or directories of them) or ``.npy`` / ``.npz`` files.

    The arguments, result and guarantees are those of :func:`score_parquet`; the file kind follows
    the suffix: ``.npy`` and ``.npz`` are NumPy files, anything else Parquet (mixing them is an
    error).  A ``.npz`` archive's arrays are columns by name; a ``.npy`` file is one column named by
    its file stem (memory-mapped), or, for a structured array, one column per field.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        Parquet files or directories of them, or ``.npy`` / ``.npz`` files.
    loss : str or list
        A fastloss loss name, e.g. ``"cross_entropy"``, or several (see :func:`score_parquet`).
    input : str or list of str
        Column(s) passed to the loss as its first argument(s).
    target : str
        Column passed as the next argument.
    weight : str or list of float, optional
        Column of per-row sample weights (or the loss's class weights, given as numbers).
    per_row : str or os.PathLike, optional
        Parquet file to write each row's loss to.
    key : str or list of str, optional
        Column(s) passed through to ``per_row`` (default: a ``row`` index).
    by : str or list of str, optional
        Group column(s): one state per group.
    batch_size : int, optional
        Rows per batch; default 65536.
    nulls : {"error", "skip"}, optional
        What rows with nulls do; default ``"error"``.
    num_threads : int or None, optional
        Kernel threads per batch; None: the library default less one (at least 1).
    reduction : {"mean", "sum"}, optional
        Default ``"mean"``.
    progress : callable, optional
        Called as ``progress(rows_read, total_rows)`` after each batch.
    **loss_kwargs
        The loss's own parameters; its ``weight=`` is passed as ``loss_weight=``.

    Returns
    -------
    ScoreResult

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> pred, y = rng.standard_normal(10_000), rng.standard_normal(10_000)
    >>> np.savez("preds.npz", pred=pred, y=y)
    >>> res = fl.score_file("preds.npz", "huber_loss", "pred", "y", batch_size=4096, delta=0.5)
    >>> d = np.abs(pred - y)
    >>> ref = np.mean(np.where(d < 0.5, d ** 2 / 2, 0.5 * (d - 0.25)))
    >>> res.rows, bool(np.isclose(res.loss, ref, rtol=1e-12, atol=0))
    (10000, True)
    """
    def path_like(p):
        return isinstance(p, (str, os.PathLike))

    if not path_like(paths) and not (isinstance(paths, (list, tuple)) and all(path_like(p) for p in paths)):
        raise TypeError(f"paths must be a path or a list of paths, got {type(paths).__name__}")
    plist = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    kinds = {_is_parquet(p) for p in plist}
    if len(kinds) > 1:
        raise ValueError("mix of Parquet and .npy/.npz inputs; score them separately")
    parquet = kinds == {True}
    if parquet:
        _pyarrow()

    def make_source(columns, numeric, batch_size, policy, keys):
        source = ParquetSource if parquet else NumpySource
        return source(plist, columns, numeric, batch_size, policy, keys)
    return _score(make_source, "score_file", loss, input, target, weight, per_row, key, by, batch_size,
                  nulls, num_threads, reduction, progress, loss_kwargs)


def score_parquet(path_or_paths: StrPath | Sequence[StrPath],
                  loss: str | Sequence[str | tuple[str, dict[str, Any]]], input: str | Sequence[str],
                  target: str, weight: str | Sequence[float] | None = None, per_row: StrPath | None = None,
                  key: str | Sequence[str] | None = None, by: str | Sequence[str] | None = None,
                  batch_size: int = 65536, nulls: str = "error",
                  num_threads: int | None = None, reduction: str = "mean",
                  progress: Callable[[int, int], object] | None = None, **loss_kwargs: Any) -> ScoreResult:
    """Score a loss over the rows of Parquet files, streaming record batches in bounded memory.

    The needed columns are read batch by batch with pyarrow; each batch becomes NumPy arrays
    (views of the Arrow buffers where Arrow allows) and one mergeable :class:`LossState`
    (:func:`fastloss.partial`) per loss (and per group with ``by``), folded into the result in file
    order.  Memory is about one row group plus one batch of each used column (plus a few numbers per
    group), whatever the size of the files, and the value equals the in-memory loss over all rows
    within float64 rounding (reproducibly: the states are merged in file order).  ``fastloss
    score`` is the command-line front end.

    Parameters
    ----------
    path_or_paths : str, os.PathLike or list of them
        A Parquet file, a directory of Parquet files (read recursively; ``key=value`` directories
        are Hive partitions, whose columns can be ``by`` or ``key`` columns), or a list of those.
    loss : str or list
        A fastloss loss name, e.g. ``"cross_entropy"``; ``"name:key=value,..."`` gives the loss its
        own parameters (``"softmax_focal_loss:gamma=2"``), and so does a ``(name, kwargs)`` pair.  A
        list scores several losses in the same read: every batch is converted once and scored once
        per loss; ``res.losses`` and ``res.states`` hold them by label (the name, or the full text
        when a name is given twice), ``res.loss`` is the first.  Losses that compare rows within a
        batch (``batch_hard_triplet_loss``, ``info_nce_loss``, ...) are refused: their value would
        depend on the batching.
    input : str or list of str
        Column name(s) of the prediction.  Numeric columns give (n,) arrays; fixed-size-list
        columns (logit vectors, 4-float boxes) and list columns of one constant length give
        (n, width) arrays.  A list is several predictions for losses that take several
        (``input=["x1", "x2"], target="y"`` calls ``margin_ranking_loss(x1, x2, y)``), and for a
        loss of one input the columns stacked into one (n, k) array
        (``input=["p0", "p1", "p2", "p3"]``: four class scores per row).
    target : str
        Column passed as the loss's next argument.
    weight : str or list of float, optional
        Column of per-row sample weights: the result is :math:`\\sum_i w_i \\ell_i / \\sum_i w_i`, a
        row's weight covering all of the row's items.  Numbers (``weight=[1, 2, 3, 4]``) are the
        loss's own weights (class weights, ...), which can also be passed as ``loss_weight=``.
    per_row : str or os.PathLike, optional
        Output path of a Parquet file with the key column(s) and ``loss`` (one column per loss,
        by label, with several), the loss's ``reduction="none"`` value per row (the mean over the
        row's elements for elementwise losses of vector rows; without the sample weight).  Written
        to a temporary file in the same directory and renamed at the end (with the umask's
        permissions), so a failed run leaves no partial file.  The per-row values and the state
        come from one kernel pass, except where the mean's denominator is not the item count
        (the loss's own ``weight``, labels equal to ``ignore_index`` but for
        ``linear_cross_entropy``): a second pass there.
    key : str or list of str, optional
        Column(s) passed through to the ``per_row`` file (default: a ``row`` index); needs
        ``per_row``.
    by : str or list of str, optional
        Group column(s) -- integers, strings (dictionary-encoded or not) or dates: one mergeable
        state per distinct key, and ``res.groups``, a pyarrow Table of the key columns, ``rows``,
        ``loss`` and ``weight_sum`` (``<label>`` and ``<label>.weight_sum`` per loss with several),
        sorted by the keys; ``res.group_states`` maps each key tuple to (rows, {label: state}).
        A null key follows ``nulls``.
    batch_size : int, optional
        Rows per record batch; default 65536.
    nulls : {"error", "skip"}, optional
        ``"error"`` (default): a ``ValueError`` with the number of null rows; ``"skip"``: drop
        every row with a null in a used column (a null inside a vector counts, and so does a null
        group key) and report the count in ``skipped``.
    num_threads : int or None, optional
        Kernel threads per batch; None (default): the library default less one (at least 1),
        leaving a core to pyarrow, which reads and decodes the next batch meanwhile.
    reduction : {"mean", "sum"}, optional
        ``"mean"`` (default, for every loss, torchvision's box losses included) or ``"sum"``.
    progress : callable, optional
        Called as ``progress(rows_read, total_rows)`` after each batch.
    **loss_kwargs
        The loss's own parameters (``label_smoothing=0.1``, ``eps=1e-7``, ...), given to every
        loss of a list; ``reduction``, ``out`` and ``return_grad`` are refused, and a keyword that
        is neither a scoring option nor a parameter of the loss is a ``TypeError`` (a misspelled
        option, ``batchsize=``, is named as one).  A data argument between the input and the target
        can be given here as one array for every batch: ``linear_cross_entropy``'s head matrix,
        ``loss_weight=W`` (its ``weight``; ``weight=`` stays the sample-weight column).  An array
        parameter can be a ``.npy`` file -- a path object, a string ending in ``.npy`` or
        ``"@file.npy"`` -- loaded once, memory-mapped.

    Returns
    -------
    ScoreResult
        ``loss`` (a float), ``rows``, ``skipped``, ``weight_sum``, ``seconds``, ``rows_per_s``,
        ``state`` (the merged :class:`LossState`), ``per_row``, ``losses`` / ``states`` (per loss),
        ``groups`` (with ``by``); ``to_dict()`` for JSON.

    Raises
    ------
    ValueError
        An unknown or in-batch loss, a ``.npy`` / ``.npz`` path (use :func:`score_file`), nulls
        with ``nulls="error"``, lists of different lengths in one column, a ``per_row`` path that
        is one of the inputs, bad ``batch_size`` / ``reduction``; and whatever the loss raises (an
        invalid label names its column, file and row in the file).
    KeyError
        A column that is not in a file (with the closest name).
    TypeError
        A column that is neither numbers nor a list of numbers, a group column of another type, an
        unknown keyword.
    ImportError
        pyarrow is not installed (``pip install "fastloss[parquet]"``).

    Examples
    --------
    >>> import numpy as np
    >>> import pyarrow as pa
    >>> import pyarrow.parquet as pq
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.standard_normal((1000, 4))
    >>> labels = rng.integers(0, 4, 1000)
    >>> table = pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), 4),
    ...                   "label": labels})
    >>> pq.write_table(table, "preds.parquet", row_group_size=250)
    >>> res = fl.score_parquet("preds.parquet", loss="cross_entropy", input="logits", target="label",
    ...                        batch_size=300)
    >>> ref = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(1000), labels])
    >>> res.rows, res.weight_sum, bool(np.isclose(res.loss, ref, rtol=1e-12, atol=0))
    (1000, 1000.0, True)
    """
    if not isinstance(path_or_paths, (str, os.PathLike, list, tuple)):
        raise TypeError(f"path_or_paths must be a path or a list of paths, got "
                        f"{type(path_or_paths).__name__}")
    plist = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    for p in plist:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"path_or_paths must hold paths, got a {type(p).__name__}")
        if not _is_parquet(p):
            raise ValueError(f"{os.fspath(p)} is a NumPy file; use fastloss.score_file for .npy/.npz input")
    _pyarrow()

    def make_source(columns, numeric, batch_size, policy, keys):
        return ParquetSource(plist, columns, numeric, batch_size, policy, keys)
    return _score(make_source, "score_parquet", loss, input, target, weight, per_row, key, by, batch_size,
                  nulls, num_threads, reduction, progress, loss_kwargs)


def score_table(table: Any, loss: str | Sequence[str | tuple[str, dict[str, Any]]],
                input: str | Sequence[str], target: str, weight: str | Sequence[float] | None = None,
                per_row: StrPath | None = None, key: str | Sequence[str] | None = None,
                by: str | Sequence[str] | None = None, batch_size: int = 65536, nulls: str = "error",
                num_threads: int | None = None, reduction: str = "mean",
                progress: Callable[[int, int], object] | None = None, **loss_kwargs: Any) -> ScoreResult:
    """Score a loss over an in-memory table: anything that exports the Arrow stream interface.

    ``table`` is read through ``pyarrow.RecordBatchReader.from_stream`` (the Arrow PyCapsule
    interface, ``__arrow_c_stream__``): pyarrow Tables and RecordBatchReaders, pandas >= 2.2 and
    Polars DataFrames, DuckDB relations.  The numeric buffers are not copied (the loss columns
    become NumPy views of them, as from Parquet); record batches are sliced to ``batch_size`` rows.
    Everything else -- the options, the result, the guarantees -- is :func:`score_parquet`'s.

    Parameters
    ----------
    table : object with ``__arrow_c_stream__``
        The table (a RecordBatchReader is read once).
    loss : str or list
        A loss name, ``"name:key=value,..."``, a ``(name, kwargs)`` pair, or a list of those.
    input : str or list of str
        Column(s) of the prediction.
    target : str
        Column of the target.
    weight : str or list of float, optional
        Column of per-row sample weights (or the loss's class weights, given as numbers).
    per_row : str or os.PathLike, optional
        Parquet file to write each row's loss to.
    key : str or list of str, optional
        Column(s) passed through to ``per_row``.
    by : str or list of str, optional
        Group column(s): one state per group, ``res.groups``.
    batch_size : int, optional
        Rows per batch; default 65536.
    nulls : {"error", "skip"}, optional
        What rows with nulls do; default ``"error"``.
    num_threads : int or None, optional
        Kernel threads per batch; None: the library default less one (at least 1).
    reduction : {"mean", "sum"}, optional
        Default ``"mean"``.
    progress : callable, optional
        Called as ``progress(rows_read, 0)`` after each batch (a stream's length is not known).
    **loss_kwargs
        The loss's own parameters.

    Returns
    -------
    ScoreResult

    Examples
    --------
    >>> import numpy as np
    >>> import pyarrow as pa
    >>> import fastloss as fl
    >>> t = pa.table({"pred": [0.5, 1.5, 2.0, 4.0], "y": [1.0, 1.0, 2.0, 2.0], "g": ["a", "a", "b", "b"]})
    >>> res = fl.score_table(t, "mse_loss", "pred", "y", by="g")
    >>> res.loss
    1.125
    >>> res.groups.column("loss").to_pylist()
    [0.25, 2.0]
    """
    pa = _pyarrow()

    def make_source(columns, numeric, batch_size, policy, keys):
        return TableSource(table, columns, numeric, batch_size, policy, keys)
    if not isinstance(table, pa.RecordBatchReader) and not hasattr(table, "__arrow_c_stream__"):
        raise TypeError(f"table must export the Arrow stream interface (__arrow_c_stream__: a pyarrow "
                        f"Table, a pandas >= 2.2 or Polars DataFrame, ...), got {type(table).__name__}")
    return _score(make_source, "score_table", loss, input, target, weight, per_row, key, by, batch_size,
                  nulls, num_threads, reduction, progress, loss_kwargs)
