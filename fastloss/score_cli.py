"""``fastloss score``: a loss over Parquet / ``.npy`` / ``.npz`` files, from the command line.

    fastloss score preds.parquet --loss cross_entropy --input logits --target label
    fastloss score 'data/part-*.parquet' --loss mse_loss --input pred --target y --weight w --json
    fastloss score boxes.parquet --loss generalized_box_iou_loss --input pred_box --target gt_box \\
        --per-row losses.parquet --key id --param eps=1e-6
    fastloss score preds.parquet --loss cross_entropy --loss softmax_focal_loss:gamma=2 \\
        --input logits --target label --by country --output groups.parquet
    fastloss score tokens.parquet --loss linear_cross_entropy --input hidden --target token \\
        --param weight=@head.npy --param bias=@head_bias.npy --per-row token_losses.parquet

FILE is a Parquet file, a directory of them (read recursively; key=value directories are Hive
partition columns, usable with --by and --key), a .npy / .npz file, or a quoted glob pattern that
fastloss expands itself (sorted).  CSV is not supported: convert it to Parquet first.
Prints a progress line with rows/s on stderr (when stderr is a terminal, and never with --json), then
a summary (loss, rows, weight sum, seconds, rows/s) on stdout, or one JSON object with --json.
Every user error (missing column, wrong column type, nulls, unknown loss, bad parameter, unreadable
file) is one line on stderr starting with ``fastloss score: error:`` and exit status 2 (argument
errors) or 1 (data errors) -- never a traceback (set FASTLOSS_DEBUG=1 to see one).
"""
import argparse
import glob
import json
import os
import re
import sys
import time

__all__ = ["main"]

PROG = "fastloss score"
# The help text is the module docstring (kept here too: python -OO strips docstrings).
_HELP = __doc__ or ("``fastloss score``: a loss over Parquet / ``.npy`` / ``.npz`` files, from the "
                    "command line.")
CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".csv.bz2", ".csv.zst", ".csv.xz")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but an argument error is one line on stderr (no usage block) and exit status 2."""

    def error(self, message):
        _fail(message, status=2)


class _Failure(Exception):
    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def _fail(message, status=1):
    raise _Failure(message, status)


def _param(text):
    """``key=value`` -> (key, value); the value is a Python literal when it parses as one, else a string."""
    from .scoring import parse_param
    try:
        return parse_param(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--param expects key=value, got {text!r}") from None


def _positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _parser():
    doc = _HELP.replace("``", "")
    p = _OneLineParser(prog=PROG, description=doc.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="\n\n".join(doc.split("\n\n")[1:]))
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="Parquet files (or directories of them), .npy / .npz files, or quoted glob patterns")
    p.add_argument("--loss", required=True, action="append", metavar="NAME[:KEY=VALUE,...]",
                   help="a fastloss loss name, e.g. cross_entropy, with its own parameters after a colon "
                        "(softmax_focal_loss:gamma=2); repeat it to score several losses in one read")
    p.add_argument("--input", required=True, metavar="COL", action="append",
                   help="column of predictions (logits, scores, boxes); repeat it for losses with several "
                        "(margin_ranking_loss: --input x1 --input x2 --target y), or to stack columns into "
                        "one vector per row for a loss of one input (--input p0 --input p1 --input p2)")
    p.add_argument("--target", required=True, metavar="COL", help="column of targets (labels, values, boxes)")
    p.add_argument("--weight", metavar="COL", help="column of per-row sample weights")
    p.add_argument("--per-row", metavar="OUT.parquet", help="write each row's loss (with --key) to this file")
    p.add_argument("--key", metavar="COL", action="append",
                   help="column passed through to --per-row output (default: a row index); repeatable")
    p.add_argument("--by", metavar="COL", action="append",
                   help="group column (integers, strings, dates): the loss per group; repeatable")
    p.add_argument("--output", metavar="GROUPS.parquet",
                   help="with --by: write the per-group table (keys, rows, loss, weight sum) to this file")
    p.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                   help="a loss parameter, e.g. --param label_smoothing=0.1 (repeatable; given to every "
                        "--loss); the loss's own weight: --param 'weight=[1, 2, 0.5]'; @FILE.npy loads an "
                        "array (linear_cross_entropy's head matrix: --param weight=@head.npy)")
    p.add_argument("--reduction", choices=("mean", "sum"), default="mean", help="default: mean")
    p.add_argument("--batch-size", type=_positive, default=65536, metavar="N", help="rows per batch (65536)")
    p.add_argument("--nulls", choices=("error", "skip"), default="error",
                   help="rows with nulls: error (default, with their count) or skip them")
    p.add_argument("--threads", type=_positive, default=None, metavar="N", help="kernel threads")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show the progress line (default: when stderr is a terminal and not --json)")
    return p


class _Progress:
    """A throttled one-line progress display on stderr: rows read / total, percent, rows/s."""

    def __init__(self, stream, interval=0.1):
        self.stream, self.interval = stream, interval
        self.start = time.perf_counter()
        self.last = -1.0
        self.seen = self.shown = None

    def __call__(self, rows, total, final=False):
        self.seen = (rows, total)
        now = time.perf_counter()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        rate = rows / (now - self.start) if now > self.start else 0.0
        pct = f" ({100.0 * rows / total:5.1f}%)" if total else ""
        self.stream.write(f"\r{rows:,} / {total:,} rows{pct}  {_human(rate)} rows/s ")
        self.stream.flush()
        self.shown = self.seen

    def close(self):
        if self.seen is not None:
            if self.shown != self.seen:
                self(*self.seen, final=True)
            self.stream.write("\n")
            self.stream.flush()


def _human(rate):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.2f} {unit}"
    return f"{rate:.0f}"


def _check_params(loss, params, where="--param"):
    """Unknown parameter names of the loss -> a one-line error (before reading any data).  Returns the
    keyword arguments for the scoring call (the loss's own ``weight`` travels as ``loss_weight``)."""
    import difflib
    import inspect
    from .scoring import _loss_function
    fn = _loss_function(loss)
    sig = inspect.signature(fn).parameters
    data = [n for n, prm in sig.items() if prm.default is prm.empty
            and prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD)]
    # a data argument between the input and the target can be a parameter, the same array for every
    # row (linear_cross_entropy's weight: --param weight=@head.npy)
    names = [n for n, prm in sig.items() if prm.default is not prm.empty or n in data[1:-1]]
    reserved = {"reduction": "use --reduction", "num_threads": "use --threads", "out": "not for scoring",
                "return_grad": "not for scoring", "size_average": "deprecated", "reduce": "deprecated"}
    for key in params:
        if key in reserved:
            _fail(f"{where} {key}: {reserved[key]}", status=2)
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            usable = ", ".join(n for n in names if n not in reserved)
            _fail(f"{where} {key}: {loss} has no parameter {key!r}{hint}; its parameters are: {usable}",
                  status=2)
    return {("loss_weight" if k == "weight" else k): v for k, v in params.items()}


def _expand_files(patterns):
    """FILE arguments -> paths: a glob pattern the shell did not expand (it was quoted, or matched
    nothing) is expanded here, sorted; CSV input is refused before anything is read."""
    files = []
    for pattern in patterns:
        if not os.path.exists(pattern) and any(c in pattern for c in "*?["):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                _fail(f"no files match {pattern!r}")
            files.extend(matches)
        else:
            files.append(pattern)
    for f in files:
        if f.lower().endswith(CSV_SUFFIXES):
            _fail(f"{f}: CSV files are not supported; convert them to Parquet (e.g. "
                  "pyarrow.parquet.write_table(pyarrow.csv.read_csv(path), out)) or to .npy", status=2)
    return files


def _check_destination(path, option="--per-row"):
    """An output destination, checked before any data is read (a clear message naming the user's
    path, not the temporary file the output is written to first)."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        _fail(f"{option} {path}: is a directory", status=2)
    if not os.path.isdir(parent):
        _fail(f"{option} {path}: directory {parent} does not exist", status=2)
    if not os.access(parent, os.W_OK | os.X_OK):
        _fail(f"{option} {path}: directory {parent} is not writable", status=2)


def _hide_temporary(message, *outputs):
    """An error message with an output's temporary file name (``.NAME.XXXX.tmp`` in the
    destination's directory, see fastloss.scoring.PerRowWriter) replaced by the destination."""
    for out in outputs:
        if out:
            name = re.escape(os.path.basename(os.fspath(out)))
            message = re.sub(r"[^\s'\"]*\." + name + r"\.[^\s'\"/]*\.tmp", lambda _, o=out: os.fspath(o),
                             message)
    return message


def _losses(args):
    """The --loss options -> [(name, own params)], each checked (with the shared --param) before any
    data is read."""
    from .scoring import parse_loss
    shared = dict(args.param)
    out = []
    for text in args.loss:
        try:
            name, own = parse_loss(text)
        except ValueError as exc:
            _fail(f"--loss {text}: {exc}", status=2)
        both = sorted(set(own) & set(shared))
        if both:
            _fail(f"--loss {text}: parameter {both[0]} is also given with --param; give it once", status=2)
        _check_params(name, shared)
        out.append((name, _check_params(name, own, where=f"--loss {name}:")))
    return out


def _print_groups(table, limit=20):
    """The per-group table, its first ``limit`` rows, as aligned text."""
    rows = table.slice(0, limit).to_pylist()
    names = table.column_names
    cells = [[f"{v:.10g}" if isinstance(v, float) else str(v) for v in (r[c] for c in names)] for r in rows]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(names)]
    print("  ".join(c.rjust(w) for c, w in zip(names, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    if table.num_rows > limit:
        print(f"... {table.num_rows - limit:,} more groups (--output FILE.parquet or --json for all)")


def _run(args):
    from .scoring import score_file, write_table_atomic
    keys = [k for k, _ in args.param]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        _fail(f"--param {repeated[0]} is given {keys.count(repeated[0])} times; give each parameter once",
              status=2)
    losses = _losses(args)
    params = _check_params(losses[0][0], dict(args.param))
    files = _expand_files(args.files)
    if args.per_row is not None:
        _check_destination(args.per_row)
    if args.output is not None:
        if not args.by:
            _fail("--output writes the per-group table: give --by COL too", status=2)
        _check_destination(args.output, "--output")
    show = args.progress if args.progress is not None else (not args.json and sys.stderr.isatty())
    progress = _Progress(sys.stderr) if show else None
    try:
        inputs = args.input[0] if len(args.input) == 1 else args.input
        loss = losses[0][0] if len(losses) == 1 and not losses[0][1] else list(losses)
        result = score_file(files, loss, inputs, args.target, weight=args.weight,
                            per_row=args.per_row, key=args.key, by=args.by, batch_size=args.batch_size,
                            nulls=args.nulls, num_threads=args.threads, reduction=args.reduction,
                            progress=progress, **params)
    finally:
        if progress is not None:
            progress.close()
    if args.output is not None:
        write_table_atomic(result.groups, args.output)
    if args.json:
        print(json.dumps({"loss_name": args.loss[0] if len(args.loss) == 1 else list(args.loss),
                          **result.to_dict(), **({"output": args.output} if args.output else {})}))
    else:
        for label, value in result.losses.items():
            print(f"loss ({args.reduction}) of {label}: {value:.10g}")
        skipped = f" ({result.skipped:,} skipped for nulls)" if result.skipped else ""
        print(f"rows: {result.rows:,}{skipped}")
        for label, state in result.states.items():
            print(f"weight sum{'' if len(result.states) == 1 else ' of ' + label}: {state.weight_sum:.10g}")
        print(f"seconds: {result.seconds:.3f}")
        print(f"rows/s: {result.rows_per_s:,.0f}")
        if result.per_row:
            print(f"per-row losses: {result.per_row}")
        if result.groups is not None:
            print(f"groups: {result.groups.num_rows:,}" + (f" (written to {args.output})" if args.output else ""))
            _print_groups(result.groups)
    return 0


def main(argv=None):
    """Entry point of ``fastloss score``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    per_row = output = None
    try:
        args = _parser().parse_args(argv)
        per_row, output = args.per_row, args.output
        return _run(args)
    except _Failure as exc:
        message, status = str(exc), exc.status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # data, type and I/O errors: one line, never a traceback
        if os.environ.get("FASTLOSS_DEBUG"):
            raise
        message, status = _describe(exc), 1
    message = _hide_temporary(message, per_row, output)
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def _describe(exc):
    """The message of an exception, made for one line (KeyError's repr quotes dropped)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, (ValueError, TypeError, IndexError, KeyError, FileNotFoundError, ImportError)):
        return str(text)
    return f"{type(exc).__name__}: {text}"
