"""The Keras-style classes (SPEC section 1).

A class is built with keyword options, is called as ``loss(y_true, y_pred,
sample_weight=None)`` and then equals the function with the same options, has a readable
``repr`` showing its non-default options, returns its options from ``get_config()``,
round-trips through ``from_config`` and pickle, compares equal by config, and rejects
bad options when it is built.
"""

import copy
import inspect
import json
import math
import pickle
import re

import numpy as np
import pytest

import cyloss

CLASSES = {
    "CategoricalCrossentropy": cyloss.categorical_crossentropy,
    "SparseCategoricalCrossentropy": cyloss.sparse_categorical_crossentropy,
    "BinaryCrossentropy": cyloss.binary_crossentropy,
    "MeanAbsoluteError": cyloss.mean_absolute_error,
    "MeanSquaredError": cyloss.mean_squared_error,
    "Huber": cyloss.huber,
    "SmoothL1": cyloss.smooth_l1,
    "KLDivergence": cyloss.kl_divergence,
    "NegativeLogLikelihood": cyloss.nll,
    "CategoricalHinge": cyloss.categorical_hinge,
    "CosineSimilarity": cyloss.cosine_similarity,
    "BinaryFocalCrossentropy": cyloss.binary_focal_crossentropy,
    "CategoricalFocalCrossentropy": cyloss.categorical_focal_crossentropy,
    "SparseCategoricalFocalCrossentropy": cyloss.sparse_categorical_focal_crossentropy,
    "MultilabelSoftMargin": cyloss.multilabel_soft_margin,
}


def _inputs(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    n, c = 8, 3
    if kind == "cat":
        y = rng.dirichlet(np.ones(c), size=n)
        return y, rng.uniform(0.05, 1, (n, c))
    if kind == "cat-axis1":
        y = rng.dirichlet(np.ones(c), size=(n, 2))  # (n, 2, c) -> class axis 1 below
        return np.swapaxes(y, 1, 2), rng.uniform(0.05, 1, (n, c, 2))
    if kind == "sparse":
        labels = rng.integers(0, c, n)
        labels[3] = -1
        return labels, rng.normal(0, 2, (n, c))
    if kind == "sparse-prob":
        return rng.integers(0, c, n), rng.uniform(0.05, 1, (n, c))
    if kind == "bin-logit":
        return rng.uniform(0, 1, (n, c)), rng.normal(0, 3, (n, c))
    if kind == "bin-prob":
        return rng.integers(0, 2, (n, c)).astype(float), rng.uniform(0.05, 0.95, (n, c))
    return rng.normal(size=(n, c)), rng.normal(size=(n, c))


# (class name, options, input kind)
CASES = [
    ("CategoricalCrossentropy", {}, "cat"),
    ("CategoricalCrossentropy",
     {"from_logits": True, "label_smoothing": 0.1, "reduction": "sum"}, "cat"),
    ("CategoricalCrossentropy", {"axis": 1, "epsilon": 1e-4, "name": "cce"}, "cat-axis1"),
    ("SparseCategoricalCrossentropy",
     {"from_logits": True, "ignore_index": -1, "class_weight": [1.0, 2.0, 0.5],
      "label_smoothing": 0.2, "reduction": "weighted_mean"}, "sparse"),
    ("SparseCategoricalCrossentropy", {"epsilon": 1e-3, "n_threads": 2}, "sparse-prob"),
    ("BinaryCrossentropy",
     {"from_logits": True, "pos_weight": [1.0, 3.0, 0.5], "label_smoothing": 0.1},
     "bin-logit"),
    ("BinaryCrossentropy", {"pos_weight": 2.0, "reduction": "none", "epsilon": 1e-3},
     "bin-prob"),
    ("MeanAbsoluteError", {"reduction": "sum"}, "reg"),
    ("MeanSquaredError", {"n_threads": 3, "name": "my_mse"}, "reg"),
    ("MeanSquaredError", {}, "reg"),
    ("Huber", {"delta": 0.5, "reduction": "weighted_mean"}, "reg"),
    ("SmoothL1", {"beta": 0.0, "reduction": "none"}, "reg"),
    ("SmoothL1", {"beta": 2.5, "n_threads": -1}, "reg"),
    ("KLDivergence", {"log_input": True, "log_target": True, "reduction": "sum"}, "reg"),
    ("KLDivergence", {"log_input": True, "axis": 1}, "cat-axis1"),
    ("KLDivergence", {"epsilon": 1e-3, "name": "kld"}, "cat"),
    ("NegativeLogLikelihood",
     {"ignore_index": -1, "class_weight": [1.0, 2.0, 0.5], "reduction": "weighted_mean"},
     "sparse"),
    ("CategoricalHinge", {"axis": 1, "reduction": "none"}, "cat-axis1"),
    ("CosineSimilarity", {"axis": 1, "epsilon": 1e-3, "n_threads": 2}, "cat-axis1"),
    ("BinaryFocalCrossentropy",
     {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5, "from_logits": True,
      "label_smoothing": 0.1}, "bin-logit"),
    ("BinaryFocalCrossentropy", {"gamma": 0.5, "epsilon": 1e-3, "reduction": "sum"},
     "bin-prob"),
    ("CategoricalFocalCrossentropy",
     {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1, "reduction": "none"}, "cat"),
    ("CategoricalFocalCrossentropy", {"axis": 1, "epsilon": 1e-4, "name": "cfce"},
     "cat-axis1"),
    ("SparseCategoricalFocalCrossentropy",
     {"from_logits": True, "ignore_index": -1, "class_weight": [1.0, 2.0, 0.5],
      "gamma": 3.0, "label_smoothing": 0.2, "reduction": "weighted_mean"}, "sparse"),
    ("MultilabelSoftMargin", {"class_weight": [1.0, 3.0, 0.5]}, "bin-logit"),
    ("MultilabelSoftMargin", {"reduction": "sum"}, "bin-logit"),
]
IDS = [f"{c}-{'-'.join(o) or 'defaults'}" for c, o, _ in CASES]

# A different value for every option, to check that equality looks at each.
OTHER = {
    "from_logits": lambda v: not v, "label_smoothing": lambda v: 0.3 if v != 0.3 else 0.4,
    "axis": lambda v: 0 if v != 0 else 1, "epsilon": lambda v: 1e-3 if v != 1e-3 else 1e-4,
    "ignore_index": lambda v: 5 if v != 5 else 6,
    "class_weight": lambda v: [1.0, 1.0, 1.0] if v is None else [9.0, 9.0, 9.0],
    "pos_weight": lambda v: 4.0 if v is None else [7.0, 7.0, 7.0],
    "delta": lambda v: 2.0 if v != 2.0 else 3.0, "beta": lambda v: 0.25 if v != 0.25 else 0.5,
    "reduction": lambda v: "sum" if v != "sum" else "mean",
    "n_threads": lambda v: 4 if v != 4 else 5,
    "name": lambda v: "another_name",
    "log_input": lambda v: not v, "log_target": lambda v: not v,
    "alpha": lambda v: 0.9 if v != 0.9 else 0.8, "gamma": lambda v: 4.0 if v != 4.0 else 5.0,
    "apply_class_balancing": lambda v: not v,
}


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    name, options, kind = request.param
    return getattr(cyloss, name), CLASSES[name], dict(options), kind


def function_options(options):
    return {k: v for k, v in options.items() if k != "name"}


def same(a, b):
    if isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes())
    return type(a) is float and a.hex() == b.hex()


def constructor_keywords(cls):
    params = inspect.signature(cls).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


# --- calling ---------------------------------------------------------------------------


def test_call_equals_function_with_the_same_options(case):
    cls, fn, options, kind = case
    loss = cls(**options)
    y, p = _inputs(kind)
    w = np.linspace(0.5, 2.0, len(p))
    expected = fn(y, p, **function_options(options))
    assert same(loss(y, p), expected)
    assert same(loss(y, p, sample_weight=None), expected)
    expected_w = fn(y, p, sample_weight=w, **function_options(options))
    assert same(loss(y, p, sample_weight=w), expected_w)
    assert same(loss(y, p, w), expected_w)
    # The options really reach the computation: defaults give something else.
    structural = ("axis", "from_logits", "ignore_index")   # needed to read the input
    if any(k not in ("name", "n_threads", "epsilon") + structural for k in options):
        default = fn(y, p, sample_weight=w, **{k: options[k] for k in structural
                                               if k in options})
        assert not same(loss(y, p, sample_weight=w), default)


def test_defaults_equal_the_function_defaults():
    y, p = _inputs("reg")
    labels, logits = _inputs("sparse-prob")
    for name, fn in CLASSES.items():
        if name.startswith("Sparse") or name == "NegativeLogLikelihood":
            assert same(getattr(cyloss, name)()(labels, logits), fn(labels, logits))
        elif name in ("CategoricalCrossentropy", "BinaryCrossentropy",
                      "CategoricalFocalCrossentropy", "BinaryFocalCrossentropy",
                      "MultilabelSoftMargin"):
            q = np.abs(p) / np.abs(p).sum(-1, keepdims=True)
            t = (q > 0.3).astype(float)
            assert same(getattr(cyloss, name)()(t, q), fn(t, q))
        else:
            assert same(getattr(cyloss, name)()(y, p), fn(y, p))


def test_reference_value_through_a_class():
    # SPEC section 7 (tf.keras examples), via the classes.
    assert cyloss.Huber()([[0], [1]], [[0.6], [0.4]]) == pytest.approx(0.18, rel=1e-12)
    assert cyloss.BinaryCrossentropy()([[0], [1]], [[0.4], [0.6]]) == pytest.approx(
        -math.log(0.6), rel=1e-12)
    assert cyloss.MeanSquaredError()([[0.0], [1.0]], [[1.0], [1.0]]) == 0.5
    assert cyloss.MeanAbsoluteError(reduction="sum")([[0.0], [0.0]], [[1.0], [1.0]]) == 2.0


# --- repr ------------------------------------------------------------------------------


def test_repr_shows_class_name_and_non_default_options(case):
    cls, _, options, _ = case
    text = repr(cls(**options))
    assert cls.__name__ in text
    assert "\n" not in text and len(text) < 300
    for key, value in options.items():
        assert re.search(rf"\b{key}\b", text), (key, text)
        if isinstance(value, (bool, int, float, str)):
            shown = rf"{key}\s*=\s*['\"]?{re.escape(str(value))}['\"]?"
            assert re.search(shown, text), (key, value, text)


def test_repr_of_defaults_is_short():
    for name in CLASSES:
        text = repr(getattr(cyloss, name)())
        assert name in text
        assert "from_logits" not in text and "label_smoothing" not in text, text


# --- get_config / from_config ----------------------------------------------------------


def test_get_config_returns_the_options(case):
    cls, _, options, _ = case
    config = cls(**options).get_config()
    assert isinstance(config, dict)
    assert constructor_keywords(cls) <= set(config), (constructor_keywords(cls), config)
    for key, value in options.items():
        if isinstance(value, list):
            np.testing.assert_array_equal(np.asarray(config[key], float), value)
        else:
            assert config[key] == value, key
    # Keras saves configs as JSON: plain Python values only.
    json.dumps(config)


def test_from_config_rebuilds_an_equal_loss(case):
    cls, _, options, kind = case
    loss = cls(**options)
    rebuilt = cls.from_config(loss.get_config())
    assert type(rebuilt) is cls
    assert rebuilt == loss
    assert rebuilt.get_config() == loss.get_config()
    y, p = _inputs(kind)
    assert same(rebuilt(y, p), loss(y, p))
    # Through JSON too, as Keras stores it.
    assert cls.from_config(json.loads(json.dumps(loss.get_config()))) == loss


# --- pickle ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_pickle_round_trip(case, protocol):
    cls, _, options, kind = case
    loss = cls(**options)
    clone = pickle.loads(pickle.dumps(loss, protocol=protocol))
    assert type(clone) is cls and clone == loss and clone is not loss
    assert clone.get_config() == loss.get_config()
    assert repr(clone) == repr(loss)
    y, p = _inputs(kind)
    w = np.linspace(2.0, 0.5, len(p))
    assert same(clone(y, p, sample_weight=w), loss(y, p, sample_weight=w))


def test_copy_and_deepcopy(case):
    cls, _, options, kind = case
    loss = cls(**options)
    y, p = _inputs(kind)
    for clone in (copy.copy(loss), copy.deepcopy(loss)):
        assert clone == loss
        assert same(clone(y, p), loss(y, p))


# --- equality --------------------------------------------------------------------------


def test_equality_by_config(case):
    cls, _, options, _ = case
    a, b = cls(**options), cls(**options)
    assert a == b and not (a != b)
    assert a == a
    assert a != "not a loss" and not (a == None)  # noqa: E711
    try:
        hash_a = hash(a)
    except TypeError:
        pass                                       # unhashable is fine; consistent if not
    else:
        assert hash_a == hash(b)
    for key in constructor_keywords(cls):
        current = a.get_config().get(key)
        other = cls(**{**options, key: OTHER[key](current)})
        assert other != a and not (other == a), key
        assert other.get_config()[key] != a.get_config()[key], key


def test_different_classes_are_not_equal():
    assert cyloss.MeanAbsoluteError() != cyloss.MeanSquaredError()
    assert cyloss.Huber(delta=1.0) != cyloss.SmoothL1(beta=1.0)
    assert cyloss.CategoricalCrossentropy() != cyloss.SparseCategoricalCrossentropy()


def test_equal_values_of_different_types_compare_equal():
    assert cyloss.Huber(delta=1) == cyloss.Huber(delta=1.0)
    assert cyloss.Huber() == cyloss.Huber(delta=1.0)
    assert cyloss.SparseCategoricalCrossentropy(class_weight=[1, 2, 3]) == \
        cyloss.SparseCategoricalCrossentropy(class_weight=np.array([1.0, 2.0, 3.0]))
    assert cyloss.BinaryCrossentropy(pos_weight=np.array([1.0, 2.0])) == \
        cyloss.BinaryCrossentropy(pos_weight=[1.0, 2.0])
    assert cyloss.SparseCategoricalCrossentropy(class_weight=[1, 2, 3]) != \
        cyloss.SparseCategoricalCrossentropy(class_weight=[1, 2, 4])


def test_mutating_the_passed_array_does_not_change_the_loss():
    cw = np.array([1.0, 2.0, 3.0])
    loss = cyloss.SparseCategoricalCrossentropy(class_weight=cw)
    labels, p = _inputs("sparse-prob")
    before = loss(labels, p)
    cw[:] = 100.0
    assert same(loss(labels, p), before)
    assert loss == cyloss.SparseCategoricalCrossentropy(class_weight=[1.0, 2.0, 3.0])


# --- construction ----------------------------------------------------------------------


BAD_OPTIONS = [
    ("CategoricalCrossentropy", {"label_smoothing": 1.5}, "label_smoothing"),
    ("CategoricalCrossentropy", {"label_smoothing": float("nan")}, "label_smoothing"),
    ("CategoricalCrossentropy", {"epsilon": 0.0}, "epsilon"),
    ("CategoricalCrossentropy", {"epsilon": 0.5}, "epsilon"),
    ("CategoricalCrossentropy", {"reduction": "avg"}, "reduction"),
    ("SparseCategoricalCrossentropy", {"class_weight": [1.0, -1.0]}, "class_weight"),
    ("SparseCategoricalCrossentropy", {"class_weight": [[1.0, 2.0]]}, "class_weight"),
    ("SparseCategoricalCrossentropy", {"label_smoothing": -0.1}, "label_smoothing"),
    ("SparseCategoricalCrossentropy", {"epsilon": -1.0}, "epsilon"),
    ("SparseCategoricalCrossentropy", {"n_threads": 0}, "n_threads"),
    ("BinaryCrossentropy", {"pos_weight": -1.0}, "pos_weight"),
    ("BinaryCrossentropy", {"pos_weight": [1.0, -2.0]}, "pos_weight"),
    ("BinaryCrossentropy", {"label_smoothing": 1.1}, "label_smoothing"),
    ("BinaryCrossentropy", {"epsilon": float("nan")}, "epsilon"),
    ("MeanAbsoluteError", {"reduction": "avg"}, "reduction"),
    ("MeanAbsoluteError", {"n_threads": -2}, "n_threads"),
    ("MeanSquaredError", {"n_threads": 0}, "n_threads"),
    ("MeanSquaredError", {"n_threads": 1.5}, "n_threads"),
    ("Huber", {"delta": 0.0}, "delta"),
    ("Huber", {"delta": -1.0}, "delta"),
    ("Huber", {"delta": float("nan")}, "delta"),
    ("SmoothL1", {"beta": -1.0}, "beta"),
    ("SmoothL1", {"beta": float("nan")}, "beta"),
    ("SmoothL1", {"reduction": "avg"}, "reduction"),
    ("BinaryFocalCrossentropy", {"gamma": -1.0}, "gamma"),
    ("BinaryFocalCrossentropy", {"gamma": float("inf")}, "gamma"),
    ("BinaryFocalCrossentropy", {"alpha": 1.5}, "alpha"),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": "yes"}, "apply_class_balancing"),
    ("CategoricalFocalCrossentropy", {"alpha": -0.1}, "alpha"),
    ("CategoricalFocalCrossentropy", {"gamma": float("nan")}, "gamma"),
    ("SparseCategoricalFocalCrossentropy", {"class_weight": [1.0, -1.0]}, "class_weight"),
    ("MultilabelSoftMargin", {"class_weight": [[1.0]]}, "class_weight"),
]


@pytest.mark.parametrize("name, options, argument", BAD_OPTIONS,
                         ids=[f"{n}-{next(iter(o))}={next(iter(o.values()))!r}"
                              for n, o, _ in BAD_OPTIONS])
def test_bad_options_are_rejected_at_construction(name, options, argument):
    with pytest.raises(ValueError, match=rf"(?i)\b{argument}\b"):
        getattr(cyloss, name)(**options)


@pytest.mark.parametrize("name", list(CLASSES))
def test_constructor_is_keyword_only(name):
    cls = getattr(cyloss, name)
    with pytest.raises(TypeError):
        cls("sum")
    with pytest.raises(TypeError):
        cls(no_such_option=1)
    params = inspect.signature(cls).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    assert {"reduction", "n_threads", "name"} <= {p.name for p in params}


@pytest.mark.parametrize("name", list(CLASSES))
def test_constructor_options_match_the_function(name):
    # Every option of the function (other than the data, sample_weight) is an option of
    # the class, and the class adds only ``name``.
    fn_params = set(inspect.signature(CLASSES[name]).parameters) - {
        "y_true", "y_pred", "sample_weight"}
    assert constructor_keywords(getattr(cyloss, name)) == fn_params | {"name"}


def test_aliases():
    y, p = _inputs("reg")
    assert same(cyloss.mae(y, p), cyloss.mean_absolute_error(y, p))
    assert same(cyloss.mse(y, p), cyloss.mean_squared_error(y, p))
