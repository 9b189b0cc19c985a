"""Values (SPEC sections 1-3 and 7): what every loss computes, for every option.

Expected values come from, and only from: SPEC section 7's published figures, closed
forms, the independent float64 reference of ``tests/reference.py``, PyTorch and Keras
(float64, when importable).  Never from cyloss's own output.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

import cyloss
import reference
import registry
from registry import loss_option_params, loss_params, make_sample_weight

REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
SAMPLE_WEIGHT_KINDS = (None, "full", "column")

# float64: the reference is exactly the SPEC formula; only summation order and libm
# rounding differ, so 1e-9 relative leaves a margin of about 10^6 ulps.
RTOL64 = 1e-9
ATOL64 = 1e-15


def _seed(*parts) -> int:
    """A stable seed from the test's parameters (reproducible failures)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(repr(parts))) % (2**32)


def _call(case, y_true, y_pred, options, reduction, sample_weight=None):
    return case.function(
        y_true, y_pred, **options, sample_weight=sample_weight, reduction=reduction
    )


def _ref(case, y_true, y_pred, options, reduction, sample_weight=None):
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.dtype.kind == "f":
        y_true = y_true.astype(np.float64)
    return case.reference(
        y_true, y_pred, **options, sample_weight=sample_weight, reduction=reduction
    )


def assert_result(actual, expected, reduction, per_sample, dtype, rtol, atol):
    """Type, shape, dtype and value of a cyloss result against an expected one."""
    if reduction == "none":
        assert isinstance(actual, np.ndarray), type(actual)
        assert actual.shape == tuple(per_sample)
        assert actual.dtype == dtype
        np.testing.assert_allclose(
            actual.astype(np.float64), expected, rtol=rtol, atol=atol
        )
    else:
        assert type(actual) is float, type(actual)
        assert math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol), (
            actual,
            expected,
        )


# --------------------------------------------------------------------------- #
# SPEC section 7: the published table
# --------------------------------------------------------------------------- #
SPEC_TABLE = [
    pytest.param(
        cyloss.categorical_crossentropy,
        [[0, 1, 0], [0, 0, 1]],
        [[0.05, 0.95, 0], [0.1, 0.8, 0.1]],
        1.1769392,
        # closed form: (-ln 0.95 - ln 0.1) / 2
        (-math.log(0.95) - math.log(0.1)) / 2,
        id="categorical",
    ),
    pytest.param(
        cyloss.binary_crossentropy,
        [[0], [1]],
        [[0.4], [0.6]],
        0.5108256,
        # SPEC's remark: exactly -ln 0.6 (no second epsilon inside the log)
        -math.log(0.6),
        id="binary",
    ),
    pytest.param(
        cyloss.mean_absolute_error, [[0.0], [0.0]], [[1.0], [1.0]], 1.0, 1.0, id="mae"
    ),
    pytest.param(
        cyloss.mean_squared_error, [[0.0], [1.0]], [[1.0], [1.0]], 0.5, 0.5, id="mse"
    ),
    pytest.param(cyloss.huber, [[0], [1]], [[0.6], [0.4]], 0.18, 0.5 * 0.6**2, id="huber"),
]


@pytest.mark.parametrize("function, y_true, y_pred, published, closed_form", SPEC_TABLE)
def test_spec_table(function, y_true, y_pred, published, closed_form):
    value = function(y_true, y_pred)
    assert type(value) is float
    # to the digits SPEC prints (7 decimals) ...
    assert abs(value - published) <= 0.5e-7, value
    # ... and to full precision against the closed form behind the figure
    assert math.isclose(value, closed_form, rel_tol=1e-12), (value, closed_form)


def test_spec_table_binary_is_not_tf_keras_2_figure():
    # SPEC: tf.keras 2 printed 0.5108254 because of a second epsilon; cyloss must not.
    value = cyloss.binary_crossentropy([[0], [1]], [[0.4], [0.6]])
    assert abs(value - 0.5108254) > 1e-7


# --------------------------------------------------------------------------- #
# Agreement with the reference: every loss x option x reduction x sample_weight
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("sw_kind", SAMPLE_WEIGHT_KINDS, ids=["no_sw", "sw", "sw_col"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case, options", loss_option_params())
def test_matches_reference_float64(case, options, reduction, sw_kind):
    rng = np.random.default_rng(_seed(case.name, options, reduction, sw_kind))
    for shape in case.shapes(options):
        y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
        per_sample = case.per_sample_shape(shape, options)
        sw = make_sample_weight(rng, per_sample, sw_kind)
        expected = _ref(case, y_true, y_pred, options, reduction, sw)
        actual = _call(case, y_true, y_pred, options, reduction, sw)
        assert_result(actual, expected, reduction, per_sample, np.float64, RTOL64, ATOL64)


def _assert_close_f32(actual, expected, reduction):
    # SPEC section 4: float32 agrees with the float64 result to ~1e-6 relative.  The
    # per-sample arrays get, on top, an absolute slack of 1e-6 of their largest entry
    # (a tiny per-sample loss in float32 carries the rounding of its larger inputs).
    if reduction == "none":
        assert actual.dtype == np.float32
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
        np.testing.assert_allclose(
            actual.astype(np.float64), expected, rtol=2e-6, atol=1e-6 * scale
        )
    else:
        assert type(actual) is float
        assert math.isclose(actual, expected, rel_tol=2e-6, abs_tol=1e-12), (
            actual,
            expected,
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case, options", loss_option_params())
def test_float32_close_to_float64(case, options, reduction):
    rng = np.random.default_rng(_seed("f32", case.name, options, reduction))
    for shape in case.shapes(options):
        y_true, y_pred = case.make_inputs(rng, shape, np.float32, options, extremes=False)
        per_sample = case.per_sample_shape(shape, options)
        sw = make_sample_weight(rng, per_sample, "full")
        # the float64 result of exactly the same (float32-representable) inputs
        expected = _ref(case, y_true, y_pred, options, reduction, sw)
        actual = _call(case, y_true, y_pred, options, reduction, sw)
        if reduction == "none":
            assert actual.shape == per_sample
        _assert_close_f32(actual, expected, reduction)


def _cancelling_samples(rng, trials):
    # Small float32 samples whose terms have both signs, so that their sum is often far
    # below the sum of their magnitudes (where rounding each term to float32 shows).
    for _ in range(trials):
        n = int(rng.integers(3, 40))
        y = np.where(rng.random(n) < 0.5, rng.poisson(2.0, n), rng.uniform(0.0, 5.0, n))
        yield y.astype(np.float32), rng.uniform(0.05, 8.0, n).astype(np.float32)


@pytest.mark.parametrize("epsilon", [1e-300, 1e-42, 1e-30, 1e-7])
def test_float32_probabilities_clipped_below_float32_range(epsilon):
    # The clip bounds are double (README); float32 cannot hold 1e-300 (it rounds to 0) nor
    # 1e-42 (a subnormal), yet a clipped probability must keep -log(epsilon). Found by the
    # 1000-example fuzz run (binary_crossentropy, epsilon=1e-300, y_pred=0 in float32).
    y = np.array([0.25, 0.75, 0.5, 1.0])
    p = np.array([0.0, 1.0, 0.5, 0.0])
    pc = np.clip(p, epsilon, 1.0 - epsilon)   # 1 - 1e-30 is 1.0 in double: -log(0) = inf
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(pc), np.log1p(-pc)
    for pw in (1.0, 3.3):
        # a zero coefficient contributes 0, even against an infinite log (README)
        want = -(np.where(y > 0, pw * y * log_p, 0.0) + np.where(y < 1, (1 - y) * log_q, 0.0))
        got = cyloss.binary_crossentropy(y[:, None], p[:, None].astype(np.float32),
                                         epsilon=epsilon, pos_weight=pw, reduction="none")
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=2e-6)


def _stirling(y):
    safe = np.where(y > 1, y, 1.0)
    return np.where(y > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe), 0.0)


@pytest.mark.parametrize(
    "function, to_input, formula",
    [
        (cyloss.poisson, lambda p: p, lambda y, x: x - y * np.log(x + 1e-7)),
        (cyloss.poisson_nll, np.log, lambda y, x: np.exp(x) - y * x),
        (lambda y, x: cyloss.poisson_nll(y, x, log_input=False, full=True), lambda p: p,
         lambda y, x: x - y * np.log(x + 1e-8) + _stirling(y)),
    ],
    ids=["poisson", "poisson_nll_log_input", "poisson_nll_full"],
)
def test_float32_sums_that_cancel(function, to_input, formula):
    # SPEC section 4: the float32 result agrees with the float64 one to ~1e-6 relative,
    # also where the per-element terms cancel (so per-element float32 rounding is not
    # enough: the logarithms and exponentials of the float32 paths must do better).
    rng = np.random.default_rng(2024)
    worst = 0.0
    for y, p in _cancelling_samples(rng, 400):
        x = to_input(p.astype(np.float64)).astype(np.float32)
        want = float(np.mean(formula(y.astype(np.float64), x.astype(np.float64))))
        got = function(y, x)
        worst = max(worst, abs(got - want) / abs(want))
    assert worst <= 1e-6, worst


@pytest.mark.parametrize("case", loss_params())
def test_float16_computes_in_float32(case):
    options = dict(case.options[0][1])
    rng = np.random.default_rng(_seed("f16", case.name))
    shape = case.shapes(options)[0]
    y_true, y_pred = case.make_inputs(rng, shape, np.float16, options, extremes=False)
    actual = _call(case, y_true, y_pred, options, "none")
    assert actual.dtype == np.float32
    expected = _ref(case, y_true, y_pred, options, "none")
    _assert_close_f32(actual, expected, "none")
    total = _call(case, y_true, y_pred, options, "sum")
    assert type(total) is float
    _assert_close_f32(total, _ref(case, y_true, y_pred, options, "sum"), "sum")


def test_integer_and_bool_predictions_compute_in_float64():
    y_true = np.array([[1, 2], [3, 4]], dtype=np.int32)
    y_pred = np.array([[2, 2], [3, 7]], dtype=np.int64)
    out = cyloss.mean_absolute_error(y_true, y_pred, reduction="none")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.5, 1.5])
    out = cyloss.mean_squared_error(y_true, y_pred, reduction="none")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.5, 4.5])
    # bool probabilities 0/1 are valid binary input: clipped to eps / 1 - eps
    out = cyloss.binary_crossentropy(
        np.array([1.0, 0.0]), np.array([True, True]), reduction="none"
    )
    assert out.dtype == np.float64
    eps = 1e-7
    np.testing.assert_allclose(out, [-math.log1p(-eps), -math.log(eps)], rtol=1e-9)


# --------------------------------------------------------------------------- #
# Shapes of SPEC section 2 that the grid does not reach
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "name",
    ["binary_crossentropy", "mean_absolute_error", "mean_squared_error", "huber", "smooth_l1"],
)
@pytest.mark.parametrize("squeezed_side", ["y_true", "y_pred", "both"])
def test_trailing_axis_of_one(name, squeezed_side):
    case = registry.BY_NAME[name]
    rng = np.random.default_rng(_seed("trail", name, squeezed_side))
    y_true, y_pred = case.make_inputs(rng, (8,), np.float64, {})
    if squeezed_side in ("y_true", "both"):
        y_true = y_true[:, None]
    if squeezed_side in ("y_pred", "both"):
        y_pred = y_pred[:, None]
    # every form is 8 samples of one output each
    expected = _ref(case, y_true.reshape(-1), y_pred.reshape(-1), {}, "none")
    actual = case.function(y_true, y_pred, reduction="none")
    assert actual.shape == (8,)
    np.testing.assert_allclose(actual, expected, rtol=RTOL64, atol=ATOL64)
    assert math.isclose(
        case.function(y_true, y_pred), float(np.mean(expected)), rel_tol=RTOL64
    )


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("label_form", ["size1_axis", "float_integers"])
def test_sparse_label_forms(from_logits, label_form):
    case = registry.BY_NAME["sparse_categorical_crossentropy"]
    options = {"from_logits": from_logits}
    rng = np.random.default_rng(_seed("labels", from_logits, label_form))
    labels, y_pred = case.make_inputs(rng, (7, 5), np.float64, options)
    expected = _ref(case, labels, y_pred, options, "none")
    other = labels[:, None] if label_form == "size1_axis" else labels.astype(np.float64)
    actual = case.function(other, y_pred, **options, reduction="none")
    assert actual.shape == (7,)
    np.testing.assert_allclose(actual, expected, rtol=RTOL64, atol=ATOL64)


def test_sample_weight_broadcasts_to_per_sample_shape():
    case = registry.BY_NAME["mean_squared_error"]
    rng = np.random.default_rng(7)
    y_true, y_pred = case.make_inputs(rng, (3, 4, 2), np.float64, {})  # per-sample (3, 4)
    # numpy broadcasting of a lower-rank weight and of a scalar; (n, 1) forms are
    # exercised by the "sw_col" cases of the grid
    for sw in (np.array([0.5, 1.0, 2.0, 0.0]), np.array([[0.5, 1.0, 2.0, 0.0]]), 3.0):
        for reduction in REDUCTIONS:
            expected = _ref(case, y_true, y_pred, {}, reduction, sw)
            actual = case.function(y_true, y_pred, sample_weight=sw, reduction=reduction)
            assert_result(actual, expected, reduction, (3, 4), np.float64, RTOL64, ATOL64)


def test_sparse_weighted_mean_by_hand():
    # l_i = class_weight[y_i] * (-log p_i); weighted_mean = sum w l / sum w cw[y]
    p = np.array([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]])
    labels = np.array([0, 1, 1])
    cw = np.array([2.0, 0.5])
    sw = np.array([1.0, 3.0, 0.5])
    losses = cw[labels] * -np.log(p[np.arange(3), labels])
    expected = float(np.sum(sw * losses) / np.sum(sw * cw[labels]))
    actual = cyloss.sparse_categorical_crossentropy(
        labels, p, class_weight=cw, sample_weight=sw, reduction="weighted_mean"
    )
    assert math.isclose(actual, expected, rel_tol=1e-12)
    mean = cyloss.sparse_categorical_crossentropy(
        labels, p, class_weight=cw, sample_weight=sw, reduction="mean"
    )
    assert math.isclose(mean, float(np.sum(sw * losses) / 3), rel_tol=1e-12)


def test_ignore_index_not_counted_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    labels = np.array([0, -1, 1])
    lse = np.log(np.exp(logits).sum(axis=1))
    l0, l2 = lse[0] - 2.0, lse[2] + 5.0
    kwargs = dict(from_logits=True, ignore_index=-1)
    f = cyloss.sparse_categorical_crossentropy
    assert math.isclose(f(labels, logits, **kwargs), (l0 + l2) / 2, rel_tol=1e-12)
    assert math.isclose(f(labels, logits, **kwargs, reduction="sum"), l0 + l2, rel_tol=1e-12)
    none = f(labels, logits, **kwargs, reduction="none")
    np.testing.assert_allclose(none, [l0, 0.0, l2], rtol=1e-12)
    assert none[1] == 0.0


def test_label_smoothing_sparse_closed_form_by_hand():
    # SPEC: (1 - s)(lse - x_label) + s (lse - mean_c x_c)
    x = np.array([[1.0, -2.0, 0.5, 3.0]])
    s = 0.3
    lse = float(np.log(np.exp(x).sum()))
    expected = (1 - s) * (lse - 0.5) + s * (lse - float(x.mean()))
    actual = cyloss.sparse_categorical_crossentropy(
        [2], x, from_logits=True, label_smoothing=s
    )
    assert math.isclose(actual, expected, rel_tol=1e-12)


# --------------------------------------------------------------------------- #
# Aliases, reductions, zero denominators, classes
# --------------------------------------------------------------------------- #
def test_function_aliases():
    assert cyloss.mae is cyloss.mean_absolute_error
    assert cyloss.mse is cyloss.mean_squared_error


@pytest.mark.parametrize("alias, canonical", list(reference.REDUCTION_ALIASES.items()))
@pytest.mark.parametrize("case", loss_params())
def test_reduction_aliases(case, alias, canonical):
    oid, options = case.options[-1]
    rng = np.random.default_rng(_seed("alias", case.name, alias))
    shape = case.shapes(options)[0]
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    sw = make_sample_weight(rng, case.per_sample_shape(shape, options), "full")
    a = _call(case, y_true, y_pred, options, alias, sw)
    b = _call(case, y_true, y_pred, options, canonical, sw)
    assert type(a) is float and a == b
    # and the canonical one is what the reference says the alias means
    expected = _ref(case, y_true, y_pred, options, canonical, sw)
    assert math.isclose(a, expected, rel_tol=RTOL64)


def _empty_inputs(case):
    if case.name in registry.LABEL_LOSSES:
        return np.zeros((0,), np.int64), np.zeros((0, 3)), (0,)
    if case.name in registry.CLASS_AXIS_LOSSES:
        return np.zeros((0, 3)), np.zeros((0, 3)), (0,)
    if case.name.startswith("sparse"):
        return np.zeros((0,), np.int64), np.zeros((0, 3)), (0,)
    return np.zeros((0, 4)), np.zeros((0, 4)), (0,)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", loss_params())
def test_empty_input(case, reduction):
    y_true, y_pred, per_sample = _empty_inputs(case)
    # dice/tversky sum over every axis by default (the input is one sample): per row here
    extra = {"axis": -1} if case.name in reference.OVERLAP_LOSSES else {}
    out = case.function(y_true, y_pred, reduction=reduction, **extra)
    if reduction == "none":
        assert isinstance(out, np.ndarray) and out.shape == per_sample
        assert out.dtype == np.float64
    else:
        assert type(out) is float and out == 0.0


@pytest.mark.parametrize("case", loss_params())
def test_all_weights_zero_weighted_mean(case):
    oid, options = case.options[0]
    rng = np.random.default_rng(_seed("zeros", case.name))
    shape = case.shapes(options)[0]
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    sw = np.zeros(case.per_sample_shape(shape, options))
    for reduction in ("weighted_mean", "mean", "sum"):
        out = _call(case, y_true, y_pred, options, reduction, sw)
        assert type(out) is float and out == 0.0, (reduction, out)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_all_samples_ignored(from_logits, reduction):
    labels = np.full((4,), 7)
    y_pred = np.full((4, 3), 0.5)
    out = cyloss.sparse_categorical_crossentropy(
        labels, y_pred, from_logits=from_logits, ignore_index=7, reduction=reduction
    )
    if reduction == "none":
        np.testing.assert_array_equal(out, np.zeros(4))
    else:
        assert type(out) is float and out == 0.0


def test_zero_class_weights_weighted_mean():
    labels = np.array([0, 0, 2])
    y_pred = np.array([[0.2, 0.3, 0.5]] * 3)
    cw = np.array([0.0, 1.0, 0.0])  # every present label has weight 0
    out = cyloss.sparse_categorical_crossentropy(
        labels, y_pred, class_weight=cw, reduction="weighted_mean"
    )
    assert type(out) is float and out == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case, options", loss_option_params())
def test_class_call_equals_function(case, options, reduction):
    rng = np.random.default_rng(_seed("class", case.name, options, reduction))
    shape = case.shapes(options)[0]
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    sw = make_sample_weight(rng, case.per_sample_shape(shape, options), "full")
    loss = case.cls(**options, reduction=reduction)
    for weight in (None, sw):
        by_class = loss(y_true, y_pred, sample_weight=weight)
        by_function = _call(case, y_true, y_pred, options, reduction, weight)
        if reduction == "none":
            assert isinstance(by_class, np.ndarray)
            np.testing.assert_array_equal(by_class, by_function)
        else:
            assert type(by_class) is float and by_class == by_function
    # and the default reduction of a class is "mean"
    default = case.cls(**options)(y_true, y_pred)
    assert default == _call(case, y_true, y_pred, options, "mean")


# --------------------------------------------------------------------------- #
# PyTorch (float64, 1e-9 relative)
# --------------------------------------------------------------------------- #
TORCH_RTOL = 1e-9


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _close(actual, expected, rtol=TORCH_RTOL, atol=1e-14):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol)


TORCH_CE_CASES = [
    pytest.param(ii, cw, s, shape, id=f"ignore{ii}-cw{cw is not None}-ls{s}-{len(shape)}d")
    for ii in (None, -100, 1)
    for cw in (None, registry.CLASS_WEIGHT)
    for s in (0.0, 0.15)
    for shape in ((11, 5), (3, 5, 4))
]


@pytest.mark.parametrize("ignore_index, class_weight, label_smoothing, shape", TORCH_CE_CASES)
def test_torch_cross_entropy(torch, ignore_index, class_weight, label_smoothing, shape):
    F = torch.nn.functional
    rng = np.random.default_rng(
        _seed("torch_ce", ignore_index, class_weight is None, label_smoothing, shape)
    )
    logits = rng.normal(0, 3, size=shape)
    per_sample = (shape[0],) + shape[2:]
    labels = rng.integers(0, shape[1], size=per_sample)
    if ignore_index is not None and ignore_index < 0:
        labels[rng.random(per_sample) < 0.25] = ignore_index
    t_kwargs = {"label_smoothing": label_smoothing}
    c_kwargs = {"from_logits": True, "axis": 1, "label_smoothing": label_smoothing}
    if ignore_index is not None:
        t_kwargs["ignore_index"] = ignore_index
        c_kwargs["ignore_index"] = ignore_index
    if class_weight is not None:
        t_kwargs["weight"] = torch.tensor(class_weight, dtype=torch.float64)
        c_kwargs["class_weight"] = class_weight
    x_t = torch.tensor(logits, dtype=torch.float64)
    y_t = torch.tensor(labels, dtype=torch.long)
    f = cyloss.sparse_categorical_crossentropy

    none_t = F.cross_entropy(x_t, y_t, reduction="none", **t_kwargs).numpy()
    _close(f(labels, logits, **c_kwargs, reduction="none"), none_t)
    sum_t = F.cross_entropy(x_t, y_t, reduction="sum", **t_kwargs).item()
    _close(f(labels, logits, **c_kwargs, reduction="sum"), sum_t)
    if not (label_smoothing and ignore_index is not None):
        # torch's "mean" is sum l / sum class_weight[label] over non-ignored samples
        mean_t = F.cross_entropy(x_t, y_t, reduction="mean", **t_kwargs).item()
        _close(f(labels, logits, **c_kwargs, reduction="weighted_mean"), mean_t)


@pytest.mark.parametrize(
    "pos_weight", [None, 3.0, registry.POS_WEIGHT_VECTOR], ids=["no_pw", "pw3", "pw_vec"]
)
@pytest.mark.parametrize("shape", [(7, 4), (2, 3, 4)], ids=["2d", "3d"])
def test_torch_bce_with_logits(torch, pos_weight, shape):
    F = torch.nn.functional
    rng = np.random.default_rng(_seed("torch_bce", shape, pos_weight is None))
    x = rng.normal(0, 5, size=shape)
    y = np.where(rng.random(shape) < 0.5, rng.integers(0, 2, shape), rng.random(shape))
    kw = {}
    if pos_weight is not None:
        kw["pos_weight"] = torch.as_tensor(np.asarray(pos_weight, dtype=np.float64))
    xt, yt = torch.tensor(x), torch.tensor(y)
    none_t = F.binary_cross_entropy_with_logits(xt, yt, reduction="none", **kw).numpy()
    f = cyloss.binary_crossentropy
    _close(f(y, x, from_logits=True, pos_weight=pos_weight, reduction="none"), none_t.mean(-1))
    mean_t = F.binary_cross_entropy_with_logits(xt, yt, reduction="mean", **kw).item()
    _close(f(y, x, from_logits=True, pos_weight=pos_weight), mean_t)


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 0.0])
def test_torch_smooth_l1(torch, beta):
    rng = np.random.default_rng(_seed("torch_sl1", beta))
    y = rng.normal(size=(40,))
    p = y + rng.normal(0, 1.5, size=(40,))
    t = torch.nn.functional.smooth_l1_loss(
        torch.tensor(p), torch.tensor(y), beta=beta, reduction="none"
    ).numpy()
    _close(cyloss.smooth_l1(y, p, beta=beta, reduction="none"), t)
    _close(cyloss.smooth_l1(y, p, beta=beta), t.mean())
    _close(cyloss.smooth_l1(y, p, beta=beta, reduction="sum"), t.sum())


@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_torch_huber(torch, delta):
    rng = np.random.default_rng(_seed("torch_huber", delta))
    y = rng.normal(size=(8, 5))
    p = y + rng.normal(0, 1.5, size=(8, 5))
    t = torch.nn.functional.huber_loss(
        torch.tensor(p), torch.tensor(y), delta=delta, reduction="none"
    ).numpy()
    _close(cyloss.huber(y, p, delta=delta, reduction="none"), t.mean(-1))
    _close(cyloss.huber(y, p, delta=delta), t.mean())


# --------------------------------------------------------------------------- #
# Keras (float64, 1e-9 relative; Keras clips with its epsilon 1e-7 like cyloss)
# --------------------------------------------------------------------------- #
KERAS_RTOL = 1e-9


def _keras_backend() -> str:
    """numpy, as asked; Keras's numpy backend imports jax and scipy, so fall back to
    the torch backend where those are missing and torch is present."""
    if importlib.util.find_spec("jax") and importlib.util.find_spec("scipy"):
        return "numpy"
    if importlib.util.find_spec("torch"):
        return "torch"
    return "numpy"


@pytest.fixture(scope="module")
def keras():
    os.environ["KERAS_BACKEND"] = _keras_backend()
    keras = pytest.importorskip("keras")
    # Keras 3 on a non-TensorFlow backend demotes float64 to float32 in its type
    # promotion (``BIT64_TO_BIT32_DTYPE``, JAX's x64-off default), so its losses would
    # run in float32 whatever the input.  Restore the TensorFlow backend's behaviour
    # (keep float64) for these comparisons; the formulas are untouched.
    from keras.src.backend.common import dtypes as keras_dtypes

    demotion = keras_dtypes.BIT64_TO_BIT32_DTYPE
    saved = dict(demotion)
    demotion["float64"] = "float64"
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    # the comparison is meaningless unless Keras really computes in float64 now
    y, p = np.array([[0.0, 1.0, 0.3]]), np.array([[0.2, 0.6, 0.5]])
    probe = float(_knp(keras, keras.losses.binary_crossentropy(y, p))[0])
    exact = float(np.mean(-(y * np.log(p) + (1 - y) * np.log1p(-p))))
    assert math.isclose(probe, exact, rel_tol=1e-13), "Keras does not compute in float64"
    yield keras
    keras.config.set_floatx(previous)
    demotion.clear()
    demotion.update(saved)


def _knp(keras, value):
    if hasattr(value, "detach"):  # torch backend
        return value.detach().cpu().numpy()
    return np.asarray(keras.ops.convert_to_numpy(value))


KERAS_CASES = [
    ("categorical_crossentropy", {"from_logits": False}, (6, 5)),
    ("categorical_crossentropy", {"from_logits": True}, (6, 5)),
    ("categorical_crossentropy", {"from_logits": False, "label_smoothing": 0.2}, (2, 3, 5)),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, (6, 5)),
    ("categorical_crossentropy", {"from_logits": False, "axis": 1}, (3, 5, 4)),
    ("categorical_crossentropy", {"from_logits": True, "axis": 0}, (5, 6)),
    ("sparse_categorical_crossentropy", {"from_logits": False}, (9, 5)),
    ("sparse_categorical_crossentropy", {"from_logits": True}, (2, 3, 5)),
    # (Keras's numpy backend supports sparse labels only with the class axis last)
    ("sparse_categorical_crossentropy", {"from_logits": False}, (2, 3, 5)),
    ("binary_crossentropy", {"from_logits": False}, (6, 4)),
    ("binary_crossentropy", {"from_logits": True}, (2, 3, 4)),
    ("binary_crossentropy", {"from_logits": False, "label_smoothing": 0.1}, (6, 4)),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, (6, 4)),
    ("mean_absolute_error", {}, (6, 4)),
    ("mean_squared_error", {}, (2, 3, 4)),
    ("huber", {}, (6, 4)),
    ("huber", {"delta": 0.3}, (6, 4)),
]
KERAS_IDS = [
    f"{name}-" + ("-".join(f"{k}{v}" for k, v in opts.items()) or "default") + f"-{len(s)}d"
    for name, opts, s in KERAS_CASES
]
KERAS_CLASSES = {
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_squared_error": "MeanSquaredError",
    "huber": "Huber",
}


@pytest.mark.parametrize("name, options, shape", KERAS_CASES, ids=KERAS_IDS)
def test_keras_per_sample(keras, name, options, shape):
    case = registry.BY_NAME[name]
    rng = np.random.default_rng(_seed("keras", name, options, shape))
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    expected = _knp(keras, getattr(keras.losses, name)(y_true, y_pred, **options))
    actual = case.function(y_true, y_pred, **options, reduction="none")
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL, atol=1e-15)


@pytest.mark.parametrize(
    "keras_reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"]
)
@pytest.mark.parametrize("name, options, shape", KERAS_CASES, ids=KERAS_IDS)
def test_keras_class_with_sample_weight(keras, name, options, shape, keras_reduction):
    case = registry.BY_NAME[name]
    rng = np.random.default_rng(_seed("keras_cls", name, options, shape))
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    sw = make_sample_weight(rng, case.per_sample_shape(shape, options), "full")
    k_loss = getattr(keras.losses, KERAS_CLASSES[name])(
        **options, reduction=keras_reduction, dtype="float64"
    )
    expected = float(_knp(keras, k_loss(y_true, y_pred, sample_weight=sw)))
    c_loss = case.cls(**options, reduction=keras_reduction)
    actual = c_loss(y_true, y_pred, sample_weight=sw)
    assert type(actual) is float
    assert math.isclose(actual, expected, rel_tol=KERAS_RTOL, abs_tol=1e-15), (actual, expected)


# Every elementwise loss whose table entry names a Keras 3 function, with each option of
# its grid and the extreme inputs of its kind of input (the table's `inputs`): a loss
# added to the table is compared with Keras without a line here.
KERAS_ELEMENTWISE = [e for e in cyloss.losses.ELEMENTWISE if e.keras]

# (row 0 of y_true or None to keep it, row 0 of y_pred as a function of y_true's row 0),
# then y_pred[1, 0]: errors of every size and an infinite one for real inputs; for
# counts, rates at and below Keras's epsilon, huge ones and negative ones (NaN in Keras's
# Poisson, clipped in its MSLE); for labels, margins far on both sides, on the kink and
# an infinite prediction.
KERAS_EXTREMES = {
    "real": (None, lambda y: y + np.array([1e3, -30.0, 1e-8, -0.125]), np.inf),
    "nonnegative": ([0.0, 1e-9, 3.0, 1e6], lambda y: np.array([1e-12, 0.0, 1e-7, 1e7]),
                    -0.5),
    "labels": (None, lambda y: np.array([1e3, -1e3, 1.0, -1.0]) * np.where(y > 0, 1, -1),
               np.inf),
}


@pytest.mark.parametrize("entry", KERAS_ELEMENTWISE, ids=lambda e: e.function)
def test_keras_elementwise_table(keras, entry):
    case = registry.BY_NAME[entry.function]
    rng = np.random.default_rng(_seed("keras_table", entry.function))
    row0_true, row0_pred, inf_pred = KERAS_EXTREMES[entry.inputs]
    for _, options in case.options:
        y_true, y_pred = case.make_inputs(rng, (6, 4), np.float64, options)
        if row0_true is not None:
            y_true[0] = row0_true
        y_pred[0] = row0_pred(y_true[0])
        y_pred[1, 0] = inf_pred
        with np.errstate(invalid="ignore"):   # Keras's own NaN (Poisson at p < -eps)
            expected = _knp(keras, getattr(keras.losses, entry.keras)(y_true, y_pred,
                                                                      **options))
        actual = case.function(y_true, y_pred, **options, reduction="none")
        np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL, atol=1e-15)
        sw = make_sample_weight(rng, (4,), "full")
        k_loss = getattr(keras.losses, entry.cls)(**options, dtype="float64")
        expected = float(_knp(keras, k_loss(y_true[2:], y_pred[2:], sample_weight=sw)))
        actual = case.cls(**options)(y_true[2:], y_pred[2:], sample_weight=sw)
        assert math.isclose(actual, expected, rel_tol=KERAS_RTOL, abs_tol=1e-15), (
            actual, expected)


@pytest.mark.parametrize("entry", KERAS_ELEMENTWISE, ids=lambda e: e.function)
def test_keras_elementwise_table_invalid_inputs(keras, entry):
    # Inputs outside a loss's domain (negative counts, labels that are neither 0/1 nor
    # -1/1, NaN) still give what Keras gives, NaN where Keras's is NaN.
    rng = np.random.default_rng(_seed("keras_invalid", entry.function))
    y_true = rng.normal(0.0, 2.0, size=(5, 3))
    y_pred = rng.normal(0.0, 2.0, size=(5, 3))
    y_true[0] = [0.0, 1.0, -1.0]            # labels -1, 0 and 1: no conversion
    y_pred[1] = [-1e-7, -2e-7, 0.0]          # Poisson's p + eps at and below 0
    y_true[2, 0], y_pred[3, 1] = np.nan, np.nan
    with np.errstate(all="ignore"):
        expected = _knp(keras, getattr(keras.losses, entry.keras)(y_true, y_pred))
    actual = getattr(cyloss, entry.function)(y_true, y_pred, reduction="none")
    np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL, atol=1e-15)


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
@pytest.mark.parametrize("labels", [[0.0, 1.0], [-1.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 0.5, 1.0],
                                    [1.0], [0.0], [0.0, 1.0, np.nan]], ids=str)
def test_keras_hinge_label_rule(keras, name, labels):
    # Keras converts y_true to 2 y - 1 only when every value of it is 0 or 1: the one
    # value that is neither, anywhere in the array, changes every sample's loss.
    rng = np.random.default_rng(_seed("hinge_rule", name, labels))
    for dtype in (np.float64,) if np.isnan(labels).any() else (np.float64, np.int64):
        y_true = rng.choice(labels, size=(7, 3)).astype(dtype)
        y_true.reshape(-1)[: len(labels)] = labels   # each label at least once
        y_pred = rng.normal(0.0, 1.5, size=(7, 3))
        expected = _knp(keras, getattr(keras.losses, name)(y_true, y_pred))
        actual = getattr(cyloss, name)(y_true, y_pred, reduction="none")
        np.testing.assert_allclose(actual, expected, rtol=KERAS_RTOL, atol=1e-15)
        np.testing.assert_allclose(actual, getattr(reference, name)(
            y_true, y_pred, reduction="none"), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_keras_ignore_class(keras, from_logits):
    # Keras's ignore_class is cyloss's ignore_index; Keras's default reduction divides
    # by the number of samples that are not ignored, like cyloss's "mean".
    case = registry.BY_NAME["sparse_categorical_crossentropy"]
    options = {"from_logits": from_logits, "ignore_index": -100}
    rng = np.random.default_rng(_seed("keras_ignore", from_logits))
    labels, y_pred = case.make_inputs(rng, (12, 5), np.float64, options)
    k_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=from_logits, ignore_class=-100, dtype="float64"
    )
    with np.errstate(invalid="ignore"):  # Keras zeroes ignored rows, then divides 0/0
        expected = float(_knp(keras, k_loss(labels, y_pred)))
    actual = case.function(labels, y_pred, **options)
    assert math.isclose(actual, expected, rel_tol=KERAS_RTOL), (actual, expected)


def test_keras_get_names_give_the_same_losses(keras):
    # Every string keras.losses.get() resolves (its function names and aliases such as
    # "kld" and "MSLE") that names a loss cyloss has: cyloss.get gives that loss.
    from keras.src.losses import ALL_OBJECTS_DICT

    checked = 0
    for name, obj in ALL_OBJECTS_DICT.items():
        if not callable(obj) or isinstance(obj, type):
            continue
        target = obj.__name__
        if target not in cyloss.LOSSES:
            continue
        assert type(cyloss.get(name)) is cyloss.LOSSES[target], (name, target)
        checked += 1
    assert checked >= 25, checked
