"""Scoring files: a loss over millions of stored predictions, in memory bounded by the batch size.

``score_parquet`` streams record batches with pyarrow (``ParquetFile.iter_batches(columns=...)``),
turns the needed columns into NumPy arrays and folds one mergeable ``LossState`` per batch
(``fastloss.partial``) into the result.  ``score_file`` does the same for ``.npy`` / ``.npz`` input
(and dispatches Parquet paths to the same engine); ``fastloss score`` is its command line.

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
import os
import queue
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

__all__ = ["score_parquet", "score_file", "ScoreResult"]

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
        return {"loss": self.loss, "reduction": self.reduction, "rows": self.rows, "skipped": self.skipped,
                "weight_sum": self.weight_sum, "seconds": self.seconds, "rows_per_s": self.rows_per_s,
                "per_row": self.per_row, "num_threads": self.num_threads}


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
# Sources: each yields batches as {column: ndarray} after the null policy
# ----------------------------------------------------------------------------------------------

def _suggest(name, columns):
    close = difflib.get_close_matches(name, columns, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _missing(name, columns, source):
    return KeyError(f"column {name!r} not found in {source}{_suggest(name, columns)}; "
                    f"columns are: {', '.join(columns)}")


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


class ParquetSource:
    """Record batches of the needed columns of one or more Parquet files (or directories of them)."""

    def __init__(self, paths, columns, numeric, batch_size, nulls):
        pa = _pyarrow()
        self.pq = pa.parquet
        self.paths = _expand(paths)
        self.columns, self.numeric = columns, numeric
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
            for c in self.columns:
                if schema.get_field_index(c) < 0:
                    raise _missing(c, schema.names, p)
                if c in self.numeric:
                    check_column_type(c, schema.field(c).type, p)
            self.files.append(pf)
        self.total_rows = sum(pf.metadata.num_rows for pf in self.files)

    def _count_nulls(self, pf, name):
        return sum(int(m.sum()) for b in pf.iter_batches(batch_size=self.batch_size, columns=[name])
                   if (m := null_rows(b.column(0))) is not None)

    def batches(self):
        """Yields (n_rows_read, {column: ndarray for numeric columns, Arrow array for the others})."""
        for path, pf in zip(self.paths, self.files):
            for batch in pf.iter_batches(batch_size=self.batch_size, columns=self.columns):
                n = batch.num_rows
                cols = {c: batch.column(c) for c in self.columns}
                keep = self.nulls.keep_mask({c: null_rows(cols[c]) for c in self.numeric},
                                            lambda name, pf=pf: self._count_nulls(pf, name), path)
                if keep is not None:
                    cols = {c: a.filter(keep) for c, a in cols.items()}
                yield n, {c: column_array(a, c) if c in self.numeric else a for c, a in cols.items()}


class NumpySource:
    """Batches of rows of ``.npy`` files (memory-mapped) or ``.npz`` archives (named arrays).

    A ``.npz`` archive's arrays are columns by name; a ``.npy`` file is one column named by its file
    stem, or, for a structured array, one column per field.  All columns must have the same length.
    """

    def __init__(self, paths, columns, numeric, batch_size, nulls):
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
        source = ", ".join(self.paths)
        self.arrays = {}
        for c in self.columns:
            if c not in found:
                raise _missing(c, list(found), source)
            holder, key = found[c]
            a = holder[key] if key is not None else holder
            if a.dtype.kind not in "biuf" or a.ndim == 0:
                raise TypeError(f"column {c!r} of {source} has dtype {a.dtype} and shape {a.shape}; "
                                "expected an array of numbers with rows along axis 0")
            self.arrays[c] = a
        lengths = {c: len(a) for c, a in self.arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns have different numbers of rows: {lengths}")
        self.total_rows = next(iter(lengths.values()), 0)

    def batches(self):
        for start in range(0, self.total_rows, self.batch_size):
            cols = {c: a[start:start + self.batch_size] for c, a in self.arrays.items()}
            n = len(next(iter(cols.values())))
            # NumPy has no nulls: NaN is a value and propagates (SPEC §4), so the null policy has
            # nothing to drop here.
            yield n, cols

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
    """A path, a directory (its *.parquet files, sorted) or a list of those -> list of file paths."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            inner = sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(PARQUET_SUFFIXES))
            if not inner:
                raise FileNotFoundError(f"no Parquet files in directory {p}")
            out.extend(inner)
        elif not os.path.exists(p):
            raise FileNotFoundError(f"no such file: {p}")
        else:
            out.append(p)
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
# Per-row output
# ----------------------------------------------------------------------------------------------

class PerRowWriter:
    """Per-row losses (and the key column) written batch by batch to ``path`` via a temporary file.

    The temporary file lives in the destination's directory (so the final ``os.replace`` is an
    atomic rename on the same file system); ``abort()`` removes it.
    """

    def __init__(self, path, key_name):
        self.pa = _pyarrow()
        self.path = os.fspath(path)
        self.key_name = key_name
        d = os.path.dirname(os.path.abspath(self.path))
        fd, self.tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(self.path) + ".", suffix=".tmp")
        os.close(fd)
        self.writer = None
        self.row = 0

    def write(self, losses, key):
        pa = self.pa
        losses = np.asarray(losses)
        if losses.ndim > 1:     # elementwise losses over vector rows: the row's mean
            losses = losses.reshape(len(losses), -1).mean(axis=1)
        if key is None:
            key = pa.array(np.arange(self.row, self.row + len(losses), dtype=np.int64))
        self.row += len(losses)
        table = pa.Table.from_arrays([key, pa.array(losses)], names=[self.key_name, "loss"])
        if self.writer is None:
            self.writer = pa.parquet.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table)

    def commit(self):
        if self.writer is None:   # no rows at all: still write a valid, empty file
            pa = self.pa
            self.write(np.empty(0, dtype=np.float64), pa.array([], type=pa.int64()) if self.key_name == "row"
                       else None)
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


# ----------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------

def _is_parquet(path):
    p = os.fspath(path)
    return os.path.isdir(p) or not p.endswith(NUMPY_SUFFIXES)


def _check_arguments(paths, input, target, weight, per_row, key, progress):
    """Types of score_file's arguments, each named in its error (before any file is opened)."""
    def path_like(p):
        return isinstance(p, (str, os.PathLike))

    if not path_like(paths) and not (isinstance(paths, (list, tuple)) and all(path_like(p) for p in paths)):
        raise TypeError(f"paths must be a path or a list of paths, got {type(paths).__name__}")
    if not isinstance(input, str) and not (isinstance(input, (list, tuple)) and input
                                           and all(isinstance(c, str) for c in input)):
        raise TypeError(f"input must be a column name or a list of column names, got {type(input).__name__}")
    for name, value in (("target", target), ("weight", weight), ("key", key)):
        if not isinstance(value, str) and (value is not None or name == "target"):
            raise TypeError(f"{name} must be a column name (str){'' if name == 'target' else ' or None'}, "
                            f"got {type(value).__name__}")
    if per_row is not None and not path_like(per_row):
        raise TypeError(f"per_row must be None or an output path, got {type(per_row).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(rows_read, total_rows), got "
                        f"{type(progress).__name__}")


def score_file(paths: StrPath | Sequence[StrPath], loss: str, input: str | Sequence[str], target: str,
               weight: str | None = None, per_row: StrPath | None = None, key: str | None = None,
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
    loss : str
        A fastloss loss name, e.g. ``"cross_entropy"``.
    input : str or list of str
        Column(s) passed to the loss as its first argument(s).
    target : str
        Column passed as the next argument.
    weight : str, optional
        Column of per-row sample weights.
    per_row : str or os.PathLike, optional
        Parquet file to write each row's loss to.
    key : str, optional
        Column passed through to ``per_row`` (default: a ``row`` index).
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
    from ._threads import get_num_threads
    from .state import LossState, partial
    from ._validate import check_choice
    fn = _loss_function(loss)
    check_choice(reduction, "reduction", ("mean", "sum"))
    _check_arguments(paths, input, target, weight, per_row, key, progress)
    for bad in ("reduction", "out", "return_grad"):
        if bad in loss_kwargs:
            hint = " (pass reduction='mean' or 'sum' to the scoring call)" if bad == "reduction" else ""
            raise ValueError(f"{bad}= is not a scoring parameter{hint}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    policy = _Nulls(nulls)
    plist = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    kinds = {_is_parquet(p) for p in plist}
    if len(kinds) > 1:
        raise ValueError("mix of Parquet and .npy/.npz inputs; score them separately")
    if key is not None and per_row is None:
        raise ValueError("key= names the column passed through to the per_row output; give per_row= too")
    inputs = [input] if isinstance(input, str) else list(input)
    numeric = list(dict.fromkeys(c for c in (*inputs, target, weight) if c is not None))
    columns = list(dict.fromkeys(numeric + ([key] if key is not None else [])))
    source = ParquetSource if kinds == {True} else NumpySource
    src = source(plist, columns, numeric, batch_size, policy)
    if per_row is not None:
        _pyarrow()
        for p in getattr(src, "paths", []):
            if os.path.abspath(p) == os.path.abspath(os.fspath(per_row)):
                raise ValueError(f"per_row output {per_row} is one of the inputs")
    # The loss's own weight= (class weights, per-element weights) travels as loss_weight= (partial's
    # name for it: weight= is the per-row sample weight column here).
    if num_threads is None:     # leave a core to pyarrow's decoding, which runs alongside (prefetched)
        num_threads = max(1, get_num_threads() - 1)
    fn_kwargs = dict(loss_kwargs, num_threads=num_threads)
    if "loss_weight" in fn_kwargs:
        fn_kwargs["weight"] = fn_kwargs.pop("loss_weight")
    writer = PerRowWriter(per_row, key if key is not None else "row") if per_row is not None else None
    started = time.perf_counter()
    state = LossState.empty(loss)
    rows = read = 0
    try:
        for n_read, cols in prefetched(src.batches()):
            read += n_read
            args = [cols[c] for c in (*inputs, target)]
            n = len(args[0])
            if n:
                w = cols[weight] if weight is not None else None
                state = state.merge(partial(loss, *args, weight=w, num_threads=num_threads, **loss_kwargs))
                if writer is not None:     # a second kernel pass, for the per-row values
                    writer.write(fn(*args, reduction="none", **fn_kwargs),
                                 cols[key] if key is not None else None)
                rows += n
            if progress is not None:
                progress(read, src.total_rows)
        if writer is not None:
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if hasattr(src, "close"):
            src.close()
    return ScoreResult(loss=float(state.finalize(reduction)), reduction=reduction, rows=rows,
                       skipped=policy.skipped, weight_sum=float(state.weight_sum),
                       seconds=time.perf_counter() - started, state=state,
                       per_row=None if per_row is None else os.fspath(per_row), num_threads=num_threads)


def score_parquet(path_or_paths: StrPath | Sequence[StrPath], loss: str, input: str | Sequence[str],
                  target: str, weight: str | None = None, per_row: StrPath | None = None,
                  key: str | None = None, batch_size: int = 65536, nulls: str = "error",
                  num_threads: int | None = None, reduction: str = "mean",
                  progress: Callable[[int, int], object] | None = None, **loss_kwargs: Any) -> ScoreResult:
    """Score a loss over the rows of Parquet files, streaming record batches in bounded memory.

    The needed columns are read batch by batch with pyarrow; each batch becomes NumPy arrays
    (views of the Arrow buffers where Arrow allows) and one mergeable :class:`LossState`
    (:func:`fastloss.partial`), folded into the result in file order.  Memory is about one row
    group plus one batch of each used column, whatever the size of the files, and the value equals
    the in-memory loss over all rows within float64 rounding (reproducibly: the states are merged in
    file order).  ``fastloss score`` is the command-line front end.

    Parameters
    ----------
    path_or_paths : str, os.PathLike or list of them
        A Parquet file, a directory of ``*.parquet`` files, or a list of those.
    loss : str
        A fastloss loss name, e.g. ``"cross_entropy"``.  Losses that compare rows within a batch
        (``batch_hard_triplet_loss``, ``info_nce_loss``, ...) are refused: their value would
        depend on the batching.
    input : str or list of str
        Column name(s) passed to the loss as its first argument(s); a list for losses with several
        predictions (``input=["x1", "x2"], target="y"`` calls ``margin_ranking_loss(x1, x2, y)``).
        Numeric columns give (n,) arrays; fixed-size-list columns (logit vectors, 4-float boxes)
        and list columns of one constant length give (n, width) arrays.
    target : str
        Column passed as the loss's next argument.
    weight : str, optional
        Column of per-row sample weights: the result is :math:`\\sum_i w_i \\ell_i / \\sum_i w_i`, a
        row's weight covering all of the row's items.  The loss's own ``weight=`` parameter
        (class weights, ...) is passed as ``loss_weight=``.
    per_row : str or os.PathLike, optional
        Output path of a Parquet file with the key column and ``loss``, the loss's
        ``reduction="none"`` value per row (the mean over the row's elements for elementwise
        losses of vector rows; without the sample weight).  Written to a temporary file in the same
        directory and renamed at the end, so a failed run leaves no partial file.  Costs a second
        kernel pass per batch.
    key : str, optional
        Column passed through to the ``per_row`` file (default: a ``row`` index); needs
        ``per_row``.
    batch_size : int, optional
        Rows per record batch; default 65536.
    nulls : {"error", "skip"}, optional
        ``"error"`` (default): a ``ValueError`` with the number of null rows; ``"skip"``: drop
        every row with a null in a used column (a null inside a vector counts) and report the
        count in ``skipped``.
    num_threads : int or None, optional
        Kernel threads per batch; None (default): the library default less one (at least 1),
        leaving a core to pyarrow, which reads and decodes the next batch meanwhile.
    reduction : {"mean", "sum"}, optional
        ``"mean"`` (default, for every loss, torchvision's box losses included) or ``"sum"``.
    progress : callable, optional
        Called as ``progress(rows_read, total_rows)`` after each batch.
    **loss_kwargs
        The loss's own parameters (``label_smoothing=0.1``, ``eps=1e-7``, ...); ``reduction``,
        ``out`` and ``return_grad`` are refused.

    Returns
    -------
    ScoreResult
        ``loss`` (a float), ``rows``, ``skipped``, ``weight_sum``, ``seconds``, ``rows_per_s``,
        ``state`` (the merged :class:`LossState`), ``per_row``; ``to_dict()`` for JSON.

    Raises
    ------
    ValueError
        An unknown or in-batch loss, a ``.npy`` / ``.npz`` path (use :func:`score_file`), nulls
        with ``nulls="error"``, lists of different lengths in one column, a ``per_row`` path that
        is one of the inputs, bad ``batch_size`` / ``reduction``; and whatever the loss raises.
    KeyError
        A column that is not in a file (with the closest name).
    TypeError
        A column that is neither numbers nor a list of numbers.
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
    return score_file(plist, loss, input, target, weight=weight, per_row=per_row, key=key,
                      batch_size=batch_size, nulls=nulls, num_threads=num_threads, reduction=reduction,
                      progress=progress, **loss_kwargs)
