"""Scoring 2 (issue 20): losses by group, several losses in one read, in-memory Arrow tables, per-row
output in one kernel pass, Hive partitions, and the bugs of the first scoring API.

References are float64 torch (or the shared float64 torch references) over the rows of each group in
memory; streamed results must match within 1e-12 relative (SPEC §4).  Batches are small so that every
group spans several batches and row groups.
"""
import datetime
import inspect
import os
import stat

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

N, C = 3000, 5


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def close(got, ref):
    if isinstance(ref, torch.Tensor):
        ref = ref.detach().numpy()
    assert_close_spec(got, np.asarray(ref, dtype=np.float64), np.float64, result_type=False)


def ce_ref(x, y, **kw):
    return F.cross_entropy(t64(x), torch.from_numpy(np.asarray(y)), **kw)


def fixed_list(a):
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((N, C)) * 3
    y = rng.integers(0, C, N)
    w = rng.uniform(0.1, 2.0, N)
    country = rng.choice(["de", "fr", "jp", "us"], N)
    model = rng.integers(0, 3, N)
    day = np.array([datetime.date(2026, 1, 1) + datetime.timedelta(days=int(d)) for d in rng.integers(0, 4, N)])
    table = pa.table({"logits": fixed_list(x), "label": y, "w": w, "country": country,
                      "country_dict": pa.array(country).dictionary_encode(), "model": model,
                      "day": pa.array(day, type=pa.date32()), "id": np.arange(N) * 10,
                      **{f"p{j}": x[:, j] for j in range(C)}})
    path = tmp_path / "preds.parquet"
    pq.write_table(table, path, row_group_size=700)
    return path, x, y, w, country, model, day


def group_rows(table, keys):
    """{key tuple: row of the result table} for the groups table."""
    return {tuple(r[k] for k in keys): r for r in table.to_pylist()}


@pytest.mark.parametrize("by", ["country", "country_dict", "model", "day", ["model", "country"]])
def test_by_matches_the_loss_of_each_group(data, by):
    path, x, y, _, country, model, day = data
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", by=by, batch_size=256)
    cols = {"country": country, "country_dict": country, "model": model, "day": day}
    keys = [by] if isinstance(by, str) else by
    got = group_rows(res.groups, keys)
    want = {}
    for i in range(N):
        want.setdefault(tuple(cols[k][i] for k in keys), []).append(i)
    assert set(got) == set(want)
    assert res.groups.column_names == [*keys, "rows", "loss", "weight_sum"]
    for k, idx in want.items():
        idx = np.array(idx)
        assert got[k]["rows"] == len(idx) and got[k]["weight_sum"] == len(idx)
        close(got[k]["loss"], ce_ref(x[idx], y[idx]))
        rows, states = res.group_states[k]
        assert rows == len(idx) and states["cross_entropy"].count == len(idx)
    close(res.loss, ce_ref(x, y))         # the overall result is still reported
    assert list(res.groups.column(keys[0]).to_pylist()) == sorted(res.groups.column(keys[0]).to_pylist()) \
        or len(keys) > 1


def test_group_state_is_the_partial_of_the_group_rows(data):
    """A group's state is fl.partial of the group's rows (merged across batches)."""
    path, x, y, w, country, _, _ = data
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", weight="w", by="country", batch_size=300,
                           label_smoothing=0.1)
    for (c,), (rows, states) in res.group_states.items():
        m = country == c
        ref = fl.partial("cross_entropy", x[m], y[m], weight=w[m], label_smoothing=0.1)
        st = states["cross_entropy"]
        close(st.finalize(), ref.finalize())
        close(st.weight_sum, np.sum(w[m]))
        assert st.count == ref.count == rows
        close(st.finalize(), np.sum(w[m] * ce_ref(x[m], y[m], reduction="none", label_smoothing=0.1).numpy())
              / np.sum(w[m]))


@pytest.mark.parametrize("kwargs", [{"loss_weight": [1.0, 2.0, 0.5, 3.0, 1.5]}, {"ignore_index": 2}])
def test_by_with_class_weights_and_ignore_index(data, kwargs):
    """The cases whose mean does not divide by the row count: class weights, ignored labels."""
    path, x, y, _, _, model, _ = data
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", by="model", batch_size=256, **kwargs)
    tkw = {"weight": t64(kwargs["loss_weight"])} if "loss_weight" in kwargs else kwargs
    for (m,), row in group_rows(res.groups, ["model"]).items():
        idx = model == m
        close(row["loss"], ce_ref(x[idx], y[idx], **tkw))
    close(res.loss, ce_ref(x, y, **tkw))


def test_by_elementwise_vector_rows_and_batchmean(tmp_path):
    """Vector rows (a row's items share its group) and "batchmean" (one denominator per row)."""
    rng = np.random.default_rng(1)
    n = 900
    p, t = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    g = rng.integers(0, 4, n)
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"p": fixed_list(p), "t": fixed_list(t), "g": g}), path, row_group_size=200)
    res = fl.score_parquet(path, ["mse_loss", "distillation_loss"], "p", "t", by="g", batch_size=128)
    distill = REFERENCES["distillation_loss"].torch_ref
    for (k,), row in group_rows(res.groups, ["g"]).items():
        m = g == k
        close(row["mse_loss"], F.mse_loss(t64(p[m]), t64(t[m])))
        assert row["mse_loss.weight_sum"] == 3 * m.sum() and row["rows"] == m.sum()
        close(row["distillation_loss"], distill(p[m], t[m]))
        assert row["distillation_loss.weight_sum"] == m.sum()
    close(res.losses["distillation_loss"], distill(p, t))


def test_several_losses_in_one_read(data):
    path, x, y, _, country, _, _ = data
    res = fl.score_parquet(path, ["cross_entropy", "softmax_focal_loss:gamma=2", ("multi_margin_loss", {"margin": 0.5})],
                           "logits", "label", by="country", batch_size=256)
    focal = REFERENCES["softmax_focal_loss"].torch_ref
    mm = REFERENCES["multi_margin_loss"].torch_ref
    assert list(res.losses) == ["cross_entropy", "softmax_focal_loss", "multi_margin_loss"]
    close(res.losses["cross_entropy"], ce_ref(x, y))
    close(res.losses["softmax_focal_loss"], focal(x, y, gamma=2.0))
    close(res.losses["multi_margin_loss"], mm(x, y, margin=0.5))
    assert res.loss == res.losses["cross_entropy"] and res.state is res.states["cross_entropy"]
    for (c,), row in group_rows(res.groups, ["country"]).items():
        m = country == c
        close(row["softmax_focal_loss"], focal(x[m], y[m], gamma=2.0))
        close(row["multi_margin_loss"], mm(x[m], y[m], margin=0.5))
        assert row["multi_margin_loss.weight_sum"] == m.sum()


def test_same_loss_twice_is_labelled_by_its_parameters(data):
    path, x, y, *_ = data
    res = fl.score_parquet(path, ["softmax_focal_loss:gamma=1", "softmax_focal_loss:gamma=3"], "logits", "label")
    focal = REFERENCES["softmax_focal_loss"].torch_ref
    close(res.losses["softmax_focal_loss:gamma=1"], focal(x, y, gamma=1.0))
    close(res.losses["softmax_focal_loss:gamma=3"], focal(x, y, gamma=3.0))
    with pytest.raises(ValueError, match="given twice"):
        fl.score_parquet(path, ["cross_entropy", "cross_entropy"], "logits", "label")


@pytest.mark.parametrize("kwargs", [{}, {"label_smoothing": 0.2}, {"loss_weight": [1, 2, 3, 4, 5]},
                                    {"ignore_index": 1}])
def test_per_row_one_pass_values_and_state(data, tmp_path, kwargs):
    """per_row: the file holds torch's reduction='none' values and the state torch's mean, whether the
    state comes from the per-row values (one pass) or from a second pass (class weights, ignore_index)."""
    path, x, y, w, *_ = data
    out = tmp_path / "rows.parquet"
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=out, key="id", batch_size=256,
                           **kwargs)
    tkw = {"weight": t64(kwargs["loss_weight"])} if "loss_weight" in kwargs else kwargs
    back = pq.read_table(out)
    assert back.column_names == ["id", "loss"]
    np.testing.assert_array_equal(back.column("id").to_numpy(), np.arange(N) * 10)
    close(back.column("loss").to_numpy(), ce_ref(x, y, reduction="none", **tkw))
    close(res.loss, ce_ref(x, y, **tkw))
    resw = fl.score_parquet(path, "cross_entropy", "logits", "label", weight="w", per_row=out, batch_size=256,
                            **kwargs)
    if not kwargs:
        close(resw.loss, np.sum(w * ce_ref(x, y, reduction="none").numpy()) / np.sum(w))
        close(resw.weight_sum, np.sum(w))


def test_per_row_one_kernel_pass(data, tmp_path, monkeypatch):
    """Without class weights or ignored labels, per-row output and the state come from one kernel call
    per batch; with class weights, a second pass gives the state."""
    path, *_ = data
    calls = []
    real_per_item, real_partial = scoring._per_item, scoring._partial
    monkeypatch.setattr(scoring, "_per_item", lambda *a: calls.append("none") or real_per_item(*a))
    monkeypatch.setattr(scoring, "_partial", lambda *a: calls.append("partial") or real_partial(*a))
    fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=tmp_path / "r.parquet", batch_size=1000)
    assert calls == ["none"] * 3
    calls.clear()
    fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=tmp_path / "r.parquet", batch_size=1000,
                     loss_weight=[1, 2, 3, 4, 5])
    assert calls == ["none", "partial"] * 3


def test_key_of_several_columns(data, tmp_path):
    path, _, _, _, country, model, _ = data
    out = tmp_path / "rows.parquet"
    fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=out, key=["id", "country", "model"],
                     batch_size=500)
    back = pq.read_table(out)
    assert back.column_names == ["id", "country", "model", "loss"]
    assert back.column("country").to_pylist() == list(country)
    np.testing.assert_array_equal(back.column("model").to_numpy(), model)


def test_several_losses_per_row_columns(data, tmp_path):
    path, x, y, *_ = data
    out = tmp_path / "rows.parquet"
    fl.score_parquet(path, ["cross_entropy", "multi_margin_loss"], "logits", "label", per_row=out)
    back = pq.read_table(out)
    assert back.column_names == ["row", "cross_entropy", "multi_margin_loss"]
    close(back.column("multi_margin_loss").to_numpy(),
          REFERENCES["multi_margin_loss"].torch_ref(x, y, reduction="none"))


def test_null_group_keys(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((500, 3)), rng.integers(0, 3, 500)
    g = pa.array(rng.choice(["a", "b"], 500), mask=np.arange(500) % 100 == 3)       # 5 nulls
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"x": fixed_list(x), "y": y, "g": g}), path, row_group_size=120)
    with pytest.raises(ValueError, match=r"column 'g' .* has 5 null rows; pass nulls='skip'"):
        fl.score_parquet(path, "cross_entropy", "x", "y", by="g", batch_size=64)
    res = fl.score_parquet(path, "cross_entropy", "x", "y", by="g", batch_size=64, nulls="skip")
    assert res.skipped == 5 and res.rows == 495
    keep = np.arange(500) % 100 != 3
    gv = np.array(g.fill_null("").to_pylist())
    for (k,), row in group_rows(res.groups, ["g"]).items():
        m = keep & (gv == k)
        close(row["loss"], ce_ref(x[m], y[m]))


def test_group_column_errors(data):
    path, *_ = data
    with pytest.raises(KeyError, match="column 'contry' not found .*did you mean 'country'"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", by="contry")
    with pytest.raises(TypeError, match="group column 'w' .* has type double; a group key must be integers"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", by="w")
    with pytest.raises(ValueError, match="also a loss column"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", by="label")


def test_hive_partitioned_directory(tmp_path):
    """A Hive-partitioned directory is read recursively; its partition columns are group keys."""
    rng = np.random.default_rng(4)
    root = tmp_path / "ds"
    parts = {}
    for model in (1, 2):
        for country in ("de", "fr"):
            d = root / f"model={model}" / f"country={country}"
            d.mkdir(parents=True)
            x, y = rng.standard_normal((200, 4)), rng.integers(0, 4, 200)
            pq.write_table(pa.table({"x": fixed_list(x), "y": y}), d / "part-0.parquet", row_group_size=64)
            parts[(model, country)] = (x, y)
    (root / "_SUCCESS").write_text("")
    res = fl.score_parquet(root, "cross_entropy", "x", "y", by=["model", "country"], batch_size=50)
    got = group_rows(res.groups, ["model", "country"])
    assert set(got) == set(parts) and res.groups.schema.field("model").type == pa.int64()
    for k, (x, y) in parts.items():
        close(got[k]["loss"], ce_ref(x, y))
    allx = np.concatenate([v[0] for v in parts.values()])
    ally = np.concatenate([v[1] for v in parts.values()])
    close(res.loss, ce_ref(allx, ally))
    out = tmp_path / "rows.parquet"
    fl.score_parquet(root, "cross_entropy", "x", "y", per_row=out, key="country")
    assert sorted(set(pq.read_table(out).column("country").to_pylist())) == ["de", "fr"]


# ------------------------------------------------------------------------------ in-memory tables

def test_score_table_pyarrow_reader_pandas_polars(data):
    path, x, y, _, country, _, _ = data
    table = pq.read_table(path)
    ref = ce_ref(x, y)
    close(fl.score_table(table, "cross_entropy", "logits", "label", batch_size=700).loss, ref)
    close(fl.score_table(table.to_reader(max_chunksize=333), "cross_entropy", "logits", "label").loss, ref)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({**{f"p{j}": x[:, j] for j in range(C)}, "label": y, "country": country})
    res = fl.score_table(df, "cross_entropy", [f"p{j}" for j in range(C)], "label", by="country", batch_size=400)
    close(res.loss, ref)
    for (c,), row in group_rows(res.groups, ["country"]).items():
        m = country == c
        close(row["loss"], ce_ref(x[m], y[m]))
    pl = pytest.importorskip("polars")
    pdf = pl.DataFrame({"logits": x, "label": y, "country": country})      # an Array(Float64, C) column
    res = fl.score_table(pdf, ["cross_entropy", "multi_margin_loss"], "logits", "label", by="country")
    close(res.losses["cross_entropy"], ref)
    close(res.losses["multi_margin_loss"], REFERENCES["multi_margin_loss"].torch_ref(x, y))


def test_score_table_does_not_copy_numeric_buffers():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((1000, 4)), rng.integers(0, 4, 1000)
    table = pa.table({"x": fixed_list(x), "y": y})
    src = scoring.TableSource(table, ["x", "y"], ["x", "y"], 300, scoring._Nulls("error"))
    base = table.column("x").chunk(0).flatten().buffers()[1].address
    for b in src.batches():
        assert b.cols["x"].__array_interface__["data"][0] == base + b.first_row * 4 * 8
        assert b.cols["x"].base is not None and not b.cols["x"].flags.owndata


def test_score_table_rejects_other_objects():
    with pytest.raises(TypeError, match="__arrow_c_stream__"):
        fl.score_table([1, 2, 3], "mse_loss", "a", "b")


def test_score_batches_is_reusable():
    """The private engine, as fastloss.dask reuses it: Batch objects in, states (and groups) out."""
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((600, 3)), rng.integers(0, 3, 600)
    g = rng.integers(0, 5, 600)
    rb = pa.record_batch({"x": fixed_list(x), "y": y, "g": g})
    specs = scoring.loss_specs(["cross_entropy", "multi_margin_loss"], {})
    batches = [scoring._arrow_batch(rb.slice(i, 200), ["x", "y", "g"], ["x", "y"], scoring._Nulls("error"),
                                    "part", i, None) for i in range(0, 600, 200)]
    states, groups, rows = scoring._score_batches(batches[:2], specs, inputs=["x"], target="y", by=["g"])
    states2, groups2, rows2 = scoring._score_batches(batches[2:], specs, inputs=["x"], target="y", by=["g"])
    merged = groups.merge(groups2)
    assert rows + rows2 == 600
    close(states[0].merge(states2[0]).finalize(), ce_ref(x, y))
    for (k,), (r, sts) in merged.states().items():
        m = g == k
        assert r == m.sum()
        close(sts[0].finalize(), ce_ref(x[m], y[m]))


# ------------------------------------------------------------------------------ bugs of issue 20

def test_input_list_stacks_columns_for_a_one_input_loss(data):
    path, x, y, *_ = data
    res = fl.score_parquet(path, "cross_entropy", [f"p{j}" for j in range(C)], "label", batch_size=500)
    close(res.loss, ce_ref(x, y))
    with pytest.raises(ValueError, match="takes 2 input column"):
        fl.score_parquet(path, "margin_ranking_loss", ["p0", "p1", "p2"], "label")


def test_bad_label_names_file_column_and_row(tmp_path):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((1000, 4)), rng.integers(0, 4, 1000)
    y[500] = 9
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x": fixed_list(x), "label": y}), path, row_group_size=300)
    with pytest.raises(IndexError) as e:
        fl.score_parquet(path, "cross_entropy", "x", "label", batch_size=100)
    msg = str(e.value)
    assert "column 'label'" in msg and "row 500 of" in msg and str(path) in msg and "class index 9" in msg
    assert "position 0" not in msg
    # a skipped null before it does not shift the row
    lab = pa.array(y, mask=np.arange(1000) == 450)
    pq.write_table(pa.table({"x": fixed_list(x), "label": lab}), path, row_group_size=300)
    with pytest.raises(IndexError, match="row 500 of"):
        fl.score_parquet(path, "cross_entropy", "x", "label", batch_size=100, nulls="skip", per_row=tmp_path / "r.pq")
    assert not (tmp_path / "r.pq").exists()


def test_misspelled_option_is_named_as_one(data):
    path, *_ = data
    with pytest.raises(TypeError, match=r"score_parquet\(\) got an unknown option 'batchsize' .*batch_size"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", batchsize=100)
    with pytest.raises(TypeError, match="parameter of cross_entropy .*'label_smoothing'"):
        fl.score_parquet(path, "cross_entropy", "logits", "label", label_smoothin=0.1)


def test_class_weights_as_a_list(data):
    path, x, y, *_ = data
    cw = [1, 2, 3, 4, 5]
    ref = ce_ref(x, y, weight=t64(cw))
    close(fl.score_parquet(path, "cross_entropy", "logits", "label", weight=cw).loss, ref)
    close(fl.score_parquet(path, "cross_entropy", "logits", "label", loss_weight=cw, by="model").loss, ref)
    close(fl.score_parquet(path, "cross_entropy:weight=[1, 2, 3, 4, 5]", "logits", "label").loss, ref)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_output_files_respect_the_umask(data, tmp_path, mask):
    path, *_ = data
    old = os.umask(mask)
    try:
        out = tmp_path / "rows.parquet"
        fl.score_parquet(path, "cross_entropy", "logits", "label", per_row=out)
        grp = tmp_path / "groups.parquet"
        scoring.write_table_atomic(pa.table({"a": [1]}), grp)
    finally:
        os.umask(old)
    for f in (out, grp):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o666 & ~mask
    assert sorted(os.listdir(tmp_path)) == sorted(["groups.parquet", "rows.parquet", "preds.parquet"])


def test_by_sum_reduction(data):
    path, x, y, _, _, model, _ = data
    res = fl.score_parquet(path, "cross_entropy", "logits", "label", by="model", reduction="sum", batch_size=256)
    for (m,), row in group_rows(res.groups, ["model"]).items():
        idx = model == m
        close(row["loss"], ce_ref(x[idx], y[idx], reduction="sum"))
        close(row["loss"], res.group_states[(m,)][1]["cross_entropy"].finalize("sum"))


@pytest.mark.parametrize("keys", [np.array([-5, 3, -5, 7] * 250, dtype=np.int8),
                                  np.array([2**64 - 1, 3, 2**63, 3] * 250, dtype=np.uint64),
                                  np.array([10**15, -(10**15), 7, 10**15] * 250, dtype=np.int64)])
def test_integer_keys_of_any_range(keys):
    """Small-range integer keys are coded by their offset, wide-range ones hashed: same groups either way."""
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal(len(keys)), rng.standard_normal(len(keys))
    res = fl.score_table(pa.table({"x": x, "y": y, "k": keys}), "mse_loss", "x", "y", by="k", batch_size=300)
    got = group_rows(res.groups, ["k"])
    assert set(got) == {(int(v),) for v in np.unique(keys)}
    for (k,), row in got.items():
        m = keys == keys.dtype.type(k)
        close(row["loss"], F.mse_loss(t64(x[m]), t64(y[m])))
    assert res.groups.schema.field("k").type == pa.from_numpy_dtype(keys.dtype)


def _column_losses():
    """The scorable losses whose reference sample is columns: every argument 1-d or 2-d, one row each."""
    out = []
    for name in scoring.loss_names():
        ref = REFERENCES.get(name)
        if ref is None or ref.torch_ref is None:
            continue
        args, _ = ref.sample(np.random.default_rng(0), 300, np.float64)
        if all(np.ndim(a) in (1, 2) for a in args) and len({len(a) for a in args}) == 1:
            out.append(name)
    return out


@pytest.mark.parametrize("name", _column_losses())
def test_every_column_loss_by_group_and_per_row(name, tmp_path):
    """One kernel pass (reduction="none") gives each group's state and the per-row file, for every loss
    that can be scored from columns: each group's loss is the float64 torch reference's mean over the
    group's rows, and the per-row file its reduction="none" values (a vector row's mean)."""
    ref = REFERENCES[name]
    rng = np.random.default_rng(9)
    args, kw = ref.sample(rng, 600, np.float64)
    n = len(args[0])
    g = rng.integers(0, 3, n)
    names = [f"a{j}" for j in range(len(args))]
    cols = {c: (fixed_list(np.ascontiguousarray(a)) if np.ndim(a) == 2 else a) for c, a in zip(names, args)}
    table = pa.table({**cols, "g": g})
    out = tmp_path / "rows.parquet"
    # target= names the loss's target argument wherever it sits (gaussian_nll_loss(input, target, var))
    params = list(inspect.signature(getattr(fl, name)).parameters)[:len(args)]
    t = next((j for j, p in enumerate(params) if p in ("target", "label", "labels")), len(args) - 1)
    res = fl.score_table(table, (name, kw), names[:t] + names[t + 1:], names[t], by="g", per_row=out,
                         batch_size=max(n // 5, 1))
    from fastloss._losses import LOSSES
    # the mean scoring reports: "batchmean" for distillation_loss, "mean" for the rest (torchvision's
    # box and sigmoid focal losses default to "none")
    mean = "batchmean" if LOSSES[name].default_reduction == "batchmean" else "mean"
    for (k,), row in group_rows(res.groups, ["g"]).items():
        m = g == k
        close(row["loss"], ref.torch_ref(*[np.ascontiguousarray(a[m]) for a in args], **kw, reduction=mean))
    none = ref.torch_ref(*args, **kw, reduction="none")
    none = none.detach().numpy() if isinstance(none, torch.Tensor) else np.asarray(none)
    if none.ndim > 1:
        none = none.reshape(n, -1).mean(axis=1)
    close(pq.read_table(out).column("loss").to_numpy(), none)
    close(res.loss, ref.torch_ref(*args, **kw, reduction=mean))


@pytest.mark.parametrize("by", [None, "g"])
def test_negative_sample_weight_names_column_and_row(tmp_path, by):
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal(400), rng.standard_normal(400)
    w = rng.uniform(0.5, 1.5, 400)
    w[321] = -2.0
    path = tmp_path / "w.parquet"
    pq.write_table(pa.table({"x": x, "y": y, "w": w, "g": np.arange(400) % 3}), path, row_group_size=150)
    with pytest.raises(ValueError, match=r"column 'w' .*must be >= 0, got -2.0 in row 321 of .*w.parquet"):
        fl.score_parquet(path, "mse_loss", "x", "y", weight="w", by=by, batch_size=100)


def test_groups_of_no_rows_keep_the_key_types():
    t = pa.table({"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64()), "g": pa.array([], pa.string()),
                  "d": pa.array([], pa.date32())})
    res = fl.score_table(t, "mse_loss", "x", "y", by=["g", "d"])
    assert res.rows == 0 and res.groups.num_rows == 0
    assert res.groups.schema.field("g").type == pa.string() and res.groups.schema.field("d").type == pa.date32()
