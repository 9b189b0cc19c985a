"""Gradients of the class losses from probabilities (through the renormalisation and the
clip) and grad_hess (per-sample gradient and diagonal Hessian) for every loss.

References: torch.autograd in float64 (gradients and, through
torch.autograd.functional.hessian, exact Hessian diagonals), 4th-order central finite
differences of cyloss's own value (gradients) and gradient (Hessians), closed forms, and
mpmath where float64 formulas lose digits."""

import zlib

import mpmath
import numpy as np
import pytest

import cyloss
from test_grad import REDUCTIONS, central_difference

EPS = 1e-7


def _probs(rng, shape, axis=-1):
    """Positive unnormalised probability rows, some entries below the clip after
    renormalisation (and exact zeros), kept away from the clip bounds themselves so that
    finite differences do not straddle them."""
    p = rng.uniform(0.2, 2.0, size=shape)
    p[rng.random(shape) < 0.15] = 0.0
    p[rng.random(shape) < 0.1] = 1e-12
    return p


def _torch_prob_rows(torch, y_rows, x, axis, cw=None):
    """-sum_k cw_k q_k log clamp(x / sum x) per row, torch's clamp passing the gradient
    where lo <= r <= hi."""
    r = (x / x.sum(dim=axis, keepdim=True)).clamp(EPS, 1 - EPS)
    terms = y_rows * torch.log(r)
    if cw is not None:
        shape = [1] * x.dim()
        shape[axis] = -1
        terms = terms * cw.reshape(shape)
    return -terms.sum(dim=axis)


def _reduce(torch, per, sw, reduction, den_weights):
    if reduction == "mean":
        return per.sum() / per.numel()
    if reduction == "weighted_mean":
        return per.sum() / den_weights.sum()
    return per.sum()


# --- gradients from probabilities -------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical_probability_gradient_matches_torch(smoothing, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    x = _probs(rng, (30, 5))
    y = rng.dirichlet(np.ones(5), size=30)
    y[::3] *= 0.6                                    # soft targets not summing to 1
    sw = rng.uniform(0.2, 2.0, size=30)
    value, grad = cyloss.value_and_grad("categorical_crossentropy", y, x,
                                        label_smoothing=smoothing, sample_weight=sw,
                                        reduction=reduction)
    assert np.array_equal(value, cyloss.categorical_crossentropy(
        y, x, label_smoothing=smoothing, sample_weight=sw, reduction=reduction))
    tx = torch.tensor(x, requires_grad=True)
    q = torch.tensor(y) * (1 - smoothing) + smoothing / 5
    per = _torch_prob_rows(torch, q, tx, -1) * torch.tensor(sw)
    _reduce(torch, per, sw, reduction, torch.tensor(sw)).backward()
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-15)


SPARSE_OPTIONS = [
    {},
    {"label_smoothing": 0.25},
    {"class_weight": [0.5, 2.0, 1.0, 3.0]},
    {"class_weight": [0.5, 2.0, 1.0, 3.0], "label_smoothing": 0.1, "ignore_index": 2},
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", SPARSE_OPTIONS, ids=str)
def test_sparse_probability_gradient_matches_torch(opts, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(22)
    x = _probs(rng, (40, 4))
    labels = rng.integers(0, 4, size=40)
    sw = rng.uniform(0.2, 2.0, size=40)
    value, grad = cyloss.value_and_grad("sparse_categorical_crossentropy", labels, x,
                                        sample_weight=sw, reduction=reduction, **opts)
    s = opts.get("label_smoothing", 0.0)
    counted = labels != opts.get("ignore_index", -100)
    q = np.eye(4)[labels] * (1 - s) + s / 4
    q[~counted] = 0.0
    cw = np.asarray(opts.get("class_weight", np.ones(4)), dtype=np.float64)
    tx = torch.tensor(x, requires_grad=True)
    per = _torch_prob_rows(torch, torch.tensor(q), tx, -1, torch.tensor(cw))
    per = per * torch.tensor(sw)
    if reduction == "mean":
        total = per.sum() / counted.sum()
    elif reduction == "weighted_mean":
        total = per.sum() / (sw * cw[labels])[counted].sum()
    else:
        total = per.sum()
    total.backward()
    np.testing.assert_allclose(np.sum(value), per.sum().item() if reduction == "none"
                               else total.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-15)
    assert np.all(grad[~counted] == 0.0)


@pytest.mark.parametrize("name", ["categorical_crossentropy",
                                  "sparse_categorical_crossentropy"])
def test_probability_gradient_matches_finite_differences_on_axis_1(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = rng.uniform(0.2, 2.0, size=(3, 4, 5))        # classes on axis 1, nothing clipped
    if name == "categorical_crossentropy":
        y = np.moveaxis(rng.dirichlet(np.ones(4), size=(3, 5)), -1, 1)
        kw = dict(label_smoothing=0.1)
    else:
        y = rng.integers(0, 4, size=(3, 5))
        kw = dict(class_weight=[1.0, 2.0, 0.5, 1.5], label_smoothing=0.1)
    fn = getattr(cyloss, name)
    _, grad = cyloss.value_and_grad(name, y, x, axis=1, **kw)
    fd = central_difference(lambda q: fn(y, q, axis=1, **kw), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-10)


def test_clipped_probabilities_pass_no_gradient_and_nan_rows_stay_nan():
    # Row [1, 0]: class 1 is clipped up to eps, so only the renormalisation of class 0
    # remains: r_0 = x_0 / (x_0 + x_1) is 1 - 0 > 1 - eps, clipped too: all zero.
    g = cyloss.grad("categorical_crossentropy", [[1.0, 0.0]], [[1.0, 0.0]], reduction="sum")
    assert np.all(g == 0.0)
    # Row [3, 1] with target class 0: d(-log(x0 / (x0 + x1))) = (-1/x0 + 1/S, 1/S).
    g = cyloss.grad("sparse_categorical_crossentropy", [0], [[3.0, 1.0]], reduction="sum")
    np.testing.assert_allclose(g, [[-1 / 3 + 1 / 4, 1 / 4]], rtol=1e-15)
    g = cyloss.grad("sparse_categorical_crossentropy", [0], [[np.nan, 1.0]], reduction="sum")
    assert np.all(np.isnan(g))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probability_gradient_dtype_and_thread_count(dtype):
    rng = np.random.default_rng(23)
    x = _probs(rng, (20_000, 7)).astype(dtype)
    labels = rng.integers(0, 7, size=20_000)
    runs = [cyloss.value_and_grad("sparse_categorical_crossentropy", labels, x,
                                  label_smoothing=0.1, n_threads=k) for k in (1, 2, 3)]
    assert runs[0][1].dtype == dtype
    for value, grad in runs[1:]:
        assert value == runs[0][0] and grad.tobytes() == runs[0][1].tobytes()
    ref = cyloss.grad("sparse_categorical_crossentropy", labels, x.astype(np.float64),
                      label_smoothing=0.1)
    np.testing.assert_allclose(runs[0][1], ref, rtol=1e-5 if dtype == np.float32 else 0,
                               atol=1e-12)


# --- grad_hess ----------------------------------------------------------------------------

def _torch_hess_diag(torch, f, x):
    """Gradient and exact Hessian diagonal of a scalar torch function at x (float64)."""
    tx = torch.tensor(x, dtype=torch.float64)
    g = torch.autograd.functional.jacobian(f, tx)
    h = torch.autograd.functional.hessian(f, tx).reshape(x.size, x.size).diagonal()
    return g.numpy(), h.reshape(x.shape).numpy()


def test_sparse_and_categorical_hessians_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(31)
    x = rng.normal(size=(6, 5)) * 3
    labels = np.array([0, 4, 2, 3, 1, 4])
    cw = [0.5, 2.0, 1.0, 3.0, 1.5]
    sw = rng.uniform(0.5, 2.0, size=6)
    for s in (0.0, 0.2):
        g, h = cyloss.grad_hess("sparse_categorical_crossentropy", labels, x,
                                from_logits=True, class_weight=cw, label_smoothing=s,
                                sample_weight=sw)

        def f(z):
            per = F.cross_entropy(z, torch.tensor(labels), reduction="none",
                                  weight=torch.tensor(cw, dtype=torch.float64),
                                  label_smoothing=s)
            return (per * torch.tensor(sw)).sum()
        tg, th = _torch_hess_diag(torch, f, x)
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(h, th, rtol=1e-10, atol=1e-15)
    y = rng.dirichlet(np.ones(5), size=6) * 0.8
    g, h = cyloss.grad_hess("categorical_crossentropy", y, x, from_logits=True,
                            label_smoothing=0.1)
    tg, th = _torch_hess_diag(torch, lambda z: F.cross_entropy(
        z, torch.tensor(y), reduction="sum", label_smoothing=0.1), x)
    np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(h, th, rtol=1e-10, atol=1e-15)


def test_binary_and_regression_hessians_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(32)
    y = rng.uniform(size=(5, 3))
    x = rng.normal(size=(5, 3)) * 4
    pw = [0.5, 2.0, 3.0]
    g, h = cyloss.grad_hess("binary_crossentropy", y, x, from_logits=True, pos_weight=pw,
                            label_smoothing=0.1)
    ys = torch.tensor(y) * 0.9 + 0.05
    tg, th = _torch_hess_diag(torch, lambda z: F.binary_cross_entropy_with_logits(
        z, ys, pos_weight=torch.tensor(pw, dtype=torch.float64),
        reduction="none").mean(dim=-1).sum(), x)
    np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(h, th, rtol=1e-9, atol=1e-15)
    # Regression, errors away from the kinks: MSE, Huber, smooth L1 are exact.
    e = rng.choice([-1.0, 1.0], size=(5, 3)) * np.where(rng.random((5, 3)) < 0.5,
                                                       rng.uniform(0.05, 0.3, (5, 3)),
                                                       rng.uniform(0.8, 2.5, (5, 3)))
    p = y + e
    for name, opts, torch_loss in [
        ("mean_squared_error", {}, lambda z, t: ((z - t) ** 2)),
        ("huber", {"delta": 0.7}, lambda z, t: F.huber_loss(z, t, delta=0.7,
                                                            reduction="none")),
        ("smooth_l1", {"beta": 0.4}, lambda z, t: F.smooth_l1_loss(z, t, beta=0.4,
                                                                   reduction="none")),
    ]:
        g, h = cyloss.grad_hess(name, y, p, **opts)
        tg, th = _torch_hess_diag(
            torch, lambda z: torch_loss(z, torch.tensor(y)).mean(dim=-1).sum(), p)
        np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(h, th, rtol=1e-12, atol=1e-15)


def test_keras_catalogue_hessians_match_torch():
    # Poisson, MSLE (p above its clip) and squared hinge (margins away from the kink) are
    # exact; MAPE takes MAE's convention times its weight, hinge the exact 0.
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(34)
    counts = rng.poisson(2.0, size=(5, 3)).astype(np.float64)
    rates = rng.uniform(0.2, 5.0, size=(5, 3))
    labels = rng.integers(0, 2, size=(5, 3)).astype(np.float64)
    margins = rng.choice([-1.0, 1.0], size=(5, 3)) * rng.uniform(0.05, 2.0, size=(5, 3))
    scores = (1.0 - margins) * (2.0 * labels - 1.0)
    for name, y, p, torch_loss in [
        ("poisson", counts, rates, lambda z, t: z - t * (z + 1e-7).log()),
        ("mean_squared_logarithmic_error", counts, rates,
         lambda z, t: (z.clamp(min=1e-7).log1p() - t.clamp(min=1e-7).log1p()) ** 2),
        ("squared_hinge", labels, scores, lambda z, t: F.relu(1.0 - (2.0 * t - 1.0) * z) ** 2),
        ("hinge", labels, scores, lambda z, t: F.relu(1.0 - (2.0 * t - 1.0) * z)),
    ]:
        g, h = cyloss.grad_hess(name, y, p)
        tg, th = _torch_hess_diag(
            torch, lambda z: torch_loss(z, torch.tensor(y)).mean(dim=-1).sum(), p)
        np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(h, th, rtol=1e-12, atol=1e-15)
    g, h = cyloss.grad_hess("mape", [2.0, 0.0, -4.0, 5.0], [2.0, 1.0, -5.0, np.nan],
                            sample_weight=[1.0, 1.0, 2.0, 1.0])
    assert list(g[:3]) == [0.0, 1e9, -50.0] and list(h[:3]) == [50.0, 1e9, 50.0]
    assert np.isnan(g[3]) and np.isnan(h[3])


def test_regression_hessian_conventions():
    # MAE: gradient sign(e) (0 at e = 0, PyTorch), Hessian 1 (scikit-learn's positive
    # convention); smooth L1 with beta = 0 is L1 and takes the same.
    for name, opts in [("mean_absolute_error", {}), ("smooth_l1", {"beta": 0.0})]:
        g, h = cyloss.grad_hess(name, [0.0, 1.0, 2.0], [0.0, 3.0, 1.0],
                                sample_weight=[1.0, 2.0, 3.0], **opts)
        assert list(g) == [0.0, 2.0, -3.0] and list(h) == [1.0, 2.0, 3.0]
    # Huber: 1 up to and including |e| = delta, 0 beyond (scikit-learn's HuberLoss).
    g, h = cyloss.grad_hess("huber", [0.0] * 4, [0.5, 1.0, -1.5, 3.0], delta=1.0)
    assert list(g) == [0.5, 1.0, -1.0, 1.0] and list(h) == [1.0, 1.0, 0.0, 0.0]
    # A per-sample mean over the last axis divides both by its length.
    g, h = cyloss.grad_hess("mse", [[0.0, 0.0]], [[1.0, -3.0]])
    assert g.tolist() == [[1.0, -3.0]] and h.tolist() == [[1.0, 1.0]]
    g, h = cyloss.grad_hess("mse", [0.0], [np.nan])
    assert np.isnan(g[0]) and np.isnan(h[0])


def test_hessians_match_finite_differences_of_the_gradient():
    rng = np.random.default_rng(33)
    x = rng.normal(size=(4, 5)) * 2
    labels = rng.integers(0, 5, size=4)
    for name, y, opts in [
        ("sparse_categorical_crossentropy", labels, {"label_smoothing": 0.1}),
        ("categorical_crossentropy", rng.dirichlet(np.ones(5), size=4), {}),
        ("binary_crossentropy", rng.uniform(size=(4, 5)), {"pos_weight": 2.0}),
    ]:
        kw = dict(from_logits=True, **opts)
        _, h = cyloss.grad_hess(name, y, x, **kw)
        fd = np.empty_like(x)
        for idx in np.ndindex(x.shape):
            fd[idx] = central_difference(
                lambda q: cyloss.grad(name, y, q, reduction="sum", **kw)[idx], x)[idx]
        np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-10)


def test_softmax_hessian_is_accurate_where_p_is_near_1():
    # p(1 - p) for logits [40, 0, 0]: 1 - p is computed without cancellation.
    mpmath.mp.dps = 50
    x = [40.0, 0.0, 0.0]
    _, h = cyloss.grad_hess("sparse_categorical_crossentropy", [0], [x], from_logits=True)
    z = mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in x)
    for k in range(3):
        p = mpmath.exp(mpmath.mpf(x[k])) / z
        assert h[0, k] == pytest.approx(float(p * (1 - p)), rel=1e-14)


def test_grad_hess_gradient_is_the_sum_reduction_gradient_and_weights_scale_both():
    rng = np.random.default_rng(34)
    x = rng.normal(size=(50, 6))
    labels = rng.integers(0, 6, size=50)
    sw = rng.uniform(0.0, 2.0, size=50)
    loss = cyloss.SparseCategoricalCrossentropy(from_logits=True, reduction="mean")
    g, h = loss.grad_hess(labels, x, sample_weight=sw)
    ref = cyloss.SparseCategoricalCrossentropy(from_logits=True, reduction="sum").grad(
        labels, x, sample_weight=sw)
    assert g.tobytes() == ref.tobytes()
    g1, h1 = loss.grad_hess(labels, x)
    np.testing.assert_allclose(g, g1 * sw[:, None], rtol=1e-15, atol=0)
    np.testing.assert_allclose(h, h1 * sw[:, None], rtol=1e-15, atol=0)


def test_ignored_labels_give_zero_rows():
    g, h = cyloss.grad_hess("sparse_categorical_crossentropy", [1, -100],
                            [[0.0, 1.0], [2.0, 3.0]], from_logits=True, ignore_index=-100)
    assert np.all(g[1] == 0.0) and np.all(h[1] == 0.0) and np.all(h[0] > 0)


@pytest.mark.parametrize("name", ["categorical_crossentropy",
                                  "sparse_categorical_crossentropy", "binary_crossentropy"])
def test_grad_hess_needs_logits(name):
    y = [[1.0, 0.0]] if name != "sparse_categorical_crossentropy" else [0]
    with pytest.raises(ValueError, match="from_logits=True"):
        cyloss.grad_hess(name, y, [[0.5, 0.5]])


def test_grad_hess_buffers_are_reused_and_checked():
    rng = np.random.default_rng(35)
    y, p = rng.normal(size=(30, 2)), rng.normal(size=(30, 2)).astype(np.float32)
    gbuf, hbuf = np.empty_like(p), np.empty_like(p)
    g, h = cyloss.Huber(delta=0.5).grad_hess(y, p, grad_out=gbuf, hess_out=hbuf)
    assert g is gbuf and h is hbuf and g.dtype == np.float32
    with pytest.raises(ValueError, match="hess_out"):
        cyloss.grad_hess("mse", y, p, hess_out=np.empty((30, 2)))      # float64
    with pytest.raises(ValueError, match="share memory"):
        cyloss.grad_hess("mse", y, p, grad_out=gbuf, hess_out=gbuf)
    with pytest.raises(TypeError, match="hess_out"):
        cyloss.grad_hess("mse", y, p, hess_out=[[0.0, 0.0]] * 30)


def test_grad_hess_is_identical_for_every_thread_count():
    rng = np.random.default_rng(36)
    x = rng.normal(size=(40_000, 9)).astype(np.float32)
    labels = rng.integers(0, 9, size=40_000)
    runs = [cyloss.grad_hess("sparse_categorical_crossentropy", labels, x, from_logits=True,
                             n_threads=k) for k in (1, 2, 3)]
    for g, h in runs[1:]:
        assert g.tobytes() == runs[0][0].tobytes() and h.tobytes() == runs[0][1].tobytes()


# --- the fused fast paths ---------------------------------------------------------------

GRAD_CASES = [
    ("mean_squared_error", {}, (200_000,)),
    ("huber", {"delta": 0.5}, (200_000,)),
    ("binary_crossentropy", {"from_logits": True}, (200_000,)),
    ("binary_crossentropy", {"label_smoothing": 0.1}, (200_000,)),
    ("sparse_categorical_crossentropy", {"from_logits": True}, (2_000, 100)),
    ("sparse_categorical_crossentropy", {"from_logits": True,
                                         "class_weight": np.linspace(0.5, 2, 100)},
     (2_000, 100)),
    ("categorical_crossentropy", {"from_logits": True}, (2_000, 100)),
]


def _grad_inputs(name, opts, shape, dtype, rng):
    x = rng.normal(size=shape).astype(dtype)
    if name == "binary_crossentropy":
        y = rng.uniform(size=shape).astype(dtype)
        if not opts.get("from_logits"):
            x = (1 / (1 + np.exp(-x))).astype(dtype)
    elif name == "sparse_categorical_crossentropy":
        y = rng.integers(0, shape[1], size=shape[0])
    elif name == "categorical_crossentropy":
        y = rng.dirichlet(np.ones(shape[1]), size=shape[0]).astype(dtype)
    else:
        y = rng.normal(size=shape).astype(dtype)
    return y, x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c[0] + str(sorted(c[1])))
def test_contiguous_and_strided_inputs_give_the_same_gradient_bits(case, dtype):
    name, opts, shape = case
    rng = np.random.default_rng(zlib.crc32(f"{name}{opts}".encode()))
    y, x = _grad_inputs(name, opts, shape, dtype, rng)
    # A strided copy: every other element of a twice-as-long buffer.
    x_strided = np.empty((2,) + x.shape, dtype)[0] if x.ndim > 1 else np.empty(
        2 * x.size, dtype)[::2]
    x_strided[...] = x
    fast = cyloss.value_and_grad(name, y, x, **opts)
    slow = cyloss.value_and_grad(name, y, x_strided, **opts)
    assert fast[0] == slow[0]
    assert fast[1].tobytes() == slow[1].tobytes()


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c[0] + str(sorted(c[1])))
def test_value_and_grad_into_grad_out_allocates_nothing_input_sized(case):
    import tracemalloc
    name, opts, shape = case
    rng = np.random.default_rng(1)
    y, x = _grad_inputs(name, opts, shape, np.float32, rng)
    if name == "sparse_categorical_crossentropy":
        y = y.astype(np.int64)
    loss = cyloss.get(name, **opts)
    buf = np.empty_like(x)
    loss.value_and_grad(y, x, grad_out=buf)            # warm caches of first calls
    tracemalloc.start()
    try:
        loss.value_and_grad(y, x, grad_out=buf)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 < x.nbytes // 10, peak
