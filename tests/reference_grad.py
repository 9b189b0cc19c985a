"""Independent float64 gradients ``d value / d y_pred`` of the losses of tests/reference.py.

Closed forms in NumPy, written from the formulas of SPEC section 1 and the README's
"Gradients" paragraph, never from ``src/cyloss``:

- regression, e = p - y: MSE ``2e``; MAE ``sign(e)`` (0 at 0); Huber ``e`` for
  ``|e| <= delta`` else ``delta sign(e)``; smooth L1 ``e / beta`` for ``|e| < beta`` else
  ``sign(e)`` (``beta = 0``: ``sign(e)``); log-cosh ``tanh(e)``; Poisson
  ``1 - y / (p + eps)``; MAPE ``100 sign(e) / max(|y|, eps)``; MSLE ``2 d / (1 + p)`` for
  ``p >= eps`` and 0 where Keras's clip is active, ``d`` the difference of the logs; hinge
  ``-t`` and squared hinge ``-2 t m`` where the margin ``m = 1 - t p > 0``, else 0 (``t``
  the labels after Keras's 0/1 -> -1/1 rule);
- binary, ``a = pw y``, ``b = 1 - y`` after smoothing: logits
  ``-a sigmoid(-x) + b sigmoid(x)``; probabilities ``-a / p + b / (1 - p)`` where
  ``eps <= p <= 1 - eps`` and 0 where the clip is active (torch.clamp's gradient);
- categorical and sparse with coefficients ``q_c`` (smoothed targets, times the class
  weights): logits ``softmax(x)_k sum_c q_c - q_k`` (the limit softmax for ``+inf``
  logits); probabilities, ``r = p / T`` with ``T = sum_c p_c`` and ``I`` the classes whose
  ``r`` is not clipped: ``(sum_{c in I} q_c - q_k [k in I] / r_k) / T``;

- the focal losses (Keras 3's formulas) and multilabel soft margin (binary cross-entropy
  from logits times the class weight): see :func:`_binary_focal` and :func:`_focal_rows`;

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


def _regression(loss, y, p, options):
    e = p - y
    a = np.abs(e)
    eps = reference.EPSILON
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
    elif loss == "poisson":
        g = 1.0 - y / (p + eps)
        return g, 1.0 + np.abs(y / (p + eps))
    elif loss == "mean_absolute_percentage_error":
        g = 100.0 * _sign(e) / np.maximum(np.abs(y), eps)
    elif loss == "mean_squared_logarithmic_error":
        la, lb = np.log1p(np.maximum(p, eps)), np.log1p(np.maximum(y, eps))
        d = la - lb
        g = np.where(p >= eps, 2.0 * d / (1.0 + p), np.where(np.isnan(d), d, 0.0))
        # d cancels: its rounding is relative to the logarithms
        return g, np.where(p >= eps, 2.0 * (np.abs(la) + np.abs(lb)) / (1.0 + p), 0.0)
    elif loss in ("hinge", "squared_hinge"):
        t = reference.hinge_labels(y)
        m = 1.0 - t * p
        slope = -t if loss == "hinge" else -2.0 * t * m
        g = np.where(m > 0, slope, np.where(np.isnan(m), m, 0.0))
        if loss == "squared_hinge":   # m cancels: its rounding is relative to 1 + |t p|
            return g, np.where(m > 0, 2.0 * np.abs(t) * (1.0 + np.abs(t * p)), 0.0)
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


def _binary_focal(y, x, options):
    """Keras's binary focal loss: ``w F B`` with ``F = u^gamma``, ``u = 1 - p_t``,
    ``B`` the cross-entropy; ``d = w (F' B + F B')``."""
    s = options.get("label_smoothing", 0.0)
    ys = y * (1.0 - s) + s / 2.0
    gamma = options.get("gamma", 2.0)
    alpha = options.get("alpha", 0.25)
    w = ys * alpha + (1.0 - ys) * (1.0 - alpha) if options.get("apply_class_balancing") else 1.0
    if options.get("from_logits", False):
        up, down = _sigmoid(x), _sigmoid(-x)
        u = ys * down + (1.0 - ys) * up
        du = (1.0 - 2.0 * ys) * up * down
        B = ys * reference.softplus(-x) + (1.0 - ys) * reference.softplus(x)
        dB, dB_mag = up - ys, up + ys
    else:
        eps = options.get("epsilon", reference.EPSILON)
        c = np.clip(x, eps, 1.0 - eps)
        inside = (x >= eps) & (x <= 1.0 - eps)
        u = ys * (1.0 - x) + (1.0 - ys) * x
        du = 1.0 - 2.0 * ys
        B = -(ys * np.log(c) + (1.0 - ys) * np.log1p(-c))
        neg, pos = ys / x, (1.0 - ys) / (1.0 - x)
        dB = np.where(inside, pos - neg, 0.0)
        dB_mag = np.where(inside, np.abs(pos) + np.abs(neg), 0.0)
    F = u**gamma
    dF = 0.0 if gamma == 0 else gamma * u ** (gamma - 1.0) * du
    g = w * (dF * B + F * dB)
    return g, np.abs(w) * (np.abs(dF * B) + np.abs(F) * dB_mag)


def _focal_rows(q, x, options):
    """``-alpha sum_c q_c (1 - p_c)^gamma log p_c`` over the last axis: logits
    ``alpha (h_k - p_k sum_c h_c)`` with ``h_c = q_c p_c g'(p_c)``; probabilities
    ``alpha (d_k - sum_c d_c r_c) / T`` with ``d_c = q_c g'(c_c)`` where unclipped,
    ``g(p) = (1 - p)^gamma (-log p)``."""
    gamma = options.get("gamma", 2.0)
    alpha = options.get("alpha", 0.25)
    if options.get("from_logits", False):
        log_p = reference.log_softmax(x)
        p, u, nls = np.exp(log_p), -np.expm1(log_p), -log_p
        term = 0.0 if gamma == 0 else gamma * p * nls * u ** (gamma - 1.0)
        h = -q * (term + u**gamma)
        H = h.sum(axis=-1, keepdims=True)
        return (alpha * (h - p * H),
                abs(alpha) * (np.abs(h) + p * np.abs(h).sum(axis=-1, keepdims=True)))
    eps = options.get("epsilon", reference.EPSILON)
    T = x.sum(axis=-1, keepdims=True)
    r = x / T
    inside = (r >= eps) & (r <= 1.0 - eps)
    c = np.clip(r, eps, 1.0 - eps)
    u, nls = 1.0 - c, -np.log(c)
    term = 0.0 if gamma == 0 else gamma * u ** (gamma - 1.0) * nls
    d = np.where(inside, -q * (term + u**gamma / c), 0.0)
    S = (d * r).sum(axis=-1, keepdims=True)
    return (alpha * (d - S) / T,
            abs(alpha) * (np.abs(d) + np.abs(d * r).sum(axis=-1, keepdims=True)) / np.abs(T))


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


#: The row losses whose gradient is that of a (focal) cross-entropy.
_CROSS_ENTROPY_ROWS = ("categorical_crossentropy", "sparse_categorical_crossentropy",
                       "categorical_focal_crossentropy", "sparse_categorical_focal_crossentropy")


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
        if loss in _CROSS_ENTROPY_ROWS:
            g, mag, S, counted, v = _class_gradient(loss, y_true, x, options)
            axis = options.get("axis", -1) % x.ndim
        elif loss in reference.CLASS_AXIS_LOSSES:
            g, mag, S, counted, v = _catalogue_gradient(loss, y_true, x, options)
            axis = options.get("axis", -1) % x.ndim
        elif loss in reference.OVERLAP_LOSSES:
            g, mag, S, axis = _overlap(loss, y_true, x, options)
            counted, v = np.ones(S, bool), np.ones(S)
        else:
            y, p = reference._same_shape(y_true, x)
            if loss == "binary_crossentropy":
                g, mag = _binary(y, p, options)
            elif loss == "binary_focal_crossentropy":
                g, mag = _binary_focal(y, p, options)
            elif loss == "multilabel_soft_margin":
                cw = options.get("class_weight")
                cw = 1.0 if cw is None else np.asarray(cw, dtype=np.float64)
                g, mag = _binary(y, p, {"from_logits": True})
                g, mag = cw * g, cw * mag
            elif loss in ("poisson_nll", "hinge_embedding"):
                g, mag = _pair_elementwise(loss, y, p, options)
            else:
                g, mag = _regression(loss, y, p, options)
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
    if loss.startswith("categorical"):
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
    if "focal" in loss:
        g, mag = _focal_rows(q, xm, options)
    else:
        g, mag = _rows(q, xm, options.get("from_logits", False),
                       options.get("epsilon", reference.EPSILON))
    return np.moveaxis(g, -1, axis), np.moveaxis(mag, -1, axis), S, counted, v


def _catalogue_gradient(loss, y_true, x, options):
    """The row losses of the catalogue, class axis last while computing:

    - kl_divergence: ``-q_k / p_k`` where ``eps <= p_k <= 1`` (0 outside, NaN for NaN),
      ``q`` the (clipped, or exp of the log-) target; ``-q_k`` with ``log_input``;
    - nll: ``-class_weight[label]`` at the label, 0 elsewhere and on ignored samples;
    - categorical_hinge, where ``l > 0``: ``-y_k``, plus ``1 - y_k`` at the first
      argmax of ``(1 - y) p``;
    - cosine_similarity, ``a = 1 / max(|y|, eps)``, ``b = 1 / max(|p|, eps)``, ``c`` the
      cosine: ``-a b y_k + c b^2 p_k`` (the second term only where ``|p| >= eps``).
    """
    axis = options.get("axis", -1) % x.ndim
    xm = np.moveaxis(x, axis, -1)
    S = xm.shape[:-1]
    counted, v = np.ones(S, bool), np.ones(S)
    eps = options.get("epsilon", reference.EPSILON)
    if loss == "nll":
        labels = np.asarray(y_true)
        if labels.ndim == x.ndim:
            labels = np.squeeze(labels, axis=axis)
        labels = labels.astype(np.int64)
        ignore = options.get("ignore_index")
        counted = np.ones(S, bool) if ignore is None else labels != ignore
        safe = np.where(counted, labels, 0)
        cw = options.get("class_weight")
        cw = np.ones(xm.shape[-1]) if cw is None else np.asarray(cw, dtype=np.float64)
        g = np.zeros(xm.shape)
        np.put_along_axis(g, safe[..., None], -cw[safe][..., None], axis=-1)
        v = cw[safe]
        mag = np.abs(g)
    else:
        y = np.moveaxis(np.asarray(y_true, dtype=np.float64), axis, -1)
        if loss == "kl_divergence":
            log_input = options.get("log_input", False)
            log_target = options.get("log_target", False)
            q = np.exp(y) if log_target else (y if log_input else np.clip(y, eps, 1.0))
            if log_input:
                g = -q
            else:
                inside = (xm >= eps) & (xm <= 1.0)
                g = np.where(inside, -q / np.where(inside, xm, 1.0),
                             np.where(np.isnan(xm), np.nan, 0.0))
            mag = np.abs(g)
        elif loss == "categorical_hinge":
            d = (1.0 - y) * xm
            l = np.max(d, axis=-1) - np.sum(y * xm, axis=-1) + 1.0
            first = np.argmax(d, axis=-1)
            top = np.zeros(xm.shape)
            np.put_along_axis(top, first[..., None], 1.0, axis=-1)
            g = np.where((l > 0)[..., None], top * (1.0 - y) - y, 0.0)
            mag = np.where((l > 0)[..., None], np.abs(top * (1.0 - y)) + np.abs(y), 0.0)
        else:
            ny = np.sqrt(np.sum(y * y, axis=-1, keepdims=True))
            nx = np.sqrt(np.sum(xm * xm, axis=-1, keepdims=True))
            a, b = 1.0 / np.maximum(ny, eps), 1.0 / np.maximum(nx, eps)
            c = np.sum(y * xm, axis=-1, keepdims=True) * a * b
            second = np.where(nx >= eps, c * b * b * xm, 0.0)
            g = -a * b * y + second
            mag = np.abs(a * b * y) + np.abs(second)
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
