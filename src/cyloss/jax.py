r"""cyloss inside JAX: PyTorch's losses as JAX functions with a custom VJP.

``pip install "cyloss[jax]"``, then ``import cyloss.jax`` (plain ``import cyloss`` never
imports JAX). The functions have ``torch.nn.functional``'s names, ``(input, target)``
order, options and reductions (the mapping is ``cyloss.torch``'s), and work under
``jax.jit``, ``jax.grad`` and ``jax.value_and_grad``::

    loss, grads = jax.jit(jax.value_and_grad(
        lambda params: cyloss.jax.cross_entropy(model(params, x), labels)))(params)

========================================  ===============================================
function                                  options
========================================  ===============================================
``cross_entropy``                         ``weight``, ``ignore_index``, ``reduction``,
                                          ``label_smoothing``; integer labels or class
                                          probabilities; class axis 1
``binary_cross_entropy_with_logits``      ``weight``, ``reduction``, ``pos_weight``
``binary_cross_entropy``                  ``weight``, ``reduction``
``l1_loss``, ``mse_loss``                 ``reduction``
``huber_loss``                            ``reduction``, ``delta``
``smooth_l1_loss``                        ``reduction``, ``beta``
========================================  ===============================================

Every function also takes ``n_threads`` (cyloss's thread count).

How it works. cyloss runs on the host through a callback: on the CPU backend JAX's
``buffer_callback``, which hands cyloss XLA's own buffers (the logits are read in place
and the gradient is written straight into the result), elsewhere or on JAX versions without it
``jax.pure_callback`` (which copies the arrays to the host and back). A plain call
computes the value only; under differentiation the forward pass makes one fused
``value_and_grad`` call and keeps the gradient as the residual, and the backward pass
multiplies it by the incoming cotangent (broadcast along the class axis for
``reduction="none"``, whose cotangent has the per-sample shape), in place over the
residual on the CPU backend, and not at all when the cotangent is 1 (``jax.grad`` of the
loss). Large output buffers get transparent huge pages (``madvise``, Linux) before
cyloss writes them: XLA hands out fresh memory at every step, and faulting it in 4 KiB
pages cost as much as the loss itself. Integer labels stay
integer. Options (``weight``, ``pos_weight``, ``ignore_index``, ...) are fixed when the
function is traced: they must be concrete values (constants, or closed over), not traced
arrays.

``jax.vmap`` is supported through the callbacks' ``vmap_method="sequential"``: one cyloss
call per batch element, in a loop (correct for every reduction; no faster than the loop).

Limits: gradients with respect to ``input`` only (differentiating ``target`` is a
``NotImplementedError`` when traced), float32 and float64 ``input`` (float64 needs
``jax_enable_x64``), no higher-order derivatives (``jax.hessian`` or a ``jax.grad`` of a
``jax.grad`` fails: JAX cannot differentiate the callback in the backward pass; use the
plain formula, e.g. ``optax.softmax_cross_entropy_with_integer_labels``). Bad data found
inside the callback (a label outside ``[0, C)``) surfaces as JAX's runtime error carrying
cyloss's message; shape and option errors are raised when the function is traced. The
computation runs on the host CPU whatever JAX's default device; on an accelerator the
arrays travel to the host and back. Semantics otherwise as ``cyloss.torch``.

Examples
--------
>>> import jax, jax.numpy as jnp, cyloss.jax
>>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
>>> labels = jnp.array([0, 2])
>>> value, grad = jax.jit(jax.value_and_grad(cyloss.jax.cross_entropy))(logits, labels)
>>> round(float(value), 6), grad.shape
(0.175456, (2, 3))
"""

import jax
import jax.numpy as jnp
import numpy as np

from cyloss import _adapters

try:
    from jax.experimental.buffer_callback import buffer_callback as _buffer_callback
except ImportError:  # older JAX
    _buffer_callback = None

__all__ = [
    "cross_entropy", "binary_cross_entropy_with_logits", "binary_cross_entropy",
    "l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
VMAP_METHOD = "sequential"


def _concrete(name, value):
    """An option as a NumPy array (``None`` stays ``None``); traced values are refused."""
    if value is None:
        return None
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        raise TypeError(f"{name}: cyloss.jax needs a concrete {name} (a constant or a "
                        "closed-over array), not a traced one") from None


_MADV_HUGEPAGE = 14
_HUGE_MIN = 4 << 20
_madvise = None


def _hugepages(a):
    """Ask Linux for transparent huge pages under a large fresh output buffer before it is
    written (NumPy does this for its own arrays; XLA's buffers are fresh memory at every
    step). First touch then faults in 2 MiB pages instead of 4 KiB ones: at 10^4 x 1000
    float32 logits this took the callback from 14.9 to 7.7 ms. Advice only: the contents
    and the memory's owner are unchanged, and any failure leaves the buffer as it was."""
    global _madvise
    if a.nbytes < _HUGE_MIN or _madvise is False:
        return
    if _madvise is None:
        try:
            import ctypes
            import sys
            if not sys.platform.startswith("linux"):
                raise OSError("not Linux")
            fn = ctypes.CDLL(None, use_errno=True).madvise
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            fn.restype = ctypes.c_int
            _madvise = fn
        except (OSError, AttributeError):
            _madvise = False
            return
    start = (a.ctypes.data + 4095) & ~4095          # whole pages inside the buffer only
    end = (a.ctypes.data + a.nbytes) & ~4095
    if end > start:
        _madvise(start, end - start, _MADV_HUGEPAGE)


def _callback(host, out_types, x, t):
    """Run ``host(x, t, outs)`` (NumPy arrays; it fills ``outs``) from JAX.

    On the CPU backend with ``buffer_callback`` (recent JAX versions), ``x``, ``t`` and the
    outputs are XLA's own buffers: cyloss reads the logits in place and writes the
    gradient straight into the result (``grad_out``). ``pure_callback`` copies the
    inputs to the host and the outputs back: at 10^4 x 1000 float32 logits those copies
    took about 0.7 of the fused call's own time; so it is the fallback only.
    """
    if _buffer_callback is not None and jax.default_backend() == "cpu":
        def run(ctx, outs, x, t):
            outs = [np.asarray(o) for o in outs]
            for o in outs:
                _hugepages(o)
            host(np.asarray(x), np.asarray(t), outs)
        return _buffer_callback(run, out_types, vmap_method=VMAP_METHOD)(x, t)

    def run(x, t):
        outs = [np.empty(o.shape, o.dtype) for o in out_types]
        host(np.asarray(x), np.asarray(t), outs)
        return tuple(outs)
    return jax.pure_callback(run, out_types, x, t, vmap_method=VMAP_METHOD)


def _scale(grad, g):
    """The residual gradient times the incoming cotangent ``g`` (broadcast).

    On the CPU backend with ``buffer_callback`` the product is written over the residual
    itself (an input-output alias: the residual is dead after the backward pass), and
    not at all when ``g`` is 1 (``jax.grad`` of a scalar loss), where ``grad * g`` cost a
    pass over the gradient into fresh memory (3.5 ms at 10^4 x 1000 float32). The same
    IEEE products otherwise."""
    if _buffer_callback is None or jax.default_backend() != "cpu":
        return grad * g

    def run(ctx, out, grad, g):
        o, c = np.asarray(out), np.asarray(g)
        if not np.all(c == 1):
            np.multiply(o, c, out=o)
    out_type = jax.ShapeDtypeStruct(grad.shape, grad.dtype)
    return _buffer_callback(run, out_type, vmap_method=VMAP_METHOD,
                            input_output_aliases={0: 0})(grad, g.astype(grad.dtype))


def _loss(name, input, target, options):
    fn = _adapters.LOSSES[name]
    input, target = jnp.asarray(input), jnp.asarray(target)
    if input.dtype not in _FLOATS:
        raise TypeError(f"input: cyloss.jax computes in float32 or float64; got "
                        f"{input.dtype}")
    for key in ("weight", "pos_weight"):
        if key in options:
            options[key] = _concrete(key, options[key])
    target_is_float = jnp.issubdtype(target.dtype, jnp.floating)
    out_shape = _adapters.output_shape(name, input.shape, target.shape, target_is_float,
                                       options.get("reduction", "mean"))
    class_axis = (None if name != "cross_entropy"
                  else _adapters.cross_entropy_shape(input.shape, target.shape,
                                                     target_is_float)[1])
    dtype = input.dtype
    value_type = jax.ShapeDtypeStruct(out_shape, dtype)
    grad_type = jax.ShapeDtypeStruct(input.shape, dtype)

    def value_host(x, t, outs):
        outs[0][...] = fn(x, t, need_grad=False, **options).value

    def both_host(x, t, outs):
        outs[0][...] = fn(x, t, need_grad=True, grad_out=outs[1], **options).value

    @jax.custom_vjp
    def loss(x, t):
        return _callback(value_host, (value_type,), x, t)[0]

    def forward(x, t):
        if t.perturbed:
            raise NotImplementedError(
                f"target: cyloss.jax.{name} differentiates with respect to input only; "
                "use the plain JAX formula to differentiate the target")
        value, grad = _callback(both_host, (value_type, grad_type), x.value, t.value)
        return value, grad

    def backward(grad, g):
        if out_shape and class_axis is not None:
            g = jnp.expand_dims(g, class_axis)
        return _scale(grad, g), None

    loss.defvjp(forward, backward, symbolic_zeros=True)
    return loss(input, target)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, n_threads=None):
    r"""Cross-entropy from logits (``torch.nn.functional.cross_entropy``'s semantics).

    With :math:`p = \mathrm{softmax}(x)` over axis 1 and the smoothed target
    :math:`q = (1 - s)\,\mathrm{onehot}(y) + s / C` (or the probability target, smoothed
    alike), :math:`l_i = -\sum_c w_c q_{ic} \log p_{ic}`; ``"mean"`` is
    :math:`\sum_i l_i / \sum_i w_{y_i}` over samples whose label is not ``ignore_index``
    (integer labels) or :math:`\sum_i l_i / N` (probabilities).

    Examples
    --------
    >>> import jax.numpy as jnp, cyloss.jax
    >>> x = jnp.array([[1.0, 2.0, 0.5]])
    >>> round(float(cyloss.jax.cross_entropy(x, jnp.array([1]))), 6)
    0.464369
    """
    return _loss("cross_entropy", input, target,
                 {"weight": weight, "ignore_index": ignore_index, "reduction": reduction,
                  "label_smoothing": label_smoothing, "n_threads": n_threads})


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None, *, n_threads=None):
    r"""Binary cross-entropy from logits, elementwise:
    :math:`l = -w\,[p_w\, y \log \sigma(x) + (1 - y) \log(1 - \sigma(x))]`.

    Examples
    --------
    >>> import jax.numpy as jnp, cyloss.jax
    >>> x, y = jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0])
    >>> round(float(cyloss.jax.binary_cross_entropy_with_logits(x, y)), 6)
    1.410038
    """
    return _loss("binary_cross_entropy_with_logits", input, target,
                 {"weight": weight, "pos_weight": pos_weight, "reduction": reduction,
                  "n_threads": n_threads})


def binary_cross_entropy(input, target, weight=None, reduction="mean", *, n_threads=None):
    r"""Binary cross-entropy from probabilities, elementwise:
    :math:`l = -w\,[y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)]`
    (PyTorch's clamp; ``inf`` at ``p == 1`` exactly with a target below 1).

    Examples
    --------
    >>> import jax.numpy as jnp, cyloss.jax
    >>> p, y = jnp.array([0.5, 0.9]), jnp.array([1.0, 0.0])
    >>> round(float(cyloss.jax.binary_cross_entropy(p, y)), 6)
    1.497866
    """
    return _loss("binary_cross_entropy", input, target,
                 {"weight": weight, "reduction": reduction, "n_threads": n_threads})


def l1_loss(input, target, reduction="mean", *, n_threads=None):
    r"""Mean absolute error, elementwise: :math:`l = |x - y|`.

    Examples
    --------
    >>> import jax.numpy as jnp, cyloss.jax
    >>> float(cyloss.jax.l1_loss(jnp.array([1.0, -2.0]), jnp.zeros(2)))
    1.5
    """
    return _loss("l1_loss", input, target, {"reduction": reduction, "n_threads": n_threads})


def mse_loss(input, target, reduction="mean", *, n_threads=None):
    r"""Mean squared error, elementwise: :math:`l = (x - y)^2`.

    Examples
    --------
    >>> import jax.numpy as jnp, cyloss.jax
    >>> cyloss.jax.mse_loss(jnp.array([1.0, -2.0]), jnp.zeros(2), reduction="none")
    Array([1., 4.], dtype=float32)
    """
    return _loss("mse_loss", input, target,
                 {"reduction": reduction, "n_threads": n_threads})


def huber_loss(input, target, reduction="mean", delta=1.0, *, n_threads=None):
    r"""Huber loss, elementwise: :math:`e^2/2` if :math:`|e| \le \delta`, else
    :math:`\delta (|e| - \delta/2)`.

    Examples
    --------
    >>> import jax.numpy as jnp, cyloss.jax
    >>> float(cyloss.jax.huber_loss(jnp.array([1.0, 4.0]), jnp.zeros(2), delta=2.0))
    3.25
    """
    return _loss("huber_loss", input, target,
                 {"reduction": reduction, "delta": delta, "n_threads": n_threads})


def smooth_l1_loss(input, target, reduction="mean", beta=1.0, *, n_threads=None):
    r"""Smooth L1 loss, elementwise: :math:`e^2 / (2\beta)` if :math:`|e| < \beta`, else
    :math:`|e| - \beta/2`.

    Examples
    --------
    >>> import jax.numpy as jnp, cyloss.jax
    >>> float(cyloss.jax.smooth_l1_loss(jnp.array([1.0, -3.0]), jnp.zeros(2), beta=0.0))
    2.0
    """
    return _loss("smooth_l1_loss", input, target,
                 {"reduction": reduction, "beta": beta, "n_threads": n_threads})
