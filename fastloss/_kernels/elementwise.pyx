# cython: language_level=3
"""Elementwise losses: every loss whose item is one element of (prediction, target[, operand]).

Binary / probabilistic: binary cross-entropy on probabilities and on logits, sigmoid focal loss, binary
hinge, pointwise KL divergence.  Regression: MSE, L1, Huber, smooth L1, Poisson NLL, Gaussian NLL,
log-cosh, quantile, MAPE, sMAPE, MSLE.  And the VAE Gaussian KL term, whose item is a row of latents
(note h).

Read ``_common.pxd`` first: every kernel here is a *block function* run by ``run``.

Design (one loop, one point function per loss):

a. **Point functions.**  Each loss is one ``cdef inline`` function ``*_point(x, y, params..., &d) -> loss``
   returning the element's loss and writing d(loss)/dx -- the formula, its stable form and its derivative
   in one place, with the derivation in a comment.  Nothing else holds maths.

b. **One block loop** (``elementwise_block``), fused over the loss *kind* -- a tag struct per loss
   (``MseK``, ``BceLogitsK``, ...) whose only member is the shared context ``ElemCtx`` -- and over the
   floating type.  Cython emits one copy per (kind, dtype) with the point function inlined: no function
   pointer and no switch in the inner loop, which stays branch-free and vectorises.  The kind-specific
   parts of the loop (an extra operand, a second gradient, a fallback) are ``kind_t is ...`` tests,
   resolved at compile time.

c. **Typed configuration.**  Python picks a loss by ``Kind`` (a ``cpdef enum``, exported as
   ``Kind.HUBER`` ...) and passes its parameters as keywords of the entry (``delta=``, ``squared=``,
   ``log_target=`` ...), which fill the C struct ``ElemParams``; each point function reads the fields
   it needs.  ``BLOCKS`` (below the loop) is the one kind -> block function table.

d. **Operands** come from ``_common.pxd``'s streams: prediction x, target y and a sample weight
   (scalar, last-axis vector or full array; 1.0 when the loss has none).  One more operand, ``aux``,
   serves the two losses that take one: BCE-with-logits' ``pos_weight`` and the Gaussian NLL's
   ``var``.  ``var`` may also hold torch's homoscedastic variance, one value per row of the last axis
   (``aux_rows``): item i reads var[i // K]; segments already stop at row ends, so a segment reads one
   value.

e. **Validation** is a per-kind predicate ``invalid(...)`` counted branch-free in the same loop
   (constant False where a loss validates nothing, so it compiles away); a segment with a bad item is
   rescanned for the first one, whose index the block returns.  The Python wrapper raises after the GIL
   is re-taken (``fastloss/_errors.py``).

f. **Fallback forms.**  A kind may have a second, literal form for the rare items where its stable form
   gives nan (``fallback``): BCE-with-logits with an infinite target.  With ``check_nan`` the block
   looks for nan results and recomputes them (``refit_nan``); the entry sets it for reduction="none",
   and for a reduction only when the sum comes out nan (a second run) -- the common case pays nothing.

g. **Weights and the mean.**  Items are multiplied by the sample weight.  For a reduction the block sums
   its own items as it goes (``_common.pxd``'s ``fn_sums``: the arithmetic kinds straight into the
   block's double lanes, over the whole block at once where they can; the others a segment's losses
   into an L1 buffer, then into the lanes) and, when the driver asks, the weights too, so a weighted mean
   sum(w*l)/sum(w) takes one pass.  With a gradient
   and a weighted mean, ``weight_block`` sums the weights first (a cheap pass over the weight operand
   alone) so the gradient is scaled as it is written.

h. **Gaussian KL** (``gauss_kl_block``): the item is a row of D latents (mu, logvar as x, y), its loss
   the sum of the elementwise ``gauss_kl_point`` over the row times the row's weight.  It shares the
   context, the weight pass and the entry steps; its loop is the only one here that sums over a row.
"""
from fastloss._kernels._common cimport (
    floating, BlockFn, BlockSums, Operand, operand_seg, add_operand, ElemStreams, next_segment, set_streams,
    ptr_or_null, run, prefetch_end, SEG, FL_LANES, fl_lanes_zero, fl_lanes_total, lanes_add, f_exp,
    f_exp_nonpos, f_expm1mx, f_log, f_log1p, f_log1p_unit_inv, f_abs, f_max, f_min, f_min_nonneg,
)
from fastloss._kernels._common cimport (
    check_buffer, check_optional, check_operand, check_count, buffer_items, items_product,
    PyArrayObject, PyArray_NDIM, PyArray_DIMS,
)

# torch's Gaussian NLL constant 0.5 * math.log(2 * math.pi) exactly as Python computes it (one ulp below
# log(2 pi) / 2 correctly rounded: its shortest repr), as a C constant (Cython's DEF is deprecated)
cdef extern from *:
    """
    #define FL_ELEMENTWISE_HALF_LOG_2PI 0.9189385332046727
    """
    const double HALF_LOG_2PI "FL_ELEMENTWISE_HALF_LOG_2PI"

from libc.math cimport frexp

cdef extern from "fl_math.h" nogil:
    float fl_log_coshf(float d, float* th)
    double fl_log_cosh(double d, double* th)

cdef extern from "fl_lanes.h" nogil:
    enum: FL_LANES_BITS
    ctypedef struct fl_lanes_bits:
        pass
    void fl_lanes_bits_zero(fl_lanes_bits* b)
    void fl_lanes_bits_add(fl_lanes_bits* b, const float* l)
    void fl_lanes_bits_add_n(fl_lanes_bits* b, const float* l, Py_ssize_t n)
    bint fl_lanes_bits_total(const fl_lanes_bits* b, double* total)

cdef extern from "fl_stream.h" nogil:
    void fl_prefetch_range(const void* p, Py_ssize_t nbytes)
    void fl_stream_copy(void* dst, const void* src, Py_ssize_t nbytes)
    void fl_copy_short(void* dst, const void* src, Py_ssize_t nbytes)
    void fl_stream_fence()

cdef enum:
    # An output of at least this many bytes that the caller passed in (out=, grad_out=: its pages exist)
    # is written with streaming stores (src_c/fl_stream.h) by the cheapest kinds: it is 4x a core's
    # 2 MiB L2, so it streams through memory, and its reads-for-ownership would double its traffic.
    STREAM_BYTES = 8 << 20
    # The block function's loops prefetch x and y this many items ahead (elementwise_block), where the
    # inputs do not fit one core's L2 (pf_end); the hardware prefetcher alone fell behind.  10^7 items
    # (80 MB, from this machine's large L3), wall-clock minima, Intel Xeon, AVX-512: in the segment loop,
    # BCE-with-logits, focal and Huber with a reused grad_out=, and the BCE mean, 0.78-0.91 of the time at
    # T=2, 0.84-0.98 at T=1 (4 segments ahead: 0.80-0.93 / 0.89-1.03); in a whole block's sum (sum_items,
    # sum_items_bits), the MSE / L1 / Huber means 0.56-0.75 at T=1, 0.87-0.95 at T=2 (1024 items ahead:
    # 0.53-0.64 / 0.94-0.98).  Not in the whole-block "none" loop (store_items): there chunks of 256-512
    # items with a prefetch each read 1.08-1.14 at T=1.
    PREFETCH_AHEAD = 2 * SEG


# The losses (note c).  The Python wrappers name them as Kind.MSE ...; the numbers are internal.
cpdef enum Kind:
    BCE                  # binary cross-entropy on probabilities
    BCE_LOGITS           # binary cross-entropy on logits (aux: pos_weight)
    FOCAL                # sigmoid focal loss (the entry picks FOCAL_SQUARE for gamma == 2, FOCAL_ONE for 0)
    FOCAL_SQUARE
    FOCAL_ONE
    HINGE
    KL
    MSE
    L1
    HUBER
    SMOOTH_L1            # (the entry picks SMOOTH_L1_POW2 for a power-of-two beta)
    SMOOTH_L1_POW2
    POISSON_LOG          # Poisson NLL, log_input=True
    POISSON              # Poisson NLL, log_input=False
    GAUSSIAN_NLL         # aux: var
    LOG_COSH
    QUANTILE
    MAPE
    SMAPE
    MSLE
    N_KINDS


cdef struct ElemParams:
    # the parameters of every kind, by name (the entry's keywords); a kind reads only its own
    double alpha_0            # focal: alpha_t at t = 0 (1 - alpha; 1 when alpha < 0 disables it)
    double alpha_step         # focal: alpha_t at t = 1 minus alpha_t at t = 0
    double gamma              # focal: the focusing exponent
    double margin             # hinge
    bint squared              # hinge: square the hinge
    bint log_target           # kl: the target holds log-probabilities
    double delta              # huber: the switch point
    double beta               # smooth_l1: the switch point (0: L1)
    double inv_beta           # smooth_l1_pow2: 1 / beta, exact
    double eps                # poisson (log_input=False): log(x + eps); gaussian_nll: the variance
                              # clamp; mape: the divisor's floor (0: none, a zero target is invalid)
    double q                  # quantile
    bint full                 # poisson, gaussian_nll: add the constant terms
    bint has_pos_weight       # bce_logits: False gives l = 1 exactly (torch has no l then: an infinite
                              # target must not give 0 * inf)


cdef struct ElemCtx:
    ElemStreams s             # prediction x, target y, sample weight (1.0 when absent); the last axis
                              # length K; s.periodic: some operand is a last-axis vector (or aux_rows);
                              # s.row_cut: segments stop at row ends (such an operand not tiled, or
                              # aux_rows)
    Operand aux               # the second operand (note d): pos_weight or var; unused by other kinds
    bint aux_rows             # aux holds one value per row of the last axis: item i reads aux[i // K]
    ElemParams p
    bint check_nan            # look for nan results and recompute them with the fallback form (note f)
    Py_ssize_t D              # gaussian KL: latents per row (note h)
    void* grad                # d(returned loss)/dx, one per element, or NULL
    bint stream_out           # write reduction="none"'s losses / the gradient with streaming stores
    bint stream_grad          # (a segment at a time from an L1 buffer; fl_stream.h)
    void* grad2               # the second gradient: d/dvar (Gaussian NLL), d/dlogvar (Gaussian KL), or NULL
    double grad_scale         # d(returned loss)/d(element loss): 1/count for means, else 1
    Py_ssize_t pf_end         # the loops prefetch x and y PREFETCH_AHEAD items ahead up to here: n where
                              # the two pass one core's L2, else 0 (prefetch_end)


# Kind tags (note b): layout-identical wrappers of ElemCtx whose only job is to select a specialisation.
cdef struct BceK:
    ElemCtx e
cdef struct BceLogitsK:
    ElemCtx e
cdef struct FocalK:
    ElemCtx e
cdef struct FocalSquareK:       # focal with gamma == 2 (the default): q^gamma = q * q
    ElemCtx e
cdef struct FocalOneK:          # focal with gamma == 0: q^gamma = 1, alpha-weighted BCE-with-logits
    ElemCtx e
cdef struct HingeK:
    ElemCtx e
cdef struct KlK:
    ElemCtx e
cdef struct MseK:
    ElemCtx e
cdef struct L1K:
    ElemCtx e
cdef struct HuberK:
    ElemCtx e
cdef struct SmoothL1K:
    ElemCtx e
cdef struct SmoothL1Pow2K:      # smooth L1 with beta a power of two (the default 1): / beta as * (1 / beta)
    ElemCtx e
cdef struct PoissonLogK:
    ElemCtx e
cdef struct PoissonK:
    ElemCtx e
cdef struct GaussNllK:
    ElemCtx e
cdef struct LogCoshK:
    ElemCtx e
cdef struct QuantileK:
    ElemCtx e
cdef struct MapeK:
    ElemCtx e
cdef struct SmapeK:
    ElemCtx e
cdef struct MsleK:
    ElemCtx e

ctypedef fused kind_t:
    BceK
    BceLogitsK
    FocalK
    FocalSquareK
    FocalOneK
    HingeK
    KlK
    MseK
    L1K
    HuberK
    SmoothL1K
    SmoothL1Pow2K
    PoissonLogK
    PoissonK
    GaussNllK
    LogCoshK
    QuantileK
    MapeK
    SmapeK
    MsleK


# =====================================================================================================
# Point functions: binary and probabilistic losses
# =====================================================================================================

# Binary cross-entropy on probabilities p, torch's formula (aten/src/ATen/native/Loss.cpp):
#   loss = (y - 1) * max(log1p(-p), -100) - y * max(log(p), -100)
# and torch's backward (binary_cross_entropy_backward), which autograd returns -- note it is the
# derivative of the *unclamped* loss with the denominator clamped, not of the clamped loss:
#   dloss/dp = (p - y) / max((1 - p) * p, EPSILON),  EPSILON = 1e-12 rounded to float (torch's constant
#   is a float, also in double kernels: the clamp is 9.99999996e-13)
# Inputs are validated to [0, 1] (no nan), so f_max's nan rule only matters for log1p(-1): fl_log1p
# gives nan there, and f_max(nan, -100) = -100 is the clamp torch applies to log(0) = -inf.
cdef inline floating bce_point(floating p, floating y, floating* dp) noexcept nogil:
    cdef floating one = 1
    cdef floating log_p = f_max(f_log(p), <floating> -100)
    cdef floating log_1mp = f_max(f_log1p(-p), <floating> -100)
    dp[0] = (p - y) / f_max((one - p) * p, <floating> <float> 1e-12)
    return (y - one) * log_1mp - y * log_p


# Binary cross-entropy on logits, torch's stable form (aten/src/ATen/native/Loss.cpp,
# binary_cross_entropy_with_logits):
#   l = 1 + (pos_weight - 1) * y                   (l = 1 without pos_weight)
#   loss = (1 - y) * x + l * softplus(-x),          softplus(-x) = max(-x, 0) + log1p(e),  e = exp(-|x|)
#   dloss/dx = (1 - y) - l * sigmoid(-x),           sigmoid(-x) = (x >= 0 ? e : 1) / (1 + e)
# One exp and one log1p per element serve both the loss and the gradient.  The exp's argument -|x| is <= 0
# (or nan), so it is f_exp_nonpos: without the overflow handling and a shorter dependency chain (in float64
# without fl_exp's division); W6's float32 mean 2.7 -> 2.35 ns/item on Zen 2 (float64 within noise).
# Below -87.5 (float32) / -708.5 (float64) it gives 0 instead of a denormal e, which changes the loss and
# gradient by less than 1e-38 / 1e-308 absolute (focal's too; tests/test_bce_logits.py EDGES).
cdef inline floating bce_logits_point(floating x, floating y, floating pw, floating* dx) noexcept nogil:
    # typed constants: a bare 1 is the C double 1.0 and would widen float32 maths to double
    cdef floating one = 1, zero = 0
    cdef floating e = f_exp_nonpos(-f_abs(x))
    cdef floating inv = one / (one + e)          # sigmoid(-|x|)'s division (float64: also log1p's correction;
                                                 # float32's log1p needs none: without a gradient it is dropped)
    cdef floating ei = e * inv                   # sigmoid(-|x|)
    cdef floating l = one + (pw - one) * y
    cdef floating mx = f_max(x, zero)
    cdef floating mn = f_min(x, zero)
    # (1 - y) x + l max(-x, 0) would cancel in float32 for x < 0 (y ~ 0); with 1 - y - l = -pw y it is
    # (1 - y) max(x, 0) - pw y min(x, 0): two non-negative terms (y in [0, 1]).  mn - mn is 0 for finite x
    # and nan at x = -inf, where torch's literal form has inf - inf (at +inf both forms agree).
    #   dloss/dx = (1 - y) - l sigmoid(-x)  =  x >= 0: (1 - y) - l sigmoid(-|x|);  x < 0: l sigmoid(-|x|) - pw y
    # The rearrangement multiplies y by 0 where torch does not: for y = +-inf it gives nan where torch
    # may not.  Every nan result is therefore recomputed by bce_logits_literal (note f).
    dx[0] = ((one - y) - l * ei) if x >= zero else (l * ei - pw * y)
    return ((one - y) * mx - pw * y * mn + (mn - mn)) + l * f_log1p_unit_inv(e, inv)


cdef inline floating bce_logits_literal(floating x, floating y, floating pw, bint has_pw,
                                        floating* dx) noexcept nogil:
    """torch's own forms: loss (1 - y) x + l softplus(-x) with l = 1 exactly without pos_weight, and
    its backward formula sigmoid(x) - y, or (pw y + 1 - y) sigmoid(x) - pw y with pos_weight
    (aten/src/ATen/native/Loss.cpp).  Where bce_logits_point gave nan (infinite or nan y, nan or -inf
    x): these give torch's value there, +-inf or nan."""
    cdef floating one = 1, zero = 0
    cdef floating e = f_exp_nonpos(-f_abs(x))
    cdef floating sig = one / (one + e) if x >= zero else e / (one + e)
    cdef floating l = one + (pw - one) * y if has_pw else one
    dx[0] = ((pw * y + one - y) * sig - pw * y) if has_pw else (sig - y)
    return (one - y) * x + l * (f_max(-x, zero) + f_log1p_unit_inv(e, one / (one + e)))


# q ** g for q >= 0 with torch.pow's conventions (0 ** 0 = 1, 0 ** g = 0 for g > 0), branch-free.
# ``square`` is a compile-time constant after inlining (the FocalSquare kind): gamma = 2, the default,
# then costs one multiply and is exact, as torch's pow(q, 2) is.
cdef inline floating pow_nonneg(floating q, floating g, bint square) noexcept nogil:
    if square:
        return q * q
    cdef floating r = f_exp(g * f_log(q))
    return <floating> 1 if g == 0 else r


# Sigmoid focal loss, torchvision.ops.sigmoid_focal_loss on logits x and targets t:
#   p = sigmoid(x), ce = BCE-with-logits(x, t), p_t = p t + (1 - p)(1 - t),
#   loss = alpha_t * ce * (1 - p_t)^gamma,   alpha_t = alpha t + (1 - alpha)(1 - t)  (1 if alpha < 0)
# Stable form: with e = exp(-|x|) both p and 1 - p come from e without cancellation
#   p = 1/(1+e) or e/(1+e),  1 - p = the other,  ce = (1 - t) x + max(-x, 0) + log1p(e)
# (one exp, one log and one division per element, for the loss and its gradient together)
#   q = 1 - p_t = p (1 - t) + (1 - p) t          (both terms >= 0 for t in [0, 1]: no cancellation)
# so large |x| (e.g. 1e4) neither overflows nor loses q; torchvision's 1 - p_t cancels there.
# Derivative (what autograd gives through the torchvision formula):
#   dce/dx = p - t,  dq/dx = p (1 - p) (1 - 2t),  d(q^g)/dq = g q^(g-1)
#   dloss/dx = alpha_t * ((p - t) q^g + ce * g q^(g-1) * dq/dx)
# p - t is formed as p (1 - t) - (1 - p) t (equal since p + (1 - p) = 1): for a confident row (x = 40,
# t = 1) p rounds to 1 and p - t to 0, while (1 - p) t keeps -e^-40; the literal p - t lost a third of
# the gradient there (its q^g ce' term), in float64 too.
# g q^(g-1) is formed as g q^g / q (2q when square); at q = 0 (then p (1 - p) = 0 too) the term is
# taken as 0, the limit, where torch's autograd gives 0 for g >= 1 and nan (inf * 0) for 0 < g < 1.  At
# g = 0 (focal_one_point) the term is not formed: torch's pow backward gives zeros for exponent 0, where
# ce * 0 is nan at an infinite ce (x = +-inf).
# Parameters: a0 = alpha_t at t = 0, da = alpha_t(1) - alpha_t(0), g = gamma.
# Constants are typed (``one``): a bare ``1`` becomes the C double 1.0 and would widen float32 maths.
cdef inline floating sigmoid_bce(floating x, floating t, floating* p, floating* pm) noexcept nogil:
    """BCE-with-logits of (x, t) as in bce_logits_point (pos_weight 1), with p = sigmoid(x) and pm = 1 - p
    from one exp(-|x|): (1 - t) x + max(-x, 0) written as (1 - t) max(x, 0) - t min(x, 0) so nothing
    cancels in float32; mn - mn is nan at x = -inf."""
    cdef floating one = 1, zero = 0
    cdef floating e = f_exp_nonpos(-f_abs(x))
    cdef floating inv = one / (one + e)
    p[0] = inv if x >= zero else e * inv
    pm[0] = e * inv if x >= zero else inv
    cdef floating mn = f_min(x, zero)
    return ((one - t) * f_max(x, zero) - t * mn + (mn - mn)) + f_log1p_unit_inv(e, inv)


cdef inline floating focal_point(floating x, floating t, floating a0, floating da, floating g, bint square,
                                 floating* dx) noexcept nogil:
    cdef floating one = 1, zero = 0
    cdef floating p, pm
    cdef floating ce = sigmoid_bce(x, t, &p, &pm)
    cdef floating q = p * (one - t) + pm * t
    cdef floating qg = pow_nonneg(q, g, square)
    cdef floating alpha_t = a0 + da * t
    cdef floating dpow
    if square:
        dpow = (one + one) * q
    else:
        dpow = g * qg / q if q > zero else zero
    dx[0] = alpha_t * ((p * (one - t) - pm * t) * qg + ce * dpow * (p * pm * (one - (one + one) * t)))
    return alpha_t * ce * qg


cdef inline floating focal_one_point(floating x, floating t, floating a0, floating da, floating* dx) noexcept nogil:
    """focal_point at gamma = 0 (q^0 = 1): alpha_t * BCE-with-logits, its derivative alpha_t (p - t)."""
    cdef floating one = 1
    cdef floating p, pm
    cdef floating ce = sigmoid_bce(x, t, &p, &pm)
    cdef floating alpha_t = a0 + da * t
    dx[0] = alpha_t * (p * (one - t) - pm * t)
    return alpha_t * ce


# Binary SVM hinge on scores s with targets y in {-1, +1} (SPEC section 6):
#   v = margin - y s,  loss = max(0, v)  (squared: max(0, v)^2)
#   dloss/ds = -y where v > 0, else 0    (squared: -2 y max(0, v)); nan propagates to loss and gradient.
cdef inline floating hinge_point(floating s, floating y, floating margin, bint squared,
                                 floating* ds) noexcept nogil:
    cdef floating zero = 0, one = 1
    cdef floating v = margin - y * s
    cdef floating h = f_max(zero, v)                   # f_max returns v when v is nan
    cdef floating step = one if v > zero else zero
    step = v if v != v else step
    ds[0] = -y * ((h + h) if squared else step)
    return h * h if squared else h


# KL divergence, pointwise, torch.kl_div (aten/src/ATen/native/Loss.cpp):
#   log_target False: xlogy(t, t) - t x        (xlogy: 0 where t == 0, nan where t is nan)
#   log_target True:  exp(t) (t - x)
#   dloss/dx = -t  (or -exp(t))
cdef inline floating kl_point(floating x, floating t, bint log_target, floating* dx) noexcept nogil:
    cdef floating zero = 0
    cdef floating et
    if log_target:
        et = f_exp(t)
        dx[0] = -et
        return et * (t - x)
    dx[0] = -t
    return (t * f_log(t) if t != zero else zero) - t * x


# =====================================================================================================
# Point functions: regression losses (d = input - target throughout)
# =====================================================================================================
cdef inline floating f_sign(floating d) noexcept nogil:
    """torch.sign: -1, 0, +1 (0 for nan too, as torch.sign and the gradients built on it)."""
    return <floating> (d > 0) - <floating> (d < 0)


cdef inline floating mse_point(floating x, floating y, floating* dx) noexcept nogil:
    # (x - y)^2,  d/dx = 2 (x - y)
    cdef floating d = x - y
    dx[0] = 2 * d
    return d * d


cdef inline floating l1_point(floating x, floating y, floating* dx) noexcept nogil:
    # |x - y|,  d/dx = sign(x - y) (0 at 0, as torch)
    cdef floating d = x - y
    dx[0] = f_sign(d)
    return f_abs(d)


cdef inline floating huber_point(floating x, floating y, floating delta, floating* dx) noexcept nogil:
    # torch (aten/src/ATen/native/cpu/PointwiseOpsKernel.cpp): |d| < delta ? d^2 / 2 : delta (|d| - delta / 2)
    # d/dx = clamp(d, -delta, delta), written as torch's selects so that nan stays nan
    # The loss as m (|d| - m / 2) with m = min(|d|, delta): the same bits as torch's two branches (for
    # m = |d|, |d| - |d| / 2 is exactly |d| / 2, so m times it is d^2 / 2 rounded once), with no select
    # (W8's huber mean: 6 vector operations per 8 items instead of 10; nan stays nan through |d|)
    cdef floating d = x - y
    cdef floating ad = f_abs(d)
    cdef floating m = f_min_nonneg(ad, delta)   # (delta > 0 and not nan: huber_loss validates it)
    dx[0] = -delta if d < -delta else (delta if d > delta else d)
    return m * (ad - <floating> 0.5 * m)


cdef inline floating smooth_l1_point(floating x, floating y, floating beta, floating inv_beta, bint pow2,
                                     floating* dx) noexcept nogil:
    # torch: |d| < beta ? d^2 / (2 beta) : |d| - beta / 2;  beta = 0 is L1 (the first branch never runs)
    # d/dx = d / beta inside, sign(d) outside (0 at d = 0 for beta = 0, as torch's l1_loss); a nan d is
    # "inside" for beta > 0 (torch's backward selects d < -beta, d > beta, else d / beta: nan), sign(d) = 0
    # for beta = 0 (torch's l1_loss)
    # ``pow2`` (a constant: the SmoothL1Pow2K kind): beta is a power of two and inv_beta = 1 / beta
    # exactly, so t * inv_beta is the exact t / beta rounded once, as the division is: the same bits
    # without a division (W8-sized float32 mean 138 -> ~105 us at the default beta = 1).  The loss as
    # Huber's min form (huber_point), m = min(|d|, beta): (|d| - m / 2) (m / beta) is |d| - beta / 2 outside
    # (m / beta = 1 exactly) and (|d| / 2) (|d| / beta), one rounding of d^2 / (2 beta), inside -- no select
    # (5-8% faster, AVX2 and AVX-512).  The same bits as the two branches, except a subnormal loss with
    # beta < 1, rounded once here where the branch form (and torch) rounds d^2 / 2 first
    cdef floating d = x - y
    cdef floating ad = f_abs(d)
    cdef bint outside = ad >= beta
    cdef floating m
    if pow2:
        dx[0] = f_sign(d) if outside else d * inv_beta
        m = f_min_nonneg(ad, beta)
        return (ad - <floating> 0.5 * m) * (m * inv_beta)
    dx[0] = f_sign(d) if outside | (beta == 0) else d / beta     # (| not `or`: no branch, it vectorises)
    return <floating> 0.5 * d * d / beta if ad < beta else ad - <floating> 0.5 * beta


cdef inline floating stirling_point(floating y) noexcept nogil:
    # torch's `full` term: y log y - y + log(2 pi y) / 2 where y > 1, else 0 (masked like torch)
    return y * f_log(y) - y + <floating> 0.5 * f_log(<floating> 6.283185307179586 * y) if y > 1 else 0


cdef inline void add_stirling(floating* out, const floating* y, const floating* w, Py_ssize_t L) noexcept nogil:
    """out[k] += w[k] stirling(y[k]): the Poisson NLL's full=True term, in a pass of its own after the
    segment's losses.  Selected inside the point functions by the run-time `full`, its two logs per element
    were computed for every call (GCC vectorises both sides of a select): the default full=False cost 3.2 ns
    per element (float32, log_input=True), 1.3 without them, torch 1.6."""
    cdef Py_ssize_t k
    for k in range(L):
        out[k] = out[k] + w[k] * stirling_point(y[k])


cdef inline floating poisson_log_point(floating x, floating y, floating* dx) noexcept nogil:
    # log_input=True: exp(x) - y x,  d/dx = exp(x) - y  (the full=True term: add_stirling)
    cdef floating ex = f_exp(x)
    dx[0] = ex - y
    # exp(x) - y x in double: in float32, y x overflows to inf for |x|, |y| ~ 1e30 and inf - inf gave nan
    # where FMA was not used (baseline ISA); the float64 value is exact enough and rounds to inf / finite
    return <floating> (<double> ex - <double> y * <double> x)


cdef inline floating poisson_point(floating x, floating y, floating eps, floating* dx) noexcept nogil:
    # log_input=False: x - y log(x + eps),  d/dx = 1 - y / (x + eps)  (the full=True term: add_stirling)
    dx[0] = 1 - y / (x + eps)
    return x - y * f_log(x + eps)


cdef inline floating gauss_nll_point(floating x, floating y, floating var, floating eps, floating const,
                                     floating* dx, floating* dvar) noexcept nogil:
    # torch: v = max(var, eps) (clamped without grad, nan kept), loss = (log v + d^2 / v) / 2 [+ log(2 pi) / 2]
    # d/dx = d / v;  d/dvar = (1 / v - d^2 / v^2) / 2 at the clamped v (torch's clamp_ is under no_grad,
    # so the gradient passes through the clamp unchanged)
    # d/dvar in double (float32 too): 1 - d^2 / v cancels where d^2 ~ v, and float32 roundings of d and
    # d / v there put it 18x outside SPEC §4; x - y and the rest are exact enough in double
    cdef floating v = eps if var < eps else var
    cdef floating d = x - y
    cdef floating r = d / v
    cdef double dd = <double> x - <double> y, vd = v
    dx[0] = r
    dvar[0] = <floating> (0.5 * (1 - dd * (dd / vd)) / vd)
    return <floating> 0.5 * (f_log(v) + d * r) + const


cdef inline floating log_cosh_point(floating x, floating y, floating* dx) noexcept nogil:
    # log cosh d and th = tanh|d| from fl_math.h's fl_log_cosh(f): polynomials in d^2 below |d| = 1, and
    # |d| - log 2 + log1p(t), 1 - 2t / (1 + t) from t = e^(-2|d|) above -- nothing cancels, and a tiny d keeps
    # its relative precision.  (The SPEC's |d| + log1p(exp(-2|d|)) - log 2 everywhere cancels for small |d|:
    # d^2 / 2 out of terms ~0.7, 4.5e-5 relative in float32 at |d| = 0.0627.)
    # d/dx = tanh(d) = sign(d) th, nan for nan
    cdef floating d = x - y
    cdef floating th, v
    if floating is float:
        v = fl_log_coshf(d, &th)
    else:
        v = fl_log_cosh(d, &th)
    dx[0] = th if d >= 0 else (-th if d < 0 else d)
    return v


cdef inline floating quantile_point(floating x, floating y, floating q, floating* dx) noexcept nogil:
    # pinball, u = y - x: max(q u, (q - 1) u) = u > 0 ? q u : (q - 1) u
    # d/dx = -q for u > 0, 1 - q for u < 0, and 1/2 - q at u = 0 (the middle of the subgradient, which is
    # also what torch.maximum's autograd gives for the formula written in torch ops); nan for nan u
    cdef floating u = y - x
    dx[0] = -q if u > 0 else ((1 - q) if u < 0 else (<floating> 0.5 - q) + u)   # + u: 0, or nan for nan
    return q * u if u > 0 else (q - 1) * u


cdef inline floating mape_point(floating x, floating y, floating eps, floating* dx) noexcept nogil:
    # |y - x| / max(|y|, eps) (eps = 0 when not given: |y - x| / |y|), like scikit-learn
    # d/dx = sign(x - y) / max(|y|, eps)
    cdef floating ay = f_abs(y)
    cdef floating s = ay if ay > eps else eps
    cdef floating d = x - y
    dx[0] = f_sign(d) / s
    return f_abs(d) / s


cdef inline floating smape_point(floating x, floating y, floating* dx) noexcept nogil:
    # 2 |y - x| / (|y| + |x|), 0 where both are 0
    # d/dx = 2 (sign(x - y) s - |x - y| sign(x)) / s^2,  s = |x| + |y|  (0 where s = 0)
    cdef floating s = f_abs(x) + f_abs(y)
    cdef floating d = x - y
    cdef floating ad = f_abs(d)
    # divisions, not a reciprocal: 1 / s overflows for a denormal s (5e-324: loss 2, not inf)
    cdef floating safe = s if s != 0 else 1   # s = 0: d = 0, so loss and gradient are 0
    cdef floating r = ad / safe
    dx[0] = 2 * (f_sign(d) - r * f_sign(x)) / safe
    return 2 * r


cdef inline floating msle_point(floating x, floating y, floating* dx) noexcept nogil:
    # (log1p x - log1p y)^2,  d/dx = 2 (log1p x - log1p y) / (1 + x);  x, y > -1 (checked)
    cdef floating r = f_log1p(x) - f_log1p(y)
    dx[0] = 2 * r / (1 + x)
    return r * r


cdef inline floating gauss_kl_point(floating mu, floating lv, floating* dmu, floating* dlv) noexcept nogil:
    # KL(N(mu, exp lv) || N(0, 1)) of one latent: -(1 + lv - mu^2 - exp lv) / 2 = (mu^2 + (e^lv - 1 - lv)) / 2,
    # two terms >= 0 (nothing cancels; e^lv - 1 - lv from f_expm1mx, exact near lv = 0 where the textbook
    # form loses it all);  d/dmu = mu,  d/dlv = (e^lv - 1) / 2
    cdef floating em1
    cdef floating g = f_expm1mx(lv, &em1)
    dmu[0] = mu
    dlv[0] = <floating> 0.5 * em1
    return <floating> 0.5 * (mu * mu + g)


# =====================================================================================================
# Per-kind parts of the loop, resolved at compile time (``tag`` only carries the type)
# =====================================================================================================
cdef inline floating point(const kind_t* tag, ElemParams p, floating x, floating y, floating v,
                           floating* dx, floating* dv) noexcept nogil:
    """The kind's point function on element (x, y) with aux value v; d/dx into dx (d/dvar into dv)."""
    if kind_t is BceK:
        return bce_point(x, y, dx)
    elif kind_t is BceLogitsK:
        return bce_logits_point(x, y, v, dx)
    elif kind_t is FocalK:
        return focal_point(x, y, <floating> p.alpha_0, <floating> p.alpha_step, <floating> p.gamma, False, dx)
    elif kind_t is FocalSquareK:
        return focal_point(x, y, <floating> p.alpha_0, <floating> p.alpha_step, <floating> p.gamma, True, dx)
    elif kind_t is FocalOneK:
        return focal_one_point(x, y, <floating> p.alpha_0, <floating> p.alpha_step, dx)
    elif kind_t is HingeK:
        return hinge_point(x, y, <floating> p.margin, p.squared, dx)
    elif kind_t is KlK:
        return kl_point(x, y, p.log_target, dx)
    elif kind_t is MseK:
        return mse_point(x, y, dx)
    elif kind_t is L1K:
        return l1_point(x, y, dx)
    elif kind_t is HuberK:
        return huber_point(x, y, <floating> p.delta, dx)
    elif kind_t is SmoothL1K:
        return smooth_l1_point(x, y, <floating> p.beta, 0, False, dx)
    elif kind_t is SmoothL1Pow2K:
        return smooth_l1_point(x, y, <floating> p.beta, <floating> p.inv_beta, True, dx)
    elif kind_t is PoissonLogK:
        return poisson_log_point(x, y, dx)
    elif kind_t is PoissonK:
        return poisson_point(x, y, <floating> p.eps, dx)
    elif kind_t is GaussNllK:
        return gauss_nll_point(x, y, v, <floating> p.eps, <floating> HALF_LOG_2PI if p.full else 0, dx, dv)
    elif kind_t is LogCoshK:
        return log_cosh_point(x, y, dx)
    elif kind_t is QuantileK:
        return quantile_point(x, y, <floating> p.q, dx)
    elif kind_t is MapeK:
        return mape_point(x, y, <floating> p.eps, dx)
    elif kind_t is SmapeK:
        return smape_point(x, y, dx)
    else:
        return msle_point(x, y, dx)


cdef inline int invalid(const kind_t* tag, ElemParams p, floating x, floating y, floating v) noexcept nogil:
    """1 where the element is outside the loss's domain (note e), branch-free; constant 0 for most kinds.
    BCE: torch's check, input and target in [0, 1] (nan is outside).  Hinge: target -1 or +1.  MSLE:
    input and target > -1.  MAPE without eps: target != 0.  Gaussian NLL: var >= 0."""
    cdef floating zero = 0, one = 1
    if kind_t is BceK:
        return not ((x >= zero) & (x <= one) & (y >= zero) & (y <= one))
    elif kind_t is HingeK:
        return not ((y == one) | (y == -one))
    elif kind_t is MsleK:
        return (x <= -1) | (y <= -1)
    elif kind_t is MapeK:
        return (y == 0) & (p.eps == 0)
    elif kind_t is GaussNllK:
        return v < 0
    else:
        return 0


cdef inline floating fallback(const kind_t* tag, ElemParams p, floating x, floating y, floating v,
                              floating* dx) noexcept nogil:
    """The kind's fallback form (note f); only BCE-with-logits has one."""
    return bce_logits_literal(x, y, v, p.has_pos_weight, dx)


cdef void refit_nan(const kind_t* kc, const ElemCtx* c, Py_ssize_t L, const floating* x,
                    const floating* y, const floating* w, const floating* v, floating* out,
                    floating* g) noexcept nogil:
    """A segment's items whose loss came out nan: the fallback form's loss and gradient (into g, unless
    NULL) instead (note f).  Rare, so out of the block: no local of the hot loops has its address taken
    for it."""
    cdef ElemParams p = c.p
    cdef floating gs = <floating> c.grad_scale
    cdef floating d
    cdef Py_ssize_t k
    for k in range(L):
        if out[k] != out[k]:
            out[k] = w[k] * fallback(kc, p, x[k], y[k], v[k], &d)
            if g != NULL:
                g[k] = w[k] * d * gs


cdef inline bint arithmetic(const kind_t* tag) noexcept nogil:
    """The kinds without exp / log: a few operations per item, memory-bound (a compile-time constant)."""
    return (kind_t is MseK or kind_t is L1K or kind_t is HuberK or kind_t is SmoothL1K
            or kind_t is SmoothL1Pow2K or kind_t is HingeK or kind_t is QuantileK or kind_t is MapeK
            or kind_t is SmapeK)


cdef inline const floating* aux_seg(const ElemCtx* c, Py_ssize_t i, Py_ssize_t L,
                                    floating* buf) noexcept nogil:
    """The aux operand for items [i, i + L) (one row at most in aux_rows mode; note d)."""
    cdef Py_ssize_t k
    cdef floating v
    if not c.aux_rows:
        return operand_seg(&c.aux, i, c.s.K, buf)
    v = (<const floating*> c.aux.data)[i // c.s.K]
    for k in range(L):
        buf[k] = v
    return buf


# =====================================================================================================
# The one block loop
# =====================================================================================================
cdef inline floating item(const kind_t* kc, ElemParams p, const floating* x, const floating* y,
                          const floating* v, const floating* w, floating* g, floating* g2, floating gs,
                          Py_ssize_t k, bint with_grad, bint unit_w) noexcept nogil:
    """Element k of a segment: its weighted loss; ``with_grad`` (a constant at every call, so the test
    compiles away) also writes its gradient(s).  ``unit_w`` (a constant too): every weight is 1.0, the
    loss is its own weighted loss (exactly) and w is not read."""
    cdef floating d, d2
    cdef floating l = point(kc, p, x[k], y[k], v[k], &d, &d2)
    if not unit_w:
        l = w[k] * l
    if with_grad:
        # (unit_w: w not read; 1 * d is d exactly, so the same bits)
        g[k] = (d if unit_w else w[k] * d) * gs
        if kind_t is GaussNllK:
            g2[k] = w[k] * d2 * gs
    return l


cdef inline int sum_items(const kind_t* kc, ElemParams p, const floating* x, const floating* y,
                          const floating* v, const floating* w, Py_ssize_t wmask, bint unit_w, Py_ssize_t L,
                          double* lanes, Py_ssize_t pf) noexcept nogil:
    """A reduction's run of L items without a gradient (note g): their weighted losses added to the
    block's double ``lanes`` as they are computed -- item k into lane k % FL_LANES, in registers (a local
    copy), exactly as ``lanes_add`` of the stored values would (src_c/fl_lanes.h).  Item k's weight is
    w[k & wmask]: wmask = SEG - 1 reads a scalar's SEG copies over and over, so a run may be longer
    than a segment (a whole block), -1 reads an array; ``unit_w`` (a constant at each call): every
    weight is 1.0 and none is read or multiplied (the unweighted losses: 10% of a Huber mean).
    ``pf``: x and y are prefetched PREFETCH_AHEAD items ahead as far as x + pf (0: not at all).
    Returns the number of invalid items.  (With a gradient the loop's stores through g make GCC check
    them against x, y, w for overlap at every run of FL_LANES items, and it kept ``acc`` in memory: 1.6x
    slower than storing the losses to an L1 buffer and adding that.)"""
    cdef double acc[FL_LANES]
    cdef const floating* wk
    cdef Py_ssize_t j, k = 0
    cdef int n_bad = 0
    if L >= FL_LANES:
        # acc starts as lanes + the first run of items, not as a copy of lanes or zeros: GCC made either
        # a memset / memcpy through the stack, which cost as much as the loop
        for j in range(FL_LANES):
            acc[j] = lanes[j] + <double> item(kc, p, x, y, v, w, NULL, NULL, 0, j, False, unit_w)
            n_bad += invalid(kc, p, x[j], y[j], v[j])
        k = FL_LANES
        while k + FL_LANES <= L:
            if k + PREFETCH_AHEAD + FL_LANES <= pf:
                fl_prefetch_range(x + k + PREFETCH_AHEAD, FL_LANES * sizeof(floating))
                fl_prefetch_range(y + k + PREFETCH_AHEAD, FL_LANES * sizeof(floating))
            # item k + j's weight: (k + j) & wmask = (k & wmask) + j, k being a multiple of FL_LANES
            wk = w + (k & wmask)
            for j in range(FL_LANES):
                acc[j] += item(kc, p, x + k, y + k, v + k, wk, NULL, NULL, 0, j, False, unit_w)
                n_bad += invalid(kc, p, x[k + j], y[k + j], v[k + j])
            k += FL_LANES
        for j in range(FL_LANES):
            lanes[j] = acc[j]
    # the tail (< FL_LANES items) straight into lanes: indexing acc by a variable would keep it in memory
    wk = w + (k & wmask)
    for j in range(L - k):
        lanes[j] += item(kc, p, x + k, y + k, v + k, wk, NULL, NULL, 0, j, False, unit_w)
        n_bad += invalid(kc, p, x[k + j], y[k + j], v[k + j])
    return n_bad


cdef inline bint sum_items_bits(const kind_t* kc, ElemParams p, const float* x, const float* y, Py_ssize_t L,
                               double* total, Py_ssize_t pf) noexcept nogil:
    """The sum of L float32 items of unit weight into ``total``, added without a float -> double conversion
    (src_c/fl_lanes.h, FL_LANES_BITS: AVX2 and AVX-512; an MSE mean 1.3-1.5x as fast): the same lanes and bits as
    sum_items into zeroed lanes, then fl_lanes_total.  Only for kinds whose losses are >= +0 (``nonneg``).
    Returns False where a lane came out of that form's range (a -0.0, inf or nan loss, or a lane's sum
    >= 2^128): the caller then sums the run with sum_items.  Invalid items are not counted: only kinds
    without a domain check come here.  ``pf``: as sum_items'."""
    cdef fl_lanes_bits acc
    cdef float l[FL_LANES]
    cdef Py_ssize_t j, k = 0
    fl_lanes_bits_zero(&acc)
    while k + FL_LANES <= L:
        if k + PREFETCH_AHEAD + FL_LANES <= pf:
            fl_prefetch_range(x + k + PREFETCH_AHEAD, FL_LANES * sizeof(float))
            fl_prefetch_range(y + k + PREFETCH_AHEAD, FL_LANES * sizeof(float))
        for j in range(FL_LANES):
            l[j] = item(kc, p, x + k, y + k, x + k, x, NULL, NULL, 0, j, False, True)
        fl_lanes_bits_add(&acc, l)      # (the compiler keeps l in registers)
        k += FL_LANES
    if k < L:
        # the tail (< FL_LANES items; a run's last block), padded with +0.0: a lane + 0.0 is the lane
        for j in range(L - k):
            l[j] = item(kc, p, x + k, y + k, x + k, x, NULL, NULL, 0, j, False, True)
        for j in range(L - k, FL_LANES):
            l[j] = 0
        fl_lanes_bits_add(&acc, l)
    return fl_lanes_bits_total(&acc, total)


cdef inline bint sum_grad_items_bits(const kind_t* kc, ElemParams p, const float* x, const float* y,
                                    Py_ssize_t L, float* g, float gs, float* lbuf, double* total) noexcept nogil:
    """sum_items_bits with the gradients: L float32 items of unit weight, their gradients d * gs into g and
    the sum of their losses into ``total`` (the same lanes and bits as sum_items; False as
    sum_items_bits').  A buffer of LBUF_SEGS segments at a time: store_items writes the gradients and the
    losses to the buffer, and the buffer is added to the lanes in a loop of its own (with the gradient's
    constants beside the 8 lane vectors, AVX2's 16 registers kept the lanes in memory when both were in
    one loop; the segment path's converting lanes_add was a third of a Huber mean with its gradient)."""
    cdef fl_lanes_bits acc
    cdef Py_ssize_t j, n, k = 0
    fl_lanes_bits_zero(&acc)
    while k < L:
        n = min(L - k, LBUF_SEGS * SEG)
        store_items(kc, p, x + k, y + k, x + k, x, g + k, NULL, gs, lbuf, n, True, True, False)
        for j in range(n, (n + FL_LANES - 1) // FL_LANES * FL_LANES):
            lbuf[j] = 0                 # (the last run's padding: a lane + 0.0 is the lane)
        fl_lanes_bits_add_n(&acc, lbuf, (n + FL_LANES - 1) // FL_LANES * FL_LANES)
        k += n
    return fl_lanes_bits_total(&acc, total)


cdef inline bint nonneg(const kind_t* tag) noexcept nogil:
    """The kinds whose every loss is >= +0 or nan, and that validate nothing (sum_items_bits; a constant)."""
    return (kind_t is MseK or kind_t is L1K or kind_t is HuberK or kind_t is SmoothL1K
            or kind_t is SmoothL1Pow2K)


cdef inline bint interleaved(const kind_t* tag, const floating* type_tag, bint with_grad) noexcept nogil:
    """Whether ``store_items`` runs a kind's full segments as two interleaved halves (a compile-time
    constant).  The kinds with exp / log (and a division) per item have a dependency chain of ~100 cycles
    per vector, which the out-of-order window of an AVX2 core (Zen 2) overlaps with too little of the next
    vector's; two independent chains side by side, mixed by GCC's pre-RA scheduler (setup.py's elementwise
    flags), ran BCE-with-logits and focal 1.3-1.7x faster.  Where two chains spill (AVX2's 16 registers),
    it is slower; so each kind is in by measurement, loss alone and with the gradient, per type (Zen 3,
    AVX2, T=1, 500 000 items, thread time, interleaved / plain loop; the arithmetic kinds' short chains gain
    nothing):
    - BCE-with-logits, focal: in (float32 + gradient 0.94-0.99 and 0.87-0.92; float64 focal + gradient
      0.82-0.99), but not float64 BCE-with-logits with the gradient (1.06-1.14);
    - BCE on probabilities, MSLE: float32 only (BCE 0.80-0.86, + gradient 0.87-0.89; MSLE 0.88-0.93; the
      baseline level 0.74-0.88).  float64 BCE and MSLE measured 1.17-1.27.  Each interleaved copy grows the
      unit, and past GCC's inlining budget a point function is called out of line in a hot loop;
    - log-cosh, both types: with its polynomial form (fl_math.h's fl_log_cosh) float32 0.96 / + gradient
      0.96 interleaved, float64 0.93 / 0.94;
    - Poisson NLL, both types: in, since its full=True term left the point functions (add_stirling):
      float32 0.91-0.95, float64 0.87-1.01, the baseline level's float64 0.82-0.88 (before, with the term's
      logs in every call: 0.93-1.31, mixed).  With it in, the baseline level's float64 focal blocks call
      f_log out of line in two more places; they measured 0.93-0.97 of their time before, no loss;
    - KL: out (0.89-1.09, mixed; with KL interleaved, the baseline level called kl_point out of line in KL's
      gradient loop: 2.7x slower).
    A kind added here: check every level's module for new out-of-line calls of the point functions
    (``objdump -d`` of ``_elementwise_<level>*.so``, calls to ``*_point`` and ``f_*``), and measure
    (benchmarks/ab_elementwise.py)."""
    if kind_t is BceLogitsK:
        return floating is float or not with_grad
    if kind_t is FocalK or kind_t is FocalSquareK or kind_t is FocalOneK:
        return True
    if kind_t is BceK or kind_t is MsleK:
        return floating is float
    return kind_t is LogCoshK or kind_t is PoissonLogK or kind_t is PoissonK


cdef inline int store_items(const kind_t* kc, ElemParams p, const floating* x, const floating* y,
                            const floating* v, const floating* w, floating* g, floating* g2, floating gs,
                            floating* out, Py_ssize_t L, bint with_grad, bint unit_w, bint scalar_w) noexcept nogil:
    """L weighted losses into ``out`` (and, ``with_grad`` a constant, the gradients into g, g2): a segment,
    or -- reduction="none" of an arithmetic kind without a gradient -- a whole block as one loop (no
    segment's fixed cost every SEG items: a fifth of a float32 Huber "none").  ``unit_w``, ``scalar_w``
    (constants at each call; for those whole-block runs): every weight is 1.0 and none is read, or every
    weight is w[0] (a scalar operand), multiplied as a loop constant -- the same bits as w[k] * loss.
    A full segment of an ``interleaved`` kind runs as items k and SEG/2 + k side by side, each computed as
    on its own (the same bits); its gradients, if any, go to a local buffer ``gl`` and are copied to g
    after the loop.  Returns the number of invalid items.
    The halves' distance is the constant SEG/2: GCC then knows how out[k] and out[SEG/2 + k] (x[k] and
    x[SEG/2 + k] ...) relate and checks only out against the inputs at run time (a variable distance
    needed more run-time alias checks than GCC's limit of 10: the loop stayed scalar, 7x slower; so did
    the loop with the gradient written through g, a pointer that may alias the inputs -- gl, a local
    array, cannot).  The pair's results are stored after both are computed: the scheduler may not move
    the second item's loads above a store that might alias them, which left the two chains one after the
    other (no faster)."""
    cdef Py_ssize_t k
    cdef floating la, lb
    cdef floating wv = w[0]
    cdef floating gl[SEG]
    cdef int n_bad = 0
    if interleaved(kc, out, with_grad) and L == SEG:
        for k in range(SEG >> 1):
            la = item(kc, p, x + k, y + k, v + k, w + k, gl + k, g2, gs, 0, with_grad, False)
            lb = item(kc, p, x + (SEG >> 1) + k, y + (SEG >> 1) + k, v + (SEG >> 1) + k, w + (SEG >> 1) + k,
                      gl + (SEG >> 1) + k, g2, gs, 0, with_grad, False)
            n_bad += invalid(kc, p, x[k], y[k], v[k]) + invalid(kc, p, x[(SEG >> 1) + k], y[(SEG >> 1) + k],
                                                               v[(SEG >> 1) + k])
            out[k] = la
            out[(SEG >> 1) + k] = lb
        if with_grad:
            fl_copy_short(g, gl, SEG * sizeof(floating))
        return n_bad
    for k in range(L):
        if unit_w:
            out[k] = item(kc, p, x, y, v, w, g, g2, gs, k, with_grad, True)
        elif scalar_w:
            out[k] = wv * item(kc, p, x, y, v, w, g, g2, gs, k, with_grad, True)
        else:
            out[k] = item(kc, p, x, y, v, w, g, g2, gs, k, with_grad, False)
        n_bad += invalid(kc, p, x[k], y[k], v[k])
    return n_bad


cdef inline Py_ssize_t first_invalid(const kind_t* kc, ElemParams p, const floating* x, const floating* y,
                                     const floating* v, Py_ssize_t L) noexcept nogil:
    """The index of the first invalid item of a run that has one (note e)."""
    cdef Py_ssize_t k
    for k in range(L):
        if invalid(kc, p, x[k], y[k], v[k]):
            return k
    return -1


cdef inline void sum_weights(const ElemCtx* c, Py_ssize_t start, Py_ssize_t stop, double* lanes,
                             const floating* type_tag) noexcept nogil:
    """The weights of items [start, stop) added to ``lanes``, segment by segment (note g)."""
    cdef const floating* x
    cdef const floating* y
    cdef const floating* w
    cdef Py_ssize_t i = start, e
    while i < stop:
        e = next_segment(&c.s, i, stop, &x, &y, &w)
        lanes_add(lanes, w, e - i)
        i = e


cdef enum:
    LBUF_SEGS = 4       # segments of losses buffered before they are added to a block's lanes


# The kinds with an aux operand (note d): BceLogitsK, GaussNllK; with a second gradient: GaussNllK; with
# a fallback form (note f): BceLogitsK -- tested as ``kind_t is ...``, so the other kinds' copies of the
# loop do not contain those parts at all.
cdef Py_ssize_t elementwise_block(const kind_t* kc, Py_ssize_t start, Py_ssize_t stop,
                                  floating* loss, void* denom) noexcept nogil:
    """A block function that sums its own items (``fn_sums``, note g): reduction="none" writes to
    ``loss``; a reduction (loss NULL) adds each segment's losses to the block's lanes as it computes
    them (``sum_items``), and the weights for a weighted mean.  With a gradient, and for the kinds with
    exp / log (and BCE-with-logits' nan refit, note f), a segment's losses go to an L1 buffer first, then
    to the same lanes in the same order (``lanes_add``): the same bits.  An arithmetic kind's reduction
    without a gradient, where no operand is a last-axis vector, runs the whole block as one run of
    ``sum_items``: the same lanes in the same order as segment by segment (src_c/fl_lanes.h), without a
    segment's fixed cost every 256 items (a third of a float32 Huber mean: the lanes went through memory
    at every segment)."""
    cdef const ElemCtx* c = &kc.e
    # The parameters as a local copy, passed by value: loop-invariant for the compiler (stores to `loss`
    # cannot alias it).  No local of the loops below may have its address reach a call that is not
    # inlined: it would live in memory in every loop, and they would stop vectorising.
    cdef ElemParams p = c.p
    cdef floating gs = <floating> c.grad_scale
    cdef const floating* x
    cdef const floating* y
    cdef const floating* w
    cdef const floating* v
    cdef floating* g
    cdef floating* g2
    cdef floating* out
    cdef floating vbuf[SEG]
    cdef floating g2buf[SEG]
    # a segment's losses and gradients when they are streamed (c.stream_out, c.stream_grad), and where
    cdef floating obuf[SEG]
    cdef floating gbuf[SEG]
    cdef floating* odst
    cdef floating* gdst
    # a reduction's losses of up to LBUF_SEGS segments, added to the lanes in one lanes_add (its fixed
    # cost once per segment was 3-4% of BCE-with-logits' and focal's mean with a gradient)
    cdef floating lbuf[LBUF_SEGS * SEG]
    cdef Py_ssize_t nbuf = 0
    cdef double lanes[FL_LANES]
    cdef double dlanes[FL_LANES]
    cdef BlockSums* sums = <BlockSums*> denom if loss == NULL else NULL
    cdef Py_ssize_t i = start, e, k, L, bad = -1
    # int, not Py_ssize_t: 32-bit lanes beside float32 ones vectorise cheaply
    cdef int n_bad, n_nan
    cdef bint arith = arithmetic(kc)
    # The arithmetic kinds only: in a loop with exp / log (BCE, focal, ...) the 8 registers of lanes
    # made the compiler spill (W6, W7 5% slower than storing the losses and adding them after).
    cdef bint fused = sums != NULL and c.grad == NULL and arith
    # Streaming stores, for the arithmetic kinds without a division: they are memory-bound, and the
    # stores' reads for ownership cost them (a reused 40 MB grad_out=, T=1: huber 11.0 -> 8.9 ms, MSE
    # 12.8 -> 8.9); the compute-bound kinds were slower with them (focal 17.8 -> 22.2 ms, BCE-with-logits
    # 26.7 -> 31.4, SMAPE 13.5 -> 17.0; MAPE no faster).
    cdef bint cheap = arith and not (kind_t is MapeK or kind_t is SmapeK)
    cdef bint stream_out = cheap and c.stream_out
    cdef bint stream_grad = cheap and c.stream_grad
    if (fused and not c.s.periodic and floating is float and nonneg(kc) and FL_LANES_BITS
            and not sums.want_denom and c.s.weight.data == NULL
            and (<const floating*> c.s.weight.scalar_run)[0] == 1):
        # an unweighted float32 sum at AVX2 / AVX-512: the whole block in registers, its lanes never in memory
        # (their zeroing alone, a `rep stos`, was 3% of a Huber mean)
        if sum_items_bits(kc, p, <const float*> c.s.x + start, <const float*> c.s.y + start, stop - start,
                          &sums.loss, c.pf_end - start):
            sums.denom = 0.0
            return -1
    # the same with the gradient (W17's Huber mean + gradient); the kinds written out, not nonneg(kc): each
    # other kind's copy of this function must not contain the branch at all (the copies of
    # sum_grad_items_bits left in them took GCC's inlining budget: the MSE mean's sum_items_bits was then
    # called out of line, 10% slower)
    if floating is float:
        if kind_t is MseK or kind_t is L1K or kind_t is HuberK or kind_t is SmoothL1K or kind_t is SmoothL1Pow2K:
            if (sums != NULL and c.grad != NULL and not stream_grad and not c.s.periodic and FL_LANES_BITS
                    and not sums.want_denom and c.s.weight.data == NULL
                    and (<const floating*> c.s.weight.scalar_run)[0] == 1):
                if sum_grad_items_bits(kc, p, <const float*> c.s.x + start, <const float*> c.s.y + start,
                                       stop - start, <float*> c.grad + start, <float> gs, <float*> lbuf,
                                       &sums.loss):
                    sums.denom = 0.0
                    return -1
    if sums != NULL:                     # (a `rep stos` each: 3% of a Huber reduction="none" per block)
        fl_lanes_zero(lanes)
        if sums.want_denom:
            fl_lanes_zero(dlanes)
    if fused and not c.s.periodic:
        # the whole block as one run (segments only stop at row ends; a scalar weight is read through
        # its SEG copies with a mask); an unweighted float32 sum at AVX2 comes here only where the
        # bits form above failed (a -0.0, inf or nan loss, or a huge lane: rare), to convert
        x = <const floating*> c.s.x + start
        y = <const floating*> c.s.y + start
        w = operand_seg(&c.s.weight, start, c.s.K, x)
        if c.s.weight.data == NULL and w[0] == 1:
            n_bad = sum_items(kc, p, x, y, x, w, 0, True, stop - start, lanes, c.pf_end - start)
        else:
            n_bad = sum_items(kc, p, x, y, x, w, SEG - 1 if c.s.weight.data == NULL else -1, False,
                              stop - start, lanes, c.pf_end - start)
        if n_bad:
            bad = start + first_invalid(kc, p, x, y, x, stop - start)
        if sums.want_denom:
            sum_weights(c, start, stop, dlanes, x)
        i = stop                         # (the loop below does nothing)
    elif sums == NULL and c.grad == NULL and arith and not c.s.periodic and not stream_out:
        # reduction="none" of an arithmetic kind, no gradient: the whole block as one loop (the segments'
        # fixed cost, every SEG items, was a fifth of a float32 Huber "none"), weights as a constant
        x = <const floating*> c.s.x + start
        y = <const floating*> c.s.y + start
        w = operand_seg(&c.s.weight, start, c.s.K, x)
        if c.s.weight.data == NULL and w[0] == 1:
            n_bad = store_items(kc, p, x, y, x, w, NULL, NULL, 0, loss, stop - start, False, True, False)
        elif c.s.weight.data == NULL:
            n_bad = store_items(kc, p, x, y, x, w, NULL, NULL, 0, loss, stop - start, False, False, True)
        else:
            n_bad = store_items(kc, p, x, y, x, w, NULL, NULL, 0, loss, stop - start, False, False, False)
        if n_bad:
            bad = start + first_invalid(kc, p, x, y, x, stop - start)
        i = stop
    while i < stop:
        e = next_segment(&c.s, i, stop, &x, &y, &w)
        L = e - i
        if i + PREFETCH_AHEAD < c.pf_end:     # (up to the array's end: the next block is this thread's next)
            k = min(SEG, c.pf_end - i - PREFETCH_AHEAD) * sizeof(floating)
            fl_prefetch_range(x + PREFETCH_AHEAD, k)
            fl_prefetch_range(y + PREFETCH_AHEAD, k)
        if kind_t is BceLogitsK or kind_t is GaussNllK:
            v = aux_seg(c, i, L, vbuf)
        else:
            v = x                        # (not read)
        out = loss + (i - start) if sums == NULL else lbuf + nbuf
        odst = gdst = NULL
        if sums == NULL and stream_out:
            odst = out
            out = obuf
        n_bad = 0
        g = g2 = NULL
        if c.grad != NULL:
            g = <floating*> c.grad + i
            if stream_grad:
                gdst = g
                g = gbuf
            if kind_t is GaussNllK:
                g2 = <floating*> c.grad2 + i if c.grad2 != NULL else g2buf
        if fused:
            n_bad = sum_items(kc, p, x, y, v, w, -1, False, L, lanes, 0)    # (prefetched above)
        elif g != NULL:
            n_bad = store_items(kc, p, x, y, v, w, g, g2, gs, out, L, True, False, False)
        else:
            n_bad = store_items(kc, p, x, y, v, w, g, g2, gs, out, L, False, False, False)
        if kind_t is PoissonLogK or kind_t is PoissonK:
            if c.p.full:
                add_stirling(out, y, w, L)
        if n_bad and bad < 0:
            bad = i + first_invalid(kc, p, x, y, v, L)
        if kind_t is BceLogitsK:
            if c.check_nan:
                n_nan = 0
                for k in range(L):       # a separate pass over L1 data: cheaper than in the loops above
                    n_nan |= out[k] != out[k]
                if n_nan:                # rare
                    refit_nan(kc, c, L, x, y, w, v, out, g)
        if gdst != NULL:
            fl_stream_copy(gdst, g, L * sizeof(floating))
        if odst != NULL:
            fl_stream_copy(odst, out, L * sizeof(floating))
        if sums != NULL:
            # the buffer's segments are added as one run: the same bits as one by one, as every one but
            # a block's last is SEG items long (src_c/fl_lanes.h) -- except where segments stop at row
            # ends (row_cut): then each is added on its own
            if not fused:
                nbuf += L
                if nbuf > (LBUF_SEGS - 1) * SEG or e == stop or c.s.row_cut:
                    lanes_add(lanes, lbuf, nbuf)
                    nbuf = 0
            if sums.want_denom:
                lanes_add(dlanes, w, L)
        i = e
    if sums != NULL:
        sums.loss = fl_lanes_total(lanes)
        sums.denom = fl_lanes_total(dlanes) if sums.want_denom else 0.0
    if stream_out or stream_grad:
        fl_stream_fence()                # (streaming stores are weakly ordered)
    return bad


# The one kind -> block function table (note c): [kind][0] float32, [kind][1] float64.
cdef BlockFn BLOCKS[N_KINDS][2]

cdef void _put(Kind kind, BlockFn f32, BlockFn f64) noexcept:
    BLOCKS[<int> kind][0] = f32
    BLOCKS[<int> kind][1] = f64

_put(BCE, <BlockFn> elementwise_block[BceK, float], <BlockFn> elementwise_block[BceK, double])
_put(BCE_LOGITS, <BlockFn> elementwise_block[BceLogitsK, float], <BlockFn> elementwise_block[BceLogitsK, double])
_put(FOCAL, <BlockFn> elementwise_block[FocalK, float], <BlockFn> elementwise_block[FocalK, double])
_put(FOCAL_SQUARE, <BlockFn> elementwise_block[FocalSquareK, float],
     <BlockFn> elementwise_block[FocalSquareK, double])
_put(FOCAL_ONE, <BlockFn> elementwise_block[FocalOneK, float], <BlockFn> elementwise_block[FocalOneK, double])
_put(HINGE, <BlockFn> elementwise_block[HingeK, float], <BlockFn> elementwise_block[HingeK, double])
_put(KL, <BlockFn> elementwise_block[KlK, float], <BlockFn> elementwise_block[KlK, double])
_put(MSE, <BlockFn> elementwise_block[MseK, float], <BlockFn> elementwise_block[MseK, double])
_put(L1, <BlockFn> elementwise_block[L1K, float], <BlockFn> elementwise_block[L1K, double])
_put(HUBER, <BlockFn> elementwise_block[HuberK, float], <BlockFn> elementwise_block[HuberK, double])
_put(SMOOTH_L1, <BlockFn> elementwise_block[SmoothL1K, float], <BlockFn> elementwise_block[SmoothL1K, double])
_put(SMOOTH_L1_POW2, <BlockFn> elementwise_block[SmoothL1Pow2K, float],
     <BlockFn> elementwise_block[SmoothL1Pow2K, double])
_put(POISSON_LOG, <BlockFn> elementwise_block[PoissonLogK, float],
     <BlockFn> elementwise_block[PoissonLogK, double])
_put(POISSON, <BlockFn> elementwise_block[PoissonK, float], <BlockFn> elementwise_block[PoissonK, double])
_put(GAUSSIAN_NLL, <BlockFn> elementwise_block[GaussNllK, float], <BlockFn> elementwise_block[GaussNllK, double])
_put(LOG_COSH, <BlockFn> elementwise_block[LogCoshK, float], <BlockFn> elementwise_block[LogCoshK, double])
_put(QUANTILE, <BlockFn> elementwise_block[QuantileK, float], <BlockFn> elementwise_block[QuantileK, double])
_put(MAPE, <BlockFn> elementwise_block[MapeK, float], <BlockFn> elementwise_block[MapeK, double])
_put(SMAPE, <BlockFn> elementwise_block[SmapeK, float], <BlockFn> elementwise_block[SmapeK, double])
_put(MSLE, <BlockFn> elementwise_block[MsleK, float], <BlockFn> elementwise_block[MsleK, double])

for _k in range(N_KINDS):     # a kind added to the enum without a row above fails at import, not at a call
    if BLOCKS[_k][0] == NULL or BLOCKS[_k][1] == NULL:
        raise ImportError(f"fastloss: elementwise kind {Kind(_k)!r} has no block function")
del _k


# =====================================================================================================
# The weight pass (note g) and the Gaussian KL row loop (note h)
# =====================================================================================================
cdef Py_ssize_t weight_block(const ElemCtx* c, Py_ssize_t start, Py_ssize_t stop,
                             floating* loss, BlockSums* sums) noexcept nogil:
    """Only the weights' sum (the weighted mean's denominator, summed before a gradient pass; note g),
    as the block's loss sum: a block function that sums itself, run reducing only."""
    cdef double lanes[FL_LANES]
    fl_lanes_zero(lanes)
    sum_weights(c, start, stop, lanes, loss)
    sums.loss = fl_lanes_total(lanes)
    return -1


cdef Py_ssize_t gauss_kl_block(const ElemCtx* c, Py_ssize_t start, Py_ssize_t stop,
                               floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t D = c.D, r, j
    cdef const floating* mu
    cdef const floating* lv
    cdef const floating* w
    cdef floating* gm
    cdef floating* gl
    cdef floating gs = <floating> c.grad_scale
    cdef floating s, wg, dm, dl
    for r in range(start, stop):
        mu = <const floating*> c.s.x + r * D
        lv = <const floating*> c.s.y + r * D
        w = operand_seg(&c.s.weight, r, 1, mu)
        s = 0
        if c.grad != NULL:
            gm = <floating*> c.grad + r * D
            gl = <floating*> c.grad2 + r * D
            wg = w[0] * gs
            for j in range(D):
                s = s + gauss_kl_point(mu[j], lv[j], &dm, &dl)
                gm[j] = wg * dm
                gl[j] = wg * dl
        else:
            for j in range(D):
                s = s + gauss_kl_point(mu[j], lv[j], &dm, &dl)
        loss[r - start] = w[0] * s
        if denom != NULL:
            denom[r - start] = w[0]
    return -1


# =====================================================================================================
# Entries
# =====================================================================================================
cdef inline Py_ssize_t last_axis(object x) noexcept:
    """The length of an ndarray's last axis (1 for 0-d): the period of last-axis operands."""
    cdef int nd = PyArray_NDIM(<PyArrayObject*> x)
    return PyArray_DIMS(<PyArrayObject*> x)[nd - 1] if nd > 0 else 1


cdef double pow2_inverse(double b, Py_ssize_t itemsize) noexcept:
    """1 / b where b, in the kernel's floating type, is a power of two whose inverse is exact in that type
    (and so t * (1 / b) and t / b are the same bits for every t); else 0."""
    cdef int e
    cdef double inv
    if itemsize == 4:
        b = <float> b
    if not (b > 0) or frexp(b, &e) != 0.5:      # (nan, inf: frexp gives nan, inf)
        return 0.0
    inv = 1.0 / b
    if itemsize == 4:
        if <float> inv != inv or <float> inv * <float> b != 1:    # float32 range: not exact (or inf)
            return 0.0
    elif inv * b != 1 or inv > 1.7976931348623157e308:
        return 0.0
    return inv


cdef object run_weighted(BlockFn fn, ElemCtx* c, Py_ssize_t n_items, Py_ssize_t item_cost,
                         Py_ssize_t itemsize, bint weighted_mean, int num_threads, object out, bint fn_sums):
    """The loss pass, preceded for a weighted mean with a gradient by the weight-sum pass (note g).
    ``c.grad_scale`` holds the scale for an unweighted reduction; a weighted mean replaces it.
    ``fn_sums``: fn sums its own items (``_common.pxd``, note b).  Returns (loss_sum, denom_sum, first_bad)."""
    cdef BlockFn wfn
    if weighted_mean and c.grad != NULL:
        wfn = <BlockFn> weight_block[float] if itemsize == 4 else <BlockFn> weight_block[double]
        wsum = run(wfn, c, n_items, 1, itemsize, num_threads, None, False, True)[0]
        c.grad_scale = 1.0 / wsum if wsum != 0 else float("nan")
        loss_sum, _, bad = run(fn, c, n_items, item_cost, itemsize, num_threads, out, False, fn_sums)
        return loss_sum, wsum, bad
    return run(fn, c, n_items, item_cost, itemsize, num_threads, out, weighted_mean, fn_sums)


def elementwise(Kind kind, x, y, weight, out, grad, double grad_scale, int num_threads, *,
                bint weighted_mean=False, pos_weight=None, var=None, bint var_rows=False, grad_var=None,
                double alpha=-1.0, double gamma=2.0, double margin=1.0, bint squared=False,
                bint log_target=False, double delta=1.0, double beta=1.0, double eps=0.0, double q=0.5,
                bint full=False, int reused=0):
    """Kernel entry for every elementwise loss (``Kind``).

    x, y: C-contiguous arrays of one float dtype and n items, any shape (K: the length of x's last axis,
    1 for 0-d); weight: a float or an array of n or K (last axis) items of that dtype; out (n items) for
    reduction="none" or None; grad (n items) or None; grad_scale: d(result)/d(element loss) for an
    unweighted reduction.  ``weighted_mean``: the mean divides by the summed weights (returned as
    denom_sum).
    Keywords, per kind (note c): BCE_LOGITS ``pos_weight`` (a float or an array like weight; None: no
    pos_weight); FOCAL ``alpha`` (< 0: no weighting), ``gamma``; HINGE ``margin``, ``squared``; KL
    ``log_target``; HUBER ``delta``; SMOOTH_L1 ``beta``; POISSON(_LOG) ``eps``, ``full``; GAUSSIAN_NLL
    ``var`` (like weight, or with ``var_rows`` n // K items: one per row), ``eps``, ``full``,
    ``grad_var`` (n,) or None; QUANTILE ``q``; MAPE ``eps`` (0: a zero target is invalid).
    ``reused``: which of out (1) and grad (2) are the caller's buffers, whose pages exist (a fresh
    array's are zeroed on first touch, leaving them in cache); a large one is written with streaming
    stores by the cheapest kinds (``STREAM_BYTES``, ``elementwise_block``).
    Returns (loss_sum, denom_sum, first_invalid_index or -1)."""
    # boundary checks (_common.pxd)
    cdef Py_ssize_t itemsize = check_buffer(x, "x", b'f', 0, -1, False)
    cdef Py_ssize_t n = buffer_items(x)
    cdef Py_ssize_t K = last_axis(x)
    check_buffer(y, "y", b'f', itemsize, n, False)
    check_operand(weight, "weight", itemsize, n, K)
    check_optional(out, "out", b'f', itemsize, n, True)
    check_optional(grad, "grad", b'f', itemsize, n, True)
    if <int> kind < 0 or kind >= N_KINDS:
        raise ValueError(f"internal: unknown elementwise loss kind {kind}")
    cdef ElemCtx c
    set_streams(&c.s, x, y, weight, n, K)
    c.aux_rows = False
    c.grad2 = NULL
    if kind == GAUSSIAN_NLL:
        if var_rows:    # one variance per row of K items: item i reads var[i // K]
            if K < 1 or n % K:
                raise ValueError(f"fastloss kernel: {n} items do not form rows of K={K}")
            check_buffer(var, "var", b'f', itemsize, n // K, False)
            c.aux_rows = True
            c.aux.data = <const char*> ptr_or_null(var)
            c.aux.periodic = False
            c.aux.tiled = False
            c.s.periodic = True
            c.s.row_cut = True
        else:
            check_operand(var, "var", itemsize, n, K)
            add_operand(&c.s, &c.aux, var, n, itemsize)
        check_optional(grad_var, "grad_var", b'f', itemsize, n, True)
        c.grad2 = ptr_or_null(grad_var)
    elif kind == BCE_LOGITS:
        if pos_weight is not None:
            check_operand(pos_weight, "pos_weight", itemsize, n, K)
        add_operand(&c.s, &c.aux, 1.0 if pos_weight is None else pos_weight, n, itemsize)
    if kind == FOCAL and gamma == 2:    # the default gamma: q * q, no pow
        kind = FOCAL_SQUARE
    elif kind == FOCAL and gamma == 0:  # q^0 = 1: no pow, and no derivative term of it
        kind = FOCAL_ONE
    c.p.inv_beta = 0.0
    if kind == SMOOTH_L1 and pow2_inverse(beta, itemsize) != 0:    # the default beta = 1: no division
        kind = SMOOTH_L1_POW2
        c.p.inv_beta = pow2_inverse(beta, itemsize)
    if alpha < 0:                       # torchvision: no alpha weighting
        c.p.alpha_0 = 1.0
        c.p.alpha_step = 0.0
    else:
        c.p.alpha_0 = 1.0 - alpha
        c.p.alpha_step = alpha - (1.0 - alpha)
    c.p.gamma = gamma
    c.p.margin = margin
    c.p.squared = squared
    c.p.log_target = log_target
    c.p.delta = delta
    c.p.beta = beta
    c.p.eps = eps
    c.p.q = q
    c.p.full = full
    c.p.has_pos_weight = pos_weight is not None
    c.grad = ptr_or_null(grad)
    c.grad_scale = grad_scale
    c.stream_out = out is not None and (reused & 1) != 0 and n * itemsize >= STREAM_BYTES
    c.stream_grad = grad is not None and (reused & 2) != 0 and n * itemsize >= STREAM_BYTES
    c.pf_end = prefetch_end(n, 2 * n * itemsize)
    # nan results of a kind with a fallback form (note f): with reduction="none" each block looks for
    # them as it goes; a reduced run only when its sum comes out nan, in a second run
    c.check_nan = out is not None
    cdef BlockFn fn = BLOCKS[<int> kind][0 if itemsize == 4 else 1]
    res = run_weighted(fn, &c, n, 1, itemsize, weighted_mean, num_threads, out, True)
    if kind == BCE_LOGITS and not c.check_nan and res[0] != res[0]:
        c.check_nan = True
        res = run_weighted(fn, &c, n, 1, itemsize, weighted_mean, num_threads, out, True)
    return res


def gaussian_kl(mu, logvar, weight, Py_ssize_t rows, Py_ssize_t D, out, grad_mu, grad_logvar,
                double grad_scale, int num_threads, *, bint weighted_mean=False):
    """Kernel entry of the Gaussian KL term (note h): mu, logvar C-contiguous (rows * D,); weight a float
    or (rows,) array; out (rows,) or None; grad_mu / grad_logvar (rows * D,) or both None.
    Returns (loss_sum, denom_sum, -1)."""
    # boundary checks (_common.pxd)
    cdef Py_ssize_t n = items_product(check_count(rows, "rows"), check_count(D, "D"))
    cdef Py_ssize_t itemsize = check_buffer(mu, "mu", b'f', 0, n, False)
    check_buffer(logvar, "logvar", b'f', itemsize, n, False)
    check_operand(weight, "weight", itemsize, rows, 1)
    check_optional(out, "out", b'f', itemsize, rows, True)
    if (grad_mu is None) != (grad_logvar is None):
        raise ValueError("fastloss kernel: grad_mu and grad_logvar must be given together")
    check_optional(grad_mu, "grad_mu", b'f', itemsize, n, True)
    check_optional(grad_logvar, "grad_logvar", b'f', itemsize, n, True)
    cdef ElemCtx c
    set_streams(&c.s, mu, logvar, weight, rows, 1)
    c.aux_rows = False
    c.D = D
    c.grad = ptr_or_null(grad_mu)
    c.stream_out = c.stream_grad = False
    c.pf_end = 0
    c.grad2 = ptr_or_null(grad_logvar)
    c.grad_scale = grad_scale
    cdef BlockFn fn = <BlockFn> gauss_kl_block[float] if itemsize == 4 else <BlockFn> gauss_kl_block[double]
    return run_weighted(fn, &c, rows, D, itemsize, weighted_mean, num_threads, out, False)


# fl.partial(..., weight=): the weighted sum of per-item losses (fastloss/state.py)
include "_weighted_sum.pxi"
