"""Errors (SPEC section 5): bad input raises the right exception with a useful message.

Each row of a table is a bad call, the exception type SPEC section 5 prescribes, and a
regular expression the message must match: the argument's name and, where the SPEC asks
for it, the offending shape, index or value. The expressions are deliberately loose about
wording (case-insensitive, any order) and strict about content.

Also here: NaN in the data is not an error (it propagates), valid boundary options are
accepted, and a sweep of malformed inputs may only ever return or raise
ValueError/TypeError.
"""

import math
import re
import warnings

import numpy as np
import pytest

import cyloss

# --- helpers ---------------------------------------------------------------------------

FUNCS = {
    "categorical_crossentropy": cyloss.categorical_crossentropy,
    "sparse_categorical_crossentropy": cyloss.sparse_categorical_crossentropy,
    "binary_crossentropy": cyloss.binary_crossentropy,
    "mean_absolute_error": cyloss.mean_absolute_error,
    "mean_squared_error": cyloss.mean_squared_error,
    "huber": cyloss.huber,
    "smooth_l1": cyloss.smooth_l1,
}
REGRESSION = ["mean_absolute_error", "mean_squared_error", "huber", "smooth_l1"]
PROB_INPUT = ["categorical_crossentropy", "sparse_categorical_crossentropy",
              "binary_crossentropy"]

CCE = cyloss.categorical_crossentropy
SCCE = cyloss.sparse_categorical_crossentropy
BCE = cyloss.binary_crossentropy


def all_of(*patterns):
    """A regex matching text that contains every pattern, in any order, ignoring case."""
    return "(?is)" + "".join(f"(?=.*(?:{p}))" for p in patterns)


def shape(*dims):
    """Regex for a shape tuple as NumPy prints it: (4, 3) or (3,)."""
    if len(dims) == 1:
        return rf"\(\s*{dims[0]}\s*,\s*\)"
    return r"\(\s*" + r"\s*,\s*".join(str(d) for d in dims) + r"\s*\)"


def num(value):
    """Regex for a number as a message may print it: 4, 4.0, -1, 2.5."""
    if float(value).is_integer():
        text = re.escape(str(int(value)))
        return rf"(?<![\d.]){text}(?:\.0*)?(?![\d.])"
    return rf"(?<![\d.]){re.escape(str(value))}(?!\d)"


Y_TRUE = r"y_true"
Y_PRED = r"y_pred"
LABEL = r"y_true|label"


def valid_inputs(name):
    """Small valid (y_true, y_pred) for a loss: 4 samples, 3 classes/outputs."""
    if name == "categorical_crossentropy":
        return np.eye(3)[[0, 1, 2, 1]], np.full((4, 3), 1 / 3)
    if name == "sparse_categorical_crossentropy":
        return np.array([0, 1, 2, 1]), np.full((4, 3), 1 / 3)
    if name == "binary_crossentropy":
        return np.array([[0, 1, 1]] * 4, dtype=float), np.full((4, 3), 0.3)
    return np.zeros((4, 3)), np.full((4, 3), 0.5)


def probs_with(row, col, value, n=4, c=3):
    p = np.full((n, c), 1 / c)
    p[row, col] = value
    return p


# --- the table -------------------------------------------------------------------------


def _value_error_cases():
    cases = []

    def add(case_id, fn, args, kwargs, pattern):
        cases.append(pytest.param(fn, args, kwargs, ValueError, pattern, id=case_id))

    # Shape mismatch between y_true and y_pred.
    for name in REGRESSION + ["binary_crossentropy", "categorical_crossentropy"]:
        fn = FUNCS[name]
        add(f"{name}-shape-4x3-vs-4x2", fn, (np.zeros((4, 3)), np.full((4, 2), 0.5)), {},
            all_of(f"{Y_TRUE}|{Y_PRED}", shape(4, 3), shape(4, 2)))
        add(f"{name}-shape-3-vs-4", fn, (np.zeros(3), np.full(4, 0.5)), {},
            all_of(f"{Y_TRUE}|{Y_PRED}", shape(3), shape(4)))
        add(f"{name}-shape-2x3x4-vs-2x4x3", fn,
            (np.zeros((2, 3, 4)), np.full((2, 4, 3), 0.5)), {},
            all_of(f"{Y_TRUE}|{Y_PRED}", shape(2, 3, 4), shape(2, 4, 3)))
    add("sparse-labels-3-vs-4x3", SCCE, (np.array([0, 1, 2]), np.full((4, 3), 1 / 3)), {},
        all_of(Y_TRUE, shape(3)))
    add("sparse-labels-4x2-vs-4x3", SCCE, (np.zeros((4, 2), int), np.full((4, 3), 1 / 3)),
        {}, all_of(Y_TRUE, shape(4, 2)))

    # axis out of range.
    for fn, name, y_true in [(CCE, "categorical", np.eye(3)[[0, 1, 2, 1]]),
                             (SCCE, "sparse", np.array([0, 1, 2, 1]))]:
        for axis in (2, -3, 7):
            add(f"{name}-axis-{axis}", fn, (y_true, np.full((4, 3), 1 / 3)),
                {"axis": axis}, all_of(r"\baxis\b", num(axis)))

    # Labels outside [0, C): the message names the sample index and the label.
    # C = 4; the bad label sits at index 2 (value C) or index 3 (value -1).
    p4 = np.full((6, 4), 0.25)
    for dtype in (np.int64, np.int32, np.float64):
        tag = np.dtype(dtype).name
        add(f"sparse-label-C-{tag}", SCCE, (np.array([0, 3, 4, 1, 0, 2], dtype), p4), {},
            all_of(LABEL, num(4), num(2)))
        add(f"sparse-label-minus1-{tag}", SCCE,
            (np.array([0, 1, 2, -1, 0, 2], dtype), p4), {},
            all_of(LABEL, r"-1(?![\d])", num(3)))
        add(f"sparse-label-C-logits-{tag}", SCCE,
            (np.array([0, 3, 4, 1, 0, 2], dtype), np.zeros((6, 4))), {"from_logits": True},
            all_of(LABEL, num(4), num(2)))
    add("sparse-label-minus1-other-ignore-index", SCCE,
        (np.array([0, 1, 2, -1, 0, 2]), p4), {"ignore_index": -100},
        all_of(LABEL, r"-1(?![\d])", num(3)))
    add("sparse-label-2**62", SCCE, (np.array([0, 1, 2**62, 0, 1, 2]), p4), {},
        all_of(LABEL, str(2**62)))
    add("sparse-label-int64-min", SCCE, (np.array([0, 1, -2**63, 0, 1, 2]), p4), {},
        all_of(LABEL, str(-2**63)))
    # 2**64 - 1 must not wrap around to -1 and be taken for ignore_index=-1.
    add("sparse-label-uint64-max-vs-ignore-minus1", SCCE,
        (np.array([0, 1, 2**64 - 1, 0, 1, 2], np.uint64), p4), {"ignore_index": -1},
        all_of(LABEL, num(2)))
    add("sparse-label-float-1e20", SCCE, (np.array([0, 1, 1e20, 0, 1, 2]), p4), {},
        all_of(LABEL, num(2)))
    add("sparse-label-2d-C", SCCE,
        (np.array([[0, 1], [2, 5]]), np.full((2, 2, 4), 0.25)), {},
        all_of(LABEL, num(5)))

    # Non-integer, NaN and infinite float labels.
    add("sparse-label-2.5", SCCE, (np.array([0.0, 2.5, 1.0, 0.0]), np.full((4, 3), 1 / 3)),
        {}, all_of(LABEL, r"2\.5"))
    add("sparse-label-2.5-float32", SCCE,
        (np.array([0.0, 2.5, 1.0, 0.0], np.float32), np.full((4, 3), 1 / 3)),
        {}, all_of(LABEL, r"2\.5"))
    add("sparse-label-nan", SCCE, (np.array([0.0, np.nan, 1.0, 0.0]), np.full((4, 3), 1 / 3)),
        {}, all_of(LABEL, r"nan"))
    add("sparse-label-inf", SCCE, (np.array([0.0, 1.0, np.inf, 0.0]), np.full((4, 3), 1 / 3)),
        {}, all_of(LABEL, r"inf"))
    add("sparse-label-minus-inf-logits", SCCE,
        (np.array([0.0, 1.0, -np.inf, 0.0]), np.zeros((4, 3))), {"from_logits": True},
        all_of(LABEL, r"inf"))

    # Binary probabilities outside [0, 1]: the message suggests from_logits=True.
    y_bin = np.array([[0, 1, 1]] * 4, dtype=float)
    for value in (1.5, -0.5, 3.0):
        add(f"binary-y_pred-{value}", BCE, (y_bin, probs_with(2, 1, value)), {},
            all_of(Y_PRED, r"from_logits\s*=\s*True", num(value)))
    add("binary-y_pred-inf", BCE, (y_bin, probs_with(2, 1, np.inf)), {},
        all_of(Y_PRED, r"from_logits\s*=\s*True"))
    add("binary-y_pred-1d-float32", BCE,
        (np.array([0, 1, 1], np.float32), np.array([0.2, 1.25, 0.5], np.float32)), {},
        all_of(Y_PRED, r"from_logits\s*=\s*True", r"1\.25"))

    # Negative probabilities and all-zero rows in categorical/sparse probability input.
    y_cat = np.eye(3)[[0, 1, 2, 1]]
    y_sparse = np.array([0, 1, 2, 1])
    for fn, name, y_true in [(CCE, "categorical", y_cat), (SCCE, "sparse", y_sparse)]:
        add(f"{name}-negative-prob", fn, (y_true, probs_with(2, 0, -0.2)), {},
            all_of(Y_PRED, rf"-0\.2|{num(2)}"))
        add(f"{name}-negative-prob-float32", fn,
            (y_true, probs_with(2, 0, -0.25).astype(np.float32)), {},
            all_of(Y_PRED, rf"-0\.25|{num(2)}"))
        zero_row = np.full((4, 3), 1 / 3)
        zero_row[1] = 0.0
        add(f"{name}-zero-row", fn, (y_true, zero_row), {}, all_of(Y_PRED, num(1)))
        add(f"{name}-zero-row-axis0", fn,
            (np.ascontiguousarray(y_true.T) if y_true.ndim == 2 else y_true,
             np.ascontiguousarray(zero_row.T)), {"axis": 0}, all_of(Y_PRED, num(1)))

    # Targets outside [0, 1] for the cross-entropies.
    for value in (1.5, -0.1):
        for logits in (False, True):
            t = np.eye(3)[[0, 1, 2, 1]]
            t[3, 1] = value
            add(f"categorical-target-{value}-logits-{logits}", CCE,
                (t, np.full((4, 3), 1 / 3)), {"from_logits": logits},
                all_of(Y_TRUE, num(value)))
            tb = y_bin.copy()
            tb[1, 2] = value
            add(f"binary-target-{value}-logits-{logits}", BCE,
                (tb, np.full((4, 3), 0.3)), {"from_logits": logits},
                all_of(Y_TRUE, num(value)))

    # Bad options.
    yr, pr = valid_inputs("huber")
    for delta, pat in [(0, num(0)), (-1, r"-1(?![\d])"), (np.nan, "nan"), (-np.inf, "inf")]:
        add(f"huber-delta-{delta}", cyloss.huber, (yr, pr), {"delta": delta},
            all_of(r"\bdelta\b", pat))
    for beta, pat in [(-1, r"-1(?![\d])"), (np.nan, "nan"), (-1e-300, r"e-300")]:
        add(f"smooth_l1-beta-{beta}", cyloss.smooth_l1, (yr, pr), {"beta": beta},
            all_of(r"\bbeta\b", pat))
    for name in PROB_INPUT:
        y, p = valid_inputs(name)
        for s, pat in [(-0.1, r"-0\.1"), (1.1, r"1\.1"), (np.nan, "nan")]:
            for logits in (False, True):
                add(f"{name}-label_smoothing-{s}-logits-{logits}", FUNCS[name], (y, p),
                    {"label_smoothing": s, "from_logits": logits},
                    all_of("label_smoothing", pat))
        for eps, pat in [(0, num(0)), (0.5, r"0\.5"), (-1, r"-1(?![\d])"), (np.nan, "nan")]:
            add(f"{name}-epsilon-{eps}", FUNCS[name], (y, p), {"epsilon": eps},
                all_of("epsilon", pat))
    for name, fn in FUNCS.items():
        y, p = valid_inputs(name)
        add(f"{name}-reduction-avg", fn, (y, p), {"reduction": "avg"},
            all_of("reduction", "avg"))
        for k, pat in [(0, num(0)), (-2, r"-2(?![\d])"), (1.5, r"1\.5"), ("2", r"2")]:
            add(f"{name}-n_threads-{k!r}", fn, (y, p), {"n_threads": k},
                all_of("n_threads", pat))
        add(f"{name}-sample_weight-3", fn, (y, p), {"sample_weight": np.ones(3)},
            all_of("sample_weight", shape(3)))
        add(f"{name}-sample_weight-4x2", fn, (y, p), {"sample_weight": np.ones((4, 2))},
            all_of("sample_weight", shape(4, 2)))
    for name in REGRESSION:
        add(f"{name}-sample_weight-1d-input-3", FUNCS[name], (np.zeros(4), np.ones(4)),
            {"sample_weight": np.ones(3)}, all_of("sample_weight", shape(3)))

    # class_weight (sparse, C = 3).
    ys, ps = valid_inputs("sparse_categorical_crossentropy")
    add("sparse-class_weight-length-2", SCCE, (ys, ps), {"class_weight": [1.0, 2.0]},
        all_of("class_weight", rf"{num(2)}|{num(3)}"))
    add("sparse-class_weight-length-4", SCCE, (ys, ps), {"class_weight": [1.0] * 4},
        all_of("class_weight", rf"{num(4)}|{num(3)}"))
    add("sparse-class_weight-negative", SCCE, (ys, ps), {"class_weight": [1.0, -1.0, 1.0]},
        all_of("class_weight", r"-1(?![\d])|negative"))
    add("sparse-class_weight-2d", SCCE, (ys, ps), {"class_weight": [[1.0, 2.0, 3.0]]},
        all_of("class_weight", rf"{shape(1, 3)}|1-d|one-dim|dimension|ndim"))
    add("sparse-class_weight-logits-negative", SCCE, (ys, np.zeros((4, 3))),
        {"class_weight": [1.0, 1.0, -0.5], "from_logits": True},
        all_of("class_weight", r"-0\.5|negative"))

    # pos_weight (binary, last axis 3).
    yb, pb = valid_inputs("binary_crossentropy")
    add("binary-pos_weight-shape-2", BCE, (yb, pb), {"pos_weight": np.ones(2)},
        all_of("pos_weight", shape(2)))
    add("binary-pos_weight-shape-4", BCE, (yb, pb), {"pos_weight": np.ones(4)},
        all_of("pos_weight", shape(4)))
    add("binary-pos_weight-negative-scalar", BCE, (yb, pb), {"pos_weight": -1.0},
        all_of("pos_weight", r"-1(?![\d])|negative"))
    add("binary-pos_weight-negative-entry", BCE, (yb, pb), {"pos_weight": [1.0, -2.0, 1.0]},
        all_of("pos_weight", r"-2(?![\d])|negative"))
    add("binary-pos_weight-negative-logits", BCE, (yb, np.zeros((4, 3))),
        {"pos_weight": -3.0, "from_logits": True},
        all_of("pos_weight", r"-3(?![\d])|negative"))
    return cases


@pytest.mark.parametrize("fn, args, kwargs, exc, pattern", _value_error_cases())
def test_bad_input_raises(fn, args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn(*args, **kwargs)


# --- TypeError for non-numeric input ---------------------------------------------------


def _non_numeric(kind, like):
    like = np.asarray(like)
    if kind == "str-array":
        return np.full(like.shape, "a")
    if kind == "str-list":
        return np.full(like.shape, "0.5").tolist()
    if kind == "object":
        return like.astype(object)
    if kind == "complex":
        return like.astype(np.complex128)
    raise AssertionError(kind)


def _type_error_cases():
    cases = []
    for name in FUNCS:
        for arg in ("y_true", "y_pred", "sample_weight"):
            for kind in ("str-array", "str-list", "object", "complex"):
                cases.append(pytest.param(name, arg, kind, id=f"{name}-{arg}-{kind}"))
    return cases


@pytest.mark.parametrize("name, arg, kind", _type_error_cases())
def test_non_numeric_input_is_type_error(name, arg, kind):
    y_true, y_pred = valid_inputs(name)
    kwargs = {"y_true": y_true, "y_pred": y_pred, "sample_weight": np.ones(4)}
    kwargs[arg] = _non_numeric(kind, kwargs[arg])
    fn = FUNCS[name]
    with pytest.raises(TypeError, match=all_of(arg)):
        fn(kwargs["y_true"], kwargs["y_pred"], sample_weight=kwargs["sample_weight"])


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("bad", [None, "abc", {"a": 1}], ids=["None", "str", "dict"])
def test_non_array_y_pred_is_type_error(name, bad):
    y_true, _ = valid_inputs(name)
    with pytest.raises(TypeError, match=all_of(Y_PRED)):
        FUNCS[name](y_true, bad)


@pytest.mark.parametrize("name", list(FUNCS))
def test_options_are_keyword_only(name):
    y_true, y_pred = valid_inputs(name)
    with pytest.raises(TypeError):
        FUNCS[name](y_true, y_pred, None)


# --- valid boundary options are accepted -----------------------------------------------


def test_beta_zero_is_l1():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    expected = np.abs(p - y).mean(axis=-1)
    got = cyloss.smooth_l1(y, p, beta=0.0, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert cyloss.smooth_l1(y, p, beta=0) == pytest.approx(expected.mean(), rel=1e-14)


def test_label_ignore_index_is_not_an_error():
    # -1 is outside [0, C) but is ignore_index: sample 3 contributes 0.
    got = SCCE(np.array([0, 1, 2, -1]), np.full((4, 3), 1 / 3), ignore_index=-1,
               reduction="none")
    np.testing.assert_allclose(got, [math.log(3)] * 3 + [0.0], rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", PROB_INPUT)
@pytest.mark.parametrize("options", [
    {"label_smoothing": 0.0}, {"label_smoothing": 1.0}, {"label_smoothing": 1},
    {"epsilon": 1e-300}, {"epsilon": 0.4999}, {"from_logits": True, "label_smoothing": 1.0},
], ids=repr)
def test_boundary_options_are_accepted(name, options):
    y, p = valid_inputs(name)
    value = FUNCS[name](y, p, **options)
    assert isinstance(value, float) and math.isfinite(value)


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("n_threads", [None, 1, 2, -1, np.int64(2), np.int32(3)], ids=repr)
def test_valid_n_threads_are_accepted(name, n_threads):
    y, p = valid_inputs(name)
    assert isinstance(FUNCS[name](y, p, n_threads=n_threads), float)


def test_huber_tiny_delta_is_accepted():
    # delta > 0 however small: the loss tends to delta * |e|.
    assert cyloss.huber([0.0], [2.0], delta=1e-300) == pytest.approx(2e-300, rel=1e-12)


def test_binary_logits_outside_unit_interval_are_fine():
    y = np.array([[0.0, 1.0, 1.0]])
    x = np.array([[-5.0, 3.0, 40.0]])
    expected = np.mean(np.logaddexp(0, x) - x * y)
    assert BCE(y, x, from_logits=True) == pytest.approx(expected, rel=1e-13)


def test_negative_logits_are_fine_for_categorical_and_sparse():
    x = np.array([[-1.0, -2.0, -3.0]])
    lse = np.log(np.exp(x).sum())
    assert CCE([[0.0, 1.0, 0.0]], x, from_logits=True) == pytest.approx(lse + 2.0, rel=1e-14)
    assert SCCE([1], x, from_logits=True) == pytest.approx(lse + 2.0, rel=1e-14)


# --- NaN in the data is not an error ---------------------------------------------------


def _nan_cases():
    rng = np.random.default_rng(1)
    y_reg, p_reg = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    y_cat, p_cat = np.eye(3)[[0, 1, 2, 1]], rng.uniform(0.1, 1, size=(4, 3))
    labels = np.array([0, 1, 2, 1])
    y_bin, p_bin = np.array([[0, 1, 1]] * 4, float), rng.uniform(0.1, 0.9, size=(4, 3))

    def with_nan(a):
        a = np.array(a, dtype=float)
        a[1, 2] = np.nan
        return a

    cases = []
    for name in REGRESSION:
        fn = FUNCS[name]
        cases.append(pytest.param(fn, y_reg, with_nan(p_reg), {}, id=f"{name}-y_pred"))
        cases.append(pytest.param(fn, with_nan(y_reg), p_reg, {}, id=f"{name}-y_true"))
    for logits in (False, True):
        cases += [
            pytest.param(CCE, y_cat, with_nan(p_cat), {"from_logits": logits},
                         id=f"categorical-y_pred-logits-{logits}"),
            pytest.param(CCE, with_nan(y_cat), p_cat, {"from_logits": logits},
                         id=f"categorical-y_true-logits-{logits}"),
            pytest.param(SCCE, labels, with_nan(p_cat), {"from_logits": logits},
                         id=f"sparse-y_pred-logits-{logits}"),
            pytest.param(BCE, y_bin, with_nan(p_bin), {"from_logits": logits},
                         id=f"binary-y_pred-logits-{logits}"),
            pytest.param(BCE, with_nan(y_bin), p_bin, {"from_logits": logits},
                         id=f"binary-y_true-logits-{logits}"),
        ]
    return cases


@pytest.mark.parametrize("fn, y_true, y_pred, kwargs", _nan_cases())
def test_nan_in_data_propagates(fn, y_true, y_pred, kwargs):
    assert math.isnan(fn(y_true, y_pred, **kwargs))
    per_sample = fn(y_true, y_pred, reduction="none", **kwargs)
    assert per_sample.shape == (4,)
    assert np.isnan(per_sample[1])
    assert np.isfinite(per_sample[[0, 2, 3]]).all()


@pytest.mark.parametrize("name", list(FUNCS))
def test_nan_sample_weight_propagates(name):
    y, p = valid_inputs(name)
    w = np.array([1.0, np.nan, 1.0, 1.0])
    assert math.isnan(FUNCS[name](y, p, sample_weight=w, reduction="sum"))
    per_sample = FUNCS[name](y, p, sample_weight=w, reduction="none")
    assert np.isnan(per_sample[1]) and np.isfinite(per_sample[[0, 2, 3]]).all()


# --- no crash: malformed input returns or raises ValueError/TypeError --------------------


def _malformed_calls():
    calls = []

    def add(case_id, fn, *args, **kwargs):
        calls.append(pytest.param(fn, args, kwargs, id=case_id))

    shapes = [
        ((), ()), ((), (3,)), ((3,), ()), ((0,), (0,)), ((0, 0), (0, 0)), ((3, 0), (3, 0)),
        ((0, 3), (0, 3)), ((0,), (3,)), ((2, 3, 4), (2, 3, 5)), ((2, 3, 4), (3, 4)),
        ((1,), (1, 1, 1, 1)), ((2, 1, 3), (2, 3)), ((1, 1), (1,)), ((5, 1), (1, 5)),
    ]
    for name, fn in FUNCS.items():
        for st, sp in shapes:
            add(f"{name}-{st}-{sp}", fn, np.zeros(st), np.full(sp, 0.5))
            add(f"{name}-{st}-{sp}-none", fn, np.zeros(st), np.full(sp, 0.5),
                reduction="none")
        add(f"{name}-python-scalars", fn, 0, 0.5)
        add(f"{name}-ragged", fn, [[0, 1], [1]], [[0.5, 0.5], [0.5]])
        add(f"{name}-none-none", fn, None, None)
        add(f"{name}-bool-bool", fn, np.array([[True, False]]), np.array([[True, True]]))
        for dt in (np.int8, np.uint8, np.uint64, np.int16, np.float16, np.bool_):
            tag = np.dtype(dt).name
            add(f"{name}-y_true-{tag}", fn, np.ones((3, 2), dt), np.full((3, 2), 0.5))
            add(f"{name}-y_pred-{tag}", fn, np.zeros((3, 2)), np.ones((3, 2), dt))
        add(f"{name}-uint64-max", fn, np.full((2, 2), 2**64 - 1, np.uint64),
            np.full((2, 2), 2**64 - 1, np.uint64))
        add(f"{name}-huge-values", fn, np.full((2, 2), 1e308), np.full((2, 2), -1e308))
        add(f"{name}-inf-inf", fn, np.full((2, 2), np.inf), np.full((2, 2), np.inf))
        add(f"{name}-big-int-object", fn, [2**70], [0.5])
        add(f"{name}-n_threads-1e6", fn, np.zeros((3, 2)), np.full((3, 2), 0.5),
            n_threads=10**6)
        add(f"{name}-n_threads-2**63", fn, np.zeros((3, 2)), np.full((3, 2), 0.5),
            n_threads=2**63)
        add(f"{name}-n_threads-True", fn, np.zeros((3, 2)), np.full((3, 2), 0.5),
            n_threads=True)
        add(f"{name}-n_threads-nan", fn, np.zeros((3, 2)), np.full((3, 2), 0.5),
            n_threads=float("nan"))
        for sw in ([], 2**70, np.zeros((3, 2, 1)), np.ones((1, 3)), np.inf, -1.0,
                   np.ones(0), np.ones((3, 1, 1))):
            add(f"{name}-sample_weight-{np.shape(sw)}-{np.asarray(sw).dtype}", fn,
                np.zeros((3, 2)), np.full((3, 2), 0.5), sample_weight=sw)
        add(f"{name}-strided-huge", fn,
            np.broadcast_to(np.zeros(2), (10**5, 2)), np.broadcast_to(0.5, (10**5, 2)))
        add(f"{name}-reduction-int", fn, np.zeros(2), np.full(2, 0.5), reduction=0)
        add(f"{name}-reduction-list", fn, np.zeros(2), np.full(2, 0.5), reduction=["sum"])

    for lab in ([2**62], [-2**62], [2**63 - 1], [-2**63], [2**64 - 1], [1e300], [-0.0],
                [-1e-300], [np.nextafter(2.0, 3.0)], [True], [2**53 + 1.0]):
        for dt in (None, np.uint64, np.int8, np.float32, np.bool_):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    labels = np.array(lab * 3, dtype=dt)
                except (OverflowError, ValueError, TypeError, Warning):
                    continue
            for logits in (False, True):
                add(f"sparse-labels-{lab[0]!r}-{dt and np.dtype(dt).name}-{logits}", SCCE,
                    labels, np.full((3, 4), 0.25), from_logits=logits)
    for probs in (np.full((2, 3), 1 / 3), np.full(3, 1 / 3), np.full((2, 1), 1.0),
                  np.full((2, 0), 1.0), np.full((2, 3, 2), 1 / 3)):
        for axis in (-1, 0, 1, 2, 10**20, -(2**63), 1.5, "0", None, np.int64(-1)):
            add(f"categorical-{probs.shape}-axis-{axis!r}", CCE, probs, probs, axis=axis)
    for labels, probs in [
        (np.int8([-128, 127]), np.full((2, 3), 1 / 3)),
        (np.array(1), np.full(3, 1 / 3)),              # one sample, 0-d label
        (np.array([1]), np.full(3, 1 / 3)),
        (np.zeros((2, 3), int), np.full((2, 3), 1 / 3)),
        (np.zeros(2, int), np.full((2, 1), 1.0)),      # C = 1
        (np.zeros(2, int), np.full((2, 0), 1.0)),      # C = 0
        (np.zeros((2, 1, 2), int), np.full((2, 3, 2), 1 / 3)),
        (np.zeros(10**5, np.int64)[::-7], np.full((10**5 // 7 + 1, 3), 1 / 3)),
    ]:
        for axis in (-1, 0, 1, 2, 10**20, -(2**63), 1.5, "0", None, np.int64(-1)):
            add(f"sparse-{labels.shape}-{probs.shape}-axis-{axis!r}", SCCE, labels, probs,
                axis=axis)
    for ignore in (2**70, 1.5, "a", None, -2**63, np.uint64(2**64 - 1)):
        add(f"sparse-ignore_index-{ignore!r}", SCCE, [0, 1, 2], np.full((3, 3), 1 / 3),
            ignore_index=ignore)
    for cw in ([np.nan, 1, 1], [np.inf, 1, 1], [], 2.0, [1, 1, 1e308], ["a", "b", "c"],
               [1 + 1j, 1, 1]):
        for logits in (False, True):
            add(f"sparse-class_weight-{cw!r}-{logits}", SCCE, [0, 1, 2],
                np.full((3, 3), 1 / 3), class_weight=cw, from_logits=logits,
                reduction="weighted_mean")
    for pw in (np.inf, np.nan, np.ones((1, 1, 1)), [], "a", np.ones((2, 1)), 0.0):
        for logits in (False, True):
            add(f"binary-pos_weight-{np.shape(pw)}-{pw!r:.10}-{logits}", BCE,
                np.ones((2, 3)), np.full((2, 3), 0.5), pos_weight=pw, from_logits=logits)
    for opt, values in [("epsilon", [1e-320, np.inf, "1e-7", None]),
                        ("label_smoothing", [True, "0.1", None, np.inf]),
                        ("from_logits", [None, "yes", 2])]:
        for v in values:
            for tag, fn, y, p in [("categorical", CCE, np.eye(3), np.full((3, 3), 1 / 3)),
                                  ("sparse", SCCE, [0, 1, 2], np.full((3, 3), 1 / 3)),
                                  ("binary", BCE, np.ones((3, 3)), np.full((3, 3), 0.5))]:
                add(f"{tag}-{opt}-{v!r}", fn, y, p, **{opt: v})
    for opt, values in [("delta", [np.inf, 1e-320, "1", None, [1.0]]),
                        ("beta", [np.inf, 1e-320, "1", None, [1.0]])]:
        fn = cyloss.huber if opt == "delta" else cyloss.smooth_l1
        for v in values:
            add(f"{opt}-{v!r}", fn, np.zeros((3, 2)), np.ones((3, 2)), **{opt: v})
    for probs in (np.full((2, 3), np.inf), np.full((2, 3), 1e308), np.full((2, 3), 5e-324),
                  np.array([[np.inf, 1, 1], [1, 1, 1]]), np.array([[-0.0, 1, 1], [1, 1, 1]])):
        add(f"categorical-probs-{probs[0, 0]!r}", CCE, np.eye(3)[:2], probs)
        add(f"sparse-probs-{probs[0, 0]!r}", SCCE, [0, 1], probs)
    return calls


@pytest.mark.parametrize("fn, args, kwargs", _malformed_calls())
def test_malformed_input_returns_or_raises_value_or_type_error(fn, args, kwargs):
    try:
        result = fn(*args, **kwargs)
    except (ValueError, TypeError):
        return
    assert isinstance(result, (float, np.ndarray))
