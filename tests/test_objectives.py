"""cyloss.objectives: real XGBoost and LightGBM models trained with cyloss objectives
give the raw scores of the same models trained with the built-in objectives (float32
margins: XGBoost keeps gradients in float32), and a Huber objective, which XGBoost has no
built-in for, is checked round by round against Newton leaf values computed in float64."""

import pickle

import numpy as np
import pytest

import cyloss
import cyloss.objectives as objectives

N = 400


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    X = rng.normal(size=(N, 5))
    return {
        "X": X,
        "reg": 2 * X[:, 0] + np.sin(3 * X[:, 1]) + rng.standard_t(2, size=N) * 0.5,
        "bin": (X[:, 0] + X[:, 2] + rng.normal(size=N) > 0).astype(np.float64),
        "multi": np.digitize(X[:, 0] + 0.5 * rng.normal(size=N), [-0.6, 0.0, 0.7]),
        "w": rng.uniform(0.5, 2.0, size=N),
    }


# --- XGBoost -------------------------------------------------------------------------------

def _xgb_margins(xgb, data, label, params, obj=None, rounds=15):
    d = xgb.DMatrix(data["X"], label=data[label], weight=data["w"])
    params = {"max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1, **params}
    booster = xgb.train(params, d, rounds, obj=obj)
    return booster.predict(d, output_margin=True)


XGB_CASES = [
    # (label, built-in params, cyloss loss, options, params of both)
    ("reg", {"objective": "reg:squarederror"}, "mse", {}, {"base_score": 0.0}),
    ("bin", {"objective": "binary:logistic", "base_score": 0.5}, "binary_crossentropy", {},
     {"base_score": 0.0}),
    ("bin", {"objective": "binary:logistic", "base_score": 0.5, "scale_pos_weight": 3.0},
     "binary_crossentropy", {"pos_weight": 3.0}, {"base_score": 0.0}),
    ("multi", {"objective": "multi:softprob"}, "sparse_categorical_crossentropy", {},
     {"num_class": 4, "base_score": 0.0}),
]


@pytest.mark.parametrize("case", XGB_CASES, ids=lambda c: c[2] + str(c[3]))
def test_xgboost_objective_trains_the_builtin_model(data, case):
    xgb = pytest.importorskip("xgboost")
    label, builtin, loss, options, common = case
    builtin = {**builtin, **{k: v for k, v in common.items() if k not in builtin}}
    expected = _xgb_margins(xgb, data, label, builtin)
    got = _xgb_margins(xgb, data, label, common, objectives.xgboost(loss, **options))
    assert got.shape == expected.shape
    # Identical trees up to float32 rounding of the gradients (~1e-7 relative).
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    assert np.ptp(got) > 1.0        # the model learned something


def test_xgboost_huber_objective_takes_newton_steps_computed_in_float64(data):
    xgb = pytest.importorskip("xgboost")
    delta, eta, lam, rounds = 0.8, 0.5, 1.0, 6
    X, y, w = data["X"], data["reg"], data["w"]
    d = xgb.DMatrix(X, label=y, weight=w)
    params = {"max_depth": 2, "eta": eta, "lambda": lam, "min_child_weight": 0.0,
              "base_score": 0.0, "seed": 0, "nthread": 1}
    booster = xgb.train(params, d, rounds, obj=objectives.xgboost("huber", delta=delta))
    y32 = y.astype(np.float32).astype(np.float64)     # the labels XGBoost stores
    margins = [np.zeros(N)]
    for r in range(1, rounds + 1):
        margins.append(booster.predict(d, output_margin=True, iteration_range=(0, r))
                       .astype(np.float64))
    leaves = booster.predict(d, pred_leaf=True)
    for r in range(rounds):
        e = margins[r] - y32
        g = np.clip(e, -delta, delta) * w      # Huber's gradient; Hessian 1 on both arms
        h = w
        step = margins[r + 1] - margins[r]
        for leaf in np.unique(leaves[:, r]):
            rows = leaves[:, r] == leaf
            expected = -eta * g[rows].sum() / (h[rows].sum() + lam)
            np.testing.assert_allclose(step[rows], expected, rtol=1e-5, atol=1e-6)
    final = cyloss.huber(y, margins[-1], delta=delta)
    assert final < 0.75 * cyloss.huber(y, np.zeros(N), delta=delta)   # it learned


# --- LightGBM -------------------------------------------------------------------------------

def _lgb_raw(lgb, data, label, estimator, objective, **params):
    model = getattr(lgb, estimator)(
        objective=objective, n_estimators=15, learning_rate=0.3, num_leaves=7,
        random_state=0, n_jobs=1, verbose=-1, boost_from_average=False, **params)
    model.fit(data["X"], data[label], sample_weight=data["w"])
    return model.predict(data["X"], raw_score=True)


LGB_CASES = [
    ("reg", "LGBMRegressor", "regression", {}, "mse", {}),
    ("reg", "LGBMRegressor", "huber", {"alpha": 0.5}, "huber", {"delta": 0.5}),
    ("bin", "LGBMClassifier", "binary", {}, "binary_crossentropy", {}),
    ("multi", "LGBMClassifier", "multiclass", {}, "sparse_categorical_crossentropy", {}),
    ("multi", "LGBMClassifier", "multiclass", {"class_weight": {0: 2.0, 1: 1.0, 2: 0.5, 3: 3.0}},
     "sparse_categorical_crossentropy", {"class_weight": [2.0, 1.0, 0.5, 3.0]}),
]


@pytest.mark.parametrize("case", LGB_CASES, ids=lambda c: c[2] + str(c[3]))
def test_lightgbm_objective_trains_the_builtin_model(data, case):
    lgb = pytest.importorskip("lightgbm")
    label, estimator, builtin, params, loss, options = case
    expected = _lgb_raw(lgb, data, label, estimator, builtin, **params)
    got = _lgb_raw(lgb, data, label, estimator, objectives.lightgbm(loss, **options))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.ptp(got) > 1.0


# --- the callables themselves ----------------------------------------------------------------

def test_objective_terms_in_closed_form():
    y = np.array([0.0, 1.0, 2.0])
    p = np.array([0.5, -1.0, 2.0])
    w = np.array([1.0, 2.0, 0.5])
    g, h = objectives.lightgbm("mse")(y, p, w)
    assert g.tolist() == [0.5, -4.0, 0.0] and h.tolist() == [1.0, 2.0, 0.5]
    g, h = objectives.lightgbm("smooth_l1", beta=0.5)(y, p, None)
    assert g.tolist() == [1.0, -1.0, 0.0] and h.tolist() == [2.0, 2.0, 2.0]
    g, h = objectives.lightgbm("mae")(y, p, w)
    assert g.tolist() == [1.0, -2.0, 0.0] and h.tolist() == [1.0, 2.0, 0.5]
    # Softmax: grad p - onehot, Hessian K / (K - 1) p (1 - p) (LightGBM), 2 p (1 - p)
    # (XGBoost), the latter floored at 1e-16.
    x = np.array([[0.0, np.log(3.0)], [800.0, 0.0]])
    g, h = objectives.lightgbm("sparse_categorical_crossentropy")(np.array([1, 0]), x, None)
    np.testing.assert_allclose(g, [[0.25, -0.25], [0.0, 0.0]], rtol=1e-15, atol=0)
    np.testing.assert_allclose(h, [[2 * 0.1875, 2 * 0.1875], [0.0, 0.0]], rtol=1e-15, atol=0)

    class DMatrix:
        def get_label(self):
            return np.array([1.0, 0.0], dtype=np.float32)

        def get_weight(self):
            return np.array([], dtype=np.float32)

    g, h = objectives.xgboost("sparse_categorical_crossentropy")(x.astype(np.float32),
                                                                 DMatrix())
    np.testing.assert_allclose(h, [[0.375, 0.375], [1e-16, 1e-16]], rtol=1e-6, atol=0)
    assert g.dtype == np.float32


def test_multi_output_predictions_are_element_by_element():
    y = np.array([[0.0, 1.0], [2.0, 3.0]])
    p = np.array([[1.0, 1.0], [0.0, 5.0]])
    g, h = objectives.lightgbm("mse")(y.reshape(-1), p, np.array([1.0, 3.0]))
    assert g.tolist() == [[1.0, 0.0], [-6.0, 6.0]] and h.tolist() == [[1.0, 1.0], [3.0, 3.0]]


def test_objectives_refuse_what_boosting_cannot_use():
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        objectives.xgboost("categorical_crossentropy")
    with pytest.raises(ValueError, match="from_logits=True"):
        objectives.lightgbm("binary_crossentropy", from_logits=False)
    with pytest.raises(ValueError, match="from_logits=True"):
        objectives.xgboost(cyloss.SparseCategoricalCrossentropy())
    with pytest.raises(ValueError, match="n_classes"):
        objectives.lightgbm("sparse_categorical_crossentropy")(np.zeros(3), np.zeros(3), None)
    for name in ("hinge", "log_cosh", "kl_divergence", "ctc"):   # no chosen convention
        with pytest.raises(ValueError, match="unknown loss"):
            objectives.xgboost(name)


def test_objectives_pickle_and_compare_by_loss():
    obj = objectives.lightgbm("huber", delta=2.0)
    clone = pickle.loads(pickle.dumps(obj))
    assert clone == obj and hash(clone) == hash(obj)
    assert clone != objectives.lightgbm("huber", delta=1.0)
    assert "huber" in repr(obj).lower()
