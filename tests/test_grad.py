"""value_and_grad / grad: the value is the loss's own value, the gradient matches a
4th-order central finite difference of that value and, when torch is installed,
torch.autograd in float64. The class losses from probabilities and grad_hess are in
test_grad_hess.py."""

import zlib

import numpy as np
import pytest

import cyloss

# (name, options, make y_true, make y_pred); y_pred kept away from kinks and clip bounds so
# that finite differences are meaningful.
def _reg(rng, shape):
    # |error| in [0.05, 0.3] or [0.8, 2.5]: away from 0 and from the kinks at beta = 0.4
    # and delta = 0.7, where a finite difference straddles two branches.
    y = rng.normal(size=shape)
    small = rng.uniform(0.05, 0.3, size=shape)
    large = rng.uniform(0.8, 2.5, size=shape)
    e = rng.choice([-1.0, 1.0], size=shape) * np.where(rng.random(shape) < 0.5, small, large)
    return y, y + e


def _bce_probs(rng, shape):
    return rng.uniform(size=shape), rng.uniform(0.05, 0.95, size=shape)


def _bce_logits(rng, shape):
    return rng.uniform(size=shape), rng.normal(size=shape) * 3


def _counts(rng, shape):
    # Poisson and MSLE: counts y >= 0 and rates p in [0.2, 5], away from Keras's clip.
    return rng.poisson(2.0, size=shape).astype(np.float64), rng.uniform(0.2, 5.0, size=shape)


def _labels(rng, shape):
    # Hinge: 0/1 labels (Keras's rule makes them -1/1), margins 1 - t p at least 0.05 away
    # from the kink.
    y = rng.integers(0, 2, size=shape).astype(np.float64)
    m = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 2.0, size=shape)
    return y, (1.0 - m) * (2.0 * y - 1.0)


def _cat_logits(rng, shape):
    y = rng.dirichlet(np.ones(shape[-1]), shape[0])
    return y, rng.normal(size=shape) * 2


def _sparse_logits(rng, shape):
    return rng.integers(0, shape[-1], shape[0]), rng.normal(size=shape) * 2


CASES = [
    ("mean_absolute_error", {}, _reg),
    ("log_cosh", {}, _reg),
    ("poisson", {}, _counts),
    ("mean_absolute_percentage_error", {}, _reg),
    ("mean_squared_logarithmic_error", {}, _counts),
    ("hinge", {}, _labels),
    ("squared_hinge", {}, _labels),
    ("mean_squared_error", {}, _reg),
    ("huber", {"delta": 0.7}, _reg),
    ("smooth_l1", {"beta": 0.4}, _reg),
    ("smooth_l1", {"beta": 0.0}, _reg),
    ("binary_crossentropy", {}, _bce_probs),
    ("binary_crossentropy", {"label_smoothing": 0.2}, _bce_probs),
    ("binary_crossentropy", {"from_logits": True}, _bce_logits),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1,
                             "pos_weight": [0.5, 2.0, 3.0]}, _bce_logits),
    ("binary_crossentropy", {"pos_weight": 2.5}, _bce_probs),
    ("binary_focal_crossentropy", {}, _bce_probs),
    ("binary_focal_crossentropy", {"from_logits": True, "gamma": 0.5,
                                   "apply_class_balancing": True, "label_smoothing": 0.1},
     _bce_logits),
    ("categorical_focal_crossentropy", {"from_logits": True, "gamma": 1.5}, _cat_logits),
    ("sparse_categorical_focal_crossentropy", {"from_logits": True, "alpha": 0.5,
                                               "class_weight": [0.5, 2.0, 1.0]},
     _sparse_logits),
    ("multilabel_soft_margin", {"class_weight": [0.5, 2.0, 3.0]}, _bce_logits),
]
REDUCTIONS = ["mean", "weighted_mean", "sum", "none"]


def central_difference(f, x, h=1e-4):
    """d f / d x by 4th-order central differences, one element of x at a time."""
    fd = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        def at(delta):
            q = x.copy()
            q[idx] += delta
            return f(q)
        fd[idx] = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
    return fd


def ids(case):
    name, opts, _ = case
    return name + "".join(f"-{k}={v}" for k, v in opts.items())


def scalar(value):
    return float(np.sum(value))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_gradient_matches_fourth_order_finite_differences(case, weighted, reduction):
    name, opts, make = case
    # A fixed seed per case (str hashes change between processes).
    rng = np.random.default_rng(zlib.crc32(f"{name}{opts}{weighted}{reduction}".encode()))
    y, p = make(rng, (6, 3))
    sw = rng.uniform(0.2, 2.0, size=6) if weighted else None
    fn = getattr(cyloss, name)
    value, grad = cyloss.value_and_grad(name, y, p, sample_weight=sw, reduction=reduction,
                                        **opts)
    expected_value = fn(y, p, sample_weight=sw, reduction=reduction, **opts)
    assert np.array_equal(np.asarray(value), np.asarray(expected_value))
    assert grad.shape == p.shape and grad.dtype == np.float64
    fd = central_difference(
        lambda q: scalar(fn(y, q, sample_weight=sw, reduction=reduction, **opts)), p)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


TORCH = [
    ("mean_absolute_error", {}, lambda F, y, p, o: (p - y).abs().mean(dim=-1)),
    ("mean_squared_error", {}, lambda F, y, p, o: ((p - y) ** 2).mean(dim=-1)),
    ("huber", {"delta": 0.7},
     lambda F, y, p, o: F.huber_loss(p, y, delta=0.7, reduction="none").mean(dim=-1)),
    ("smooth_l1", {"beta": 0.4},
     lambda F, y, p, o: F.smooth_l1_loss(p, y, beta=0.4, reduction="none").mean(dim=-1)),
    ("binary_crossentropy", {"from_logits": True, "pos_weight": [0.5, 2.0, 3.0]},
     lambda F, y, p, o: F.binary_cross_entropy_with_logits(
         p, y, pos_weight=o["pw"], reduction="none").mean(dim=-1)),
    ("binary_crossentropy", {},
     lambda F, y, p, o: F.binary_cross_entropy(p, y, reduction="none").mean(dim=-1)),
    # Keras's formulas as plain torch expressions (torch's poisson_nll_loss takes its eps
    # differently); torch.clamp's gradient passes at the bound, relu's is 0 at the kink.
    ("poisson", {}, lambda F, y, p, o: (p - y * (p + 1e-7).log()).mean(dim=-1)),
    ("mean_absolute_percentage_error", {},
     lambda F, y, p, o: (100.0 * (p - y).abs() / y.abs().clamp(min=1e-7)).mean(dim=-1)),
    ("mean_squared_logarithmic_error", {},
     lambda F, y, p, o: ((p.clamp(min=1e-7).log1p() - y.clamp(min=1e-7).log1p()) ** 2)
     .mean(dim=-1)),
    ("hinge", {}, lambda F, y, p, o: F.relu(1.0 - (2.0 * y - 1.0) * p).mean(dim=-1)),
    ("squared_hinge", {},
     lambda F, y, p, o: (F.relu(1.0 - (2.0 * y - 1.0) * p) ** 2).mean(dim=-1)),
    # Keras's binary focal loss from logits, written in torch
    ("binary_focal_crossentropy", {"from_logits": True, "gamma": 2.0},
     lambda F, y, p, o: ((y * p.neg().sigmoid() + (1 - y) * p.sigmoid()) ** 2
                         * F.binary_cross_entropy_with_logits(p, y, reduction="none")
                         ).mean(dim=-1)),
    ("multilabel_soft_margin", {"class_weight": [0.5, 2.0, 3.0]},
     lambda F, y, p, o: F.multilabel_soft_margin_loss(p, y, weight=o["cw"],
                                                      reduction="none")),
]
TORCH_INPUTS = {"poisson": _counts, "mean_squared_logarithmic_error": _counts,
                "hinge": _labels, "squared_hinge": _labels}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", TORCH, ids=lambda c: c[0] + str(c[1]))
def test_gradient_matches_torch_autograd(case, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    name, opts, torch_loss = case
    rng = np.random.default_rng(5)
    if name.startswith("binary") and opts.get("from_logits") or name.startswith("multi"):
        y, p = _bce_logits(rng, (40, 3))
    elif name.startswith("binary"):
        y, p = _bce_probs(rng, (40, 3))
    else:
        y, p = TORCH_INPUTS.get(name, _reg)(rng, (40, 3))
    sw = rng.uniform(0.2, 2.0, size=40)
    value, grad = cyloss.value_and_grad(name, y, p, sample_weight=sw, reduction=reduction,
                                        **opts)
    tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(y, dtype=torch.float64)
    tw = torch.tensor(sw, dtype=torch.float64)
    o = {"pw": torch.tensor(opts.get("pos_weight", [1.0]), dtype=torch.float64),
         "cw": torch.tensor(opts.get("class_weight", [1.0]), dtype=torch.float64)}
    per = torch_loss(F, ty, tp, o) * tw
    total = {"mean": per.sum() / 40, "weighted_mean": per.sum() / tw.sum(),
             "sum": per.sum(), "none": per.sum()}[reduction]
    total.backward()
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(np.sum(value), total.item() if reduction != "none"
                               else per.sum().item(), rtol=1e-12)


def test_kinks_follow_pytorch():
    # MAE: 0 at zero error; Huber and smooth L1: continuous at the switch.
    g = cyloss.grad("mae", [1.0, 1.0, 1.0], [1.0, 2.0, 0.0], reduction="sum")
    assert list(g) == [0.0, 1.0, -1.0]
    g = cyloss.grad("huber", [0.0, 0.0], [0.7, -0.7], delta=0.7, reduction="sum")
    assert list(g) == [0.7, -0.7]
    g = cyloss.grad("smooth_l1", [0.0, 0.0], [0.4, 0.0], beta=0.4, reduction="sum")
    assert list(g) == [1.0, 0.0]


def test_keras_catalogue_kinks_and_clips():
    # Hinge: 0 at the kink 1 - t p = 0 (relu's convention), -t inside; labels 0/1 -> -1/1.
    g = cyloss.grad("hinge", [1.0, 0.0, 1.0, 0.0], [1.0, -1.0, 0.5, 2.0], reduction="sum")
    assert list(g) == [0.0, 0.0, -1.0, 1.0]
    g = cyloss.grad("squared_hinge", [1.0, -1.0], [1.0, 0.5], reduction="sum")
    assert list(g) == [0.0, 3.0]
    # MSLE: the clip max(p, eps) passes the gradient at p == eps, stops it below.
    g = cyloss.grad("msle", [1.0, 1.0, 1.0], [1e-7, 5e-8, -3.0], reduction="sum")
    d = np.log1p(1e-7) - np.log(2.0)
    assert g[0] == pytest.approx(2.0 * d / (1.0 + 1e-7), rel=1e-15)
    assert list(g[1:]) == [0.0, 0.0]
    # MAPE: 0 at zero error; a zero target divides by eps.
    g = cyloss.grad("mape", [2.0, 0.0, -4.0], [2.0, 1.0, -5.0], reduction="sum")
    assert list(g) == [0.0, 1e9, -25.0]


def test_clipped_probabilities_get_zero_gradient_and_infinite_logits_stay_finite():
    g = cyloss.grad("binary_crossentropy", [1.0, 0.0, 1.0], [1.0, 0.0, 0.5], reduction="sum")
    assert g[0] == 0.0 and g[1] == 0.0 and g[2] == pytest.approx(-2.0)
    g = cyloss.grad("binary_crossentropy", [1.0, 0.0, 0.0, 1.0],
                    [np.inf, -np.inf, np.inf, -np.inf], from_logits=True, reduction="sum")
    assert list(g) == [0.0, 0.0, 1.0, -1.0]


def test_grad_out_is_reused_and_checked():
    rng = np.random.default_rng(1)
    y, p = _reg(rng, (100, 4))
    buf = np.empty_like(p)
    value, grad = cyloss.MeanSquaredError().value_and_grad(y, p, grad_out=buf)
    assert grad is buf and np.shares_memory(grad, buf)
    np.testing.assert_allclose(buf, 2 * (p - y) / p.size, rtol=1e-15)
    with pytest.raises(ValueError, match="grad_out"):
        cyloss.value_and_grad("mse", y, p, grad_out=np.empty((100, 3)))
    with pytest.raises(ValueError, match="grad_out"):
        cyloss.value_and_grad("mse", y, p, grad_out=np.empty((100, 4), np.float32))
    with pytest.raises(ValueError, match="grad_out"):
        cyloss.value_and_grad("mse", y, p, grad_out=np.empty((4, 100)).T)


def test_keras_squeeze_keeps_y_pred_shape_and_dtype():
    rng = np.random.default_rng(2)
    y = rng.normal(size=50)
    p = rng.normal(size=(50, 1)).astype(np.float32)
    value, grad = cyloss.value_and_grad("mse", y, p)
    assert grad.shape == (50, 1) and grad.dtype == np.float32
    np.testing.assert_allclose(grad[:, 0], 2 * (p[:, 0] - y) / 50, rtol=1e-6)


@pytest.mark.parametrize("name,opts", [("huber", {"delta": 0.5}),
                                       ("binary_crossentropy", {"from_logits": True})])
def test_gradient_is_identical_for_every_thread_count(name, opts):
    rng = np.random.default_rng(3)
    y = rng.uniform(size=300_000)
    p = rng.normal(size=300_000)
    results = [cyloss.value_and_grad(name, y, p, n_threads=k, **opts) for k in (1, 2, 3, 7)]
    for value, grad in results[1:]:
        assert value == results[0][0]
        assert grad.tobytes() == results[0][1].tobytes()


def test_zero_denominator_gives_zero_gradient():
    value, grad = cyloss.value_and_grad("mse", [1.0, 2.0], [0.0, 0.0],
                                        sample_weight=[0.0, 0.0], reduction="weighted_mean")
    assert value == 0.0 and list(grad) == [0.0, 0.0]


def test_a_loss_object_and_options_together_are_refused():
    with pytest.raises(ValueError, match="constructor"):
        cyloss.value_and_grad(cyloss.Huber(), [0.0], [1.0], delta=2.0)


SPARSE_OPTIONS = [
    {},
    {"label_smoothing": 0.2},
    {"class_weight": [0.5, 2.0, 1.0, 3.0]},
    {"class_weight": [0.5, 2.0, 1.0, 3.0], "label_smoothing": 0.1, "ignore_index": 1},
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", SPARSE_OPTIONS, ids=str)
def test_sparse_logits_gradient_matches_torch_autograd(opts, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 4)) * 2
    labels = rng.integers(0, 4, size=30)
    sw = rng.uniform(0.2, 2.0, size=30)
    value, grad = cyloss.value_and_grad("sparse_categorical_crossentropy", labels, x,
                                        from_logits=True, sample_weight=sw,
                                        reduction=reduction, **opts)
    tx = torch.tensor(x, requires_grad=True)
    cw = opts.get("class_weight")
    per = torch.nn.functional.cross_entropy(
        tx, torch.tensor(labels), reduction="none",
        weight=None if cw is None else torch.tensor(cw, dtype=torch.float64),
        ignore_index=opts.get("ignore_index", -100),
        label_smoothing=opts.get("label_smoothing", 0.0)) * torch.tensor(sw)
    counted = labels != opts.get("ignore_index", -100)
    v = np.ones(30) if cw is None else np.asarray(cw)[labels]
    den = {"mean": counted.sum(), "weighted_mean": (sw * v)[counted].sum(),
           "sum": 1.0, "none": 1.0}[reduction]
    (per.sum() / float(den)).backward()
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-15)
    if opts.get("ignore_index") is not None:
        assert np.all(grad[~counted] == 0.0)


@pytest.mark.parametrize("opts", SPARSE_OPTIONS[:3], ids=str)
def test_sparse_logits_gradient_matches_finite_differences_on_any_class_axis(opts):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 4, 5))            # classes on axis 1
    labels = rng.integers(0, 4, size=(3, 5))
    kw = dict(from_logits=True, axis=1, **opts)
    _, grad = cyloss.value_and_grad("sparse_categorical_crossentropy", labels, x, **kw)
    fd = central_difference(lambda q: cyloss.sparse_categorical_crossentropy(labels, q, **kw),
                            x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-10)


def test_sparse_gradient_with_infinite_logits():
    g = cyloss.grad("sparse_categorical_crossentropy", [0, 0], [[np.inf, 0.0, 0.0],
                                                               [np.inf, np.inf, 0.0]],
                    from_logits=True, reduction="sum")
    np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0], [-0.5, 0.5, 0.0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_categorical_logits_gradient_matches_torch_autograd(smoothing, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.normal(size=(25, 5)) * 2
    y = rng.dirichlet(np.ones(5), size=25)
    y[::4] *= 0.5                                   # soft targets that do not sum to 1
    sw = rng.uniform(0.2, 2.0, size=25)
    value, grad = cyloss.value_and_grad("categorical_crossentropy", y, x, from_logits=True,
                                        label_smoothing=smoothing, sample_weight=sw,
                                        reduction=reduction)
    tx = torch.tensor(x, requires_grad=True)
    per = torch.nn.functional.cross_entropy(tx, torch.tensor(y), reduction="none",
                                            label_smoothing=smoothing) * torch.tensor(sw)
    den = {"mean": 25.0, "weighted_mean": sw.sum(), "sum": 1.0, "none": 1.0}[reduction]
    (per.sum() / den).backward()
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_categorical_logits_gradient_matches_finite_differences_on_axis_0():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(4, 6))                     # classes on axis 0
    y = rng.dirichlet(np.ones(4), size=6).T
    kw = dict(from_logits=True, axis=0, label_smoothing=0.1)
    _, grad = cyloss.value_and_grad("categorical_crossentropy", y, x, **kw)
    fd = central_difference(lambda q: cyloss.categorical_crossentropy(y, q, **kw), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-10)


def test_categorical_gradient_with_minus_inf_logits_on_zero_targets():
    # Classes with target 0 at logit -inf contribute nothing and get gradient 0.
    g = cyloss.grad("categorical_crossentropy", [[1.0, 0.0, 0.0]], [[0.0, 0.0, -np.inf]],
                    from_logits=True, reduction="sum")
    np.testing.assert_allclose(g, [[-0.5, 0.5, 0.0]], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [3, 1000, 1024])
@pytest.mark.parametrize("reduction,weighted", [
    ("mean", False), ("sum", False), ("weighted_mean", False),
    ("mean", True), ("sum", True), ("weighted_mean", True)])
@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error"])
def test_gradient_reduction_scale_is_applied_once(name, reduction, weighted, n, dtype):
    """The reduction's divisor, when it is known before the loop (mean; weighted_mean
    without weights; sum's 1), is folded into each gradient element as the loop writes it,
    rounded once to the output dtype; weighted_mean with weights divides afterwards (two
    more roundings in float32). Checked against exact rational arithmetic: the derivative
    of MSE, 2 (p - y) w / d, and of MAE, sign(p - y) w / d, with d = n, 1 or sum(w)."""
    from fractions import Fraction

    rng = np.random.default_rng(n)
    y = rng.normal(size=n).astype(dtype)
    p = (y + rng.normal(size=n)).astype(dtype)
    w = rng.uniform(0.1, 3.0, size=n).astype(dtype) if weighted else None
    kw = {} if w is None else {"sample_weight": w}
    grad = cyloss.grad(name, y, p, reduction=reduction, **kw)
    assert grad.dtype == dtype
    ws = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    d = {"mean": Fraction(n), "sum": Fraction(1),
         "weighted_mean": sum(ws, Fraction(0))}[reduction]
    for i in range(n):
        diff = Fraction(float(p[i])) - Fraction(float(y[i]))
        dl = 2 * diff if name == "mean_squared_error" else Fraction((diff > 0) - (diff < 0))
        exact = dl * ws[i] / d
        err = abs(Fraction(float(grad[i])) - exact)
        ulp = 2.0**-24 if dtype == np.float32 else 2.0**-53
        # one rounding to the dtype (plus a few in double, 2^-51 in all); weighted_mean
        # with weights divides afterwards in the dtype, by 2^k exactly and then by the
        # mantissa as a product with its reciprocal: in float32 two more roundings
        bound = ulp + 2.0**-51 + (2 * ulp if (reduction == "weighted_mean" and weighted
                                               and dtype == np.float32) else 0.0)
        assert err <= Fraction(bound) * abs(exact), (i, float(grad[i]), float(exact))
        if d.denominator == 1 and d.numerator & (d.numerator - 1) == 0 and not weighted:
            # a power-of-two divisor: exact scaling, the correctly rounded value itself
            assert grad[i] == dtype(float(exact)), (i, float(grad[i]), float(exact))
