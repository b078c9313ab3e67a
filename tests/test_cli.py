"""The ``fastloss`` command line: --version, --help, no command, ``config`` (--json, bad arguments), and
``fastloss score`` on CSV input, quoted globs and per-row destinations that cannot be written."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastloss as fl
from fastloss.__main__ import main

INSTALLED = Path(fl.__file__).resolve().parent.parent
COMMANDS = ("bench", "score", "config")


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_child(*argv):
    """``python -m fastloss ...`` in a child interpreter (the real exit status), importing the same
    build as this process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(INSTALLED), os.environ.get("PYTHONPATH"))
                                                      if p))
    return subprocess.run([sys.executable, "-m", "fastloss", *map(str, argv)], env=env, cwd=INSTALLED,
                          capture_output=True, text=True, timeout=300)


def test_version():
    res = run_child("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"fastloss {fl.__version__}"


def test_no_command_prints_usage_and_fails():
    res = run_child()
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("usage: fastloss") and "a command is required" in res.stderr


def test_unknown_command_fails(capsys):
    status, out, err = run(capsys, "benchmark")
    assert status == 2 and out == "" and "unknown command 'benchmark'" in err


def test_help_describes_the_three_commands(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    listed = {line.split()[0] for line in out.split("commands:")[1].split("\n\n")[0].splitlines() if line.strip()}
    assert listed == set(COMMANDS)
    for command in COMMANDS:   # each with a description, not just its name
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(command + " "))
        assert len(line.split()) > 3


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"], ["score", "--help"], ["config", "--help"]])
def test_help_never_points_at_internal_documents(capsys, argv):
    try:
        assert main(argv) == 0
    except SystemExit as exc:     # argparse's --help
        assert exc.code == 0
    out, err = capsys.readouterr()
    text = out + err
    assert "usage:" in text
    for internal in ("SPEC", "WORKLOADS.md", "/work/"):
        assert internal not in text, (argv, internal)


def test_config_text_and_json(capsys):
    status, out, _ = run(capsys, "config")
    assert status == 0 and "isa" in out
    status, out, _ = run(capsys, "config", "--json")
    assert status == 0
    rec = json.loads(out)
    assert rec == json.loads(json.dumps(fl.config())) | {"num_threads": rec["num_threads"]}
    assert rec["isa"] in rec["isa_levels_built"] and rec["fastloss"] == fl.__version__


@pytest.mark.parametrize("argv", [["config", "--bogus"], ["config", "extra"]])
def test_config_rejects_unknown_arguments(argv):
    res = run_child(*argv)
    assert res.returncode == 2 and res.stdout == ""
    assert "unrecognized arguments" in res.stderr and "Traceback" not in res.stderr


# ---------------------------------------------------------------------------- fastloss score

SCORE = ("--loss", "cross_entropy", "--input", "logits", "--target", "label")


def test_score_csv_says_it_is_not_supported(capsys, tmp_path):
    path = tmp_path / "preds.csv"
    path.write_text("logits,label\n0.5,1\n")
    status, out, err = run(capsys, "score", path, *SCORE)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "CSV files are not supported" in err and "Parquet" in err


def _write_parts(tmp_path, rng):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = tmp_path / "data"
    data.mkdir()
    xs, ys = [], []
    for i, n in enumerate((70, 130, 55)):
        x, y = rng.standard_normal((n, 4)), rng.integers(0, 4, n)
        pq.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 4),
                                 "label": pa.array(y)}), data / f"part-{i}.parquet")
        xs.append(x)
        ys.append(y)
    (data / "notes.txt").write_text("not a match")
    return data, np.concatenate(xs), np.concatenate(ys)


def _ce_mean64(x, y):
    """Mean cross-entropy in float64 NumPy (an independent reference)."""
    m = x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - x[np.arange(len(y)), y]))


def test_score_reads_a_quoted_glob(capsys, tmp_path):
    data, x, y = _write_parts(tmp_path, np.random.default_rng(5))
    status, out, err = run(capsys, "score", str(data / "part-*.parquet"), *SCORE, "--json")
    assert status == 0, err
    rec = json.loads(out)
    assert rec["rows"] == len(y) == 255
    np.testing.assert_allclose(rec["loss"], _ce_mean64(x, y), rtol=1e-12)


def test_score_glob_matching_nothing_is_one_line(capsys, tmp_path):
    status, out, err = run(capsys, "score", str(tmp_path / "nothing-*.parquet"), *SCORE)
    assert status == 1 and out == "" and err.count("\n") == 1 and "no files match" in err


def _assert_no_temporary_name(err, tmp_path):
    assert err.count("\n") == 1 and "Traceback" not in err
    assert ".tmp" not in err and "rows.parquet." not in err, err


def test_score_per_row_into_a_missing_directory(capsys, tmp_path):
    data, _, _ = _write_parts(tmp_path, np.random.default_rng(6))
    dest = tmp_path / "missing" / "rows.parquet"
    status, out, err = run(capsys, "score", data / "part-0.parquet", *SCORE, "--per-row", dest)
    assert status == 2 and out == "" and str(dest) in err and "does not exist" in err
    _assert_no_temporary_name(err, tmp_path)


def test_score_per_row_onto_a_directory(capsys, tmp_path):
    data, _, _ = _write_parts(tmp_path, np.random.default_rng(7))
    dest = tmp_path / "rows.parquet"
    dest.mkdir()
    status, out, err = run(capsys, "score", data / "part-0.parquet", *SCORE, "--per-row", dest)
    assert status == 2 and out == "" and "is a directory" in err
    _assert_no_temporary_name(err, tmp_path)
    assert os.listdir(dest) == []


def test_score_failed_rename_names_the_destination_not_the_temporary_file(capsys, tmp_path, monkeypatch):
    """A failure while the output is being put in place (e.g. a full disk): the message names the
    user's file, and no temporary file is left behind."""
    import fastloss.scoring as scoring
    data, _, _ = _write_parts(tmp_path, np.random.default_rng(8))
    dest = tmp_path / "out" / "rows.parquet"
    dest.parent.mkdir()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device", os.fspath(src), None, os.fspath(dst))

    monkeypatch.setattr(scoring.os, "replace", failing_replace)
    status, out, err = run(capsys, "score", data / "part-0.parquet", *SCORE, "--per-row", dest)
    monkeypatch.undo()
    assert status == 1 and out == "" and "No space left on device" in err and str(dest) in err
    _assert_no_temporary_name(err, tmp_path)
    assert os.listdir(dest.parent) == []
