"""fastloss.dask on real distributed clusters (2 worker processes, and in-process workers): lazy
reductions of mergeable states over dask arrays and Parquet-backed dask DataFrames equal the
in-memory result within 1e-12 relative."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from fl_testing import DTYPE_IDS, DTYPES, assert_close_spec, to_torch64, to_torch_long  # noqa: E402

import fastloss as fl  # noqa: E402
import fastloss.dask as fld  # noqa: E402

# The directory of the fastloss this process imported: worker processes import the same build.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
N, C = 1000, 6

# dask's own Parquet reader uses a pandas argument that pandas 3.1 deprecates (not fastloss's)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")


@pytest.fixture(scope="module", params=["processes", "in-process"])
def client(request):
    kw = dict(dashboard_address=None, silence_logs=40)
    if request.param == "processes":
        env = {"PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, env=env, **kw)
    else:
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, **kw)
    with cluster, distributed.Client(cluster) as c:
        yield c


def _close(got, ref, dtype=np.float64, what=""):
    """A (float64-accumulated) reduction against its reference, SPEC §4 for ``dtype`` inputs.  Against the
    in-memory state of the same inputs (the same per-item values, merged in another order): float64."""
    assert_close_spec(float(got), float(ref), dtype, reduced=True, result_type=False, what=what)


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "logits": (rng.standard_normal((N, C)) * 3).astype(dtype),
        "labels": rng.integers(0, C, N),
        "multilabel": (rng.random((N, C)) > 0.5).astype(dtype),
        "x": rng.standard_normal(N).astype(dtype),
        "y": rng.standard_normal(N).astype(dtype),
        "w": rng.uniform(0.0, 2.0, N),
        "emb": [rng.standard_normal((N, 4)).astype(dtype) for _ in range(3)],
        "class_w": rng.uniform(0.5, 2.0, C),
    }


def _boxes(dtype, seed=1):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-10, 10, (N, 2))
    b1 = np.concatenate([xy, xy + rng.uniform(0.1, 10, (N, 2))], 1)
    b2 = b1 + rng.normal(0, 2.0, b1.shape)
    b2[:, 2:] = np.maximum(b2[:, 2:], b2[:, :2] + 0.05)
    return b1.astype(dtype), b2.astype(dtype)


def _cases(d, boxes):
    """(loss, positional arrays, weight, loss kwargs, in-memory float64 result)"""
    t = to_torch64
    return [
        ("cross_entropy", [d["logits"], d["labels"]], None, {},
         float(F.cross_entropy(t(d["logits"]), to_torch_long(d["labels"])))),
        ("cross_entropy", [d["logits"], d["labels"]], None, {"loss_weight": d["class_w"]},
         float(F.cross_entropy(t(d["logits"]), to_torch_long(d["labels"]), weight=t(d["class_w"])))),
        ("binary_cross_entropy_with_logits", [d["logits"], d["multilabel"]], None, {},
         float(F.binary_cross_entropy_with_logits(t(d["logits"]), t(d["multilabel"])))),
        ("mse_loss", [d["x"], d["y"]], d["w"], {},
         float((t(d["w"]) * (t(d["x"]) - t(d["y"])) ** 2).sum() / t(d["w"]).sum())),
        ("huber_loss", [d["x"], d["y"]], None, {"delta": 0.5}, float(F.huber_loss(t(d["x"]), t(d["y"]), delta=0.5))),
        ("generalized_box_iou_loss", list(boxes), None, {}, None),
        ("triplet_margin_loss", d["emb"], None, {"margin": 2.0},
         float(F.triplet_margin_loss(*map(t, d["emb"]), margin=2.0))),
    ]


def _chunked(a, chunks):
    return da.from_array(a, chunks=(chunks,) + a.shape[1:])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_arrays_equal_in_memory(client, dtype):
    d = _data(dtype)
    cases = _cases(d, _boxes(dtype))
    lazy = []
    for name, arrays, w, kw, _ in cases:
        lazy.append((
            fld.loss(name, *(_chunked(a, 260) for a in arrays), weight=None if w is None else _chunked(w, 260),
                     **kw),
            fld.partial(name, *(_chunked(a, 400) for a in arrays), weight=w, split_every=3, **kw),
            fld.loss(name, *(_chunked(a, 130) for a in arrays), weight=w, reduction="sum", **kw),
        ))
    for (name, arrays, w, kw, ref), (mean, st, total) in zip(cases, dask.compute(*lazy)):
        in_memory = fl.partial(name, *arrays, weight=w, **kw)
        assert isinstance(mean, float)
        _close(mean, in_memory.finalize(), what=name)
        if ref is not None:
            _close(mean, ref, dtype, what=f"{name} vs reference")
        assert st.count == in_memory.count
        _close(st.finalize("sum"), in_memory.finalize("sum"), what=name)
        _close(total, in_memory.finalize("sum"), what=name)


def test_same_bits_every_run_and_mismatched_chunks(client):
    d = _data(np.float32)
    x, y = _chunked(d["logits"], 128), _chunked(d["labels"], 300)       # target rechunked to x's chunks
    a = fld.loss("cross_entropy", x, y).compute()
    b = fld.loss("cross_entropy", x, y).compute()
    c = dask.compute(fld.loss("cross_entropy", x, y), scheduler="sync")[0]
    assert a == b == c
    _close(a, F.cross_entropy(to_torch64(d["logits"]), to_torch_long(d["labels"])), np.float32)
    # NumPy targets are chunked with the input; states merge with in-memory ones
    st = fld.partial("cross_entropy", x, d["labels"]).compute()
    assert st == fld.partial("cross_entropy", x, y).compute()
    _close((st + fl.partial("cross_entropy", d["logits"], d["labels"])).finalize(), st.finalize())


def test_workers_import_this_build(client):
    files = client.run(lambda: __import__("fastloss").__file__)
    assert set(files.values()) == {fl.__file__}


@pytest.fixture(scope="module")
def parquet_path(tmp_path_factory):
    d = _data(np.float32, seed=3)
    table = pa.table({
        "logits": pa.FixedSizeListArray.from_arrays(pa.array(d["logits"].ravel()), C),
        "logits_var": pa.array([list(r) for r in d["logits"]], type=pa.list_(pa.float32())),
        "label": d["labels"],
        "x": d["x"], "y": d["y"], "x2": d["y"], "w": d["w"],
    })
    path = tmp_path_factory.mktemp("dask") / "scores.parquet"
    pq.write_table(table, path, row_group_size=256)
    return path, d


@pytest.mark.parametrize("backend", ["numpy", "pyarrow"])
def test_parquet_frame_equals_in_memory(client, parquet_path, backend):
    path, d = parquet_path
    df = dd.read_parquet(path, split_row_groups=True, dtype_backend="pyarrow" if backend == "pyarrow" else None)
    assert df.npartitions > 1
    # float32 columns: the float64 references on the same values (SPEC §4's float32 reduction rule)
    ce = F.cross_entropy(to_torch64(d["logits"]), to_torch_long(d["labels"]))
    for col in ("logits", "logits_var"):
        got = fld.loss_frame("cross_entropy", df, input=col, target="label").compute()
        _close(got, ce, np.float32, what=col)
    x, y, w = (d[k].astype(np.float64) for k in ("x", "y", "w"))
    got = fld.loss_frame("mse_loss", df, "x", "y", weight="w").compute()
    _close(got, (w * (x - y) ** 2).sum() / w.sum(), np.float32, what="weighted mse")
    # a list of numeric columns is stacked into (n, k)
    st = fld.partial_frame("mse_loss", df, ["x", "y"], ["y", "x2"]).compute()
    assert st.count == 2 * N
    _close(st.finalize(), np.mean((np.column_stack([x, y]) - np.column_stack([y, y])) ** 2), np.float32,
           what="stacked columns")


def test_errors(client, parquet_path, tmp_path):
    d = _data(np.float64)
    x = _chunked(d["logits"], 300)
    with pytest.raises(ValueError, match="in-batch|batch"):
        fld.loss("batch_hard_triplet_loss", x, _chunked(d["labels"], 300))
    with pytest.raises(TypeError, match="dask.array"):
        fld.loss("cross_entropy", d["logits"], d["labels"])
    with pytest.raises(ValueError, match="length"):
        fld.loss("cross_entropy", x, d["labels"][:-1])
    with pytest.raises(ValueError, match="unknown loss"):
        fld.loss("nope", x, d["labels"])
    with pytest.raises(ValueError, match="reduction"):
        fld.loss("cross_entropy", x, d["labels"], reduction="none")
    with pytest.raises(ValueError, match="num_threads"):
        fld.loss("cross_entropy", x, d["labels"], num_threads=0)
    path, _ = parquet_path
    df = dd.read_parquet(path, split_row_groups=True)
    with pytest.raises(ValueError, match="missing_col"):
        fld.loss_frame("cross_entropy", df, "missing_col", "label")
    t = pa.table({"x": pa.array([1.0, None, 3.0]), "y": [1.0, 2.0, 3.0]})
    pq.write_table(t, tmp_path / "nulls.parquet")
    with pytest.raises(ValueError, match="'x' has 1 null"):
        fld.loss_frame("mse_loss", dd.read_parquet(tmp_path / "nulls.parquet"), "x", "y").compute()
    # the loss's own errors surface at compute time
    with pytest.raises(IndexError, match="target"):
        fld.loss("cross_entropy", x, _chunked(np.full(N, C), 300)).compute()


def test_empty_array(client):
    x = da.zeros((0, C), chunks=(10, C))
    y = da.zeros((0,), dtype=np.int64, chunks=10)
    st = fld.partial("cross_entropy", x, y).compute()
    assert st.count == 0 and st.weight_sum == 0
    assert np.isnan(fld.loss("cross_entropy", x, y).compute())


def test_clear_import_error_without_dask():
    code = ("import sys; sys.modules['dask'] = None\n"
            "try:\n    import fastloss.dask\nexcept ImportError as e:\n    print(e)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=ROOT)   # "" on sys.path is the cwd: not a source tree without kernels
    assert "pip install 'fastloss[dask]'" in out.stdout


def test_score_parquet_on_a_cluster(client, parquet_path):
    """fastloss.dask.score_parquet's tasks read their row groups in the workers: the result is
    fastloss.score_parquet's (the same per-batch states, merged in a tree), per group too."""
    path, d = parquet_path
    ref = fl.score_parquet(path, "cross_entropy", "logits", "label", batch_size=128)
    lazy = fld.score_parquet(path, "cross_entropy", "logits", "label", batch_size=128, rows_per_task=256,
                             split_every=2)
    res = lazy.compute()
    assert res.rows == N and res.state.count == ref.state.count and res.weight_sum == ref.weight_sum
    _close(res.loss, ref.loss, what="tree of 4 tasks")
    one = fld.score_parquet(path, "cross_entropy", "logits", "label", batch_size=128, rows_per_task=N).compute()
    assert one.state == ref.state             # one task folds the same batches in the same order
    groups = fld.score_parquet(path, "mse_loss", "x", "y", weight="w", by="label", rows_per_task=256).compute()
    assert groups.column("label").to_pylist() == sorted(set(d["labels"].tolist()))
    for k, loss, rows in zip(*(groups.column(c).to_pylist() for c in ("label", "loss", "rows"))):
        m = d["labels"] == k
        x, y, w = (d[c][m].astype(np.float64) for c in ("x", "y", "w"))
        assert rows == m.sum()
        _close(loss, (w * (x - y) ** 2).sum() / w.sum(), np.float32, what=f"group {k}")
