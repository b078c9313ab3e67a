"""Scoring a language-model head over stored hidden states (issue 19): ``linear_cross_entropy`` in
``score_parquet`` / ``score_file`` / ``fastloss score``.

The hidden states are a fixed-size-list column, the tokens an integer column; the head matrix (and
bias) is the same array for every batch, given as the loss's own ``weight`` (``loss_weight=``, an
array or a ``.npy`` file; ``--param weight=@head.npy`` on the command line).  References: float64
torch, ``F.cross_entropy(F.linear(h, W, b), y)`` over all the rows in memory (SPEC §4).
"""
import json
import re

import numpy as np
import pytest

import fastloss as fl
from fastloss.score_cli import main
from fl_testing import assert_close_spec

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
torch = pytest.importorskip("torch")
F = torch.nn.functional

N, D, V = 700, 12, 45


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def reference(h, W, y, b=None, **kw):
    """Per-token float64 torch losses (reduction='none')."""
    logits = F.linear(t64(h), t64(W), None if b is None else t64(b))
    return F.cross_entropy(logits, torch.from_numpy(np.asarray(y, dtype=np.int64)), reduction="none", **kw).numpy()


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(19)
    h = rng.standard_normal((N, D))
    W = rng.standard_normal((V, D)) / np.sqrt(D)
    b = rng.standard_normal(V)
    y = rng.integers(0, V, N)
    y[::11] = -100                                    # ignored tokens (padding)
    doc = rng.integers(0, 6, N)
    w = rng.uniform(0.5, 2.0, N)
    table = pa.table({"hidden": pa.FixedSizeListArray.from_arrays(pa.array(h.ravel()), D),
                      "token": y, "doc": doc, "w": w,
                      "hidden32": pa.FixedSizeListArray.from_arrays(pa.array(h.astype(np.float32).ravel()), D)})
    path = tmp_path / "tokens.parquet"
    pq.write_table(table, path, row_group_size=200)
    np.save(tmp_path / "head.npy", W)
    np.save(tmp_path / "bias.npy", b)
    return path, h, W, b, y, doc, w


def test_mean_matches_torch(corpus):
    path, h, W, b, y, *_ = corpus
    ref = reference(h, W, y, b)
    kept = y != -100
    res = fl.score_parquet(path, "linear_cross_entropy", input="hidden", target="token", loss_weight=W,
                           bias=b, batch_size=128)
    assert res.rows == N and res.weight_sum == kept.sum()
    assert_close_spec(res.loss, ref[kept].mean(), np.float64, result_type=False)
    # the numbers spelling of weight= (the loss's own weights) is the same head
    res2 = fl.score_parquet(path, "linear_cross_entropy", input="hidden", target="token", weight=W,
                            bias=b, batch_size=128)
    assert_close_spec(res2.loss, ref[kept].mean(), np.float64, result_type=False)


@pytest.mark.parametrize("spelling", ["str", "path", "at"])
def test_head_from_npy_file(corpus, tmp_path, spelling):
    path, h, W, b, y, *_ = corpus
    f = tmp_path / "head.npy"
    head = {"str": str(f), "path": f, "at": "@" + str(f)}[spelling]
    res = fl.score_parquet(path, "linear_cross_entropy", input="hidden", target="token", loss_weight=head,
                           bias=str(tmp_path / "bias.npy"), batch_size=300)
    ref = reference(h, W, y, b)
    assert_close_spec(res.loss, ref[y != -100].mean(), np.float64, result_type=False)


def test_float32_hidden_and_head(corpus, tmp_path):
    path, h, W, b, y, *_ = corpus
    W32 = W.astype(np.float32)
    np.save(tmp_path / "head32.npy", W32)
    res = fl.score_parquet(path, "linear_cross_entropy", input="hidden32", target="token",
                           loss_weight=tmp_path / "head32.npy", batch_size=256)
    ref = reference(h.astype(np.float32), W32, y)
    assert_close_spec(res.loss, ref[y != -100].mean(), np.float32, reduced=True, result_type=False)


def test_per_row_and_groups(corpus, tmp_path):
    path, h, W, b, y, doc, _ = corpus
    out = tmp_path / "per_token.parquet"
    res = fl.score_parquet(path, "linear_cross_entropy:label_smoothing=0.1", input="hidden", target="token",
                           loss_weight=W, bias=b, per_row=out, by="doc", batch_size=97)
    ref = reference(h, W, y, b, label_smoothing=0.1)
    got = pq.read_table(out).column("loss").to_numpy()
    assert_close_spec(got, ref, np.float64, reduced=False, result_type=False)      # ignored tokens: 0
    kept = y != -100
    assert_close_spec(res.loss, ref[kept].mean(), np.float64, result_type=False)
    g = res.groups.to_pydict()
    assert g["doc"] == sorted(set(doc.tolist()))
    for key, rows, loss, wsum in zip(g["doc"], g["rows"], g["loss"], g["weight_sum"]):
        m = doc == key
        assert rows == m.sum() and wsum == (m & kept).sum()
        assert_close_spec(loss, ref[m & kept].mean(), np.float64, result_type=False)


def test_sample_weight_column_and_head(corpus):
    """weight="w" is the sample-weight column; the head is loss_weight: the two do not collide."""
    path, h, W, b, y, _, w = corpus
    kept = y != -100
    table = pa.table({"hidden": pa.FixedSizeListArray.from_arrays(pa.array(h[kept].ravel()), D),
                      "token": y[kept], "w": w[kept]})
    res = fl.score_table(table, "linear_cross_entropy", input="hidden", target="token", weight="w",
                         loss_weight=W, batch_size=150)
    ref = reference(h[kept], W, y[kept])
    assert_close_spec(res.loss, np.sum(w[kept] * ref) / w[kept].sum(), np.float64, result_type=False)
    assert res.weight_sum == pytest.approx(w[kept].sum(), rel=1e-12)


def test_score_file_npz(corpus, tmp_path):
    _, h, W, b, y, *_ = corpus
    y = np.where(y < 0, 0, y)
    np.savez(tmp_path / "tok.npz", hidden=h, token=y)
    res = fl.score_file(tmp_path / "tok.npz", "linear_cross_entropy", "hidden", "token",
                        loss_weight=str(tmp_path / "head.npy"), batch_size=64)
    assert_close_spec(res.loss, reference(h, W, y).mean(), np.float64, result_type=False)


def test_errors_name_the_argument(corpus, tmp_path):
    path, h, W, *_ = corpus
    common = dict(input="hidden", target="token")
    with pytest.raises(FileNotFoundError, match="weight: no such file: .*nope.npy"):
        fl.score_parquet(path, "linear_cross_entropy", loss_weight=str(tmp_path / "nope.npy"), **common)
    with pytest.raises(ValueError, match=r"weight must be \(V, d\) with hidden's d = 12"):
        fl.score_parquet(path, "linear_cross_entropy", loss_weight=W[:, :5], **common)
    with pytest.raises(ValueError, match="linear_cross_entropy takes 2 input column.*give weight as a parameter"):
        fl.score_parquet(path, "linear_cross_entropy", **common)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    with pytest.raises(ValueError, match="weight: cannot read .*bad.npy"):
        fl.score_parquet(path, "linear_cross_entropy", loss_weight=str(bad), **common)
    y = np.zeros(N, dtype=np.int64)
    y[345] = V
    tab = pa.table({"hidden": pa.FixedSizeListArray.from_arrays(pa.array(h.ravel()), D), "token": y})
    with pytest.raises(IndexError, match=r"column 'token' \(target\) has class index 45 in row 345"):
        fl.score_table(tab, "linear_cross_entropy", loss_weight=W, batch_size=100, **common)


def test_cli_head_from_npy(corpus, tmp_path, capsys):
    path, h, W, b, y, doc, _ = corpus
    out = tmp_path / "rows.parquet"
    rc = main([str(path), "--loss", "linear_cross_entropy", "--input", "hidden", "--target", "token",
               "--param", f"weight=@{tmp_path / 'head.npy'}", "--param", f"bias=@{tmp_path / 'bias.npy'}",
               "--per-row", str(out), "--by", "doc", "--batch-size", "128", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    ref = reference(h, W, y, b)
    kept = y != -100
    assert_close_spec(summary["loss"], ref[kept].mean(), np.float64, result_type=False)
    assert_close_spec(pq.read_table(out).column("loss").to_numpy(), ref, np.float64, reduced=False,
                      result_type=False)
    for row in summary["groups"]:
        m = (doc == row["doc"]) & kept
        assert_close_spec(row["loss"], ref[m].mean(), np.float64, result_type=False)


@pytest.mark.parametrize("param, message", [
    ("weight=@{tmp}/missing.npy", "loss parameter weight: no such file: .*missing.npy"),
    ("weight=@{tmp}/narrow.npy", r"weight must be \(V, d\) with hidden's d = 12, got shape \(45, 3\)"),
])
def test_cli_errors_one_line(corpus, tmp_path, capsys, param, message):
    path, _, W, *_ = corpus
    np.save(tmp_path / "narrow.npy", W[:, :3])
    rc = main([str(path), "--loss", "linear_cross_entropy", "--input", "hidden", "--target", "token",
               "--param", param.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1 and err.startswith("fastloss score: error: ")
    assert re.search(message, err)


def test_cli_without_head_says_how(corpus, capsys):
    path = corpus[0]
    rc = main([str(path), "--loss", "linear_cross_entropy", "--input", "hidden", "--target", "token"])
    err = capsys.readouterr().err
    assert rc != 0 and "--param weight=@FILE.npy" in err and err.count("\n") == 1


def test_per_row_with_ignored_tokens_is_one_pass(corpus, tmp_path, monkeypatch):
    """With per_row / by, ignored tokens (padding) do not cost a second product with the head: the
    state's denominator is the count of the other tokens, taken from the targets."""
    from fastloss import scoring
    path, h, W, b, y, doc, _ = corpus

    def no_second_pass(*args, **kwargs):
        raise AssertionError("second kernel pass")
    monkeypatch.setattr(scoring, "_partial", no_second_pass)
    res = fl.score_parquet(path, "linear_cross_entropy", input="hidden", target="token", loss_weight=W,
                           per_row=tmp_path / "rows.parquet", by="doc", batch_size=100)
    ref = reference(h, W, y)
    kept = y != -100
    assert res.weight_sum == kept.sum()
    assert_close_spec(res.loss, ref[kept].mean(), np.float64, result_type=False)
    for key, loss in zip(res.groups.column("doc").to_pylist(), res.groups.column("loss").to_pylist()):
        assert_close_spec(loss, ref[(doc == key) & kept].mean(), np.float64, result_type=False)
