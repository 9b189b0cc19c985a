"""An independent float64 reference for the losses of SPEC.md sections 1-3.

Written from the contract only, never from ``src/cyloss``: every formula is the
plain one of the SPEC, in float64 NumPy, favouring clarity over speed.  The tests
compare cyloss against these functions, so a bug shared by both would need the
same misreading of the SPEC twice.

Layers:
- ``_term(coef, value)``: ``coef * value`` where a zero coefficient contributes 0,
  even against an infinite value (SPEC: "a term whose coefficient is 0 contributes
  0, even against -inf"), but not against NaN (SPEC section 5: NaN propagates).
- per-sample losses, one function per loss, same keyword options as cyloss;
- ``reduce_losses``: the four reductions of SPEC section 3, sums by ``math.fsum``
  (exactly rounded), so the reference is at least as accurate as what it checks;
  non-finite terms follow IEEE (a NaN, or +inf with -inf, gives NaN).

Every function accepts hostile values (NaN, infinities, 1e300, empty axes) without a
NumPy warning of its own; callers that want quiet arithmetic wrap it in ``np.errstate``.
"""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-7
#: The losses with a class axis (``axis``); the others average over the last axis.
REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
REDUCTION_ALIASES = {
    "sum_over_batch_size": "mean",
    "mean_with_sample_weight": "weighted_mean",
}

#: The losses whose per-sample loss reduces over a class axis (``axis``).
CLASS_AXIS_LOSSES = (
    "categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence", "nll",
    "categorical_hinge", "cosine_similarity", "categorical_focal_crossentropy",
    "sparse_categorical_focal_crossentropy",
)

__all__ = [
    "EPSILON",
    "REDUCTIONS",
    "REDUCTION_ALIASES",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "hinge",
    "categorical_focal_crossentropy",
    "multilabel_soft_margin",
    "sparse_categorical_focal_crossentropy",
    "dice",
    "hinge_embedding",
    "huber",
    "log_cosh",
    "log_softmax",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "per_sample_shape",
    "poisson",
    "poisson_nll",
    "reduce_losses",
    "smooth_l1",
    "softplus",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "tversky",
]


# --------------------------------------------------------------------------- #
# Scalar-ish helpers
# --------------------------------------------------------------------------- #
def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _term(coef, value) -> np.ndarray:
    """``coef * value`` with ``0 * (+-inf) := 0``; ``0 * NaN`` stays NaN."""
    coef, value = np.broadcast_arrays(_f64(coef), _f64(value))
    with np.errstate(invalid="ignore", over="ignore"):
        product = coef * value
    return np.where((coef == 0.0) & ~np.isnan(value), 0.0, product)


def softplus(x) -> np.ndarray:
    """``log(1 + e^x)``, stable: ``max(x, 0) + log1p(e^-|x|)``; softplus(+inf) = inf."""
    x = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        # np.logaddexp(0, x) is exactly the stable form above and handles +-inf.
        return np.logaddexp(0.0, x)


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """Log-probabilities from logits along ``axis``, accurate even for a dominant logit.

    ``log p_c = (x_c - m) - log(sum_j e^(x_j - m))`` with ``m`` the row max; the sum is
    ``1 + sum_{j != argmax} e^(x_j - m)``, so it is taken as ``log1p`` of the rest: a
    confident row [20, 0] gives ``-log1p(e^-20)`` to full relative precision.

    A row with ``t`` logits at ``+inf`` (and no NaN) gives the limit (README):
    ``log p = -log t`` at those and ``-inf`` elsewhere. A row holding NaN, or only
    ``-inf``, gives NaN.
    """
    x = np.moveaxis(_f64(x), axis, -1)
    if x.shape[-1] == 0:  # no classes: nothing to normalise (no rows either, or an error)
        return np.moveaxis(x.copy(), -1, axis)
    with np.errstate(invalid="ignore", over="ignore"):
        k = np.argmax(x, axis=-1)[..., None]
        m = np.take_along_axis(x, k, axis=-1)
        shifted = x - m
        e = np.exp(shifted)
        np.put_along_axis(e, k, 0.0, axis=-1)  # leave the max's own 1 out
        rest = e.sum(axis=-1, keepdims=True)
        out = shifted - np.log1p(rest)
        top = np.isposinf(x)
        t = top.sum(axis=-1, keepdims=True)
        limit = np.where(top, -np.log(np.maximum(t, 1)), -np.inf)
        out = np.where((t > 0) & ~np.isnan(x).any(axis=-1, keepdims=True), limit, out)
    return np.moveaxis(out, -1, axis)


def _log_probabilities(p, epsilon: float) -> np.ndarray:
    """SPEC: renormalise along the last axis, clip to [eps, 1 - eps], then log."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / p.sum(axis=-1, keepdims=True)
        p = np.clip(p, epsilon, 1.0 - epsilon)  # np.clip keeps NaN
        return np.log(p)


def _same_shape(y_true, y_pred):
    """SPEC section 2: equal shapes after squeezing a trailing 1 present on one side only."""
    y, p = _f64(y_true), _f64(y_pred)
    if y.shape != p.shape:
        if y.ndim == p.ndim + 1 and y.shape[-1] == 1:
            y = y[..., 0]
        elif p.ndim == y.ndim + 1 and p.shape[-1] == 1:
            p = p[..., 0]
    if y.shape != p.shape:
        raise ValueError(f"reference: shapes {y.shape} and {p.shape} do not match")
    return y, p


def _mean_last_axis(elementwise: np.ndarray) -> np.ndarray:
    """1-D: n samples of one output each; 2 or more axes: mean over the last axis (an
    empty last axis gives 0/0 = NaN, as a mean of nothing)."""
    if elementwise.ndim >= 2:
        with np.errstate(invalid="ignore"):
            return elementwise.sum(axis=-1) / elementwise.shape[-1]
    return elementwise


def per_sample_shape(loss: str, y_pred_shape, axis: int = -1) -> tuple:
    """The shape of the ``"none"`` result for ``y_pred`` of the given shape."""
    shape = tuple(y_pred_shape)
    if loss in OVERLAP_LOSSES:
        reduced = overlap_axes(len(shape), axis)
        return tuple(d for a, d in enumerate(shape) if a not in reduced)
    if loss in CLASS_AXIS_LOSSES:
        ax = axis % len(shape)
        return shape[:ax] + shape[ax + 1 :]
    return shape[:-1] if len(shape) >= 2 else shape


# --------------------------------------------------------------------------- #
# Reductions (SPEC section 3)
# --------------------------------------------------------------------------- #
def _broadcast_sample_weight(sample_weight, shape) -> np.ndarray:
    if sample_weight is None:
        return np.ones(shape)
    w = _f64(sample_weight)
    shape = tuple(shape)
    # Keras's (n, 1) against (n,): a trailing axis of 1 is squeezed first.
    if w.ndim == len(shape) + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    # Keras's weight per batch entry: (n,) against (n, m) weights every loss of entry i.
    elif 0 < w.ndim < len(shape) and w.shape == shape[: w.ndim]:
        w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
    return np.broadcast_to(w, shape)


def _sum(values) -> float:
    """``math.fsum`` (exactly rounded) of finite terms; IEEE's result otherwise (NaN for
    a NaN or for +inf with -inf, else the infinity). A sum that overflows is +-inf when
    its terms have one sign; with both signs it raises OverflowError, since a float64
    sum of those terms may then be finite or not, depending on the order of addition."""
    values = _f64(values).ravel()
    if not np.isfinite(values).all():
        with np.errstate(invalid="ignore", over="ignore"):
            return float(np.sum(values[~np.isfinite(values)]))
    try:
        return math.fsum(values.tolist())
    except OverflowError:
        if (values >= 0).all() or (values <= 0).all():
            return math.inf if (values >= 0).all() else -math.inf
        raise


def reduce_losses(losses, sample_weight=None, reduction="mean", *, v=None, counted=None):
    """Apply a SPEC reduction to per-sample losses ``l_i``.

    ``v``: per-sample denominators weight (class_weight[label] for sparse, else 1);
    ``counted``: False for ignored samples.  A zero denominator gives 0.0.
    """
    reduction = REDUCTION_ALIASES.get(reduction, reduction)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reference: unknown reduction {reduction!r}")
    losses = _f64(losses)
    shape = losses.shape
    w = _broadcast_sample_weight(sample_weight, shape)
    counted = np.ones(shape, bool) if counted is None else np.asarray(counted, bool)
    v = np.ones(shape) if v is None else np.broadcast_to(_f64(v), shape)
    with np.errstate(invalid="ignore", over="ignore"):
        weighted = np.where(counted, w * losses, 0.0)
        weighted_v = w * v
    if reduction == "none":
        return weighted
    numerator = _sum(weighted[counted])
    if reduction == "sum":
        return float(numerator)
    if reduction == "mean":
        denominator = float(np.count_nonzero(counted))
    else:  # weighted_mean
        denominator = _sum(weighted_v[counted])
    if denominator == 0.0:
        return 0.0
    return float(numerator / denominator)


# --------------------------------------------------------------------------- #
# Losses (SPEC section 1)
# --------------------------------------------------------------------------- #
def categorical_crossentropy(
    y_true,
    y_pred,
    *,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
    epsilon=EPSILON,
    sample_weight=None,
    reduction="mean",
):
    """``-sum_c y_c log p_c`` over the class axis."""
    y = np.moveaxis(_f64(y_true), axis, -1)
    x = np.moveaxis(_f64(y_pred), axis, -1)
    if y.shape != x.shape:
        raise ValueError("reference: categorical shapes differ")
    n_classes = x.shape[-1]
    if label_smoothing:
        # max(C, 1): with no classes there are no samples either (or an error)
        y = y * (1.0 - label_smoothing) + label_smoothing / max(n_classes, 1)
    log_p = log_softmax(x) if from_logits else _log_probabilities(x, epsilon)
    losses = _term(y, -log_p).sum(axis=-1)
    return reduce_losses(losses, sample_weight, reduction)


def sparse_categorical_crossentropy(
    y_true,
    y_pred,
    *,
    from_logits=False,
    axis=-1,
    ignore_index=None,
    class_weight=None,
    label_smoothing=0.0,
    epsilon=EPSILON,
    sample_weight=None,
    reduction="mean",
):
    """``-sum_c class_weight[c] q_c log p_c`` with ``q`` the (smoothed) one-hot target."""
    x = _f64(y_pred)
    ax = axis % x.ndim
    labels = np.asarray(y_true)
    if labels.ndim == x.ndim:  # a size-1 class axis
        labels = np.squeeze(labels, axis=ax)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError("reference: labels must be exact integers")
    labels = labels.astype(np.int64)
    x = np.moveaxis(x, ax, -1)
    n_classes = x.shape[-1]
    if labels.shape != x.shape[:-1]:
        raise ValueError("reference: label shape does not match")
    if ignore_index is None:
        ignored = np.zeros(labels.shape, bool)
    else:
        ignored = labels == ignore_index
    safe = np.where(ignored, 0, labels)
    if np.any((safe < 0) | (safe >= n_classes)):
        raise ValueError("reference: label out of range")
    cw = np.ones(n_classes) if class_weight is None else _f64(class_weight)

    log_p = log_softmax(x) if from_logits else _log_probabilities(x, epsilon)
    if label_smoothing:
        q = np.zeros(x.shape)
        np.put_along_axis(q, safe[..., None], 1.0, axis=-1)
        q = q * (1.0 - label_smoothing) + label_smoothing / max(n_classes, 1)
        losses = _term(cw * q, -log_p).sum(axis=-1)
    else:
        # SPEC: -log p_label, one term: the other classes are not part of the loss (a
        # NaN that renormalisation puts at another class, inf / inf, does not reach it).
        log_p_label = np.take_along_axis(log_p, safe[..., None], axis=-1)[..., 0]
        losses = _term(cw[safe], -log_p_label)
    losses = np.where(ignored, 0.0, losses)
    return reduce_losses(
        losses, sample_weight, reduction, v=cw[safe], counted=~ignored
    )


def binary_crossentropy(
    y_true,
    y_pred,
    *,
    from_logits=False,
    label_smoothing=0.0,
    pos_weight=None,
    epsilon=EPSILON,
    sample_weight=None,
    reduction="mean",
):
    """Mean over the last axis of ``-(pw y log p + (1 - y) log(1 - p))``."""
    y, x = _same_shape(y_true, y_pred)
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / 2.0
    # pos_weight broadcasts along the last axis only: a scalar, (1,) or (K,) (or (1, K)).
    pw = 1.0 if pos_weight is None else _f64(pos_weight).reshape(-1)
    if np.size(pw) == 1:
        pw = float(np.reshape(pw, ()))
    if from_logits:
        # -log sigmoid(x) = softplus(-x);  -log(1 - sigmoid(x)) = softplus(x)
        neg_log_p, neg_log_1mp = softplus(-x), softplus(x)
    else:
        p = np.clip(x, epsilon, 1.0 - epsilon)
        neg_log_p, neg_log_1mp = -np.log(p), -np.log1p(-p)
    elementwise = _term(pw * y, neg_log_p) + _term(1.0 - y, neg_log_1mp)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def mean_absolute_error(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    y, p = _same_shape(y_true, y_pred)
    return reduce_losses(_mean_last_axis(np.abs(p - y)), sample_weight, reduction)


def mean_squared_error(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    y, p = _same_shape(y_true, y_pred)
    return reduce_losses(_mean_last_axis((p - y) ** 2), sample_weight, reduction)


def huber(y_true, y_pred, *, delta=1.0, sample_weight=None, reduction="mean"):
    y, p = _same_shape(y_true, y_pred)
    e = np.abs(p - y)
    elementwise = np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta))
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def smooth_l1(y_true, y_pred, *, beta=1.0, sample_weight=None, reduction="mean"):
    y, p = _same_shape(y_true, y_pred)
    e = np.abs(p - y)
    if beta == 0:
        elementwise = e  # beta == 0 is L1
    else:
        elementwise = np.where(e < beta, 0.5 * e**2 / beta, e - 0.5 * beta)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def log_cosh(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    """Keras 3's log_cosh: ``log(cosh(e))``, ``e = p - y``, two ways that are each
    accurate where they are used: ``log1p(expm1(a)**2 / (2 e^a))`` (``cosh a - 1`` without
    cancellation) for ``a = |e| <= 1``, and ``a - log 2 + log1p(e^(-2a))`` above (no
    overflow; ``a = inf`` gives inf)."""
    y, p = _same_shape(y_true, y_pred)
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.abs(p - y)
        small = np.minimum(a, 1.0)
        near_zero = np.log1p(np.expm1(small) ** 2 / (2.0 * np.exp(small)))
        large = a - math.log(2.0) + np.log1p(np.exp(-2.0 * a))
        elementwise = np.where(a <= 1.0, near_zero, large)  # NaN takes `large`: NaN
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def poisson(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    """Keras 3's poisson: ``p - y log(p + 1e-7)``, as written (NaN where Keras's is)."""
    y, p = _same_shape(y_true, y_pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        elementwise = p - y * np.log(p + EPSILON)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def mean_absolute_percentage_error(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    """Keras 3's MAPE: ``100 |y - p| / max(|y|, 1e-7)`` (np.maximum keeps NaN)."""
    y, p = _same_shape(y_true, y_pred)
    with np.errstate(invalid="ignore"):
        elementwise = 100.0 * np.abs(y - p) / np.maximum(np.abs(y), EPSILON)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def mean_squared_logarithmic_error(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    """Keras 3's MSLE: ``(log(1 + max(p, 1e-7)) - log(1 + max(y, 1e-7)))**2``, with
    log1p for ``log(1 + x)``."""
    y, p = _same_shape(y_true, y_pred)
    with np.errstate(invalid="ignore"):
        d = np.log1p(np.maximum(p, EPSILON)) - np.log1p(np.maximum(y, EPSILON))
    return reduce_losses(_mean_last_axis(d * d), sample_weight, reduction)


def hinge_labels(y_true):
    """Keras 3's convert_binary_labels_to_hinge: ``2 y - 1`` when every value of the
    whole ``y_true`` is 0 or 1, else ``y`` unchanged."""
    y = _f64(y_true)
    return 2.0 * y - 1.0 if np.all((y == 0.0) | (y == 1.0)) else y


def hinge(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    """Keras 3's hinge: ``max(1 - t p, 0)``, ``t`` from :func:`hinge_labels`."""
    y, p = _same_shape(y_true, y_pred)
    with np.errstate(invalid="ignore"):
        elementwise = np.maximum(1.0 - hinge_labels(y) * p, 0.0)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def squared_hinge(y_true, y_pred, *, sample_weight=None, reduction="mean"):
    """Keras 3's squared_hinge: ``max(1 - t p, 0)**2``."""
    y, p = _same_shape(y_true, y_pred)
    with np.errstate(invalid="ignore", over="ignore"):
        elementwise = np.maximum(1.0 - hinge_labels(y) * p, 0.0) ** 2
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)

# --------------------------------------------------------------------------- #
# Focal losses (Keras 3) and multilabel soft margin (PyTorch)
# --------------------------------------------------------------------------- #
def _sigmoid(x) -> np.ndarray:
    """``1 / (1 + e^-x)`` as ``exp(-softplus(-x))``: exact 0 and 1 at -+inf."""
    return np.exp(-softplus(-_f64(x)))


def binary_focal_crossentropy(
    y_true,
    y_pred,
    *,
    apply_class_balancing=False,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    epsilon=EPSILON,
    sample_weight=None,
    reduction="mean",
):
    """Keras 3: mean over the last axis of ``a (1 - p_t)^gamma bce``, ``p_t`` from the
    unclipped probability, ``bce`` from the clipped one (or from logits, unclipped)."""
    y, x = _same_shape(y_true, y_pred)
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / 2.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if from_logits:
            p = _sigmoid(x)
            one_minus_p = _sigmoid(-x)
            bce = _term(y, softplus(-x)) + _term(1.0 - y, softplus(x))
        else:
            p, one_minus_p = x, 1.0 - x
            c = np.clip(x, epsilon, 1.0 - epsilon)
            bce = _term(y, -np.log(c)) + _term(1.0 - y, -np.log1p(-c))
        one_minus_pt = y * one_minus_p + (1.0 - y) * p
        focal = np.power(one_minus_pt, gamma)
        elementwise = _term(focal, bce)
        if apply_class_balancing:
            elementwise = _term(y * alpha + (1.0 - y) * (1.0 - alpha), elementwise)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def multilabel_soft_margin(
    y_true, y_pred, *, class_weight=None, sample_weight=None, reduction="mean"
):
    """PyTorch: mean over classes of ``-w_c (y log sigmoid(x) + (1 - y) log sigmoid(-x))``."""
    y, x = _same_shape(y_true, y_pred)
    w = 1.0 if class_weight is None else _f64(class_weight)
    elementwise = _term(w, _term(y, softplus(-x)) + _term(1.0 - y, softplus(x)))
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def _focal_terms(q, x, from_logits, epsilon, gamma):
    """``q_c (1 - p_c)^gamma (-log p_c)`` per class (class axis last)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if from_logits:
            log_p = log_softmax(x)
            one_minus_p = -np.expm1(log_p)
        else:  # SPEC: renormalise, clip, then both factors take the clipped c
            c = np.clip(x / x.sum(axis=-1, keepdims=True), epsilon, 1.0 - epsilon)
            log_p, one_minus_p = np.log(c), 1.0 - c
        return _term(q, _term(np.power(one_minus_p, gamma), -log_p))


def categorical_focal_crossentropy(
    y_true,
    y_pred,
    *,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
    epsilon=EPSILON,
    sample_weight=None,
    reduction="mean",
):
    """Keras 3: ``-alpha sum_c y_c (1 - p_c)^gamma log p_c`` over the class axis."""
    y = np.moveaxis(_f64(y_true), axis, -1)
    x = np.moveaxis(_f64(y_pred), axis, -1)
    if y.shape != x.shape:
        raise ValueError("reference: categorical shapes differ")
    n_classes = x.shape[-1]
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / max(n_classes, 1)
    losses = _term(alpha, _focal_terms(y, x, from_logits, epsilon, gamma).sum(axis=-1))
    return reduce_losses(losses, sample_weight, reduction)


def sparse_categorical_focal_crossentropy(
    y_true,
    y_pred,
    *,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    axis=-1,
    ignore_index=None,
    class_weight=None,
    label_smoothing=0.0,
    epsilon=EPSILON,
    sample_weight=None,
    reduction="mean",
):
    """The categorical focal loss of the (smoothed) one-hot label times the class weights;
    ignored labels as in sparse_categorical_crossentropy."""
    x = _f64(y_pred)
    ax = axis % x.ndim
    labels = np.asarray(y_true)
    if labels.ndim == x.ndim:
        labels = np.squeeze(labels, axis=ax)
    labels = labels.astype(np.int64)
    x = np.moveaxis(x, ax, -1)
    n_classes = x.shape[-1]
    ignored = (np.zeros(labels.shape, bool) if ignore_index is None
               else labels == ignore_index)
    safe = np.where(ignored, 0, labels)
    if np.any((safe < 0) | (safe >= n_classes)):
        raise ValueError("reference: label out of range")
    cw = np.ones(n_classes) if class_weight is None else _f64(class_weight)
    q = np.zeros(x.shape)
    np.put_along_axis(q, safe[..., None], 1.0, axis=-1)
    if label_smoothing:
        q = q * (1.0 - label_smoothing) + label_smoothing / max(n_classes, 1)
    terms = _focal_terms(cw * q, x, from_logits, epsilon, gamma)
    if not label_smoothing:  # only the label's term (NaN elsewhere does not reach it)
        terms = np.take_along_axis(terms, safe[..., None], axis=-1)
    losses = _term(alpha, terms.sum(axis=-1))
    losses = np.where(ignored, 0.0, losses)
    return reduce_losses(losses, sample_weight, reduction, v=cw[safe], counted=~ignored)


mae = mean_absolute_error
mse = mean_squared_error
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error


# --------------------------------------------------------------------------- #
# Row losses of the catalogue (issue 14), from Keras 3's and PyTorch's definitions
# --------------------------------------------------------------------------- #
def _rows_last(y_true, y_pred, axis):
    y = np.moveaxis(_f64(y_true), axis, -1)
    x = np.moveaxis(_f64(y_pred), axis, -1)
    if y.shape != x.shape:
        raise ValueError("reference: shapes differ")
    return y, x


def kl_divergence(y_true, y_pred, *, log_input=False, log_target=False, axis=-1,
                  epsilon=EPSILON, sample_weight=None, reduction="mean"):
    """Keras: ``sum y log(y / p)`` with both clipped to [eps, 1]. PyTorch's kl_div with
    ``log_input`` (y_pred = log p, nothing clipped) and/or ``log_target`` (y_true = log y):
    ``sum y (log y - log p)``, a zero target contributing 0 unless log p is NaN."""
    y, x = _rows_last(y_true, y_pred, axis)
    with np.errstate(all="ignore"):
        if log_target:
            q, log_q = np.exp(y), y
        elif log_input:
            q, log_q = y, np.log(y)
        else:
            q = np.clip(y, epsilon, 1.0)
            log_q = np.log(q)
        log_p = x if log_input else np.log(np.clip(x, epsilon, 1.0))
        terms = np.where((q == 0.0) & ~np.isnan(log_p), 0.0, q * (log_q - log_p))
    return reduce_losses(terms.sum(axis=-1), sample_weight, reduction)


def nll(y_true, y_pred, *, axis=-1, ignore_index=None, class_weight=None,
        sample_weight=None, reduction="mean"):
    """PyTorch's nll_loss: ``-class_weight[label] * y_pred[label]``."""
    x = _f64(y_pred)
    ax = axis % x.ndim
    labels = np.asarray(y_true)
    if labels.ndim == x.ndim:
        labels = np.squeeze(labels, axis=ax)
    labels = labels.astype(np.int64)
    x = np.moveaxis(x, ax, -1)
    n_classes = x.shape[-1]
    ignored = np.zeros(labels.shape, bool) if ignore_index is None else labels == ignore_index
    safe = np.where(ignored, 0, labels)
    if np.any((safe < 0) | (safe >= n_classes)):
        raise ValueError("reference: label out of range")
    cw = np.ones(n_classes) if class_weight is None else _f64(class_weight)
    picked = np.take_along_axis(x, safe[..., None], axis=-1)[..., 0]
    losses = np.where(ignored, 0.0, _term(cw[safe], -picked))
    return reduce_losses(losses, sample_weight, reduction, v=cw[safe], counted=~ignored)


nll_loss = nll


def categorical_hinge(y_true, y_pred, *, axis=-1, sample_weight=None, reduction="mean"):
    """Keras: ``max(neg - pos + 1, 0)``, pos = sum y p, neg = max (1 - y) p."""
    y, p = _rows_last(y_true, y_pred, axis)
    with np.errstate(all="ignore"):
        pos = np.sum(y * p, axis=-1)
        neg = np.max((1.0 - y) * p, axis=-1)
        losses = np.maximum(neg - pos + 1.0, 0.0)
    return reduce_losses(losses, sample_weight, reduction)


def cosine_similarity(y_true, y_pred, *, axis=-1, epsilon=EPSILON, sample_weight=None,
                      reduction="mean"):
    """Keras 3: ``-sum(normalize(y) * normalize(p))``, normalize(v) = v / max(|v|, eps)."""
    y, p = _rows_last(y_true, y_pred, axis)
    with np.errstate(all="ignore"):
        ny = np.sqrt(np.sum(y * y, axis=-1, keepdims=True))
        np_ = np.sqrt(np.sum(p * p, axis=-1, keepdims=True))
        losses = -np.sum((y / np.maximum(ny, epsilon)) * (p / np.maximum(np_, epsilon)),
                         axis=-1)
    return reduce_losses(losses, sample_weight, reduction)


# --------------------------------------------------------------------------- #
# Issue #14: PyTorch's poisson_nll_loss and hinge_embedding_loss, Keras 3's dice and
# tversky (from their documented formulas)
# --------------------------------------------------------------------------- #
def poisson_nll(y_true, y_pred, *, log_input=True, full=False, eps=1e-8,
                sample_weight=None, reduction="mean"):
    """PyTorch: ``exp(x) - y x`` (log input) or ``x - y log(x + eps)``, plus Stirling's
    ``y log y - y + log(2 pi y) / 2`` where ``y > 1`` when ``full`` (masked where
    ``y <= 1``, so a NaN target keeps it); a zero target times an infinite value is 0."""
    y, x = _same_shape(y_true, y_pred)
    with np.errstate(all="ignore"):
        if log_input:
            elementwise = np.exp(x) - _term(y, x)
        else:
            elementwise = x - _term(y, np.log(x + eps))
        if full:
            stirling = y * np.log(y) - y + 0.5 * np.log(2.0 * math.pi * y)
            elementwise = elementwise + np.where(y <= 1.0, 0.0, stirling)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


def hinge_embedding(y_true, y_pred, *, margin=1.0, sample_weight=None, reduction="mean"):
    """PyTorch: ``[y != 1] max(0, margin - x) + [y != -1] x`` (x for y = 1, the hinge for
    y = -1; both for other labels)."""
    y, x = _same_shape(y_true, y_pred)
    with np.errstate(invalid="ignore"):
        hinge = np.maximum(margin - x, 0.0)  # NaN stays NaN
        elementwise = np.where(y != 1, hinge, 0.0) + np.where(y != -1, x, 0.0)
    return reduce_losses(_mean_last_axis(elementwise), sample_weight, reduction)


OVERLAP_LOSSES = ("dice", "tversky")
KERAS_EPSILON = 1e-7


def overlap_axes(ndim, axis):
    """The axes Keras's ``dice`` / ``tversky`` sum over: every axis for ``None``."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(sorted(a % ndim for a in axes))


def dice(y_true, y_pred, *, axis=None, sample_weight=None, reduction="mean"):
    """Keras 3: ``1 - 2 sum(y p) / (sum y + sum p + 1e-7)`` over ``axis``."""
    y, p = _f64(y_true), _f64(y_pred)
    axes = overlap_axes(p.ndim, axis)
    with np.errstate(all="ignore"):
        intersection = np.sum(y * p, axis=axes)
        den = np.sum(y, axis=axes) + np.sum(p, axis=axes) + KERAS_EPSILON
        losses = 1.0 - 2.0 * intersection / den
    return reduce_losses(losses, sample_weight, reduction)


def tversky(y_true, y_pred, *, alpha=0.5, beta=0.5, axis=None, sample_weight=None,
            reduction="mean"):
    """Keras 3: ``1 - T / (T + alpha sum((1 - p) y) + beta sum(p (1 - y)) + 1e-7)``,
    ``T = sum(y p)``, over ``axis``."""
    y, p = _f64(y_true), _f64(y_pred)
    axes = overlap_axes(p.ndim, axis)
    with np.errstate(all="ignore"):
        t = np.sum(y * p, axis=axes)
        fp = np.sum((1.0 - p) * y, axis=axes)
        fn = np.sum(p * (1.0 - y), axis=axes)
        losses = 1.0 - t / (t + alpha * fp + beta * fn + KERAS_EPSILON)
    return reduce_losses(losses, sample_weight, reduction)
