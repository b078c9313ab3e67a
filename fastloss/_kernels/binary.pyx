# cython: language_level=3
"""Elementwise binary / probabilistic losses: binary cross-entropy on probabilities, sigmoid focal loss,
binary hinge, and KL divergence (pointwise, torch's ``kl_div``).

Read ``_common.pxd`` first: every kernel here is a *block function* run by ``run_blocks``.

Design (one loop, four formulas):
  * Each loss is one ``cdef inline`` point function ``point(x, y, params..., &d) -> loss`` returning the
    per-element loss and writing d(loss)/dx -- the formula and its derivative, in one place.
  * The loop around them is written ONCE: ``elementwise_block`` is fused over the loss *kind* (a tag
    struct: ``BceKind``, ``FocalKind`` / ``FocalSquareKind`` (gamma = 2), ``HingeKind``, ``KlKind``) and the floating type, so Cython emits
    one specialised copy per (kind, dtype) with the point function inlined -- no function pointer and no
    switch inside the inner loop, which stays branch-free and vectorises.
  * Every kind reads the same context (``ElemCtx``): prediction ``x``, target ``y``, an optional
    per-element weight, as ``_common.pxd``'s ``ElemStreams`` (the weight: scalar 1.0, last-axis vector or
    full array; ``next_segment`` is the loop header), up to three scalar parameters ``a, b, c`` (meaning
    per kind, below), the gradient output and its scale.
  * Validation is a per-kind predicate ``invalid(x, y)`` counted in the same loop (constant False where a
    loss validates nothing, so it compiles away); the block returns the first invalid index and the
    Python wrapper raises after the GIL is re-taken.
"""
from fastloss._kernels._common cimport (
    floating, BlockFn, BlockRun, run_blocks, ElemStreams, next_segment, set_streams,
    ptr_or_null, init_run, finish_run, f_exp, f_log, f_log1p, f_log1p_unit_inv, f_abs, f_max, f_min,
)
from fastloss._kernels._common cimport check_buffer, check_optional, check_operand, buffer_items


cdef struct ElemCtx:
    ElemStreams s            # prediction x, target y, per-element weight (1.0 when the loss has none)
    double a                 # parameters, per kind: focal (alpha_0, alpha_1 - alpha_0, gamma),
    double b                 #   hinge (margin, squared, -), kl (log_target, -, -), bce (-, -, -)
    double c
    void* grad               # d(returned loss)/dx, (n,) or NULL
    double grad_scale        # d(returned loss)/d(element loss): 1/count for means, else 1

# Kind tags: layout-identical wrappers of ElemCtx whose only job is to select a specialisation.
cdef struct BceKind:
    ElemCtx e
cdef struct FocalKind:
    ElemCtx e
cdef struct FocalSquareKind:     # focal with gamma == 2 (the default): q^gamma = q * q
    ElemCtx e
cdef struct HingeKind:
    ElemCtx e
cdef struct KlKind:
    ElemCtx e

ctypedef fused kind_t:
    BceKind
    FocalKind
    FocalSquareKind
    HingeKind
    KlKind


# =====================================================================================================
# Point functions (value + derivative)
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
# taken as 0, the limit, where torch's autograd gives 0 for g >= 1 and nan (inf * 0) for 0 < g < 1.
# Parameters: a = alpha_0 (alpha_t at t = 0), b = alpha_1 - alpha_0, c = gamma.
# Constants are typed (``one``): a bare ``1`` becomes the C double 1.0 and would widen float32 maths.
cdef inline floating focal_point(floating x, floating t, floating a0, floating da, floating g, bint square,
                                 floating* dx) noexcept nogil:
    cdef floating one = 1, zero = 0
    cdef floating e = f_exp(-f_abs(x))
    cdef floating inv = one / (one + e)
    cdef floating p = inv if x >= zero else e * inv
    cdef floating pm = e * inv if x >= zero else inv
    cdef floating mn = f_min(x, zero)
    # BCE-with-logits as in classification.pyx's bce_logits_point (pos_weight 1): (1 - t) x + max(-x, 0)
    # written as (1 - t) max(x, 0) - t min(x, 0) so nothing cancels in float32; mn - mn is nan at x = -inf
    cdef floating ce = ((one - t) * f_max(x, zero) - t * mn + (mn - mn)) + f_log1p_unit_inv(e, inv)
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


# Binary SVM hinge on scores s with targets y in {-1, +1} (SPEC section 6):
#   v = margin - y s,  loss = max(0, v)  (squared: max(0, v)^2)
#   dloss/ds = -y where v > 0, else 0    (squared: -2 y max(0, v)); nan propagates to loss and gradient.
# Parameters: a = margin, b = squared (0 or 1).
cdef inline floating hinge_point(floating s, floating y, floating margin, floating squared,
                                 floating* ds) noexcept nogil:
    cdef floating zero = 0, one = 1
    cdef floating v = margin - y * s
    cdef floating h = f_max(zero, v)                   # f_max returns v when v is nan
    cdef floating step = one if v > zero else zero
    step = v if v != v else step
    ds[0] = -y * ((h + h) if squared != zero else step)
    return h * h if squared != zero else h


# KL divergence, pointwise, torch.kl_div (aten/src/ATen/native/Loss.cpp):
#   log_target False: xlogy(t, t) - t x        (xlogy: 0 where t == 0, nan where t is nan)
#   log_target True:  exp(t) (t - x)
#   dloss/dx = -t  (or -exp(t))
# Parameter: a = log_target (0 or 1).
cdef inline floating kl_point(floating x, floating t, floating log_target, floating* dx) noexcept nogil:
    cdef floating zero = 0
    cdef floating et
    if log_target != zero:
        et = f_exp(t)
        dx[0] = -et
        return et * (t - x)
    dx[0] = -t
    return (t * f_log(t) if t != zero else zero) - t * x


cdef inline floating point(const kind_t* tag, floating x, floating y, floating a, floating b, floating c,
                           floating* dx) noexcept nogil:
    """The kind's point function (resolved at compile time)."""
    if kind_t is BceKind:
        return bce_point(x, y, dx)
    elif kind_t is FocalKind:
        return focal_point(x, y, a, b, c, False, dx)
    elif kind_t is FocalSquareKind:
        return focal_point(x, y, a, b, c, True, dx)
    elif kind_t is HingeKind:
        return hinge_point(x, y, a, b, dx)
    else:
        return kl_point(x, y, a, dx)


cdef inline bint invalid(const kind_t* tag, floating x, floating y) noexcept nogil:
    """Whether an element is outside the loss's domain (resolved at compile time; False compiles away).
    BCE: torch's check, input and target in [0, 1] (nan is outside).  Hinge: target is -1 or +1."""
    cdef floating zero = 0, one = 1
    if kind_t is BceKind:
        return not ((x >= zero) & (x <= one) & (y >= zero) & (y <= one))
    elif kind_t is HingeKind:
        return not ((y == one) | (y == -one))
    else:
        return False


# =====================================================================================================
# The one block loop
# =====================================================================================================
cdef Py_ssize_t elementwise_block(const kind_t* kc, Py_ssize_t start, Py_ssize_t stop,
                                  floating* loss, floating* denom) noexcept nogil:
    cdef const ElemCtx* c = &kc.e
    # parameters as locals: loop-invariant for the compiler (stores to `loss` cannot alias them)
    cdef floating a = <floating> c.a
    cdef floating b = <floating> c.b
    cdef floating cc = <floating> c.c
    cdef floating gs = <floating> c.grad_scale
    cdef const floating* x
    cdef const floating* y
    cdef const floating* w
    cdef floating* g
    cdef floating* out
    cdef floating d
    cdef Py_ssize_t i = start, e, k, L, n_bad, bad = -1
    while i < stop:
        e = next_segment(&c.s, i, stop, &x, &y, &w)
        L = e - i
        out = loss + (i - start)
        n_bad = 0
        if c.grad != NULL:
            g = <floating*> c.grad + i
            for k in range(L):
                out[k] = w[k] * point(kc, x[k], y[k], a, b, cc, &d)
                g[k] = w[k] * d * gs
                n_bad += invalid(kc, x[k], y[k])
        else:
            for k in range(L):
                out[k] = w[k] * point(kc, x[k], y[k], a, b, cc, &d)
                n_bad += invalid(kc, x[k], y[k])
        if n_bad and bad < 0:
            for k in range(L):
                if invalid(kc, x[k], y[k]):
                    bad = i + k
                    break
        i = e
    return bad


KINDS = ("bce", "focal", "focal_square", "hinge", "kl")


cdef BlockFn block_for(str kind, Py_ssize_t itemsize) except NULL:
    cdef bint f32 = itemsize == 4
    if kind == "bce":
        return <BlockFn> elementwise_block[BceKind, float] if f32 else <BlockFn> elementwise_block[BceKind, double]
    if kind == "focal":
        return <BlockFn> elementwise_block[FocalKind, float] if f32 else <BlockFn> elementwise_block[FocalKind, double]
    if kind == "focal_square":
        return <BlockFn> elementwise_block[FocalSquareKind, float] if f32 else <BlockFn> elementwise_block[FocalSquareKind, double]
    if kind == "hinge":
        return <BlockFn> elementwise_block[HingeKind, float] if f32 else <BlockFn> elementwise_block[HingeKind, double]
    if kind == "kl":
        return <BlockFn> elementwise_block[KlKind, float] if f32 else <BlockFn> elementwise_block[KlKind, double]
    raise ValueError(f"internal: unknown elementwise loss kind {kind!r}")


def elementwise(str kind, x, y, weight, Py_ssize_t K, double a, double b, double c, out, grad,
                double grad_scale, int num_threads):
    """Kernel entry for every loss of this family.

    kind in KINDS; x, y C-contiguous (n,) arrays of the same float dtype; weight a float or an array of
    n or K (last axis) items of that dtype; a, b, c the kind's parameters (see ElemCtx); out (n,) for
    reduction="none" or None; grad (n,) or None.  Returns (loss_sum, 0, first_invalid_index or -1).
    """
    # boundary checks (_common.pxd)
    cdef Py_ssize_t itemsize = check_buffer(x, "x", b'f', 0, -1, False)
    cdef Py_ssize_t n = buffer_items(x)
    check_buffer(y, "y", b'f', itemsize, n, False)
    check_operand(weight, "weight", itemsize, n, K)
    check_optional(out, "out", b'f', itemsize, n, True)
    check_optional(grad, "grad", b'f', itemsize, n, True)
    cdef ElemCtx ctx
    cdef BlockRun run
    cdef BlockFn fn = block_for(kind, itemsize)
    cdef int status
    set_streams(&ctx.s, x, y, weight, n, K)
    ctx.a = a
    ctx.b = b
    ctx.c = c
    ctx.grad = ptr_or_null(grad)
    ctx.grad_scale = grad_scale
    init_run(&run, n, 1, itemsize, num_threads, ptr_or_null(out), False)
    with nogil:
        status = run_blocks(fn, &ctx, &run)
    return finish_run(status, &run)
