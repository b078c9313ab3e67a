"""Core losses take dataframe list columns as input: pandas Series of object cells or of an ArrowDtype
list type, Polars List / Array Series, pyarrow list arrays -- converted through Arrow (one conversion of
the column, no Python loop per row), with one list length per column and no nulls.  References: torch
float64 on the same values.  Importing fastloss imports neither pandas nor Polars."""
import os
import subprocess
import sys

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import torch.nn.functional as F  # noqa: E402
from fl_testing import assert_close_spec, to_torch64, to_torch_long  # noqa: E402

import fastloss as fl  # noqa: E402

N, C = 200, 4


def _data(dtype):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((N, C)) * 2).astype(dtype), rng.integers(0, C, N), \
        (rng.random((N, C)) > 0.5).astype(dtype)


def _columns(a):
    """The (N, k) array as every list column kind available here."""
    out = {"pyarrow list": pa.array(list(a)),
           "pyarrow fixed_size_list": pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), a.shape[1]),
           "pyarrow chunked": pa.chunked_array([pa.array(list(a[:50])), pa.array(list(a[50:]))])}
    try:
        import pandas as pd
    except ImportError:
        pass
    else:
        out["pandas object cells"] = pd.Series(list(a))
        out["pandas object lists"] = pd.Series([list(map(float, r)) for r in a])
        out["pandas ArrowDtype list"] = pd.Series(out["pyarrow list"], dtype=pd.ArrowDtype(out["pyarrow list"].type))
        fsl = out["pyarrow fixed_size_list"]
        out["pandas ArrowDtype fixed_size_list"] = pd.Series(fsl, dtype=pd.ArrowDtype(fsl.type))
    try:
        import polars as pl
    except ImportError:
        pass
    else:
        out["polars Array"] = pl.Series(a)
        out["polars List"] = pl.Series([list(map(float, r)) for r in a])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_list_columns_as_inputs(dtype):
    x, y, multi = _data(dtype)
    ce = float(F.cross_entropy(to_torch64(x), to_torch_long(y)))
    bce = F.binary_cross_entropy_with_logits(to_torch64(x), to_torch64(multi), reduction="none").numpy()
    cols = _columns(x)
    targets = _columns(multi)
    assert len(cols) >= 3
    for kind, col in cols.items():
        # Python lists of floats become float64 lists (Arrow's double); typed cells keep their dtype
        exact = dtype if "lists" not in kind and "List" not in kind else np.float64
        got = fl.cross_entropy(col, y)
        assert_close_spec(got, ce, dtype, reduced=True, result_type=False, what=kind)
        per_row = fl.binary_cross_entropy_with_logits(col, targets[kind], reduction="none")
        assert per_row.shape == (N, C) and per_row.dtype == exact, kind
        assert_close_spec(per_row, bce, dtype, result_type=False, what=kind)


def test_label_columns():
    pd = pytest.importorskip("pandas")
    x, y, _ = _data(np.float64)
    ref = float(F.cross_entropy(to_torch64(x), to_torch_long(y)))
    assert_close_spec(fl.cross_entropy(pd.Series(list(x)), pd.Series(y)), ref, np.float64, reduced=True)
    pl = pytest.importorskip("polars")
    assert_close_spec(fl.cross_entropy(pl.Series(x), pl.Series(y)), ref, np.float64, reduced=True)


def test_bad_list_columns():
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="different lengths"):
        fl.cross_entropy(pd.Series([[1.0, 2.0], [3.0]]), [0, 1])
    with pytest.raises(ValueError, match="input has 1 row.* missing value"):
        fl.cross_entropy(pd.Series([[1.0, 2.0], [3.0, None]]), [0, 1])
    with pytest.raises(ValueError, match="input has 1 row"):
        fl.cross_entropy(pd.Series([[1.0, 2.0], None]), [0, 1])
    with pytest.raises(TypeError, match="input must hold numbers or lists of numbers"):
        fl.cross_entropy(pd.Series([["a", "b"], ["c", "d"]]), [0, 1])
    with pytest.raises(TypeError, match="input"):
        fl.cross_entropy(pd.Series([[1.0, "a"], [2.0, "b"]]), [0, 1])
    # object cells that are not lists keep NumPy's rules and messages
    with pytest.raises(TypeError, match="object array holding str"):
        fl.mse_loss(pd.Series(["a", "b"], dtype=object), np.zeros(2))
    pl = pytest.importorskip("polars")
    with pytest.raises(ValueError, match="target|input"):
        fl.mse_loss(pl.Series([[1.0, 2.0], [3.0]]), np.zeros((2, 2)))


def test_import_does_not_load_pandas_or_polars():
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    code = ("import sys, numpy as np, fastloss as fl\n"
            "fl.cross_entropy(np.zeros((2, 3)), np.array([0, 1]))\n"
            "print(sorted(m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=root)
    assert out.stdout.strip() == "[]"
