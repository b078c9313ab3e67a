"""``fastloss score``: summary, --json, --per-row, progress, and every error path (one line, no traceback).

Most cases call the command's ``main`` in this process (fast); one runs ``python -m fastloss score``
as a child to check the dispatch and the exit status end to end.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastloss as fl
from fastloss.score_cli import main
from fl_testing import RTOL64, assert_close_spec

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1200, 5))
    y = rng.integers(0, 5, 1200)
    w = rng.uniform(0.5, 2.0, 1200)
    label_with_null = pa.array(y, mask=np.arange(1200) % 400 == 7)          # 3 nulls
    table = pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 5),
                      "label": pa.array(y), "w": w, "id": pa.array([f"r{i}" for i in range(1200)]),
                      "name": pa.array(["a"] * 1200), "label_n": label_with_null})
    path = tmp_path / "preds.parquet"
    pq.write_table(table, path, row_group_size=500)
    return path, x, y, w


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def ce_ref(x, y, **kw):
    return F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), **kw).item()


def close(got, ref):
    """A number read back from the CLI's JSON / Parquet output against the float64 reference: SPEC §4."""
    if isinstance(ref, torch.Tensor):
        ref = ref.detach().numpy()
    assert_close_spec(got, np.asarray(ref, dtype=np.float64), np.float64, result_type=False)


BASE = ("--loss", "cross_entropy", "--input", "logits", "--target", "label")


def test_summary(capsys, data):
    path, x, y, _ = data
    status, out, err = run(capsys, path, *BASE, "--batch-size", "256")
    assert status == 0 and err == ""                      # stderr is not a terminal: no progress line
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    # printed with 10 significant digits: within half a unit of the 10th digit (+ SPEC §4) of the reference
    printed, ref = float(lines["loss (mean) of cross_entropy"]), ce_ref(x, y)
    assert abs(printed - ref) <= 0.5 * 10.0 ** (np.floor(np.log10(abs(ref))) - 9) + RTOL64 * abs(ref)
    assert lines["rows"] == "1,200" and float(lines["weight sum"]) == 1200.0
    assert float(lines["seconds"]) > 0 and "rows/s" in lines


def test_json_is_valid_and_complete(capsys, data):
    path, x, y, w = data
    status, out, err = run(capsys, path, *BASE, "--weight", "w", "--param", "label_smoothing=0.05", "--json")
    assert status == 0 and err == ""
    rec = json.loads(out)
    per = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none",
                          label_smoothing=0.05).numpy()
    close(rec["loss"], (w * per).sum() / w.sum())
    close(rec["weight_sum"], w.sum())
    assert rec["loss_name"] == "cross_entropy" and rec["reduction"] == "mean"
    assert rec["rows"] == 1200 and rec["skipped"] == 0 and rec["per_row"] is None
    assert rec["seconds"] > 0 and rec["rows_per_s"] > 0


def test_sum_reduction_and_threads(capsys, data):
    path, x, y, _ = data
    status, out, _ = run(capsys, path, *BASE, "--reduction", "sum", "--threads", "1", "--json")
    assert status == 0
    close(json.loads(out)["loss"], ce_ref(x, y, reduction="sum"))


def test_class_weight_param_and_several_inputs(capsys, data, tmp_path):
    path, x, y, _ = data
    status, out, _ = run(capsys, path, *BASE, "--param", "weight=[1, 2, 3, 0.5, 0.25]", "--json")
    assert status == 0
    ref = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), weight=torch.tensor([1, 2, 3, 0.5, 0.25],
                                                                                         dtype=torch.float64))
    close(json.loads(out)["loss"], ref.item())
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "s": np.sign(x[:, 2])}), tmp_path / "r.parquet")
    status, out, _ = run(capsys, tmp_path / "r.parquet", "--loss", "margin_ranking_loss", "--input", "a",
                         "--input", "b", "--target", "s", "--json")
    assert status == 0
    t = [torch.from_numpy(np.ascontiguousarray(v)) for v in (x[:, 0], x[:, 1], np.sign(x[:, 2]))]
    close(json.loads(out)["loss"], F.margin_ranking_loss(*t).item())


def test_per_row_output_with_key(capsys, data, tmp_path):
    path, x, y, _ = data
    out_path = tmp_path / "rows.parquet"
    status, out, _ = run(capsys, path, *BASE, "--per-row", out_path, "--key", "id")
    assert status == 0 and f"per-row losses: {out_path}" in out
    table = pq.read_table(out_path)
    assert table.column("id").to_pylist() == [f"r{i}" for i in range(1200)]
    close(table.column("loss").to_numpy(), ce_ref_none(x, y))


def ce_ref_none(x, y):
    return F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none").numpy()


def test_progress_line(capsys, monkeypatch, data):
    path, *_ = data
    status, out, err = run(capsys, path, *BASE, "--progress", "--batch-size", "100")
    assert status == 0
    assert err.count("1,200 / 1,200 rows (100.0%)") == 1 and "rows/s" in err and err.endswith("\n")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)        # a terminal: shown by default ...
    assert "rows/s" in run(capsys, path, *BASE)[2]
    assert run(capsys, path, *BASE, "--json")[2] == ""            # ... but never with --json
    assert run(capsys, path, *BASE, "--no-progress")[2] == ""


def test_nulls_skip(capsys, data):
    path, x, y, _ = data
    status, out, _ = run(capsys, path, "--loss", "cross_entropy", "--input", "logits", "--target", "label_n",
                         "--nulls", "skip", "--json")
    assert status == 0
    rec = json.loads(out)
    keep = np.arange(1200) % 400 != 7
    assert rec["skipped"] == 3 and rec["rows"] == 1197
    close(rec["loss"], ce_ref(x[keep], y[keep]))


def test_npy_input(capsys, tmp_path, data):
    _, x, y, _ = data
    np.save(tmp_path / "logits.npy", x)
    np.save(tmp_path / "label.npy", y)
    status, out, _ = run(capsys, tmp_path / "logits.npy", tmp_path / "label.npy", *BASE, "--json")
    assert status == 0
    close(json.loads(out)["loss"], ce_ref(x, y))


@pytest.mark.parametrize("argv, status, message", [
    (("--loss", "cross_entropi", "--input", "logits", "--target", "label"), 1,
     "unknown loss 'cross_entropi'; did you mean cross_entropy"),
    (("--loss", "cross_entropy", "--input", "logit", "--target", "label"), 1,
     "column 'logit' not found in .*did you mean 'logits'"),
    (("--loss", "cross_entropy", "--input", "logits", "--target", "name"), 1,
     "column 'name' of .* has type string; expected numbers"),
    (("--loss", "cross_entropy", "--input", "logits", "--target", "label_n"), 1,
     "column 'label_n' of .*preds.parquet has 3 null rows; pass nulls='skip' \\(--nulls skip\\)"),
    (("--loss", "cross_entropy", "--input", "label", "--target", "label"), 1,
     "input must be a floating-point array"),
    ((*BASE, "--param", "label_smoothing=2"), 1, "label_smoothing must be <= 1.0, got 2"),
    ((*BASE, "--param", "label_smothing=0.1"), 2,
     "cross_entropy has no parameter 'label_smothing' \\(did you mean 'label_smoothing'\\?\\)"),
    ((*BASE, "--param", "label_smoothing"), 2, "--param expects key=value"),
    ((*BASE, "--param", "reduction=sum"), 2, "--param reduction: use --reduction"),
    ((*BASE, "--batch-size", "0"), 2, "--batch-size: expected a positive integer"),
    ((*BASE, "--nulls", "drop"), 2, "argument --nulls: invalid choice"),
    (("--loss", "cross_entropy", "--input", "logits"), 2, "required: --target"),
    ((*BASE, "--key", "id"), 1, "key= names the column passed through"),
])
def test_errors_are_one_line(capsys, data, argv, status, message):
    path, *_ = data
    got, out, err = run(capsys, path, *argv)
    assert got == status
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("fastloss score: error: "), err
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_file_errors_are_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    for path, message in [(tmp_path / "missing.parquet", "no such file"), (bad, "cannot read .*bad.parquet")]:
        got, out, err = run(capsys, path, *BASE)
        assert got == 1 and out == "" and err.count("\n") == 1, err
        assert re.search(message, err), err


def test_failure_leaves_no_per_row_file(capsys, tmp_path):
    x = np.zeros((100, 3))
    y = np.arange(100) % 4                          # label 3 is out of range for 3 classes
    path = tmp_path / "in.parquet"
    xs = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 3)
    pq.write_table(pa.table({"x": xs, "y": y}), path)
    got, _, err = run(capsys, path, "--loss", "cross_entropy", "--input", "x", "--target", "y",
                      "--per-row", tmp_path / "rows.parquet")
    assert got == 1 and "class index 3" in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["in.parquet"]


def test_python_dash_m_dispatch(data):
    path, x, y, _ = data
    root = Path(fl.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    ok = subprocess.run([sys.executable, "-m", "fastloss", "score", str(path), *BASE, "--json"], env=env, cwd=root,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    close(json.loads(ok.stdout)["loss"], ce_ref(x, y))
    bad = subprocess.run([sys.executable, "-m", "fastloss", "score", str(path), "--loss", "nope",
                          "--input", "a", "--target", "b"],
                         env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("fastloss score: error: unknown loss 'nope'")
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------ issue 20: groups, several losses

@pytest.fixture
def grouped(tmp_path):
    rng = np.random.default_rng(20)
    n = 1500
    x, y = rng.standard_normal((n, 4)), rng.integers(0, 4, n)
    country = rng.choice(["de", "fr", "us"], n)
    nulls = pa.array(country, mask=np.arange(n) % 500 == 11)             # 3 null keys
    path = tmp_path / "g.parquet"
    pq.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 4), "label": y,
                             "country": country, "country_n": nulls, "score": x[:, 0],
                             **{f"p{j}": x[:, j] for j in range(4)}}), path, row_group_size=400)
    return path, x, y, country


GBASE = ("--input", "logits", "--target", "label")


def test_by_json_and_output(capsys, grouped, tmp_path):
    path, x, y, country = grouped
    out_path = tmp_path / "groups.parquet"
    status, out, err = run(capsys, path, "--loss", "cross_entropy", *GBASE, "--by", "country", "--json",
                           "--output", out_path, "--batch-size", "128")
    assert status == 0 and err == ""
    rec = json.loads(out)
    close(rec["loss"], ce_ref(x, y))
    assert [g["country"] for g in rec["groups"]] == ["de", "fr", "us"]
    table = pq.read_table(out_path)
    assert table.column_names == ["country", "rows", "loss", "weight_sum"]
    for g, row in zip(rec["groups"], table.to_pylist()):
        m = country == g["country"]
        assert g == row and g["rows"] == m.sum()
        close(g["loss"], ce_ref(x[m], y[m]))
    assert stat_mode(out_path) == 0o666 & ~current_umask()


def stat_mode(p):
    return os.stat(p).st_mode & 0o777


def current_umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_several_losses_and_text_table(capsys, grouped):
    path, x, y, _ = grouped
    status, out, _ = run(capsys, path, "--loss", "cross_entropy", "--loss", "softmax_focal_loss:gamma=2",
                         "--loss", "multi_margin_loss", *GBASE, "--by", "country")
    assert status == 0
    lines = out.splitlines()
    got = float(next(line for line in lines if line.startswith("loss (mean) of softmax_focal_loss:")).split(": ")[1])
    from fastloss._reference import REFERENCES
    ref = REFERENCES["softmax_focal_loss"].torch_ref(x, y, gamma=2.0).item()
    assert abs(got - ref) <= 1e-9 * abs(ref)
    assert "groups: 3" in out and any(line.split()[:1] == ["de"] for line in lines)
    status, out, _ = run(capsys, path, "--loss", "cross_entropy", "--loss", "multi_margin_loss", *GBASE, "--json")
    rec = json.loads(out)
    assert rec["loss_name"] == ["cross_entropy", "multi_margin_loss"]
    close(rec["losses"]["multi_margin_loss"], REFERENCES["multi_margin_loss"].torch_ref(x, y).item())


def test_repeated_input_stacks_columns(capsys, grouped):
    path, x, y, _ = grouped
    status, out, err = run(capsys, path, "--loss", "cross_entropy", *(a for j in range(4) for a in ("--input", f"p{j}")),
                           "--target", "label", "--json")
    assert status == 0, err
    close(json.loads(out)["loss"], ce_ref(x, y))


def test_bad_label_names_the_row_in_the_file(capsys, tmp_path):
    x = np.zeros((1000, 3))
    y = np.zeros(1000, dtype=np.int64)
    y[500] = 5
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 3), "y": y}), path)
    got, _, err = run(capsys, path, "--loss", "cross_entropy", "--input", "x", "--target", "y", "--batch-size", "100")
    assert got == 1 and err.count("\n") == 1
    assert "column 'y'" in err and "row 500 of" in err and str(path) in err and "position 0" not in err


@pytest.mark.parametrize("argv, status, message", [
    (("--by", "contry"), 1, "column 'contry' not found .*did you mean 'country'"),
    (("--by", "score"), 1, "group column 'score' .* has type double; a group key must be integers, strings or dates"),
    (("--by", "country_n"), 1, "column 'country_n' of .* has 3 null rows; pass nulls='skip'"),
    (("--output", "g.parquet"), 2, "--output writes the per-group table: give --by"),
    (("--loss", "softmax_focal_loss:gama=2"), 2, "softmax_focal_loss has no parameter 'gama' .*'gamma'"),
])
def test_group_errors_are_one_line(capsys, grouped, argv, status, message):
    path, *_ = grouped
    loss = () if "--loss" in argv else ("--loss", "cross_entropy")
    got, out, err = run(capsys, path, *loss, *GBASE, *argv)
    assert got == status and out == ""
    assert err.count("\n") == 1 and err.startswith("fastloss score: error: ") and "Traceback" not in err
    assert re.search(message, err), err


def test_null_keys_skipped(capsys, grouped):
    path, x, y, country = grouped
    status, out, _ = run(capsys, path, "--loss", "cross_entropy", *GBASE, "--by", "country_n", "--nulls", "skip",
                         "--json")
    rec = json.loads(out)
    keep = np.arange(len(y)) % 500 != 11
    assert status == 0 and rec["skipped"] == 3 and rec["rows"] == keep.sum()
    for g in rec["groups"]:
        m = keep & (country == g["country_n"])
        close(g["loss"], ce_ref(x[m], y[m]))
