"""Accuracy of ``src_c/fl_math.h`` (exp, log, log1p and the stable softplus / log_sigmoid / sigmoid).

The math probe (``fastloss/_kernels/_mathprobe.pxi``, compiled into the segmentation family at every
vector level) applies the very fused wrappers the loss kernels inline (``f_exp`` ...) to whole arrays,
at every vector level built and usable on this CPU.

Inputs
  float32: every 1031st float32 bit pattern (~4.2M values: every exponent, both signs, denormals,
           +-0, +-inf, nan), plus dense runs of consecutive floats around 1.0, 0.0, and the edges of
           expf (88.72283935546875 = last finite, -87.33654 = first denormal result,
           -103.97208 = last non-zero) and the smallest denormals (log of denormals).
  float64: ~2M values: random bit patterns over the whole range, uniform samples over exp's finite
           range and log1p's (-1, 1e3), dense runs around 1.0 and exp's edges
           (709.782712893384, -708.3964, -745.1332191019412).
Reference: NumPy in float64 for float32 results, NumPy in long double (x87 80-bit) for float64 results.
Error: |got - ref| in units of the last place of the *result's* dtype at ref (denormal ulp = the
smallest denormal), so 0.5 is a correctly rounded result.

Measured max ulp error (``pytest tests/test_math.py -s`` prints this table; AMD EPYC, gcc, both
levels give the same numbers)::

    function      float32 (baseline / avx2)   float64 (avx2)   bound asserted
    exp            0.93 / 0.96                  1.63             2
    exp_nonpos     0.96 / 0.97                  0.96 / 0.99      2   (x <= 0 to -87.5 / -708.5: softmax sums)
    exp_nonpos_vn  0.96 / 0.97 / 0.98           0.99 / 1.10      2   (its vector forms, fl_vec.h: the same bits,
                                                                      but AVX-512's table forms, to -87.35 / -708.40;
                                                                      float64: avx2 / avx512)
    log            0.76 / 0.76                  0.78 / 0.79      2
    log1p          1.44                         1.44             2
    log1p_unit     1.39 / 1.11 / 1.15           1.20             2   (x in [0, 1] only: exp(-|z|))
    softplus       1.93 / 1.72 / 1.72           2.00             3
    log_sigmoid    1.96 / 1.66 / 1.66           2.13             3
    sigmoid        2.52                         2.66             3

(log1p_unit, softplus and log_sigmoid in float32: baseline / avx2 / avx512, measured on Zen 5 since
log1p_unit became a polynomial in e (fl_math.h): without an fma, the baseline level rounds each Horner step
twice.  The non-default level is swept on every 4th value, so its float64 maxima can come out slightly
lower.  float64 errors are quantised to 2^-11 ulp: long double has 11 more bits.  The float64 exp worst case,
1.63 ulp at x = -1.0000000000024662, was confirmed with mpmath at 200 bits.)

Special values are checked exactly (C99 Annex F for exp/log/log1p; limits for the stable forms).
"""
import numpy as np
import pytest

from fastloss._kernels import ISA_LEVEL, load_level, usable_levels

FUNCS = ("exp", "exp_nonpos", "exp_nonpos_vn", "log", "log1p", "log1p_unit", "softplus", "log_sigmoid", "sigmoid")
BOUND = {"exp": 2.0, "exp_nonpos": 2.0, "exp_nonpos_vn": 2.0, "log": 2.0, "log1p": 2.0,
         "log1p_unit": 2.0, "softplus": 3.0, "log_sigmoid": 3.0,
         "sigmoid": 3.0}
LEVELS = usable_levels()
_MEASURED = {}  # (level, func, dtype) -> max ulp error, printed at the end


class _module:
    """The probe at one vector level, one method per function: ``_module(level).exp(x)``."""

    def __init__(self, level):
        self._probe = load_level("segmentation", level).math_probe

    def __getattr__(self, func):
        return lambda x: self._probe(func, x)


# ------------------------------------------------------------------------------------ references
def _softplus_ref(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))  # evaluated in the higher precision


def _log_sigmoid_ref(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _sigmoid_ref(x):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


REFS = {"exp": np.exp, "exp_nonpos": np.exp, "exp_nonpos_vn": np.exp, "log": np.log,
        "log1p": np.log1p, "log1p_unit": np.log1p, "softplus": _softplus_ref,
        "log_sigmoid": _log_sigmoid_ref, "sigmoid": _sigmoid_ref}


# exp_nonpos (the softmax sums' exp of x - max <= 0) flushes to 0 below these instead of returning a
# denormal: exact to the bound above them; below them test_exp_nonpos_flush holds it to the smallest normal.
# The vector forms at AVX-512 (table forms, fl_vec.h) flush from -87.35 / -708.40 (2^-126 / 2^-1022 their least
# scale).
EXP_NONPOS_FLUSH = {np.dtype(np.float32): -87.5, np.dtype(np.float64): -708.5}
EXP_NONPOS_VN_FLUSH = {np.dtype(np.float32): -87.35, np.dtype(np.float64): -708.40}
# the (level, dtype) pairs whose vector exp_nonpos is not the scalar form step for step
EXP_NONPOS_VN_OWN_FORM = {("avx512", np.dtype(np.float32)), ("avx512", np.dtype(np.float64))}


def exp_nonpos_flush(func, dtype):
    return (EXP_NONPOS_VN_FLUSH if func == "exp_nonpos_vn" else EXP_NONPOS_FLUSH)[np.dtype(dtype)]


def in_domain(func, x):
    """The inputs a function is defined for: log1p_unit only takes [0, 1] (its callers pass
    exp(-|z|)), exp_nonpos x <= 0 (down to its flush point); nan is kept (it must propagate)."""
    if func == "log1p_unit":
        return np.ascontiguousarray(x[((x >= 0) & (x <= 1)) | np.isnan(x)])
    if func in ("exp_nonpos", "exp_nonpos_vn"):
        return np.ascontiguousarray(x[((x <= 0) & (x >= exp_nonpos_flush(func, x.dtype))) | np.isnan(x)])
    return x


def reference(func, x):
    """The function at x in higher precision: float64 for float32 input, long double for float64."""
    hp = np.float64 if x.dtype == np.float32 else np.longdouble
    with np.errstate(all="ignore"):
        return REFS[func](x.astype(hp))


def ulp_errors(got, ref):
    """Error of ``got`` (float32/64) against the higher-precision ``ref``, in ulps of got's dtype.

    Where the correctly rounded reference is +-inf (overflow) or nan, only that exact result counts
    as right (error 0); anything else there is an infinite error."""
    fi = np.finfo(got.dtype)
    with np.errstate(all="ignore"):
        rounded = ref.astype(got.dtype)
        _, e = np.frexp(ref)  # |ref| = m 2^e, m in [0.5, 1): ulp = 2^(e - digits), >= the denormal ulp
        ulp = np.ldexp(np.ones(1, ref.dtype), np.maximum(e - (fi.nmant + 1), fi.minexp - fi.nmant))
        err = np.asarray(np.abs(got.astype(ref.dtype) - ref) / ulp, dtype=np.float64)
        same = (got == rounded) | (np.isnan(got) & np.isnan(ref))
        err[same & ~np.isfinite(err)] = 0.0
        err[np.isnan(err)] = np.inf
    return err


# ------------------------------------------------------------------------------------ inputs
def _f32_runs(centres, half_width):
    """``half_width`` consecutive float32 on each side of each centre."""
    out = []
    for c in centres:
        b = np.array(c, dtype=np.float32).view(np.int32)
        bits = b + np.arange(-half_width, half_width + 1, dtype=np.int64)
        bits = bits[(bits >= np.iinfo(np.int32).min) & (bits <= np.iinfo(np.int32).max)].astype(np.int32)
        out.append(bits.view(np.float32))
    return np.concatenate(out)


def float32_inputs():
    sweep = np.arange(0, 2**32, 1031, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = _f32_runs([1.0, -1.0, 0.5, 2.0, 88.72283935546875, -87.33654, -103.97208, 0.0, -0.0,
                       np.float32(1.4e-45), np.float32(1.17549435e-38), -0.5, 1e-4, 20.0, -20.0],
                      20_000)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0, 3.4028235e38, -3.4028235e38,
                        1e4, -1e4], dtype=np.float32)
    return np.ascontiguousarray(np.concatenate([sweep, edges, special]))


def float64_inputs():
    rng = np.random.default_rng(20240531)
    bits = rng.integers(0, 2**64, size=600_000, dtype=np.uint64, endpoint=False).view(np.float64)
    exp_range = rng.uniform(-746.0, 710.0, size=400_000)
    small = rng.uniform(-1.0, 1.0, size=300_000) * 10.0 ** rng.uniform(-20, 0, size=300_000)
    log1p_range = np.concatenate([rng.uniform(-1.0, 1e3, size=200_000),
                                  -1 + 10.0 ** rng.uniform(-16, 0, 100_000)])
    runs = []
    for c in [1.0, -1.0, 0.5, 709.782712893384, -708.3964185322641, -745.1332191019412, 0.0,
              5e-324, 2.2250738585072014e-308, 40.0, -40.0]:
        b = np.array(c, dtype=np.float64).view(np.int64)
        runs.append((b + np.arange(-20_000, 20_001, dtype=np.int64)).view(np.float64))
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0, 1.7976931348623157e308,
                        -1.7976931348623157e308, 1e4, -1e4])
    return np.ascontiguousarray(np.concatenate([bits, exp_range, small, log1p_range, *runs, special]))


_INPUTS = {}


def inputs(dtype):
    if dtype not in _INPUTS:
        _INPUTS[dtype] = float32_inputs() if dtype == np.float32 else float64_inputs()
        _INPUTS[(dtype, "ref")] = {}
    return _INPUTS[dtype]


def cached_reference(func, dtype):
    x = inputs(dtype)
    refs = _INPUTS[(dtype, "ref")]
    if func not in refs:
        refs[func] = reference(func, x)
    return refs[func]


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("func", FUNCS)
def test_max_ulp_error(func, dtype, level):
    # the level actually used gets the whole sweep, the others every 4th value (time)
    step = 1 if level == ISA_LEVEL else 4
    x = in_domain(func, np.ascontiguousarray(inputs(dtype)[::step]))
    x_before = x.copy()
    got = getattr(_module(level), func)(x)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(x, x_before)  # input untouched
    ref = cached_reference(func, dtype)[::step] if func not in ("log1p_unit", "exp_nonpos", "exp_nonpos_vn") \
        else reference(func, x)
    err = ulp_errors(got, ref)
    worst = int(np.argmax(err))
    _MEASURED[(level, func, np.dtype(dtype).name)] = float(err[worst])
    assert err[worst] <= BOUND[func], (
        f"{func}[{np.dtype(dtype).name}, {level}]: {err[worst]:.3g} ulp at x={x[worst]!r} "
        f"(got {got[worst]!r}, want {ref[worst]!r})")


def test_report_table():
    """Print the measured table (run after the sweep; shown with ``-s``) and check it: every level,
    function and dtype of the sweep was measured, each within its bound."""
    if not _MEASURED:
        pytest.skip("run together with test_max_ulp_error")
    dtypes = ("float32", "float64")
    swept = {(lvl, f, d) for lvl in LEVELS for f in FUNCS for d in dtypes}
    if len(_MEASURED) < len(swept):
        pytest.skip("only part of test_max_ulp_error ran (-k)")
    assert set(_MEASURED) == swept
    over = {k: v for k, v in _MEASURED.items() if not v <= BOUND[k[1]]}
    assert not over, f"beyond the bound: {over}"
    lines = [f"\nmax ulp error of src_c/fl_math.h (chosen level: {ISA_LEVEL})",
             f"{'level':9s} {'function':12s} {'float32':>8s} {'float64':>8s}"]
    for level in LEVELS:
        for func in FUNCS:
            a = _MEASURED.get((level, func, "float32"), float("nan"))
            b = _MEASURED.get((level, func, "float64"), float("nan"))
            lines.append(f"{level:9s} {func:12s} {a:8.3f} {b:8.3f}")
    print("\n".join(lines))


def test_levels_agree():
    """Every usable vector level runs the same straight-line code; only FMA contraction (avx2 and up)
    may change the last bits, so levels agree to 2 ulp."""
    if len(LEVELS) < 2:
        pytest.skip("only one vector level usable here")
    for dtype in (np.float32, np.float64):
        for func in FUNCS:
            x = in_domain(func, inputs(dtype)[::7].copy())
            results = [getattr(_module(lvl), func)(x) for lvl in LEVELS]
            ref = reference(func, x)
            for lvl, r in zip(LEVELS, results):
                # each level is within the bound of the reference ...
                with np.errstate(invalid="ignore"):
                    assert np.nanmax(ulp_errors(r, ref)) <= BOUND[func], (func, lvl)
            for r in results[1:]:
                # ... and the levels differ by FMA rounding only
                with np.errstate(invalid="ignore"):
                    diff = ulp_errors(r, results[0].astype(ref.dtype))
                assert np.nanmax(diff) <= 2.0, func


# special values: (function, x, expected); compared exactly, sign of zero included where stated
SPECIALS = [
    ("exp", -np.inf, 0.0), ("exp", np.inf, np.inf), ("exp", np.nan, np.nan), ("exp", 0.0, 1.0),
    ("exp", -0.0, 1.0), ("exp", 1e4, np.inf), ("exp", -1e4, 0.0),
    ("log", 0.0, -np.inf), ("log", -0.0, -np.inf), ("log", -1.0, np.nan), ("log", np.inf, np.inf),
    ("log", -np.inf, np.nan), ("log", np.nan, np.nan), ("log", 1.0, 0.0),
    ("log1p", -1.0, -np.inf),
    ("log1p", 0.0, 0.0), ("log1p", -0.0, -0.0), ("log1p", -2.0, np.nan),
    ("log1p", np.inf, np.inf), ("log1p", -np.inf, np.nan), ("log1p", np.nan, np.nan),
    ("log1p_unit", 0.0, 0.0), ("log1p_unit", np.nan, np.nan),
    ("softplus", 1e4, 1e4), ("softplus", -1e4, 0.0), ("softplus", np.inf, np.inf),
    ("softplus", -np.inf, 0.0), ("softplus", np.nan, np.nan),
    ("log_sigmoid", -1e4, -1e4), ("log_sigmoid", 1e4, 0.0), ("log_sigmoid", -np.inf, -np.inf),
    ("log_sigmoid", np.inf, 0.0), ("log_sigmoid", np.nan, np.nan),
    ("sigmoid", 1e4, 1.0), ("sigmoid", -1e4, 0.0), ("sigmoid", np.inf, 1.0), ("sigmoid", -np.inf, 0.0),
    ("sigmoid", 0.0, 0.5), ("sigmoid", -0.0, 0.5), ("sigmoid", np.nan, np.nan),
    ("exp_nonpos", 0.0, 1.0), ("exp_nonpos", -0.0, 1.0), ("exp_nonpos", -np.inf, 0.0),
    ("exp_nonpos", -1e4, 0.0), ("exp_nonpos", np.nan, np.nan),
    ("exp_nonpos_vn", 0.0, 1.0), ("exp_nonpos_vn", -0.0, 1.0), ("exp_nonpos_vn", -np.inf, 0.0),
    ("exp_nonpos_vn", -1e4, 0.0), ("exp_nonpos_vn", np.nan, np.nan),
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("func", ["exp_nonpos", "exp_nonpos_vn"])
def test_exp_nonpos_flush(dtype, level, func):
    """Below its flush point exp_nonpos gives 0 or the exact exp, never more than the smallest normal
    away: a softmax term that small never moves a sum that holds exp(0) = 1."""
    lo = exp_nonpos_flush(func, dtype)
    x = np.concatenate([np.linspace(lo, lo - 50, 20001), -np.logspace(np.log10(-lo), 30, 2001)]).astype(dtype)
    got = getattr(_module(level), func)(np.ascontiguousarray(x))
    ref = reference("exp_nonpos", x)
    assert np.all(got >= 0)
    assert np.max(np.abs(got.astype(ref.dtype) - ref)) <= np.finfo(dtype).tiny


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_nonpos_vector_forms_bits(dtype, level):
    """The vector forms of exp_nonpos (fl_vec.h's fl_expf_softmax_vn / fl_exp_nonpos_vn, 1-4 vectors in lock
    step, the last one masked), which the class-major and row passes of cross-entropy inline, give each value
    the same bits at every length and position (tails, lock-step groups) on the whole domain, the flush
    regions, +-0, -inf and nan included -- and the scalar form's bits, except where the level has a vector
    form of its own (EXP_NONPOS_VN_OWN_FORM, held to the ulp bound by test_max_ulp_error)."""
    x = inputs(dtype)
    with np.errstate(invalid="ignore"):
        x = np.concatenate([x[(x <= 0) | np.isnan(x)]] + [
            np.linspace(lo + 1, lo - 1, 4001).astype(dtype)
            for lo in (EXP_NONPOS_FLUSH[np.dtype(dtype)], EXP_NONPOS_VN_FLUSH[np.dtype(dtype)])] + [
            np.array([0.0, -0.0, -np.inf, np.nan, -1e4, EXP_NONPOS_FLUSH[np.dtype(dtype)]], dtype)])
    m = _module(level)
    whole = m.exp_nonpos_vn(x)
    own_form = (level, np.dtype(dtype)) in EXP_NONPOS_VN_OWN_FORM
    if not own_form:
        assert whole.tobytes() == m.exp_nonpos(x).tobytes(), level
    for n in range(1, 70):
        xs = np.ascontiguousarray(x[-n:])
        assert m.exp_nonpos_vn(xs).tobytes() == whole[-n:].tobytes(), (level, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("func,x,expected", SPECIALS)
def test_special_values(func, x, expected, dtype):
    arr = np.full(37, x, dtype=dtype)  # long enough to go through the vector loop and its tail
    for level in LEVELS:
        got = getattr(_module(level), func)(arr)
        if np.isnan(expected):
            assert np.isnan(got).all(), (func, x, level, got[0])
        else:
            np.testing.assert_array_equal(got, np.full(37, expected, dtype=dtype),
                                          err_msg=f"{func}({x}) {level}")
            if expected == 0:
                assert (np.signbit(got) == np.signbit(expected)).all(), f"{func}({x}) sign of zero ({level})"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_edges_and_denormals(dtype):
    """Overflow/underflow edges of exp and log of denormals, against the reference exactly where the
    result must be exactly representable (inf, 0, smallest denormal)."""
    fl = _module(ISA_LEVEL)
    if dtype == np.float32:
        # expf's clamp constant 88.72283935546875 is just above log(FLT_MAX): exp of it rounds to inf
        # (as the float64 reference says); the float32 below it is the last finite result.
        hi = np.float32(88.72283935546875)
        last_finite = np.nextafter(hi, np.float32(0))
        assert np.isfinite(fl.exp(np.array([last_finite]))[0])
        assert fl.exp(np.array([hi]))[0] == np.inf
        with np.errstate(over="ignore"):
            assert np.float32(np.exp(np.float64(hi))) == np.inf
        tiny = np.array([-103.97208], dtype=np.float32)
        assert fl.exp(np.array([np.float32(-104.0)]))[0] == 0.0
        assert 0 < fl.exp(np.array([np.float32(-103.9)]))[0] < np.finfo(np.float32).smallest_normal
        den = np.array([1.4e-45, 2.8e-45, 1e-40, 1.1754942e-38], dtype=np.float32)
    else:
        last_finite = np.float64(709.782712893384)
        assert np.isfinite(fl.exp(np.array([last_finite]))[0])
        assert fl.exp(np.array([np.nextafter(last_finite, np.inf)]))[0] == np.inf
        assert fl.exp(np.array([-746.0]))[0] == 0.0
        assert 0 < fl.exp(np.array([-740.0]))[0] < np.finfo(np.float64).smallest_normal
        tiny = np.array([-745.1], dtype=np.float64)
        den = np.array([5e-324, 1e-320, 1e-310, 2.2250738585072e-308], dtype=np.float64)
    assert ulp_errors(fl.exp(tiny), reference("exp", tiny)).max() <= BOUND["exp"]
    assert ulp_errors(fl.log(den), reference("log", den)).max() <= BOUND["log"]


@pytest.mark.parametrize("func", FUNCS)
def test_rejects_bad_arrays(func):
    fl = _module(ISA_LEVEL)
    with pytest.raises(TypeError):
        getattr(fl, func)(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError):
        getattr(fl, func)(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        getattr(fl, func)(np.zeros(6)[::2])
    with pytest.raises(ValueError, match="unknown function"):
        fl.tanh(np.zeros(3))
    assert getattr(fl, func)(np.zeros(0, dtype=np.float32)).shape == (0,)
