# cython: language_level=3
"""Bounding-box kernels: the torchvision IoU-family losses over box pairs, and the pairwise N x M
IoU / GIoU matrices.

Read ``_common.pxd`` first: the losses are *block functions* run by ``run_blocks`` (through ``run``).
The entries take buffers by position and configuration by keyword: ``BoxKind`` and ``BoxFormat``
(``cpdef enum``\ s, ``fastloss/_boxes.py`` passes their members), doubles and flags.

Design notes.

a. **Boxes are read in place, in any of the three formats.**  A box is 4 consecutive values of an
   (n, 4) array (``xyxy``, ``xywh`` or ``cxcywh``).  A block cuts its pairs into segments of SEG; each
   segment's boxes are transposed (``src_c/fl_soa4.h``: vector shuffles) into per-segment stack arrays
   (structure of arrays, L1 resident) and converted to ``xyxy`` there, so no temporary of the input's
   size exists and the formula loop reads four contiguous streams per box and vectorises.  The
   gradient is written to per-segment arrays in ``xyxy``, converted to the input's format (chain rule
   of the conversion) and transposed back as it is stored.
   A side that is a single box (shape (4,) against (n, 4), torch broadcasting) fills its segment
   arrays with copies of that box -- the same loop serves both.

b. **One point function for the four losses.**  ``box_loss_point`` computes IoU, then the GIoU, DIoU
   or CIoU penalty, and -- when asked -- the gradient with respect to box 1, exactly as torch autograd
   differentiates torchvision's formula (see the derivation above it).  The kind (IoU/GIoU/DIoU/CIoU)
   and whether to write the gradient are *fused tag types*, not runtime values: Cython emits one C
   function per (floating, kind, grad) with the other branches removed at compile time, each called
   once, from a switch on the ``BoxKind`` outside the loop (``seg_of_kind``).  One formula in the
   source, sixteen straight-line loops in C, no per-element switch -- and no reliance on the compiler
   choosing to inline a large function.

c. **Pairwise matrices** (``box_iou``, ``generalized_box_iou``) run in row tiles (``prange`` over tiles
   of rows of boxes1); each tile walks boxes2 in column tiles converted once into a stack SoA buffer, so
   memory is the output alone and every inner loop is a contiguous vectorisable row of the output.
"""
from fastloss._kernels._common cimport floating, BlockFn, run, prefetch_end, SEG, f_max, f_min, ptr_or_null
from fastloss._kernels._common cimport (
    check_buffer, check_optional, check_count, check_enum, buffer_items, items_product,
)
from cython.parallel cimport prange

# The configuration the wrappers (fastloss/_boxes.py) pass, as typed enums (Python: BoxKind.GIOU, ...).
cpdef enum BoxKind:
    IOU = 0               # box_pair_loss: 1 - IoU;  pairwise: the IoU matrix
    GIOU = 1              # generalized IoU
    DIOU = 2              # distance IoU (box_pair_loss only)
    CIOU = 3              # complete IoU (box_pair_loss only)

cpdef enum BoxFormat:
    XYXY = 0              # (x1, y1, x2, y2)
    XYWH = 1              # (x1, y1, w, h)
    CXCYWH = 2            # (centre x, centre y, w, h)

cdef enum:
    N_BOX_KINDS = 4
    N_BOX_FORMATS = 3

# Compile-time tags: box_loss_point and seg_losses are fused over them, so each (kind, grad) pair is a
# separate C function with the other kinds' branches removed (note b).
cdef struct IoU:
    char unused
cdef struct GIoU:
    char unused
cdef struct DIoU:
    char unused
cdef struct CIoU:
    char unused
ctypedef fused box_kind:
    IoU
    GIoU
    DIoU
    CIoU

cdef struct LossOnly:
    char unused
cdef struct WithGrad:
    char unused
ctypedef fused grad_mode:
    LossOnly
    WithGrad

# 4 / pi**2 as torchvision computes it (a Python float)
cdef double FOUR_OVER_PI2 = 0.40528473456935109


cdef inline floating f_atan(floating x) noexcept nogil:
    """atan, branch-free so that the CIoU loop vectorises (libm's atan is a call).  Cephes (Moshier)
    range reduction and minimax fits: double P(z)/Q(z) (max relative error ~2e-16), float a degree-4
    polynomial (~1 ulp); inf -> +-pi/2, NaN -> NaN."""
    cdef floating one = 1, zero = 0   # typed constants: a bare literal would make float code double
    cdef floating ax = -x if x < 0 else x
    cdef bint big, mid
    cdef floating num, den, xr, z, y0, r
    if floating is double:
        big = ax > 2.41421356237309504880          # tan(3 pi / 8)
        mid = ax > 0.66
    else:
        big = ax > <float> 2.414213562373095
        mid = ax > <float> 0.4142135623730950     # tan(pi / 8)
    # x -> -1/x (big) or (x - 1)/(x + 1) (mid): one division either way
    num = -one if big else (ax - one if mid else ax)
    den = ax if big else (ax + one if mid else one)
    xr = num / den
    z = xr * xr
    if floating is double:
        r = (((((-8.750608600031904122785E-1 * z - 1.615753718733365076637E1) * z
                - 7.500855792314704667340E1) * z - 1.228866684490136173410E2) * z
              - 6.485021904942025371773E1) * z) / (((((z + 2.485846490142306297962E1) * z
              + 1.650270098316988542046E2) * z + 4.328810604912902668951E2) * z
              + 4.853903996359136964868E2) * z + 1.945506571482613964425E2)
        r = xr * r + xr
        r = r + (6.123233995736765886130E-17 if big else (3.061616997868382943065E-17 if mid else 0))
        y0 = 1.57079632679489661923 if big else (0.78539816339744830962 if mid else zero)
    else:
        r = ((((<float> 8.05374449538e-2 * z - <float> 1.38776856032e-1) * z + <float> 1.99777106478e-1) * z
              - <float> 3.33329491539e-1) * z) * xr + xr
        y0 = <float> 1.5707963267948966 if big else (<float> 0.7853981633974483 if mid else zero)
    r = y0 + r
    return -r if x < 0 else r


# torch's backward of maximum/minimum (tools/autograd/derivatives.yaml): a tie splits the gradient in
# half; a NaN operand (every comparison false) passes it whole.
cdef inline floating d_max(floating a, floating b) noexcept nogil:
    """d max(a, b) / da"""
    return 0 if a < b else (<floating> 0.5 if a == b else 1)

cdef inline floating d_min(floating a, floating b) noexcept nogil:
    """d min(a, b) / da"""
    return 0 if a > b else (<floating> 0.5 if a == b else 1)


# =====================================================================================================
# The loss of one box pair (torchvision.ops: _loss_inter_union, generalized_box_iou_loss,
# _diou_iou_loss, complete_box_iou_loss), in torchvision's operation order so float64 results agree to
# the last bits -- except 1 - iou and GIoU's C - Un of overlapping boxes, computed without cancellation
# (see the point function).  Box 1 = (x1, y1, x2, y2), box 2 = (u1, v1, u2, v2).
#   intersection keypoints  xk1 = max(x1, u1), yk1 = max(y1, v1), xk2 = min(x2, u2), yk2 = min(y2, v2)
#   I  = (xk2 - xk1) * (yk2 - yk1) where yk2 > yk1 and xk2 > xk1, else 0   (torch's mask, no clamp)
#   Un = w1 h1 + w2 h2 - I,   iou = I / (Un + eps)
#   enclosure  xc1 = min(x1, u1), yc1 = min(y1, v1), xc2 = max(x2, u2), yc2 = max(y2, v2)
#   IoU  loss = 1 - iou
#   GIoU loss = 1 - (iou - (C - Un) / (C + eps)),          C = (xc2 - xc1) (yc2 - yc1)
#   DIoU loss = 1 - iou + rho2 / D,                        D = (xc2 - xc1)^2 + (yc2 - yc1)^2 + eps,
#                                                          rho2 = squared distance of the centres
#   CIoU loss = DIoU loss + alpha v,   v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2,
#               alpha = v / (1 - iou + v + eps_alpha)  held constant (torchvision computes it under
#               no_grad).  torchvision's CIoU calls _diou_iou_loss without eps, so the IoU and D terms
#               use eps = 1e-7 whatever eps is passed; only alpha sees it.  The caller mirrors that.
# Gradient (reverse mode, as autograd walks the graph), with U = Un + eps:
#   dL/dUn = iou / U  [- 1 / (C + eps) for GIoU],   dL/dI = -1/U - dL/dUn,   dL/dA1 = dL/dUn
#   GIoU: dL/dC = (1 - (C - Un)/(C + eps)) / (C + eps)
#   DIoU/CIoU: dL/drho2 = 1/D, dL/dD = -(rho2/D)/D;  drho2/dx1 = drho2/dx2 = xp - xg (same for y)
#   CIoU: dL/d(w1/h1) = -alpha 4/pi^2 2 t / (1 + (w1/h1)^2),  t = atan(w2/h2) - atan(w1/h1)
#   the keypoints pass their gradient through max/min with d_max / d_min; the intersection's only where
#   the mask holds (torch's index_put gives nothing to masked-out pairs).
# =====================================================================================================
cdef inline floating box_loss_point(const box_kind* kind, const grad_mode* mode,
                                    floating x1, floating y1, floating x2, floating y2,
                                    floating u1, floating v1, floating u2, floating v2,
                                    floating eps, floating eps_alpha, floating gs,
                                    floating* dx1, floating* dy1, floating* dx2, floating* dy2) noexcept nogil:
    cdef floating one = 1, two = 2   # typed constants: a bare literal would make float code double
    cdef floating xk1 = f_max(x1, u1), yk1 = f_max(y1, v1)
    cdef floating xk2 = f_min(x2, u2), yk2 = f_min(y2, v2)
    cdef floating iw = xk2 - xk1, ih = yk2 - yk1
    cdef bint mask = (yk2 > yk1) & (xk2 > xk1)
    cdef floating inter = iw * ih if mask else 0
    cdef floating w1 = x2 - x1, h1 = y2 - y1, w2 = u2 - u1, h2 = v2 - v1
    cdef floating un = w1 * h1 + w2 * h2 - inter
    cdef floating U = un + eps
    # Near-identical boxes: 1 - iou ~ 1e-4 is the difference of two numbers ~1, so its float32 rounding
    # (and that of the areas) was ~1e-3 relative -- and 1 - iou is what every kind returns.  For
    # overlapping boxes (the mask), with the widths / heights of each box beyond the intersection
    #   a1 = w1 - iw = (x2 - xk2) + (xk1 - x1),  a2 = w2 - iw,  c1 = h1 - ih,  c2 = h2 - ih
    # (sums of non-negative differences of close coordinates: exact, Sterbenz)
    #   U - I = (A1 - I) + (A2 - I) + eps = a1 h1 + a2 h2 + iw (c1 + c2) + eps      (no cancellation)
    #   1 - iou = (U - I) / U
    # and GIoU's enclosure minus union, the two uncovered corners, C - un = a1 c2 + a2 c1.  Elsewhere
    # (disjoint boxes: I = 0, or an infinite U, where torchvision's I / U and 1 - iou are exact or inf /
    # nan) the plain forms.  iou itself (the gradient) stays I / U: relative precision for small ones.
    cdef bint overlap = mask & (U - U == 0)
    cdef floating a1 = (x2 - xk2) + (xk1 - x1), a2 = (u2 - xk2) + (xk1 - u1)
    cdef floating c1 = (y2 - yk2) + (yk1 - y1), c2 = (v2 - yk2) + (yk1 - v1)
    cdef floating ratio = ((a1 * h1 + a2 * h2 + iw * (c1 + c2)) + eps if overlap else inter) / U
    cdef floating one_m_iou = ratio if overlap else one - ratio
    cdef floating loss, q = 0, cw = 0, ch = 0, C = 0, Ce = 0, D = 0, dxc = 0, dyc = 0
    cdef floating rw = 0, t = 0, v = 0, alpha = 0
    cdef floating iou, rU, g_un, g_i, g_c = 0, g_rho = 0, g_d = 0, g_w, g_h, g_cw = 0, g_ch = 0, g_r, gi
    if box_kind is IoU:
        loss = one_m_iou
    else:
        cw = f_max(x2, u2) - f_min(x1, u1)
        ch = f_max(y2, v2) - f_min(y1, v1)
        if box_kind is GIoU:
            C = cw * ch
            Ce = C + eps
            q = (a1 * c2 + a2 * c1 if overlap else C - un) / Ce
            loss = one_m_iou + q
        else:
            D = cw * cw + ch * ch + eps
            dxc = (x2 + x1) / two - (u1 + u2) / two
            dyc = (y2 + y1) / two - (v1 + v2) / two
            q = (dxc * dxc + dyc * dyc) / D
            loss = one_m_iou + q
            if box_kind is CIoU:
                rw = w1 / h1
                t = f_atan((u2 - u1) / (v2 - v1)) - f_atan(rw)
                v = <floating> FOUR_OVER_PI2 * (t * t)
                alpha = v / (one_m_iou + v + eps_alpha)
                loss = loss + alpha * v
    if grad_mode is LossOnly:
        return loss
    # (iou only here: computed before the return, GCC split the division of ratio above in two to
    # share it -- a third division per pair)
    iou = inter / U
    rU = one / U                         # (the reciprocal serves both; torch divides twice)
    g_un = iou * rU
    if box_kind is GIoU:
        g_un = g_un - one / Ce
        g_c = (one - q) / Ce
        g_cw = g_c * ch                  # enclosure width / height
        g_ch = g_c * cw
    elif box_kind is DIoU or box_kind is CIoU:
        g_rho = one / D
        g_d = -q / D
        g_cw = g_d * (two * cw)
        g_ch = g_d * (two * ch)
    g_i = -rU - g_un
    g_w = g_un * h1                      # area 1 = w1 h1
    g_h = g_un * w1
    if box_kind is CIoU:
        g_r = alpha * (<floating> FOUR_OVER_PI2 * (two * t)) * (-one / (one + rw * rw))
        g_w = g_w + g_r / h1
        g_h = g_h - g_r * (rw / h1)
    gi = g_i * ih if mask else 0         # intersection width / height
    dx1[0] = gs * (-g_w - gi * d_max(x1, u1) - g_cw * d_min(x1, u1) + g_rho * dxc)
    dx2[0] = gs * (g_w + gi * d_min(x2, u2) + g_cw * d_max(x2, u2) + g_rho * dxc)
    gi = g_i * iw if mask else 0
    dy1[0] = gs * (-g_h - gi * d_max(y1, v1) - g_ch * d_min(y1, v1) + g_rho * dyc)
    dy2[0] = gs * (g_h + gi * d_min(y2, v2) + g_ch * d_max(y2, v2) + g_rho * dyc)
    return loss


# ---------------------------------------------------------------- segments of box pairs (note a)
cdef struct BoxSeg:
    # per-segment structure-of-arrays views, in the kernel's floating type: box 1, box 2, gradient
    void* c[12]


cdef extern from "fl_stream.h" nogil:
    void fl_prefetch_range(const void* p, Py_ssize_t nbytes)

cdef extern from "fl_soa4.h" nogil:
    # (L, 4) interleaved rows <-> 4 arrays, with vector shuffles (see the header)
    void fl_soa4_load_f32(const float* p, Py_ssize_t L, float* a, float* b, float* c, float* d)
    void fl_soa4_load_f64(const double* p, Py_ssize_t L, double* a, double* b, double* c, double* d)
    void fl_soa4_store_f32(float* p, Py_ssize_t L, const float* a, const float* b, const float* c,
                           const float* d)
    void fl_soa4_store_f64(double* p, Py_ssize_t L, const double* a, const double* b, const double* c,
                           const double* d)


cdef inline void load_boxes(const floating* p, bint single, int fmt, Py_ssize_t L,
                            floating* x1, floating* y1, floating* x2, floating* y2) noexcept nogil:
    """L boxes from p (or L copies of the box p if single) as xyxy, torchvision's box_convert: the
    4 columns are transposed into the 4 rows (fl_soa4.h), then converted in place, row-wise."""
    cdef Py_ssize_t k
    cdef floating half = 0.5
    cdef floating c[4]
    cdef floating a, w
    if single:
        load_boxes(p, False, fmt, 1, &c[0], &c[1], &c[2], &c[3])
        for k in range(L):
            x1[k] = c[0]; y1[k] = c[1]; x2[k] = c[2]; y2[k] = c[3]
        return
    if floating is float:
        fl_soa4_load_f32(p, L, x1, y1, x2, y2)
    else:
        fl_soa4_load_f64(p, L, x1, y1, x2, y2)
    if fmt == XYWH:                            # (x, y, w, h): x2 = x + w
        for k in range(L):
            x2[k] = x1[k] + x2[k]; y2[k] = y1[k] + y2[k]
    elif fmt == CXCYWH:                        # (cx, cy, w, h): x1 = cx - w / 2, x2 = cx + w / 2
        for k in range(L):
            a = x1[k]; w = x2[k]
            x1[k] = a - half * w; x2[k] = a + half * w
            a = y1[k]; w = y2[k]
            y1[k] = a - half * w; y2[k] = a + half * w


cdef inline void store_grads(floating* g, int fmt, Py_ssize_t L, floating* d1, floating* e1,
                             floating* d2, floating* e2) noexcept nogil:
    """xyxy gradients -> gradients of the input format (chain rule of load_boxes), converted in place
    (the rows are segment scratch), then interleaved (fl_soa4.h)."""
    cdef Py_ssize_t k
    cdef floating half = 0.5
    cdef floating a, b
    if fmt == XYWH:                            # d/dx = d/dx1 + d/dx2, d/dw = d/dx2
        for k in range(L):
            d1[k] = d1[k] + d2[k]; e1[k] = e1[k] + e2[k]
    elif fmt == CXCYWH:                        # d/dcx = d/dx1 + d/dx2, d/dw = (d/dx2 - d/dx1) / 2
        for k in range(L):
            a = d1[k]; b = d2[k]
            d1[k] = a + b; d2[k] = half * (b - a)
            a = e1[k]; b = e2[k]
            e1[k] = a + b; e2[k] = half * (b - a)
    if floating is float:
        fl_soa4_store_f32(g, L, d1, e1, d2, e2)
    else:
        fl_soa4_store_f64(g, L, d1, e1, d2, e2)


cdef void seg_losses(const box_kind* kind, const grad_mode* mode, Py_ssize_t n16, floating* s, floating* out,
                     floating eps, floating eps_alpha, floating gs) noexcept nogil:
    """The point function over one segment of 16 * n16 pairs.  s is the segment scratch: 12 rows of SEG
    -- box 1 (x1, y1, x2, y2), box 2, gradient (xyxy).  Rows are addressed as s[row * SEG + k] off one
    base pointer, so the compiler sees constant distances between them instead of 13 pointers it would
    have to check pairwise for aliasing at run time (it gives up past 10 and the loop stays scalar).
    A multiple of 16 pairs (box_pairs_block pads the segment): the loop is all vector code, with no
    scalar remainder -- which GCC compiles with different FMA contractions, so a pair's loss and
    gradient changed in the last bit with its position (a chunked call differed from the whole)."""
    cdef Py_ssize_t k
    for k in range(n16 * 16):
        out[k] = box_loss_point(kind, mode, s[k], s[SEG + k], s[2 * SEG + k], s[3 * SEG + k],
                                s[4 * SEG + k], s[5 * SEG + k], s[6 * SEG + k], s[7 * SEG + k],
                                eps, eps_alpha, gs, &s[8 * SEG + k], &s[9 * SEG + k], &s[10 * SEG + k],
                                &s[11 * SEG + k])


cdef inline void seg_of_kind(const grad_mode* mode, int kind, Py_ssize_t n16, floating* s, floating* out,
                             floating eps, floating eps_alpha, floating gs) noexcept nogil:
    """The kind switch, outside the loop: one specialised loop per (kind, grad) (note b)."""
    if kind == IOU:
        seg_losses(<IoU*> NULL, mode, n16, s, out, eps, eps_alpha, gs)
    elif kind == GIOU:
        seg_losses(<GIoU*> NULL, mode, n16, s, out, eps, eps_alpha, gs)
    elif kind == DIOU:
        seg_losses(<DIoU*> NULL, mode, n16, s, out, eps, eps_alpha, gs)
    else:
        seg_losses(<CIoU*> NULL, mode, n16, s, out, eps, eps_alpha, gs)


cdef struct BoxCtx:
    const void* b1           # (n, 4) or one box
    const void* b2
    bint single1, single2    # that side is one box broadcast over all pairs
    int kind                 # BoxKind
    int fmt                  # BoxFormat
    double eps               # eps of the IoU / enclosure terms
    double eps_alpha         # eps of CIoU's alpha
    void* grad               # (n, 4) gradient w.r.t. boxes1 in its format, or NULL
    double grad_scale
    Py_ssize_t pf_end        # each segment prefetches the next one's boxes, up to this pair (prefetch_end)


cdef Py_ssize_t box_pairs_block(const BoxCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                floating* loss, floating* denom) noexcept nogil:
    cdef floating buf[12 * SEG]
    cdef floating tail_out[SEG]
    cdef floating eps = <floating> c.eps, eps_a = <floating> c.eps_alpha, gs = <floating> c.grad_scale
    cdef const floating* b1 = <const floating*> c.b1
    cdef const floating* b2 = <const floating*> c.b2
    cdef bint grad = c.grad != NULL
    cdef int kind = c.kind
    cdef Py_ssize_t i = start, L, Lp, k, r
    cdef floating* out
    while i < stop:
        L = stop - i if stop - i < SEG else SEG
        Lp = (L + 15) // 16 * 16            # (SEG is a multiple of 16)
        if i + SEG < c.pf_end:
            # the next segment's boxes into L1 while this one computes (up to the arrays' end: the next
            # block is this thread's next).  1M GIoU / CIoU pairs, float32 (from this machine's large L3;
            # wall-clock minima, Intel Xeon, AVX-512): 0.75 / 0.84 of the time at T=1, with the gradient
            # 0.85; at T=2 0.95-1.05 (two segments ahead, or into L2 only: 0.82-0.97 at T=1)
            k = min(SEG, c.pf_end - i - SEG) * 4 * sizeof(floating)
            if not c.single1:
                fl_prefetch_range(b1 + 4 * (i + SEG), k)
            if not c.single2:
                fl_prefetch_range(b2 + 4 * (i + SEG), k)
        load_boxes(b1 if c.single1 else b1 + 4 * i, c.single1, c.fmt, L, buf, buf + SEG, buf + 2 * SEG,
                   buf + 3 * SEG)
        load_boxes(b2 if c.single2 else b2 + 4 * i, c.single2, c.fmt, L, buf + 4 * SEG, buf + 5 * SEG,
                   buf + 6 * SEG, buf + 7 * SEG)
        out = loss + (i - start)
        if Lp != L:                          # pad with copies of the last pair; losses to tail_out
            for r in range(8):
                for k in range(L, Lp):
                    buf[r * SEG + k] = buf[r * SEG + L - 1]
            out = tail_out
        if grad:
            seg_of_kind(<WithGrad*> NULL, kind, Lp // 16, buf, out, eps, eps_a, gs)
            store_grads(<floating*> c.grad + 4 * i, c.fmt, L, buf + 8 * SEG, buf + 9 * SEG, buf + 10 * SEG,
                        buf + 11 * SEG)
        else:
            seg_of_kind(<LossOnly*> NULL, kind, Lp // 16, buf, out, eps, eps_a, gs)
        if Lp != L:
            for k in range(L):
                loss[i - start + k] = tail_out[k]
        i += L
    return -1


# Choosing the kernel, in one place: one block function per floating type serves every BoxKind -- the
# kind (BoxCtx.kind) picks its specialised segment loop in seg_of_kind, once per segment (note b).
# (One block function per kind, each inlining the segment loads, made GCC stop inlining load_boxes into
# its 16 call sites: +6-8% instructions a pair.)
cdef inline BlockFn block_for(Py_ssize_t itemsize) noexcept:
    """The block function for float32 (itemsize 4) or float64 data."""
    return <BlockFn> box_pairs_block[float] if itemsize == 4 else <BlockFn> box_pairs_block[double]


def box_pair_loss(b1, b2, out, grad, *, BoxKind kind, BoxFormat fmt, double eps, double eps_alpha,
                  Py_ssize_t n, bint single1=False, bint single2=False, double grad_scale=1.0,
                  int num_threads=1):
    """Kernel entry of the four box losses: b1, b2 C-contiguous float32/64 flat views of (n, 4) boxes (or
    one box when single*); out (n,) for reduction="none" else None; grad (n, 4) or None.  kind and fmt
    are BoxKind / BoxFormat.  Returns the loss sum."""
    # boundary checks (_common.pxd)
    check_enum(kind, N_BOX_KINDS, "kind")
    check_enum(fmt, N_BOX_FORMATS, "fmt")
    cdef Py_ssize_t n4 = items_product(check_count(n, "n"), 4)
    cdef Py_ssize_t itemsize = check_buffer(b1, "b1", b'f', 0, 4 if single1 else n4, False)
    check_buffer(b2, "b2", b'f', itemsize, 4 if single2 else n4, False)
    check_optional(out, "out", b'f', itemsize, n, True)
    check_optional(grad, "grad", b'f', itemsize, n4, True)
    cdef BoxCtx c
    c.b1 = ptr_or_null(b1)
    c.b2 = ptr_or_null(b2)
    c.single1 = single1
    c.single2 = single2
    c.kind = kind
    c.fmt = fmt
    c.eps = eps
    c.eps_alpha = eps_alpha
    c.grad = ptr_or_null(grad)
    c.grad_scale = grad_scale
    c.pf_end = prefetch_end(n, ((0 if single1 else n4) + (0 if single2 else n4)) * itemsize)
    return run(block_for(itemsize), &c, n, 8, itemsize, num_threads, out, False)[0]


# =====================================================================================================
# Pairwise matrices (torchvision.ops.box_iou / generalized_box_iou, _boxes.py _box_inter_union):
#   corners per format as torchvision ≥ 0.23's _box_inter_union (xywh: x2 = x + w; cxcywh: x1 = cx - w/2,
#   x2 = cx + w/2), areas as its box_area (xyxy: (x2 - x1)(y2 - y1); xywh, cxcywh: w h),
#   inter = clamp(min(x2, u2) - max(x1, u1), 0) clamp(min(y2, v2) - max(y1, v1), 0)  (clamp keeps NaN),
#   iou = inter / (a1 + a2 - inter);   giou = iou - (E - union) / E,  E the clamped enclosure area.
#   No eps: 0/0 gives NaN exactly as torchvision does.
# =====================================================================================================
cdef inline floating clamp0(floating w) noexcept nogil:
    return 0 if w < 0 else w    # torch.clamp(min=0): NaN stays NaN


cdef inline floating pair_point(int kind, floating x1, floating y1, floating x2, floating y2, floating a1,
                                floating u1, floating v1, floating u2, floating v2, floating a2) noexcept nogil:
    cdef floating inter = clamp0(f_min(x2, u2) - f_max(x1, u1)) * clamp0(f_min(y2, v2) - f_max(y1, v1))
    cdef floating union = a1 + a2 - inter
    cdef floating iou = inter / union
    cdef floating area_e
    if kind == IOU:
        return iou
    area_e = clamp0(f_max(x2, u2) - f_min(x1, u1)) * clamp0(f_max(y2, v2) - f_min(y1, v1))
    return iou - (area_e - union) / area_e


cdef inline void load_area(int fmt, Py_ssize_t L, const floating* p, const floating* x1, const floating* y1,
                           const floating* x2, const floating* y2, floating* area) noexcept nogil:
    """torchvision's box_area: corner differences for xyxy, w * h read directly otherwise -- NaN, though, where
    x or y is NaN: torchvision's pairwise matrices take torch.max / torch.min of the corners, which carry the
    NaN into every pair of the box, and the kernels' f_max / f_min (vectorised selects) may drop a NaN, so the
    area carries it instead (the corners' differences hold it already for xyxy)."""
    cdef Py_ssize_t k
    cdef floating cx, cy
    for k in range(L):
        if fmt == XYXY:
            area[k] = (x2[k] - x1[k]) * (y2[k] - y1[k])
        else:
            cx = p[4 * k]
            cy = p[4 * k + 1]
            area[k] = p[4 * k + 2] * p[4 * k + 3] if (cx == cx) & (cy == cy) else cx + cy


cdef inline void load_pair_boxes(const floating* p, int fmt, Py_ssize_t L, floating* s) noexcept nogil:
    """L boxes as xyxy corners for the pairwise kernels (cxcywh halves by division, as torchvision's
    _box_inter_union does) and their areas: s[0:L] x1, [L:2L] y1, x2, y2, area."""
    cdef Py_ssize_t k
    cdef floating a, b, w, h, two = 2
    for k in range(L):
        a = p[4 * k]; b = p[4 * k + 1]; w = p[4 * k + 2]; h = p[4 * k + 3]
        if fmt == XYXY:
            s[k] = a; s[L + k] = b; s[2 * L + k] = w; s[3 * L + k] = h
        elif fmt == XYWH:
            s[k] = a; s[L + k] = b; s[2 * L + k] = a + w; s[3 * L + k] = b + h
        else:
            s[k] = a - w / two; s[L + k] = b - h / two; s[2 * L + k] = a + w / two; s[3 * L + k] = b + h / two
    load_area(fmt, L, p, s, s + L, s + 2 * L, s + 3 * L, s + 4 * L)


cdef inline void pair_row(int kind, Py_ssize_t L, const floating* r, const floating* s, floating* out) noexcept nogil:
    """One box r = (x1, y1, x2, y2, area) against L boxes of the SoA tile s."""
    cdef Py_ssize_t k
    for k in range(L):
        out[k] = pair_point(kind, r[0], r[1], r[2], r[3], r[4],
                            s[k], s[L + k], s[2 * L + k], s[3 * L + k], s[4 * L + k])


cdef inline void pair_row_at(int kind, Py_ssize_t L, const floating* r, Py_ssize_t rows, Py_ssize_t i,
                             const floating* s, floating* out) noexcept nogil:
    cdef floating box[5]
    cdef Py_ssize_t j
    for j in range(5):
        box[j] = r[j * rows + i]
    pair_row(kind, L, box, s, out)


# Tile sizes: compile-time C constants (Cython's DEF is deprecated).  Loops step over tile indices:
# range() needs a literal step to run as a C loop.
cdef enum:
    ROW_TILE = 32
    COL_TILE = 256

cdef void pairwise_tile(int kind, int fmt, const floating* b1, const floating* b2, Py_ssize_t rows,
                        Py_ssize_t M, floating* out) noexcept nogil:
    """rows boxes of b1 against the M boxes of b2: out[r * M + j]."""
    cdef floating s[5 * COL_TILE]
    cdef floating r[5 * ROW_TILE]
    cdef Py_ssize_t jt, j0, L, i
    load_pair_boxes(b1, fmt, rows, r)
    for jt in range((M + COL_TILE - 1) // COL_TILE):
        j0 = jt * COL_TILE
        L = M - j0 if M - j0 < COL_TILE else COL_TILE
        load_pair_boxes(b2 + 4 * j0, fmt, L, s)
        for i in range(rows):
            if kind == IOU:
                pair_row_at(IOU, L, r, rows, i, s, out + i * M + j0)
            else:
                pair_row_at(GIOU, L, r, rows, i, s, out + i * M + j0)


def pairwise(b1, b2, out, *, BoxKind kind, BoxFormat fmt, Py_ssize_t B, Py_ssize_t N, Py_ssize_t M,
             int num_threads=1):
    """Kernel entry: b1 (B, N, 4), b2 (B, M, 4) C-contiguous of one float dtype; out (B, N, M); kind
    IOU (box_iou) or GIOU (generalized_box_iou)."""
    # boundary checks (_common.pxd)
    if kind != IOU and kind != GIOU:
        raise ValueError(f"fastloss kernel: pairwise computes BoxKind IOU or GIOU, got {kind}")
    check_enum(fmt, N_BOX_FORMATS, "fmt")
    cdef Py_ssize_t BN = items_product(check_count(B, "B"), check_count(N, "N"))
    cdef Py_ssize_t isz0 = check_buffer(b1, "b1", b'f', 0, items_product(BN, 4), False)
    check_buffer(b2, "b2", b'f', isz0, items_product(items_product(B, check_count(M, "M")), 4), False)
    check_buffer(out, "out", b'f', isz0, items_product(BN, M), True)
    cdef int k = kind, f = fmt
    cdef Py_ssize_t per_batch = (N + ROW_TILE - 1) // ROW_TILE
    cdef Py_ssize_t n_tiles = B * per_batch, t, bb, r0, rows
    cdef int nt = num_threads if N * M * B >= 32768 else 1
    cdef bint f32 = b1.dtype.itemsize == 4
    cdef const char* p1 = <const char*> ptr_or_null(b1)
    cdef const char* p2 = <const char*> ptr_or_null(b2)
    cdef char* po = <char*> ptr_or_null(out)
    cdef Py_ssize_t isz = b1.dtype.itemsize
    if n_tiles == 0 or M == 0:
        return
    for t in prange(n_tiles, schedule="static", num_threads=nt, use_threads_if=nt > 1, nogil=True):
        bb = t // per_batch
        r0 = (t - bb * per_batch) * ROW_TILE
        rows = N - r0 if N - r0 < ROW_TILE else ROW_TILE
        if f32:
            pairwise_tile(k, f, <const float*> (p1 + (bb * N + r0) * 4 * isz), <const float*> (p2 + bb * M * 4 * isz),
                          rows, M, <float*> (po + (bb * N + r0) * M * isz))
        else:
            pairwise_tile(k, f, <const double*> (p1 + (bb * N + r0) * 4 * isz), <const double*> (p2 + bb * M * 4 * isz),
                          rows, M, <double*> (po + (bb * N + r0) * M * isz))


cdef void area_run(int fmt, const floating* p, Py_ssize_t n, floating* out) noexcept nogil:
    cdef Py_ssize_t it, i0, L, k
    cdef floating s[5 * COL_TILE]
    for it in range((n + COL_TILE - 1) // COL_TILE):
        i0 = it * COL_TILE
        L = n - i0 if n - i0 < COL_TILE else COL_TILE
        load_pair_boxes(p + 4 * i0, fmt, L, s)
        for k in range(L):
            out[i0 + k] = s[4 * L + k]


def box_area(b, out, *, BoxFormat fmt):
    """Kernel entry: b (n, 4) C-contiguous float32/64, out (n,): torchvision's box_area."""
    # boundary checks (_common.pxd)
    check_enum(fmt, N_BOX_FORMATS, "fmt")
    cdef Py_ssize_t isz0 = check_buffer(out, "out", b'f', 0, -1, True)
    cdef Py_ssize_t n = buffer_items(out)
    check_buffer(b, "b", b'f', isz0, items_product(n, 4), False)
    cdef int f = fmt
    cdef void* p = ptr_or_null(b)
    cdef void* o = ptr_or_null(out)
    cdef bint f32 = b.dtype.itemsize == 4
    with nogil:
        if f32:
            area_run(f, <const float*> p, n, <float*> o)
        else:
            area_run(f, <const double*> p, n, <double*> o)
