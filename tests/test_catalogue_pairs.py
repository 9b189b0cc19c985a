"""Issue #14's pair losses against PyTorch (float64) and Keras 3 (NumPy backend, float64):
poisson_nll, hinge_embedding, dice, tversky and margin_ranking.

The two-array losses are also in tests/registry.py (references in tests/reference.py,
gradients in tests/reference_grad.py), which the registry-driven families of
test_values.py and test_properties.py run; this module adds what those cannot reach:
PyTorch and Keras themselves, extreme inputs, gradients against torch.autograd, the
three-input margin_ranking, errors, and the classes. Expected values never come from
cyloss.
"""

from __future__ import annotations

import math
import os
import pickle
import zlib

import numpy as np
import pytest

import cyloss
import reference
import reference_grad
from test_values import _keras_backend, _knp

REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
RTOL = 1e-9


def _rng(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def _close(actual, expected, rtol=RTOL, atol=1e-14):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=atol)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def keras():
    # As test_values' fixture: Keras 3 computing in float64 on the NumPy backend.
    os.environ["KERAS_BACKEND"] = _keras_backend()
    keras = pytest.importorskip("keras")
    from keras.src.backend.common import dtypes as keras_dtypes

    demotion = keras_dtypes.BIT64_TO_BIT32_DTYPE
    saved = dict(demotion)
    demotion["float64"] = "float64"
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield keras
    keras.config.set_floatx(previous)
    demotion.clear()
    demotion.update(saved)


# --------------------------------------------------------------------------- #
# poisson_nll and hinge_embedding against torch
# --------------------------------------------------------------------------- #
POISSON_OPTIONS = [
    dict(log_input=li, full=full, **({"eps": eps} if eps is not None else {}))
    for li in (True, False) for full in (False, True) for eps in (None, 1e-3, 0.0)
    if li is False or eps is None
]


def _poisson_inputs(rng, shape, log_input):
    y = rng.integers(0, 15, size=shape).astype(np.float64)
    y = np.where(rng.random(shape) < 0.2, rng.uniform(0, 8, size=shape), y)
    if log_input:
        x = rng.normal(0, 2.0, size=shape)
        # extremes: large log-rates, a huge count against a tiny rate, exact 1 targets
        x.reshape(-1)[:4] = [30.0, -30.0, 0.0, 700.0]
        y.reshape(-1)[:4] = [0.0, 1e6, 1.0, 3.0]
    else:
        x = rng.uniform(0.0, 10.0, size=shape)
        x.reshape(-1)[:4] = [1e-300, 1e8, 0.5, 2.0]
        y.reshape(-1)[:4] = [2.0, 1e6, 1.0, 0.0]
    return y, x


@pytest.mark.parametrize("options", POISSON_OPTIONS, ids=str)
def test_poisson_nll_matches_torch(torch, options):
    F = torch.nn.functional
    rng = _rng("poisson", options)
    for shape in ((40,), (8, 5)):
        y, x = _poisson_inputs(rng, shape, options["log_input"])
        t_kw = dict(options)
        if "eps" not in t_kw:
            t_kw["eps"] = 1e-8
        t = F.poisson_nll_loss(torch.tensor(x), torch.tensor(y), reduction="none",
                               **t_kw).numpy()
        per_sample = t.mean(-1) if len(shape) == 2 else t
        _close(cyloss.poisson_nll(y, x, **options, reduction="none"), per_sample)
        mean_t = F.poisson_nll_loss(torch.tensor(x), torch.tensor(y), reduction="mean",
                                    **t_kw).item()
        _close(cyloss.poisson_nll(y, x, **options), mean_t)
        if len(shape) == 1:
            sum_t = F.poisson_nll_loss(torch.tensor(x), torch.tensor(y), reduction="sum",
                                       **t_kw).item()
            _close(cyloss.poisson_nll(y, x, **options, reduction="sum"), sum_t)


def test_poisson_nll_zero_target_against_infinite_log_is_zero(torch):
    # cyloss: 0 * (-inf) := 0 (the limit); PyTorch gives NaN there (documented).
    assert cyloss.poisson_nll([0.0], [-np.inf], reduction="sum") == 0.0
    assert cyloss.poisson_nll([0.0], [0.0], log_input=False, eps=0.0, reduction="sum") == 0.0
    assert math.isnan(cyloss.poisson_nll([np.nan], [1.0]))
    assert math.isnan(cyloss.poisson_nll([2.0], [-1.0], log_input=False))  # log of < 0
    # full: Stirling's term only above 1, and NaN targets propagate
    assert cyloss.poisson_nll([1.0], [0.0], full=True) == 1.0
    assert math.isnan(cyloss.poisson_nll([np.nan], [0.0], full=True))


HINGE_MARGINS = (1.0, 0.0, 2.5, -0.5)


@pytest.mark.parametrize("margin", HINGE_MARGINS)
def test_hinge_embedding_matches_torch(torch, margin):
    F = torch.nn.functional
    rng = _rng("hinge", margin)
    for shape in ((50,), (10, 4)):
        y = rng.choice([-1.0, 1.0], size=shape)
        x = margin + rng.normal(0, 2.0, size=shape)
        x.reshape(-1)[:3] = [margin, 1e300, -1e-300]   # no cancelling huge terms
        t = F.hinge_embedding_loss(torch.tensor(x), torch.tensor(y), margin=margin,
                                   reduction="none").numpy()
        per_sample = t.mean(-1) if len(shape) == 2 else t
        _close(cyloss.hinge_embedding(y, x, margin=margin, reduction="none"), per_sample)
        mean_t = F.hinge_embedding_loss(torch.tensor(x), torch.tensor(y), margin=margin).item()
        _close(cyloss.hinge_embedding(y, x, margin=margin), mean_t)


def test_hinge_embedding_other_labels_follow_torch(torch):
    # Labels other than +-1 are not an error: PyTorch's formula gives both terms.
    y = np.array([0.0, 2.0, 0.5, 1.0, -1.0, np.nan])
    x = np.array([0.25, 3.0, -2.0, 0.5, 0.5, 0.5])
    t = torch.nn.functional.hinge_embedding_loss(torch.tensor(x), torch.tensor(y),
                                                 reduction="none").numpy()
    _close(cyloss.hinge_embedding(y, x, reduction="none"), t)
    # and integer labels are accepted as they are
    _close(cyloss.hinge_embedding(np.array([1, -1]), [0.5, 0.5], reduction="none"),
           [0.5, 0.5])


# --------------------------------------------------------------------------- #
# Gradients of the two-array losses against torch.autograd and reference_grad
# --------------------------------------------------------------------------- #
def _torch_grad(torch, fn, x):
    xt = torch.tensor(x, requires_grad=True)
    value = fn(xt)
    total = value.sum() if value.dim() else value
    total.backward()
    return value.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", POISSON_OPTIONS, ids=str)
def test_poisson_nll_gradient_matches_torch(torch, options, reduction):
    F = torch.nn.functional
    rng = _rng("poisson_grad", options, reduction)
    y, x = _poisson_inputs(rng, (30,), options["log_input"])
    x[:4] = np.abs(x[:4]) % 5 + 0.5     # away from overflow: gradients stay finite
    t_kw = dict(options)
    t_kw.setdefault("eps", 1e-8)
    t_red = {"weighted_mean": "mean"}.get(reduction, reduction)
    _, g_t = _torch_grad(torch, lambda xt: F.poisson_nll_loss(
        xt, torch.tensor(y), reduction=t_red, **t_kw), x)
    value, g = cyloss.PoissonNLL(**options, reduction=reduction).value_and_grad(y, x)
    _close(g, g_t, 1e-9, 1e-15)
    _close(value, cyloss.poisson_nll(y, x, **options, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", HINGE_MARGINS)
def test_hinge_embedding_gradient_matches_torch(torch, margin, reduction):
    F = torch.nn.functional
    rng = _rng("hinge_grad", margin, reduction)
    y = rng.choice([-1.0, 1.0], size=(30,))
    x = margin + rng.normal(0, 2.0, size=(30,))
    x[:2] = margin           # the kink: torch.clamp_min passes the gradient there
    y[:2] = -1.0
    t_red = {"weighted_mean": "mean"}.get(reduction, reduction)
    _, g_t = _torch_grad(torch, lambda xt: F.hinge_embedding_loss(
        xt, torch.tensor(y), margin=margin, reduction=t_red), x)
    _, g = cyloss.HingeEmbedding(margin=margin, reduction=reduction).value_and_grad(y, x)
    _close(g, g_t, 1e-12, 0)


def _torch_overlap(torch, name, y, p, axis, alpha=0.5, beta=0.5):
    """Keras 3's dice / tversky formulas written in torch, for autograd."""
    dims = tuple(range(p.dim())) if axis is None else axis
    yt = torch.tensor(y)
    inter = (yt * p).sum(dim=dims)
    if name == "dice":
        return 1 - 2.0 * inter / (yt.sum(dim=dims) + p.sum(dim=dims) + 1e-7)
    fp = ((1 - p) * yt).sum(dim=dims)
    fn = (p * (1 - yt)).sum(dim=dims)
    return 1 - inter / (inter + fp * alpha + fn * beta + 1e-7)


OVERLAP_GRAD_CASES = [
    ("dice", {}, None), ("dice", {}, (1, 2)), ("dice", {}, (0,)),
    ("tversky", {}, None), ("tversky", {"alpha": 0.3, "beta": 0.7}, (1, 2)),
    ("tversky", {"alpha": 2.0, "beta": 0.1}, (2,)),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["no_sw", "sw"])
@pytest.mark.parametrize("name, options, axis", OVERLAP_GRAD_CASES, ids=str)
def test_overlap_gradient_matches_torch_and_reference(torch, name, options, axis,
                                                      weighted, reduction):
    rng = _rng("overlap_grad", name, options, axis, weighted, reduction)
    y = np.round(rng.random((4, 3, 5)))
    p = rng.uniform(0.0, 1.0, size=(4, 3, 5))
    cls = {"dice": cyloss.Dice, "tversky": cyloss.Tversky}[name]
    loss = cls(**options, axis=axis, reduction=reduction)
    per_sample = reference.per_sample_shape(name, p.shape, axis)
    sw = rng.uniform(0.2, 2.0, size=per_sample) if weighted else None
    value, g = loss.value_and_grad(y, p, sample_weight=sw)
    assert g.shape == p.shape and g.dtype == np.float64

    def torch_value(pt):
        per = _torch_overlap(torch, name, y, pt, axis, **options)
        w = torch.ones_like(per) if sw is None else torch.tensor(np.asarray(sw)).reshape(
            per.shape)
        if reduction == "none":
            return per * w
        if reduction == "sum":
            return (per * w).sum()
        if reduction == "mean":
            return (per * w).sum() / per.numel()
        return (per * w).sum() / w.sum()

    v_t, g_t = _torch_grad(torch, torch_value, p)
    _close(value, v_t)
    _close(g, g_t, 1e-9, 1e-15)
    g_ref, _, _ = reference_grad.gradient(name, y, p, sample_weight=sw,
                                          reduction=reduction, axis=axis, **options)
    _close(g, g_ref, 1e-9, 1e-15)
    # grad_out receives the gradient for every axis layout
    out = np.empty_like(p)
    _, g2 = loss.value_and_grad(y, p, sample_weight=sw, grad_out=out)
    assert g2 is out
    np.testing.assert_array_equal(out, g)


@pytest.mark.parametrize("name, options", [("poisson_nll", {}),
                                           ("poisson_nll", {"log_input": False}),
                                           ("hinge_embedding", {"margin": 0.5})], ids=str)
def test_elementwise_pairs_gradient_matches_reference_grad(name, options):
    rng = _rng("refgrad", name, options)
    case_inputs = {
        "poisson_nll": lambda: (rng.integers(0, 9, (6, 4)).astype(float),
                                rng.uniform(0.1, 3.0, (6, 4))),
        "hinge_embedding": lambda: (rng.choice([-1.0, 1.0], (6, 4)),
                                    rng.normal(0.5, 1.0, (6, 4))),
    }
    y, x = case_inputs[name]()
    sw = rng.uniform(0.1, 2.0, 6)
    for reduction in REDUCTIONS:
        _, g = cyloss.value_and_grad(name, y, x, sample_weight=sw, reduction=reduction,
                                     **options)
        g_ref, _, _ = reference_grad.gradient(name, y, x, sample_weight=sw,
                                              reduction=reduction, **options)
        _close(g, g_ref, 1e-12, 1e-15)


def test_elementwise_pairs_grad_hess():
    # Hessians: e^x (log input), y / (x + eps)^2 (rates); hinge embedding: 0.
    y, x = np.array([2.0, 0.0, 5.0]), np.array([0.5, -1.0, 2.0])
    g, h = cyloss.grad_hess("poisson_nll", y, x)
    _close(g, np.exp(x) - y, 1e-14)
    _close(h, np.exp(x), 1e-14)
    g, h = cyloss.grad_hess("poisson_nll", y, x + 2.0, log_input=False, eps=0.0)
    _close(g, 1 - y / (x + 2.0), 1e-14)
    _close(h, y / (x + 2.0) ** 2, 1e-14)
    g, h = cyloss.grad_hess("hinge_embedding", [1.0, -1.0, -1.0], [0.5, 0.5, 2.0])
    np.testing.assert_array_equal(g, [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(h, [0.0, 0.0, 0.0])
    for loss in (cyloss.Dice(), cyloss.Tversky()):
        with pytest.raises(NotImplementedError):
            loss.grad_hess([[1.0, 0.0]], [[0.5, 0.5]])


# --------------------------------------------------------------------------- #
# dice and tversky against Keras 3
# --------------------------------------------------------------------------- #
KERAS_OVERLAP = [
    ("dice", {}, None), ("dice", {}, (1, 2, 3)), ("dice", {}, -1), ("dice", {}, (0, 2)),
    ("tversky", {}, None), ("tversky", {"alpha": 0.3, "beta": 0.7}, (1, 2, 3)),
    ("tversky", {"alpha": 0.9, "beta": 0.1}, -1),
]


@pytest.mark.parametrize("name, options, axis", KERAS_OVERLAP, ids=str)
def test_overlap_matches_keras(keras, name, options, axis):
    rng = _rng("keras_overlap", name, options, axis)
    y = np.round(rng.random((3, 4, 4, 2)))
    p = rng.uniform(0, 1, size=(3, 4, 4, 2))
    p[0, 0] = [0.0, 1.0]
    fn = getattr(cyloss, name)
    expected = _knp(keras, getattr(keras.losses, name)(y, p, axis=axis, **options))
    actual = fn(y, p, axis=axis, **options, reduction="none")
    assert actual.shape == expected.shape
    _close(actual, expected, RTOL, 1e-15)
    # the classes: Keras's reductions over the per-sample losses, with sample weights
    per_sample = expected.shape
    for keras_reduction in ("sum_over_batch_size", "sum", "mean_with_sample_weight"):
        sw = rng.uniform(0.1, 2.0, size=per_sample) if per_sample else None
        k_cls = getattr(keras.losses, name.capitalize())
        k = k_cls(axis=axis, reduction=keras_reduction, dtype="float64", **options)
        expected_value = float(_knp(keras, k(y, p, sample_weight=sw)))
        c = getattr(cyloss, name.capitalize())(axis=axis, reduction=keras_reduction,
                                               **options)
        actual_value = c(y, p, sample_weight=sw)
        assert type(actual_value) is float
        assert math.isclose(actual_value, expected_value, rel_tol=RTOL), (
            keras_reduction, actual_value, expected_value)


def test_dice_keras_docstring_example():
    # keras.losses.dice's documented example (float32 figures there)
    y_true = [[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]]
    y_pred = [[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]]
    per = cyloss.dice(y_true, y_pred, axis=(1, 2, 3), reduction="none")
    _close(per, [0.5, 0.75757575], 1e-7)
    assert abs(cyloss.dice(y_true, y_pred) - 0.6164384) < 1e-7
    out = cyloss.Dice(reduction=None)(y_true, y_pred)
    assert isinstance(out, np.ndarray) and out.shape == ()


def test_overlap_axis_none_is_one_sample():
    y, p = np.ones((3, 2)), np.full((3, 2), 0.5)
    assert cyloss.dice(y, p, reduction="none").shape == ()
    expected = 1 - 2 * 3.0 / (6.0 + 3.0 + 1e-7)
    assert math.isclose(cyloss.dice(y, p, sample_weight=2.0, reduction="sum"),
                        2 * expected, rel_tol=1e-14)
    with pytest.raises(ValueError, match="sample_weight"):
        cyloss.dice(y, p, sample_weight=[1.0, 2.0, 3.0])
    # empty rows: nothing to overlap, 1 - 0 / eps = 1 (as Keras)
    assert cyloss.dice(np.zeros((2, 0)), np.zeros((2, 0)), axis=-1, reduction="sum") == 2.0


def test_overlap_strided_and_permuted_layouts():
    rng = _rng("layouts")
    y = np.round(rng.random((6, 5, 4)))
    p = rng.random((6, 5, 4))
    for axis in (None, 0, 1, (0, 2), (2, 0), -1):
        expected = reference.tversky(y, p, alpha=0.2, beta=0.9, axis=axis, reduction="none")
        for yy, pp in ((y, p), (np.asfortranarray(y), np.asfortranarray(p)),
                       (y[:, ::-1], p[:, ::-1])):
            if yy is not y:
                expected = reference.tversky(yy, pp, alpha=0.2, beta=0.9, axis=axis,
                                             reduction="none")
            _close(cyloss.tversky(yy, pp, alpha=0.2, beta=0.9, axis=axis, reduction="none"),
                   expected)


# --------------------------------------------------------------------------- #
# margin_ranking: three arrays
# --------------------------------------------------------------------------- #
def _ranking_reference(y, a, b, margin, sample_weight=None, reduction="mean"):
    y, a, b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (y, a, b)))
    with np.errstate(invalid="ignore"):
        per = np.maximum(-y * (a - b) + margin, 0.0)
    if per.ndim >= 2:
        per = per.mean(axis=-1)
    return reference.reduce_losses(per, sample_weight, reduction)


def _ranking_inputs(rng, shape, margin=0.0):
    y = rng.choice([-1.0, 1.0], size=shape)
    a = rng.normal(0, 2.0, size=shape)
    b = a + y * margin + rng.normal(0, 1.0, size=shape)
    b.reshape(-1)[:2] = (a + y * margin).reshape(-1)[:2]   # on the kink
    return y, a, b


MARGINS = (0.0, 0.5, -1.0, 3.0)


@pytest.mark.parametrize("margin", MARGINS)
def test_margin_ranking_matches_torch(torch, margin):
    F = torch.nn.functional
    rng = _rng("ranking", margin)
    for shape in ((40,), (6, 5)):
        y, a, b = _ranking_inputs(rng, shape, margin)
        a.reshape(-1)[2:4] = [1e300, -1e300]
        tt = [torch.tensor(v) for v in (a, b, y)]
        t = F.margin_ranking_loss(*tt, margin=margin, reduction="none").numpy()
        per_sample = t.mean(-1) if len(shape) == 2 else t
        _close(cyloss.margin_ranking(y, a, b, margin=margin, reduction="none"), per_sample)
        _close(cyloss.margin_ranking(y, a, b, margin=margin),
               F.margin_ranking_loss(*tt, margin=margin).item())
        if len(shape) == 1:
            _close(cyloss.margin_ranking(y, a, b, margin=margin, reduction="sum"),
                   F.margin_ranking_loss(*tt, margin=margin, reduction="sum").item())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sw_kind", [None, "full", "column", "scalar"])
def test_margin_ranking_sample_weight_and_reductions(reduction, sw_kind):
    rng = _rng("ranking_sw", reduction, sw_kind)
    for shape in ((9,), (6, 4), (2, 3, 4)):
        y, a, b = _ranking_inputs(rng, shape, 0.3)
        per_sample = shape[:-1] if len(shape) >= 2 else shape
        sw = {None: None, "full": rng.uniform(0, 2, per_sample),
              "column": rng.uniform(0, 2, per_sample + (1,)), "scalar": 2.5}[sw_kind]
        expected = _ranking_reference(y, a, b, 0.3, sw, reduction)
        actual = cyloss.margin_ranking(y, a, b, margin=0.3, sample_weight=sw,
                                       reduction=reduction)
        if reduction == "none":
            assert actual.shape == per_sample and actual.dtype == np.float64
        else:
            assert type(actual) is float
        _close(actual, expected)
        by_class = cyloss.MarginRanking(margin=0.3, reduction=reduction)(y, a, b, sw)
        np.testing.assert_array_equal(by_class, actual)


def test_margin_ranking_target_broadcast_and_squeeze():
    rng = _rng("ranking_bcast")
    y, a, b = _ranking_inputs(rng, (7, 3))
    row_labels = y[:, :1]
    expected = _ranking_reference(row_labels, a, b, 0.2, reduction="none")
    _close(cyloss.margin_ranking(row_labels, a, b, margin=0.2, reduction="none"), expected)
    _close(cyloss.margin_ranking(1.0, a, b, reduction="none"),
           _ranking_reference(1.0, a, b, 0.0, reduction="none"))
    # Keras's trailing axis of 1: (n, 1) inputs against (n,) labels are n samples
    y1, a1, b1 = y[:, 0], a[:, :1], b[:, :1]
    out = cyloss.margin_ranking(y1, a1, b1, reduction="none")
    assert out.shape == (7,)
    _close(out, _ranking_reference(y1, a1[:, 0], b1[:, 0], 0.0, reduction="none"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", MARGINS)
def test_margin_ranking_gradients_match_torch(torch, margin, reduction):
    rng = _rng("ranking_grad", margin, reduction)
    y, a, b = _ranking_inputs(rng, (5, 4), margin)
    sw = rng.uniform(0.1, 2.0, size=5)
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    per = torch.nn.functional.margin_ranking_loss(at, bt, torch.tensor(y), margin=margin,
                                                  reduction="none").mean(-1)
    w = torch.tensor(sw)
    total = {"none": (per * w).sum(), "sum": (per * w).sum(),
             "mean": (per * w).sum() / 5, "weighted_mean": (per * w).sum() / w.sum()}
    total[reduction].backward()
    value, (g1, g2) = cyloss.MarginRanking(margin=margin, reduction=reduction
                                           ).value_and_grad(y, a, b, sample_weight=sw)
    _close(value, cyloss.margin_ranking(y, a, b, margin=margin, sample_weight=sw,
                                        reduction=reduction))
    _close(g1, at.grad.numpy(), 1e-12, 1e-15)
    _close(g2, bt.grad.numpy(), 1e-12, 1e-15)
    g1b, g2b = cyloss.MarginRanking(margin=margin, reduction=reduction).grad(
        y, a, b, sample_weight=sw)
    np.testing.assert_array_equal(g1b, g1)
    np.testing.assert_array_equal(g2b, g2)


def test_margin_ranking_float32_and_empty():
    rng = _rng("ranking32")
    y, a, b = _ranking_inputs(rng, (50, 3))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    out = cyloss.margin_ranking(y, a32, b32, reduction="none")
    assert out.dtype == np.float32
    expected = _ranking_reference(y, a32, b32, 0.0, reduction="none")
    _close(out, expected, 2e-6, 1e-6 * float(np.max(np.abs(expected))))
    assert math.isclose(cyloss.margin_ranking(y, a32, b32),
                        _ranking_reference(y, a32, b32, 0.0), rel_tol=2e-6)
    # float32 with a float64 input computes in float64
    assert cyloss.margin_ranking(y, a32, b, reduction="none").dtype == np.float64
    assert cyloss.margin_ranking(y, a.astype(np.float16), b32,
                                 reduction="none").dtype == np.float32
    for reduction in ("mean", "sum", "weighted_mean"):
        assert cyloss.margin_ranking([], np.zeros(0), np.zeros(0), reduction=reduction) == 0.0
    assert cyloss.margin_ranking([], np.zeros(0), np.zeros(0), reduction="none").shape == (0,)
    assert math.isnan(cyloss.margin_ranking(1.0, [np.nan], [0.0]))


# --------------------------------------------------------------------------- #
# Threads: bitwise identical results for every n_threads
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thread_counts_bitwise(dtype):
    rng = _rng("threads", np.dtype(dtype).name)
    n = 60_000
    y, a, b = (v.astype(dtype) for v in _ranking_inputs(rng, (n, 4), 0.5))
    yo = np.round(rng.random((n, 4))).astype(dtype)
    sw = rng.uniform(0, 2, n)
    calls = [
        lambda k, r: cyloss.margin_ranking(y, a, b, margin=0.5, sample_weight=sw,
                                           reduction=r, n_threads=k),
        lambda k, r: cyloss.dice(yo, a * 0 + np.abs(b) % 1, axis=-1, sample_weight=sw,
                                 reduction=r, n_threads=k),
        lambda k, r: cyloss.tversky(yo, np.abs(b) % 1, axis=-1, alpha=0.3, beta=0.7,
                                    reduction=r, n_threads=k),
        lambda k, r: cyloss.poisson_nll(np.abs(y), a, full=True, reduction=r, n_threads=k),
        lambda k, r: cyloss.hinge_embedding(y, a, sample_weight=sw, reduction=r,
                                            n_threads=k),
    ]
    for call in calls:
        for reduction in REDUCTIONS:
            first = call(1, reduction)
            for k in (2, 3, 7, None, -1):
                other = call(k, reduction)
                assert np.asarray(other).tobytes() == np.asarray(first).tobytes(), (k,)
    g1 = cyloss.MarginRanking(n_threads=1).grad(y, a, b)
    g4 = cyloss.MarginRanking(n_threads=4).grad(y, a, b)
    assert g1[0].tobytes() == g4[0].tobytes() and g1[1].tobytes() == g4[1].tobytes()
    d1 = cyloss.Dice(axis=-1, n_threads=1).grad(yo, np.abs(b) % 1)
    d4 = cyloss.Dice(axis=-1, n_threads=4).grad(yo, np.abs(b) % 1)
    assert d1.tobytes() == d4.tobytes()


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("call, match", [
    (lambda: cyloss.poisson_nll([1.0], [1.0], eps=-1.0), "eps"),
    (lambda: cyloss.poisson_nll([1.0], [1.0], eps=float("inf")), "eps"),
    (lambda: cyloss.poisson_nll([1.0], [1.0], log_input="yes"), "log_input"),
    (lambda: cyloss.poisson_nll([1.0], [1.0], full=2), "full"),
    (lambda: cyloss.poisson_nll([1.0, 2.0], [1.0]), "shape"),
    (lambda: cyloss.hinge_embedding([1.0], [1.0], margin=float("nan")), "margin"),
    (lambda: cyloss.hinge_embedding([1.0], [1.0], margin="1"), "margin"),
    (lambda: cyloss.dice([[1.0]], [[1.0, 0.0]]), "same shape"),
    (lambda: cyloss.dice([[1.0]], [[1.0]], axis=2), "out of range"),
    (lambda: cyloss.dice([[1.0]], [[1.0]], axis=(0, -2)), "repeats"),
    (lambda: cyloss.dice([[1.0]], [[1.0]], axis=1.5), "axis"),
    (lambda: cyloss.dice([[1.0]], [[1.0]], axis=(0, "a")), "axis"),
    (lambda: cyloss.tversky([[1.0]], [[1.0]], alpha=float("inf")), "alpha"),
    (lambda: cyloss.tversky([[1.0]], [[1.0]], beta=None), "beta"),
    (lambda: cyloss.dice([[1.0]], [[1.0]], axis=-1, sample_weight=[1.0, 2.0]),
     "sample_weight"),
    (lambda: cyloss.dice([[1.0]], [[1.0]], reduction="avg"), "reduction"),
    (lambda: cyloss.dice([[1.0]], [[1.0]], n_threads=0), "n_threads"),
    (lambda: cyloss.margin_ranking([1.0], [1.0, 2.0], [1.0]), "input1 and input2"),
    (lambda: cyloss.margin_ranking([1.0, 1.0, 1.0], [1.0, 2.0], [1.0, 0.0]), "y_true"),
    (lambda: cyloss.margin_ranking([1.0], [1.0], [1.0], margin=float("inf")), "margin"),
    (lambda: cyloss.margin_ranking([1.0], [1.0], [1.0], sample_weight=[1.0, 2.0]),
     "sample_weight"),
    (lambda: cyloss.margin_ranking([1.0], [1.0], [1.0], reduction="avg"), "reduction"),
    (lambda: cyloss.PoissonNLL(eps=-1), "eps"),
    (lambda: cyloss.Tversky(axis="x"), "axis"),
    (lambda: cyloss.MarginRanking(margin=None), "margin"),
])
def test_bad_options_and_shapes_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call", [
    lambda: cyloss.poisson_nll(["a"], [1.0]),
    lambda: cyloss.dice([[1.0]], [["x"]]),
    lambda: cyloss.tversky([[1j]], [[1.0]]),
    lambda: cyloss.margin_ranking([1.0], ["a"], [1.0]),
    lambda: cyloss.margin_ranking([1.0], [1.0], [object()]),
    lambda: cyloss.margin_ranking(["a"], [1.0], [1.0]),
])
def test_non_numeric_input_raises_type_error(call):
    with pytest.raises(TypeError):
        call()


# --------------------------------------------------------------------------- #
# Classes: repr, config, pickle, get, LOSSES
# --------------------------------------------------------------------------- #
CLASS_CASES = [
    (cyloss.PoissonNLL, {"log_input": False, "full": True, "eps": 1e-3},
     "PoissonNLL(log_input=False, full=True, eps=0.001)"),
    (cyloss.HingeEmbedding, {"margin": 2.0}, "HingeEmbedding(margin=2.0)"),
    (cyloss.Dice, {"axis": (1, 2)}, "Dice(axis=(1, 2))"),
    (cyloss.Tversky, {"alpha": 0.3, "beta": 0.7, "axis": -1},
     "Tversky(alpha=0.3, beta=0.7, axis=-1)"),
    (cyloss.MarginRanking, {"margin": 0.5, "reduction": "sum"},
     "MarginRanking(reduction='sum', margin=0.5)"),
]


@pytest.mark.parametrize("cls, options, text", CLASS_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_class_repr_config_pickle(cls, options, text):
    loss = cls(**options)
    assert sorted(repr(loss).removesuffix(")").split("(")[1].split(", ")) == sorted(
        text.removesuffix(")").split("(")[1].split(", "))
    assert repr(cls()) == f"{cls.__name__}()"
    config = loss.get_config()
    again = cls.from_config(config)
    assert again == loss and hash(again) == hash(loss)
    assert pickle.loads(pickle.dumps(loss)) == loss
    assert cls.from_config({**config, "dtype": "float32"}) == loss
    assert cls() != loss
    name = config["name"]
    assert cyloss.LOSSES[name] is cls and name in cyloss.__all__
    assert cls.__name__ in cyloss.__all__ and getattr(cyloss, name) is cls._function
    assert cyloss.get(name, **{k: v for k, v in options.items()}) == loss
    assert cyloss.get(cls.__name__) == cls()


def test_class_values_equal_functions():
    rng = _rng("classes")
    y, p = np.round(rng.random((5, 6))), rng.random((5, 6))
    sw = rng.uniform(0, 2, 5)
    for reduction in REDUCTIONS:
        for cls, fn, opts in ((cyloss.PoissonNLL, cyloss.poisson_nll, {"full": True}),
                              (cyloss.HingeEmbedding, cyloss.hinge_embedding, {}),
                              (cyloss.Dice, cyloss.dice, {"axis": -1}),
                              (cyloss.Tversky, cyloss.tversky, {"axis": 1, "alpha": 0.2})):
            a = cls(**opts, reduction=reduction)(y, p, sample_weight=sw)
            b = fn(y, p, **opts, sample_weight=sw, reduction=reduction)
            np.testing.assert_array_equal(a, b)
    with pytest.raises(NotImplementedError):
        cyloss.MarginRanking().grad_hess([1.0], [1.0], [0.0])


# --------------------------------------------------------------------------- #
# gaussian_nll, cosine_embedding, triplet_margin against torch
# --------------------------------------------------------------------------- #
def _torch_reduce(torch, per, sw, reduction):
    w = torch.ones_like(per) if sw is None else torch.tensor(np.asarray(sw)).reshape(
        per.shape)
    if reduction == "none":
        return per * w
    if reduction == "sum":
        return (per * w).sum()
    if reduction == "mean":
        return (per * w).sum() / per.numel()
    return (per * w).sum() / w.sum()


GAUSSIAN_VAR_SHAPES = [((6, 4), (6, 4)), ((6, 4), (6,)), ((6, 4), (6, 1)),
                       ((3, 2, 4), (3, 1, 4)), ((9,), (9,)), ((9,), ())]


@pytest.mark.parametrize("full, eps", [(False, 1e-6), (True, 1e-6), (False, 0.5)])
@pytest.mark.parametrize("shape, var_shape", GAUSSIAN_VAR_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gaussian_nll_matches_torch(torch, shape, var_shape, full, eps, reduction):
    F = torch.nn.functional
    rng = _rng("gauss", shape, var_shape, full, eps, reduction)
    y = rng.normal(size=shape)
    x = y + rng.normal(0, 2, size=shape)
    var = rng.uniform(0.01, 3.0, size=var_shape)
    if var.size >= 2:
        var.reshape(-1)[:2] = [0.0, eps / 2]        # clamped at eps
    per_sample = shape[:-1] if len(shape) >= 2 else shape
    sw = rng.uniform(0, 2, per_sample) if reduction != "none" else None
    xt = torch.tensor(x, requires_grad=True)
    vt = torch.tensor(var, requires_grad=True)
    t = F.gaussian_nll_loss(xt, torch.tensor(y), vt, full=full, eps=eps, reduction="none")
    per = t.mean(-1) if len(shape) >= 2 else t
    total = _torch_reduce(torch, per, sw, reduction)
    (total.sum() if reduction == "none" else total).backward()
    value, (gx, gv) = cyloss.GaussianNLL(full=full, eps=eps, reduction=reduction
                                         ).value_and_grad(y, x, var, sample_weight=sw)
    _close(value, total.detach().numpy())
    _close(cyloss.gaussian_nll(y, x, var, full=full, eps=eps, sample_weight=sw,
                               reduction=reduction), total.detach().numpy())
    assert gx.shape == x.shape and gv.shape == var.shape
    _close(gx, xt.grad.numpy(), 1e-9, 1e-15)
    _close(gv, vt.grad.numpy(), 1e-9, 1e-14)


def test_gaussian_nll_errors_and_extremes():
    with pytest.raises(ValueError, match=r"var must be non-negative; got -1.0 .*\(1, 2\)"):
        cyloss.gaussian_nll(np.zeros((2, 3)), np.zeros((2, 3)), [[1, 1, 1], [1, 1, -1.0]])
    with pytest.raises(ValueError, match="var of shape"):
        cyloss.gaussian_nll(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((3,)))
    with pytest.raises(ValueError, match="eps"):
        cyloss.gaussian_nll([0.0], [0.0], [1.0], eps=0.0)
    with pytest.raises(ValueError, match="same shape"):
        cyloss.gaussian_nll([0.0, 1.0], [0.0], [1.0])
    with pytest.raises(TypeError):
        cyloss.gaussian_nll([0.0], [0.0], ["a"])
    assert math.isnan(cyloss.gaussian_nll([0.0], [0.0], [np.nan]))
    assert cyloss.gaussian_nll([0.0], [0.0], [np.inf]) == np.inf
    assert cyloss.gaussian_nll(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0,))) == 0.0
    out = cyloss.gaussian_nll(np.float32([0, 1]), np.float32([1, 1]), np.float32([2, 2]),
                              reduction="none")
    assert out.dtype == np.float32
    _close(out, [0.5 * (math.log(2) + 0.5), 0.5 * math.log(2)], 1e-6)


COSINE_MARGINS = (0.0, 0.5, -0.5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", COSINE_MARGINS)
def test_cosine_embedding_matches_torch(torch, margin, reduction):
    F = torch.nn.functional
    rng = _rng("cosine", margin, reduction)
    a = rng.normal(size=(12, 5))
    b = rng.normal(size=(12, 5))
    a[0] = 0.0                      # zero vector: cos = 0 through the 1e-12
    a[1] = 1e-7                     # tiny: the 1e-12 matters
    b[2] = -a[2]
    y = rng.choice([-1.0, 1.0], size=12)
    y[3] = 0.0                      # other labels give 0, as torch
    sw = rng.uniform(0, 2, 12)
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    per = F.cosine_embedding_loss(at, bt, torch.tensor(y), margin=margin, reduction="none")
    total = _torch_reduce(torch, per, sw, reduction)
    (total.sum() if reduction == "none" else total).backward()
    value, (g1, g2) = cyloss.CosineEmbedding(margin=margin, reduction=reduction
                                             ).value_and_grad(y, a, b, sample_weight=sw)
    _close(value, total.detach().numpy())
    _close(cyloss.cosine_embedding(y, a, b, margin=margin, sample_weight=sw,
                                   reduction=reduction), total.detach().numpy())
    _close(g1, at.grad.numpy(), 1e-9, 1e-12)
    _close(g2, bt.grad.numpy(), 1e-9, 1e-12)


def test_cosine_embedding_shapes_and_errors(torch):
    F = torch.nn.functional
    a, b = np.array([1.0, 2.0]), np.array([2.0, -1.0])
    t = F.cosine_embedding_loss(torch.tensor(a), torch.tensor(b), torch.tensor(-1.0),
                                margin=-0.5, reduction="none").item()
    out = cyloss.cosine_embedding(-1.0, a, b, margin=-0.5, reduction="none")
    assert out.shape == ()
    _close(out, t)
    rng = _rng("cos3d")
    a3, b3 = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    y = rng.choice([-1.0, 1.0], size=(2, 3))
    expected = F.cosine_embedding_loss(torch.tensor(a3.reshape(6, 4)),
                                       torch.tensor(b3.reshape(6, 4)),
                                       torch.tensor(y.reshape(6)), reduction="none").numpy()
    _close(cyloss.cosine_embedding(y, a3, b3, reduction="none"), expected.reshape(2, 3))
    _close(cyloss.cosine_embedding(y[..., None], a3, b3, reduction="none"),
           expected.reshape(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        cyloss.cosine_embedding([1.0], [[1.0, 2.0]], [[1.0]])
    with pytest.raises(ValueError, match="y_true"):
        cyloss.cosine_embedding([1.0, 1.0, 1.0], [[1.0, 2.0]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="scalar"):
        cyloss.cosine_embedding(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="margin"):
        cyloss.cosine_embedding([1.0], [[1.0]], [[1.0]], margin=np.nan)
    assert cyloss.cosine_embedding([], np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


TRIPLET_OPTIONS = [
    {}, {"swap": True}, {"p": 1.0}, {"p": 3.0, "swap": True}, {"p": 1.5},
    {"margin": 0.2, "eps": 0.0}, {"margin": 5.0, "eps": 1e-3},
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", TRIPLET_OPTIONS, ids=str)
def test_triplet_margin_matches_torch(torch, options, reduction):
    F = torch.nn.functional
    rng = _rng("triplet", options, reduction)
    a, p, n = (rng.normal(size=(10, 6)) for _ in range(3))
    n[0] = p[0]                      # a tie of the swap
    sw = rng.uniform(0, 2, 10)
    ts = [torch.tensor(v, requires_grad=True) for v in (a, p, n)]
    per = F.triplet_margin_loss(*ts, reduction="none", **options)
    total = _torch_reduce(torch, per, sw, reduction)
    (total.sum() if reduction == "none" else total).backward()
    value, grads = cyloss.TripletMargin(**options, reduction=reduction).value_and_grad(
        a, p, n, sample_weight=sw)
    _close(value, total.detach().numpy())
    _close(cyloss.triplet_margin(a, p, n, **options, sample_weight=sw,
                                 reduction=reduction), total.detach().numpy())
    for g, t in zip(grads, ts):
        _close(g, t.grad.numpy(), 1e-9, 1e-14)


def test_triplet_margin_shapes_and_errors(torch):
    F = torch.nn.functional
    a, p, n = np.array([0.0, 1.0]), np.array([2.0, 1.0]), np.array([0.5, 0.0])
    out = cyloss.triplet_margin(a, p, n, reduction="none")
    assert out.shape == ()
    _close(out, F.triplet_margin_loss(*(torch.tensor(v) for v in (a, p, n)),
                                      reduction="none").item())
    for kw, match in (({"p": 0.0}, "p"), ({"p": np.inf}, "p"), ({"margin": None}, "margin"),
                      ({"eps": np.nan}, "eps"), ({"swap": "no"}, "swap")):
        with pytest.raises(ValueError, match=match):
            cyloss.triplet_margin(a, p, n, **kw)
    with pytest.raises(ValueError, match="same shape"):
        cyloss.triplet_margin(a, p, n[:1])
    with pytest.raises(TypeError):
        cyloss.triplet_margin(a, p, ["x", "y"])
    assert cyloss.triplet_margin(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)),
                                 reduction="sum") == 0.0
    out32 = cyloss.triplet_margin(np.float32([[0, 1]]), np.float32([[2, 1]]),
                                  np.float32([[0.5, 0]]), reduction="none")
    assert out32.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_three_input_thread_counts_bitwise(dtype):
    rng = _rng("threads3", np.dtype(dtype).name)
    n = 40_000
    a, b, c = (rng.normal(size=(n, 6)).astype(dtype) for _ in range(3))
    y = rng.choice([-1.0, 1.0], size=n)
    sw = rng.uniform(0, 2, n)
    var = np.abs(c) + 0.1
    calls = [
        lambda k: cyloss.GaussianNLL(n_threads=k, reduction="sum").value_and_grad(
            a, b, var, sample_weight=sw),
        lambda k: cyloss.CosineEmbedding(n_threads=k, margin=0.1).value_and_grad(
            y, a, b, sample_weight=sw),
        lambda k: cyloss.TripletMargin(n_threads=k, swap=True).value_and_grad(
            a, b, c, sample_weight=sw),
    ]
    for call in calls:
        first = call(1)
        for k in (2, 3, 7, None):
            other = call(k)
            assert np.float64(other[0]).tobytes() == np.float64(first[0]).tobytes()
            for g, h in zip(other[1], first[1]):
                assert g.tobytes() == h.tobytes()
    for k in (2, 5):
        for r in REDUCTIONS:
            assert (np.asarray(cyloss.gaussian_nll(a, b, var, reduction=r, n_threads=k)
                               ).tobytes()
                    == np.asarray(cyloss.gaussian_nll(a, b, var, reduction=r, n_threads=1)
                                  ).tobytes())


MORE_CLASS_CASES = [
    (cyloss.GaussianNLL, {"full": True, "eps": 1e-3}, "GaussianNLL(full=True, eps=0.001)"),
    (cyloss.CosineEmbedding, {"margin": 0.25}, "CosineEmbedding(margin=0.25)"),
    (cyloss.TripletMargin, {"p": 1.0, "swap": True}, "TripletMargin(p=1.0, swap=True)"),
]


@pytest.mark.parametrize("cls, options, text", MORE_CLASS_CASES,
                         ids=lambda c: getattr(c, "__name__", ""))
def test_three_input_classes(cls, options, text):
    test_class_repr_config_pickle(cls, options, text)
    with pytest.raises(NotImplementedError):
        cls().grad_hess(None, None, None)


def test_three_input_layouts_and_float32():
    """Strided, F-ordered and read-only inputs give the C-contiguous float64 values; float32
    input agrees with float64 on the same (float32) values to ~1e-6."""
    rng = _rng("layouts3")
    a, b, c = (rng.normal(size=(20, 6)) for _ in range(3))
    y = rng.choice([-1.0, 1.0], size=20)
    calls = [
        lambda a, b, c: cyloss.margin_ranking(np.sign(c), a, b, margin=0.2, reduction="none"),
        lambda a, b, c: cyloss.gaussian_nll(a, b, np.abs(c) + 0.1, reduction="none"),
        lambda a, b, c: cyloss.cosine_embedding(y, a, b, margin=0.1, reduction="none"),
        lambda a, b, c: cyloss.triplet_margin(a, b, c, swap=True, reduction="none"),
    ]
    for call in calls:
        expected = call(a, b, c)
        for form in (np.asfortranarray, lambda x: np.repeat(x, 2, axis=1)[:, ::2],
                     lambda x: np.require(x, requirements="C").copy()[::-1][::-1]):
            _close(call(form(a), form(b), form(c)), expected, 1e-15, 0)
        ro = [x.copy() for x in (a, b, c)]
        for x in ro:
            x.flags.writeable = False
        _close(call(*ro), expected, 1e-15, 0)
        a32, b32, c32 = (x.astype(np.float32) for x in (a, b, c))
        exact = call(*(x.astype(np.float64) for x in (a32, b32, c32)))
        out32 = call(a32, b32, c32)
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out32, exact, rtol=2e-6,
                                   atol=2e-6 * float(np.max(np.abs(exact))))


def test_three_input_extremes_match_torch(torch):
    """Overflowing norms and errors, subnormals, clamped and huge variances: the same
    value as PyTorch, NaN (inf - inf) included."""
    F = torch.nn.functional

    def tt(v):
        return torch.tensor(np.asarray(v, dtype=np.float64))

    a = np.array([[1e200, 0.0], [1e-200, 3.0], [0.0, 0.0]])
    p = np.array([[0.0, 0.0], [0.0, 0.0], [1e-300, 0.0]])
    n = np.array([[5.0, 1.0], [2.0, 2.0], [0.0, 1e-310]])
    for kw in ({}, {"p": 1.0}, {"p": 3.0}, {"swap": True}, {"eps": 0.0}):
        expected = F.triplet_margin_loss(tt(a), tt(p), tt(n), reduction="none", **kw).numpy()
        _close(cyloss.triplet_margin(a, p, n, reduction="none", **kw), expected)
    y = np.array([0.0, 1e150, 0.0, 1.0, 2.0])
    x = np.array([1e150, 0.0, 1.0, np.inf, 2.0])
    v = np.array([1e-300, 1e300, 0.0, 1.0, 1e-7])
    for full in (False, True):
        expected = F.gaussian_nll_loss(tt(x), tt(y), tt(v), full=full,
                                       reduction="none").numpy()
        _close(cyloss.gaussian_nll(y, x, v, full=full, reduction="none"), expected)
    big = np.array([[1e200, 1e200], [1e-200, 0.0], [3.0, 4.0]])
    other = np.array([[1e200, -1e200], [1e-200, 1e-200], [0.0, 0.0]])
    for label in (1.0, -1.0):
        expected = F.cosine_embedding_loss(tt(big), tt(other), tt([label] * 3), margin=-0.2,
                                           reduction="none").numpy()
        _close(cyloss.cosine_embedding(label, big, other, margin=-0.2, reduction="none"),
               expected)


def test_eval_refuses_what_it_cannot_chunk():
    from cyloss import _cli_eval

    acc = cyloss.Accumulator(cyloss.PoissonNLL()).update([2.0, 0.0], [0.0, 1.0])
    assert math.isclose(acc.result(), cyloss.poisson_nll([2.0, 0.0], [0.0, 1.0]),
                        rel_tol=1e-15)

    class Args:
        loss = "dice"

    with pytest.raises(_cli_eval.UsageError, match="dice"):
        _cli_eval._build_loss(Args())


@pytest.mark.parametrize("name, options", [("dice", {}), ("tversky", {"alpha": 0.3,
                                                                       "beta": 0.9})])
def test_overlap_long_rows_are_summed_in_pieces(name, options):
    """A row longer than one piece (65536 elements: Keras's axis=None on a large input) is
    summed in parallel pieces: the reference's value and gradient, the same bits for every
    n_threads."""
    rng = _rng("long", name)
    y = np.round(rng.random((3, 70_001)))
    p = rng.random((3, 70_001))
    sw = rng.uniform(0.5, 2.0, 3)
    cls = getattr(cyloss, name.capitalize())
    for axis, weight in ((None, 1.5), (-1, sw)):
        for reduction in REDUCTIONS:
            expected = getattr(reference, name)(y, p, axis=axis, sample_weight=weight,
                                                reduction=reduction, **options)
            first = None
            for k in (1, 2, 3, 7):
                loss = cls(axis=axis, reduction=reduction, n_threads=k, **options)
                value, g = loss.value_and_grad(y, p, sample_weight=weight)
                _close(value, expected)
                if first is None:
                    first = value, g
                    g_ref, _, _ = reference_grad.gradient(name, y, p, sample_weight=weight,
                                                          reduction=reduction, axis=axis,
                                                          **options)
                    _close(g, g_ref, 1e-9, 1e-18)
                else:
                    assert np.asarray(value).tobytes() == np.asarray(first[0]).tobytes()
                    assert g.tobytes() == first[1].tobytes()


def _central(f, x, h=1e-5):
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        def at(d):
            q = x.copy()
            q[idx] += d
            return f(q)
        out[idx] = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
    return out


def test_gradients_match_finite_differences():
    """Every gradient of this module against 4th-order central differences of the value
    (inputs away from kinks and clamps)."""
    rng = _rng("fd")
    y = rng.integers(0, 5, (4, 3)).astype(float)
    x = rng.normal(0, 0.5, (4, 3))
    sw = rng.uniform(0.5, 2.0, 4)
    for loss, yy, xx in (
        (cyloss.PoissonNLL(full=True), y, x),
        (cyloss.PoissonNLL(log_input=False, reduction="weighted_mean"), y, np.exp(x)),
        (cyloss.HingeEmbedding(margin=3.0), np.sign(x), np.abs(x) + 0.1),
        (cyloss.Dice(axis=1, reduction="sum"), np.round(rng.random((4, 3))), rng.random((4, 3))),
        (cyloss.Tversky(alpha=0.2, beta=1.3, axis=-1), np.round(rng.random((4, 3))), rng.random((4, 3))),
    ):
        g = loss.grad(yy, xx, sample_weight=sw)
        _close(g, _central(lambda q: loss(yy, q, sample_weight=sw), xx), 1e-7, 1e-9)
    a, b, c = (rng.normal(size=(4, 3)) for _ in range(3))
    labels = np.sign(rng.normal(size=(4, 3)))
    var = rng.uniform(0.5, 2.0, (4, 3))
    three = (
        (cyloss.MarginRanking(margin=0.1), (labels, a, b + 3 * labels), (1, 2)),
        (cyloss.GaussianNLL(reduction="sum"), (a, b, var), (1, 2)),
        (cyloss.CosineEmbedding(margin=-0.9), (np.sign(a[:, 0]), a, b), (1, 2)),
        (cyloss.TripletMargin(margin=5.0, p=3.0, swap=True), (a, b, c), (0, 1, 2)),
    )
    for loss, args, wrt in three:
        grads = loss.grad(*args, sample_weight=sw)
        for g, j in zip(grads, wrt):
            def f(q, j=j):
                moved = list(args)
                moved[j] = q
                return loss(*moved, sample_weight=sw)
            _close(g, _central(f, args[j]), 1e-7, 1e-9)
