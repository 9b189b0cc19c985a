r"""cyloss inside PyTorch: ``nn.Module`` losses whose forward and backward run cyloss.

``pip install "cyloss[torch]"``, then ``import cyloss.torch`` (plain ``import cyloss``
never imports PyTorch). The classes have PyTorch's names, argument order
``(input, target)``, options and reductions, and return tensors that ``.backward()``
works through::

    loss = cyloss.torch.CrossEntropyLoss(label_smoothing=0.1)(logits, labels)
    loss.backward()

=======================  =====================================================
class                    options (PyTorch's)
=======================  =====================================================
``CrossEntropyLoss``     ``weight``, ``ignore_index``, ``reduction``,
                         ``label_smoothing``; class-index or class-probability
                         targets; ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``
``BCEWithLogitsLoss``    ``weight``, ``reduction``, ``pos_weight``
``BCELoss``              ``weight``, ``reduction``
``L1Loss``, ``MSELoss``  ``reduction``
``HuberLoss``            ``reduction``, ``delta``
``SmoothL1Loss``         ``reduction``, ``beta``
``NLLLoss``              ``weight``, ``ignore_index``, ``reduction``
``KLDivLoss``            ``reduction`` (with ``"batchmean"``), ``log_target``
=======================  =====================================================

Every class also takes ``n_threads`` (keyword only; cyloss's thread count), and the
functions ``cross_entropy``, ``binary_cross_entropy_with_logits``,
``binary_cross_entropy``, ``l1_loss``, ``mse_loss``, ``huber_loss``, ``smooth_l1_loss``
are the same losses in ``torch.nn.functional``'s form.

How it works. The forward makes one call to cyloss's fused ``value_and_grad`` on the
tensors' memory (``tensor.detach().numpy()``: no copy for CPU tensors) and saves the
gradient (an array of ``input``'s size, which is what PyTorch's own cross-entropy saves:
its softmax). Recomputing it in backward would cost a second pass over the logits, as
long as the forward itself, to save memory that PyTorch spends anyway. The backward
returns the saved gradient as it is when the incoming gradient is the scalar 1 (the
usual ``loss.backward()``: no pass over it at all; autograd copies it only to match the
layout of an input that is not C-contiguous), and otherwise multiplies it by the
incoming gradient; for ``reduction="none"`` the incoming gradient has the per-sample
shape and is broadcast along the class axis (each sample's loss depends only on its own
row, so the gradient of ``sum_i g_i l_i`` is the gradient of ``sum_i l_i`` scaled row by
row). When no gradient is needed (``torch.no_grad()``, an input without
``requires_grad``), only the value is computed.

Limits, each a clear error that names the PyTorch fallback: CPU tensors only (a CUDA
tensor is a ``ValueError``), float32 and float64 ``input`` (``TypeError`` otherwise), no
gradient with respect to ``target`` or the weights (``NotImplementedError``), and no
double backward (``create_graph=True`` works, but differentiating the gradient again is
a ``NotImplementedError``). PyTorch's deprecated ``size_average`` and ``reduce`` are
refused (``ValueError``). Semantics that differ from PyTorch: ``target`` must have
``input``'s shape for the elementwise losses (PyTorch broadcasts, with a warning); a
``"mean"`` over no counted sample is 0 (PyTorch: NaN); ``BCELoss`` at ``p == 1`` exactly
with a target below 1 is ``inf`` (PyTorch clamps the log: ``100 (1 - y)``), and where
``p (1 - p) < 1e-12`` its gradient is the exact one (PyTorch caps the denominator);
class labels outside ``[0, C)`` other than ``ignore_index`` are a ``ValueError``.

Examples
--------
>>> import torch, cyloss.torch
>>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
>>> loss = cyloss.torch.CrossEntropyLoss()(logits, torch.tensor([0, 2]))
>>> loss.backward()
>>> round(loss.item(), 6), logits.grad.shape
(0.175456, torch.Size([2, 3]))
"""

import torch

from cyloss import _adapters

__all__ = [
    "CrossEntropyLoss", "BCEWithLogitsLoss", "BCELoss", "L1Loss", "MSELoss", "HuberLoss",
    "SmoothL1Loss", "NLLLoss", "KLDivLoss",
    "cross_entropy", "binary_cross_entropy_with_logits", "binary_cross_entropy",
    "l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "nll_loss", "kl_div",
]

_FLOATS = (torch.float32, torch.float64)


def _array(tensor, what, fallback):
    """A CPU tensor's memory as a NumPy array, without a copy."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor; got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise ValueError(f"{what}: cyloss.torch computes on the CPU; this tensor is on "
                         f"{tensor.device}. Use {fallback} for tensors on other devices")
    if tensor.layout != torch.strided:
        raise ValueError(f"{what}: cyloss.torch needs a dense (strided) tensor; got "
                         f"{tensor.layout}. Use {fallback}")
    return tensor.detach().numpy()


class _RefuseDoubleBackward(torch.autograd.Function):
    """Passes a first-order gradient through; refuses to be differentiated again."""

    @staticmethod
    def forward(ctx, grad, fallback):
        ctx.fallback = fallback
        return grad.view_as(grad)

    @staticmethod
    def backward(ctx, _):
        raise NotImplementedError(
            f"cyloss.torch losses are differentiable once: the gradient of their gradient "
            f"(double backward) is not implemented. Use {ctx.fallback} for higher-order "
            "derivatives")


class _LossFunction(torch.autograd.Function):
    """One fused cyloss call in forward; the saved gradient, scaled, in backward."""

    @staticmethod
    def forward(ctx, input, target, name, options, fallback):
        x = _array(input, "input", fallback)
        t = _array(target, "target", fallback)
        result = _adapters.LOSSES[name](x, t, need_grad=True, **options)
        grad = torch.from_numpy(result.grad)
        ctx.save_for_backward(grad)
        ctx.class_axis, ctx.fallback = result.class_axis, fallback
        ctx.reduced = options.get("reduction", "mean") != "none"
        return _value_tensor(result.value, input.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        if ctx.reduced:
            # loss.backward() gives the scalar 1: the saved gradient is the answer.
            if grad_output.requires_grad or grad_output.item() != 1.0:
                grad = grad * grad_output
        else:
            if ctx.class_axis is not None:
                grad_output = grad_output.unsqueeze(ctx.class_axis)
            grad = grad * grad_output
        if torch.is_grad_enabled():  # create_graph=True: mark the result as final
            grad = _RefuseDoubleBackward.apply(grad.detach().requires_grad_(), ctx.fallback)
        return grad, None, None, None, None


def _value_tensor(value, dtype):
    if isinstance(value, float):
        return torch.tensor(value, dtype=dtype)
    return torch.from_numpy(value)


def _loss(name, fallback, input, target, options):
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input: expected a torch.Tensor; got {type(input).__name__}")
    if input.dtype not in _FLOATS:
        raise TypeError(f"input: cyloss.torch computes in float32 or float64; got "
                        f"{input.dtype}. Convert it (input.float()) or use {fallback}")
    grad_on = torch.is_grad_enabled()
    if grad_on and isinstance(target, torch.Tensor) and target.requires_grad:
        raise NotImplementedError(
            f"target requires grad: cyloss.torch differentiates with respect to input "
            f"only. Use {fallback}, or pass target.detach()")
    for key in ("weight", "pos_weight"):
        w = options.get(key)
        if isinstance(w, torch.Tensor):
            if grad_on and w.requires_grad:
                raise NotImplementedError(
                    f"{key} requires grad: cyloss.torch does not differentiate with "
                    f"respect to {key}. Use {fallback}")
            options[key] = _array(w, key, fallback)
    if grad_on and input.requires_grad:
        return _LossFunction.apply(input, target, name, options, fallback)
    x = _array(input, "input", fallback)
    t = _array(target, "target", fallback)
    return _value_tensor(_adapters.LOSSES[name](x, t, need_grad=False, **options).value,
                         input.dtype)


# --- functions ----------------------------------------------------------------------------

def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, n_threads=None):
    r"""Cross-entropy from logits: ``torch.nn.functional.cross_entropy`` run by cyloss.

    With :math:`p = \mathrm{softmax}(x)` over axis 1 and the smoothed target
    :math:`q = (1 - s)\,\mathrm{onehot}(y) + s / C` (or the probability target, smoothed
    alike), :math:`l_i = -\sum_c w_c q_{ic} \log p_{ic}`; ``"mean"`` is
    :math:`\sum_i l_i / \sum_i w_{y_i}` over samples whose label is not ``ignore_index``
    (class indices) or :math:`\sum_i l_i / N` (probabilities).

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> x = torch.tensor([[1.0, 2.0, 0.5]])
    >>> round(cyloss.torch.cross_entropy(x, torch.tensor([1])).item(), 6)
    0.464369
    """
    return _loss("cross_entropy", "torch.nn.functional.cross_entropy", input, target,
                 {"weight": weight, "ignore_index": ignore_index, "reduction": reduction,
                  "label_smoothing": label_smoothing, "n_threads": n_threads})


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None, *, n_threads=None):
    r"""Binary cross-entropy from logits, elementwise:
    :math:`l = -w\,[p_w\, y \log \sigma(x) + (1 - y) \log(1 - \sigma(x))]`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> x, y = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    >>> round(cyloss.torch.binary_cross_entropy_with_logits(x, y).item(), 6)
    1.410038
    """
    return _loss("binary_cross_entropy_with_logits",
                 "torch.nn.functional.binary_cross_entropy_with_logits", input, target,
                 {"weight": weight, "pos_weight": pos_weight, "reduction": reduction,
                  "n_threads": n_threads})


def binary_cross_entropy(input, target, weight=None, reduction="mean", *, n_threads=None):
    r"""Binary cross-entropy from probabilities, elementwise:
    :math:`l = -w\,[y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)]` (see the
    module docstring for ``p == 1``).

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> p, y = torch.tensor([0.5, 0.9]), torch.tensor([1.0, 0.0])
    >>> round(cyloss.torch.binary_cross_entropy(p, y).item(), 6)
    1.497866
    """
    return _loss("binary_cross_entropy", "torch.nn.functional.binary_cross_entropy",
                 input, target,
                 {"weight": weight, "reduction": reduction, "n_threads": n_threads})


def l1_loss(input, target, reduction="mean", *, n_threads=None):
    r"""Mean absolute error, elementwise: :math:`l = |x - y|`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.l1_loss(torch.tensor([1.0, -2.0]), torch.zeros(2)).item()
    1.5
    """
    return _loss("l1_loss", "torch.nn.functional.l1_loss", input, target,
                 {"reduction": reduction, "n_threads": n_threads})


def mse_loss(input, target, reduction="mean", *, n_threads=None):
    r"""Mean squared error, elementwise: :math:`l = (x - y)^2`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.mse_loss(torch.tensor([1.0, -2.0]), torch.zeros(2)).item()
    2.5
    """
    return _loss("mse_loss", "torch.nn.functional.mse_loss", input, target,
                 {"reduction": reduction, "n_threads": n_threads})


def huber_loss(input, target, reduction="mean", delta=1.0, *, n_threads=None):
    r"""Huber loss, elementwise: :math:`e^2/2` if :math:`|e| \le \delta`, else
    :math:`\delta (|e| - \delta/2)`, with :math:`e = x - y`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.huber_loss(torch.tensor([0.5, 3.0]), torch.zeros(2)).item()
    1.3125
    """
    return _loss("huber_loss", "torch.nn.functional.huber_loss", input, target,
                 {"reduction": reduction, "delta": delta, "n_threads": n_threads})


def smooth_l1_loss(input, target, reduction="mean", beta=1.0, *, n_threads=None):
    r"""Smooth L1 loss, elementwise: :math:`e^2 / (2\beta)` if :math:`|e| < \beta`, else
    :math:`|e| - \beta/2`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2)).item()
    1.3125
    """
    return _loss("smooth_l1_loss", "torch.nn.functional.smooth_l1_loss", input, target,
                 {"reduction": reduction, "beta": beta, "n_threads": n_threads})


# --- modules ------------------------------------------------------------------------------

def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", *,
             n_threads=None):
    r"""Negative log-likelihood: ``torch.nn.functional.nll_loss`` run by cyloss.

    :math:`l_i = -w_{y_i} x_{i, y_i}` over class axis 1 (``input`` holds
    log-probabilities); ``"mean"`` is :math:`\sum_i l_i / \sum_i w_{y_i}` over samples
    whose label is not ``ignore_index``. See :func:`cyloss.nll`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> x = torch.tensor([[-1.2, -0.4], [-0.1, -2.3]], requires_grad=True)
    >>> value = cyloss.torch.nll_loss(x, torch.tensor([1, 0]))
    >>> value.backward()
    >>> round(value.item(), 6), x.grad.tolist()
    (0.25, [[0.0, -0.5], [-0.5, 0.0]])
    """
    return _loss("nll_loss", "torch.nn.functional.nll_loss", input, target,
                 dict(weight=weight, ignore_index=ignore_index, reduction=reduction,
                      n_threads=n_threads))


def kl_div(input, target, reduction="mean", log_target=False, *, n_threads=None):
    r"""KL divergence: ``torch.nn.functional.kl_div`` run by cyloss.

    ``input`` holds log-probabilities :math:`x`; the pointwise loss is
    :math:`y (\log y - x)` (:math:`e^t (t - x)` with ``log_target``), a zero target
    contributing 0 even where :math:`x = -\infty` (PyTorch: NaN). ``"batchmean"``
    divides the sum by ``input.shape[0]``, ``"mean"`` by the number of elements (without
    PyTorch's warning). See :func:`cyloss.kl_divergence`.

    Examples
    --------
    >>> import math, torch, cyloss.torch
    >>> x = torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    >>> value = cyloss.torch.kl_div(x, torch.tensor([[0.2, 0.8]], dtype=torch.float64),
    ...                             reduction="batchmean")
    >>> round(value.item(), 12)
    0.192744757022
    """
    return _loss("kl_div", "torch.nn.functional.kl_div", input, target,
                 dict(reduction=reduction, log_target=log_target, n_threads=n_threads))


def _no_legacy(size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in PyTorch and not "
                         "supported by cyloss.torch; use reduction='mean', 'sum' or 'none'")


class _Loss(torch.nn.Module):
    """Base of the modules: options as attributes, ``forward(input, target)``."""

    _function = None
    _options = ("reduction",)

    def __init__(self, reduction="mean", n_threads=None):
        super().__init__()
        self.reduction = _adapters.check_reduction(reduction)
        self.n_threads = n_threads

    def forward(self, input, target):
        options = {key: getattr(self, key) for key in self._options}
        return type(self)._function(input, target, **options, n_threads=self.n_threads)

    def extra_repr(self):
        return ", ".join(f"{key}={getattr(self, key)!r}" for key in self._options
                         if key not in ("weight", "pos_weight"))


class CrossEntropyLoss(_Loss):
    """``torch.nn.CrossEntropyLoss`` computed by cyloss; see :func:`cross_entropy`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> loss = cyloss.torch.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 1.0]),
    ...                                      ignore_index=-100, label_smoothing=0.1)
    >>> x = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], requires_grad=True)
    >>> value = loss(x, torch.tensor([1, -100]))
    >>> value.backward()
    >>> round(value.item(), 5), x.grad[1].tolist()
    (0.49056, [0.0, 0.0, 0.0])
    """

    _function = staticmethod(cross_entropy)
    _options = ("weight", "ignore_index", "reduction", "label_smoothing")

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0, *, n_threads=None):
        _no_legacy(size_average, reduce)
        super().__init__(reduction, n_threads)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing


class BCEWithLogitsLoss(_Loss):
    """``torch.nn.BCEWithLogitsLoss``; see :func:`binary_cross_entropy_with_logits`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> loss = cyloss.torch.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    >>> round(loss(torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])).item(), 6)
    1.349778
    """

    _function = staticmethod(binary_cross_entropy_with_logits)
    _options = ("weight", "reduction", "pos_weight")

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None, *, n_threads=None):
        _no_legacy(size_average, reduce)
        super().__init__(reduction, n_threads)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)


class BCELoss(_Loss):
    """``torch.nn.BCELoss``; see :func:`binary_cross_entropy`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> round(cyloss.torch.BCELoss()(torch.tensor([0.25]), torch.tensor([0.0])).item(), 6)
    0.287682
    """

    _function = staticmethod(binary_cross_entropy)
    _options = ("weight", "reduction")

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", *,
                 n_threads=None):
        _no_legacy(size_average, reduce)
        super().__init__(reduction, n_threads)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """``torch.nn.L1Loss``; see :func:`l1_loss`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.L1Loss(reduction="sum")(torch.tensor([1.0, -2.0]), torch.zeros(2))
    tensor(3.)
    """

    _function = staticmethod(l1_loss)

    def __init__(self, size_average=None, reduce=None, reduction="mean", *,
                 n_threads=None):
        _no_legacy(size_average, reduce)
        super().__init__(reduction, n_threads)


class MSELoss(_Loss):
    """``torch.nn.MSELoss``; see :func:`mse_loss`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.MSELoss(reduction="none")(torch.tensor([1.0, -2.0]), torch.zeros(2))
    tensor([1., 4.])
    """

    _function = staticmethod(mse_loss)

    def __init__(self, size_average=None, reduce=None, reduction="mean", *,
                 n_threads=None):
        _no_legacy(size_average, reduce)
        super().__init__(reduction, n_threads)


class HuberLoss(_Loss):
    """``torch.nn.HuberLoss``; see :func:`huber_loss`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.HuberLoss(delta=2.0)(torch.tensor([1.0, 4.0]), torch.zeros(2))
    tensor(3.2500)
    """

    _function = staticmethod(huber_loss)
    _options = ("reduction", "delta")

    def __init__(self, reduction="mean", delta=1.0, *, n_threads=None):
        super().__init__(reduction, n_threads)
        self.delta = delta


class SmoothL1Loss(_Loss):
    """``torch.nn.SmoothL1Loss``; see :func:`smooth_l1_loss`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> cyloss.torch.SmoothL1Loss(beta=0.0)(torch.tensor([1.0, -3.0]), torch.zeros(2))
    tensor(2.)
    """

    _function = staticmethod(smooth_l1_loss)
    _options = ("reduction", "beta")

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0, *,
                 n_threads=None):
        _no_legacy(size_average, reduce)
        super().__init__(reduction, n_threads)
        self.beta = beta


class NLLLoss(_Loss):
    """``torch.nn.NLLLoss`` computed by cyloss; see :func:`nll_loss`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> loss = cyloss.torch.NLLLoss(weight=torch.tensor([1.0, 3.0]))
    >>> round(loss(torch.tensor([[-1.2, -0.4], [-0.1, -2.3]]), torch.tensor([1, 0])).item(), 6)
    0.325
    """

    _function = staticmethod(nll_loss)
    _options = ("weight", "ignore_index", "reduction")

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", *, n_threads=None):
        _no_legacy(size_average, reduce)
        super().__init__(reduction, n_threads)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index


class KLDivLoss(_Loss):
    """``torch.nn.KLDivLoss`` computed by cyloss; see :func:`kl_div`.

    Examples
    --------
    >>> import torch, cyloss.torch
    >>> x = torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    >>> loss = cyloss.torch.KLDivLoss(reduction="sum", log_target=True)
    >>> round(loss(x, x).item(), 12)
    0.0
    """

    _function = staticmethod(kl_div)
    _options = ("reduction", "log_target")

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False,
                 *, n_threads=None):
        _no_legacy(size_average, reduce)
        if reduction not in ("mean", "batchmean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'batchmean', 'sum' or 'none' "
                             f"(PyTorch's); got {reduction!r}")
        torch.nn.Module.__init__(self)
        self.reduction = reduction
        self.n_threads = n_threads
        self.log_target = log_target
