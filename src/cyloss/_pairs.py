"""Issue #14's losses that do not fit the ELEMENTWISE table as they stand.

- ``poisson_nll`` and ``hinge_embedding`` (PyTorch) are elementwise: kernel triples of
  ``_kernels_pairs.h`` in CYL_ELEMENTWISE, run by the elementwise loop of every table
  loss (``losses._elementwise``). Poisson NLL has three options, so it picks one of four
  kernels from (log_input, full), the kernel's one parameter being ``eps``; they are
  written here rather than in the table, which gives a loss one parameter.
- ``dice`` and ``tversky`` (Keras 3) reduce whole rows (the ``axis`` argument) to one
  ratio: ``_loops.overlap``.
- ``margin_ranking``, ``gaussian_nll``, ``cosine_embedding`` and ``triplet_margin``
  (PyTorch) take three arrays: a loop each in ``_pairs.pxi``. Their classes are called
  with the three arrays, and their ``value_and_grad`` returns a tuple of gradients.

``losses`` imports this module at its end and publishes its names (``__all__``,
``LOSSES``, ``get``), so every loss here is a ``cyloss`` function and class like the
others, on the same contract (reductions, sample weights, dtypes, errors, threads).
"""

import math
import numbers

import numpy as np

from cyloss import _loops
from cyloss import _validation as V
from cyloss import losses as L
from cyloss._openmp import resolve_threads

__all__ = [
    "poisson_nll", "hinge_embedding", "dice", "tversky", "margin_ranking", "gaussian_nll",
    "cosine_embedding", "triplet_margin",
    "PoissonNLL", "HingeEmbedding", "Dice", "Tversky", "MarginRanking", "GaussianNLL",
    "CosineEmbedding", "TripletMargin",
]


# --- options --------------------------------------------------------------------------------

def check_flag(value, name):
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise ValueError(f"{name} must be True or False; got {value!r}")


def check_finite(value, name):
    v = V._real(value, name)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return v


def check_poisson_eps(value):
    v = V._real(value, "eps")
    if not 0.0 <= v < math.inf:
        raise ValueError(f"eps must be a finite number >= 0; got {value!r}")
    return v


def check_overlap_axis(axis):
    """None (every axis), an int, or a tuple/list of distinct ints; range is checked at
    call time against the input's rank."""
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        out = []
        for a in axis:
            if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
                raise ValueError(f"axis must be None, an integer or a tuple of integers; "
                                 f"got {axis!r}")
            out.append(int(a))
        return tuple(out)
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"axis must be None, an integer or a tuple of integers; got {axis!r}")
    return int(axis)


# --- Poisson NLL and hinge embedding: elementwise kernels -----------------------------------

_POISSON_KINDS = {
    (True, False): _loops.KINDS["poisson_nll_log"],
    (True, True): _loops.KINDS["poisson_nll_log_full"],
    (False, False): _loops.KINDS["poisson_nll"],
    (False, True): _loops.KINDS["poisson_nll_full"],
}
_HINGE_EMBEDDING = _loops.KINDS["hinge_embedding"]


def poisson_nll(y_true, y_pred, *, log_input=True, full=False, eps=1e-8,
                sample_weight=None, reduction="mean", n_threads=None):
    r"""Poisson negative log-likelihood over the last axis (PyTorch's ``poisson_nll_loss``).

    .. math:: l = \mathrm{mean}_k f(y_k, x_k), \quad
              f(y, x) = \begin{cases} e^x - y x & \text{log\_input} \\
                                      x - y \log(x + \epsilon) & \text{otherwise}
                        \end{cases}

    With ``full=True`` Stirling's approximation of ``log(y!)``,
    ``y log y - y + log(2 pi y) / 2``, is added where ``y > 1`` (PyTorch's rule). ``x`` is
    the predicted log-rate (``log_input=True``) or rate. A target of exactly 0 contributes
    0 against an infinite ``x`` or ``log(x + eps)`` (the limit; PyTorch gives NaN). Rates
    with ``x + eps < 0`` give NaN, as in PyTorch; targets are not checked.

    Derivatives: ``e^x - y`` (log input) or ``1 - y / (x + eps)``; Hessian ``e^x`` or
    ``y / (x + eps)^2``.

    Parameters
    ----------
    y_true, y_pred : array_like
        Counts and predictions of the same shape (a trailing axis of 1 on one side is
        squeezed); a 1-D input is ``n`` samples of one output each.
    log_input : bool, default True
    full : bool, default False
    eps : float, default 1e-8
        ``>= 0``; used only with ``log_input=False``.
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`. PyTorch's ``reduction="mean"`` is the
        mean over every element: cyloss's ``"mean"`` of per-sample means, the same number
        when every sample has the same width.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.poisson_nll([2.0, 0.0], [0.0, 1.0]), 6)
    1.859141
    >>> cyloss.poisson_nll([2.0, 0.0], [2.0, 1.0], log_input=False, reduction="none")
    array([0.61370563, 1.        ])
    """
    kind = _POISSON_KINDS[check_flag(log_input, "log_input"), check_flag(full, "full")]
    return L._elementwise(kind, check_poisson_eps(eps), y_true, y_pred, sample_weight,
                          reduction, n_threads)


def hinge_embedding(y_true, y_pred, *, margin=1.0, sample_weight=None, reduction="mean",
                    n_threads=None):
    r"""Hinge embedding loss over the last axis (PyTorch's ``hinge_embedding_loss``).

    .. math:: l = \mathrm{mean}_k f(y_k, x_k), \quad
              f(y, x) = \begin{cases} x & y = 1 \\ \max(0, m - x) & y = -1 \end{cases}

    ``y_true`` holds labels 1 or -1 and ``y_pred`` the distances ``x``. Other label values
    are not an error: they get PyTorch's value ``max(0, m - x) + x`` (its formula sums
    ``[y != 1] max(0, m - x)`` and ``[y != -1] x``).

    Derivatives: ``1`` for ``y = 1``; ``-1`` where ``m - x >= 0`` and ``0`` elsewhere for
    ``y = -1`` (torch.clamp_min's convention at the kink); Hessian 0.

    Parameters
    ----------
    y_true, y_pred : array_like
        Same shape (a trailing axis of 1 on one side is squeezed).
    margin : float, default 1.0
        Any finite number.
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> cyloss.hinge_embedding([1.0, -1.0, -1.0], [0.5, 0.25, 2.0], reduction="none")
    array([0.5 , 0.75, 0.  ])
    """
    return L._elementwise(_HINGE_EMBEDDING, check_finite(margin, "margin"), y_true, y_pred,
                          sample_weight, reduction, n_threads)


class PoissonNLL(L.Loss):
    """Poisson negative log-likelihood as a Keras-style object; see :func:`poisson_nll`.

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.PoissonNLL(log_input=False)([2.0, 0.0], [2.0, 1.0]), 10)
    0.8068528144
    """

    _function = staticmethod(poisson_nll)
    _defaults = L._defaults("poisson_nll", log_input=True, full=False, eps=1e-8)

    def __init__(self, *, log_input=True, full=False, eps=1e-8, reduction="mean",
                 n_threads=None, name="poisson_nll"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         log_input=check_flag(log_input, "log_input"),
                         full=check_flag(full, "full"), eps=check_poisson_eps(eps))

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return L._elementwise(_POISSON_KINDS[o["log_input"], o["full"]], o["eps"], y_true,
                              y_pred, sample_weight, reduction, o["n_threads"],
                              grad_request, hess_request)


class HingeEmbedding(L.Loss):
    """Hinge embedding loss as a Keras-style object; see :func:`hinge_embedding`.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.HingeEmbedding(margin=2.0)([1.0, -1.0], [0.5, 0.5])
    1.0
    """

    _function = staticmethod(hinge_embedding)
    _defaults = L._defaults("hinge_embedding", margin=1.0)

    def __init__(self, *, margin=1.0, reduction="mean", n_threads=None,
                 name="hinge_embedding"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         margin=check_finite(margin, "margin"))

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return L._elementwise(_HINGE_EMBEDDING, o["margin"], y_true, y_pred,
                              sample_weight, reduction, o["n_threads"], grad_request,
                              hess_request)


# --- dice and tversky: one ratio per row ----------------------------------------------------

def _overlap_layout(y_true, y_pred, axis):
    """(prep, perm): y_true and y_pred as (n, K) rows, K the reduced axes (every axis for
    axis=None), and the axis permutation that puts the reduced axes last."""
    yt = V.as_array(y_true, "y_true")
    yp = V.as_array(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got y_true "
                         f"{yt.shape} and y_pred {yp.shape}")
    ndim = yp.ndim
    if axis is None:
        reduced = tuple(range(ndim))
    else:
        axes = axis if isinstance(axis, tuple) else (axis,)
        for a in axes:
            if not -ndim <= a < ndim:
                raise ValueError(f"axis {a} is out of range for y_pred of shape {yp.shape} "
                                 f"({ndim} axes)")
        reduced = tuple(a % ndim for a in axes)
        if len(set(reduced)) != len(reduced):
            raise ValueError(f"axis {axis!r} repeats an axis of y_pred of shape {yp.shape}")
        reduced = tuple(sorted(reduced))
    kept = tuple(a for a in range(ndim) if a not in reduced)
    perm = kept + reduced
    sample_shape = tuple(yp.shape[a] for a in kept)
    n = math.prod(sample_shape)
    width = math.prod(yp.shape[a] for a in reduced)
    dtype = V.compute_dtype(yp)
    rows = lambda a: V._cast(a, dtype).transpose(perm).reshape(n, width)  # noqa: E731
    prep = V.Prepared(rows(yt), rows(yp), None, sample_shape, n, yp.size, dtype, None,
                      yp.shape)
    return prep, perm


def _overlap(kind, alpha, beta, axis, y_true, y_pred, sample_weight, reduction, n_threads,
             grad_request=None):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    prep, perm = _overlap_layout(y_true, y_pred, check_overlap_axis(axis))
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = L._scaled_weights(weight, has_weight)
    loss_out, write_out = L._loss_out(reduction, prep)
    grad = grad_view = None
    if grad_request is not None:
        # The loop writes rows in the permuted layout; the gradient returned is that
        # buffer transposed back to y_pred's shape (a view), or copied into grad_out.
        permuted = np.empty(tuple(prep.pred_shape[a] for a in perm), dtype=prep.dtype)
        grad_view = permuted.reshape(prep.n_samples, prep.y_pred.shape[1])
        grad = permuted.transpose(np.argsort(perm))
        if grad_request is not L._GRAD:
            target, _ = V.grad_buffer(grad_request, prep)
    result = _loops.overlap(kind, alpha, beta, prep.y_true, prep.y_pred, weight,
                            has_weight, loss_out, write_out,
                            resolve_threads(n_threads, prep.n_elements), grad_view)
    out = L._finish(result, reduction, loss_out, prep, "overlap", grad=grad,
                    grad_view=grad_view, wexp=wexp)
    if grad_request is not None and grad_request is not L._GRAD:
        np.copyto(target, grad)
        return out[0], target
    return out


_OVERLAP_PARAMS = """axis : None, int or tuple of ints, default None
        The axes each ratio sums over (Keras's ``axis``). ``None`` (Keras's default)
        sums over every axis: the whole input is one sample, so ``sample_weight`` must
        then be a scalar and ``reduction="none"`` returns a 0-d array. With
        ``axis=(1, 2, 3)`` on images ``(n, h, w, c)`` each image is a sample."""


def dice(y_true, y_pred, *, axis=None, sample_weight=None, reduction="mean",
         n_threads=None):
    r"""Dice loss (Keras 3's ``dice``).

    .. math:: l = 1 - \frac{2 \sum y p}{\sum y + \sum p + \epsilon}, \quad
              \epsilon = 10^{-7}

    with the sums over ``axis`` (Keras's ``backend.epsilon()``; no smoothing in the
    numerator, as Keras). One value per sample: per index of the axes not summed over.

    Derivative: ``(2 sum y p / D - 2 y_k) / D`` with ``D`` the denominator.

    Parameters
    ----------
    y_true, y_pred : array_like
        The same shape.
    {axis}
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`, over the per-sample losses.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> y_true = [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    >>> y_pred = [[0.0, 1.0, 0.0, 1.0], [0.4, 0.0, 0.0, 0.9]]
    >>> cyloss.dice(y_true, y_pred, axis=1, reduction="none")
    array([0.50000001, 0.75757576])
    >>> round(cyloss.dice(y_true, y_pred), 7)
    0.6164384
    """
    return _overlap(_loops.OVERLAP_KINDS["dice"], 0.5, 0.5, axis, y_true, y_pred,
                    sample_weight, reduction, n_threads)


def tversky(y_true, y_pred, *, alpha=0.5, beta=0.5, axis=None, sample_weight=None,
            reduction="mean", n_threads=None):
    r"""Tversky loss (Keras 3's ``tversky``).

    .. math:: l = 1 - \frac{T}{T + \alpha \sum (1 - p) y + \beta \sum p (1 - y)
              + \epsilon}, \quad T = \sum y p, \quad \epsilon = 10^{-7}

    with the sums over ``axis``: Keras's definition and order of terms (``alpha``
    weighs ``sum (1 - p) y`` and ``beta`` ``sum p (1 - y)``). ``alpha = beta = 0.5`` is
    the Dice loss up to where epsilon enters.

    Derivative: ``(r (y_k - alpha y_k + beta (1 - y_k)) - y_k) / Q`` with ``Q`` the
    denominator and ``r = T / Q``.

    Parameters
    ----------
    y_true, y_pred : array_like
        The same shape.
    alpha, beta : float, default 0.5
        Finite weights.
    {axis}
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.tversky([1.0, 1.0, 0.0], [0.5, 0.0, 1.0], alpha=0.2, beta=0.8), 6)
    0.6875
    """
    return _overlap(_loops.OVERLAP_KINDS["tversky"], check_finite(alpha, "alpha"),
                    check_finite(beta, "beta"), axis, y_true, y_pred, sample_weight,
                    reduction, n_threads)


dice.__doc__ = dice.__doc__.replace("{axis}", _OVERLAP_PARAMS)
tversky.__doc__ = tversky.__doc__.replace("{axis}", _OVERLAP_PARAMS)


class Dice(L.Loss):
    """Dice loss as a Keras-style object; see :func:`dice`.

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.Dice(axis=-1)([[1.0, 1.0, 0.0, 0.0]], [[0.5, 0.75, 0.25, 0.0]]), 6)
    0.285714
    """

    _function = staticmethod(dice)
    _defaults = L._defaults("dice", axis=None)

    def __init__(self, *, axis=None, reduction="mean", n_threads=None, name="dice"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         axis=check_overlap_axis(axis))

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        if hess_request is not None:
            raise NotImplementedError(f"grad_hess is not available for {self.name} "
                                      "(its Hessian is not diagonal)")
        o = self._options
        return _overlap(_loops.OVERLAP_KINDS["dice"], 0.5, 0.5, o["axis"], y_true, y_pred,
                        sample_weight, reduction, o["n_threads"], grad_request)


class Tversky(L.Loss):
    """Tversky loss as a Keras-style object; see :func:`tversky`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.Tversky(alpha=0.2, beta=0.8)
    >>> loss
    Tversky(alpha=0.2, beta=0.8)
    >>> round(loss([1.0, 1.0, 0.0], [0.5, 0.0, 1.0]), 6)
    0.6875
    """

    _function = staticmethod(tversky)
    _defaults = L._defaults("tversky", alpha=0.5, beta=0.5, axis=None)

    def __init__(self, *, alpha=0.5, beta=0.5, axis=None, reduction="mean",
                 n_threads=None, name="tversky"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         alpha=check_finite(alpha, "alpha"), beta=check_finite(beta, "beta"),
                         axis=check_overlap_axis(axis))

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        if hess_request is not None:
            raise NotImplementedError(f"grad_hess is not available for {self.name} "
                                      "(its Hessian is not diagonal)")
        o = self._options
        return _overlap(_loops.OVERLAP_KINDS["tversky"], o["alpha"], o["beta"], o["axis"],
                        y_true, y_pred, sample_weight, reduction, o["n_threads"],
                        grad_request)


# --- margin ranking: three arrays -----------------------------------------------------------

def _three_way(y_true, input1, input2):
    """(prep, x1, x2): the inputs as (n, K) rows in the compute dtype (float32 when both
    inputs are float32 or float16), y_true broadcast to their shape (a trailing axis of 1
    on one side squeezed first), per-sample loss = mean over the last axis (a 1-D input is
    n samples)."""
    yt = V.as_array(y_true, "y_true")
    a = V.as_array(input1, "input1")
    b = V.as_array(input2, "input2")
    if a.shape != b.shape:
        raise ValueError(f"input1 and input2 must have the same shape; got input1 "
                         f"{a.shape} and input2 {b.shape}")
    yt, a2 = V._squeeze_trailing(yt, a)
    if a2.shape != a.shape:   # the inputs' trailing 1 went: squeeze both
        a, b = a2, b.reshape(a2.shape)
    try:
        yt = np.broadcast_to(yt, a.shape)
    except ValueError:
        raise ValueError(f"y_true of shape {yt.shape} cannot be broadcast to the inputs' "
                         f"shape {a.shape}") from None
    dtype = (np.dtype(np.float32) if V.compute_dtype(a) == np.float32
             and V.compute_dtype(b) == np.float32 else np.dtype(np.float64))
    shape = a.shape
    if a.ndim <= 1:
        sample_shape, width = shape, 1
    else:
        sample_shape, width = shape[:-1], shape[-1]
    n = math.prod(sample_shape)
    rows = lambda x: V._cast(x, dtype).reshape(n, width)  # noqa: E731
    prep = V.Prepared(rows(yt), rows(a), None, sample_shape, n, 3 * n * width, dtype,
                      None, a.shape)
    return prep, rows(b)


def _margin_ranking(y_true, input1, input2, margin, sample_weight, reduction, n_threads,
                    want_grad=False):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    margin = check_finite(margin, "margin")
    prep, x2 = _three_way(y_true, input1, input2)
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = L._scaled_weights(weight, has_weight)
    loss_out, write_out = L._loss_out(reduction, prep)
    g1 = g2 = g1_view = g2_view = None
    if want_grad:
        g1 = np.empty(prep.pred_shape, dtype=prep.dtype)
        g2 = np.empty(prep.pred_shape, dtype=prep.dtype)
        g1_view, g2_view = g1.reshape(prep.y_pred.shape), g2.reshape(prep.y_pred.shape)
    result = _loops.margin_ranking(margin, prep.y_true, prep.y_pred, x2, weight,
                                   has_weight, loss_out, write_out,
                                   resolve_threads(n_threads, prep.n_elements), g1_view,
                                   g2_view)
    out = L._finish(result, reduction, loss_out, prep, "margin_ranking", grad=g1,
                    grad_view=g1_view, wexp=wexp)
    if not want_grad:
        return out
    # The loop wrote g2 = -g1 element by element; the reduction's scale is the same.
    np.negative(g1, out=g2)
    return out[0], (g1, g2)


def margin_ranking(y_true, input1, input2, *, margin=0.0, sample_weight=None,
                   reduction="mean", n_threads=None):
    r"""Margin ranking loss (PyTorch's ``margin_ranking_loss``), mean over the last axis.

    .. math:: l = \mathrm{mean}_k \max(0, -y_k (x_{1k} - x_{2k}) + m)

    Argument order: cyloss keeps the targets first, ``(y_true, input1, input2)``, where
    PyTorch writes ``margin_ranking_loss(input1, input2, target)``. ``y_true`` holds 1
    (``input1`` should rank higher) or -1 and is broadcast to the inputs' shape.

    Gradients (:meth:`MarginRanking.value_and_grad`): ``-y`` with respect to ``input1``
    and ``y`` with respect to ``input2`` where ``-y (x1 - x2) + m >= 0`` (torch.clamp_min's
    convention at the kink), else 0.

    Parameters
    ----------
    y_true : array_like
        Labels, broadcastable to the inputs' shape.
    input1, input2 : array_like
        The same shape; a 1-D input is ``n`` samples of one value each.
    margin : float, default 0.0
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> cyloss.margin_ranking([1.0, -1.0], [0.5, 0.5], [1.0, 0.0], margin=0.1,
    ...                       reduction="none")
    array([0.6, 0.6])
    """
    return _margin_ranking(y_true, input1, input2, margin, sample_weight, reduction,
                           n_threads)


class MarginRanking(L.Loss):
    """Margin ranking loss as a Keras-style object; see :func:`margin_ranking`.

    Called as ``loss(y_true, input1, input2, sample_weight=None)``.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.MarginRanking(margin=0.5)
    >>> loss([1.0, -1.0], [2.0, 0.0], [0.0, 1.0])
    0.0
    >>> loss.value_and_grad([1.0], [0.0], [0.0])
    (0.5, (array([-1.]), array([1.])))
    """

    _function = staticmethod(margin_ranking)
    _three_inputs = True   # called with three arrays (the eval command refuses it)
    _defaults = L._defaults("margin_ranking", margin=0.0)

    def __init__(self, *, margin=0.0, reduction="mean", n_threads=None,
                 name="margin_ranking"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         margin=check_finite(margin, "margin"))

    def __call__(self, y_true, input1, input2, sample_weight=None):
        o = self._options
        return _margin_ranking(y_true, input1, input2, o["margin"], sample_weight,
                               o["reduction"], o["n_threads"])

    def value_and_grad(self, y_true, input1, input2, sample_weight=None):
        """The loss and its gradients with respect to ``input1`` and ``input2``, in one
        pass: ``(value, (grad1, grad2))``."""
        o = self._options
        return _margin_ranking(y_true, input1, input2, o["margin"], sample_weight,
                               o["reduction"], o["n_threads"], want_grad=True)

    def grad(self, y_true, input1, input2, sample_weight=None):
        """Only the gradients of :meth:`value_and_grad`: ``(grad1, grad2)``."""
        return self.value_and_grad(y_true, input1, input2, sample_weight)[1]

    def grad_hess(self, *args, **kwargs):
        raise NotImplementedError("grad_hess is not available for margin_ranking (a "
                                  "three-input loss)")


# --- helpers of the three-array losses ------------------------------------------------------

def _three_dtype(*arrays):
    """float32 when every float input is float32/float16 (SPEC section 4), else float64."""
    if all(V.compute_dtype(a) == np.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _grads_like(shape, dtype, count):
    return tuple(np.empty(shape, dtype=dtype) for _ in range(count))


def _scale_more(result, reduction, wexp, views):
    """Scale further gradient views as _finish scaled the first one."""
    divisor, exponent = L._grad_divisor(result[1], result[2], reduction, wexp)
    for view in views:
        L._scale(view, divisor, exponent)


# --- Gaussian NLL -----------------------------------------------------------------------------

def _gaussian_layout(y_true, y_pred, var):
    yt = V.as_array(y_true, "y_true")
    x = V.as_array(y_pred, "y_pred")
    v = V.as_array(var, "var")
    pred_shape, var_shape = x.shape, v.shape
    yt, x = V._squeeze_trailing(yt, x)
    if yt.shape != x.shape:
        raise ValueError(f"y_true and y_pred must have the same shape (a trailing axis of 1 "
                         f"on one side is squeezed); got y_true {yt.shape} and y_pred "
                         f"{x.shape}")
    if v.shape != x.shape:
        if x.ndim >= 1 and v.shape == x.shape[:-1]:
            v = v[..., None]              # homoscedastic: one variance per row
        elif not (v.ndim == x.ndim and sum(
                d for d, e in zip(v.shape, x.shape) if d != e) == 1):
            raise ValueError(
                f"var of shape {var_shape} does not fit y_pred of shape {x.shape}: it must "
                "have y_pred's shape, that shape without its last axis, or that shape with "
                "one axis of size 1 (PyTorch's rule)")
    dtype = _three_dtype(x, v)
    shape = x.shape
    sample_shape, width = (shape, 1) if x.ndim <= 1 else (shape[:-1], shape[-1])
    n = math.prod(sample_shape)
    rows = lambda a: V._cast(np.broadcast_to(a, shape), dtype).reshape(n, width)  # noqa: E731
    prep = V.Prepared(rows(yt), rows(x), None, sample_shape, n, 3 * n * width, dtype,
                      None, pred_shape)
    return prep, rows(v), v.shape, var_shape


def _gaussian_nll(y_true, y_pred, var, full, eps, sample_weight, reduction, n_threads,
                  want_grad=False):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    full = check_flag(full, "full")
    eps = check_gaussian_eps(eps)
    prep, v, v_shape, var_shape = _gaussian_layout(y_true, y_pred, var)
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = L._scaled_weights(weight, has_weight)
    loss_out, write_out = L._loss_out(reduction, prep)
    gx = gv = gx_view = gv_view = None
    if want_grad:
        gx, gv = _grads_like(prep.pred_shape, prep.dtype, 2)
        gx_view = gx.reshape(prep.y_pred.shape)
        gv_view = gv.reshape(prep.y_pred.shape)
    result = _loops.gaussian_nll(eps, full, prep.y_true, prep.y_pred, v, weight, has_weight,
                                 loss_out, write_out,
                                 resolve_threads(n_threads, prep.n_elements), gx_view,
                                 gv_view)
    if result[3] == _loops.VAR_NEGATIVE:
        i, k = result[4], result[5]
        shape = prep.sample_shape
        idx = tuple(int(j) for j in np.unravel_index(i, shape)) if shape else ()
        if len(prep.pred_shape) >= 2 and len(shape) < len(prep.pred_shape):
            idx += (int(k),)
        raise ValueError(f"var must be non-negative; got {float(v[i, k])!r} where it "
                         f"meets y_pred at index {idx}")
    out = L._finish(result, reduction, loss_out, prep, "gaussian_nll", grad=gx,
                    grad_view=gx_view, wexp=wexp)
    if not want_grad:
        return out
    _scale_more(result, reduction, wexp, (gv_view,))
    # var's gradient: summed over the axes along which var was broadcast
    gv = gv.reshape(np.broadcast_shapes(v_shape, gv.shape))
    axes = tuple(a for a, d in enumerate(v_shape) if d == 1 and gv.shape[a] != 1)
    if axes:
        gv = gv.sum(axis=axes, keepdims=True, dtype=np.float64).astype(prep.dtype)
    return out[0], (gx, gv.reshape(var_shape))


def check_gaussian_eps(value):
    v = V._real(value, "eps")
    if not 0.0 < v < math.inf:
        raise ValueError(f"eps must be a finite number > 0; got {value!r}")
    return v


def gaussian_nll(y_true, y_pred, var, *, full=False, eps=1e-6, sample_weight=None,
                 reduction="mean", n_threads=None):
    r"""Gaussian negative log-likelihood (PyTorch's ``gaussian_nll_loss``), mean over the
    last axis.

    .. math:: l = \mathrm{mean}_k \tfrac12 \left(\log v_k + (x_k - y_k)^2 / v_k\right)
              \; [+ \tfrac12 \log 2\pi], \quad v = \max(\mathrm{var}, \epsilon)

    Argument order: cyloss keeps the targets first, ``(y_true, y_pred, var)``, where
    PyTorch writes ``gaussian_nll_loss(input, target, var)``. ``var`` has ``y_pred``'s
    shape, or that shape without its last axis (one variance per sample), or that shape
    with one axis of size 1 (PyTorch's rules). A negative variance is a ``ValueError``
    (PyTorch 2.13 clamps it silently); the clamp at ``eps`` is as PyTorch's.

    Gradients (:meth:`GaussianNLL.value_and_grad`): ``(x - y) / v`` with respect to
    ``y_pred`` and ``(1 / v - (x - y)^2 / v^2) / 2`` with respect to ``var`` (summed over
    the axes ``var`` is broadcast along). PyTorch clamps ``var`` outside autograd, so
    ``var``'s gradient is this expression at the clamped ``v`` also where the clamp is
    active; cyloss gives the same.

    Parameters
    ----------
    y_true, y_pred : array_like
        The same shape (a trailing axis of 1 on one side is squeezed).
    var : array_like
        Non-negative variances (see above).
    full : bool, default False
        Add the constant ``log(2 pi) / 2``.
    eps : float, default 1e-6
        ``> 0``.
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> cyloss.gaussian_nll([0.0, 0.0], [1.0, 2.0], [1.0, 4.0], reduction="none")
    array([0.5       , 1.19314718])
    """
    return _gaussian_nll(y_true, y_pred, var, full, eps, sample_weight, reduction,
                         n_threads)


class GaussianNLL(L.Loss):
    """Gaussian NLL as a Keras-style object; see :func:`gaussian_nll`.

    Called as ``loss(y_true, y_pred, var, sample_weight=None)``.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.GaussianNLL(reduction="sum")
    >>> loss.value_and_grad([0.0], [1.0], [2.0])
    (0.5965735902799727, (array([0.5]), array([0.125])))
    """

    _function = staticmethod(gaussian_nll)
    _three_inputs = True   # called with three arrays (the eval command refuses it)
    _defaults = L._defaults("gaussian_nll", full=False, eps=1e-6)

    def __init__(self, *, full=False, eps=1e-6, reduction="mean", n_threads=None,
                 name="gaussian_nll"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         full=check_flag(full, "full"), eps=check_gaussian_eps(eps))

    def __call__(self, y_true, y_pred, var, sample_weight=None):
        o = self._options
        return _gaussian_nll(y_true, y_pred, var, o["full"], o["eps"], sample_weight,
                             o["reduction"], o["n_threads"])

    def value_and_grad(self, y_true, y_pred, var, sample_weight=None):
        """The loss and its gradients with respect to ``y_pred`` and ``var``, in one pass:
        ``(value, (grad_pred, grad_var))``."""
        o = self._options
        return _gaussian_nll(y_true, y_pred, var, o["full"], o["eps"], sample_weight,
                             o["reduction"], o["n_threads"], want_grad=True)

    def grad(self, y_true, y_pred, var, sample_weight=None):
        """Only the gradients of :meth:`value_and_grad`."""
        return self.value_and_grad(y_true, y_pred, var, sample_weight)[1]

    def grad_hess(self, *args, **kwargs):
        raise NotImplementedError("grad_hess is not available for gaussian_nll (a "
                                  "three-input loss)")


# --- cosine embedding and triplet margin: rows along the last axis ------------------------

def _row_inputs(names, arrays):
    """Same-shape inputs of at least one axis as (n, D) rows; per-sample shape = the shape
    without the last axis."""
    arrays = [V.as_array(a, name) for a, name in zip(arrays, names)]
    shape = arrays[0].shape
    for a, name in zip(arrays[1:], names[1:]):
        if a.shape != shape:
            raise ValueError(f"{names[0]} and {name} must have the same shape; got "
                             f"{names[0]} {shape} and {name} {a.shape}")
    if len(shape) == 0:
        raise ValueError(f"{names[0]} must have at least one axis (the vectors' axis); "
                         "got a scalar")
    dtype = _three_dtype(*arrays)
    sample_shape, width = shape[:-1], shape[-1]
    n = math.prod(sample_shape)
    rows = [V._cast(a, dtype).reshape(n, width) for a in arrays]
    return rows, sample_shape, shape, dtype


def _cosine_embedding(y_true, input1, input2, margin, sample_weight, reduction, n_threads,
                      want_grad=False):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    margin = check_finite(margin, "margin")
    (x1, x2), sample_shape, shape, dtype = _row_inputs(("input1", "input2"),
                                                       (input1, input2))
    n = x1.shape[0]
    y = V.as_array(y_true, "y_true")
    if y.ndim == len(sample_shape) + 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    try:
        y = np.broadcast_to(y, sample_shape)
    except ValueError:
        raise ValueError(f"y_true of shape {y.shape} cannot be broadcast to the per-sample "
                         f"shape {sample_shape} (the inputs' shape without its last "
                         "axis)") from None
    y = V._cast(y, dtype).reshape(n)
    prep = V.Prepared(None, x1, None, sample_shape, n, 2 * x1.size, dtype, None, shape)
    weight, has_weight = V.sample_weights(sample_weight, sample_shape, n)
    weight, wexp = L._scaled_weights(weight, has_weight)
    loss_out, write_out = L._loss_out(reduction, prep)
    g1 = g2 = v1 = v2 = None
    if want_grad:
        g1, g2 = _grads_like(shape, dtype, 2)
        v1, v2 = g1.reshape(x1.shape), g2.reshape(x1.shape)
    result = _loops.cosine_embedding(margin, y, x1, x2, weight, has_weight, loss_out,
                                     write_out, resolve_threads(n_threads, prep.n_elements),
                                     v1, v2)
    out = L._finish(result, reduction, loss_out, prep, "cosine_embedding", grad=g1,
                    grad_view=v1, wexp=wexp)
    if not want_grad:
        return out
    _scale_more(result, reduction, wexp, (v2,))
    return out[0], (g1, g2)


def cosine_embedding(y_true, input1, input2, *, margin=0.0, sample_weight=None,
                     reduction="mean", n_threads=None):
    r"""Cosine embedding loss (PyTorch's ``cosine_embedding_loss``), one value per row.

    .. math:: l = \begin{cases} 1 - \cos(x_1, x_2) & y = 1 \\
                                 \max(0, \cos(x_1, x_2) - m) & y = -1 \end{cases},
              \quad \cos = \frac{\sum x_1 x_2}
                                 {\sqrt{(\sum x_1^2 + 10^{-12})(\sum x_2^2 + 10^{-12})}}

    over the last axis (PyTorch's ``EPSILON``, 1e-12 as a float32 constant, inside the
    squared norms, so zero vectors give ``cos = 0``). Other label values give 0, as PyTorch. Argument order:
    ``(y_true, input1, input2)``; PyTorch writes ``(input1, input2, target)``. A 1-D
    input is one pair of vectors (one sample).

    Gradients (:meth:`CosineEmbedding.value_and_grad`): ``dl/dcos`` (``-1``, or 1 where
    ``cos - m >= 0`` for ``y = -1``) times ``x2 / r - cos x1 / (sum x1^2 + 1e-12)`` for
    ``input1`` (and symmetrically), ``r`` the denominator.

    Parameters
    ----------
    y_true : array_like
        Labels 1 or -1, broadcastable to the per-sample shape (the inputs' shape without
        the last axis).
    input1, input2 : array_like
        The same shape, vectors along the last axis.
    margin : float, default 0.0
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> cyloss.cosine_embedding([1.0, -1.0], [[1.0, 0.0], [1.0, 1.0]],
    ...                         [[0.0, 1.0], [1.0, 0.0]], reduction="none")
    array([1.        , 0.70710678])
    """
    return _cosine_embedding(y_true, input1, input2, margin, sample_weight, reduction,
                             n_threads)


class CosineEmbedding(L.Loss):
    """Cosine embedding loss as a Keras-style object; see :func:`cosine_embedding`.

    Called as ``loss(y_true, input1, input2, sample_weight=None)``.

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.CosineEmbedding(margin=0.5)([-1.0], [[1.0, 1.0]], [[1.0, 0.0]]), 10)
    0.2071067812
    """

    _function = staticmethod(cosine_embedding)
    _three_inputs = True   # called with three arrays (the eval command refuses it)
    _defaults = L._defaults("cosine_embedding", margin=0.0)

    def __init__(self, *, margin=0.0, reduction="mean", n_threads=None,
                 name="cosine_embedding"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         margin=check_finite(margin, "margin"))

    def __call__(self, y_true, input1, input2, sample_weight=None):
        o = self._options
        return _cosine_embedding(y_true, input1, input2, o["margin"], sample_weight,
                                 o["reduction"], o["n_threads"])

    def value_and_grad(self, y_true, input1, input2, sample_weight=None):
        """The loss and its gradients with respect to both inputs, in one pass:
        ``(value, (grad1, grad2))``."""
        o = self._options
        return _cosine_embedding(y_true, input1, input2, o["margin"], sample_weight,
                                 o["reduction"], o["n_threads"], want_grad=True)

    def grad(self, y_true, input1, input2, sample_weight=None):
        """Only the gradients of :meth:`value_and_grad`."""
        return self.value_and_grad(y_true, input1, input2, sample_weight)[1]

    def grad_hess(self, *args, **kwargs):
        raise NotImplementedError("grad_hess is not available for cosine_embedding (a "
                                  "three-input loss)")


def check_p(value):
    v = V._real(value, "p")
    if not 0.0 < v < math.inf:
        raise ValueError(f"p must be a finite number > 0; got {value!r}")
    return v


def _triplet_margin(anchor, positive, negative, margin, p, eps, swap, sample_weight,
                    reduction, n_threads, want_grad=False):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    margin = check_finite(margin, "margin")
    p = check_p(p)
    eps = check_finite(eps, "eps")
    swap = check_flag(swap, "swap")
    (a, po, ne), sample_shape, shape, dtype = _row_inputs(
        ("anchor", "positive", "negative"), (anchor, positive, negative))
    n = a.shape[0]
    prep = V.Prepared(None, a, None, sample_shape, n, 3 * a.size, dtype, None, shape)
    weight, has_weight = V.sample_weights(sample_weight, sample_shape, n)
    weight, wexp = L._scaled_weights(weight, has_weight)
    loss_out, write_out = L._loss_out(reduction, prep)
    grads = views = (None, None, None)
    if want_grad:
        grads = _grads_like(shape, dtype, 3)
        views = tuple(g.reshape(a.shape) for g in grads)
    result = _loops.triplet_margin(margin, p, eps, swap, a, po, ne, weight, has_weight,
                                   loss_out, write_out,
                                   resolve_threads(n_threads, prep.n_elements), *views)
    out = L._finish(result, reduction, loss_out, prep, "triplet_margin", grad=grads[0],
                    grad_view=views[0], wexp=wexp)
    if not want_grad:
        return out
    _scale_more(result, reduction, wexp, views[1:])
    return out[0], grads


def triplet_margin(anchor, positive, negative, *, margin=1.0, p=2.0, eps=1e-6, swap=False,
                   sample_weight=None, reduction="mean", n_threads=None):
    r"""Triplet margin loss (PyTorch's ``triplet_margin_loss``), one value per row.

    .. math:: l = \max(0, m + d(a, p) - d(a, n)), \quad
              d(u, v) = \lVert u - v + \epsilon \rVert_p

    over the last axis: ``torch.pairwise_distance``'s convention, ``eps`` added to the
    difference before the norm. With ``swap=True``, ``d(a, n)`` is replaced by
    ``min(d(a, n), d(p, n))`` (the distance swap). No targets: the arguments are
    PyTorch's ``(anchor, positive, negative)``. A 1-D input is one triplet.

    Gradients (:meth:`TripletMargin.value_and_grad`, all three inputs): the norm's
    ``sign(d) |d|^(p-1) / ||d||^(p-1)`` (0 for a zero norm), passed where
    ``m + d(a, p) - d(a, n) >= 0`` (torch.clamp_min), and ``torch.min``'s split in half
    at a tie of the swap.

    Parameters
    ----------
    anchor, positive, negative : array_like
        The same shape, vectors along the last axis.
    margin : float, default 1.0
    p : float, default 2.0
        The norm's degree, finite and ``> 0``.
    eps : float, default 1e-6
    swap : bool, default False
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> cyloss.triplet_margin([[0.0, 0.0]], [[3.0, 4.0]], [[0.0, 1.0]], eps=0.0)
    5.0
    """
    return _triplet_margin(anchor, positive, negative, margin, p, eps, swap, sample_weight,
                           reduction, n_threads)


class TripletMargin(L.Loss):
    """Triplet margin loss as a Keras-style object; see :func:`triplet_margin`.

    Called as ``loss(anchor, positive, negative, sample_weight=None)``.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.TripletMargin(p=1.0, eps=0.0, swap=True)
    >>> loss
    TripletMargin(p=1.0, eps=0.0, swap=True)
    >>> loss([[0.0, 0.0]], [[3.0, 4.0]], [[0.0, 1.0]])
    7.0
    """

    _function = staticmethod(triplet_margin)
    _three_inputs = True   # called with three arrays (the eval command refuses it)
    _defaults = L._defaults("triplet_margin", margin=1.0, p=2.0, eps=1e-6, swap=False)

    def __init__(self, *, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean",
                 n_threads=None, name="triplet_margin"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         margin=check_finite(margin, "margin"), p=check_p(p),
                         eps=check_finite(eps, "eps"), swap=check_flag(swap, "swap"))

    def _args(self):
        o = self._options
        return o["margin"], o["p"], o["eps"], o["swap"]

    def __call__(self, anchor, positive, negative, sample_weight=None):
        o = self._options
        return _triplet_margin(anchor, positive, negative, *self._args(), sample_weight,
                               o["reduction"], o["n_threads"])

    def value_and_grad(self, anchor, positive, negative, sample_weight=None):
        """The loss and its gradients with respect to the three inputs, in one pass:
        ``(value, (grad_anchor, grad_positive, grad_negative))``."""
        o = self._options
        return _triplet_margin(anchor, positive, negative, *self._args(), sample_weight,
                               o["reduction"], o["n_threads"], want_grad=True)

    def grad(self, anchor, positive, negative, sample_weight=None):
        """Only the gradients of :meth:`value_and_grad`."""
        return self.value_and_grad(anchor, positive, negative, sample_weight)[1]

    def grad_hess(self, *args, **kwargs):
        raise NotImplementedError("grad_hess is not available for triplet_margin (a "
                                  "three-input loss)")


#: Losses that ``python -m cyloss eval`` cannot cut into chunks of samples: dice and
#: tversky (their default sums over every axis) and the three-array losses.
NOT_CHUNKED = ("dice", "tversky", "margin_ranking", "gaussian_nll", "cosine_embedding",
               "triplet_margin")

LOSSES = {
    "poisson_nll": PoissonNLL,
    "hinge_embedding": HingeEmbedding,
    "dice": Dice,
    "tversky": Tversky,
    "margin_ranking": MarginRanking,
    "gaussian_nll": GaussianNLL,
    "cosine_embedding": CosineEmbedding,
    "triplet_margin": TripletMargin,
}
