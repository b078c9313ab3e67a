# cython: language_level=3
"""Regression and probabilistic losses: elementwise kernels on (input, target[, var]) and the row-wise
Gaussian KL term.

Read ``_common.pxd`` first: every kernel here is a *block function* run by ``run_blocks``.

Design of this family:

a. **One point function per loss** (``*_point``): value and d/dinput (and d/dvar for the Gaussian NLL),
   with the formula and its stable form derived in a comment.  Nothing else holds maths.

b. **One elementwise loop for all of them** (``ew_block``).  The loss is picked at *compile time*
   through a fused "kind" type: each loss has a tag struct (``MseK``, ``HuberK``, ...) whose only member
   is the shared context ``EwCtx``; ``ew_block[HuberK, float]`` is the loop with ``huber_point``
   inlined, so the inner loop has no switch and no function pointer, and vectorises.  The def entry
   picks the specialisation from a table filled once (``_pick``).

c. **Operands** come from ``_common.pxd``'s streams: ``weight`` and ``var`` may be scalars, last-axis
   vectors or full arrays (branch-free inside a segment).  One extra mode exists here for torch's
   homoscedastic ``var`` of shape ``input.shape[:-1]`` (or ``[..., 1]``): one value per row of the last
   axis, i.e. item i reads var[i // K]; segments already stop at row ends, so a segment reads one value.

d. **Domain checks** (MSLE: input/target <= -1; MAPE: target == 0 without eps; Gaussian NLL: var < 0)
   are counted branch-free inside the loop; a segment with a bad item is rescanned for the first one,
   whose index the block returns.  The Python wrapper raises after the GIL is re-taken.

e. **Weights and the mean.**  Items are multiplied by the sample weight; the block writes the weight
   to ``denom`` when the driver asks, so a weighted mean sum(w*l)/sum(w) takes one pass.  With
   ``return_grad`` and a weighted mean, ``weight_block`` sums the weights first (a cheap pass over the
   weight operand alone) so the gradient is scaled as it is written.
"""
from fastloss._kernels._common cimport (
    floating, BlockFn, BlockRun, run_blocks, Operand, operand_seg, set_operand, ElemStreams, next_segment,
    set_streams, ptr_or_null, init_run, finish_run, SEG, f_exp, f_log, f_log1p, f_abs,
)
from fastloss._kernels._common cimport (
    check_buffer, check_optional, check_operand, check_count, buffer_items, items_product,
)

# ln 2 as a C constant (folded by the compiler; Cython's DEF is deprecated)
cdef extern from *:
    """
    #define FL_REGRESSION_LOG2 0.6931471805599453094
    """
    const double LOG2 "FL_REGRESSION_LOG2"

# loss kinds: the numbers the Python wrapper passes (keep in sync with fastloss/_regression.py)
cpdef enum LossKind:
    MSE = 0
    L1 = 1
    HUBER = 2
    SMOOTH_L1 = 3
    POISSON_LOG = 4
    POISSON = 5
    GAUSSIAN_NLL = 6
    LOG_COSH = 7
    QUANTILE = 8
    MAPE = 9
    SMAPE = 10
    MSLE = 11
    N_KINDS = 12


cdef struct EwCtx:
    ElemStreams s             # input x (prediction), target y, sample weight (1.0 when absent); the last
                              # axis length K; s.periodic: segments stop at row ends (a last-axis operand,
                              # or var_rows)
    Operand var               # Gaussian variance (unused otherwise)
    bint var_rows             # var holds one value per row of the last axis: item i reads var[i // K]
    double a                  # loss parameter: delta, beta, eps, q (see the point functions)
    double b                  # second parameter: Poisson `full`, Gaussian constant term
    void* grad                # d/dinput, n items, or NULL
    void* grad_var            # d/dvar, n items (Gaussian, optional)
    double grad_scale         # d(returned loss)/d(item loss)


# one tag per loss (see note b); the layout of each is exactly EwCtx
cdef struct MseK:
    EwCtx e
cdef struct L1K:
    EwCtx e
cdef struct HuberK:
    EwCtx e
cdef struct SmoothL1K:
    EwCtx e
cdef struct PoissonLogK:
    EwCtx e
cdef struct PoissonK:
    EwCtx e
cdef struct GaussNllK:
    EwCtx e
cdef struct LogCoshK:
    EwCtx e
cdef struct QuantileK:
    EwCtx e
cdef struct MapeK:
    EwCtx e
cdef struct SmapeK:
    EwCtx e
cdef struct MsleK:
    EwCtx e

ctypedef fused kind_t:
    MseK
    L1K
    HuberK
    SmoothL1K
    PoissonLogK
    PoissonK
    GaussNllK
    LogCoshK
    QuantileK
    MapeK
    SmapeK
    MsleK


# =====================================================================================================
# Point functions: loss of one element, d/dinput into dx (d = input - target throughout)
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
    cdef floating d = x - y
    cdef floating ad = f_abs(d)
    dx[0] = -delta if d < -delta else (delta if d > delta else d)
    return <floating> 0.5 * d * d if ad < delta else delta * (ad - <floating> 0.5 * delta)


cdef inline floating smooth_l1_point(floating x, floating y, floating beta, floating* dx) noexcept nogil:
    # torch: |d| < beta ? d^2 / (2 beta) : |d| - beta / 2;  beta = 0 is L1 (the first branch never runs)
    # d/dx = d / beta inside, sign(d) outside (0 at d = 0 for beta = 0, as torch's l1_loss)
    cdef floating d = x - y
    cdef floating ad = f_abs(d)
    dx[0] = d / beta if ad < beta else f_sign(d)
    return <floating> 0.5 * d * d / beta if ad < beta else ad - <floating> 0.5 * beta


cdef inline floating stirling_point(floating y) noexcept nogil:
    # torch's `full` term: y log y - y + log(2 pi y) / 2 where y > 1, else 0 (masked like torch)
    return y * f_log(y) - y + <floating> 0.5 * f_log(<floating> 6.283185307179586 * y) if y > 1 else 0


cdef inline floating poisson_log_point(floating x, floating y, floating full, floating* dx) noexcept nogil:
    # log_input=True: exp(x) - y x,  d/dx = exp(x) - y
    cdef floating ex = f_exp(x)
    dx[0] = ex - y
    # exp(x) - y x in double: in float32, y x overflows to inf for |x|, |y| ~ 1e30 and inf - inf gave nan
    # where FMA was not used (baseline ISA); the float64 value is exact enough and rounds to inf / finite
    return <floating> (<double> ex - <double> y * <double> x) + (stirling_point(y) if full != 0 else 0)


cdef inline floating poisson_point(floating x, floating y, floating eps, floating full,
                                   floating* dx) noexcept nogil:
    # log_input=False: x - y log(x + eps),  d/dx = 1 - y / (x + eps)
    dx[0] = 1 - y / (x + eps)
    return x - y * f_log(x + eps) + (stirling_point(y) if full != 0 else 0)


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


cdef extern from "fl_math.h" nogil:
    float fl_expm1f(float)
    double fl_expm1(double)


cdef inline floating f_expm1(floating x) noexcept nogil:
    if floating is float:
        return fl_expm1f(x)
    else:
        return fl_expm1(x)


cdef inline floating log_cosh_point(floating x, floating y, floating* dx) noexcept nogil:
    # Everything from u = expm1(-2|d|) = e^(-2|d|) - 1 in [-1, 0], which has full relative precision
    # for every |d| (exp(-2|d|) itself does not near 0: 1 - t cancels):
    #   tanh|d| = (1 - e^(-2|d|)) / (1 + e^(-2|d|)) = -u / (2 + u)      (no cancellation anywhere)
    #   |d| < 1:  log cosh d = -log(1 - tanh^2 d) / 2 = -log1p(-th^2) / 2    (th^2 < 0.58: log1p is
    #             well conditioned, and th^2 ~ d^2 keeps the tiny values' relative precision)
    #   |d| >= 1: log cosh d = |d| + log1p(t) - log 2,  t = 1 + u = e^(-2|d|)   (>= 0.43, no
    #             cancellation worth a bit; never overflows, cosh itself does past ~710)
    # (The SPEC's |d| + log1p(exp(-2|d|)) - log 2 everywhere cancels for small |d|: d^2 / 2 out of terms
    # ~0.7, 4.5e-5 relative in float32 at |d| = 0.0627.)  One expm1 and one log1p serve both branches.
    # d/dx = tanh(d) = sign(d) th, nan for nan
    cdef floating one = 1, two = 2
    cdef floating d = x - y
    cdef floating ad = f_abs(d)
    cdef floating u = f_expm1(-two * ad)
    cdef floating th = -u / (two + u)
    cdef bint small = ad < one
    cdef floating r = f_log1p(-th * th if small else one + u)
    dx[0] = th if d >= 0 else (-th if d < 0 else d)
    return <floating> -0.5 * r if small else ad + r - <floating> LOG2


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
    # KL(N(mu, exp lv) || N(0, 1)) of one latent: -(1 + lv - mu^2 - exp lv) / 2
    # d/dmu = mu,  d/dlv = (exp lv - 1) / 2
    cdef floating ev = f_exp(lv)
    dmu[0] = mu
    dlv[0] = <floating> 0.5 * (ev - 1)
    return <floating> -0.5 * (1 + lv - mu * mu - ev)


# =====================================================================================================
# The elementwise loop, specialised per kind at compile time
# =====================================================================================================
cdef inline floating point(const kind_t* tag, floating x, floating y, floating v, floating a, floating b,
                           floating* dx, floating* dv) noexcept nogil:
    """Compile-time dispatch to the point function of the kind (``tag`` only carries the type)."""
    if kind_t is MseK:
        return mse_point(x, y, dx)
    elif kind_t is L1K:
        return l1_point(x, y, dx)
    elif kind_t is HuberK:
        return huber_point(x, y, a, dx)
    elif kind_t is SmoothL1K:
        return smooth_l1_point(x, y, a, dx)
    elif kind_t is PoissonLogK:
        return poisson_log_point(x, y, b, dx)
    elif kind_t is PoissonK:
        return poisson_point(x, y, a, b, dx)
    elif kind_t is GaussNllK:
        return gauss_nll_point(x, y, v, a, b, dx, dv)
    elif kind_t is LogCoshK:
        return log_cosh_point(x, y, dx)
    elif kind_t is QuantileK:
        return quantile_point(x, y, a, dx)
    elif kind_t is MapeK:
        return mape_point(x, y, a, dx)
    elif kind_t is SmapeK:
        return smape_point(x, y, dx)
    else:
        return msle_point(x, y, dx)


cdef inline int is_bad(const kind_t* tag, floating x, floating y, floating v, floating a) noexcept nogil:
    """1 where the item is outside the loss's domain (note d), branch-free; constant 0 for most kinds."""
    if kind_t is MsleK:
        return (x <= -1) | (y <= -1)
    elif kind_t is MapeK:
        return (y == 0) & (a == 0)
    elif kind_t is GaussNllK:
        return v < 0
    else:
        return 0


cdef inline const floating* var_seg(const EwCtx* c, Py_ssize_t i, Py_ssize_t L,
                                    floating* buf) noexcept nogil:
    """The variance for items [i, i + L) (one row at most in var_rows mode; note c)."""
    cdef Py_ssize_t k
    cdef floating v
    if not c.var_rows:
        return operand_seg(&c.var, i, c.s.K, buf)
    v = (<const floating*> c.var.data)[i // c.s.K]
    for k in range(L):
        buf[k] = v
    return buf


cdef Py_ssize_t ew_block(const kind_t* tag, Py_ssize_t start, Py_ssize_t stop,
                         floating* loss, floating* denom) noexcept nogil:
    cdef const EwCtx* c = &tag.e
    cdef const floating* x
    cdef const floating* y
    cdef const floating* w
    cdef const floating* v
    cdef floating* g
    cdef floating* gv
    cdef floating* out
    cdef floating vbuf[SEG]
    cdef floating gvbuf[SEG]
    cdef floating a = <floating> c.a
    cdef floating b = <floating> c.b
    cdef floating gs = <floating> c.grad_scale
    cdef floating d, dv
    cdef Py_ssize_t i = start, e, k, L, bad = -1
    cdef int nbad
    while i < stop:
        e = next_segment(&c.s, i, stop, &x, &y, &w)
        L = e - i
        v = var_seg(c, i, L, vbuf) if kind_t is GaussNllK else x
        out = loss + (i - start)
        nbad = 0
        if c.grad != NULL:
            g = <floating*> c.grad + i
            gv = <floating*> c.grad_var + i if c.grad_var != NULL else gvbuf
            for k in range(L):
                out[k] = w[k] * point(tag, x[k], y[k], v[k], a, b, &d, &dv)
                g[k] = w[k] * d * gs
                if kind_t is GaussNllK:
                    gv[k] = w[k] * dv * gs
                nbad += is_bad(tag, x[k], y[k], v[k], a)
        else:
            for k in range(L):
                out[k] = w[k] * point(tag, x[k], y[k], v[k], a, b, &d, &dv)
                nbad += is_bad(tag, x[k], y[k], v[k], a)
        if denom != NULL:
            for k in range(L):
                denom[i - start + k] = w[k]
        if nbad and bad < 0:
            for k in range(L):
                if is_bad(tag, x[k], y[k], v[k], a):
                    bad = i + k
                    break
        i = e
    return bad


cdef Py_ssize_t weight_block(const EwCtx* c, Py_ssize_t start, Py_ssize_t stop,
                             floating* loss, floating* denom) noexcept nogil:
    """Only the weights (the weighted mean's denominator, summed before a gradient pass; note e)."""
    cdef const floating* x
    cdef const floating* y
    cdef const floating* w
    cdef Py_ssize_t i = start, e, k
    while i < stop:
        e = next_segment(&c.s, i, stop, &x, &y, &w)
        for k in range(e - i):
            loss[i - start + k] = w[k]
        i = e
    return -1


# =====================================================================================================
# Gaussian KL to the standard normal: items are rows of the latent (last) axis
# =====================================================================================================
cdef Py_ssize_t gauss_kl_block(const EwCtx* c, Py_ssize_t start, Py_ssize_t stop,
                               floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t D = <Py_ssize_t> c.a, r, j
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
            gl = <floating*> c.grad_var + r * D
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
cdef BlockFn EW_FN[N_KINDS][2]

cdef void _put(int kind, BlockFn f32, BlockFn f64) noexcept:
    EW_FN[kind][0] = f32
    EW_FN[kind][1] = f64

_put(MSE, <BlockFn> ew_block[MseK, float], <BlockFn> ew_block[MseK, double])
_put(L1, <BlockFn> ew_block[L1K, float], <BlockFn> ew_block[L1K, double])
_put(HUBER, <BlockFn> ew_block[HuberK, float], <BlockFn> ew_block[HuberK, double])
_put(SMOOTH_L1, <BlockFn> ew_block[SmoothL1K, float], <BlockFn> ew_block[SmoothL1K, double])
_put(POISSON_LOG, <BlockFn> ew_block[PoissonLogK, float], <BlockFn> ew_block[PoissonLogK, double])
_put(POISSON, <BlockFn> ew_block[PoissonK, float], <BlockFn> ew_block[PoissonK, double])
_put(GAUSSIAN_NLL, <BlockFn> ew_block[GaussNllK, float], <BlockFn> ew_block[GaussNllK, double])
_put(LOG_COSH, <BlockFn> ew_block[LogCoshK, float], <BlockFn> ew_block[LogCoshK, double])
_put(QUANTILE, <BlockFn> ew_block[QuantileK, float], <BlockFn> ew_block[QuantileK, double])
_put(MAPE, <BlockFn> ew_block[MapeK, float], <BlockFn> ew_block[MapeK, double])
_put(SMAPE, <BlockFn> ew_block[SmapeK, float], <BlockFn> ew_block[SmapeK, double])
_put(MSLE, <BlockFn> ew_block[MsleK, float], <BlockFn> ew_block[MsleK, double])


cdef object run_family(BlockFn fn, EwCtx* c, Py_ssize_t n_items, Py_ssize_t item_cost, Py_ssize_t itemsize,
                       int num_threads, object out, bint want_denom):
    """One run of the driver; returns (loss_sum, denom_sum, first_bad)."""
    cdef BlockRun run
    cdef int status
    init_run(&run, n_items, item_cost, itemsize, num_threads, ptr_or_null(out), want_denom)
    with nogil:
        status = run_blocks(fn, c, &run)
    return finish_run(status, &run)


cdef object run_weighted(BlockFn fn, EwCtx* c, Py_ssize_t n_items, Py_ssize_t item_cost,
                         Py_ssize_t itemsize, str reduction, bint weighted_mean, int num_threads, object out):
    """The loss pass, preceded for a weighted mean with a gradient by the weight-sum pass (note e).
    ``c.grad_scale`` holds the scale for an unweighted reduction; a weighted mean replaces it."""
    cdef BlockFn wfn
    if weighted_mean and c.grad != NULL:
        wfn = <BlockFn> weight_block[float] if itemsize == 4 else <BlockFn> weight_block[double]
        wsum = run_family(wfn, c, n_items, 1, itemsize, num_threads, None, False)[0]
        c.grad_scale = 1.0 / wsum if wsum != 0 else float("nan")
        loss_sum, _, bad = run_family(fn, c, n_items, item_cost, itemsize, num_threads, out, False)
        return loss_sum, wsum, bad
    return run_family(fn, c, n_items, item_cost, itemsize, num_threads, out, weighted_mean)


def elementwise(int kind, x, y, weight, var, bint var_rows, Py_ssize_t K, double a, double b, str reduction,
                bint weighted_mean, out, grad, grad_var, double grad_scale, int num_threads):
    """Kernel entry for every elementwise loss.

    x, y: C-contiguous (n,) arrays of one float dtype; weight / var: a float or an array of n or K items
    (var: of n // K items when var_rows); out (n,) or None; grad, grad_var (n,) or None.
    ``weighted_mean``: the mean divides by the summed weights (returned as denom_sum).
    Returns (loss_sum, denom_sum, first_bad_index)."""
    # boundary checks (_common.pxd)
    cdef Py_ssize_t itemsize = check_buffer(x, "x", b'f', 0, -1, False)
    cdef Py_ssize_t n = buffer_items(x)
    check_buffer(y, "y", b'f', itemsize, n, False)
    check_operand(weight, "weight", itemsize, n, K)
    if var_rows:    # one variance per row of K items: item i reads var[i // K]
        if K < 1 or n % K:
            raise ValueError(f"fastloss kernel: {n} items do not form rows of K={K}")
        check_buffer(var, "var", b'f', itemsize, n // K, False)
    else:
        check_operand(var, "var", itemsize, n, K)
    check_optional(out, "out", b'f', itemsize, n, True)
    check_optional(grad, "grad", b'f', itemsize, n, True)
    check_optional(grad_var, "grad_var", b'f', itemsize, n, True)
    cdef EwCtx c
    if kind < 0 or kind >= N_KINDS:
        raise ValueError(f"internal: unknown loss kind {kind}")
    set_streams(&c.s, x, y, weight, n, K)
    c.var_rows = var_rows
    if var_rows:
        c.var.data = <const char*> ptr_or_null(var)
        c.var.periodic = False
        c.s.periodic = True
    else:
        c.s.periodic = set_operand(&c.var, var, n, c.s.K, itemsize) or c.s.periodic
    c.a = a
    c.b = b
    c.grad = ptr_or_null(grad)
    c.grad_var = ptr_or_null(grad_var)
    c.grad_scale = grad_scale
    return run_weighted(EW_FN[kind][0 if itemsize == 4 else 1], &c, n, 1, itemsize, reduction,
                        weighted_mean, num_threads, out)


def gaussian_kl(mu, logvar, weight, Py_ssize_t rows, Py_ssize_t D, str reduction, bint weighted_mean, out, grad_mu,
                grad_logvar, double grad_scale, int num_threads):
    """Kernel entry: mu, logvar C-contiguous (rows * D,); weight a float or (rows,) array; out (rows,) or
    None; grad_mu / grad_logvar (rows * D,) or both None.  Returns (loss_sum, denom_sum, -1)."""
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
    cdef EwCtx c
    set_streams(&c.s, mu, logvar, weight, rows, 1)
    c.var_rows = False
    c.a = D
    c.b = 0
    c.grad = ptr_or_null(grad_mu)
    c.grad_var = ptr_or_null(grad_logvar)
    c.grad_scale = grad_scale
    cdef BlockFn fn = <BlockFn> gauss_kl_block[float] if itemsize == 4 else <BlockFn> gauss_kl_block[double]
    return run_weighted(fn, &c, rows, D, itemsize, reduction, weighted_mean, num_threads, out)
