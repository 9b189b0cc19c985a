"""The focal losses (Keras 3) and multilabel soft margin (PyTorch) against their sources.

Expected values come from Keras 3 (NumPy backend, float64), PyTorch (float64: its
``multilabel_soft_margin_loss``, and the focal formulas written as torch expressions for
torch.autograd), closed forms, and finite differences; never from cyloss's own output.
The registry (tests/registry.py) runs the same losses through test_values, test_classes
and test_properties against tests/reference.py.
"""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest

import cyloss
import reference_grad
import registry
from test_values import KERAS_RTOL, _knp, keras  # noqa: F401  (keras: the fixture)

REDUCTIONS = ["mean", "weighted_mean", "sum", "none"]


def _rng(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------
def _binary_inputs(rng, shape, from_logits):
    y = rng.random(shape)
    y = np.where(rng.random(shape) < 0.5, np.round(y), y)
    if from_logits:
        # |x| <= 8: Keras takes sigmoid(x) and clips it at 1e-7 (|x| > 16 would differ
        # from the unclipped logit form, on purpose) and computes 1 - p_t with a
        # cancellation that costs 1e-16 / sigmoid(-|x|) relatively.
        x = np.clip(rng.normal(0.0, 3.0, shape), -8.0, 8.0)
        x.reshape(-1)[:6] = [0.0, 8.0, -8.0, 1e-9, -3.5, 2.0]
    else:
        x = rng.uniform(0.01, 0.99, shape)
        # exact 0 and 1, the clip bounds and just inside them, among moderate values
        x.reshape(-1)[:8] = [0.0, 1.0, 1e-7, 1.0 - 1e-7, 0.5, 3e-8, 1.0 - 3e-8, 0.999]
    return y, x


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _categorical_inputs(rng, shape, from_logits, axis=-1):
    moved = list(shape)
    c = moved.pop(axis % len(shape))
    y = rng.dirichlet(np.ones(c), size=tuple(moved))
    hard = rng.random(y.shape[:-1]) < 0.5
    y[hard] = np.eye(c)[rng.integers(0, c, y.shape[:-1])][hard]
    if from_logits:
        # every softmax probability inside Keras's clip [1e-7, 1 - 1e-7]
        x = rng.normal(0.0, 1.5, tuple(moved) + (c,))
        assert (np.abs(x - x.max(-1, keepdims=True)) < 14).all()
    else:
        x = rng.uniform(0.05, 1.0, tuple(moved) + (c,))
        flat = x.reshape(-1, c)
        flat[0, :] = [1.0] + [0.0] * (c - 1)   # clipped at 1 - eps and at eps
        flat[1, 0] = 0.0
        flat[2, :] = 1e-9
        flat[2, 1] = 1.0
    return np.moveaxis(y, -1, axis), np.moveaxis(x, -1, axis)


# --------------------------------------------------------------------------------------
# Keras 3: binary focal, every option combination
# --------------------------------------------------------------------------------------
BINARY_GRID = list(itertools.product(
    [False, True],            # apply_class_balancing
    [False, True],            # from_logits
    [0.0, 0.1],               # label_smoothing
    [0.0, 0.5, 2.0, 3.7],     # gamma
    [0.25, 0.8],              # alpha
))


@pytest.mark.parametrize(
    "balance, from_logits, smoothing, gamma, alpha", BINARY_GRID,
    ids=[f"bal{b}-logits{f}-ls{s}-g{g}-a{a}" for b, f, s, g, a in BINARY_GRID])
def test_binary_focal_matches_keras(keras, balance, from_logits, smoothing, gamma, alpha):
    rng = _rng("bfce", balance, from_logits, smoothing, gamma, alpha)
    y, x = _binary_inputs(rng, (7, 5), from_logits)
    opts = dict(apply_class_balancing=balance, alpha=alpha, gamma=gamma,
                from_logits=from_logits, label_smoothing=smoothing)
    expected = _knp(keras, keras.losses.binary_focal_crossentropy(y, x, **opts))
    actual = cyloss.binary_focal_crossentropy(y, x, **opts, reduction="none")
    np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL, atol=1e-15)
    # the class, with sample weights, under each Keras reduction
    sw = rng.uniform(0.0, 2.0, 7)
    for reduction in ["sum_over_batch_size", "sum", "mean_with_sample_weight"]:
        k = keras.losses.BinaryFocalCrossentropy(**opts, reduction=reduction,
                                                 dtype="float64")
        expected = float(_knp(keras, k(y, x, sample_weight=sw)))
        actual = cyloss.BinaryFocalCrossentropy(**opts, reduction=reduction)(
            y, x, sample_weight=sw)
        assert math.isclose(actual, expected, rel_tol=KERAS_RTOL), (reduction, actual,
                                                                   expected)


def test_binary_focal_keras_one_dimensional(keras):
    # (n,) against (n, 1): Keras's squeeze; a 1-D input is n samples of one output. (A
    # sample of target 0 and p = 3e-8 is 9e-23; Keras's 1 - (1 - p) gets its factor p^2
    # to 2e-9 relatively, cyloss's y (1 - p) + (1 - y) p exactly: an absolute tolerance.)
    rng = _rng("bfce-1d")
    y, x = _binary_inputs(rng, (9, 1), False)
    expected = _knp(keras, keras.losses.binary_focal_crossentropy(y, x))
    np.testing.assert_allclose(cyloss.binary_focal_crossentropy(y[:, 0], x, reduction="none"),
                               expected, rtol=KERAS_RTOL, atol=1e-15)


def test_binary_focal_keras_epsilon(keras):
    rng = _rng("bfce-eps")
    y, x = _binary_inputs(rng, (6, 4), False)
    previous = keras.config.epsilon()
    keras.config.set_epsilon(1e-3)
    try:
        expected = _knp(keras, keras.losses.binary_focal_crossentropy(y, x, gamma=1.5))
    finally:
        keras.config.set_epsilon(previous)
    actual = cyloss.binary_focal_crossentropy(y, x, gamma=1.5, epsilon=1e-3,
                                              reduction="none")
    np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL)


# --------------------------------------------------------------------------------------
# Keras 3: categorical focal, every option combination
# --------------------------------------------------------------------------------------
CATEGORICAL_GRID = list(itertools.product(
    [False, True],            # from_logits
    [0.0, 0.2],               # label_smoothing
    [0.0, 0.5, 2.0, 3.7],     # gamma
    [0.25, 1.0],              # alpha
    [-1, 1],                  # axis
))


@pytest.mark.parametrize(
    "from_logits, smoothing, gamma, alpha, axis", CATEGORICAL_GRID,
    ids=[f"logits{f}-ls{s}-g{g}-a{a}-ax{x}" for f, s, g, a, x in CATEGORICAL_GRID])
def test_categorical_focal_matches_keras(keras, from_logits, smoothing, gamma, alpha, axis):
    rng = _rng("cfce", from_logits, smoothing, gamma, alpha, axis)
    shape = (8, 5) if axis == -1 else (4, 5, 3)
    y, x = _categorical_inputs(rng, shape, from_logits, axis)
    opts = dict(alpha=alpha, gamma=gamma, from_logits=from_logits,
                label_smoothing=smoothing, axis=axis)
    if axis != -1 and smoothing:
        # Keras smooths with the size of the last axis whatever `axis` is (a Keras quirk);
        # compare on the class axis moved last instead.
        y, x = np.moveaxis(y, axis, -1), np.moveaxis(x, axis, -1)
        opts["axis"] = -1
    expected = _knp(keras, keras.losses.categorical_focal_crossentropy(y, x, **opts))
    actual = cyloss.categorical_focal_crossentropy(y, x, **opts, reduction="none")
    np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL, atol=1e-15)
    sw = rng.uniform(0.0, 2.0, actual.shape)
    for reduction in ["sum_over_batch_size", "sum", "mean_with_sample_weight"]:
        k = keras.losses.CategoricalFocalCrossentropy(**opts, reduction=reduction,
                                                      dtype="float64")
        expected = float(_knp(keras, k(y, x, sample_weight=sw)))
        actual = cyloss.CategoricalFocalCrossentropy(**opts, reduction=reduction)(
            y, x, sample_weight=sw)
        assert math.isclose(actual, expected, rel_tol=KERAS_RTOL), (reduction, actual,
                                                                   expected)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_sparse_focal_is_categorical_focal_of_the_one_hot_keras(keras, from_logits,
                                                                 smoothing):
    # Keras 3 has no sparse focal loss: its categorical one of the one-hot labels.
    rng = _rng("sfce", from_logits, smoothing)
    _, x = _categorical_inputs(rng, (9, 5), from_logits)
    labels = rng.integers(0, 5, 9)
    opts = dict(gamma=1.5, alpha=0.4, from_logits=from_logits, label_smoothing=smoothing)
    expected = _knp(keras, keras.losses.categorical_focal_crossentropy(
        np.eye(5)[labels], x, **opts))
    actual = cyloss.sparse_categorical_focal_crossentropy(labels, x, **opts,
                                                           reduction="none")
    np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL, atol=1e-15)


def test_sparse_focal_class_weight_and_ignore_index():
    # closed form, per sample: -alpha cw[label] (1 - p)^gamma log p, ignored rows 0
    rng = _rng("sfce-cw")
    x = rng.normal(0.0, 2.0, (10, 4))
    labels = rng.integers(0, 4, 10)
    labels[[2, 7]] = -100
    cw = np.array([0.5, 2.0, 0.0, 1.5])
    p = _softmax(x, -1)
    safe = np.where(labels < 0, 0, labels)
    pl = p[np.arange(10), safe]
    per = np.where(labels < 0, 0.0, -0.3 * cw[safe] * (1 - pl) ** 2.5 * np.log(pl))
    kw = dict(from_logits=True, alpha=0.3, gamma=2.5, class_weight=cw, ignore_index=-100)
    got = cyloss.sparse_categorical_focal_crossentropy(labels, x, **kw, reduction="none")
    np.testing.assert_allclose(got, per, rtol=1e-12, atol=1e-300)
    value = cyloss.sparse_categorical_focal_crossentropy(labels, x, **kw,
                                                          reduction="weighted_mean")
    kept = labels >= 0
    assert math.isclose(value, per.sum() / cw[safe][kept].sum(), rel_tol=1e-12)
    value = cyloss.sparse_categorical_focal_crossentropy(labels, x, **kw)
    assert math.isclose(value, per.sum() / kept.sum(), rel_tol=1e-12)


# --------------------------------------------------------------------------------------
# PyTorch: multilabel soft margin
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multilabel_soft_margin_matches_torch(weighted, reduction):
    torch = pytest.importorskip("torch")
    rng = _rng("mlsm", weighted, reduction)
    y = (rng.random((12, 6)) < 0.4).astype(float)
    y[0] = rng.random(6)  # soft targets too
    x = rng.normal(0.0, 4.0, (12, 6))
    x[1] = [1e4, -1e4, 40.0, -40.0, 1e-12, 0.0]
    cw = np.array([0.5, 1.0, 2.0, 0.0, 3.0, 1.25]) if weighted else None
    expected = torch.nn.functional.multilabel_soft_margin_loss(
        torch.tensor(x), torch.tensor(y),
        weight=None if cw is None else torch.tensor(cw), reduction=reduction).numpy()
    actual = cyloss.multilabel_soft_margin(y, x, class_weight=cw, reduction=reduction)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-300)
    cls = cyloss.MultilabelSoftMargin(class_weight=cw, reduction=reduction)
    np.testing.assert_allclose(cls(y, x), expected, rtol=1e-12, atol=1e-300)


def test_multilabel_soft_margin_is_binary_crossentropy_from_logits():
    rng = _rng("mlsm-bce")
    y = rng.random((50, 7))
    x = rng.normal(0.0, 5.0, (50, 7))
    sw = rng.uniform(0, 2, 50)
    for reduction in REDUCTIONS:
        a = cyloss.multilabel_soft_margin(y, x, sample_weight=sw, reduction=reduction)
        b = cyloss.binary_crossentropy(y, x, from_logits=True, sample_weight=sw,
                                       reduction=reduction)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        # a class weight of ones runs the weighted loop: the same bits
        c = cyloss.multilabel_soft_margin(y, x, class_weight=np.ones(7), sample_weight=sw,
                                          reduction=reduction)
        assert np.asarray(c).tobytes() == np.asarray(b).tobytes()
    g1, h1 = cyloss.MultilabelSoftMargin(class_weight=np.full(7, 2.0)).grad_hess(y, x)
    g2, h2 = cyloss.BinaryCrossentropy(from_logits=True).grad_hess(y, x)
    np.testing.assert_allclose(g1, 2 * g2, rtol=1e-15)
    np.testing.assert_allclose(h1, 2 * h2, rtol=1e-15)


def test_multilabel_soft_margin_infinite_logits():
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    x = np.array([[np.inf, -np.inf, -np.inf, np.inf]])
    assert list(cyloss.multilabel_soft_margin(y, x, class_weight=[1, 1, 0, 0],
                                              reduction="none")) == [0.0]
    assert cyloss.multilabel_soft_margin(y, x) == math.inf


# --------------------------------------------------------------------------------------
# Binary focal = binary cross-entropy at gamma = 0; categorical focal = alpha * CCE
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_gamma_zero_is_the_cross_entropy(from_logits):
    rng = _rng("g0", from_logits)
    y, x = _binary_inputs(rng, (30, 4), from_logits)
    for reduction in REDUCTIONS:
        a = cyloss.binary_focal_crossentropy(y, x, gamma=0.0, from_logits=from_logits,
                                             label_smoothing=0.1, reduction=reduction)
        b = cyloss.binary_crossentropy(y, x, from_logits=from_logits, label_smoothing=0.1,
                                       reduction=reduction)
        np.testing.assert_allclose(a, b, rtol=1e-15)
    y, x = _categorical_inputs(rng, (20, 6), from_logits)
    a = cyloss.categorical_focal_crossentropy(y, x, gamma=0.0, alpha=0.5,
                                              from_logits=from_logits, reduction="none")
    b = cyloss.categorical_crossentropy(y, x, from_logits=from_logits, reduction="none")
    np.testing.assert_allclose(a, 0.5 * b, rtol=1e-13)


# --------------------------------------------------------------------------------------
# Extreme logits: no overflow at |x| = 1e4, the limits at +-inf
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_binary_focal_extreme_logits(gamma):
    y = np.array([1.0, 0.0, 1.0, 0.0, 0.3, 0.3, 1.0, 0.0, 1.0, 0.0])
    x = np.array([1e4, 1e4, -1e4, -1e4, 1e4, -1e4, np.inf, np.inf, -np.inf, -np.inf])
    kw = dict(gamma=gamma, from_logits=True)
    per = cyloss.binary_focal_crossentropy(y, x, **kw, reduction="none")
    # closed forms: softplus(+-1e4) = 1e4 or e^-1e4 (= 0); the focal factor is
    # sigmoid(-|x|)^gamma = 0 (or 1 for gamma = 0) on the right side and 1 on the wrong one
    right = 1.0 if gamma == 0 else 0.0
    expected = [0.0 * right, 1e4, 1e4, 0.0 * right, None, None, 0.0, math.inf, math.inf, 0.0]
    for got, want in zip(per, expected):
        if want is not None:
            assert got == want, (per, expected)
    # soft target 0.3 at x = +-1e4: (0.7 or 0.3)^gamma * (0.7 * 1e4 or 0.3 * 1e4)
    assert math.isclose(per[4], 0.7**gamma * 0.7e4, rel_tol=1e-14)
    assert math.isclose(per[5], 0.3**gamma * 0.3e4, rel_tol=1e-14)
    _, g = cyloss.value_and_grad("binary_focal_crossentropy", y[:6], x[:6], **kw,
                                 reduction="sum")
    assert np.isfinite(g).all(), g
    # d/dx at the wrong side: the cross-entropy's slope +-1 times the factor 1;
    # on the right side 0 (e^-1e4 underflows)
    np.testing.assert_allclose(g[:4], [0.0, 1.0, -1.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(g[4:6], [0.7**(gamma + 1), -(0.3**(gamma + 1))], rtol=1e-13)
    _, g = cyloss.value_and_grad("binary_focal_crossentropy", y[6:], x[6:], **kw,
                                 reduction="none")
    assert np.isfinite(g[[0, 3]]).all() and (g[[0, 3]] == 0).all()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_categorical_focal_extreme_logits(gamma):
    x = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [np.inf, 0.0, -np.inf],
                  [0.0, 0.0, -np.inf]])
    y = np.array([[1.0, 0, 0], [0, 0, 1.0], [1.0, 0, 0], [0.5, 0.5, 0]])
    value, g = cyloss.value_and_grad("categorical_focal_crossentropy", y, x,
                                     from_logits=True, gamma=gamma, alpha=1.0,
                                     reduction="none")
    assert value[0] == (math.log1p(math.exp(-1e4)) if gamma == 0 else 0.0)
    assert value[1] == 2e4          # -log p = 2e4, (1 - p)^gamma = 1
    assert value[2] == 0.0
    assert math.isclose(value[3], 0.5**gamma * math.log(2), rel_tol=1e-15)
    assert np.isfinite(g).all(), g


def test_focal_nan_propagates():
    assert math.isnan(cyloss.binary_focal_crossentropy([0.0, 1.0], [np.nan, 0.5]))
    assert math.isnan(cyloss.binary_focal_crossentropy([0.0, 1.0], [np.nan, 0.5],
                                                       from_logits=True))
    assert math.isnan(cyloss.categorical_focal_crossentropy([[0.0, 1.0]], [[np.nan, 0.5]]))
    assert math.isnan(cyloss.sparse_categorical_focal_crossentropy([1], [[np.nan, 0.5]],
                                                                   from_logits=True))


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------
def test_focal_errors():
    with pytest.raises(ValueError, match="from_logits=True"):
        cyloss.binary_focal_crossentropy([0.0, 1.0], [0.5, 1.5])
    with pytest.raises(ValueError, match=r"y_true must lie in \[0, 1\]"):
        cyloss.binary_focal_crossentropy([0.0, 2.0], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"y_true must lie in \[0, 1\]"):
        cyloss.multilabel_soft_margin([[0.0, -1.0]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="class_weight"):
        cyloss.multilabel_soft_margin([[0.0, 1.0]], [[0.5, 0.5]], class_weight=[1.0])
    with pytest.raises(ValueError, match="negative probability"):
        cyloss.categorical_focal_crossentropy([[0.0, 1.0]], [[-0.5, 0.5]])
    with pytest.raises(ValueError, match="sums to 0"):
        cyloss.categorical_focal_crossentropy([[0.0, 1.0]], [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"y_true must lie in \[0, 1\]"):
        cyloss.categorical_focal_crossentropy([[0.0, 1.5]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"label 3 .* outside \[0, 2\)"):
        cyloss.sparse_categorical_focal_crossentropy([0, 3], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="label"):
        cyloss.sparse_categorical_focal_crossentropy([0.5], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="gamma"):
        cyloss.binary_focal_crossentropy([0.0], [0.5], gamma=-1)
    with pytest.raises(ValueError, match="alpha"):
        cyloss.categorical_focal_crossentropy([[1.0]], [[1.0]], alpha=2)
    with pytest.raises(TypeError):
        cyloss.binary_focal_crossentropy(["a"], [0.5])
    for name in ["binary_focal_crossentropy", "categorical_focal_crossentropy",
                 "sparse_categorical_focal_crossentropy"]:
        loss = cyloss.get(name, from_logits=True)
        y = [1] if name.startswith("sparse") else [[0.0, 1.0]]
        with pytest.raises(NotImplementedError, match="grad_hess"):
            loss.grad_hess(y, [[0.5, 0.5]])


# --------------------------------------------------------------------------------------
# Gradients: torch.autograd on the focal formulas written in torch, and finite differences
# --------------------------------------------------------------------------------------
def _torch_binary_focal(torch, y, x, o):
    F = torch.nn.functional
    s = o.get("label_smoothing", 0.0)
    y = y * (1 - s) + 0.5 * s
    if o.get("from_logits"):
        bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        one_minus_pt = y * torch.sigmoid(-x) + (1 - y) * torch.sigmoid(x)
    else:
        eps = o.get("epsilon", 1e-7)
        pc = torch.clamp(x, eps, 1 - eps)
        bce = -(y * torch.log(pc) + (1 - y) * torch.log(1 - pc))
        one_minus_pt = 1 - (y * x + (1 - y) * (1 - x))
    loss = one_minus_pt ** o.get("gamma", 2.0) * bce
    if o.get("apply_class_balancing"):
        a = o.get("alpha", 0.25)
        loss = (y * a + (1 - y) * (1 - a)) * loss
    return loss.mean(dim=-1)


def _torch_categorical_focal(torch, q, x, o):
    if o.get("from_logits"):
        log_p = torch.log_softmax(x, dim=-1)
        one_minus_p = 1 - torch.exp(log_p)
    else:
        eps = o.get("epsilon", 1e-7)
        c = torch.clamp(x / x.sum(dim=-1, keepdim=True), eps, 1 - eps)
        log_p, one_minus_p = torch.log(c), 1 - c
    return -o.get("alpha", 0.25) * (q * one_minus_p ** o.get("gamma", 2.0) * log_p).sum(-1)


def _torch_multilabel(torch, y, x, o):
    w = torch.tensor(o["class_weight"], dtype=torch.float64)
    return torch.nn.functional.multilabel_soft_margin_loss(x, y, weight=w, reduction="none")


GRAD_CASES = [
    ("binary_focal_crossentropy", {}),
    ("binary_focal_crossentropy", {"gamma": 0.5, "label_smoothing": 0.2}),
    ("binary_focal_crossentropy", {"apply_class_balancing": True, "alpha": 0.7,
                                   "gamma": 3.0, "epsilon": 1e-2}),
    ("binary_focal_crossentropy", {"from_logits": True}),
    ("binary_focal_crossentropy", {"from_logits": True, "gamma": 0.5,
                                   "apply_class_balancing": True, "label_smoothing": 0.1}),
    ("binary_focal_crossentropy", {"from_logits": True, "gamma": 1.0}),
    ("categorical_focal_crossentropy", {}),
    ("categorical_focal_crossentropy", {"gamma": 0.5, "label_smoothing": 0.2,
                                        "alpha": 0.9}),
    ("categorical_focal_crossentropy", {"from_logits": True}),
    ("categorical_focal_crossentropy", {"from_logits": True, "gamma": 0.7,
                                        "label_smoothing": 0.1}),
    ("sparse_categorical_focal_crossentropy", {"from_logits": True, "gamma": 1.5}),
    ("sparse_categorical_focal_crossentropy",
     {"from_logits": True, "class_weight": [0.5, 2.0, 1.0, 0.0, 3.0], "ignore_index": 1,
      "label_smoothing": 0.1}),
    ("sparse_categorical_focal_crossentropy", {"gamma": 2.5, "ignore_index": 4}),
    ("multilabel_soft_margin", {"class_weight": [0.5, 2.0, 1.0, 0.0, 3.0]}),
]


def _grad_inputs(rng, name, opts, n=16, c=5):
    if name == "binary_focal_crossentropy" or name == "multilabel_soft_margin":
        y = np.where(rng.random((n, c)) < 0.5, rng.integers(0, 2, (n, c)), rng.random((n, c)))
        if opts.get("from_logits") or name == "multilabel_soft_margin":
            return y.astype(float), rng.normal(0.0, 3.0, (n, c))
        return y.astype(float), rng.uniform(0.05, 0.95, (n, c))
    if name == "categorical_focal_crossentropy":
        y = rng.dirichlet(np.ones(c), n)
        y[::2] = np.eye(c)[rng.integers(0, c, n)][::2]
    else:
        y = rng.integers(0, c, n)
    x = rng.normal(0.0, 2.0, (n, c)) if opts.get("from_logits") else rng.uniform(0.1, 1, (n, c))
    return y, x


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c[0] + str(c[1]))
def test_focal_gradient_matches_torch_autograd(case, reduction):
    torch = pytest.importorskip("torch")
    name, opts = case
    rng = _rng("grad", name, opts, reduction)
    y, x = _grad_inputs(rng, name, opts)
    n, c = x.shape
    sw = rng.uniform(0.2, 2.0, n)
    value, grad = cyloss.value_and_grad(name, y, x, sample_weight=sw, reduction=reduction,
                                        **opts)
    assert np.asarray(value).tobytes() == np.asarray(
        getattr(cyloss, name)(y, x, sample_weight=sw, reduction=reduction, **opts)).tobytes()
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    counted = np.ones(n, bool)
    v = np.ones(n)
    if name == "binary_focal_crossentropy":
        per = _torch_binary_focal(torch, torch.tensor(y), tx, opts)
    elif name == "multilabel_soft_margin":
        per = _torch_multilabel(torch, torch.tensor(y), tx, opts)
    else:
        if name.startswith("sparse"):
            cw = np.asarray(opts.get("class_weight", np.ones(c)), dtype=float)
            ignore = opts.get("ignore_index")
            counted = y != ignore if ignore is not None else counted
            s = opts.get("label_smoothing", 0.0)
            q = cw * (np.eye(c)[y] * (1 - s) + s / c)
            v = cw[y]
        else:
            s = opts.get("label_smoothing", 0.0)
            q = y * (1 - s) + s / c
        per = _torch_categorical_focal(torch, torch.tensor(q), tx, opts)
        per = per * torch.tensor(counted, dtype=torch.float64)
    tw = torch.tensor(sw)
    weighted = per * tw
    total = {"mean": weighted.sum() / counted.sum(),
             "weighted_mean": weighted.sum() / float((sw * v)[counted].sum()),
             "sum": weighted.sum(), "none": weighted.sum()}[reduction]
    total.backward()
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.sum(value), total.item(), rtol=1e-12)


def _central_difference(f, x, h=1e-5):
    fd = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        def at(d):
            q = x.copy()
            q[idx] += d
            return f(q)
        fd[idx] = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
    return fd


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c[0] + str(c[1]))
def test_focal_gradient_matches_finite_differences(case):
    name, opts = case
    rng = _rng("fd", name, opts)
    y, x = _grad_inputs(rng, name, opts, n=5, c=5)
    if not opts.get("from_logits") and name != "multilabel_soft_margin":
        x = np.clip(x, 0.1, 0.9)  # away from the clip bounds
    sw = rng.uniform(0.2, 2.0, 5)
    fn = getattr(cyloss, name)
    _, grad = cyloss.value_and_grad(name, y, x, sample_weight=sw, reduction="sum", **opts)
    fd = _central_difference(lambda q: fn(y, q, sample_weight=sw, reduction="sum", **opts), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_threads_bitwise_and_float32(dtype):
    rng = _rng("threads")
    y, x = _binary_inputs(rng, (40000, 5), True)
    labels = rng.integers(0, 5, 40000)
    yc = np.eye(5)[labels]
    calls = [
        lambda k: cyloss.binary_focal_crossentropy(y.astype(dtype), x.astype(dtype),
                                                   from_logits=True, n_threads=k),
        lambda k: cyloss.categorical_focal_crossentropy(yc.astype(dtype), x.astype(dtype),
                                                        from_logits=True, n_threads=k),
        lambda k: cyloss.sparse_categorical_focal_crossentropy(labels, x.astype(dtype),
                                                               n_threads=k,
                                                               from_logits=True),
        lambda k: cyloss.multilabel_soft_margin(y.astype(dtype), x.astype(dtype),
                                                class_weight=np.arange(5.0), n_threads=k),
    ]
    for call in calls:
        serial = call(1)
        for k in (2, 3):
            assert call(k) == serial
    if dtype == np.float32:
        for call, ref in zip(calls, [
            cyloss.binary_focal_crossentropy(y, x.astype(np.float32).astype(float),
                                             from_logits=True),
            cyloss.categorical_focal_crossentropy(yc, x.astype(np.float32).astype(float),
                                                  from_logits=True),
            cyloss.sparse_categorical_focal_crossentropy(
                labels, x.astype(np.float32).astype(float), from_logits=True),
            cyloss.multilabel_soft_margin(y.astype(np.float32).astype(float),
                                          x.astype(np.float32).astype(float),
                                          class_weight=np.arange(5.0)),
        ]):
            assert math.isclose(call(1), ref, rel_tol=1e-6)


# --------------------------------------------------------------------------------------
# Every registered option set: value_and_grad against tests/reference_grad.py
# --------------------------------------------------------------------------------------
FOCAL_CASES = [
    pytest.param(case, dict(opts), id=f"{case.name}-{oid}")
    for case in registry.LOSSES
    if "focal" in case.name or case.name == "multilabel_soft_margin"
    for oid, opts in case.options
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case, options", FOCAL_CASES)
def test_gradient_matches_reference_grad(case, options, reduction):
    rng = _rng("refgrad", case.name, repr(options), reduction)
    for shape in case.shapes(options):
        y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
        sw = registry.make_sample_weight(rng, case.per_sample_shape(shape, options), "full")
        value, grad = cyloss.value_and_grad(case.name, y_true, y_pred, sample_weight=sw,
                                            reduction=reduction, **options)
        plain = case.function(y_true, y_pred, sample_weight=sw, reduction=reduction,
                              **options)
        assert np.asarray(value).tobytes() == np.asarray(plain).tobytes()
        g, mag, den_condition = reference_grad.gradient(
            case.name, y_true, y_pred, sample_weight=sw, reduction=reduction, **options)
        assert grad.shape == y_pred.shape
        # gamma < 1 at u = 1 - p_t = 0 (an exact 0 or 1 at its own target): the derivative
        # of u^gamma is infinite, in cyloss as in the reference (NaN where a zero weight
        # meets it)
        finite = np.isfinite(g)
        same = (grad == g) | (np.isnan(grad) & np.isnan(g))
        assert same[~finite].all(), (grad[~finite], g[~finite])
        with np.errstate(invalid="ignore"):
            tol = 1e-10 * (np.abs(g) + mag) * (1.0 + den_condition) + 1e-300
            bad = finite & ~(np.abs(grad - g) <= tol)
        assert not bad.any(), (grad[bad], g[bad])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_torchvision_sigmoid_focal_loss_convention(reduction):
    # README: torchvision's sigmoid_focal_loss (its formula, written in torch) is the
    # balanced binary focal loss over the flattened elements.
    torch = pytest.importorskip("torch")
    rng = _rng("torchvision", reduction)
    t = (rng.random((8, 3)) < 0.3).astype(float)
    x = rng.normal(0.0, 3.0, (8, 3))
    tx, tt = torch.tensor(x), torch.tensor(t)
    p = torch.sigmoid(tx)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(tx, tt, reduction="none")
    p_t = p * tt + (1 - p) * (1 - tt)
    loss = ce * ((1 - p_t) ** 2.0)
    loss = (0.3 * tt + 0.7 * (1 - tt)) * loss
    expected = {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction].numpy()
    actual = cyloss.binary_focal_crossentropy(t.ravel(), x.ravel(), from_logits=True,
                                              apply_class_balancing=True, alpha=0.3,
                                              gamma=2.0, reduction=reduction)
    np.testing.assert_allclose(actual, expected.ravel() if reduction == "none" else expected,
                               rtol=1e-12)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_focal_layouts_give_the_same_bits(from_logits):
    # F-ordered, strided and class-axis-first views are read in place: the same bits as
    # the contiguous arrays, values and gradients.
    rng = _rng("layouts", from_logits)
    y, x = _binary_inputs(rng, (30, 6), from_logits)
    yc, xc = _categorical_inputs(rng, (30, 6), from_logits)
    labels = rng.integers(0, 6, 30)
    cases = [
        ("binary_focal_crossentropy", y, x, {"from_logits": from_logits, "gamma": 1.5}),
        ("categorical_focal_crossentropy", yc, xc, {"from_logits": from_logits}),
        ("sparse_categorical_focal_crossentropy", labels, xc,
         {"from_logits": from_logits, "label_smoothing": 0.1}),
    ]
    if from_logits:
        cases.append(("multilabel_soft_margin", y, x, {"class_weight": np.arange(6.0)}))
    for name, a, b, opts in cases:
        fn = getattr(cyloss, name)
        base = fn(a, b, reduction="none", **opts)
        _, g = cyloss.value_and_grad(name, a, b, reduction="sum", **opts)
        fa = np.asfortranarray(a) if a.ndim == 2 else a
        for bb in (np.asfortranarray(b), np.repeat(b, 2, axis=1)[:, ::2]):
            other = fn(fa, bb, reduction="none", **opts)
            assert other.tobytes() == base.tobytes(), name
            _, og = cyloss.value_and_grad(name, fa, bb, reduction="sum", **opts)
            assert og.tobytes() == g.tobytes(), name
        if name != "binary_focal_crossentropy" and name != "multilabel_soft_margin":
            # the class axis first (axis=0) in place
            ta = a if a.ndim == 1 else a.T
            other = fn(ta, b.T, reduction="none", axis=0, **opts)
            assert other.tobytes() == base.tobytes(), name


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_focal_float32_gradients_close_to_float64(from_logits):
    rng = _rng("f32grad", from_logits)
    x = rng.normal(0.0, 3.0, (200, 7))
    if not from_logits:
        x = np.abs(x) + 0.01
    x32 = x.astype(np.float32)
    labels = rng.integers(0, 7, 200)
    y = rng.random((200, 7))
    for name, yy, opts in [
        ("categorical_focal_crossentropy", np.eye(7)[labels], {"label_smoothing": 0.1}),
        ("sparse_categorical_focal_crossentropy", labels, {"gamma": 0.5}),
        ("binary_focal_crossentropy", y, {"gamma": 1.5}),
    ]:
        if name.startswith("binary") and not from_logits:
            x32 = (x / x.max()).astype(np.float32)
        _, g32 = cyloss.value_and_grad(name, yy, x32, from_logits=from_logits,
                                       reduction="sum", **opts)
        _, g64 = cyloss.value_and_grad(name, yy, x32.astype(np.float64),
                                       from_logits=from_logits, reduction="sum", **opts)
        assert g32.dtype == np.float32
        assert np.max(np.abs(g32 - g64)) <= 1e-6 * np.max(np.abs(g64)), name
