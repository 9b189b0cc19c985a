"""Extreme values: a table of exact expectations at the edges of every formula.

Each expected value is a closed form or is computed here with mpmath at 50 digits
from the SPEC formula (never from cyloss):
- binary from logits: ``pw*y*softplus(-x) + (1-y)*softplus(x)``, a zero coefficient
  contributing 0; ``softplus(+inf) = inf``, ``softplus(-inf) = 0`` (the limits);
- categorical / sparse from logits: ``sum_c q_c (logsumexp(x) - x_c)``, zero-coefficient
  terms left out, so a ``-inf`` logit on a zero-target class contributes 0;
- probabilities: clipped to ``[eps, 1 - eps]`` with ``eps = 1e-7``, then the log.

Tolerances: 1e-12 relative where the value is determined to full precision; 1e-9 at
the clip boundary ``1 - eps``, whose float64 rounding (``fl(1 - 1e-7)``) lets an
implementation legitimately compute ``log(fl(1 - eps))`` or ``log1p(-eps)`` (they
differ by ~5e-10 relative).  0 and inf are checked exactly.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import cyloss

mp = mpmath.mp
mp.dps = 50

EPS = 1e-7
INF = math.inf
TIGHT = 1e-12
CLIP = 1e-9


def _mp_softplus(x):
    """log(1 + e^x) at 50 digits; the limits at +-inf."""
    if x == INF:
        return mpmath.inf
    if x == -INF:
        return mpmath.mpf(0)
    return mpmath.log1p(mpmath.exp(mpmath.mpf(x)))


def _mp_term(coef, value):
    coef = mpmath.mpf(coef)
    return mpmath.mpf(0) if coef == 0 else coef * value


def mp_binary_logits(y, x, pos_weight=1.0, label_smoothing=0.0):
    y = mpmath.mpf(y) * (1 - mpmath.mpf(label_smoothing)) + mpmath.mpf(label_smoothing) / 2
    pw = mpmath.mpf(pos_weight)
    return _mp_term(pw * y, _mp_softplus(-x)) + _mp_term(1 - y, _mp_softplus(x))


def mp_binary_probs(y, p, eps=EPS):
    # the clip bounds as float64 computes them: eps and fl(1 - eps)
    p = min(max(p, eps), 1.0 - eps)
    p = mpmath.mpf(p)
    return _mp_term(y, -mpmath.log(p)) + _mp_term(1 - mpmath.mpf(y), -mpmath.log(1 - p))


def mp_categorical_logits(q, x):
    finite = [mpmath.mpf(v) for v in x if v != -INF]
    m = max(finite)
    lse = m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in finite))
    total = mpmath.mpf(0)
    for qc, xc in zip(q, x):
        if qc == 0:
            continue  # 0 * (lse - x_c) := 0, even when x_c = -inf
        total += mpmath.mpf(qc) * (mpmath.inf if xc == -INF else lse - mpmath.mpf(xc))
    return total


def mp_categorical_probs(q, p, eps=EPS):
    s = sum(p)
    total = mpmath.mpf(0)
    for qc, pc in zip(q, p):
        pc = min(max(pc / s, eps), 1.0 - eps)
        total += _mp_term(qc, -mpmath.log(mpmath.mpf(pc)))
    return total


def _f(value) -> float:
    return float(value)


def _check(actual, expected, rtol):
    if math.isnan(expected):
        assert math.isnan(actual), actual
    elif expected == 0.0 or math.isinf(expected):
        assert actual == expected, (actual, expected)  # exactly, never NaN
    else:
        assert math.isclose(actual, expected, rel_tol=rtol), (actual, expected)


# --------------------------------------------------------------------------- #
# Binary cross-entropy from logits
# --------------------------------------------------------------------------- #
LOGITS = [37.0, -37.0, 1e4, -1e4, 1e20, -1e20, INF, -INF, 20.0, 0.0]
TARGETS = [0.0, 1.0, 0.25]
BINARY_OPTIONS = [
    {},
    {"pos_weight": 3.0},
    {"pos_weight": 0.5},
    {"label_smoothing": 0.1},
    {"pos_weight": 3.0, "label_smoothing": 0.1},
]

BINARY_LOGIT_ROWS = [
    pytest.param(
        x,
        y,
        opts,
        _f(mp_binary_logits(y, x, opts.get("pos_weight", 1.0), opts.get("label_smoothing", 0.0))),
        id=f"x{x:g}-y{y:g}-" + ("-".join(f"{k}{v:g}" for k, v in opts.items()) or "plain"),
    )
    for x in LOGITS
    for y in TARGETS
    for opts in BINARY_OPTIONS
]


@pytest.mark.parametrize("x, y, options, expected", BINARY_LOGIT_ROWS)
def test_binary_from_logits(x, y, options, expected):
    out = cyloss.binary_crossentropy(
        np.array([y]), np.array([x]), from_logits=True, reduction="none", **options
    )
    assert out.shape == (1,)
    _check(float(out[0]), expected, TIGHT)
    _check(cyloss.binary_crossentropy([y], [x], from_logits=True, **options), expected, TIGHT)


def test_binary_infinite_logits_limits_are_exact():
    # closed forms: x -> +inf: (1-y) x -> inf unless y == 1 (then 0); x -> -inf:
    # pw y softplus(-x) -> inf unless y == 0 (then 0).  Never NaN.
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.5])
    x = np.array([INF, INF, INF, -INF, -INF, -INF])
    expected = [0.0, INF, INF, INF, 0.0, INF]
    for pw in (None, 2.0):
        out = cyloss.binary_crossentropy(y, x, from_logits=True, pos_weight=pw, reduction="none")
        assert not np.isnan(out).any(), out
        np.testing.assert_array_equal(out, expected)


# --------------------------------------------------------------------------- #
# Binary cross-entropy from probabilities exactly 0 and 1
# --------------------------------------------------------------------------- #
BINARY_PROB_ROWS = [
    pytest.param(y, p, _f(mp_binary_probs(y, p)), rtol, id=f"y{y:g}-p{p:g}")
    for y, p, rtol in [
        (1.0, 0.0, TIGHT),  # -log(eps)
        (0.0, 1.0, CLIP),  # -log(1 - fl(1 - eps)) ~ -log(eps)
        (1.0, 1.0, CLIP),  # -log(1 - eps)
        (0.0, 0.0, CLIP),  # -log(1 - eps)
        (0.5, 0.0, TIGHT),
        (0.5, 1.0, CLIP),
    ]
]


@pytest.mark.parametrize("y, p, expected, rtol", BINARY_PROB_ROWS)
def test_binary_probabilities_clipped(y, p, expected, rtol):
    out = cyloss.binary_crossentropy(np.array([[y]]), np.array([[p]]), reduction="none")
    _check(float(out[0]), expected, rtol)


def test_binary_probabilities_clipped_with_custom_epsilon():
    eps = 0.01
    out = cyloss.binary_crossentropy([1.0, 0.0], [0.0, 1.0], epsilon=eps, reduction="none")
    expected = [_f(mp_binary_probs(1.0, 0.0, eps)), _f(mp_binary_probs(0.0, 1.0, eps))]
    np.testing.assert_allclose(out, expected, rtol=CLIP)


# --------------------------------------------------------------------------- #
# Categorical and sparse from logits
# --------------------------------------------------------------------------- #
CATEGORICAL_LOGIT_ROWS = [
    # (id, one-hot or soft target, logits, rtol)
    ("minus_inf_on_zero_target", [1, 0, 0], [0.0, -INF, 5.0], TIGHT),
    ("minus_inf_confident", [0, 0, 1], [0.0, -INF, 5.0], TIGHT),
    ("only_finite_logit", [0, 1, 0], [-INF, 3.0, -INF], TIGHT),
    ("minus_inf_on_target", [0, 1, 0], [0.0, -INF, 5.0], TIGHT),
    ("row_1e4_wrong", [0, 1, 0], [1e4, 0.0, 0.0], TIGHT),
    ("row_1e4_right", [1, 0, 0], [1e4, 0.0, 0.0], TIGHT),
    ("row_1e4_soft", [0.5, 0.5, 0], [1e4, 0.0, -INF], TIGHT),
    ("confident_20", [1, 0], [20.0, 0.0], TIGHT),
    ("confident_37", [1, 0], [37.0, 0.0], TIGHT),
    ("pm37_right", [1, 0, 0], [37.0, -37.0, 0.0], TIGHT),
    ("pm37_wrong", [0, 1, 0], [37.0, -37.0, 0.0], TIGHT),
    ("pm1e20_0", [1, 0, 0], [1e20, 0.0, -1e20], TIGHT),
    ("pm1e20_1", [0, 1, 0], [1e20, 0.0, -1e20], TIGHT),
    ("pm1e20_2", [0, 0, 1], [1e20, 0.0, -1e20], TIGHT),
    ("all_equal_large", [0, 0, 1], [1e20, 1e20, 1e20], TIGHT),  # log 3
]


@pytest.mark.parametrize(
    "q, x, rtol", [pytest.param(q, x, r, id=i) for i, q, x, r in CATEGORICAL_LOGIT_ROWS]
)
def test_categorical_from_logits(q, x, rtol):
    expected = _f(mp_categorical_logits(q, x))
    out = cyloss.categorical_crossentropy(
        np.array([q], float), np.array([x]), from_logits=True, reduction="none"
    )
    _check(float(out[0]), expected, rtol)


@pytest.mark.parametrize(
    "q, x, rtol",
    [pytest.param(q, x, r, id=i) for i, q, x, r in CATEGORICAL_LOGIT_ROWS if max(q) == 1],
)
def test_sparse_from_logits(q, x, rtol):
    expected = _f(mp_categorical_logits(q, x))
    label = int(np.argmax(q))
    out = cyloss.sparse_categorical_crossentropy(
        np.array([label]), np.array([x]), from_logits=True, reduction="none"
    )
    _check(float(out[0]), expected, rtol)


def test_confident_rows_closed_form():
    # the closed form behind the "confident" rows: [20, 0] -> log1p(e^-20)
    out = cyloss.categorical_crossentropy([[1.0, 0.0]], [[20.0, 0.0]], from_logits=True)
    assert math.isclose(out, math.log1p(math.exp(-20.0)), rel_tol=TIGHT)
    out = cyloss.sparse_categorical_crossentropy([0], [[20.0, 0.0]], from_logits=True)
    assert math.isclose(out, math.log1p(math.exp(-20.0)), rel_tol=TIGHT)
    out = cyloss.binary_crossentropy([1.0], [20.0], from_logits=True)
    assert math.isclose(out, math.log1p(math.exp(-20.0)), rel_tol=TIGHT)


def _smoothed(q, s):
    return [qc * (1 - s) + s / len(q) for qc in q]


@pytest.mark.parametrize("s", [0.1, 1.0])
def test_label_smoothing_against_minus_inf_is_inf(s):
    # with s > 0 every class has a non-zero target coefficient: a -inf logit gives inf
    x = [0.0, -INF, 5.0]
    out = cyloss.categorical_crossentropy(
        [[1.0, 0.0, 0.0]], [x], from_logits=True, label_smoothing=s
    )
    assert out == INF
    out = cyloss.sparse_categorical_crossentropy([0], [x], from_logits=True, label_smoothing=s)
    assert out == INF


@pytest.mark.parametrize("s", [0.1, 0.5])
def test_label_smoothing_at_large_logits(s):
    x = [1e4, 0.0, -37.0]
    expected = _f(mp_categorical_logits(_smoothed([0, 1, 0], s), x))
    out = cyloss.categorical_crossentropy(
        [[0.0, 1.0, 0.0]], [x], from_logits=True, label_smoothing=s
    )
    _check(out, expected, TIGHT)
    out = cyloss.sparse_categorical_crossentropy([1], [x], from_logits=True, label_smoothing=s)
    _check(out, expected, TIGHT)


def test_sparse_zero_class_weight_against_minus_inf():
    # class_weight[label] = 0 is a zero coefficient: the -inf label logit contributes 0
    out = cyloss.sparse_categorical_crossentropy(
        [1, 2],
        [[0.0, -INF, 5.0], [0.0, -INF, 5.0]],
        from_logits=True,
        class_weight=[1.0, 0.0, 2.0],
        reduction="none",
    )
    expected_row2 = 2.0 * _f(mp_categorical_logits([0, 0, 1], [0.0, -INF, 5.0]))
    assert out[0] == 0.0
    assert math.isclose(out[1], expected_row2, rel_tol=TIGHT)


# --------------------------------------------------------------------------- #
# Categorical and sparse from probabilities exactly 0 and 1
# --------------------------------------------------------------------------- #
CATEGORICAL_PROB_ROWS = [
    ("zero_on_target", [0, 1, 0], [1.0, 0.0, 0.0], TIGHT),  # -log(eps)
    ("one_on_target", [1, 0, 0], [1.0, 0.0, 0.0], CLIP),  # -log(1 - eps)
    ("zero_unnormalised", [0, 0, 1], [3.0, 5.0, 0.0], TIGHT),
    ("soft_with_zero", [0.5, 0.5, 0], [0.0, 2.0, 2.0], TIGHT),
]


@pytest.mark.parametrize(
    "q, p, rtol", [pytest.param(q, p, r, id=i) for i, q, p, r in CATEGORICAL_PROB_ROWS]
)
def test_categorical_probabilities_clipped(q, p, rtol):
    expected = _f(mp_categorical_probs(q, p))
    out = cyloss.categorical_crossentropy(np.array([q], float), np.array([p]), reduction="none")
    _check(float(out[0]), expected, rtol)
    if max(q) == 1:
        out = cyloss.sparse_categorical_crossentropy(
            np.array([int(np.argmax(q))]), np.array([p]), reduction="none"
        )
        _check(float(out[0]), expected, rtol)


def test_probability_clip_values_closed_form():
    assert math.isclose(
        cyloss.categorical_crossentropy([[0, 1]], [[1.0, 0.0]]), -math.log(EPS), rel_tol=TIGHT
    )
    assert math.isclose(cyloss.binary_crossentropy([1.0], [0.0]), -math.log(EPS), rel_tol=TIGHT)
    assert math.isclose(
        cyloss.sparse_categorical_crossentropy([1], [[1.0, 0.0]]), -math.log(EPS), rel_tol=TIGHT
    )


# --------------------------------------------------------------------------- #
# Regression losses at huge errors (closed forms)
# --------------------------------------------------------------------------- #
def test_regression_huge_errors():
    y, p = np.array([0.0, 0.0]), np.array([1e200, -1e300])
    big = [1e200, 1e300]
    np.testing.assert_array_equal(cyloss.mean_absolute_error(y, p, reduction="none"), big)
    # the squared error overflows to inf, as in IEEE arithmetic
    np.testing.assert_array_equal(cyloss.mean_squared_error(y, p, reduction="none"), [INF, INF])
    # the linear branches never square the error: delta (|e| - delta / 2) == |e| here
    np.testing.assert_array_equal(cyloss.huber(y, p, reduction="none"), big)
    np.testing.assert_array_equal(cyloss.smooth_l1(y, p, reduction="none"), big)
    np.testing.assert_array_equal(cyloss.smooth_l1(y, p, beta=0.0, reduction="none"), big)


def test_regression_infinite_prediction():
    y, p = np.array([0.0, 1.0]), np.array([INF, -INF])
    for f in (cyloss.mae, cyloss.mse, cyloss.huber, cyloss.smooth_l1):
        np.testing.assert_array_equal(f(y, p, reduction="none"), [INF, INF])


# --------------------------------------------------------------------------- #
# NaN propagation: a NaN in y_pred gives NaN, for every loss and option
# --------------------------------------------------------------------------- #
# (function, options, y_true, y_pred row-major with 3 samples); the NaN goes into
# sample 1 at the position given.  Categorical/sparse: both on the target class and on
# a zero-target class (the renormalising sum / the logsumexp carries it).  No
# exceptions to the rule are expected, hence none are listed.
def _nan_cases():
    cat_true = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    probs = np.array([[0.2, 0.3, 0.5], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    logits = np.array([[1.0, -2.0, 0.5], [0.3, 2.0, -1.0], [0.0, 0.1, 0.2]])
    labels = np.array([0, 1, 2])
    bin_true = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 1.0]])
    bin_probs = np.array([[0.2, 0.4], [0.9, 0.3], [0.5, 0.6]])
    reg_true = np.array([[0.5, -1.0], [2.0, 0.0], [1.0, 1.0]])
    reg_pred = np.array([[0.0, 0.0], [1.0, 3.0], [1.5, 0.2]])
    cce = cyloss.categorical_crossentropy
    scce = cyloss.sparse_categorical_crossentropy
    bce = cyloss.binary_crossentropy
    cases = []
    for pos in (1, 0):  # the target class of sample 1, then a zero-target class
        for fl, x in ((False, probs), (True, logits)):
            tag = ("logits" if fl else "probs") + ("-target" if pos == 1 else "-other")
            smooth = {"from_logits": fl, "label_smoothing": 0.1}
            weighted = dict(smooth, class_weight=[1.0, 2.0, 0.5])
            cases += [
                ("categorical-" + tag, cce, {"from_logits": fl}, cat_true, x, pos),
                ("categorical-ls-" + tag, cce, smooth, cat_true, x, pos),
                ("sparse-" + tag, scce, {"from_logits": fl}, labels, x, pos),
                ("sparse-ls-cw-" + tag, scce, weighted, labels, x, pos),
            ]
    for pos in (0, 1):  # the y = 0 element of sample 1, then its y = 1 element
        for fl, x in ((False, bin_probs), (True, logits[:, :2])):
            tag = ("logits" if fl else "probs") + f"-y{int(bin_true[1, pos])}"
            pw_ls = {"from_logits": fl, "pos_weight": 2.0, "label_smoothing": 0.1}
            cases += [
                ("binary-" + tag, bce, {"from_logits": fl}, bin_true, x, pos),
                ("binary-pw-ls-" + tag, bce, pw_ls, bin_true, x, pos),
            ]
    for name, f, opts in (
        ("mae", cyloss.mean_absolute_error, {}),
        ("mse", cyloss.mean_squared_error, {}),
        ("huber", cyloss.huber, {}),
        ("huber-delta0.3", cyloss.huber, {"delta": 0.3}),
        ("smooth_l1", cyloss.smooth_l1, {}),
        ("smooth_l1-beta0", cyloss.smooth_l1, {"beta": 0.0}),
        ("log_cosh", cyloss.log_cosh, {}),
        ("poisson", cyloss.poisson, {}),
        ("mape", cyloss.mape, {}),
        ("msle", cyloss.msle, {}),
        ("hinge", cyloss.hinge, {}),
        ("squared_hinge", cyloss.squared_hinge, {}),
    ):
        cases.append((name, f, opts, reg_true, reg_pred, 1))
    return [pytest.param(*c[1:], id=c[0]) for c in cases]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("function, options, y_true, y_pred, pos", _nan_cases())
def test_nan_in_y_pred_propagates(function, options, y_true, y_pred, pos, dtype):
    y_pred = np.array(y_pred, dtype=dtype)
    y_pred[1, pos] = np.nan
    for reduction in ("mean", "weighted_mean", "sum"):
        out = function(y_true, y_pred, **options, reduction=reduction)
        assert type(out) is float and math.isnan(out), (reduction, out)
    none = function(y_true, y_pred, **options, reduction="none")
    assert none.shape == (3,)
    assert math.isnan(none[1]), none
    assert np.isfinite(none[[0, 2]]).all(), none  # the other samples are untouched


@pytest.mark.parametrize(
    "function",
    [cyloss.mean_absolute_error, cyloss.mean_squared_error, cyloss.huber, cyloss.smooth_l1,
     cyloss.log_cosh, cyloss.poisson, cyloss.mape, cyloss.msle, cyloss.hinge,
     cyloss.squared_hinge],
    ids=["mae", "mse", "huber", "smooth_l1", "log_cosh", "poisson", "mape", "msle", "hinge",
         "squared_hinge"],
)
def test_nan_in_y_true_propagates_regression(function):
    y_true = np.array([0.0, np.nan, 1.0])
    out = function(y_true, np.zeros(3), reduction="none")
    assert math.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()
    assert math.isnan(function(y_true, np.zeros(3)))
