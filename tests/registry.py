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
        "apply_class_balancing": "balance",
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


def make_nonnegative(rng, shape, dtype, options, extremes=True):
    """Counts and sizes (Poisson, MSLE): ``y`` counts and fractions >= 0, ``p`` rates in
    (0.05, 8), with exact zeros in both when ``extremes`` (``p = 0`` is clipped by MSLE
    and gives ``log(1e-7)`` in Poisson)."""
    y = np.where(rng.random(shape) < 0.5, rng.poisson(2.0, size=shape),
                 rng.uniform(0.0, 5.0, size=shape))
    p = rng.uniform(0.05, 8.0, size=shape)
    if extremes and p.size >= 4:
        flat = p.reshape(-1)
        flat[rng.choice(flat.size, size=max(1, flat.size // 8), replace=False)] = 0.0
    return _cast(y, dtype), _cast(p, dtype)


def make_labels(rng, shape, dtype, options, extremes=True):
    """Hinge labels: all in {0, 1} (Keras maps them to -1 and 1) or all in {-1, 1}, so
    that every subset of the samples takes the same side of Keras's whole-array rule;
    predictions real, some on the kink (``t p = 1``) when ``extremes``."""
    t = rng.choice([-1.0, 1.0], size=shape)
    p = rng.normal(0.0, 1.5, size=shape)
    if extremes and p.size >= 4:
        idx = rng.choice(p.size, size=max(1, p.size // 8), replace=False)
        p.reshape(-1)[idx] = t.reshape(-1)[idx]   # margin 1 - t p = 0
    y = t if rng.random() < 0.5 else (t + 1.0) / 2.0
    return _cast(y, dtype), _cast(p, dtype)


#: The input generator of each kind of elementwise input (the table's ``inputs``).
INPUTS = {"real": make_regression, "nonnegative": make_nonnegative, "labels": make_labels}


def _class_last_shape(shape, axis):
    moved = list(shape)
    n_classes = moved.pop(axis % len(shape))
    return tuple(moved), n_classes


def make_kl(rng, shape, dtype, options, extremes=True):
    """Probability rows (a few exact zeros in the target, and predictions at 0 and above
    1 where Keras clips), or their logs for log_target / log_input."""
    axis = options.get("axis", -1)
    batch, n_classes = _class_last_shape(shape, axis)
    y = rng.dirichlet(np.ones(n_classes), size=batch)
    p = rng.dirichlet(np.ones(n_classes), size=batch)
    if extremes and y.size >= 6:
        flat = y.reshape(-1)
        flat[rng.choice(flat.size, size=max(1, flat.size // 8), replace=False)] = 0.0
        if not options.get("log_input"):
            flat = p.reshape(-1)
            idx = rng.choice(flat.size, size=max(2, flat.size // 8), replace=False)
            flat[idx[: len(idx) // 2]] = 0.0          # clipped up to epsilon
            flat[idx[len(idx) // 2:]] = 1.5           # clipped down to 1
    with np.errstate(divide="ignore"):
        if options.get("log_target"):
            y = np.log(y)                              # zeros become -inf: contribute 0
        if options.get("log_input"):
            p = np.log(p)
    return _cast(np.moveaxis(y, -1, axis), dtype), _cast(np.moveaxis(p, -1, axis), dtype)


def make_nll(rng, shape, dtype, options, extremes=True):
    labels, logits = make_sparse(rng, shape, np.float64, dict(options, from_logits=True))
    return labels, _cast(reference.log_softmax(logits, options.get("axis", -1) % len(shape)),
                         dtype)


def make_categorical_hinge(rng, shape, dtype, options, extremes=True):
    """One-hot targets, a third of the rows in Keras's {-1, 1} form; scores whose hinge
    is active in some rows and not in others."""
    axis = options.get("axis", -1)
    batch, n_classes = _class_last_shape(shape, axis)
    y = np.eye(n_classes)[rng.integers(0, n_classes, size=batch)]
    rows = y.reshape(-1, n_classes)
    signed = rng.random(rows.shape[0]) < 0.3
    rows[signed] = 2.0 * rows[signed] - 1.0
    x = rng.normal(0.0, 1.0, size=batch + (n_classes,)) * rng.choice([0.3, 1.0, 3.0],
                                                                       size=batch + (1,))
    return _cast(np.moveaxis(y, -1, axis), dtype), _cast(np.moveaxis(x, -1, axis), dtype)


def make_cosine(rng, shape, dtype, options, extremes=True):
    """Random rows; with extremes, a zero row on either side and a row of norm below
    epsilon (where the clamp is active)."""
    axis = options.get("axis", -1)
    batch, n_classes = _class_last_shape(shape, axis)
    y = rng.normal(size=batch + (n_classes,))
    x = rng.normal(size=batch + (n_classes,)) * rng.choice([0.01, 1.0, 100.0],
                                                          size=batch + (1,))
    rows_y, rows_x = y.reshape(-1, n_classes), x.reshape(-1, n_classes)
    if extremes and rows_y.shape[0] >= 4:
        rows_y[0] = 0.0
        rows_x[1] = 0.0
        rows_x[2] *= 1e-12
    return _cast(np.moveaxis(y, -1, axis), dtype), _cast(np.moveaxis(x, -1, axis), dtype)


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


KL_OPTIONS = tuple(
    _grid(log_input=[False, True], log_target=[False, True], axis=[-1, 0, 1])
    + _grid(epsilon=[1e-2])
)
NLL_OPTIONS = tuple(
    _grid(ignore_index=[None, -100, 2], class_weight=[None, CLASS_WEIGHT])
    + _grid(axis=[1], ignore_index=[-100], class_weight=[CLASS_WEIGHT])
)
AXIS_OPTIONS = tuple(_grid(axis=[-1, 0, 1]))
COSINE_OPTIONS = AXIS_OPTIONS + tuple(_grid(epsilon=[1e-3]))


def _elementwise_shapes(options):
    if isinstance(options.get("pos_weight"), np.ndarray):
        return [(6, 4), (2, 3, 4)]
    return [(9,), (6, 4), (2, 3, 4)]


FOCAL_CLASS_WEIGHT = np.array([0.5, 2.0, 0.0, 3.0])  # multilabel: a last axis of 4

BINARY_FOCAL_OPTIONS = tuple(
    _grid(
        from_logits=[False, True],
        label_smoothing=[0.0, 0.1],
        apply_class_balancing=[False, True],
        gamma=[2.0, 0.5],
    )
    + _grid(from_logits=[False, True], gamma=[0.0, 1.0], alpha=[0.6],
            apply_class_balancing=[True])
    + _grid(from_logits=[False], epsilon=[1e-2])
)

CATEGORICAL_FOCAL_OPTIONS = tuple(
    _grid(from_logits=[False, True], label_smoothing=[0.0, 0.2], axis=[-1, 1],
          gamma=[2.0, 0.5])
    + _grid(from_logits=[False, True], gamma=[0.0, 3.0], alpha=[1.0], axis=[0])
    + _grid(from_logits=[False], epsilon=[1e-2])
)

SPARSE_FOCAL_OPTIONS = tuple(
    _grid(
        from_logits=[False, True],
        label_smoothing=[0.0, 0.1],
        ignore_index=[None, -100],
        class_weight=[None, CLASS_WEIGHT],
        gamma=[2.0, 0.5],
    )
    + _grid(from_logits=[False, True], axis=[1], ignore_index=[2], gamma=[0.0], alpha=[0.7])
    + _grid(from_logits=[False], epsilon=[1e-2])
)

MULTILABEL_OPTIONS = tuple(_grid(class_weight=[None, FOCAL_CLASS_WEIGHT]))


def fixed_width(case, options):
    """The last axis an option vector fixes (pos_weight, multilabel's class_weight), or
    None."""
    if isinstance(options.get("pos_weight"), np.ndarray):
        return len(options["pos_weight"])
    if case.name == "multilabel_soft_margin" and options.get("class_weight") is not None:
        return len(options["class_weight"])
    return None


def _multilabel_shapes(options):
    if options.get("class_weight") is not None:
        return [(6, 4), (2, 3, 4)]
    return [(9,), (6, 4), (2, 3, 4)]


def make_multilabel(rng, shape, dtype, options, extremes=True):
    return make_binary(rng, shape, dtype, {"from_logits": True}, extremes)


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
        INPUTS[e.inputs],
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
    LossCase(
        "binary_focal_crossentropy",
        cyloss.binary_focal_crossentropy,
        cyloss.BinaryFocalCrossentropy,
        reference.binary_focal_crossentropy,
        make_binary,
        BINARY_FOCAL_OPTIONS,
        _elementwise_shapes,
        probability_input=True,
        keras_name="binary_focal_crossentropy",
    ),
    LossCase(
        "categorical_focal_crossentropy",
        cyloss.categorical_focal_crossentropy,
        cyloss.CategoricalFocalCrossentropy,
        reference.categorical_focal_crossentropy,
        make_categorical,
        CATEGORICAL_FOCAL_OPTIONS,
        _categorical_shapes,
        probability_input=True,
        keras_name="categorical_focal_crossentropy",
    ),
    LossCase(
        "sparse_categorical_focal_crossentropy",
        cyloss.sparse_categorical_focal_crossentropy,
        cyloss.SparseCategoricalFocalCrossentropy,
        reference.sparse_categorical_focal_crossentropy,
        make_sparse,
        SPARSE_FOCAL_OPTIONS,
        _sparse_shapes,
        probability_input=True,
    ),
    LossCase(
        "multilabel_soft_margin",
        cyloss.multilabel_soft_margin,
        cyloss.MultilabelSoftMargin,
        reference.multilabel_soft_margin,
        make_multilabel,
        MULTILABEL_OPTIONS,
        _multilabel_shapes,
    ),
    *(_elementwise_case(e) for e in cyloss.losses.ELEMENTWISE),
    LossCase(
        "kl_divergence",
        cyloss.kl_divergence,
        cyloss.KLDivergence,
        reference.kl_divergence,
        make_kl,
        KL_OPTIONS,
        _categorical_shapes,
        keras_name="kl_divergence",
    ),
    LossCase(
        "nll",
        cyloss.nll,
        cyloss.NegativeLogLikelihood,
        reference.nll,
        make_nll,
        NLL_OPTIONS,
        _sparse_shapes,
        aliases=("nll_loss",),
    ),
    LossCase(
        "categorical_hinge",
        cyloss.categorical_hinge,
        cyloss.CategoricalHinge,
        reference.categorical_hinge,
        make_categorical_hinge,
        AXIS_OPTIONS,
        _categorical_shapes,
        keras_name="categorical_hinge",
    ),
    LossCase(
        "cosine_similarity",
        cyloss.cosine_similarity,
        cyloss.CosineSimilarity,
        reference.cosine_similarity,
        make_cosine,
        COSINE_OPTIONS,
        _categorical_shapes,
        keras_name="cosine_similarity",
    ),
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

#: Losses with a class axis, and those of them whose y_true holds labels.
CLASS_AXIS_LOSSES = reference.CLASS_AXIS_LOSSES
LABEL_LOSSES = ("sparse_categorical_crossentropy", "nll",
                "sparse_categorical_focal_crossentropy")

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
