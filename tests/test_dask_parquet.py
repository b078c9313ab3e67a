"""fastloss.dask.score_parquet (one task per group of row groups, read by pyarrow in the task, states
merged in a tree; grouped with by=), fastloss.dask.<loss name>, and the DataFrame path's object list
cells.  Computed with the synchronous scheduler (test_dask.py runs score_parquet on real clusters).
References: fastloss.score_parquet on the same file (the same per-batch states), and float64 torch /
NumPy formulas of the rows."""
import datetime
import pickle

import numpy as np
import pytest

pytest.importorskip("dask")
pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from fl_testing import assert_close_spec, to_torch64, to_torch_long  # noqa: E402

import fastloss as fl  # noqa: E402
import fastloss.dask as fld  # noqa: E402

N, C = 3000, 5
SYNC = dict(scheduler="sync")

# dask's own Parquet reader uses a pandas argument that pandas 3.1 deprecates (not fastloss's)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")


def _data(seed=0):
    rng = np.random.default_rng(seed)
    days = np.array([datetime.date(2024, 1, d) for d in (1, 2, 3)])
    return {
        "logits": (rng.standard_normal((N, C)) * 3).astype(np.float32),
        "label": rng.integers(0, C, N),
        "x": rng.standard_normal(N),
        "y": rng.standard_normal(N),
        "w": rng.uniform(0.0, 2.0, N),
        "country": np.array(["fr", "jp", "us", "br"])[rng.integers(0, 4, N)],
        "model": rng.integers(0, 3, N),
        "day": days[rng.integers(0, 3, N)],
    }


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    d = _data()
    table = pa.table({
        "logits": pa.FixedSizeListArray.from_arrays(pa.array(d["logits"].ravel()), C),
        "logits_var": pa.array(list(d["logits"]), type=pa.list_(pa.float32())),
        "label": d["label"], "x": d["x"], "y": d["y"], "w": d["w"],
        "country": d["country"],
        "country_dict": pa.array(d["country"]).dictionary_encode(),
        "model": d["model"], "day": pa.array(d["day"], type=pa.date32()),
        "fkey": d["x"],
    })
    path = tmp_path_factory.mktemp("dask_parquet") / "scores.parquet"
    pq.write_table(table, path, row_group_size=250)       # 12 row groups
    return path, d


def _same_sums(got, ref, what=""):
    """Two states of the same rows merged in different orders: counts exact, sums within float64 rounding."""
    assert got.loss == ref.loss and got.count == ref.count, what
    assert_close_spec(got.weight_sum, ref.weight_sum, np.float64, reduced=True, result_type=False, what=what)
    assert_close_spec(got.finalize("sum"), ref.finalize("sum"), np.float64, reduced=True, result_type=False,
                      what=what)


def _task_count(lazy):
    return sum(1 for k in dict(lazy.dask) if (k[0] if isinstance(k, tuple) else k).startswith("_parquet_task"))


def test_ungrouped_equals_score_parquet(scores):
    path, d = scores
    ref = fl.score_parquet(path, "cross_entropy", "logits", "label", batch_size=100)
    # one task: the same batches folded in the same order -> the same state, bit for bit
    one = fld.score_parquet(path, "cross_entropy", "logits", "label", batch_size=100, rows_per_task=10 ** 9)
    assert _task_count(one) == 1
    res = one.compute(**SYNC)
    assert isinstance(res, fl.ScoreResult) and res.state == ref.state and res.rows == N
    # 6 tasks of two row groups, merged 2 per node; and a list-typed column of the same values
    for col in ("logits", "logits_var"):
        lazy = fld.score_parquet(path, "cross_entropy", col, "label", batch_size=100, rows_per_task=500,
                                 split_every=2)
        assert _task_count(lazy) == 6
        res = lazy.compute(**SYNC)
        _same_sums(res.state, ref.state, col)
        assert res.rows == N and res.skipped == 0 and res.weight_sum == N
        ce = F.cross_entropy(to_torch64(d["logits"]), to_torch_long(d["label"]))
        assert_close_spec(res.loss, float(ce), np.float32, reduced=True, result_type=False, what=col)


def test_options_pass_through(scores):
    path, d = scores
    cw = np.linspace(0.5, 2.0, C)
    cases = [("cross_entropy", "logits", "label", None, {"loss_weight": cw, "label_smoothing": 0.1}),
             ("huber_loss", "x", "y", "w", {"delta": 0.5}),
             ("mse_loss", "x", "y", None, {})]
    for loss, inp, tgt, w, kw in cases:
        for reduction in ("mean", "sum"):
            ref = fl.score_parquet(path, loss, inp, tgt, weight=w, reduction=reduction, **kw)
            got = fld.score_parquet(path, loss, inp, tgt, weight=w, reduction=reduction, rows_per_task=700,
                                    split_every=3, **kw).compute(**SYNC)
            _same_sums(got.state, ref.state, loss)
            assert_close_spec(got.loss, ref.loss, np.float64, reduced=True, result_type=False, what=loss)
    # the weighted huber against its float64 formula
    x, y, w = d["x"], d["y"], d["w"]
    a = np.abs(x - y)
    h = np.where(a < 0.5, 0.5 * a ** 2, 0.5 * (a - 0.25))
    got = fld.score_parquet(path, "huber_loss", "x", "y", weight="w", delta=0.5).compute(**SYNC)
    assert_close_spec(got.loss, (w * h).sum() / w.sum(), np.float64, reduced=True, result_type=False)


@pytest.mark.parametrize("by", ["country", "country_dict", "model", "day", ["country", "model"],
                                ["day", "country_dict", "model"]])
def test_grouped_equals_per_group_state(scores, by):
    path, d = scores
    keys = [by] if isinstance(by, str) else by
    values = {k: d["country" if k == "country_dict" else k] for k in keys}
    t = fld.score_parquet(path, "cross_entropy", "logits", "label", by=by, batch_size=400, rows_per_task=500,
                          split_every=2).compute(**SYNC)
    assert t.column_names == keys + ["loss", "rows", "weight_sum"]
    got_keys = list(zip(*(t.column(k).to_pylist() for k in keys)))
    expected = sorted(set(zip(*(values[k].tolist() for k in keys))))
    assert got_keys == expected and t.num_rows > 1
    assert sum(t.column("rows").to_pylist()) == N
    for i, key in enumerate(got_keys):
        m = np.logical_and.reduce([values[k] == v for k, v in zip(keys, key)])
        ref = F.cross_entropy(to_torch64(d["logits"][m]), to_torch_long(d["label"][m]))
        assert t.column("rows")[i].as_py() == m.sum() == t.column("weight_sum")[i].as_py()
        assert_close_spec(t.column("loss")[i].as_py(), float(ref), np.float32, reduced=True, result_type=False,
                          what=str(key))
        # the state of the group's rows in memory: the same sum within float64 rounding
        mem = fl.partial("cross_entropy", d["logits"][m], d["label"][m])
        assert_close_spec(t.column("loss")[i].as_py(), mem.finalize(), np.float64, reduced=True,
                          result_type=False, what=str(key))
    assert t.schema.field(keys[0]).type == {"country": pa.string(), "country_dict": pa.string(),
                                            "model": pa.int64(), "day": pa.date32()}[keys[0]]


def test_grouped_weighted_sum_and_one_task(scores):
    path, d = scores
    for rows_per_task in (250, 10 ** 9):
        t = fld.score_parquet(path, "mse_loss", "x", "y", weight="w", by="model", reduction="sum",
                              rows_per_task=rows_per_task).compute(**SYNC)
        for i, k in enumerate(t.column("model").to_pylist()):
            m = d["model"] == k
            sq = d["w"][m] * (d["x"][m] - d["y"][m]) ** 2
            assert_close_spec(t.column("loss")[i].as_py(), sq.sum(), np.float64, reduced=True, result_type=False)
            assert_close_spec(t.column("weight_sum")[i].as_py(), d["w"][m].sum(), np.float64, reduced=True,
                              result_type=False)


def test_nulls(tmp_path):
    t = pa.table({"x": pa.array([1.0, None, 3.0, 4.0, None, 6.0]), "y": [1.0, 2.0, 2.0, 3.0, 5.0, 5.0],
                  "g": pa.array(["a", "b", None, "a", "b", "b"])})
    path = tmp_path / "nulls.parquet"
    pq.write_table(t, path, row_group_size=2)
    with pytest.raises(ValueError, match="'x' of .* has 2 null rows"):
        fld.score_parquet(path, "mse_loss", "x", "y").compute(**SYNC)
    res = fld.score_parquet(path, "mse_loss", "x", "y", nulls="skip", rows_per_task=1).compute(**SYNC)
    assert (res.rows, res.skipped) == (4, 2) and res.loss == pytest.approx((0 + 1 + 1 + 1) / 4, rel=1e-12)
    with pytest.raises(ValueError, match="'g' of .* has 1 null row"):
        fld.score_parquet(path, "mse_loss", "y", "y", by="g").compute(**SYNC)
    g = fld.score_parquet(path, "mse_loss", "x", "y", by="g", nulls="skip").compute(**SYNC)
    assert g.column("g").to_pylist() == ["a", "b"] and g.column("rows").to_pylist() == [2, 1]
    assert g.column("loss").to_pylist() == pytest.approx([0.5, 1.0], rel=1e-12)


def test_errors(scores, tmp_path):
    path, _ = scores
    with pytest.raises(ValueError, match="batch"):
        fld.score_parquet(path, "batch_hard_triplet_loss", "logits", "label")
    with pytest.raises(ValueError, match="unknown loss"):
        fld.score_parquet(path, "cross_entropie", "logits", "label")
    with pytest.raises(KeyError, match="lable"):
        fld.score_parquet(path, "cross_entropy", "logits", "lable")
    with pytest.raises(KeyError, match="nope"):
        fld.score_parquet(path, "cross_entropy", "logits", "label", by="nope")
    with pytest.raises(TypeError, match="group column 'fkey'"):
        fld.score_parquet(path, "cross_entropy", "logits", "label", by="fkey")
    with pytest.raises(TypeError, match="by must be"):
        fld.score_parquet(path, "cross_entropy", "logits", "label", by=[])
    with pytest.raises(ValueError, match="rows_per_task"):
        fld.score_parquet(path, "cross_entropy", "logits", "label", rows_per_task=0)
    with pytest.raises(ValueError, match="nulls"):
        fld.score_parquet(path, "cross_entropy", "logits", "label", nulls="drop")
    with pytest.raises(ValueError, match="per_row"):
        fld.score_parquet(path, "cross_entropy", "logits", "label", per_row=tmp_path / "o.parquet")
    with pytest.raises(FileNotFoundError):
        fld.score_parquet(tmp_path / "missing.parquet", "cross_entropy", "logits", "label")
    bad = tmp_path / "bad_label.parquet"
    pq.write_table(pa.table({"p": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(6)), 3), "y": [0, 7]}), bad)
    with pytest.raises(IndexError, match="target"):      # the loss's own error, at compute time
        fld.score_parquet(bad, "cross_entropy", "p", "y").compute(**SYNC)


def test_several_losses_and_hive_partition_keys(scores, tmp_path):
    """loss=[...] and a Hive partition column as the by= key: every loss of every group against its
    float64 torch reference, and the same table as fastloss.score_parquet's res.groups."""
    _, d = scores
    root = tmp_path / "hive"
    for region in ("eu", "us"):
        for part in (0, 1):
            m = (np.arange(N) % 4) == (2 * (region == "us") + part)
            sub = root / f"region={region}" / f"part={part}"
            sub.mkdir(parents=True)
            pq.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(d["logits"][m].ravel()), C),
                                     "label": d["label"][m], "model": d["model"][m]}),
                           sub / "data.parquet", row_group_size=200)
    region = np.where((np.arange(N) % 4) >= 2, "us", "eu")
    losses = ["cross_entropy", "cross_entropy:label_smoothing=0.1", "multi_margin_loss"]
    refs = {"cross_entropy": lambda x, y: F.cross_entropy(x, y),
            "cross_entropy:label_smoothing=0.1": lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1),
            "multi_margin_loss": lambda x, y: F.multi_margin_loss(x, y)}
    t = fld.score_parquet(root, losses, "logits", "label", by=["region", "model"], rows_per_task=300,
                          split_every=3).compute(**SYNC)
    assert t.column_names == ["region", "model", "rows"] + [c for lab in losses for c in (lab, f"{lab}.weight_sum")]
    keys = list(zip(t.column("region").to_pylist(), t.column("model").to_pylist()))
    assert keys == sorted(set(zip(region.tolist(), d["model"].tolist())))
    for i, (r, mdl) in enumerate(keys):
        m = (region == r) & (d["model"] == mdl)
        assert t.column("rows")[i].as_py() == m.sum()
        for lab in losses:
            ref = refs[lab](to_torch64(d["logits"][m]), to_torch_long(d["label"][m]))
            assert_close_spec(t.column(lab)[i].as_py(), float(ref), np.float32, reduced=True, result_type=False,
                              what=f"{lab} {r} {mdl}")
    mem = fl.score_parquet(root, losses, "logits", "label", by=["region", "model"]).groups
    assert mem.column_names == t.column_names and mem.schema == t.schema
    for c in t.column_names:
        got, ref = t.column(c).to_pylist(), mem.column(c).to_pylist()
        if c in ("region", "model", "rows"):
            assert got == ref, c
        else:       # the same rows' states, merged in another order: within float64 rounding
            assert_close_spec(np.array(got), np.array(ref), np.float64, reduced=True, result_type=False, what=c)
    # ungrouped: res.losses per label, res.loss the first
    res = fld.score_parquet(root, losses, "logits", "label", rows_per_task=300).compute(**SYNC)
    assert list(res.losses) == losses and res.rows == N and res.loss == res.losses["cross_entropy"]
    for lab in losses:
        ref = refs[lab](to_torch64(d["logits"]), to_torch_long(d["label"]))
        assert_close_spec(res.losses[lab], float(ref), np.float32, reduced=True, result_type=False, what=lab)


def test_empty_file_and_directory(tmp_path):
    schema = pa.schema([("x", pa.float64()), ("y", pa.float64()), ("g", pa.string())])
    pq.write_table(schema.empty_table(), tmp_path / "empty.parquet")
    res = fld.score_parquet(tmp_path / "empty.parquet", "mse_loss", "x", "y").compute(**SYNC)
    assert res.rows == 0 and np.isnan(res.loss)
    t = fld.score_parquet(tmp_path / "empty.parquet", "mse_loss", "x", "y", by="g").compute(**SYNC)
    assert t.num_rows == 0 and t.column_names == ["g", "loss", "rows", "weight_sum"]
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [0.0, 0.0], "g": ["a", "b"]}), tmp_path / "b.parquet")
    res = fld.score_parquet(tmp_path, "mse_loss", "x", "y").compute(**SYNC)       # a directory of files
    assert res.rows == 2 and res.loss == pytest.approx(2.5, rel=1e-12)


# ------------------------------------------------------------------------------ fld.<loss name>
def test_loss_names():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((500, C)), rng.integers(0, C, 500)
    a, b, w = rng.standard_normal(500), rng.standard_normal(500), rng.uniform(0, 2, 500)
    dx, dy = da.from_array(x, chunks=(120, C)), da.from_array(y, chunks=120)
    da_, db = da.from_array(a, chunks=90), da.from_array(b, chunks=90)
    got = dask.compute(fld.cross_entropy(dx, dy, label_smoothing=0.1),
                       fld.mse_loss(da_, db, weight=w, split_every=2),
                       fld.huber_loss(da_, db, delta=0.5, reduction="sum"), **SYNC)
    refs = [F.cross_entropy(to_torch64(x), to_torch_long(y), label_smoothing=0.1),
            (w * (a - b) ** 2).sum() / w.sum(),
            F.huber_loss(to_torch64(a), to_torch64(b), delta=0.5, reduction="sum")]
    for g, r in zip(got, refs):
        assert_close_spec(g, float(r), np.float64, reduced=True, result_type=False)
    assert fld.cross_entropy(dx, dy).compute(**SYNC) == fld.loss("cross_entropy", dx, dy).compute(**SYNC)
    for name in ("cross_entropy", "mse_loss", "generalized_box_iou_loss", "triplet_margin_loss"):
        assert name in fld.__all__ and name in dir(fld) and getattr(fld, name).__name__ == name
        assert getattr(fld, name).__doc__.startswith(f"The lazy reduced :func:`fastloss.{name}`")
    assert pickle.loads(pickle.dumps(fld.cross_entropy)) is fld.cross_entropy
    for name in ("batch_hard_triplet_loss", "info_nce_loss", "nt_xent_loss"):
        assert name not in fld.__all__ and name not in dir(fld)
        with pytest.raises(AttributeError, match="in-memory batch"):
            getattr(fld, name)
    with pytest.raises(AttributeError):
        fld.no_such_loss


# ------------------------------------------------------------------------------ DataFrame object cells
@pytest.fixture
def keep_object_cells():
    with dask.config.set({"dataframe.convert-string": False}):    # (else from_pandas turns the cells into str)
        yield


def test_frame_object_list_cells(keep_object_cells):
    d = _data(2)
    pdf = pd.DataFrame({"logits": list(d["logits"]), "label": d["label"]})
    assert pdf["logits"].dtype == object
    ddf = dd.from_pandas(pdf, npartitions=4)
    got = fld.loss_frame("cross_entropy", ddf, "logits", "label").compute(**SYNC)
    ref = F.cross_entropy(to_torch64(d["logits"]), to_torch_long(d["label"]))
    assert_close_spec(got, float(ref), np.float32, reduced=True, result_type=False)
    # cells of Python lists
    pdf2 = pd.DataFrame({"p": [[1.0, 2.0], [3.0, 4.0]], "t": [[1.0, 1.0], [2.0, 2.0]]})
    st = fld.partial_frame("mse_loss", dd.from_pandas(pdf2, npartitions=1), "p", "t").compute(**SYNC)
    assert st.count == 4 and st.finalize() == pytest.approx((0 + 1 + 1 + 4) / 4, rel=1e-12)
    bad = {"ragged": ([[1.0, 2.0], [3.0]], ValueError, "different lengths"),
           "null inside": ([[1.0, None], [3.0, 4.0]], ValueError, "null"),
           "strings": ([["a", "b"], ["c", "d"]], TypeError, "numbers")}
    for what, (cells, exc, match) in bad.items():
        frame = dd.from_pandas(pd.DataFrame({"p": cells, "t": [[1.0, 1.0], [2.0, 2.0]]}), npartitions=1)
        with pytest.raises(exc, match=match):
            fld.loss_frame("mse_loss", frame, "p", "t").compute(**SYNC)


def test_frame_by(scores):
    path, d = scores
    df = dd.read_parquet(path, split_row_groups=True)
    assert df.npartitions > 1
    t = fld.loss_frame("cross_entropy", df, "logits", "label", by=["country", "model"], split_every=2).compute(**SYNC)
    assert t.column_names == ["country", "model", "loss", "rows", "weight_sum"]
    keys = list(zip(t.column("country").to_pylist(), t.column("model").to_pylist()))
    assert keys == sorted(set(zip(d["country"].tolist(), d["model"].tolist())))
    states = fld.partial_frame("cross_entropy", df, "logits", "label", by=["country", "model"]).compute(**SYNC)
    assert sorted(states) == keys
    for i, (c, m) in enumerate(keys):
        rows = (d["country"] == c) & (d["model"] == m)
        ref = F.cross_entropy(to_torch64(d["logits"][rows]), to_torch_long(d["label"][rows]))
        assert t.column("rows")[i].as_py() == rows.sum() == states[(c, m)].count
        assert_close_spec(t.column("loss")[i].as_py(), float(ref), np.float32, reduced=True, result_type=False)
        assert_close_spec(states[(c, m)].finalize(), t.column("loss")[i].as_py(), np.float64, reduced=True,
                          result_type=False)
    with pytest.raises(TypeError, match="by must be"):
        fld.loss_frame("cross_entropy", df, "logits", "label", by=3)
    with pytest.raises(ValueError, match="nope"):
        fld.loss_frame("cross_entropy", df, "logits", "label", by="nope")


def test_several_input_columns(tmp_path):
    rng = np.random.default_rng(4)
    a, b, s = rng.standard_normal(1000), rng.standard_normal(1000), np.sign(rng.standard_normal(1000))
    pq.write_table(pa.table({"a": a, "b": b, "s": s}), tmp_path / "mr.parquet", row_group_size=100)
    got = fld.score_parquet(tmp_path / "mr.parquet", "margin_ranking_loss", ["a", "b"], "s", margin=0.1,
                            rows_per_task=300).compute(**SYNC)
    assert_close_spec(got.loss, np.mean(np.maximum(0, -s * (a - b) + 0.1)), np.float64, reduced=True,
                      result_type=False)
