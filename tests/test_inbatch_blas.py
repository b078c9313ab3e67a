"""The in-batch losses' similarity blocks (issue 16): single-threaded GEMMs of SciPy's BLAS called from
inside the OpenMP kernels (fastloss/_kernels/metric.pyx: SimRows), the blocks in parallel.

* the same bits for num_threads = 1, 2, 3 and from two Python threads calling at once, on batches of
  several blocks (and several gradient row blocks), each call also within SPEC §4 of the torch
  float64 reference;
* NumPy's BLAS keeps its thread count while a loss runs on another Python thread: the kernels pin only
  the library their GEMM lives in (SciPy's), and restore it afterwards.
"""
import concurrent.futures as cf
import os
import threading

import numpy as np
import pytest

import fastloss as fl
from fastloss import _metric
from fastloss._reference import REFERENCES

threadpoolctl = pytest.importorskip("threadpoolctl")
from fl_testing import assert_close_spec  # noqa: E402

IN_BATCH = ["nt_xent_loss", "info_nce_loss", "arcface_loss", "batch_hard_triplet_loss",
            "batch_all_triplet_loss"]


def _case(name, dtype, n=200 * 16):
    """A call of ``name`` of a few hundred rows (several 64-row blocks)."""
    return REFERENCES[name].sample(np.random.default_rng(3), n, dtype)


def _bytes(result):
    if isinstance(result, tuple):
        return b"|".join(_bytes(r) for r in result)
    return np.ascontiguousarray(result).tobytes()


def _reference(name, args, kwargs, reduction):
    import torch
    ref = REFERENCES[name].torch_ref
    return ref(*[torch.from_numpy(np.asarray(a, dtype=np.float64)) if np.asarray(a).dtype.kind == "f"
                 else torch.from_numpy(np.asarray(a)) for a in args], **kwargs, reduction=reduction)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("name", IN_BATCH)
def test_same_bits_for_every_thread_count_and_concurrent_callers(name, grad, dtype, monkeypatch):
    if grad:        # several gradient row blocks (S kept per block for S^T rows)
        monkeypatch.setattr(_metric, "_BLOCK_NUMBERS", 100 * 64)
    args, kwargs = _case(name, dtype)
    f = getattr(fl, name)
    kwargs = {**kwargs, "reduction": "sum", "return_grad": grad}
    results = {nt: _bytes(f(*args, **kwargs, num_threads=nt)) for nt in (1, 2, 3)}
    assert results[1] == results[2] == results[3]
    with cf.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(f, *args, **kwargs, num_threads=nt) for nt in (2, 1, 2, 3)]
        assert all(_bytes(fu.result(timeout=120)) == results[1] for fu in futures)
    value = f(*args, **kwargs, num_threads=2)
    value = value[0] if grad else value
    assert_close_spec(value, _reference(name, args, {k: v for k, v in kwargs.items()
                                                     if k not in ("reduction", "return_grad")}, "sum").item(),
                      dtype, reduced=True, what=name)


def _blas_threads():
    """{library file name: num_threads} of the process's BLAS libraries."""
    return {os.path.basename(i["filepath"]): i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas"}


def _numpy_blas(info):
    """The entry of NumPy's BLAS in _blas_threads()."""
    import numpy
    path = os.path.realpath(os.path.dirname(numpy.__file__))
    for lib in threadpoolctl.ThreadpoolController().lib_controllers:
        if lib.user_api == "blas" and ("numpy" in lib.filepath or os.path.realpath(lib.filepath).startswith(path)):
            return os.path.basename(lib.filepath)
    pytest.skip("NumPy's BLAS is not a library threadpoolctl sees")


def test_numpy_blas_threads_unchanged_while_a_loss_runs():
    """Sampled DURING calls made from another Python thread: NumPy's BLAS keeps its thread count, and the
    kernels' (SciPy's) is seen pinned to 1 at least once (so the sampling does watch the calls)."""
    from fastloss._blas import _library_of
    scipy_lib = _library_of(fl._kernels.load("metric").blas_address())
    before = _blas_threads()
    np_lib = _numpy_blas(before)
    if scipy_lib is None or os.path.basename(scipy_lib) == np_lib:
        pytest.skip("NumPy and SciPy share one BLAS library here: the pin reaches NumPy's (see _blas.py)")
    if before[np_lib] < 2 and before.get(os.path.basename(scipy_lib), 1) < 2:
        pytest.skip("a one-thread BLAS: nothing to tell apart")
    args, kwargs = _case("nt_xent_loss", np.float32, n=1024 * 16)
    stop = threading.Event()
    calls = [0]

    def loop():
        while not stop.is_set():
            fl.nt_xent_loss(*args, **kwargs, num_threads=2)
            calls[0] += 1

    seen = []
    with cf.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(loop)
        try:
            while len(seen) < 200 and not fut.done():
                seen.append(_blas_threads())
        finally:
            stop.set()
        fut.result(timeout=120)
    assert calls[0] > 0
    assert all(s[np_lib] == before[np_lib] for s in seen)
    if before.get(os.path.basename(scipy_lib), 1) > 1:
        assert any(s[os.path.basename(scipy_lib)] == 1 for s in seen)
    assert _blas_threads() == before            # restored after the last call


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tau", [0.5, 0.1, 0.02, 0.004])
@pytest.mark.parametrize("symmetric", [True, False])
def test_nt_xent_both_paths_per_row_within_spec(symmetric, tau, dtype, monkeypatch):
    """nt_xent_loss's loss alone takes the symmetric kernel (half of u u^T, a fixed shift of about 1 / tau,
    metric.pyx SymCtx) up to _SYMMETRIC_ROWS views: each row within SPEC §4 of torch's float64 value, on
    confident rows (views close to each other: small losses) and at temperatures down to 0.004 (the
    shift's exp(-2 / tau) about 1e-217), and the same as the general path within SPEC §4."""
    if not symmetric:
        monkeypatch.setattr(_metric, "_SYMMETRIC_ROWS", 0)
    import torch
    rng = np.random.default_rng(5)
    N, D = 150, 32
    z1 = rng.standard_normal((N, D))
    z2 = z1 + rng.choice([0.01, 0.3, 3.0], size=(N, 1)) * rng.standard_normal((N, D))
    z1, z2 = z1.astype(dtype), z2.astype(dtype)
    ref = REFERENCES["nt_xent_loss"].torch_ref(torch.from_numpy(z1.astype(np.float64)),
                                               torch.from_numpy(z2.astype(np.float64)), temperature=tau,
                                               reduction="none")
    got = fl.nt_xent_loss(z1, z2, temperature=tau, reduction="none", num_threads=2)
    assert_close_spec(got, ref, dtype, reduced=False, what=f"nt_xent tau={tau}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("panel_rows, chunk_cols", [(0, 0), (48, 300), (64, 1), (7, 64)])
def test_nt_xent_symmetric_panels_in_chunks(panel_rows, chunk_cols, dtype):
    """The symmetric kernel's panels run in chunks of columns (metric.pyx sym_panel_block): any panel
    height and chunk width -- the default's (M = 4200: 128-row panels, 1024-column chunks), uneven
    ones, one column a chunk -- gives each row within SPEC §4 of a float64 NumPy log-sum-exp and the
    same bits for num_threads = 1, 2, 3."""
    from fastloss._blas import _kernel_gemm_single_threaded
    rng = np.random.default_rng(11)
    N, D, tau = 2100, 8, 0.2
    z = rng.standard_normal((2 * N, D))
    z[N:] = z[:N] + 0.3 * rng.standard_normal((N, D))
    u = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(dtype)
    u64 = u.astype(np.float64)
    s = u64 @ u64.T / tau
    np.fill_diagonal(s, -np.inf)
    pos = (np.arange(2 * N) + N) % (2 * N)
    m = s.max(axis=1, keepdims=True)
    ref = np.log(np.exp(s - m).sum(axis=1)) + m[:, 0] - s[np.arange(2 * N), pos]
    got = []
    for nt in (1, 2, 3):
        row_loss = np.empty(2 * N)
        with _kernel_gemm_single_threaded(_metric._GEMM_ADDRESS[0] or _metric._gemm_address()):
            _metric._K.nt_xent_symmetric(u, row_loss, inv_tau=1.0 / tau, pos_shift=N, num_threads=nt,
                                         panel_rows=panel_rows, chunk_cols=chunk_cols)
        got.append(row_loss)
    assert all(np.array_equal(got[0], g) for g in got[1:])
    assert_close_spec(got[0].astype(dtype), ref, dtype, reduced=False, what="nt_xent_symmetric rows")


def test_workspace_kept_per_thread():
    """The kernels' workspace (metric.pyx): the same 64-byte aligned memory for a thread's repeated
    calls (no fresh pages each call), another buffer for another Python thread, and a fresh one above
    the kept size that does not replace the kept one."""
    ws = _metric._K.workspace
    a, b = ws("test", 1000), ws("test", 900)
    assert a.ctypes.data % 64 == 0 and a.ctypes.data == b.ctypes.data and b.nbytes == 900
    with cf.ThreadPoolExecutor(1) as pool:
        other = pool.submit(lambda: ws("test", 1000).ctypes.data).result()
    assert other != a.ctypes.data
    assert ws("test", 64 << 20).nbytes == 64 << 20
    assert ws("test", 1000).ctypes.data == a.ctypes.data       # (the large one was not kept)
