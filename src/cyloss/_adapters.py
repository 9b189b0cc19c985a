"""PyTorch's loss semantics on NumPy arrays: what ``cyloss.torch`` and ``cyloss.jax`` call.

Each entry of :data:`LOSSES` maps one PyTorch loss (its functional name, its options,
``(input, target)`` order and reductions) onto one cyloss loss object and returns the
value and, when asked, the gradient with respect to ``input`` from one fused pass. The
frameworks only convert tensors to arrays and back; every semantic decision is here, so
the two adapters cannot drift apart.

Mappings (``"mean"`` is PyTorch's everywhere):

- ``cross_entropy`` with class-index targets: :func:`cyloss.sparse_categorical_crossentropy`
  from logits on class axis 1 (axis 0 for an unbatched ``(C,)`` input), PyTorch's
  ``"mean"`` being cyloss's ``"weighted_mean"`` (``sum w_y l / sum w_y`` over samples not
  ignored). With class-probability targets (a float target of ``input``'s shape):
  :func:`cyloss.categorical_crossentropy`, ``"mean"`` dividing by the number of samples;
  class weights are folded into the (smoothed) target, divided by their maximum so that
  the target stays in ``[0, 1]``, and the maximum is applied as a sample weight.
- The elementwise losses (``binary_cross_entropy[_with_logits]``, ``l1_loss``,
  ``mse_loss``, ``huber_loss``, ``smooth_l1_loss``) run on the flattened arrays, so every
  element is a sample and cyloss's ``"mean"`` is PyTorch's mean over all elements;
  ``weight`` is broadcast to ``input``'s shape and flattened (one array of ``input``'s
  size unless it is a scalar); a ``pos_weight`` that is not a scalar becomes a target
  and a sample weight of ``input``'s size (see ``binary_cross_entropy_with_logits``).
- ``binary_cross_entropy`` passes ``epsilon = exp(-100)``: clipping ``p`` there is
  PyTorch's clamp of the log at -100, except at ``p == 1`` exactly with a target below 1
  (cyloss: ``inf``; PyTorch: ``100 (1 - y)``).
"""

import math
from dataclasses import dataclass

import numpy as np

from cyloss import losses as _losses

REDUCTIONS = ("mean", "sum", "none")
#: epsilon for ``binary_cross_entropy``: log(clip(p, e^-100, 1)) = max(log p, -100).
BCE_EPSILON = math.exp(-100.0)


@dataclass
class Result:
    """``value`` (a float, or the per-sample array for ``reduction="none"``), ``grad``
    (``input``'s shape, or ``None``) and ``class_axis``: the axis of ``input`` that the
    per-sample shape lacks (an incoming per-sample gradient is broadcast along it), or
    ``None`` when the per-sample shape is ``input``'s."""

    value: object
    grad: object
    class_axis: object


def check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none' (PyTorch's); "
                         f"got {reduction!r}")
    return reduction


def _run(loss, target, input, sample_weight, need_grad, grad_out=None):
    if need_grad:
        if grad_out is not None:          # a C-contiguous buffer of input's size
            grad_out = grad_out.reshape(input.shape)
        return loss.value_and_grad(target, input, sample_weight=sample_weight,
                                   grad_out=grad_out)
    return loss(target, input, sample_weight=sample_weight), None


# --- cross-entropy ------------------------------------------------------------------------

def _is_probability_target(input_shape, target):
    return np.issubdtype(target.dtype, np.floating) and tuple(target.shape) == tuple(
        input_shape)


def cross_entropy_shape(input_shape, target_shape, target_is_float):
    """The per-sample shape (``reduction="none"``) and the class axis; raises for bad
    shapes. Used by :func:`cross_entropy` and, before any data exists, by ``cyloss.jax``."""
    input_shape, target_shape = tuple(input_shape), tuple(target_shape)
    if len(input_shape) == 0:
        raise ValueError("input: cross_entropy needs (C,), (N, C) or (N, C, d1, ...) "
                         "logits; got a 0-d input")
    axis = 1 if len(input_shape) >= 2 else 0
    per_sample = input_shape[:axis] + input_shape[axis + 1:]
    if target_is_float and target_shape == input_shape:
        return per_sample, axis
    if target_shape != per_sample:
        raise ValueError(
            f"target: shape {target_shape} fits neither class indices (shape {per_sample}, "
            f"an integer dtype) nor class probabilities (shape {input_shape}, a float "
            f"dtype) for input of shape {input_shape}")
    if target_is_float:
        raise ValueError("target: class indices must have an integer dtype (PyTorch: "
                         "torch.long); a float target must have input's shape "
                         "(class probabilities)")
    return per_sample, axis


def cross_entropy(input, target, *, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, n_threads=None, need_grad=True, grad_out=None):
    """``torch.nn.functional.cross_entropy(input, target, ...)`` on arrays."""
    reduction = check_reduction(reduction)
    float_target = np.issubdtype(target.dtype, np.floating)
    per_sample, axis = cross_entropy_shape(input.shape, target.shape, float_target)
    shape = input.shape
    if input.ndim == 1:              # unbatched (C,): one sample of C classes
        input = input.reshape(1, -1)
        target = target.reshape(1, -1) if target.ndim == 1 else target.reshape(1)
    n_classes = input.shape[1]
    if weight is not None:
        weight = np.asarray(weight)
        if weight.shape != (n_classes,):
            raise ValueError(f"weight: one weight per class, shape ({n_classes},); got "
                             f"shape {weight.shape}")
    sample_weight = None
    if float_target and target.shape == input.shape:
        if weight is not None:
            # PyTorch: l = -sum_c w_c q_c log p_c with the smoothed target q. cyloss's
            # categorical cross-entropy has no class weights and wants targets in [0, 1]:
            # fold w / max(w) into q and apply max(w) as a (scalar) sample weight.
            q = np.asarray(target, dtype=input.dtype)
            if label_smoothing:
                q = q * (1.0 - label_smoothing) + label_smoothing / n_classes
            w = np.asarray(weight, dtype=np.float64)
            top = float(w.max()) if w.size else 0.0
            scale = w / top if top > 0 else w
            q = q * scale.astype(input.dtype).reshape((1, -1) + (1,) * (input.ndim - 2))
            target, label_smoothing, sample_weight = q, 0.0, (top if top > 0 else None)
        loss = _losses.CategoricalCrossentropy(
            from_logits=True, axis=1, label_smoothing=label_smoothing,
            reduction=reduction, n_threads=n_threads)
    else:
        loss = _losses.SparseCategoricalCrossentropy(
            from_logits=True, axis=1, ignore_index=ignore_index, class_weight=weight,
            label_smoothing=label_smoothing,
            reduction="weighted_mean" if reduction == "mean" else reduction,
            n_threads=n_threads)
    value, grad = _run(loss, target, input, sample_weight, need_grad, grad_out)
    if reduction == "none":
        value = value.reshape(per_sample)
    if grad is not None:
        grad = grad.reshape(shape)
    return Result(value, grad, axis)


# --- elementwise losses -------------------------------------------------------------------

def _flat_weight(name, weight, shape):
    """``weight`` broadcast to ``shape`` and flattened; a Python float if it has one value."""
    if weight is None:
        return None
    w = np.asarray(weight)
    if w.size == 1 and w.ndim <= len(shape):
        return float(w.reshape(-1)[0])
    try:
        return np.broadcast_to(w, shape).reshape(-1)
    except ValueError:
        raise ValueError(f"{name}: shape {w.shape} does not broadcast to input's shape "
                         f"{tuple(shape)}") from None


def _elementwise(make_loss, input, target, reduction, need_grad, sample_weight=None,
                 grad_out=None):
    reduction = check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"target: shape {tuple(target.shape)} differs from input's "
                         f"{tuple(input.shape)} (PyTorch would broadcast; cyloss needs "
                         "equal shapes)")
    value, grad = _run(make_loss(reduction), target.reshape(-1), input.reshape(-1),
                       sample_weight, need_grad, grad_out)
    if reduction == "none":
        value = value.reshape(input.shape)
    if grad is not None:
        grad = grad.reshape(input.shape)
    return Result(value, grad, None)


def binary_cross_entropy_with_logits(input, target, *, weight=None, pos_weight=None,
                                     reduction="mean", n_threads=None, need_grad=True,
                                     grad_out=None):
    """``torch.nn.functional.binary_cross_entropy_with_logits`` on arrays."""
    pw = _flat_weight("pos_weight", pos_weight, input.shape)
    sample_weight = _flat_weight("weight", weight, input.shape)
    if isinstance(pw, np.ndarray):
        # cyloss's pos_weight varies along the last axis of y_pred, and here every element
        # is a sample. The loss (1 - y) x + (1 + (pw - 1) y) softplus(-x) is also
        # s ((1 - y') x + softplus(-x)): plain BCE of the target y' = pw y / s with the
        # sample weight s = 1 + (pw - 1) y (y' in [0, 1] for y in [0, 1], pw >= 0).
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f"target: shape {tuple(target.shape)} differs from input's "
                             f"{tuple(input.shape)}")
        y = np.asarray(target, dtype=np.float64).reshape(-1)
        bad = ~((y >= 0) & (y <= 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"target: values must be in [0, 1]; index {i} holds {y[i]!r}")
        if not np.all(pw >= 0) or not np.all(np.isfinite(pw)):
            raise ValueError("pos_weight must be finite and non-negative")
        s = 1.0 + (pw - 1.0) * y
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(s > 0, pw * y / s, 0.0)
        target = y.astype(input.dtype).reshape(input.shape)
        sample_weight = s if sample_weight is None else s * sample_weight
        pw = None
    return _elementwise(
        lambda r: _losses.BinaryCrossentropy(from_logits=True, pos_weight=pw, reduction=r,
                                             n_threads=n_threads),
        input, target, reduction, need_grad, sample_weight, grad_out)


def binary_cross_entropy(input, target, *, weight=None, reduction="mean", n_threads=None,
                         need_grad=True, grad_out=None):
    """``torch.nn.functional.binary_cross_entropy`` on arrays (see :data:`BCE_EPSILON`)."""
    return _elementwise(
        lambda r: _losses.BinaryCrossentropy(from_logits=False, epsilon=BCE_EPSILON,
                                             reduction=r, n_threads=n_threads),
        input, target, reduction, need_grad, _flat_weight("weight", weight, input.shape),
        grad_out)


def l1_loss(input, target, *, reduction="mean", n_threads=None, need_grad=True,
            grad_out=None):
    """``torch.nn.functional.l1_loss`` on arrays."""
    return _elementwise(
        lambda r: _losses.MeanAbsoluteError(reduction=r, n_threads=n_threads),
        input, target, reduction, need_grad, grad_out=grad_out)


def mse_loss(input, target, *, reduction="mean", n_threads=None, need_grad=True,
             grad_out=None):
    """``torch.nn.functional.mse_loss`` on arrays."""
    return _elementwise(
        lambda r: _losses.MeanSquaredError(reduction=r, n_threads=n_threads),
        input, target, reduction, need_grad, grad_out=grad_out)


def huber_loss(input, target, *, reduction="mean", delta=1.0, n_threads=None,
               need_grad=True, grad_out=None):
    """``torch.nn.functional.huber_loss`` on arrays."""
    return _elementwise(
        lambda r: _losses.Huber(delta=delta, reduction=r, n_threads=n_threads),
        input, target, reduction, need_grad, grad_out=grad_out)


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0, n_threads=None,
                   need_grad=True, grad_out=None):
    """``torch.nn.functional.smooth_l1_loss`` on arrays."""
    return _elementwise(
        lambda r: _losses.SmoothL1(beta=beta, reduction=r, n_threads=n_threads),
        input, target, reduction, need_grad, grad_out=grad_out)


# --- nll_loss and kl_div --------------------------------------------------------------------

def nll_loss(input, target, *, weight=None, ignore_index=-100, reduction="mean",
             n_threads=None, need_grad=True, grad_out=None):
    """``torch.nn.functional.nll_loss`` on arrays: :func:`cyloss.nll` on class axis 1
    (axis 0 for an unbatched ``(C,)`` input), PyTorch's ``"mean"`` being cyloss's
    ``"weighted_mean"``."""
    reduction = check_reduction(reduction)
    if input.ndim == 0:
        raise ValueError("input: nll_loss needs (C,), (N, C) or (N, C, d1, ...) "
                         "log-probabilities; got a 0-d input")
    axis = 1 if input.ndim >= 2 else 0
    per_sample = input.shape[:axis] + input.shape[axis + 1:]
    if tuple(target.shape) != per_sample or not np.issubdtype(target.dtype, np.integer):
        raise ValueError(f"target: class indices of an integer dtype and shape "
                         f"{per_sample} for input of shape {input.shape}; got dtype "
                         f"{target.dtype} and shape {tuple(target.shape)}")
    shape = input.shape
    if input.ndim == 1:
        input, target = input.reshape(1, -1), target.reshape(1)
    n_classes = input.shape[1]
    if weight is not None:
        weight = np.asarray(weight)
        if weight.shape != (n_classes,):
            raise ValueError(f"weight: one weight per class, shape ({n_classes},); got "
                             f"shape {weight.shape}")
    loss = _losses.NegativeLogLikelihood(
        axis=1, ignore_index=ignore_index, class_weight=weight,
        reduction="weighted_mean" if reduction == "mean" else reduction,
        n_threads=n_threads)
    value, grad = _run(loss, target, input, None, need_grad, grad_out)
    if reduction == "none":
        value = value.reshape(per_sample)
    if grad is not None:
        grad = grad.reshape(shape)
    return Result(value, grad, axis)


def kl_div(input, target, *, reduction="mean", log_target=False, n_threads=None,
           need_grad=True, grad_out=None):
    """``torch.nn.functional.kl_div`` on arrays: :func:`cyloss.kl_divergence` with
    ``log_input=True``. PyTorch's loss is elementwise, so ``"none"`` runs every element as
    a row of one class (the per-element terms); the reductions run rows of
    ``input.shape[0]`` and divide the sum by the element count (``"mean"``) or by
    ``input.shape[0]`` (``"batchmean"``). A zero target (or a ``log_target`` of -inf)
    contributes 0 even against an input of -inf (PyTorch: NaN)."""
    if reduction not in ("mean", "batchmean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'batchmean', 'sum' or 'none' "
                         f"(PyTorch's); got {reduction!r}")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"target: shape {tuple(target.shape)} differs from input's "
                         f"{tuple(input.shape)} (PyTorch would broadcast; cyloss needs "
                         "equal shapes)")
    shape = input.shape
    if reduction == "none":
        rows = (input.size, 1)
    else:
        rows = (0, 1) if input.size == 0 else (shape[0], -1) if input.ndim else (1, 1)
    loss = _losses.KLDivergence(log_input=True, log_target=log_target, axis=-1,
                                reduction="none" if reduction == "none" else "sum",
                                n_threads=n_threads)
    value, grad = _run(loss, target.reshape(rows), input.reshape(rows), None, need_grad,
                       grad_out)
    divisor = {"mean": input.size, "batchmean": shape[0] if input.ndim else 1}.get(
        reduction, 1)
    if reduction == "none":
        value = value.reshape(shape)
    elif divisor != 1:
        value = value / divisor if divisor else math.nan
        if grad is not None:
            grad *= (1.0 / divisor) if divisor else math.nan
    if grad is not None:
        grad = grad.reshape(shape)
    return Result(value, grad, None)


#: functional name -> the function above. A new loss is one function here and a few
#: lines in each adapter.
LOSSES = {
    "cross_entropy": cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "binary_cross_entropy": binary_cross_entropy,
    "l1_loss": l1_loss,
    "mse_loss": mse_loss,
    "huber_loss": huber_loss,
    "smooth_l1_loss": smooth_l1_loss,
    "nll_loss": nll_loss,
    "kl_div": kl_div,
}


def output_shape(name, input_shape, target_shape, target_is_float, reduction):
    """The shape of the loss's value, checked from shapes alone (for ``cyloss.jax``)."""
    reduction = check_reduction(reduction)
    if name == "cross_entropy":
        per_sample = cross_entropy_shape(input_shape, target_shape, target_is_float)[0]
    elif tuple(target_shape) != tuple(input_shape):
        raise ValueError(f"target: shape {tuple(target_shape)} differs from input's "
                         f"{tuple(input_shape)}")
    else:
        per_sample = tuple(input_shape)
    return per_sample if reduction == "none" else ()
