"""The row (class-axis) losses of the catalogue (issue 14): kl_divergence, nll,
categorical_hinge, cosine_similarity.

Values against Keras 3 (NumPy backend, float64) and PyTorch (float64) to 1e-9 relative on
random and extreme inputs for every option; gradients against the independent closed
forms of reference_grad.py, torch.autograd and finite differences. Expected values come
only from Keras, PyTorch, the float64 reference or closed forms.
"""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pytest

import cyloss
import reference
import reference_grad
import registry
from registry import make_sample_weight
from test_values import _knp, keras  # noqa: F401  (the float64 Keras fixture)

RTOL = 1e-9
REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
ROW_LOSSES = ("kl_divergence", "nll", "categorical_hinge", "cosine_similarity")


def _seed(*parts):
    return zlib.crc32(repr(parts).encode())


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _close(actual, expected, rtol=RTOL, atol=1e-15):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=atol)


# --------------------------------------------------------------------------- #
# Keras 3: per-sample values on random and extreme inputs, and the classes with weights
# --------------------------------------------------------------------------- #
def _keras_inputs(name, rng, shape):
    case = registry.BY_NAME[name]
    y, p = case.make_inputs(rng, shape, np.float64, {})
    if name == "kl_divergence":
        # targets outside [0, 1] and predictions at the clip bounds, 0, above 1, inf
        y[0, :4] = [0.0, 1.0, 1.5, -0.5]
        p[0, :4] = [0.0, 1e-7, 2.0, np.inf]
        p[1, :4] = [1e-300, 0.5, 1.0, 1e-8]
    elif name == "categorical_hinge":
        p[0] = 1e300 * np.sign(p[0])        # pos and neg near the overflow
        p[1, 0] = np.inf
        y[2] = np.where(y[2] == 1.0, 1.0, -1.0)
        p[3] = 0.0
    else:   # cosine: a zero row on each side, huge and tiny (but > epsilon) norms
        y[0] = 0.0
        p[1] = 0.0
        p[2] *= 1e150
        y[3] *= 1e-5
    return y, p


KERAS_ROW_CASES = [("kl_divergence", {}), ("categorical_hinge", {}),
                   ("cosine_similarity", {}), ("cosine_similarity", {"axis": 1})]


@pytest.mark.parametrize("name, options", KERAS_ROW_CASES,
                         ids=[f"{n}-{o}" for n, o in KERAS_ROW_CASES])
def test_keras_per_sample_random_and_extreme(keras, name, options):
    rng = np.random.default_rng(_seed("keras_rows", name, options))
    if options.get("axis") == 1:
        y, p = registry.BY_NAME[name].make_inputs(rng, (6, 5, 3), np.float64, options,
                                                  extremes=False)
    else:
        y, p = _keras_inputs(name, rng, (8, 5))
    with np.errstate(all="ignore"):
        expected = _knp(keras, getattr(keras.losses, name)(y, p, **options))
    actual = getattr(cyloss, name)(y, p, **options, reduction="none")
    assert actual.shape == expected.shape
    _close(actual, expected)


def test_keras_cosine_tiny_norms_and_axis_0(keras):
    # Keras's cosine_similarity on the NumPy backend normalises with NumPy (no epsilon,
    # and its axis=0 becomes -1); the other backends use ops.normalize, whose epsilon is
    # what cyloss follows: compare with that on rows of norm below epsilon and axis 0.
    ops = keras.ops
    rng = np.random.default_rng(_seed("keras_cos_tiny"))
    for axis in (-1, 0):
        y = rng.normal(size=(6, 4))
        p = rng.normal(size=(6, 4))
        if axis == -1:
            p[0] *= 1e-9          # norm < 1e-7: the clamp is active
            y[1] *= 3e-8
            p[2] = 0.0
        else:
            p[:, 0] *= 1e-9
        with np.errstate(divide="ignore"):     # rsqrt(0) = inf, then min(inf, 1 / eps)
            expected = _knp(keras, -ops.sum(ops.normalize(y, axis=axis)
                                            * ops.normalize(p, axis=axis), axis=axis))
        _close(cyloss.cosine_similarity(y, p, axis=axis, reduction="none"), expected)


KERAS_CLASSES = {"kl_divergence": "KLDivergence", "categorical_hinge": "CategoricalHinge",
                 "cosine_similarity": "CosineSimilarity"}


@pytest.mark.parametrize("keras_reduction", ["sum_over_batch_size", "sum",
                                             "mean_with_sample_weight"])
@pytest.mark.parametrize("name", list(KERAS_CLASSES))
def test_keras_classes_with_sample_weight(keras, name, keras_reduction):
    case = registry.BY_NAME[name]
    rng = np.random.default_rng(_seed("keras_rows_cls", name, keras_reduction))
    y, p = case.make_inputs(rng, (9, 5), np.float64, {}, extremes=False)
    sw = make_sample_weight(rng, (9,), "full")
    k_loss = getattr(keras.losses, KERAS_CLASSES[name])(reduction=keras_reduction,
                                                         dtype="float64")
    expected = float(_knp(keras, k_loss(y, p, sample_weight=sw)))
    actual = case.cls(reduction=keras_reduction)(y, p, sample_weight=sw)
    assert type(actual) is float
    assert math.isclose(actual, expected, rel_tol=RTOL, abs_tol=1e-15), (actual, expected)


def test_categorical_hinge_does_not_convert_binary_targets(keras):
    # Keras 3 converts {0, 1} labels to {-1, 1} for hinge, not for categorical_hinge.
    y = np.array([[0.0, 1.0, 0.0]])
    p = np.array([[0.5, 0.2, -0.4]])
    expected = max(0.5 - 0.2 + 1.0, 0.0)
    assert math.isclose(cyloss.categorical_hinge(y, p), expected, rel_tol=1e-15)
    assert math.isclose(float(_knp(keras, keras.losses.categorical_hinge(y, p))[0]),
                        expected, rel_tol=1e-15)


# --------------------------------------------------------------------------- #
# PyTorch (float64)
# --------------------------------------------------------------------------- #
def _kl_inputs(rng, shape, class_axis, log_input, log_target):
    # class axis moved last while generating; exact zeros in the target (xlogy: 0)
    moved = list(shape)
    c = moved.pop(class_axis)
    y = rng.dirichlet(np.ones(c), size=tuple(moved))
    if not log_target:   # PyTorch's log_target gives NaN for a target of -inf (cyloss 0)
        y.reshape(-1)[rng.choice(y.size, size=y.size // 6, replace=False)] = 0.0
    p = rng.dirichlet(np.ones(c), size=tuple(moved))
    with np.errstate(divide="ignore"):
        yt = np.log(y) if log_target else y
        xp = np.log(p) if log_input else p
    return np.moveaxis(yt, -1, class_axis), np.moveaxis(xp, -1, class_axis)


@pytest.mark.parametrize("shape", [(12, 5), (4, 5, 3)], ids=["2d", "NCd"])
@pytest.mark.parametrize("log_input, log_target", [(True, False), (True, True),
                                                   (False, True)])
def test_torch_kl_div(torch, log_input, log_target, shape):
    F = torch.nn.functional
    rng = np.random.default_rng(_seed("torch_kl", log_input, log_target, shape))
    y, x = _kl_inputs(rng, shape, 1, log_input, log_target)
    n, c = shape[0], shape[1]
    yt = torch.tensor(y)
    # PyTorch's input is always log-probabilities: cyloss's probability input is the
    # log of its clipped prediction.
    xt = torch.tensor(x) if log_input else torch.log(torch.clamp(torch.tensor(x), 1e-7, 1))
    kw = dict(log_input=log_input, log_target=log_target, axis=1)
    f = cyloss.kl_divergence
    none_t = F.kl_div(xt, yt, reduction="none", log_target=log_target).numpy().sum(axis=1)
    _close(f(y, x, **kw, reduction="none"), none_t)
    sum_t = F.kl_div(xt, yt, reduction="sum", log_target=log_target).item()
    _close(f(y, x, **kw, reduction="sum"), sum_t)
    batchmean = F.kl_div(xt, yt, reduction="batchmean", log_target=log_target).item()
    with warnings.catch_warnings():   # PyTorch's advice to use batchmean instead
        warnings.simplefilter("ignore", UserWarning)
        elementmean = F.kl_div(xt, yt, reduction="mean", log_target=log_target).item()
    if len(shape) == 2:
        # batchmean is cyloss's "mean"; PyTorch's "mean" is that over C
        _close(f(y, x, **kw), batchmean)
        _close(f(y, x, **kw) / c, elementmean)
    else:
        # (N, C, d): batchmean divides the sum by N alone
        _close(f(y, x, **kw, reduction="sum") / n, batchmean)
        _close(f(y, x, **kw) / c, elementmean)


def test_kl_zero_target_against_minus_inf_log_input_is_zero(torch):
    # A zero target contributes 0 (PyTorch's xlogy), even where the log-probability is
    # -inf (PyTorch: 0 * inf = NaN there, a documented difference).
    y = np.array([[0.0, 1.0]])
    x = np.array([[-np.inf, 0.0]])
    assert cyloss.kl_divergence(y, x, log_input=True) == 0.0
    assert cyloss.kl_divergence([[-np.inf, 0.0]], x, log_input=True, log_target=True) == 0.0
    assert np.isnan(cyloss.kl_divergence(y, [[np.nan, 0.0]], log_input=True))
    assert np.isnan(cyloss.kl_divergence([[-0.5, 1.0]], [[-1.0, 0.0]], log_input=True))


NLL_CASES = [
    pytest.param(ii, cw, shape, id=f"ignore{ii}-cw{cw is not None}-{len(shape)}d")
    for ii in (None, -100, 1)
    for cw in (None, registry.CLASS_WEIGHT)
    for shape in ((11, 5), (3, 5, 4))
]


@pytest.mark.parametrize("ignore_index, class_weight, shape", NLL_CASES)
def test_torch_nll_loss(torch, ignore_index, class_weight, shape):
    F = torch.nn.functional
    rng = np.random.default_rng(_seed("torch_nll", ignore_index, class_weight is None,
                                      shape))
    x = torch.log_softmax(torch.tensor(rng.normal(0, 3, size=shape)), dim=1).numpy()
    per_sample = (shape[0],) + shape[2:]
    labels = rng.integers(0, shape[1], size=per_sample)
    if ignore_index is not None and ignore_index < 0:
        labels[rng.random(per_sample) < 0.25] = ignore_index
    t_kw, c_kw = {}, {"axis": 1}
    if ignore_index is not None:
        t_kw["ignore_index"] = c_kw["ignore_index"] = ignore_index
    if class_weight is not None:
        t_kw["weight"] = torch.tensor(class_weight)
        c_kw["class_weight"] = class_weight
    xt, yt = torch.tensor(x), torch.tensor(labels)
    _close(cyloss.nll(labels, x, **c_kw, reduction="none"),
           F.nll_loss(xt, yt, reduction="none", **t_kw).numpy())
    _close(cyloss.nll(labels, x, **c_kw, reduction="sum"),
           F.nll_loss(xt, yt, reduction="sum", **t_kw).item())
    _close(cyloss.nll_loss(labels, x, **c_kw, reduction="weighted_mean"),
           F.nll_loss(xt, yt, reduction="mean", **t_kw).item())


def test_nll_bad_labels_name_the_label_and_index():
    x = np.log(np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"label 4 at index \(1,\) is outside \[0, 4\)"):
        cyloss.nll([0, 4, 1], x)
    with pytest.raises(ValueError, match=r"label -100 at index \(2,\)"):
        cyloss.nll([0, 1, -100], x)
    with pytest.raises(ValueError, match="integer class labels"):
        cyloss.nll([0.5, 1, 2], x)
    with pytest.raises(ValueError, match="class_weight"):
        cyloss.nll([0, 1, 2], x, class_weight=[1.0, 2.0])
    # the ignored label is fine, and counted nowhere
    assert cyloss.nll([0, 1, -100], x, ignore_index=-100) == pytest.approx(math.log(4))


@pytest.mark.parametrize("eps", [1e-8, 1e-3])
@pytest.mark.parametrize("axis", [-1, 0])
def test_torch_cosine_similarity(torch, axis, eps):
    F = torch.nn.functional
    rng = np.random.default_rng(_seed("torch_cos", axis, eps))
    y = rng.normal(size=(7, 6))
    p = rng.normal(size=(7, 6))
    if axis == -1:
        p[0] *= 1e-10      # below either epsilon: the clamp
        y[1] = 0.0
        y[2] *= 1e-4
        p[3] *= 1e100
    expected = -F.cosine_similarity(torch.tensor(p), torch.tensor(y), dim=axis,
                                    eps=eps).numpy()
    _close(cyloss.cosine_similarity(y, p, axis=axis, epsilon=eps, reduction="none"),
           expected)


def test_cosine_of_rows_whose_squares_overflow():
    y = np.array([[3e200, 4e200], [1e300, -1e300]])
    p = np.array([[4e200, 3e200], [1e-3, 0.0]])
    _close(cyloss.cosine_similarity(y, p, reduction="none"),
           [-24.0 / 25.0, -1.0 / math.sqrt(2.0)], rtol=1e-15)


def _torch_hinge(torch, y, p):
    pos = (y * p).sum(-1)
    neg = ((1.0 - y) * p).amax(-1)
    return torch.clamp(neg - pos + 1.0, min=0.0)


def test_torch_categorical_hinge(torch):
    rng = np.random.default_rng(_seed("torch_hinge"))
    y, p = registry.make_categorical_hinge(rng, (40, 6), np.float64, {})
    expected = _torch_hinge(torch, torch.tensor(y), torch.tensor(p)).numpy()
    _close(cyloss.categorical_hinge(y, p, reduction="none"), expected)


# --------------------------------------------------------------------------- #
# Gradients: the closed forms of reference_grad.py, torch.autograd, finite differences
# --------------------------------------------------------------------------- #
ROW_CASE_OPTIONS = [
    pytest.param(registry.BY_NAME[name], dict(opts), id=f"{name}-{oid}")
    for name in ROW_LOSSES for oid, opts in registry.BY_NAME[name].options
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case, options", ROW_CASE_OPTIONS)
def test_gradient_matches_reference_closed_form(case, options, reduction):
    rng = np.random.default_rng(_seed("grad_ref", case.name, options, reduction))
    for dtype in (np.float64, np.float32):
        for shape in case.shapes(options):
            y, p = case.make_inputs(rng, shape, dtype, options, extremes=dtype == np.float64)
            sw = make_sample_weight(rng, case.per_sample_shape(shape, options), "full")
            value, grad = cyloss.value_and_grad(case.name, y, p, sample_weight=sw,
                                                reduction=reduction, **options)
            same = case.function(y, p, sample_weight=sw, reduction=reduction, **options)
            assert np.array_equal(np.asarray(value), np.asarray(same), equal_nan=True)
            assert grad.shape == p.shape and grad.dtype == p.dtype
            expected, magnitude, _ = reference_grad.gradient(
                case.name, y, p, sample_weight=sw, reduction=reduction, **options)
            tol = 1e-12 if dtype == np.float64 else 2e-6
            err = np.abs(grad.astype(np.float64) - expected)
            assert np.all((err <= tol * magnitude + 1e-300) | (np.isnan(expected)
                                                             & np.isnan(grad))), (
                case.name, options, reduction, np.max(err))


def _torch_rows(torch, name, options, y, p):
    """The per-sample loss in torch, written from Keras's and PyTorch's definitions."""
    F = torch.nn.functional
    if name == "kl_divergence":
        li, lt = options.get("log_input", False), options.get("log_target", False)
        if not li and not lt:
            yc, pc = torch.clamp(y, 1e-7, 1.0), torch.clamp(p, 1e-7, 1.0)
            return (yc * torch.log(yc / pc)).sum(-1)
        x = p if li else torch.log(torch.clamp(p, 1e-7, 1.0))
        return F.kl_div(x, y, reduction="none", log_target=lt).sum(-1)
    if name == "categorical_hinge":
        return _torch_hinge(torch, y, p)
    if name == "cosine_similarity":
        return -F.cosine_similarity(p, y, dim=-1, eps=1e-7)
    raise ValueError(name)


TORCH_GRAD_CASES = [
    ("kl_divergence", {}),
    ("kl_divergence", {"log_input": True}),
    ("kl_divergence", {"log_input": True, "log_target": True}),
    ("kl_divergence", {"log_target": True}),
    ("categorical_hinge", {}),
    ("cosine_similarity", {}),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, options", TORCH_GRAD_CASES,
                         ids=[f"{n}-{o}" for n, o in TORCH_GRAD_CASES])
def test_gradient_matches_torch_autograd(torch, name, options, reduction):
    rng = np.random.default_rng(_seed("torch_grad", name, options))
    y, p = registry.BY_NAME[name].make_inputs(rng, (30, 5), np.float64, options,
                                              extremes=False)
    sw = rng.uniform(0.2, 2.0, size=30)
    value, grad = cyloss.value_and_grad(name, y, p, sample_weight=sw, reduction=reduction,
                                        **options)
    tp = torch.tensor(p, requires_grad=True)
    per = _torch_rows(torch, name, options, torch.tensor(y), tp) * torch.tensor(sw)
    total = {"mean": per.sum() / 30, "weighted_mean": per.sum() / sw.sum(),
             "sum": per.sum(), "none": per.sum()}[reduction]
    total.backward()
    _close(grad, tp.grad.numpy(), rtol=1e-10)
    _close(np.sum(value), per.sum().item() if reduction == "none" else total.item(),
           rtol=1e-12)


@pytest.mark.parametrize("reduction", ["weighted_mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(11, 5), (3, 5, 4)], ids=["2d", "NCd"])
def test_nll_gradient_matches_torch_autograd(torch, shape, reduction):
    F = torch.nn.functional
    rng = np.random.default_rng(_seed("torch_nll_grad", shape, reduction))
    x = rng.normal(size=shape)
    labels = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    labels.reshape(-1)[::4] = -100
    cw = registry.CLASS_WEIGHT
    value, grad = cyloss.value_and_grad("nll", labels, x, axis=1, ignore_index=-100,
                                        class_weight=cw, reduction=reduction)
    xt = torch.tensor(x, requires_grad=True)
    out = F.nll_loss(xt, torch.tensor(labels), weight=torch.tensor(cw), ignore_index=-100,
                     reduction="mean" if reduction == "weighted_mean" else reduction)
    out.sum().backward()
    _close(grad, xt.grad.numpy(), rtol=1e-12)
    _close(np.sum(value), out.sum().item(), rtol=1e-12)


def central_difference(f, x, h=1e-5):
    fd = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        def at(delta):
            q = x.copy()
            q[idx] += delta
            return f(q)
        fd[idx] = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
    return fd


@pytest.mark.parametrize("name, options", [
    ("kl_divergence", {}), ("kl_divergence", {"log_input": True, "axis": 0}),
    ("kl_divergence", {"log_target": True}), ("nll", {"class_weight": registry.CLASS_WEIGHT}),
    ("categorical_hinge", {"axis": 1}), ("cosine_similarity", {"axis": 0}),
], ids=lambda v: str(v))
def test_gradient_matches_finite_differences(name, options):
    case = registry.BY_NAME[name]
    rng = np.random.default_rng(_seed("fd_rows", name, options))
    shape = case.shapes(options)[0]
    y, p = case.make_inputs(rng, shape, np.float64, options, extremes=False)
    sw = make_sample_weight(rng, case.per_sample_shape(shape, options), "full")
    _, grad = cyloss.value_and_grad(name, y, p, sample_weight=sw, reduction="weighted_mean",
                                    **options)
    fd = central_difference(lambda q: case.function(y, q, sample_weight=sw,
                                                    reduction="weighted_mean", **options), p)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- #
# Contract details
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ROW_LOSSES)
def test_grad_hess_is_not_implemented(name):
    case = registry.BY_NAME[name]
    y, p = case.make_inputs(np.random.default_rng(0), (4, 5), np.float64, {})
    with pytest.raises(NotImplementedError, match="grad_hess"):
        cyloss.grad_hess(name, y, p)


@pytest.mark.parametrize("option", ["log_input", "log_target"])
def test_kl_flags_are_checked(option):
    with pytest.raises(ValueError, match=option):
        cyloss.kl_divergence([[1.0]], [[1.0]], **{option: "yes"})
    with pytest.raises(ValueError, match=option):
        cyloss.KLDivergence(**{option: 2})


def test_names_and_aliases():
    assert cyloss.nll_loss is cyloss.nll
    assert cyloss.get("nll_loss") == cyloss.NegativeLogLikelihood()
    assert cyloss.get("KLDivergence", log_input=True) == cyloss.KLDivergence(log_input=True)
    for name in ROW_LOSSES:
        assert name in cyloss.__all__ and name in cyloss.LOSSES


@pytest.mark.parametrize("name", ROW_LOSSES)
def test_threads_and_layouts_give_the_same_bits(name):
    case = registry.BY_NAME[name]
    rng = np.random.default_rng(_seed("bits", name))
    y, p = case.make_inputs(rng, (40_000, 5), np.float64, {})
    for reduction in ("sum", "none"):
        runs = [cyloss.value_and_grad(name, y, p, reduction=reduction, n_threads=k)
                for k in (1, 2, 3)]
        for value, grad in runs[1:]:
            assert np.asarray(value).tobytes() == np.asarray(runs[0][0]).tobytes()
            assert grad.tobytes() == runs[0][1].tobytes()
    # the class axis read in place from a transposed layout: the same bits
    yt = y if name == "nll" else np.ascontiguousarray(y.T)
    moved = case.function(yt, np.ascontiguousarray(p.T), axis=0, reduction="sum")
    assert moved == case.function(y, p, reduction="sum")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROW_LOSSES)
def test_strided_and_fortran_layouts_give_the_same_bits(name, dtype):
    # Rows read through any stride: a strided view, a Fortran-ordered copy and a
    # negative-step view give the contiguous call's values and gradients to the bit.
    case = registry.BY_NAME[name]
    rng = np.random.default_rng(_seed("layouts", name))
    y, p = case.make_inputs(rng, (37, 5), dtype, {}, extremes=False)
    sw = rng.uniform(0.1, 2.0, size=37)
    layouts = [
        (y, p),
        (y if name == "nll" else np.asfortranarray(y), np.asfortranarray(p)),
        (np.repeat(y, 2, axis=0)[::2] if name == "nll" else
         np.repeat(y, 2, axis=1)[:, ::2], np.repeat(p, 2, axis=1)[:, ::2]),
        (y[::-1][::-1], p[::-1, ::-1][::-1, ::-1]),
    ]
    first = None
    for yy, pp in layouts:
        runs = [cyloss.value_and_grad(name, yy, pp, sample_weight=sw, reduction=r)
                for r in ("none", "weighted_mean")]
        bits = [(np.asarray(v).tobytes(), g.tobytes()) for v, g in runs]
        assert runs[0][1].dtype == dtype
        if first is None:
            first = bits
        assert bits == first


@pytest.mark.parametrize("name", ["kl_divergence", "categorical_hinge", "cosine_similarity"])
def test_nan_propagates(name):
    y = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    p = np.array([[0.3, np.nan, 0.4], [0.2, 0.3, 0.5]])
    out = getattr(cyloss, name)(y, p, reduction="none")
    assert np.isnan(out[0]) and np.isfinite(out[1])
    _, g = cyloss.value_and_grad(name, y, p, reduction="sum")
    assert np.isnan(g[0]).any() and np.isfinite(g[1]).all()


# --------------------------------------------------------------------------- #
# Hostile values: specials among ordinary ones, every dtype and size; never a crash,
# and the reference's value wherever the reference itself is meaningful
# --------------------------------------------------------------------------- #
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 1e300, -1e300, 5e-324, 2.5e-310,
            1e-8, 1.5, -0.5]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["kl_divergence", "categorical_hinge", "cosine_similarity"]),
       seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 9), classes=st.integers(1, 6),
       dtype=st.sampled_from([np.float64, np.float32, np.float16]),
       log_input=st.booleans(), log_target=st.booleans(),
       reduction=st.sampled_from(REDUCTIONS))
def test_hostile_values(name, seed, rows, classes, dtype, log_input, log_target, reduction):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(rows, classes))
    p = rng.normal(size=(rows, classes))
    for a in (y, p):
        mask = rng.random(a.shape) < 0.3
        a[mask] = rng.choice(SPECIALS, size=int(mask.sum()))
    options = ({"log_input": log_input, "log_target": log_target}
               if name == "kl_divergence" else {})
    with np.errstate(all="ignore"):
        y, p = y.astype(dtype), p.astype(dtype)
        value, grad = cyloss.value_and_grad(name, y, p, reduction=reduction, **options)
    assert grad.shape == p.shape
    assert grad.dtype == (np.float64 if dtype == np.float64 else np.float32)
    if reduction == "none":
        assert value.shape == (rows,)
    else:
        assert type(value) is float
    if name == "cosine_similarity":
        # the reference squares without rescaling: compare rows whose squares are finite
        with np.errstate(all="ignore"):
            y64, p64 = y.astype(np.float64), p.astype(np.float64)
            fine = (np.isfinite(np.sum(y64 * y64, axis=1))
                    & np.isfinite(np.sum(p64 * p64, axis=1)))
        y, p = y[fine], p[fine]
    none = getattr(cyloss, name)(y, p, reduction="none", **options)
    with np.errstate(all="ignore"):
        expected = getattr(reference, name)(y.astype(np.float64), p.astype(np.float64),
                                            reduction="none", **options)
    if dtype == np.float64:
        np.testing.assert_allclose(none, expected, rtol=1e-9, atol=1e-300)
    else:
        assert np.array_equal(np.isnan(none), np.isnan(expected.astype(np.float32)))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 9), classes=st.integers(1, 6),
       dtype=st.sampled_from([np.float64, np.float32]),
       ignore_index=st.sampled_from([None, -1, 0, 7]),
       weighted=st.booleans(), reduction=st.sampled_from(REDUCTIONS))
def test_hostile_nll(seed, rows, classes, dtype, ignore_index, weighted, reduction):
    rng = np.random.default_rng(seed)
    labels = rng.integers(-2, classes + 2, size=rows)
    x = rng.normal(size=(rows, classes))
    mask = rng.random(x.shape) < 0.3
    x[mask] = rng.choice(SPECIALS, size=int(mask.sum()))
    with np.errstate(all="ignore"):
        x = x.astype(dtype)
    cw = rng.uniform(0, 2, size=classes) if weighted else None
    bad = [(i, int(v)) for i, v in enumerate(labels)
           if v != ignore_index and not 0 <= v < classes]
    kw = dict(ignore_index=ignore_index, class_weight=cw, reduction=reduction)
    if bad:
        i, v = bad[0]
        with pytest.raises(ValueError, match=rf"label {v} at index \({i},\)"):
            cyloss.value_and_grad("nll", labels, x, **kw)
        return
    value, grad = cyloss.value_and_grad("nll", labels, x, **kw)
    expected = reference.nll(labels, x.astype(np.float64), **kw)
    np.testing.assert_allclose(value, expected, rtol=1e-6 if dtype == np.float32 else 1e-12,
                               atol=1e-300)
    g_ref = reference_grad.gradient("nll", labels, x, **kw)[0]
    np.testing.assert_allclose(grad, g_ref, rtol=1e-6, atol=1e-300)


# --------------------------------------------------------------------------- #
# The contiguous vector paths (categorical hinge's maximum, dice/tversky's sums) against
# the strided loops, to the bit, on rows built to hit their edge cases: ties of the
# maximum (first index wins for the gradient), zeros of both signs, NaN (the scalar loop
# keeps the first NaN) and infinities, at lengths around the eight-lane blocks
# --------------------------------------------------------------------------- #
def _strided_copy(a):
    """The same values through a view with a two-item stride (NaN in the gaps)."""
    b = np.full(a.shape[:-1] + (2 * a.shape[-1],), np.nan, a.dtype)
    b[..., ::2] = a
    return b[..., ::2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [1, 7, 8, 9, 16, 17, 40])
@pytest.mark.parametrize("special", ["none", "ties", "zeros", "nan", "inf"])
def test_categorical_hinge_vector_maximum_matches_strided_loop(dtype, C, special):
    rng = np.random.default_rng(C)
    n = 12
    y = np.eye(C)[rng.integers(0, C, n)]
    y[::3] = 2.0 * y[::3] - 1.0
    x = rng.normal(size=(n, C)) * 2.0
    if special == "ties":
        x = np.round(x)
    elif special == "zeros":
        x[rng.random(x.shape) < 0.4] = 0.0
        x[rng.random(x.shape) < 0.4] = -0.0
        x[:, 0] = -1.0
    elif special == "nan":
        x[rng.random(x.shape) < 0.15] = np.nan
    elif special == "inf":
        x[rng.random(x.shape) < 0.15] = np.inf
        x[rng.random(x.shape) < 0.15] = -np.inf
    y, x = y.astype(dtype), x.astype(dtype)
    with np.errstate(all="ignore"):
        value, grad = cyloss.value_and_grad("categorical_hinge", y, x, reduction="none")
        value_s, grad_s = cyloss.value_and_grad("categorical_hinge", _strided_copy(y),
                                                _strided_copy(x), reduction="none")
        y64, x64 = y.astype(np.float64), x.astype(np.float64)
        d = (1.0 - y64) * x64
        t = d.max(axis=1) - (y64 * x64).sum(axis=1) + 1.0
        expected = np.where(np.isnan(t), np.nan, np.maximum(t, 0.0))
    assert value.tobytes() == value_s.tobytes()
    assert grad.tobytes() == grad_s.tobytes()
    np.testing.assert_allclose(value, expected, rtol=1e-6 if dtype == np.float32 else 1e-15)
    # d/dx_k = (1 - y_k) [k = first maximum] - y_k where the hinge is active
    for i in np.flatnonzero(np.isfinite(expected) & (expected > 0)):
        k = int(np.argmax(d[i]))
        g_ref = -y64[i].copy()
        g_ref[k] += 1.0 - y64[i, k]
        np.testing.assert_array_equal(grad[i], g_ref.astype(dtype))  # "none": unscaled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [1, 7, 8, 9, 63, 64, 65, 1000])
@pytest.mark.parametrize("name", ["dice", "tversky"])
def test_overlap_vector_sums_match_strided_loop(dtype, C, name):
    rng = np.random.default_rng(C)
    y = (rng.random((3, C)) < 0.4).astype(dtype)
    p = rng.random((3, C)).astype(dtype)
    p[0, rng.random(C) < 0.2] = np.nan
    kw = dict(axis=1, reduction="none")
    value, grad = cyloss.value_and_grad(name, y, p, **kw)
    value_s, grad_s = cyloss.value_and_grad(name, _strided_copy(y), _strided_copy(p), **kw)
    assert value.tobytes() == value_s.tobytes()
    assert grad.tobytes() == grad_s.tobytes()
    assert np.isnan(value[0]) == np.isnan(p[0]).any()
    expected = getattr(reference, name)(y[1:].astype(np.float64), p[1:].astype(np.float64),
                                        axis=1, reduction="none")
    np.testing.assert_allclose(value[1:], expected, rtol=1e-6 if dtype == np.float32 else 1e-12)
