"""Loss x option cases shared by the accumulator, ``eval`` and Dask tests.

Every loss with every option it takes (each option at a non-default value in at least
one case), on valid random inputs whose samples run along axis 0 (class axes elsewhere),
so that the streamed paths can cut them anywhere along axis 0. Expected values come from
the one-shot cyloss call, which tests/test_values.py checks against independent
references; a few tests in each file also check an independent float64 NumPy formula.
"""

from typing import NamedTuple

import math

import numpy as np
import pytest

import cyloss
import cyloss.losses

N_CLASSES = 5
CLASS_WEIGHT = [0.5, 2.0, 1.0, 0.0, 3.0]  # a zero weight on purpose
POS_WEIGHT = [0.5, 1.0, 2.0, 4.0]  # for a last axis of 4
REDUCTIONS = ("mean", "weighted_mean", "sum")


class Case(NamedTuple):
    loss: str
    options: dict
    tail: tuple  # y_pred's shape after the sample axis 0

    @property
    def kind(self):
        return {"categorical_crossentropy": "categorical",
                "sparse_categorical_crossentropy": "sparse",
                "kl_divergence": "categorical", "categorical_hinge": "categorical",
                "cosine_similarity": "categorical",
                "categorical_focal_crossentropy": "categorical",
                "nll": "sparse",
                "sparse_categorical_focal_crossentropy": "sparse"}.get(self.loss,
                                                                       "elementwise")

    def id(self):
        parts = [self.loss]
        for key, value in self.options.items():
            value = "vec" if isinstance(value, list) else value
            parts.append(f"{key}={value}")
        parts.append("x".join(map(str, ("n",) + self.tail)))
        return "-".join(parts)

    def function(self):
        return getattr(cyloss, self.loss)

    def loss_object(self, **extra):
        return cyloss.get(self.loss, **self.options, **extra)


CASES = [
    Case("categorical_crossentropy", {}, (N_CLASSES,)),
    Case("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.2},
         (N_CLASSES,)),
    Case("categorical_crossentropy", {"axis": 1, "epsilon": 1e-2}, (N_CLASSES, 3)),
    Case("categorical_crossentropy", {"axis": -2, "from_logits": True}, (N_CLASSES, 3)),
    Case("sparse_categorical_crossentropy", {}, (N_CLASSES,)),
    Case("sparse_categorical_crossentropy",
         {"from_logits": True, "ignore_index": -100, "class_weight": CLASS_WEIGHT},
         (N_CLASSES,)),
    Case("sparse_categorical_crossentropy",
         {"label_smoothing": 0.1, "class_weight": CLASS_WEIGHT, "epsilon": 1e-2},
         (N_CLASSES,)),
    Case("sparse_categorical_crossentropy",
         {"axis": 1, "from_logits": True, "ignore_index": 2, "label_smoothing": 0.1},
         (N_CLASSES, 3)),
    Case("binary_crossentropy", {}, (4,)),
    Case("binary_crossentropy", {"from_logits": True, "pos_weight": 2.5}, (4,)),
    Case("binary_crossentropy",
         {"label_smoothing": 0.1, "pos_weight": POS_WEIGHT, "epsilon": 1e-2}, (4,)),
    Case("binary_crossentropy", {"from_logits": True}, ()),
    Case("mean_absolute_error", {}, (4,)),
    Case("mean_squared_error", {}, ()),
    Case("mean_squared_error", {}, (3, 4)),
    Case("huber", {"delta": 0.3}, (4,)),
    Case("huber", {"delta": 2.5}, ()),
    Case("smooth_l1", {"beta": 0.0}, (4,)),
    Case("smooth_l1", {"beta": 0.5}, (3, 4)),
    Case("log_cosh", {}, (4,)),
    Case("poisson", {}, (4,)),
    Case("mean_absolute_percentage_error", {}, ()),
    Case("mean_squared_logarithmic_error", {}, (3, 4)),
    Case("hinge", {}, (4,)),
    Case("squared_hinge", {}, ()),
    Case("kl_divergence", {}, (N_CLASSES,)),
    Case("kl_divergence", {"log_input": True, "log_target": True, "axis": 1},
         (N_CLASSES, 3)),
    Case("kl_divergence", {"epsilon": 1e-2, "log_target": True}, (N_CLASSES,)),
    Case("nll", {"ignore_index": -100, "class_weight": CLASS_WEIGHT}, (N_CLASSES,)),
    Case("nll", {"axis": 1, "ignore_index": 2}, (N_CLASSES, 3)),
    Case("categorical_hinge", {}, (N_CLASSES,)),
    Case("categorical_hinge", {"axis": 1}, (N_CLASSES, 3)),
    Case("cosine_similarity", {}, (N_CLASSES,)),
    Case("cosine_similarity", {"axis": -2, "epsilon": 1e-3}, (N_CLASSES, 3)),
    Case("binary_focal_crossentropy",
         {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5, "from_logits": True,
          "label_smoothing": 0.1}, (4,)),
    Case("binary_focal_crossentropy", {"gamma": 0.5, "epsilon": 1e-2}, ()),
    Case("categorical_focal_crossentropy",
         {"alpha": 0.5, "gamma": 3.0, "label_smoothing": 0.2, "epsilon": 1e-2},
         (N_CLASSES,)),
    Case("categorical_focal_crossentropy", {"axis": 1, "from_logits": True},
         (N_CLASSES, 3)),
    Case("sparse_categorical_focal_crossentropy",
         {"from_logits": True, "ignore_index": -100, "class_weight": CLASS_WEIGHT,
          "label_smoothing": 0.1, "gamma": 0.5, "alpha": 0.9}, (N_CLASSES,)),
    Case("sparse_categorical_focal_crossentropy", {"axis": 1, "ignore_index": 2},
         (N_CLASSES, 3)),
    Case("multilabel_soft_margin", {"class_weight": POS_WEIGHT}, (4,)),
    Case("multilabel_soft_margin", {}, ()),
    Case("poisson_nll", {"full": True, "eps": 1e-3}, (4,)),
    Case("hinge_embedding", {"margin": 2.0}, ()),
]

# The kind of input of each elementwise loss (cyloss.losses.ELEMENTWISE's `inputs`).
INPUTS = {e.function: e.inputs for e in cyloss.losses.ELEMENTWISE}


def case_params():
    return [pytest.param(case, id=case.id()) for case in CASES]


def sample_shape(case, n):
    """The per-sample shape of ``case`` with ``n`` samples along axis 0."""
    shape = (n,) + case.tail
    if case.kind == "elementwise":
        return shape[:-1] if len(shape) >= 2 else shape
    axis = case.options.get("axis", -1) % len(shape)
    return shape[:axis] + shape[axis + 1:]


def make_inputs(case, n, rng, dtype=np.float64):
    """Valid ``(y_true, y_pred)`` for ``case`` with ``n`` samples along axis 0."""
    shape = (n,) + case.tail
    logits = case.options.get("from_logits", False)
    if case.kind == "elementwise":
        if case.loss in ("binary_crossentropy", "binary_focal_crossentropy",
                         "multilabel_soft_margin"):
            logits = logits or case.loss == "multilabel_soft_margin"
            y = rng.random(shape)
            y = np.where(rng.random(shape) < 0.5, np.round(y), y)
            p = rng.normal(0.0, 3.0, shape) if logits else rng.uniform(0.02, 0.98, shape)
        elif INPUTS.get(case.loss) == "nonnegative":
            y = rng.poisson(2.0, shape).astype(np.float64)
            p = rng.uniform(0.0, 6.0, shape)
        elif INPUTS.get(case.loss) == "labels":
            # 0/1 labels throughout (Keras's rule maps them to -1/1 in every batch too)
            y = rng.integers(0, 2, shape).astype(np.float64)
            p = rng.normal(0.0, 1.5, shape)
        else:
            y = rng.normal(0.0, 2.0, shape)
            p = y + rng.normal(0.0, 1.5, shape) * rng.choice([0.1, 1.0, 3.0], shape)
        return y.astype(dtype), p.astype(dtype)
    axis = case.options.get("axis", -1) % len(shape)
    n_classes = shape[axis]
    p = rng.normal(0.0, 3.0, shape) if logits else rng.uniform(0.05, 1.0, shape)
    if case.kind == "categorical":
        y = rng.dirichlet(np.ones(n_classes), size=sample_shape(case, n))
        hard = np.eye(n_classes)[rng.integers(0, n_classes, y.shape[:-1])]
        y = np.where(rng.random(y.shape[:-1] + (1,)) < 0.5, hard, y)
        return np.moveaxis(y, -1, axis).astype(dtype), p.astype(dtype)
    labels = rng.integers(0, n_classes, sample_shape(case, n))
    ignore = case.options.get("ignore_index")
    if ignore is not None:
        labels = np.where(rng.random(labels.shape) < 0.2, ignore, labels)
    return labels, p.astype(dtype)


def make_weights(case, n, rng):
    """Per-sample weights in [0, 2) with some exact zeros."""
    w = rng.uniform(0.0, 2.0, sample_shape(case, n))
    w.reshape(-1)[:: 7] = 0.0
    return w


def one_shot(case, y_true, y_pred, sample_weight=None, reduction="mean"):
    return case.function()(y_true, y_pred, sample_weight=sample_weight,
                           reduction=reduction, **case.options)


def exact(case, y_true, y_pred, sample_weight=None, reduction="mean"):
    """The reduction of the exactly rounded sums of the per-sample terms.

    ``num`` is ``math.fsum`` of the ``reduction="none"`` values (the ``w_i l_i`` that the
    loops add; 0 for ignored samples), ``den`` the ``fsum`` of ``w_i v_i`` over counted
    samples. A streamed result and the one-shot call (both sum with compensation) must
    lie within 1e-15 of this.
    """
    terms = one_shot(case, y_true, y_pred, sample_weight, "none").astype(np.float64)
    shape = terms.shape
    w = np.ones(shape) if sample_weight is None else np.broadcast_to(sample_weight, shape)
    counted = np.ones(shape, dtype=bool)
    v = np.ones(shape)
    if case.kind == "sparse":
        labels = np.asarray(y_true).reshape(shape)
        ignore = case.options.get("ignore_index")
        if ignore is not None:
            counted = labels != ignore
        cw = case.options.get("class_weight")
        if cw is not None:
            v = np.where(counted, np.asarray(cw)[np.where(counted, labels, 0)], 0.0)
    num = math.fsum(terms.ravel().tolist())
    den = math.fsum((w * v)[counted].ravel().tolist())
    count = int(counted.sum())
    return cyloss.losses.reduce_sums(num, den, count, reduction)
