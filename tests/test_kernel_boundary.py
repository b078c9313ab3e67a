"""Defence in depth at the kernel boundary (issue 13): every Cython ``def`` entry checks the dtype,
layout and length of each buffer it touches (``check_buffer`` in fastloss/_kernels/_common.pxd) and
raises instead of reading or writing out of bounds.

The wrappers never pass a wrong buffer; these tests call the kernels directly, first with a valid call
(which must succeed, so a broken harness fails here), then with each buffer in turn replaced by a wrong
one -- too short, too long, another dtype, non-contiguous, big-endian, misaligned, a list, None where it
is required, read-only where it is written -- and require a TypeError or ValueError.
"""

import numpy as np
import pytest

from fastloss._kernels import load

RNG = np.random.default_rng(7)
N, C = 6, 5


def f8(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape)


def boxes(n):
    xy = RNG.uniform(0, 5, (n, 2))
    return np.concatenate([xy, xy + RNG.uniform(0.5, 3, (n, 2))], axis=1)


def labels(n, hi):
    return RNG.integers(0, hi, n).astype(np.int64)


def _cases():
    """(id, kernel, kwargs of a valid call, required buffers, written buffers)."""
    cls, ew, met = load("classification"), load("elementwise"), load("metric")
    box, seg, sta = load("boxes"), load("segmentation"), load("elementwise")
    x = f8(N, C)
    probs = np.full((N, C), 1.0 / C)
    yield (
        "cross_entropy_index",
        cls.cross_entropy_index,
        dict(
            x=x,
            labels=labels(N, C),
            out=np.empty(N),
            grad=np.empty((N, C)),
            weight=f8(C, low=0.5),
            C=C,
            S=1,
            ignore_index=-100,
            smoothing=0.1,
            num_threads=1,
            focal_alpha=f8(C, low=0.5),
            focal_gamma=2.0,
        ),
        ("x", "labels"),
        ("out", "grad"),
    )
    yield (
        "cross_entropy_index[spatial]",
        cls.cross_entropy_index,
        dict(
            x=f8(2, C, 3),
            labels=labels(6, C),
            out=np.empty(6),
            grad=np.empty((2, C, 3)),
            C=C,
            S=3,
            ignore_index=-100,
            num_threads=1,
        ),
        ("x", "labels"),
        ("out", "grad"),
    )
    w = f8(C, low=0.5)
    for kind, kernel, kwargs, req in (
        ("ce_probs", cls.ce_probs, dict(t=probs, weight=w, smoothing=0.1), ("x", "t")),
        ("nll", cls.nll, dict(labels=labels(N, C), weight=w, ignore_index=-100, mean=True), ("x", "labels")),
        ("multi_margin", cls.multi_margin, dict(labels=labels(N, C), weight=w, margin=1.0, power=2), ("x", "labels")),
        ("distillation", cls.distillation, dict(t=f8(N, C), temperature=2.0), ("x", "t")),
    ):
        yield (
            kind,
            kernel,
            dict(x=x, out=np.empty(N), grad=np.zeros((N, C)), C=C, num_threads=1, **kwargs),
            req,
            ("out", "grad"),
        )
    # elementwise: x, y in their own shape (the last axis, C, is the period of last-axis operands)
    yield (
        "elementwise[bce_logits]",
        ew.elementwise,
        dict(
            kind=ew.Kind.BCE_LOGITS,
            x=f8(N, C),
            y=f8(N, C, low=0),
            weight=f8(N * C, low=0.5),
            pos_weight=f8(C, low=0.5),
            out=np.empty(N * C),
            grad=np.empty(N * C),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("x", "y", "weight"),          # pos_weight=None is valid: no pos_weight (torch's l = 1)
        ("out", "grad"),
    )
    yield (
        "elementwise[kl]",
        ew.elementwise,
        dict(
            kind=ew.Kind.KL,
            x=f8(N, C),
            y=f8(N, C, low=0),
            weight=f8(N * C, low=0.5),
            log_target=False,
            out=np.empty(N * C),
            grad=np.empty(N * C),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("x", "y", "weight"),
        ("out", "grad"),
    )
    gauss = ew.Kind.GAUSSIAN_NLL
    yield (
        "elementwise[gaussian_nll]",
        ew.elementwise,
        dict(
            kind=gauss,
            x=f8(N, C),
            y=f8(N, C),
            weight=f8(N * C, low=0.5),
            var=f8(N * C, low=0.5),
            var_rows=False,
            eps=1e-6,
            weighted_mean=False,
            out=np.empty(N * C),
            grad=np.empty(N * C),
            grad_var=np.empty(N * C),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("x", "y", "weight", "var"),
        ("out", "grad", "grad_var"),
    )
    yield (
        "elementwise[gaussian_nll, var_rows]",
        ew.elementwise,
        dict(
            kind=gauss,
            x=f8(N, C),
            y=f8(N, C),
            weight=1.0,
            var=f8(N, low=0.5),
            var_rows=True,
            eps=1e-6,
            weighted_mean=False,
            out=None,
            grad=np.empty(N * C),
            grad_var=np.empty(N * C),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("x", "y", "var"),
        ("grad", "grad_var"),
    )
    yield (
        "gaussian_kl",
        ew.gaussian_kl,
        dict(
            mu=f8(N * C),
            logvar=f8(N * C),
            weight=f8(N, low=0.5),
            rows=N,
            D=C,
            weighted_mean=False,
            out=np.empty(N),
            grad_mu=np.empty(N * C),
            grad_logvar=np.empty(N * C),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("mu", "logvar", "weight"),
        ("out", "grad_mu", "grad_logvar"),
    )
    yield (
        "box_pair_loss",
        box.box_pair_loss,
        dict(
            b1=boxes(N).reshape(-1),
            b2=boxes(N).reshape(-1),
            single1=False,
            single2=False,
            n=N,
            kind=box.BoxKind.CIOU,
            fmt=box.BoxFormat.XYXY,
            eps=1e-7,
            eps_alpha=1e-7,
            out=np.empty(N),
            grad=np.empty(N * 4),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("b1", "b2"),
        ("out", "grad"),
    )
    yield (
        "pairwise",
        box.pairwise,
        dict(
            b1=boxes(N)[None],
            b2=boxes(3)[None],
            kind=box.BoxKind.GIOU,
            fmt=box.BoxFormat.XYXY,
            B=1,
            N=N,
            M=3,
            out=np.empty((1, N, 3)),
            num_threads=1,
        ),
        ("b1", "b2", "out"),
        ("out",),
    )
    yield (
        "box_area",
        box.box_area,
        dict(b=boxes(N).reshape(-1), fmt=box.BoxFormat.XYWH, out=np.empty(N)),
        ("b", "out"),
        ("out",),
    )
    yield (
        "triplet_margin",
        met.triplet_margin,
        dict(
            a=x,
            p=f8(N, C),
            n=f8(N, C),
            margin=1.0,
            pnorm=2.0,
            eps=1e-6,
            swap=True,
            out=np.empty(N),
            ga=np.empty((N, C)),
            gp=np.empty((N, C)),
            gn=np.empty((N, C)),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("a", "p", "n"),
        ("out", "ga", "gp", "gn"),
    )
    yield (
        "pair_rows",
        met.pair_rows,
        dict(
            kind=met.MetricLoss.CONTRASTIVE,
            x1=x,
            x2=f8(N, C),
            y=np.ones(N),
            margin=1.0,
            out=np.empty(N),
            g1=np.empty((N, C)),
            g2=np.empty((N, C)),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("x1", "x2", "y"),
        ("out", "g1", "g2"),
    )
    yield (
        "score_loss",
        met.score_loss,
        dict(
            kind=met.MetricLoss.MARGIN_RANKING,
            x1=f8(N),
            x2=f8(N),
            y=np.sign(f8(N)),
            margin=0.5,
            out=np.empty(N),
            g1=np.empty(N),
            g2=np.empty(N),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("x1", "x2", "y"),
        ("out", "g1", "g2"),
    )
    yield (
        "score_loss[hinge_embedding]",
        met.score_loss,
        dict(
            kind=met.MetricLoss.HINGE_EMBEDDING,
            x1=f8(N),
            y=np.sign(f8(N)),
            margin=0.5,
            out=np.empty(N),
            g1=np.empty(N),
            grad_scale=1.0,
            num_threads=1,
        ),
        ("x1", "y"),
        ("out", "g1"),
    )
    e = f8(N, C)
    yield (
        "triplet_mining",
        met.triplet_mining,
        dict(
            emb=e,
            sqnorm=np.einsum("ij,ij->i", e, e),
            labels=labels(N, 2),
            block=np.empty((N, N)),
            s_cols=np.empty((N, C)),
            row0=0,
            n_rows=N,
            margin=1.0,
            squared=False,
            kind=met.MetricLoss.BATCH_ALL_TRIPLET,
            want_grad=True,
            row_loss=np.zeros(N),
            row_count=np.zeros(N),
            num_threads=1,
        ),
        ("block", "s_cols", "emb", "sqnorm", "labels", "row_loss", "row_count"),
        ("block", "s_cols", "row_loss", "row_count"),
    )
    u = f8(N, C)
    yield (
        "nt_xent_symmetric",
        met.nt_xent_symmetric,
        dict(u=u / np.linalg.norm(u, axis=1, keepdims=True), row_loss=np.zeros(N), inv_tau=2.0,
             pos_shift=N // 2, num_threads=1),
        ("u", "row_loss"),
        ("row_loss",),
    )
    yield (
        "unit_rows",
        met.unit_rows,
        dict(z=f8(N - 2, C), u=np.empty((N, C)), norm=np.empty(N), row0=2, num_threads=1),
        ("z", "norm"),
        ("u", "norm"),
    )
    yield (
        "reduce_rows",
        met.reduce_rows,
        dict(row_loss=f8(N), row_count=f8(N, low=0), num_threads=1),
        ("row_loss",),
        (),
    )
    yield (
        "softmax_rows",
        met.softmax_rows,
        dict(
            rows=f8(N, C),
            cols=f8(N, C),
            block=np.empty((N, N)),
            s_cols=np.empty((N, C)),
            row0=0,
            n_rows=N,
            inv_tau=2.0,
            mask_self=True,
            pos_shift=1,
            want_grad=True,
            row_loss=np.zeros(N),
            num_threads=1,
            labels=labels(N, N),
            arc=met.ArcMargin.ARC_FALLBACK,
            margin=0.3,
            pos_cos=np.full(N, 0.6),
            pos_sin=np.full(N, 0.8),
        ),
        ("rows", "cols", "block", "s_cols", "row_loss", "pos_cos", "pos_sin"),
        ("block", "s_cols", "row_loss"),
    )
    act = {a.name.lower(): a for a in seg.Activation}
    yield (
        "segment_sums[labels]",
        seg.segment_sums,
        dict(
            x=f8(2, C, 4),
            t=None,
            labels=labels(8, C),
            ignore_index=None,
            act=act["softmax"],
            bce=False,
            num_threads=1,
        ),
        ("x",),
        (),
    )
    yield (
        "segment_sums[masks]",
        seg.segment_sums,
        dict(
            x=f8(2, C, 4),
            t=f8(2, C, 4, low=0),
            labels=None,
            ignore_index=None,
            act=act["sigmoid"],
            bce=True,
            num_threads=1,
        ),
        ("x",),
        (),
    )
    yield (
        "segment_grad",
        seg.segment_grad,
        dict(
            x=f8(2, C, 4),
            t=None,
            labels=labels(8, C),
            ignore_index=None,
            act=act["softmax"],
            coef=f8(2, C, 3),
            grad=np.empty((2, C, 4)),
            num_threads=1,
        ),
        ("x", "coef", "grad"),
        ("grad",),
    )
    yield (
        "weighted_sum",
        sta.weighted_sum,
        dict(loss=f8(N * 2), weight=f8(N, low=0), rep=2, num_threads=1),
        ("loss", "weight"),
        (),
    )


CASES = list(_cases())


# buffers whose float dtype is free (it selects the kernel's floating type; nothing else must match it)
FREE_FLOAT = {
    ("triplet_mining", "emb"),
    ("softmax_rows", "rows"),
    ("nt_xent_symmetric", "u"),
    ("unit_rows", "z"),
    ("weighted_sum", "loss"),
    ("segment_sums[labels]", "x"),
}


def _wrong_buffers(arr, written, free_float):
    """(label, replacement) for a buffer: each must be refused."""
    flat = arr.reshape(-1)
    yield "too short", (flat[:-1] if flat.size else np.zeros(1, arr.dtype)).copy()
    yield "too long", np.concatenate([flat, flat[:1] if flat.size else np.zeros(1, arr.dtype)])
    with np.errstate(over="ignore", invalid="ignore"):
        if arr.dtype.kind == "f":
            yield "integer dtype", arr.astype(np.int64)
            if not free_float:
                yield (
                    "the other float dtype",
                    arr.astype(np.float32 if arr.dtype == np.float64 else np.float64),
                )
        else:
            yield "int16 labels", arr.astype(np.int16)
            yield "float labels", arr.astype(np.float64)
    yield "non-contiguous", np.repeat(arr, 2, axis=-1)[..., ::2]
    yield "big-endian", arr.astype(arr.dtype.newbyteorder(">"))
    # one byte off its alignment (and read-only: refused either way where it is written)
    yield (
        "misaligned",
        np.frombuffer(b"\0" + arr.tobytes(), dtype=arr.dtype, count=arr.size, offset=1).reshape(arr.shape),
    )
    yield "list", arr.tolist()
    if written:
        ro = arr.copy()
        ro.setflags(write=False)
        yield "read-only", ro


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kernel_entry_refuses_wrong_buffers(case):
    name, kernel, kwargs, required, written = case
    kernel(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()})  # valid: runs
    tried = 0
    for arg, value in kwargs.items():
        if not isinstance(value, np.ndarray):
            continue
        wrongs = list(_wrong_buffers(value, arg in written, (name, arg) in FREE_FLOAT))
        if arg in required:
            wrongs.append(("None", None))
        for label, wrong in wrongs:
            call = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
            call[arg] = wrong
            try:
                kernel(**call)
            except (TypeError, ValueError) as exc:
                assert "fastloss kernel" in str(exc) or "internal" in str(exc), (
                    f"{name}: {arg} {label}: {exc}"
                )
            else:
                pytest.fail(f"{name}: {arg} replaced by a buffer of {label} was accepted")
            tried += 1
    assert tried >= 5


def test_inconsistent_sizes_are_refused():
    """Size parameters that disagree with the buffers (or are negative) are refused, not trusted."""
    cls, met, box = load("classification"), load("metric"), load("boxes")
    x = f8(N, C)
    lab = labels(N, C)
    with pytest.raises(ValueError):
        cls.cross_entropy_index(x, lab, None, None, C=C + 1, ignore_index=-100)
    with pytest.raises(ValueError):
        cls.cross_entropy_index(x, lab, None, None, C=C, S=0, ignore_index=-100)
    with pytest.raises(ValueError):
        cls.cross_entropy_index(f8(2, C, 3), labels(6, C), None, None, C=C, S=4, ignore_index=-100)
    with pytest.raises(ValueError):
        cls.nll(x, lab, None, None, C=-1, ignore_index=-100)
    with pytest.raises(ValueError):  # multi-margin's p is 1 or 2
        cls.multi_margin(x, lab, None, None, C=C, power=3)
    with pytest.raises(ValueError):
        box.box_pair_loss(
            boxes(N).reshape(-1),
            boxes(N).reshape(-1),
            None,
            None,
            kind=box.BoxKind.IOU,
            fmt=box.BoxFormat.XYXY,
            eps=1e-7,
            eps_alpha=1e-7,
            n=N + 1,
        )
    with pytest.raises(ValueError):  # rows past the end of the Gram matrix
        e = f8(N, C)
        met.triplet_mining(
            e,
            np.einsum("ij,ij->i", e, e),
            labels(N, 2),
            np.zeros(N),
            np.zeros(N),
            kind=met.MetricLoss.BATCH_HARD_TRIPLET,
            row0=1,
            n_rows=N,
            margin=1.0,
            squared=False,
            want_grad=False,
        )
    with pytest.raises(ValueError):  # a masked self pair outside the candidates
        met.softmax_rows(f8(N, C), f8(N - 1, C), np.zeros(N), row0=0, n_rows=N, inv_tau=1.0, mask_self=True,
                         want_grad=False)
    with pytest.raises(TypeError):  # a loss that reads labels, without them
        cls.nll(x, None, None, None, C=C, ignore_index=-100)


def test_configuration_enums_are_checked():
    """A kind or format outside its enum (Cython converts any int to a C enum) is refused before a
    table is indexed by it, as is a kind the entry does not compute."""
    met, box = load("metric"), load("boxes")
    b = boxes(N).reshape(-1)
    pair = dict(eps=1e-7, eps_alpha=1e-7, n=N)
    for kind, fmt in ((len(box.BoxKind), box.BoxFormat.XYXY), (box.BoxKind.IOU, len(box.BoxFormat))):
        with pytest.raises(ValueError, match="fastloss kernel"):
            box.box_pair_loss(b, b, None, None, kind=kind, fmt=fmt, **pair)
    with pytest.raises(OverflowError):      # (Cython's own refusal of a negative enum value)
        box.box_pair_loss(b, b, None, None, kind=-1, fmt=box.BoxFormat.XYXY, **pair)
    with pytest.raises(ValueError, match="fastloss kernel"):
        box.pairwise(boxes(N)[None], boxes(3)[None], np.empty((1, N, 3)), kind=box.BoxKind.CIOU,
                     fmt=box.BoxFormat.XYXY, B=1, N=N, M=3)
    with pytest.raises(ValueError, match="fastloss kernel"):
        box.box_area(b, np.empty(N), fmt=len(box.BoxFormat))
    x = f8(N, C)
    with pytest.raises(ValueError, match="fastloss kernel"):
        met.pair_rows(x, x, np.ones(N), kind=met.MetricLoss.TRIPLET_MARGIN, margin=1.0)
    with pytest.raises(ValueError, match="fastloss kernel"):
        met.score_loss(f8(N), np.ones(N), f8(N), kind=met.MetricLoss.HINGE_EMBEDDING, margin=1.0)
    with pytest.raises(ValueError, match="fastloss kernel"):
        met.score_loss(f8(N), np.ones(N), f8(N), kind=met.MetricLoss.CONTRASTIVE, margin=1.0)
    e = f8(N, C)
    with pytest.raises(ValueError, match="fastloss kernel"):
        met.triplet_mining(e, np.einsum("ij,ij->i", e, e), labels(N, 2), np.zeros(N), np.zeros(N),
                           kind=met.MetricLoss.SOFTMAX_ROWS, row0=0, n_rows=N, margin=1.0, squared=False,
                           want_grad=False)
    with pytest.raises(ValueError, match="fastloss kernel"):
        met.softmax_rows(f8(N, C), f8(N, C), np.zeros(N), labels(N, N), np.full(N, 0.6), np.full(N, 0.8), row0=0,
                         n_rows=N, inv_tau=1.0, mask_self=False, want_grad=False, arc=len(met.ArcMargin), margin=0.3)
