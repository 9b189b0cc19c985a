"""The loss registry that drives the value tests.

One ``LossCase`` per public loss: its cyloss function and class, the float64
reference of ``tests/reference.py``, a generator of valid random inputs, the
option grid to sweep (with readable pytest ids) and the shapes to try.

``make_inputs(rng, shape, dtype, options, extremes=True)`` returns
``(y_true, y_pred)`` for a ``y_pred`` of ``shape``.  With ``extremes=True``
probability inputs include exact 0 and 1 (clipped by the loss); float32 tests pass
``extremes=False`` because a clip at ``1 - 1e-7`` is not representable in float32
(SPEC allows per-element arithmetic in the compute dtype).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import cyloss
import cyloss.losses
import reference

N_CLASSES = 5
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 0.0, 3.0])  # a zero weight on purpose
POS_WEIGHT_VECTOR = np.array([0.5, 1.0, 2.0, 4.0])  # for a last axis of 4


@dataclass(frozen=True)
class LossCase:
    name: str
    function: Callable
    cls: type
    reference: Callable
    make_inputs: Callable
    options: tuple  # tuple of (id, dict)
    shapes: Callable  # options -> list of y_pred shapes
    probability_input: bool = False  # has epsilon
    keras_name: str | None = None
    aliases: tuple = field(default_factory=tuple)

    def per_sample_shape(self, shape, options):
        if self.name in reference.OVERLAP_LOSSES:   # Keras's dice/tversky: axis=None
            return reference.per_sample_shape(self.name, shape, options.get("axis"))
        return reference.per_sample_shape(self.name, shape, options.get("axis", -1))

    def __repr__(self):  # readable in pytest ids and failure messages
        return self.name


def _fmt(key, value):
    if isinstance(value, bool):
        return ("logits" if value else "probs") if key == "from_logits" else f"{key}{value}"
    if value is None:
        return f"no_{key}"
    short = {
        "label_smoothing": "ls",
        "ignore_index": "ignore",
        "class_weight": "cw",
        "pos_weight": "pw",
        "epsilon": "eps",
    }.get(key, key)
    if isinstance(value, np.ndarray):
        return f"{short}_vec"
    return f"{short}{value:g}" if isinstance(value, float) else f"{short}{value}"


def _grid(**axes):
    """Cartesian product of option values, as ``(id, options)`` pairs."""
    keys = list(axes)
    out = []
    for values in itertools.product(*(axes[k] for k in keys)):
        opts = {k: v for k, v in zip(keys, values)}
        out.append(("-".join(_fmt(k, v) for k, v in opts.items()), opts))
    return out


def _cast(a, dtype):
    return np.asarray(a).astype(dtype)


# --------------------------------------------------------------------------- #
# Input generators
# --------------------------------------------------------------------------- #
def _class_probabilities(rng, shape, extremes):
    """Unnormalised non-negative scores (cyloss renormalises), class axis last."""
    p = rng.uniform(0.05, 1.0, size=shape)
    if extremes and p.size >= 6:
        flat = p.reshape(-1)
        idx = rng.choice(flat.size, size=max(1, flat.size // 12), replace=False)
        flat[idx] = 0.0  # clipped to epsilon after renormalisation
        rows = p.reshape(-1, shape[-1])
        rows[rows.sum(axis=1) == 0.0, 0] = 0.5  # an all-zero row is invalid input
    return p


def make_categorical(rng, shape, dtype, options, extremes=True):
    axis = options.get("axis", -1)
    moved = list(shape)
    n_classes = moved.pop(axis % len(shape))
    moved.append(n_classes)  # class axis last while generating
    y = rng.dirichlet(np.ones(n_classes), size=tuple(moved[:-1]))
    # half the rows one-hot
    flat = y.reshape(-1, n_classes)
    hard = rng.random(flat.shape[0]) < 0.5
    onehot = np.eye(n_classes)[rng.integers(0, n_classes, flat.shape[0])]
    flat[hard] = onehot[hard]
    if options.get("from_logits"):
        x = rng.normal(0.0, 3.0, size=moved)
    else:
        x = _class_probabilities(rng, moved, extremes)
    y = np.moveaxis(y, -1, axis)
    x = np.moveaxis(x, -1, axis)
    return _cast(y, dtype), _cast(x, dtype)


def make_sparse(rng, shape, dtype, options, extremes=True):
    axis = options.get("axis", -1)
    ax = axis % len(shape)
    n_classes = shape[ax]
    per_sample = tuple(shape[:ax]) + tuple(shape[ax + 1 :])
    labels = rng.integers(0, n_classes, size=per_sample)
    ignore_index = options.get("ignore_index")
    if ignore_index is not None and ignore_index < 0:
        labels = np.where(rng.random(per_sample) < 0.2, ignore_index, labels)
    if options.get("from_logits"):
        x = rng.normal(0.0, 3.0, size=shape)
    else:
        x = np.moveaxis(
            _class_probabilities(rng, per_sample + (n_classes,), extremes), -1, ax
        )
    return labels.astype(np.int64), _cast(x, dtype)


def make_binary(rng, shape, dtype, options, extremes=True):
    y = rng.random(shape)
    y = np.where(rng.random(shape) < 0.5, np.round(y), y)  # half hard 0/1, half soft
    if options.get("from_logits"):
        x = rng.normal(0.0, 4.0, size=shape)
    else:
        x = rng.uniform(0.01, 0.99, size=shape)
        if extremes and x.size >= 4:
            flat = x.reshape(-1)
            idx = rng.choice(flat.size, size=max(2, flat.size // 8), replace=False)
            flat[idx] = rng.integers(0, 2, idx.size)  # exact 0 and 1
    return _cast(y, dtype), _cast(x, dtype)


def make_regression(rng, shape, dtype, options, extremes=True):
    y = rng.normal(0.0, 2.0, size=shape)
    # errors of all sizes, around every delta / beta of the grids
    e = rng.normal(0.0, 1.5, size=shape) * rng.choice([0.1, 1.0, 3.0], size=shape)
    return _cast(y, dtype), _cast(y + e, dtype)


def make_poisson(rng, shape, dtype, options, extremes=True):
    """Counts 0..12 (and a few non-integer targets), log-rates or rates; rates include
    exact zeros (log(0 + eps) is finite for eps > 0)."""
    y = rng.integers(0, 13, size=shape).astype(np.float64)
    y = np.where(rng.random(shape) < 0.2, rng.uniform(0.0, 6.0, size=shape), y)
    if options.get("log_input", True):
        x = rng.normal(0.0, 1.5, size=shape)
    else:
        x = rng.uniform(0.01, 6.0, size=shape)
        if extremes and x.size >= 4:
            x.reshape(-1)[rng.choice(x.size, size=max(1, x.size // 8), replace=False)] = 0.0
    return _cast(y, dtype), _cast(x, dtype)


def make_hinge_embedding(rng, shape, dtype, options, extremes=True):
    """Labels +-1 and distances around the margin (exactly on it, where representable)."""
    y = rng.choice([-1.0, 1.0], size=shape)
    margin = options.get("margin", 1.0)
    x = margin + rng.normal(0.0, 1.5, size=shape)
    if extremes and x.size >= 4:
        x.reshape(-1)[rng.choice(x.size, size=max(1, x.size // 8), replace=False)] = margin
    return _cast(y, dtype), _cast(x, dtype)


def make_overlap(rng, shape, dtype, options, extremes=True):
    """Segmentation-like targets (half hard 0/1, half soft) and probabilities."""
    y = rng.random(shape)
    y = np.where(rng.random(shape) < 0.5, np.round(y), y)
    p = rng.uniform(0.0, 1.0, size=shape)
    if extremes and p.size >= 4:
        flat = p.reshape(-1)
        idx = rng.choice(flat.size, size=max(2, flat.size // 8), replace=False)
        flat[idx] = rng.integers(0, 2, idx.size)
    return _cast(y, dtype), _cast(p, dtype)


# --------------------------------------------------------------------------- #
# Option grids and shapes
# --------------------------------------------------------------------------- #
def _categorical_shapes(options):
    axis = options.get("axis", -1)
    if axis == -1:
        return [(7, N_CLASSES), (2, 3, N_CLASSES)]
    if axis == 0:
        return [(N_CLASSES, 6)]
    return [(3, N_CLASSES, 4)]  # axis 1: PyTorch's (N, C, d)


CATEGORICAL_OPTIONS = tuple(
    _grid(from_logits=[False, True], label_smoothing=[0.0, 0.2], axis=[-1, 0, 1])
    + _grid(from_logits=[False], epsilon=[1e-2])
)

SPARSE_OPTIONS = tuple(
    _grid(
        from_logits=[False, True],
        label_smoothing=[0.0, 0.1],
        ignore_index=[None, -100, 2],
        class_weight=[None, CLASS_WEIGHT],
    )
    + _grid(
        from_logits=[False, True],
        axis=[1],
        ignore_index=[-100],
        class_weight=[CLASS_WEIGHT],
        label_smoothing=[0.1],
    )
    + _grid(from_logits=[False], epsilon=[1e-2])
)


def _sparse_shapes(options):
    if options.get("axis", -1) == 1:
        return [(3, N_CLASSES, 4)]
    return [(9, N_CLASSES), (2, 3, N_CLASSES)]


BINARY_OPTIONS = tuple(
    _grid(
        from_logits=[False, True],
        label_smoothing=[0.0, 0.1],
        pos_weight=[None, 2.5, POS_WEIGHT_VECTOR],
    )
    + _grid(from_logits=[False], epsilon=[1e-2])
)


def _elementwise_shapes(options):
    if isinstance(options.get("pos_weight"), np.ndarray):
        return [(6, 4), (2, 3, 4)]
    return [(9,), (6, 4), (2, 3, 4)]


def _elementwise_case(e):
    """The case of an entry of cyloss's table of elementwise losses: its function, class,
    aliases and parameter grid (the default, then the table's values) come from the
    table; the reference is the hand-written one of the same name in reference.py."""
    p = e.param
    if p is None:
        options = (("default", {}),)
    else:
        options = tuple(_grid(**{p.name: [p.default, *p.grid]}))
    return LossCase(
        e.function,
        getattr(cyloss, e.function),
        getattr(cyloss, e.cls),
        getattr(reference, e.function),
        make_regression,
        options,
        _elementwise_shapes,
        keras_name=e.keras,
        aliases=e.aliases,
    )


LOSSES = (
    LossCase(
        "categorical_crossentropy",
        cyloss.categorical_crossentropy,
        cyloss.CategoricalCrossentropy,
        reference.categorical_crossentropy,
        make_categorical,
        CATEGORICAL_OPTIONS,
        _categorical_shapes,
        probability_input=True,
        keras_name="categorical_crossentropy",
    ),
    LossCase(
        "sparse_categorical_crossentropy",
        cyloss.sparse_categorical_crossentropy,
        cyloss.SparseCategoricalCrossentropy,
        reference.sparse_categorical_crossentropy,
        make_sparse,
        SPARSE_OPTIONS,
        _sparse_shapes,
        probability_input=True,
        keras_name="sparse_categorical_crossentropy",
    ),
    LossCase(
        "binary_crossentropy",
        cyloss.binary_crossentropy,
        cyloss.BinaryCrossentropy,
        reference.binary_crossentropy,
        make_binary,
        BINARY_OPTIONS,
        _elementwise_shapes,
        probability_input=True,
        keras_name="binary_crossentropy",
    ),
    *(_elementwise_case(e) for e in cyloss.losses.ELEMENTWISE),
    LossCase(
        "poisson_nll",
        cyloss.poisson_nll,
        cyloss.PoissonNLL,
        reference.poisson_nll,
        make_poisson,
        tuple(_grid(log_input=[True, False], full=[False, True])
              + _grid(log_input=[False], eps=[1e-3])),
        _elementwise_shapes,
    ),
    LossCase(
        "hinge_embedding",
        cyloss.hinge_embedding,
        cyloss.HingeEmbedding,
        reference.hinge_embedding,
        make_hinge_embedding,
        tuple(_grid(margin=[1.0, 0.0, 2.5])),
        _elementwise_shapes,
    ),
    LossCase(
        "dice",
        cyloss.dice,
        cyloss.Dice,
        reference.dice,
        make_overlap,
        tuple(_grid(axis=[None, -1, 0])),
        _elementwise_shapes,
    ),
    LossCase(
        "tversky",
        cyloss.tversky,
        cyloss.Tversky,
        reference.tversky,
        make_overlap,
        tuple(_grid(alpha=[0.5, 0.3], beta=[0.5, 0.7], axis=[None, -1])),
        _elementwise_shapes,
    ),
)

BY_NAME = {case.name: case for case in LOSSES}


def loss_params():
    """``pytest.param``-ready list of ``(case,)`` with the loss name as id."""
    import pytest

    return [pytest.param(case, id=case.name) for case in LOSSES]


def loss_option_params():
    """Every loss x every option combination of its grid, ids like ``sparse...-logits-ls0.1``."""
    import pytest

    return [
        pytest.param(case, dict(opts), id=f"{case.name}-{oid}")
        for case in LOSSES
        for oid, opts in case.options
    ]


def make_sample_weight(rng, per_sample, kind):
    """``kind``: None, "full" (the per-sample shape) or "column" (a trailing axis of 1)."""
    if kind is None:
        return None
    w = rng.uniform(0.0, 2.0, size=per_sample)
    if w.size >= 3:
        w.reshape(-1)[rng.choice(w.size, size=max(1, w.size // 5), replace=False)] = 0.0
    return w[..., None] if kind == "column" else w
