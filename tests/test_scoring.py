"""fastloss.score_parquet / score_file: streaming a loss over Parquet and .npy/.npz files.

References are float64 torch (or the shared float64 torch reference) over ALL rows in memory;
the streamed result must match within 1e-12 relative (SPEC §4), batches being small enough that every
file is several record batches and row groups.
"""
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import fastloss as fl
from fastloss import scoring
from fastloss._reference import REFERENCES
from fl_testing import assert_close_spec

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
torch = pytest.importorskip("torch")
F = torch.nn.functional

def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def fixed_list(a):
    """(n, w) ndarray -> Arrow fixed-size-list array (no copy of the values)."""
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])


def var_list(a):
    """(n, w) ndarray -> Arrow variable-length list array whose rows all have length w."""
    offsets = pa.array(np.arange(0, a.size + 1, a.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(a.reshape(-1)))


def write(path, row_group_size=1000, **cols):
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
    return path


def ce_data(rng, n=5000, C=10, dtype=np.float64):
    return (rng.standard_normal((n, C)) * 3).astype(dtype), rng.integers(0, C, n)


def close(got, ref, dtype=np.float64):
    """A streamed result (a Python float or a column read back) against the in-memory float64 reference:
    SPEC §4 (float64 inputs: 1e-12 relative)."""
    if isinstance(ref, torch.Tensor):
        ref = ref.detach().numpy()
    assert_close_spec(got, np.asarray(ref, dtype=np.float64), dtype, result_type=False)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ------------------------------------------------------------------ values equal the in-memory loss

def test_cross_entropy_fixed_size_list_logits(tmp_path, rng):
    x, y = ce_data(rng)
    path = write(tmp_path / "ce.parquet", logits=fixed_list(x), label=pa.array(y))
    res = fl.score_parquet(path, loss="cross_entropy", input="logits", target="label", batch_size=777)
    close(res.loss, F.cross_entropy(t64(x), torch.from_numpy(y)))
    assert res.rows == 5000 and res.skipped == 0 and res.weight_sum == 5000.0
    assert res.reduction == "mean" and res.seconds > 0 and res.rows_per_s > 0
    summed = fl.score_parquet(path, loss="cross_entropy", input="logits", target="label", batch_size=777,
                              reduction="sum", label_smoothing=0.1)
    close(summed.loss, F.cross_entropy(t64(x), torch.from_numpy(y), reduction="sum", label_smoothing=0.1))


def test_bce_with_logits_numeric_columns(tmp_path, rng):
    x = rng.standard_normal(3000) * 4
    y = (rng.random(3000) > 0.5).astype(np.float64)
    path = write(tmp_path / "bce.parquet", score=x, y=y)
    res = fl.score_parquet(str(path), "binary_cross_entropy_with_logits", "score", "y", batch_size=512)
    close(res.loss, F.binary_cross_entropy_with_logits(t64(x), t64(y)))


def test_mse_variable_length_lists_of_constant_length(tmp_path, rng):
    x, y = rng.standard_normal((2000, 3)), rng.standard_normal((2000, 3))
    path = write(tmp_path / "mse.parquet", pred=var_list(x), y=var_list(y))
    res = fl.score_parquet(path, "mse_loss", "pred", "y", batch_size=300)
    close(res.loss, F.mse_loss(t64(x), t64(y)))


def test_giou_boxes_as_four_float_lists(tmp_path, rng):
    (b1, b2), _ = REFERENCES["generalized_box_iou_loss"].sample(rng, 4 * 3000, np.float64)
    path = write(tmp_path / "boxes.parquet", pred=fixed_list(b1), gt=fixed_list(b2))
    ref = REFERENCES["generalized_box_iou_loss"].torch_ref
    res = fl.score_parquet(path, "generalized_box_iou_loss", "pred", "gt", batch_size=1000)
    close(res.loss, ref(b1, b2, reduction="mean"))
    res = fl.score_parquet(path, "generalized_box_iou_loss", "pred", "gt", batch_size=1000, reduction="sum",
                           eps=1e-6)
    close(res.loss, ref(b1, b2, reduction="sum", eps=1e-6))


def test_float32_columns(tmp_path, rng):
    x, y = ce_data(rng, dtype=np.float32)
    path = write(tmp_path / "ce32.parquet", logits=fixed_list(x), label=pa.array(y.astype(np.int32)))
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", batch_size=1000)
    close(res.loss, F.cross_entropy(t64(x), torch.from_numpy(y)), np.float32)


def test_sample_weights(tmp_path, rng):
    x, y = ce_data(rng, n=3000)
    w = rng.uniform(0, 2, 3000)
    path = write(tmp_path / "w.parquet", logits=fixed_list(x), label=pa.array(y), w=w)
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", weight="w", batch_size=700)
    per = F.cross_entropy(t64(x), torch.from_numpy(y), reduction="none").numpy()
    close(res.loss, (w * per).sum() / w.sum())
    close(res.weight_sum, w.sum())
    summed = fl.score_parquet(path, "cross_entropy", "logits", "label", weight="w", reduction="sum")
    close(summed.loss, (w * per).sum())


def test_sample_weights_cover_a_rows_items(tmp_path, rng):
    x, y = rng.standard_normal((1000, 3)), rng.standard_normal((1000, 3))
    w = rng.uniform(0, 2, 1000)
    path = write(tmp_path / "w.parquet", x=fixed_list(x), y=fixed_list(y), w=w)
    res = fl.score_parquet(path, "mse_loss", "x", "y", weight="w", batch_size=128)
    close(res.loss, (w[:, None] * (x - y) ** 2).sum() / (3 * w.sum()))


def test_class_weights_travel_as_loss_weight(tmp_path, rng):
    x, y = ce_data(rng, n=2000)
    cw = rng.uniform(0.1, 3, 10)
    path = write(tmp_path / "cw.parquet", logits=fixed_list(x), label=pa.array(y))
    out = tmp_path / "rows.parquet"
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", batch_size=300, loss_weight=cw,
                           per_row=out)
    close(res.loss, F.cross_entropy(t64(x), torch.from_numpy(y), weight=t64(cw)))
    close(res.weight_sum, cw[y].sum())
    close(pq.read_table(out).column("loss").to_numpy(),
          F.cross_entropy(t64(x), torch.from_numpy(y), weight=t64(cw), reduction="none"))


def test_several_prediction_columns(tmp_path, rng):
    x1, x2 = rng.standard_normal(1000), rng.standard_normal(1000)
    y = np.where(rng.random(1000) > 0.5, 1.0, -1.0)
    path = write(tmp_path / "rank.parquet", a=x1, b=x2, y=y)
    res = fl.score_parquet(path, "margin_ranking_loss", ["a", "b"], "y", batch_size=300, margin=0.3)
    close(res.loss, F.margin_ranking_loss(t64(x1), t64(x2), t64(y), margin=0.3))


def test_a_target_in_the_middle_of_the_signature(tmp_path, rng):
    """gaussian_nll_loss(input, target, var): input=["mu", "var"] puts the target column between them."""
    mu, y = rng.standard_normal(1000), rng.standard_normal(1000)
    var = rng.uniform(0.1, 2.0, 1000)
    path = write(tmp_path / "gauss.parquet", mu=mu, var=var, y=y)
    out = tmp_path / "rows.parquet"
    res = fl.score_parquet(path, "gaussian_nll_loss", ["mu", "var"], "y", batch_size=300, per_row=out)
    close(res.loss, F.gaussian_nll_loss(t64(mu), t64(y), t64(var)))
    close(pq.read_table(out).column("loss").to_numpy(),
          F.gaussian_nll_loss(t64(mu), t64(y), t64(var), reduction="none"))


def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.parquet", x=pa.array([], pa.float64()), y=pa.array([], pa.float64()))
    res = fl.score_parquet(path, "mse_loss", "x", "y")
    assert res.rows == 0 and res.weight_sum == 0 and np.isnan(res.loss)       # mean over nothing: nan
    assert fl.score_parquet(path, "mse_loss", "x", "y", reduction="sum").loss == 0.0


def test_several_files_and_a_directory(tmp_path, rng):
    x, y = ce_data(rng, n=3000)
    d = tmp_path / "parts"
    d.mkdir()
    for i, s in enumerate([slice(0, 1000), slice(1000, 1100), slice(1100, 3000)]):
        write(d / f"part-{i}.parquet", logits=fixed_list(x[s]), label=pa.array(y[s]))
    ref = F.cross_entropy(t64(x), torch.from_numpy(y))
    close(fl.score_parquet(d, "cross_entropy", "logits", "label", batch_size=256).loss, ref)
    files = sorted(d.iterdir())
    res = fl.score_parquet(files, "cross_entropy", "logits", "label", batch_size=256)
    close(res.loss, ref)
    assert res.rows == 3000


def test_state_merges_with_other_jobs(tmp_path, rng):
    x, y = ce_data(rng, n=2000)
    a = write(tmp_path / "a.parquet", logits=fixed_list(x[:700]), label=pa.array(y[:700]))
    b = write(tmp_path / "b.parquet", logits=fixed_list(x[700:]), label=pa.array(y[700:]))
    sa = fl.score_parquet(a, "cross_entropy", "logits", "label").state
    sb = fl.score_parquet(b, "cross_entropy", "logits", "label").state
    close(sa.merge(sb).finalize("mean"), F.cross_entropy(t64(x), torch.from_numpy(y)))


# ------------------------------------------------------------------ zero copy

def test_columns_are_views_of_the_arrow_buffers(rng):
    x = rng.standard_normal((100, 4))
    fsl = fixed_list(x).slice(10, 50)           # a slice: the view must honour the offset
    got = scoring.column_array(fsl, "x")
    assert got.shape == (50, 4)
    np.testing.assert_array_equal(got, x[10:60])
    assert got.ctypes.data == fsl.values.buffers()[1].address + 10 * 4 * 8
    lst = var_list(x).slice(5)
    got = scoring.column_array(lst, "x")
    np.testing.assert_array_equal(got, x[5:])
    assert got.ctypes.data == lst.values.buffers()[1].address + 5 * 4 * 8
    num = pa.array(x[:, 0].copy()).slice(3)
    got = scoring.column_array(num, "x")
    assert got.ctypes.data == num.buffers()[1].address + 3 * 8
    flags = rng.random(37) > 0.5                      # booleans are bit-packed: one copy, offset honoured
    np.testing.assert_array_equal(scoring.column_array(pa.array(flags).slice(5), "b"), flags[5:])


def test_ragged_lists_are_rejected(tmp_path):
    path = write(tmp_path / "ragged.parquet", x=pa.array([[1.0, 2.0], [3.0, 4.0], [5.0]]),
                 y=pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    msg = r"'x' holds lists of different lengths \(2 in its first row, 1 in row 2"
    with pytest.raises(ValueError, match=msg):
        fl.score_parquet(path, "mse_loss", "x", "y")


# ------------------------------------------------------------------ nulls

def _with_nulls(rng, n=2000):
    x, y = ce_data(rng, n=n)
    null_rows = np.zeros(n, bool)
    null_rows[[3, 999, 1500]] = True
    logits = pa.array([None if null_rows[i] else list(x[i]) for i in range(n)], pa.list_(pa.float64(), 10))
    label_mask = np.zeros(n, bool)
    label_mask[[10, 1500]] = True                               # row 1500: null in both columns
    labels = pa.array(y, mask=label_mask)
    return x, y, logits, labels, null_rows | label_mask


def test_nulls_error_reports_the_count(tmp_path, rng):
    x, y, logits, labels, _ = _with_nulls(rng)
    path = write(tmp_path / "nulls.parquet", logits=logits, label=labels)
    with pytest.raises(ValueError, match=r"column 'logits' of .*nulls.parquet has 3 null rows; pass nulls='skip'"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", batch_size=500)
    with pytest.raises(ValueError, match="nulls must be one of"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", nulls="drop")


def test_nulls_skip_drops_those_rows(tmp_path, rng):
    x, y, logits, labels, bad = _with_nulls(rng)
    path = write(tmp_path / "nulls.parquet", logits=logits, label=labels)
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", batch_size=500, nulls="skip")
    close(res.loss, F.cross_entropy(t64(x[~bad]), torch.from_numpy(y[~bad])))
    assert res.skipped == 4 and res.rows == 2000 - 4


def test_null_element_inside_a_vector_is_a_null_row(tmp_path, rng):
    x, y = rng.standard_normal((50, 2)), rng.standard_normal((50, 2))
    rows = [list(r) for r in x]
    rows[7] = [1.0, None]
    path = write(tmp_path / "inner.parquet", x=pa.array(rows, pa.list_(pa.float64(), 2)), y=fixed_list(y))
    with pytest.raises(ValueError, match="'x' of .*inner.parquet has 1 null row;"):
        fl.score_parquet(path, "mse_loss", "x", "y")
    keep = np.arange(50) != 7
    res = fl.score_parquet(path, "mse_loss", "x", "y", nulls="skip", batch_size=16)
    close(res.loss, F.mse_loss(t64(x[keep]), t64(y[keep])))


# ------------------------------------------------------------------ per-row output

def test_per_row_losses_with_key(tmp_path, rng):
    x, y, logits, labels, bad = _with_nulls(rng)
    ids = pa.array([f"id-{i}" for i in range(len(y))])
    path = write(tmp_path / "in.parquet", logits=logits, label=labels, id=ids)
    out = tmp_path / "out" / "per_row.parquet"
    out.parent.mkdir()
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=out, key="id", batch_size=300,
                           nulls="skip")
    assert res.per_row == str(out)
    table = pq.read_table(out)
    assert table.column_names == ["id", "loss"]
    assert table.column("id").to_pylist() == [f"id-{i}" for i in np.flatnonzero(~bad)]
    ref = F.cross_entropy(t64(x[~bad]), torch.from_numpy(y[~bad]), reduction="none").numpy()
    close(table.column("loss").to_numpy(), ref)
    assert os.listdir(out.parent) == ["per_row.parquet"]          # no temporary file left


def test_per_row_without_key_writes_a_row_index(tmp_path, rng):
    x, y = rng.standard_normal((100, 3)), rng.standard_normal((100, 3))
    path = write(tmp_path / "in.parquet", x=fixed_list(x), y=fixed_list(y))
    out = tmp_path / "rows.parquet"
    fl.score_parquet(path, "l1_loss", "x", "y", per_row=out, batch_size=30)
    table = pq.read_table(out)
    np.testing.assert_array_equal(table.column("row").to_numpy(), np.arange(100))
    # elementwise loss over vector rows: the row's mean
    close(table.column("loss").to_numpy(), np.abs(x - y).mean(axis=1))


def test_failure_leaves_no_partial_per_row_file(tmp_path, rng):
    x, y = ce_data(rng, n=3000)
    y[2500] = 10                                    # out of range: the kernel fails in a late batch
    path = write(tmp_path / "in.parquet", logits=fixed_list(x), label=pa.array(y))
    out = tmp_path / "per_row.parquet"
    with pytest.raises(IndexError, match="class index 10"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=out, batch_size=500)
    assert sorted(os.listdir(tmp_path)) == ["in.parquet"]
    out.write_bytes(b"previous result")             # an existing output survives a failed run intact
    with pytest.raises(IndexError):
        fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=out, batch_size=500)
    assert out.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["in.parquet", "per_row.parquet"]
    assert not [t for t in threading.enumerate() if t.name == "fastloss-score-reader"]   # reader joined


def test_prefetched_keeps_order_and_raises_reader_errors():
    def gen(fail_at=None):
        for i in range(20):
            if i == fail_at:
                raise OSError("disk gone")
            yield i
    assert list(scoring.prefetched(gen())) == list(range(20))
    got = []
    with pytest.raises(OSError, match="disk gone"):
        for i in scoring.prefetched(gen(fail_at=7)):
            got.append(i)
    assert got == list(range(7))


# ------------------------------------------------------------------ errors

def test_missing_column_names_the_choices(tmp_path, rng):
    x, y = ce_data(rng, n=10)
    path = write(tmp_path / "in.parquet", logits=fixed_list(x), label=pa.array(y))
    msg = r"column 'labels' not found .*did you mean 'label'.*columns are: logits, label"
    with pytest.raises(KeyError, match=msg):
        fl.score_parquet(path, "cross_entropy", "logits", "labels")


def test_wrong_column_type(tmp_path):
    path = write(tmp_path / "in.parquet", x=pa.array([0.5, 1.5]), y=pa.array(["a", "b"]))
    with pytest.raises(TypeError, match="column 'y' .* has type string; expected numbers"):
        fl.score_parquet(path, "mse_loss", "x", "y")


def test_unknown_loss_lists_close_matches(tmp_path):
    with pytest.raises(ValueError, match="unknown loss 'cross_entropi'; did you mean cross_entropy"):
        fl.score_parquet(tmp_path / "nothing.parquet", "cross_entropi", "x", "y")
    with pytest.raises(ValueError, match="unknown loss 'box_iou'"):        # not a loss
        fl.score_parquet(tmp_path / "nothing.parquet", "box_iou", "x", "y")
    with pytest.raises(ValueError, match="batch_hard_triplet_loss mines or contrasts within a batch"):
        fl.score_parquet(tmp_path / "nothing.parquet", "batch_hard_triplet_loss", "x", "y")


def test_bad_arguments(tmp_path, rng):
    path = write(tmp_path / "in.parquet", x=rng.standard_normal(10), y=rng.standard_normal(10))
    with pytest.raises(FileNotFoundError, match="no such file"):
        fl.score_parquet(tmp_path / "missing.parquet", "mse_loss", "x", "y")
    with pytest.raises(ValueError, match="batch_size"):
        fl.score_parquet(path, "mse_loss", "x", "y", batch_size=0)
    with pytest.raises(ValueError, match="reduction"):
        fl.score_parquet(path, "mse_loss", "x", "y", reduction="none")
    with pytest.raises(ValueError, match="delta"):
        fl.score_parquet(path, "huber_loss", "x", "y", delta=-1.0)
    with pytest.raises(ValueError, match="key="):
        fl.score_parquet(path, "mse_loss", "x", "y", key="x")
    with pytest.raises(ValueError, match="one of the inputs"):
        fl.score_parquet(path, "mse_loss", "x", "y", per_row=path)


def test_missing_pyarrow_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"pip install 'fastloss\[parquet\]'"):
        fl.score_parquet(tmp_path / "x.parquet", "mse_loss", "x", "y")


# ------------------------------------------------------------------ .npy / .npz

def test_npy_files_are_columns_by_stem(tmp_path, rng):
    x, y = ce_data(rng, n=3000)
    np.save(tmp_path / "logits.npy", x)
    np.save(tmp_path / "label.npy", y)
    res = fl.score_file([tmp_path / "logits.npy", tmp_path / "label.npy"], "cross_entropy", "logits", "label",
                        batch_size=700)
    close(res.loss, F.cross_entropy(t64(x), torch.from_numpy(y)))
    assert res.rows == 3000


def test_structured_npy_fields_are_columns(tmp_path, rng):
    x, y = ce_data(rng, n=1000)
    rec = np.zeros(1000, dtype=[("logits", np.float64, (10,)), ("label", np.int64)])
    rec["logits"], rec["label"] = x, y
    np.save(tmp_path / "rec.npy", rec)
    res = fl.score_file(tmp_path / "rec.npy", "cross_entropy", "logits", "label", batch_size=300)
    close(res.loss, F.cross_entropy(t64(x), torch.from_numpy(y)))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_named_arrays(tmp_path, rng, save):
    x, y = rng.standard_normal((1500, 4)), rng.standard_normal((1500, 4))
    save(tmp_path / "data.npz", pred=x, gt=y)
    member = scoring._NpzMember(str(tmp_path / "data.npz"), np.load(tmp_path / "data.npz"))["pred"]
    assert isinstance(member, np.memmap) == (save is np.savez)    # stored members are memory-mapped
    np.testing.assert_array_equal(member, x)
    out = tmp_path / "rows.parquet"
    res = fl.score_file(tmp_path / "data.npz", "smooth_l1_loss", "pred", "gt", batch_size=400, per_row=out)
    close(res.loss, F.smooth_l1_loss(t64(x), t64(y)))
    close(pq.read_table(out).column("loss").to_numpy(),
          F.smooth_l1_loss(t64(x), t64(y), reduction="none").numpy().mean(1))


def test_npy_errors(tmp_path, rng):
    np.save(tmp_path / "a.npy", rng.standard_normal(10))
    np.save(tmp_path / "b.npy", rng.standard_normal(11))
    np.save(tmp_path / "s.npy", np.array(["x"] * 10))
    with pytest.raises(ValueError, match="different numbers of rows"):
        fl.score_file([tmp_path / "a.npy", tmp_path / "b.npy"], "mse_loss", "a", "b")
    with pytest.raises(KeyError, match="column 'c' not found"):
        fl.score_file([tmp_path / "a.npy", tmp_path / "b.npy"], "mse_loss", "a", "c")
    with pytest.raises(TypeError, match="column 's' .* dtype <U1"):
        fl.score_file([tmp_path / "a.npy", tmp_path / "s.npy"], "mse_loss", "a", "s")
    with pytest.raises(ValueError, match="NumPy file; use fastloss.score_file"):
        fl.score_parquet(tmp_path / "a.npy", "mse_loss", "a", "b")


# ------------------------------------------------------------------ memory bounded by the batch

# The child's own peak RSS: VmHWM of /proc/self/status (ru_maxrss would not do: Linux carries the
# parent's high-water mark across fork + exec, and the test process holds torch).
_RSS_CHILD = textwrap.dedent("""
    import sys
    import fastloss as fl
    res = fl.score_parquet(sys.argv[1], "cross_entropy", "logits", "label", batch_size=16384, num_threads=1)
    assert res.rows == int(sys.argv[2]), res.rows
    with open("/proc/self/status") as f:
        print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
""")


def _write_big(path, n, rng, chunk=100_000):
    schema = pa.schema([("logits", pa.list_(pa.float32(), 10)), ("label", pa.int64())])
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            x = rng.standard_normal((m, 10), dtype=np.float32)
            w.write_table(pa.table({"logits": fixed_list(x), "label": pa.array(rng.integers(0, 10, m))},
                                   schema=schema), row_group_size=50_000)


def _peak_rss_kib(path, n):
    root = Path(fl.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(n)], env=env, cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS read from /proc (Linux)")
def test_peak_memory_is_bounded_by_the_batch_not_the_file(tmp_path, rng):
    # 200k rows = 9.6 MB of column data; 2M rows = 96 MB, more than the interpreter's own footprint:
    # loading the big file whole would more than double the peak.
    small, big = tmp_path / "small.parquet", tmp_path / "big.parquet"
    _write_big(small, 200_000, rng)
    _write_big(big, 2_000_000, rng)
    rss_small = _peak_rss_kib(small, 200_000)
    rss_big = _peak_rss_kib(big, 2_000_000)
    assert rss_big < 1.2 * rss_small, (rss_small, rss_big)
