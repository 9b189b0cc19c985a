"""Independent float64 gradients ``d value / d y_pred`` of the losses of tests/reference.py.

Closed forms in NumPy, written from the formulas of SPEC section 1 and the README's
"Gradients" paragraph, never from ``src/cyloss``:

- regression, e = p - y: MSE ``2e``; MAE ``sign(e)`` (0 at 0); Huber ``e`` for
  ``|e| <= delta`` else ``delta sign(e)``; smooth L1 ``e / beta`` for ``|e| < beta`` else
  ``sign(e)`` (``beta = 0``: ``sign(e)``); log-cosh ``tanh(e)``;
- binary, ``a = pw y``, ``b = 1 - y`` after smoothing: logits
  ``-a sigmoid(-x) + b sigmoid(x)``; probabilities ``-a / p + b / (1 - p)`` where
  ``eps <= p <= 1 - eps`` and 0 where the clip is active (torch.clamp's gradient);
- categorical and sparse with coefficients ``q_c`` (smoothed targets, times the class
  weights): logits ``softmax(x)_k sum_c q_c - q_k`` (the limit softmax for ``+inf``
  logits); probabilities, ``r = p / T`` with ``T = sum_c p_c`` and ``I`` the classes whose
  ``r`` is not clipped: ``(sum_{c in I} q_c - q_k [k in I] / r_k) / T``;

each divided by the width of the last axis for the losses that average over it, times the
sample weight, times the reduction's ``1 / n_counted`` or ``1 / sum w v`` (``sum`` and
``none`` scale by 1; a zero denominator gives a zero gradient).

:func:`gradient` also returns, per element, the magnitude of the terms that the gradient
sums (what a rounding error is relative to) for the tests' tolerance.
"""

from __future__ import annotations

import numpy as np

import reference


def _sign(e):
    return np.sign(e)  # sign(0) = 0, sign(NaN) = NaN


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _regression(loss, e, options):
    a = np.abs(e)
    if loss == "mean_squared_error":
        g = 2.0 * e
    elif loss == "mean_absolute_error":
        g = _sign(e)
    elif loss == "huber":
        delta = options.get("delta", 1.0)
        g = np.where(a <= delta, e, delta * _sign(e))
    elif loss == "smooth_l1":
        beta = options.get("beta", 1.0)
        g = _sign(e) if beta == 0 else np.where(a < beta, e / beta, _sign(e))
    elif loss == "log_cosh":
        g = np.tanh(e)  # +-1 at +-inf, NaN for NaN
    else:
        raise ValueError(f"no reference gradient for {loss!r}")
    return g, np.abs(g)


def _binary(y, x, options):
    s = options.get("label_smoothing", 0.0)
    ys = y * (1.0 - s) + s / 2.0
    pw = options.get("pos_weight")
    pw = 1.0 if pw is None else np.asarray(pw, dtype=np.float64).reshape(-1)
    if np.size(pw) == 1:
        pw = float(np.reshape(pw, ()))
    a, b = pw * ys, 1.0 - ys
    if options.get("from_logits", False):
        up, down = _sigmoid(x), _sigmoid(-x)
        g = reference._term(b, up) - reference._term(a, down)
        return g, np.abs(reference._term(b, up)) + np.abs(reference._term(a, down))
    eps = options.get("epsilon", reference.EPSILON)
    inside = (x >= eps) & (x <= 1.0 - eps)
    neg, pos = reference._term(a, 1.0 / x), reference._term(b, 1.0 / (1.0 - x))
    g = np.where(np.isnan(x), x, np.where(inside, pos - neg, 0.0))
    return g, np.where(inside, np.abs(pos) + np.abs(neg), 0.0)


def _rows(q, x, from_logits, epsilon):
    """Gradient of ``-sum_c q_c log p_c`` over the last axis, and the term magnitudes."""
    if from_logits:
        p = np.exp(reference.log_softmax(x))
        total = q.sum(axis=-1, keepdims=True)
        return p * total - q, p * np.abs(total) + np.abs(q)
    T = x.sum(axis=-1, keepdims=True)
    r = x / T
    inside = (r >= epsilon) & (r <= 1.0 - epsilon) & (q != 0)
    S = np.where(inside, q, 0.0).sum(axis=-1, keepdims=True)
    own = np.where(inside, q / np.where(inside, r, 1.0), 0.0)
    # A NaN ratio (a NaN probability, or an infinite one over an infinite total) makes the
    # value NaN, and the whole row's gradient with it (cyloss's documented choice, and
    # what autograd gives for p / p.sum()); there is then no finite reference.
    nan_row = np.isnan(r).any(axis=-1, keepdims=True)
    return (np.where(nan_row, np.nan, (S - own) / T),
            (np.abs(S) + np.abs(own)) / np.abs(T))


def gradient(loss, y_true, y_pred, *, sample_weight=None, reduction="mean", **options):
    """``(grad, magnitude, den_condition)`` for a valid call, ``y_pred``'s shape, float64.

    ``y_true`` and ``y_pred`` hold the values cyloss computes with (already cast to the
    compute dtype). ``den_condition`` is ``sum |w v| / |sum w v|`` for ``weighted_mean``
    (how much the denominator's rounding is amplified), else 0.
    """
    reduction = {"auto": "mean", None: "none"}.get(reduction, reduction)
    reduction = reference.REDUCTION_ALIASES.get(reduction, reduction)
    x = np.asarray(y_pred, dtype=np.float64)
    pred_shape = x.shape
    with np.errstate(all="ignore"):
        if loss in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
            g, mag, S, counted, v = _class_gradient(loss, y_true, x, options)
            axis = options.get("axis", -1) % x.ndim
        elif loss in reference.OVERLAP_LOSSES:
            g, mag, S, axis = _overlap(loss, y_true, x, options)
            counted, v = np.ones(S, bool), np.ones(S)
        else:
            y, p = reference._same_shape(y_true, x)
            if loss == "binary_crossentropy":
                g, mag = _binary(y, p, options)
            elif loss in ("poisson_nll", "hinge_embedding"):
                g, mag = _pair_elementwise(loss, y, p, options)
            else:
                g, mag = _regression(loss, p - y, options)
            S = p.shape[:-1] if p.ndim >= 2 else p.shape
            if p.ndim >= 2:
                g, mag = g / p.shape[-1], mag / p.shape[-1]
            counted, v = np.ones(S, bool), np.ones(S)
            axis = p.ndim - 1 if p.ndim >= 2 else None
        w = reference._broadcast_sample_weight(sample_weight, S)
        wv = (w * v)[counted]
        if reduction == "mean":
            den, den_condition = float(np.count_nonzero(counted)), 0.0
        elif reduction == "weighted_mean":
            den = reference._sum(wv)
            den_condition = reference._sum(np.abs(wv)) / abs(den) if den else 0.0
            # An infinite denominator scales every finite term to exactly 0.
            den_condition = den_condition if np.isfinite(den_condition) else 0.0
        else:
            den, den_condition = 1.0, 0.0
        if den == 0.0:
            return np.zeros(pred_shape), np.zeros(pred_shape), 0.0
        scale = w / den
        if axis is not None:
            scale, counted = np.expand_dims(scale, axis), np.expand_dims(counted, axis)
            scale, counted = np.broadcast_to(scale, g.shape), np.broadcast_to(counted, g.shape)
        g = np.where(counted, g * scale, 0.0)  # ignored samples: 0, even against NaN
        mag = np.where(counted, mag * np.abs(scale), 0.0)
    return g.reshape(pred_shape), mag.reshape(pred_shape), den_condition


def _class_gradient(loss, y_true, x, options):
    axis = options.get("axis", -1) % x.ndim
    xm = np.moveaxis(x, axis, -1)
    n_classes = xm.shape[-1]
    s = options.get("label_smoothing", 0.0)
    S = xm.shape[:-1]
    if loss == "categorical_crossentropy":
        q = np.moveaxis(np.asarray(y_true, dtype=np.float64), axis, -1)
        q = q * (1.0 - s) + s / max(n_classes, 1)
        counted, v = np.ones(S, bool), np.ones(S)
    else:
        labels = np.asarray(y_true)
        if labels.ndim == x.ndim:
            labels = np.squeeze(labels, axis=axis)
        labels = labels.astype(np.int64)
        ignore = options.get("ignore_index")
        counted = np.ones(S, bool) if ignore is None else labels != ignore
        safe = np.where(counted, labels, 0)
        cw = options.get("class_weight")
        cw = np.ones(n_classes) if cw is None else np.asarray(cw, dtype=np.float64)
        q = np.zeros(xm.shape)
        np.put_along_axis(q, safe[..., None], 1.0, axis=-1)
        q = cw * (q * (1.0 - s) + s / max(n_classes, 1))
        v = cw[safe]
    g, mag = _rows(q, xm, options.get("from_logits", False),
                   options.get("epsilon", reference.EPSILON))
    return np.moveaxis(g, -1, axis), np.moveaxis(mag, -1, axis), S, counted, v


def _pair_elementwise(loss, y, x, options):
    """PyTorch's poisson_nll_loss (``e^x - y`` or ``1 - y / (x + eps)``) and
    hinge_embedding_loss (``[y != -1] - [y != 1][margin - x >= 0]``, torch.clamp_min
    passing the gradient at the kink)."""
    if loss == "poisson_nll":
        if options.get("log_input", True):
            terms = (np.exp(x), -y)
        else:
            terms = (np.ones_like(x), -reference._term(y, 1.0 / (x + options.get("eps", 1e-8))))
    else:
        margin = options.get("margin", 1.0)
        hinge = np.where(margin - x >= 0, -1.0, 0.0)
        terms = (np.where(y != 1, hinge, 0.0), np.where(y != -1, 1.0, 0.0))
        terms = (np.where(np.isnan(x), np.nan, terms[0]), terms[1])
    return terms[0] + terms[1], np.abs(terms[0]) + np.abs(terms[1])


def _overlap(loss, y_true, x, options):
    """Keras's dice / tversky: ``l = 1 - N / D`` over the reduced axes, so
    ``dl/dp_k = (N dD_k / D - dN_k) / D``; dice ``N = 2 sum y p``, ``D = sum y + sum p +
    eps``; tversky ``N = sum y p``, ``D = N + alpha sum (1 - p) y + beta sum p (1 - y) +
    eps``. Returns (g, magnitude, per-sample shape, the reduced axes)."""
    y = np.asarray(y_true, dtype=np.float64)
    axes = reference.overlap_axes(x.ndim, options.get("axis"))
    kept = tuple(a for a in range(x.ndim) if a not in axes)
    S = tuple(x.shape[a] for a in kept)
    if loss == "dice":
        N = 2.0 * np.sum(y * x, axis=axes, keepdims=True)
        D = np.sum(y, axis=axes, keepdims=True) + np.sum(x, axis=axes, keepdims=True)
        D = D + reference.KERAS_EPSILON
        dN, dD = 2.0 * y, np.ones_like(x)
    else:
        alpha, beta = options.get("alpha", 0.5), options.get("beta", 0.5)
        N = np.sum(y * x, axis=axes, keepdims=True)
        D = (N + alpha * np.sum((1.0 - x) * y, axis=axes, keepdims=True)
             + beta * np.sum(x * (1.0 - y), axis=axes, keepdims=True)
             + reference.KERAS_EPSILON)
        dN, dD = y, y - alpha * y + beta * (1.0 - y)
    g = (N / D * dD - dN) / D
    mag = (np.abs(N / D * dD) + np.abs(dN)) / np.abs(D)
    return g, mag, S, axes
