"""Public loss functions and Keras-style loss classes.

Each function validates and normalises its arguments (``_validation``), calls one
compiled loop (``_loops``), and turns the loop's float64 sums into the reduction. No
function here computes a loss value itself, and no loop validates.

Reductions (the same vocabulary for every loss), with ``w_i`` the sample weight and
``l_i`` the per-sample loss:

=============================================  ==========================================
``"mean"`` (``"sum_over_batch_size"``)          ``sum w_i l_i / n_counted`` (Keras)
``"weighted_mean"`` (``"mean_with_sample_weight"``)  ``sum w_i l_i / sum w_i v_i`` (PyTorch)
``"sum"``                                        ``sum w_i l_i``
``"none"`` (or ``None``)                          the array of ``w_i l_i``
=============================================  ==========================================

``v_i`` is ``class_weight[label_i]`` for sparse cross-entropy and 1 otherwise. A zero
denominator gives ``0.0``. Reduced results are Python floats summed in float64 in a
fixed block order, so they are bitwise identical for every ``n_threads``.
"""

import math
from typing import Callable, NamedTuple

import numpy as np

from cyloss import _loops
from cyloss import _validation as V
from cyloss._openmp import resolve_threads


class Param(NamedTuple):
    """The one option of an elementwise formula."""

    name: str          # keyword of the function and the class, e.g. "delta"
    default: float
    check: Callable    # its validator in _validation (V): value -> float, or ValueError
    domain: str        # the valid values, e.g. "> 0" (docstrings, the CLI's help)
    doc: str           # what it does, for the docstring
    grid: tuple = ()   # values worth sweeping in tests, besides the default


class Example(NamedTuple):
    """A docstring example: its inputs as Python literals and the printed results."""

    y_true: str
    y_pred: str
    options: str       # keyword arguments as source text ("delta=2.0"), or ""
    value: str         # the printed mean
    per_sample: str    # the printed reduction="none" array


class Elementwise(NamedTuple):
    """One elementwise loss: l = mean_k f(e_k) over the last axis, e = y_pred - y_true."""

    function: str      # the public function (and LOSSES key), e.g. "huber"
    cls: str           # the Keras-style class, e.g. "Huber"
    kernel: str        # the kernels cyl_<kernel>{,_grad,_hess} of CYL_ELEMENTWISE
    title: str         # "Huber loss"
    summary: str       # the function's first docstring line
    formula: str       # f(e), LaTeX
    notes: str         # conventions and sources, for the docstring
    derivatives: str   # f'(e) and the Hessian convention, for the docstring
    example: Example
    param: Param | None = None
    aliases: tuple = ()
    keras: str | None = None   # the Keras 3 function computing the same, if any
    # The inputs the loss is meant for (any input is accepted; tests draw these): "real",
    # "nonnegative" (counts or sizes: y >= 0, p >= 0) or "labels" (y in {-1, 1} or
    # {0, 1}, p real).
    inputs: str = "real"
    # A _loops function that gives the kernel's parameter from the whole (validated)
    # y_true, for a rule over the whole array (hinge's label conversion); None: the
    # parameter is the option `param`, or 0.
    prepare: str | None = None


#: The elementwise losses. Each entry gives a function, a class, its LOSSES entry and
#: aliases, the names of ``cyloss`` and ``cyloss.dask``, the ``eval`` command's flag for
#: its parameter, and the test registry's case; the formula itself is the kernel triple
#: named ``kernel`` in ``_kernels.h``.
ELEMENTWISE = (
    Elementwise(
        "mean_absolute_error", "MeanAbsoluteError", "mae", "Mean absolute error",
        "Mean absolute error over the last axis.",
        r"f(e) = |e|", "",
        "``sign(e)`` (0 at ``e = 0``, as PyTorch); Hessian 1 where the exact one is 0 "
        "(scikit-learn's convention: a Newton step needs a positive Hessian).",
        Example("[0.0, 0.0]", "[1.0, -2.0]", "", "1.5", "array([1., 2.])"),
        aliases=("mae",), keras="mean_absolute_error",
    ),
    Elementwise(
        "mean_squared_error", "MeanSquaredError", "mse", "Mean squared error",
        "Mean squared error over the last axis.",
        r"f(e) = e^2", "",
        "``2 e``; Hessian 2.",
        Example("[0.0, 1.0]", "[1.0, 3.0]", "", "2.5", "array([1., 4.])"),
        aliases=("mse",), keras="mean_squared_error",
    ),
    Elementwise(
        "huber", "Huber", "huber", "Huber loss",
        "Huber loss over the last axis (Keras's ``huber``, PyTorch's ``huber_loss``).",
        r"f(e) = \begin{cases} e^2 / 2 & |e| \le \delta \\"
        r" \delta (|e| - \delta / 2) & \text{otherwise} \end{cases}",
        "",
        "``e`` where ``|e| <= delta``, else ``delta sign(e)`` (continuous); Hessian 1 "
        "where ``|e| <= delta``, else 0 (exact, as scikit-learn).",
        Example("[0.0, 0.0]", "[1.0, 4.0]", "delta=2.0", "3.25", "array([0.5, 6. ])"),
        param=Param("delta", 1.0, V.check_delta, "> 0",
                    "Where the quadratic arm meets the linear one.", grid=(0.3, 2.5)),
        keras="huber",
    ),
    Elementwise(
        "smooth_l1", "SmoothL1", "smooth_l1", "Smooth L1 loss",
        "Smooth L1 loss over the last axis (PyTorch's ``smooth_l1_loss``).",
        r"f(e) = \begin{cases} e^2 / (2 \beta) & |e| < \beta \\"
        r" |e| - \beta / 2 & \text{otherwise} \end{cases}",
        "``beta == 0`` is the L1 loss. ``huber(delta=d) / d`` equals "
        "``smooth_l1(beta=d)``.",
        "``e / beta`` where ``|e| < beta``, else ``sign(e)``; Hessian ``1 / beta`` "
        "where ``|e| < beta``, else 0, and 1 for ``beta = 0`` (L1).",
        Example("[0.0, 0.0]", "[0.5, 3.0]", "", "1.3125", "array([0.125, 2.5  ])"),
        param=Param("beta", 1.0, V.check_beta, ">= 0",
                    "Where the quadratic arm meets the linear one.", grid=(0.0, 0.5, 3.0)),
    ),
    Elementwise(
        "log_cosh", "LogCosh", "log_cosh", "Log-cosh loss",
        "Logarithm of the hyperbolic cosine of the error, over the last axis (Keras's "
        "``log_cosh``).",
        r"f(e) = \log \cosh e",
        "About ``e^2 / 2`` for small errors and ``|e| - log 2`` for large ones. Computed "
        "as ``|e| + log1p(exp(-2 |e|)) - log 2`` (Keras's form, which never overflows) "
        "for ``|e| >= 1/8`` and by its Taylor series below, where that form cancels.",
        "``tanh(e)`` (``+-1`` for infinite errors); Hessian ``1 - tanh(e)^2``.",
        Example("[0.0, 0.0]", "[1.0, -2.0]", "", "0.8793917889204459",
                "array([0.43378083, 1.32500275])"),
        keras="log_cosh",
    ),
    Elementwise(
        "poisson", "Poisson", "poisson", "Poisson loss",
        "Poisson loss over the last axis (Keras's ``poisson``).",
        r"f = p - y \log(p + \epsilon), \quad \epsilon = 10^{-7}",
        "Keras's form, with its ``epsilon = 1e-7`` inside the logarithm; meant for counts "
        "``y >= 0`` and rates ``p >= 0``. Other input gives what Keras gives (NaN for "
        "``p < -epsilon``). PyTorch's ``poisson_nll_loss(log_input=False)`` is "
        "``p - y log(p + eps)`` with ``eps = 1e-8``.",
        "``1 - y / (p + epsilon)``; Hessian ``y / (p + epsilon)^2``.",
        Example("[1.0, 2.0]", "[0.5, 2.0]", "", "0.9034262597200386",
                "array([1.19314698, 0.61370554])"),
        keras="poisson", inputs="nonnegative",
    ),
    Elementwise(
        "mean_absolute_percentage_error", "MeanAbsolutePercentageError", "mape",
        "Mean absolute percentage error",
        "Mean absolute percentage error over the last axis (Keras's "
        "``mean_absolute_percentage_error``).",
        r"f = 100 \, |p - y| / \max(|y|, \epsilon), \quad \epsilon = 10^{-7}",
        "Keras's form: ``max`` keeps a zero target finite (and lets NaN through).",
        "``100 sign(e) / max(|y|, epsilon)`` (0 at ``e = 0``, as MAE); Hessian "
        "``100 / max(|y|, epsilon)`` where the exact one is 0 (MAE's convention).",
        Example("[2.0, -4.0]", "[1.0, -5.0]", "", "37.5", "array([50., 25.])"),
        aliases=("mape",), keras="mean_absolute_percentage_error",
    ),
    Elementwise(
        "mean_squared_logarithmic_error", "MeanSquaredLogarithmicError", "msle",
        "Mean squared logarithmic error",
        "Mean squared logarithmic error over the last axis (Keras's "
        "``mean_squared_logarithmic_error``).",
        r"f = \left(\log(1 + \max(p, \epsilon)) - \log(1 + \max(y, \epsilon))\right)^2,"
        r" \quad \epsilon = 10^{-7}",
        "Keras's form: values below ``epsilon`` (negative ones included) count as "
        "``epsilon``. The logarithms are ``log1p``, where Keras rounds ``1 + x`` first.",
        "``2 d / (1 + p)`` with ``d`` the difference of logarithms, where "
        "``p >= epsilon``, and 0 where the clip holds ``p``; Hessian "
        "``2 (1 - d) / (1 + p)^2`` there, 0 where clipped.",
        Example("[0.0, 3.0]", "[1.0, 1.0]", "", "0.48045294460349186",
                "array([0.48045288, 0.48045301])"),
        aliases=("msle",), keras="mean_squared_logarithmic_error", inputs="nonnegative",
    ),
    Elementwise(
        "hinge", "Hinge", "hinge", "Hinge loss",
        "Hinge loss over the last axis (Keras's ``hinge``).",
        r"f = \max(1 - t p, 0)",
        "``t`` is ``y``, or ``2 y - 1`` when every value of ``y_true`` is 0 or 1: Keras's "
        "rule (``convert_binary_labels_to_hinge``), decided over the whole array (over all "
        "chunks in ``cyloss.dask`` and ``python -m cyloss eval``; per batch in an "
        "``Accumulator``, as in a Keras metric). ""So labels of 0 and 1 only are read as -1 and 1, while labels holding -1, 0 and 1 "
        "keep their 0s (which give ``f = 1``).",
        "``-t`` where ``1 - t p > 0``, else 0 (0 at the kink too, as ``torch.relu``); "
        "Hessian 0 (exact: the loss is piecewise linear).",
        Example("[0.0, 1.0]", "[0.5, -2.0]", "", "2.25", "array([1.5, 3. ])"),
        keras="hinge", inputs="labels", prepare="binary_labels",
    ),
    Elementwise(
        "squared_hinge", "SquaredHinge", "squared_hinge", "Squared hinge loss",
        "Squared hinge loss over the last axis (Keras's ``squared_hinge``).",
        r"f = \max(1 - t p, 0)^2",
        "``t`` is ``y``, or ``2 y - 1`` when every value of ``y_true`` is 0 or 1: Keras's "
        "rule (``convert_binary_labels_to_hinge``), decided over the whole array (over all "
        "chunks in ``cyloss.dask`` and ``python -m cyloss eval``; per batch in an "
        "``Accumulator``, as in a Keras metric). ",
        "``-2 t max(1 - t p, 0)``; Hessian ``2 t^2`` where ``1 - t p > 0``, else 0 "
        "(0 at the kink).",
        Example("[-1.0, 1.0]", "[0.5, 2.0]", "", "1.125", "array([2.25, 0.  ])"),
        keras="squared_hinge", inputs="labels", prepare="binary_labels",
    ),
)

__all__ = [
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "kl_divergence",
    "nll",
    "nll_loss",
    "categorical_hinge",
    "cosine_similarity",
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "sparse_categorical_focal_crossentropy",
    "multilabel_soft_margin",
    *(e.function for e in ELEMENTWISE),
    *(a for e in ELEMENTWISE for a in e.aliases),
    "Loss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalFocalCrossentropy",
    "SparseCategoricalFocalCrossentropy",
    "MultilabelSoftMargin",
    "KLDivergence",
    "NegativeLogLikelihood",
    "CategoricalHinge",
    "CosineSimilarity",
    *(e.cls for e in ELEMENTWISE),
    "ctc",
    "CTC",
    "ELEMENTWISE",
    "LOSSES",
    "get",
    "value_and_grad",
    "grad",
    "grad_hess",
]


def _loss_out(reduction, prep):
    if reduction == "none":
        return np.empty(prep.n_samples, dtype=prep.dtype), True
    return None, False


def reduce_sums(num, den, count, reduction):
    """The reduction of float64 sums ``(num, den, count)`` (see the module docstring)."""
    if reduction == "sum":
        return float(num)
    if reduction == "mean":
        return float(num / count) if count else 0.0
    if reduction == "weighted_mean":
        return float(num / den) if den != 0.0 else 0.0
    raise ValueError(f"reduction {reduction!r} cannot be computed from sums")


def _finish(result, reduction, loss_out, prep, loss_name, ignore_index=None, *,
            grad=None, grad_view=None, hess=None, hess_view=None, wexp=0, grad_scale=1.0):
    """The loop's result as the caller's value, or ``(value, grad)`` when a gradient was
    requested (``grad`` the array returned, ``grad_view`` its loop-layout view), or
    ``(value, grad, hess)`` with the Hessian diagonal."""
    num, den, count, err, err_i, err_k = result
    if err:
        V.raise_data_error(err, err_i, err_k, prep, loss_name, ignore_index)
    scaled_den = den
    if wexp:
        with np.errstate(over="ignore", under="ignore"):
            num, den = float(np.ldexp(num, wexp)), float(np.ldexp(den, wexp))
            if loss_out is not None:
                np.ldexp(loss_out, wexp, out=loss_out)
    if reduction == "none":
        value = loss_out.reshape(prep.sample_shape)
    elif reduction is V.PARTIAL:
        value = float(num), float(den), int(count)
    else:
        value = reduce_sums(num, den, count, reduction)
    if grad is None:
        return value
    divisor, exponent = _grad_divisor(scaled_den, count, reduction, wexp)
    if grad_scale == 1.0:   # else the loop applied 1 / divisor (see _grad_prescale)
        _scale(grad_view, divisor, exponent)
    if hess is None:
        return value, grad
    _scale(hess_view, divisor, exponent)
    return value, grad, hess


# A derivative request: None (not wanted), or _GRAD / an array (wanted, the array being
# the caller's grad_out or hess_out).
_GRAD = object()


def _grad_prescale(reduction, count, grad_request, hess_request, wexp, plain):
    """1 / the reduction's divisor when it is known before the loop, else 1.0.

    The row loops then apply it to each gradient element as they write it, and _finish
    skips its second sweep over the gradient (a read and a write of an input-sized array).
    ``count`` is the number of samples the loop will count (the caller takes ignored labels
    out of it). Known up front: "mean" (divided by that count) and, when ``plain`` (no
    sample or class weights), "weighted_mean" (whose divisor is then the count too).
    With extreme weights (wexp) "mean" and "sum" fold their exponent in too; the other
    cases keep the sweep, which applies it."""
    if grad_request is None or hess_request is not None or count == 0:
        return 1.0
    if wexp:
        # Weights scaled by 2**-wexp: the loop multiplies each scaled weight by 2**wexp /
        # count in double, so a small weight's element never passes through the compute
        # dtype's subnormals (float32's end at 1e-38) on its way to w_i dl_i / count.
        if abs(wexp) > 1000 or reduction not in ("mean", "sum"):
            return 1.0
        return math.ldexp(1.0, wexp) / (count if reduction == "mean" else 1)
    if not plain:
        return 1.0
    if reduction == "mean" or reduction == "weighted_mean":
        return 1.0 / count
    return 1.0


def _grad_divisor(scaled_den, count, reduction, wexp):
    """(d, e): the loop's per-element derivatives of sum_i w_i l_i, computed with weights
    scaled by 2**-wexp, become the gradient of the reduction as (g / d) * 2**e."""
    if reduction == "mean":
        return float(count), wexp
    if reduction == "weighted_mean":
        return scaled_den, 0
    return 1.0, wexp


def _scale(view, divisor, exponent=0):
    """view = view / divisor * 2**exponent (a zero divisor gives zeros, as the value's
    0 / 0 := 0).

    The power of two of the divisor is merged with ``exponent`` and applied first, exactly
    (np.ldexp), and the reciprocal of its mantissa, in (1, 2], last: dividing first would take
    elements that extreme sample weights scaled down (``exponent`` > 0) into the
    subnormal range, where they lose digits before ldexp scales them back."""
    if divisor == 0.0:
        view[...] = 0
        return
    mantissa, power = math.frexp(divisor)   # inf and NaN: (inf or NaN, 0)
    if mantissa == 0.5:
        # A power-of-two divisor ("sum" divides by 1): one exact ldexp, or nothing.
        shift = exponent - power + 1
        if shift:
            with np.errstate(over="ignore", under="ignore"):
                np.ldexp(view, shift, out=view)
        return
    shift = exponent - power
    # over / under: results out of range; invalid: an infinite weight makes both an
    # element and the divisor infinite, and its gradient NaN (as the value's inf / inf).
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if shift:
            np.ldexp(view, shift, out=view)
        view *= 1.0 / mantissa   # in (1, 2); 0 for an infinite divisor, NaN for NaN


def _scaled_weights(weight, has_weight):
    """Sample weights for a loop, and the exponent k they were scaled by.

    Weights far from 1 (beyond 2**+-60) are scaled by 2**-k first, which is exact, so that
    neither the products w_i l_i nor the gradient's w_i dl_i/dp (rounded to the compute
    dtype before the reduction's 1 / den) overflow or lose digits to subnormals; every sum
    the loop returns is then 2**-k times the exact one, and _finish takes it back."""
    if not has_weight or weight.size == 0:
        return weight, 0
    top = float(np.max(np.abs(weight)))
    if not np.isfinite(top) or top == 0.0 or 2.0**-60 <= top <= 2.0**60:
        return weight, 0
    k = int(np.frexp(top)[1])
    return np.ldexp(weight, -k), k


def _buffers(grad_request, hess_request, prep):
    """(grad, grad_view, hess, hess_view) for the requests (see V.grad_buffer)."""
    grad = grad_view = hess = hess_view = None
    if grad_request is not None:
        grad, grad_view = V.grad_buffer(None if grad_request is _GRAD else grad_request,
                                        prep)
    if hess_request is not None:
        hess, hess_view = V.grad_buffer(None if hess_request is _GRAD else hess_request,
                                        prep, "hess_out")
        if grad is not None and np.shares_memory(grad, hess):
            raise ValueError("grad_out and hess_out must not share memory")
    return grad, grad_view, hess, hess_view


# Kind -> the _loops function giving the parameter of a loss whose entry has `prepare`.
_PREPARE = {}


def _elementwise(kind, param, y_true, y_pred, sample_weight, reduction, n_threads,
                 grad_request=None, hess_request=None):
    """``param`` None: the parameter comes from the whole of ``y_true`` (``_PREPARE``);
    chunked callers that must decide it over all chunks pass it instead."""
    if (param is not None and sample_weight is None and grad_request is None and hess_request is None
            and (reduction == "mean" or reduction == "sum") and type(reduction) is str):
        # Small plain calls skip the Python-side preparation (same bits; None when the
        # call is not one of them).
        value = _loops.regression_quick(kind, param, y_true, y_pred, reduction == "mean",
                                        n_threads)
        if value is not None:
            return value
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    prep = V.elementwise(y_true, y_pred)
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = _scaled_weights(weight, has_weight)
    loss_out, write_out = _loss_out(reduction, prep)
    grad, grad_view, hess, hess_view = _buffers(grad_request, hess_request, prep)
    if param is None:
        param = _PREPARE[kind](prep.y_true, resolve_threads(n_threads, prep.n_elements))
    grad_scale = _grad_prescale(reduction, prep.n_samples, grad_request, hess_request, wexp,
                                reduction == "mean" or not has_weight)
    result = _loops.regression(
        kind, param, prep.y_true, prep.y_pred, weight, has_weight, loss_out, write_out,
        resolve_threads(n_threads, prep.n_elements), grad_view,
        hess_view, grad_scale,
    )
    return _finish(result, reduction, loss_out, prep, "regression", grad=grad,
                   grad_view=grad_view, hess=hess, hess_view=hess_view, wexp=wexp,
                   grad_scale=grad_scale)


def _param_of(kind, y_true, y_pred):
    """The parameter that the loss ``kind`` (an entry with ``prepare``) takes from
    ``y_true``: chunked callers (``cyloss.dask``, the ``eval`` command) ask each chunk,
    and the smallest answer is the whole array's (the hinge rule holds only when it holds
    in every chunk)."""
    return float(_PREPARE[kind](V.elementwise(y_true, y_pred).y_true))


def _with_param(kind, param, y_true, y_pred, *, sample_weight=None, reduction="mean",
                n_threads=None):
    """The elementwise loss ``kind`` with its parameter given, as the chunked callers
    call it once they have decided a ``prepare`` parameter over all chunks."""
    return _elementwise(kind, param, y_true, y_pred, sample_weight, reduction, n_threads)


# --- functions ----------------------------------------------------------------------------

def categorical_crossentropy(
    y_true, y_pred, *, from_logits=False, label_smoothing=0.0, axis=-1,
    sample_weight=None, reduction="mean", epsilon=1e-7, n_threads=None,
):
    r"""Categorical cross-entropy between one-hot (or soft) targets and predictions.

    .. math:: l = -\sum_c y_c \log p_c

    over the class axis, with ``y <- y (1 - s) + s / C`` for ``label_smoothing = s``.
    From probabilities (Keras): ``p <- p / sum_c p``, then clipped to
    ``[epsilon, 1 - epsilon]`` (in double for every dtype). From logits:
    ``l = sum_c y_c (logsumexp(x) - x_c)`` with the row maximum subtracted first and a
    zero target contributing 0 even against a ``-inf`` logit. A row whose only
    ``+inf`` logit is the target gives 0; with ``t`` logits at ``+inf`` the classes among
    them get ``log t`` (the limit) and the others ``inf``, where PyTorch and Keras give
    NaN.

    Parameters
    ----------
    y_true : array_like
        Targets in ``[0, 1]``, same shape as ``y_pred``.
    y_pred : array_like
        Probabilities (non-negative rows with a positive sum) or logits.
    from_logits : bool, default False
    label_smoothing : float in [0, 1], default 0
    axis : int, default -1
        The class axis; any axis is read in place.
    sample_weight : array_like, optional
        Broadcast to the per-sample shape (``y_pred.shape`` without ``axis``).
    reduction : {"mean", "weighted_mean", "sum", "none"} or an alias, default "mean"
    epsilon : float in (0, 0.5), default 1e-7
    n_threads : int or None
        ``None``: OpenMP's limit capped at the physical cores, serial for small inputs;
        ``k > 0``: ``k`` threads; ``-1``: every core. The result does not depend on it.

    Returns
    -------
    float or ndarray
        A Python float, or for ``reduction="none"`` the per-sample losses in the
        compute dtype.

    Raises
    ------
    ValueError
        Shape mismatch, bad ``axis`` or option, targets outside [0, 1], negative
        probabilities or an all-zero row (probability input).
    TypeError
        Non-numeric input.

    Examples
    --------
    >>> import cyloss
    >>> y_true = [[0, 1, 0], [0, 0, 1]]
    >>> y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    >>> round(cyloss.categorical_crossentropy(y_true, y_pred), 7)
    1.1769392
    >>> cyloss.categorical_crossentropy(y_true, [[0., 9., 0.], [0., 0., 9.]],
    ...                                 from_logits=True, reduction="none").round(6)
    array([0.000247, 0.000247])
    """
    return _categorical(y_true, y_pred, from_logits, label_smoothing, axis, sample_weight,
                        reduction, epsilon, n_threads)


def _categorical(y_true, y_pred, from_logits, label_smoothing, axis, sample_weight,
                 reduction, epsilon, n_threads, grad_request=None, hess_request=None):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    from_logits = V.check_from_logits(from_logits)
    smoothing = V.check_label_smoothing(label_smoothing)
    epsilon = V.check_epsilon(epsilon)
    prep = V.categorical(y_true, y_pred, V.check_axis(axis))
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = _scaled_weights(weight, has_weight)
    lo, hi = V.clip_bounds(epsilon)
    loss_out, write_out = _loss_out(reduction, prep)
    grad, grad_view, hess, hess_view = _buffers(grad_request, hess_request, prep)
    grad_scale = _grad_prescale(reduction, prep.n_samples, grad_request, hess_request, wexp,
                                reduction == "mean" or not has_weight)
    result = _loops.categorical(
        prep.y_true, prep.y_pred, weight, has_weight, from_logits, smoothing, lo, hi,
        loss_out, write_out, resolve_threads(n_threads, prep.n_elements), grad_view,
        hess_view, grad_scale,
    )
    return _finish(result, reduction, loss_out, prep, "categorical_crossentropy",
                   grad=grad, grad_view=grad_view,
                   hess=hess, hess_view=hess_view, wexp=wexp, grad_scale=grad_scale)


def sparse_categorical_crossentropy(
    y_true, y_pred, *, from_logits=False, axis=-1, ignore_index=None, class_weight=None,
    label_smoothing=0.0, sample_weight=None, reduction="mean", epsilon=1e-7,
    n_threads=None,
):
    r"""Cross-entropy against integer class labels.

    .. math:: l = -\sum_c w_c q_c \log p_c, \quad
              q_c = (1 - s)[c = \mathrm{label}] + s / C

    which is ``-log p_label`` without options. ``w`` is ``class_weight`` (PyTorch's
    ``weight=``; all ones when absent). From logits it is computed in closed form,
    ``(1 - s)(lse - x_label) + s (lse - mean_c x_c)`` without class weights, never
    building a one-hot or log-probability row. Probabilities are renormalised and
    clipped as in :func:`categorical_crossentropy`.

    Parameters
    ----------
    y_true : array_like of int
        Labels in ``[0, C)``, shaped like ``y_pred`` without the class axis (or with a
        class axis of size 1). Float labels are accepted when every value is an exact
        integer.
    y_pred : array_like
        Probabilities or logits with the classes on ``axis``.
    from_logits : bool, default False
    axis : int, default -1
    ignore_index : int, optional
        Samples with this label contribute 0 and are not counted (PyTorch).
    class_weight : array_like of shape (C,), optional
        Non-negative per-class weights. With ``reduction="weighted_mean"`` sample ``i``
        counts with ``sample_weight_i * class_weight[label_i]``: PyTorch's ``mean``.
    label_smoothing : float in [0, 1], default 0
    sample_weight, reduction, epsilon, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray
        Ignored samples hold 0 in ``reduction="none"``.

    Raises
    ------
    ValueError
        Labels outside ``[0, C)`` (other than ``ignore_index``), non-integer or
        non-finite float labels, shape mismatch, bad options, negative probabilities or
        an all-zero row (probability input).

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.sparse_categorical_crossentropy([1, 2], [[0.05, 0.95, 0],
    ...                                                      [0.1, 0.8, 0.1]]), 7)
    1.1769392
    >>> logits = [[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    >>> round(cyloss.sparse_categorical_crossentropy([0, -100], logits, from_logits=True,
    ...                                              ignore_index=-100), 6)
    0.239545
    """
    return _sparse(y_true, y_pred, from_logits, axis, ignore_index, class_weight,
                   label_smoothing, sample_weight, reduction, epsilon, n_threads)


def _sparse(y_true, y_pred, from_logits, axis, ignore_index, class_weight, label_smoothing,
            sample_weight, reduction, epsilon, n_threads, grad_request=None,
            hess_request=None, log_probs=False):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    from_logits = V.check_from_logits(from_logits)
    smoothing = V.check_label_smoothing(label_smoothing)
    epsilon = V.check_epsilon(epsilon)
    ignore_index = V.check_ignore_index(ignore_index)
    class_weight = V.check_class_weight(class_weight)
    prep = V.sparse(y_true, y_pred, V.check_axis(axis))
    cw, has_cw = V.class_weights(class_weight, prep.y_pred.shape[1])
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = _scaled_weights(weight, has_weight)
    lo, hi = V.clip_bounds(epsilon)
    loss_out, write_out = _loss_out(reduction, prep)
    grad, grad_view, hess, hess_view = _buffers(grad_request, hess_request, prep)
    counted = prep.n_samples
    if (ignore_index is not None and grad_request is not None
            and (reduction == "mean" or reduction == "weighted_mean")):
        # The loop's count, from the labels alone (n reads against the gradient's n * C
        # writes), so that 1 / count is applied in the loop (PyTorch's default
        # ignore_index=-100 would otherwise always cost a sweep over the gradient).
        counted -= int(np.count_nonzero(prep.labels == ignore_index))
    grad_scale = _grad_prescale(reduction, counted, grad_request, hess_request, wexp,
                                reduction == "mean" or not (has_weight or has_cw))
    result = _loops.sparse(
        prep.labels, prep.y_pred, weight, has_weight, cw, has_cw,
        ignore_index is not None, ignore_index if ignore_index is not None else 0,
        from_logits, smoothing, lo, hi,
        loss_out, write_out, resolve_threads(n_threads, prep.n_elements), grad_view,
        hess_view, grad_scale, log_probs,
    )
    return _finish(result, reduction, loss_out, prep,
                   "nll" if log_probs else "sparse_categorical_crossentropy", ignore_index,
                   grad=grad, grad_view=grad_view, hess=hess, hess_view=hess_view,
                   wexp=wexp, grad_scale=grad_scale)


def binary_crossentropy(
    y_true, y_pred, *, from_logits=False, label_smoothing=0.0, pos_weight=None,
    sample_weight=None, reduction="mean", epsilon=1e-7, n_threads=None,
):
    r"""Binary cross-entropy, averaged over the last axis.

    .. math:: l = \mathrm{mean}_k \left[-(w_k y \log p + (1 - y) \log(1 - p))\right]

    with ``y <- y (1 - s) + s / 2`` for ``label_smoothing = s`` and ``w`` the
    ``pos_weight`` (PyTorch's; 1 when absent). Probabilities are clipped to
    ``[epsilon, 1 - epsilon]``. From logits,
    ``l = w y softplus(-x) + (1 - y) softplus(x)``, which equals PyTorch's
    ``(1 - y) x + (1 + (w - 1) y) softplus(-x)``; infinite logits give the limit
    (0 or inf), never NaN.

    Parameters
    ----------
    y_true : array_like
        Targets in ``[0, 1]``, same shape as ``y_pred`` (a trailing axis of 1 on one side
        is squeezed). A 1-D input is ``n`` samples of one output each.
    y_pred : array_like
        Probabilities in ``[0, 1]`` or logits.
    from_logits : bool, default False
    label_smoothing : float in [0, 1], default 0
    pos_weight : float or array_like, optional
        Non-negative weight of the positive term, broadcast to the last axis.
    sample_weight, reduction, epsilon, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Raises
    ------
    ValueError
        ``y_pred`` outside [0, 1] without ``from_logits=True``, targets outside [0, 1],
        shape mismatch, bad options.

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.binary_crossentropy([[0], [1]], [[0.4], [0.6]]), 7)
    0.5108256
    >>> float(cyloss.binary_crossentropy([1.0, 0.0], [float("inf"), float("-inf")],
    ...                                  from_logits=True))
    0.0
    """
    return _binary(y_true, y_pred, from_logits, label_smoothing, pos_weight, sample_weight,
                   reduction, epsilon, n_threads)


def _binary(y_true, y_pred, from_logits, label_smoothing, pos_weight, sample_weight,
            reduction, epsilon, n_threads, grad_request=None, hess_request=None,
            loss_name="binary_crossentropy"):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    from_logits = V.check_from_logits(from_logits)
    smoothing = V.check_label_smoothing(label_smoothing)
    epsilon = V.check_epsilon(epsilon)
    pos_weight = V.check_pos_weight(pos_weight)
    prep = V.elementwise(y_true, y_pred)
    pw = V.pos_weights(pos_weight, prep.y_pred.shape[1])
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = _scaled_weights(weight, has_weight)
    lo, hi = V.clip_bounds(epsilon)
    loss_out, write_out = _loss_out(reduction, prep)
    grad, grad_view, hess, hess_view = _buffers(grad_request, hess_request, prep)
    grad_scale = _grad_prescale(reduction, prep.n_samples, grad_request, hess_request, wexp,
                                reduction == "mean" or not has_weight)
    result = _loops.binary(
        prep.y_true, prep.y_pred, weight, has_weight, pw, from_logits, smoothing, lo, hi,
        loss_out, write_out, resolve_threads(n_threads, prep.n_elements), grad_view,
        hess_view, grad_scale,
    )
    return _finish(result, reduction, loss_out, prep, loss_name, grad=grad,
                   grad_view=grad_view, hess=hess, hess_view=hess_view, wexp=wexp,
                   grad_scale=grad_scale)


def _no_hessian(name, why="use value_and_grad or grad (Hessians are provided for the "
                           "cross-entropies from logits and the elementwise losses)"):
    """The error of grad_hess for a loss that has no Hessian loop."""
    raise NotImplementedError(f"grad_hess is not available for {name}: {why}")


# --- focal losses and multilabel soft margin -----------------------------------------------

_FOCAL_NO_HESSIAN = ("the focal factor's second derivative has no loop (value_and_grad "
                     "and grad are)")


def binary_focal_crossentropy(
    y_true, y_pred, *, apply_class_balancing=False, alpha=0.25, gamma=2.0,
    from_logits=False, label_smoothing=0.0, sample_weight=None, reduction="mean",
    epsilon=1e-7, n_threads=None,
):
    r"""Binary focal cross-entropy (Keras 3's ``binary_focal_crossentropy``), averaged over
    the last axis.

    .. math:: l = \mathrm{mean}_k \left[ a\, (1 - p_t)^\gamma\,
              \left(-(y \log p + (1 - y) \log(1 - p))\right) \right]

    with ``y <- y (1 - s) + s / 2`` for ``label_smoothing = s``,
    ``p_t = y p + (1 - y)(1 - p)``, and ``a = alpha y + (1 - alpha)(1 - y)`` when
    ``apply_class_balancing`` (else 1). As Keras, probabilities are clipped to
    ``[epsilon, 1 - epsilon]`` inside the logarithms while ``p_t`` takes the unclipped
    ``p``; ``1 - p_t`` is computed as ``y (1 - p) + (1 - y) p``, without Keras's
    cancellation. From logits (no clipping, unlike Keras, which clips ``sigmoid(x)``):
    the cross-entropy is ``y softplus(-x) + (1 - y) softplus(x)`` and ``1 - p_t`` is
    ``y sigmoid(-x) + (1 - y) sigmoid(x)`` (no cancellation), taken in log space where
    ``|x| > 708``, so ``|x| = 1e4`` neither overflows nor underflows the focal factor, and
    infinite logits give the limits (0 or inf). ``gamma = 0`` without balancing is
    :func:`binary_crossentropy`.

    Parameters
    ----------
    y_true, y_pred : array_like
        As in :func:`binary_crossentropy`.
    apply_class_balancing : bool, default False
        Weight the positive term by ``alpha`` and the negative one by ``1 - alpha``.
    alpha : float in [0, 1], default 0.25
        Used only with ``apply_class_balancing`` (Keras's convention; torchvision's
        ``sigmoid_focal_loss`` always applies its ``alpha``).
    gamma : float >= 0, default 2.0
        The focusing parameter.
    from_logits : bool, default False
    label_smoothing : float in [0, 1], default 0
    sample_weight, reduction, epsilon, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Raises
    ------
    ValueError
        ``y_pred`` outside [0, 1] without ``from_logits=True``, targets outside [0, 1],
        shape mismatch, bad options.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.binary_focal_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]],
    ...                                  reduction="none").round(6)
    array([0.329865, 0.205798])
    """
    return _binary_focal(y_true, y_pred, True, apply_class_balancing, alpha, gamma,
                         from_logits, label_smoothing, None, sample_weight, reduction,
                         epsilon, n_threads, "binary_focal_crossentropy")


def multilabel_soft_margin(
    y_true, y_pred, *, class_weight=None, sample_weight=None, reduction="mean",
    n_threads=None,
):
    r"""Multilabel soft margin loss (PyTorch's ``multilabel_soft_margin_loss``).

    .. math:: l = \mathrm{mean}_k \left[-w_k \left(y_k \log \sigma(x_k)
              + (1 - y_k) \log \sigma(-x_k)\right)\right]

    over the last axis, ``x`` logits and ``w`` the ``class_weight`` (PyTorch's
    ``weight=``; all ones when absent). Per sample this is exactly
    :func:`binary_crossentropy` with ``from_logits=True`` (``softplus`` form, infinite
    logits give 0 or inf), and it runs binary cross-entropy's loop: without
    ``class_weight`` the same call, with it the binary family's general loop with the
    weight on both terms.

    Parameters
    ----------
    y_true : array_like
        Targets in ``[0, 1]``, same shape as ``y_pred``. Argument order is Keras's
        ``(y_true, y_pred)``, the reverse of PyTorch's ``(input, target)``.
    y_pred : array_like
        Logits. As everywhere in cyloss a 1-D input is ``n`` samples of one class
        each (PyTorch reads a 1-D input as one sample of ``C`` classes).
    class_weight : array_like of shape (C,), optional
        Non-negative weight per class (the last axis).
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`. ``reduction="mean"`` is PyTorch's
        default ``"mean"``.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.multilabel_soft_margin([[1.0, 0.0]], [[0.0, 0.0]]), 6)
    0.693147
    >>> round(cyloss.multilabel_soft_margin([[1.0, 0.0]], [[2.0, -1.0]],
    ...                                     class_weight=[1.0, 3.0]), 6)
    0.533357
    """
    return _multilabel(y_true, y_pred, class_weight, sample_weight, reduction, n_threads)


def _multilabel(y_true, y_pred, class_weight, sample_weight, reduction, n_threads,
                grad_request=None, hess_request=None):
    class_weight = V.check_class_weight(class_weight)
    if class_weight is None:
        return _binary(y_true, y_pred, True, 0.0, None, sample_weight, reduction, 1e-7,
                       n_threads, grad_request, hess_request,
                       loss_name="multilabel_soft_margin")
    return _binary_focal(y_true, y_pred, False, False, 0.0, 0.0, True, 0.0, class_weight,
                         sample_weight, reduction, 1e-7, n_threads, "multilabel_soft_margin",
                         grad_request, hess_request)


def _binary_focal(y_true, y_pred, focal, balance, alpha, gamma, from_logits,
                  label_smoothing, class_weight, sample_weight, reduction, epsilon,
                  n_threads, loss_name, grad_request=None, hess_request=None):
    if focal and hess_request is not None:
        _no_hessian(loss_name, _FOCAL_NO_HESSIAN)
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    balance = V.check_apply_class_balancing(balance)
    alpha = V.check_alpha(alpha)
    gamma = V.check_gamma(gamma)
    from_logits = V.check_from_logits(from_logits)
    smoothing = V.check_label_smoothing(label_smoothing)
    epsilon = V.check_epsilon(epsilon)
    prep = V.elementwise(y_true, y_pred)
    if class_weight is None:
        cw = V.pos_weights(None, prep.y_pred.shape[1])
    else:
        cw, _ = V.class_weights(class_weight, prep.y_pred.shape[1])
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = _scaled_weights(weight, has_weight)
    lo, hi = V.clip_bounds(epsilon)
    loss_out, write_out = _loss_out(reduction, prep)
    grad, grad_view, hess, hess_view = _buffers(grad_request, hess_request, prep)
    grad_scale = _grad_prescale(reduction, prep.n_samples, grad_request, hess_request, wexp,
                                reduction == "mean" or not has_weight)
    result = _loops.binary_focal(
        prep.y_true, prep.y_pred, weight, has_weight, cw, focal, gamma, alpha, balance,
        from_logits, smoothing, lo, hi, loss_out, write_out,
        resolve_threads(n_threads, prep.n_elements), grad_view, hess_view, grad_scale,
    )
    return _finish(result, reduction, loss_out, prep, loss_name, grad=grad,
                   grad_view=grad_view, hess=hess, hess_view=hess_view, wexp=wexp,
                   grad_scale=grad_scale)


def categorical_focal_crossentropy(
    y_true, y_pred, *, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
    axis=-1, sample_weight=None, reduction="mean", epsilon=1e-7, n_threads=None,
):
    r"""Categorical focal cross-entropy (Keras 3's ``categorical_focal_crossentropy``).

    .. math:: l = -\alpha \sum_c y_c (1 - p_c)^\gamma \log p_c

    over the class axis, with ``y <- y (1 - s) + s / C`` for ``label_smoothing = s``.
    From probabilities (Keras): ``p <- p / sum_c p``, clipped to
    ``[epsilon, 1 - epsilon]``, used in both factors. From logits (no clipping, unlike
    Keras, which clips the softmax): ``-log p_c`` is the stable log-softmax of
    :func:`categorical_crossentropy` and ``1 - p_c = -expm1(log p_c)``, accurate when
    ``p_c`` is near 1. ``gamma = 0`` is ``alpha`` times :func:`categorical_crossentropy`.

    Parameters
    ----------
    y_true : array_like
        Targets in ``[0, 1]``, same shape as ``y_pred``.
    y_pred : array_like
        Probabilities (non-negative rows with a positive sum) or logits.
    alpha : float in [0, 1], default 0.25
        A factor on the whole loss (Keras).
    gamma : float >= 0, default 2.0
    from_logits : bool, default False
    label_smoothing : float in [0, 1], default 0
    axis : int, default -1
    sample_weight, reduction, epsilon, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> losses = cyloss.categorical_focal_crossentropy([[0, 1, 0], [0, 0, 1]],
    ...     [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], reduction="none")
    >>> [f"{v:.6g}" for v in losses]
    ['3.20583e-05', '0.466273']
    """
    return _focal_rows(False, y_true, y_pred, alpha, gamma, from_logits, label_smoothing,
                       axis, None, None, sample_weight, reduction, epsilon, n_threads)


def sparse_categorical_focal_crossentropy(
    y_true, y_pred, *, alpha=0.25, gamma=2.0, from_logits=False, axis=-1,
    ignore_index=None, class_weight=None, label_smoothing=0.0, sample_weight=None,
    reduction="mean", epsilon=1e-7, n_threads=None,
):
    r"""Focal cross-entropy against integer class labels.

    .. math:: l = -\alpha \sum_c w_c q_c (1 - p_c)^\gamma \log p_c, \quad
              q_c = (1 - s)[c = \mathrm{label}] + s / C

    :func:`categorical_focal_crossentropy` with the (smoothed) one-hot target of the
    label, so ``-alpha (1 - p_label)^gamma log p_label`` without options; ``w`` the
    ``class_weight`` (all ones when absent). Keras 3 has no sparse focal loss; the
    options, labels, ``ignore_index`` and reductions are those of
    :func:`sparse_categorical_crossentropy`.

    Parameters
    ----------
    y_true : array_like of int
        Labels in ``[0, C)`` (as in :func:`sparse_categorical_crossentropy`).
    y_pred : array_like
        Probabilities or logits with the classes on ``axis``.
    alpha, gamma
        As in :func:`categorical_focal_crossentropy`.
    from_logits, axis, ignore_index, class_weight, label_smoothing
        As in :func:`sparse_categorical_crossentropy`.
    sample_weight, reduction, epsilon, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> losses = cyloss.sparse_categorical_focal_crossentropy([1, 2],
    ...     [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], reduction="none")
    >>> [f"{v:.6g}" for v in losses]
    ['3.20583e-05', '0.466273']
    """
    return _focal_rows(True, y_true, y_pred, alpha, gamma, from_logits, label_smoothing,
                       axis, ignore_index, class_weight, sample_weight, reduction, epsilon,
                       n_threads)


def _focal_rows(sparse, y_true, y_pred, alpha, gamma, from_logits, label_smoothing, axis,
                ignore_index, class_weight, sample_weight, reduction, epsilon, n_threads,
                grad_request=None, hess_request=None):
    name = ("sparse_categorical_focal_crossentropy" if sparse
            else "categorical_focal_crossentropy")
    if hess_request is not None:
        _no_hessian(name, _FOCAL_NO_HESSIAN)
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    alpha = V.check_alpha(alpha)
    gamma = V.check_gamma(gamma)
    from_logits = V.check_from_logits(from_logits)
    smoothing = V.check_label_smoothing(label_smoothing)
    epsilon = V.check_epsilon(epsilon)
    if sparse:
        ignore_index = V.check_ignore_index(ignore_index)
        class_weight = V.check_class_weight(class_weight)
        prep = V.sparse(y_true, y_pred, V.check_axis(axis))
        cw, has_cw = V.class_weights(class_weight, prep.y_pred.shape[1])
        y_view, labels = None, prep.labels
    else:
        prep = V.categorical(y_true, y_pred, V.check_axis(axis))
        cw, has_cw = None, False
        y_view, labels = prep.y_true, None
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = _scaled_weights(weight, has_weight)
    lo, hi = V.clip_bounds(epsilon)
    loss_out, write_out = _loss_out(reduction, prep)
    grad, grad_view, hess, hess_view = _buffers(grad_request, None, prep)
    counted = prep.n_samples
    if (sparse and ignore_index is not None and grad_request is not None
            and (reduction == "mean" or reduction == "weighted_mean")):
        counted -= int(np.count_nonzero(prep.labels == ignore_index))
    grad_scale = _grad_prescale(reduction, counted, grad_request, None, wexp,
                                reduction == "mean" or not (has_weight or has_cw))
    result = _loops.focal_rows(
        y_view, labels, sparse, prep.y_pred, weight, has_weight, cw, has_cw,
        ignore_index is not None, ignore_index if ignore_index is not None else 0,
        from_logits, smoothing, lo, hi, gamma, alpha, loss_out, write_out,
        resolve_threads(n_threads, prep.n_elements), grad_view, grad_scale,
    )
    return _finish(result, reduction, loss_out, prep, name, ignore_index, grad=grad,
                   grad_view=grad_view, wexp=wexp, grad_scale=grad_scale)


# --- row losses of the catalogue: KL divergence, negative log-likelihood, categorical
# hinge, cosine similarity ------------------------------------------------------------------



def _catalogue(kind, mode, param, y_true, y_pred, axis, sample_weight, reduction,
               n_threads, name, grad_request=None, hess_request=None):
    """A row loss over the class axis (y_true shaped like y_pred), by one compiled loop."""
    if hess_request is not None:
        _no_hessian(name)
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    prep = V.categorical(y_true, y_pred, V.check_axis(axis))
    weight, has_weight = V.sample_weights(sample_weight, prep.sample_shape, prep.n_samples)
    weight, wexp = _scaled_weights(weight, has_weight)
    loss_out, write_out = _loss_out(reduction, prep)
    grad, grad_view, _, _ = _buffers(grad_request, None, prep)
    grad_scale = _grad_prescale(reduction, prep.n_samples, grad_request, None, wexp,
                                reduction == "mean" or not has_weight)
    result = _loops.catalogue_rows(
        kind, mode, param, prep.y_true, prep.y_pred, weight, has_weight, loss_out,
        write_out, resolve_threads(n_threads, prep.n_elements), grad_view, grad_scale,
    )
    return _finish(result, reduction, loss_out, prep, name, grad=grad, grad_view=grad_view,
                   wexp=wexp, grad_scale=grad_scale)


def kl_divergence(
    y_true, y_pred, *, log_input=False, log_target=False, axis=-1, sample_weight=None,
    reduction="mean", epsilon=1e-7, n_threads=None,
):
    r"""Kullback-Leibler divergence of ``y_pred`` from ``y_true`` over the class axis.

    .. math:: l = \sum_c y_c \log \frac{y_c}{p_c}

    Without options this is Keras's ``kl_divergence``: ``y`` and ``p`` are clipped to
    ``[epsilon, 1]`` first (so a zero target contributes ``epsilon log(epsilon / p)``,
    not 0). The options give PyTorch's ``kl_div``:

    - ``log_input=True``: ``y_pred`` holds log-probabilities ``x`` (PyTorch's
      ``input``) and nothing is clipped: ``l = sum_c y_c (log y_c - x_c)``, a zero
      target contributing 0 (PyTorch's ``xlogy``) even against ``x_c = -inf`` (where
      PyTorch gives NaN); a negative target gives NaN, as in PyTorch.
    - ``log_target=True``: ``y_true`` holds log-probabilities ``t``:
      ``l = sum_c e^{t_c} (t_c - log p_c)`` (``t_c = -inf`` contributes 0); ``y_pred``
      is clipped as above unless ``log_input``.

    Reductions are over samples (rows): ``"mean"`` is PyTorch's
    ``reduction="batchmean"`` for 2-D input, ``"sum"`` its ``"sum"``; PyTorch's
    ``"mean"`` (divided by the number of elements) is ``"mean"`` divided by the number
    of classes ``C``. For PyTorch's ``(N, C, d...)`` layout pass ``axis=1``; its
    ``batchmean`` then is ``"sum"`` divided by ``N``.

    Derivative with respect to ``y_pred``: ``-y_c / p_c`` (0 where the clip is active,
    torch.clamp's convention), and ``-y_c`` with ``log_input``.

    Parameters
    ----------
    y_true : array_like
        Target probabilities (or log-probabilities with ``log_target``), same shape as
        ``y_pred``.
    y_pred : array_like
        Predicted probabilities (or log-probabilities with ``log_input``).
    log_input, log_target : bool, default False
    axis : int, default -1
        The class axis.
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.
    epsilon : float in (0, 0.5), default 1e-7
        The lower clip bound of the probability form.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import math, cyloss
    >>> round(cyloss.kl_divergence([[0.2, 0.8]], [[0.5, 0.5]]), 12)
    0.192744757022
    >>> round(cyloss.kl_divergence([[0.0, 1.0]], [[math.log(0.25), math.log(0.75)]],
    ...                            log_input=True), 12)
    0.287682072452
    """
    return _kl(y_true, y_pred, log_input, log_target, axis, sample_weight, reduction,
               epsilon, n_threads)


def _kl(y_true, y_pred, log_input, log_target, axis, sample_weight, reduction, epsilon,
        n_threads, grad_request=None, hess_request=None):
    mode = ((_loops.KL_LOG_INPUT if V.check_flag(log_input, "log_input") else 0)
            | (_loops.KL_LOG_TARGET if V.check_flag(log_target, "log_target") else 0))
    return _catalogue(_loops.ROW_KL, mode, V.check_epsilon(epsilon), y_true, y_pred, axis,
                      sample_weight, reduction, n_threads, "kl_divergence", grad_request,
                      hess_request)


def nll(
    y_true, y_pred, *, axis=-1, ignore_index=None, class_weight=None, sample_weight=None,
    reduction="mean", n_threads=None,
):
    r"""Negative log-likelihood of integer labels under log-probabilities (PyTorch's
    ``nll_loss``).

    .. math:: l = -w_\mathrm{label} \, x_\mathrm{label}

    with ``x = y_pred`` the log-probabilities (taken as they are: no check, no clip) and
    ``w`` the ``class_weight`` (PyTorch's ``weight=``; 1 when absent). Labels,
    ``ignore_index`` and ``class_weight`` work as in
    :func:`sparse_categorical_crossentropy`; ``reduction="weighted_mean"`` is
    PyTorch's ``"mean"`` (divided by the summed class weights of the counted samples),
    ``"mean"`` divides by their number. ``ignore_index`` defaults to None, not PyTorch's
    -100: a label -100 is an error unless asked for. A zero class weight contributes 0
    even against ``x = -inf`` (PyTorch gives NaN). PyTorch's ``(N, C, d...)`` layout is
    ``axis=1``.

    Derivative with respect to ``y_pred``: ``-w_label`` at the label, 0 elsewhere (and on
    ignored samples).

    Parameters
    ----------
    y_true : array_like of int
        Labels in ``[0, C)``, shaped like ``y_pred`` without the class axis.
    y_pred : array_like
        Log-probabilities with the classes on ``axis``.
    axis : int, default -1
    ignore_index : int, optional
    class_weight : array_like of shape (C,), optional
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Raises
    ------
    ValueError
        Labels outside ``[0, C)`` (other than ``ignore_index``), non-integer float
        labels, shape mismatch, bad options.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.nll([1, 0], [[-1.2, -0.4], [-0.1, -2.3]])
    0.25
    >>> round(cyloss.nll([1, 0], [[-1.2, -0.4], [-0.1, -2.3]], class_weight=[1.0, 3.0],
    ...                  reduction="weighted_mean"), 12)
    0.325
    """
    return _nll(y_true, y_pred, axis, ignore_index, class_weight, sample_weight, reduction,
                n_threads)


def _nll(y_true, y_pred, axis, ignore_index, class_weight, sample_weight, reduction,
         n_threads, grad_request=None, hess_request=None):
    # The sparse cross-entropy's labels, ignore_index, class weights and counting, with
    # the row's log-probability read as it is.
    if hess_request is not None:
        _no_hessian("nll")
    return _sparse(y_true, y_pred, False, axis, ignore_index, class_weight, 0.0,
                   sample_weight, reduction, 1e-7, n_threads, grad_request, None,
                   log_probs=True)


def categorical_hinge(
    y_true, y_pred, *, axis=-1, sample_weight=None, reduction="mean", n_threads=None,
):
    r"""Keras's categorical hinge loss over the class axis.

    .. math:: l = \max(\mathrm{neg} - \mathrm{pos} + 1, 0), \quad
              \mathrm{pos} = \sum_c y_c p_c, \quad
              \mathrm{neg} = \max_c (1 - y_c) p_c

    Targets are one-hot rows, used as given: Keras 3 converts ``{0, 1}`` labels to
    ``{-1, 1}`` for ``hinge`` and ``squared_hinge`` but not here, and neither does
    cyloss (a ``-1`` target enters the formula as ``-1``). Products follow IEEE (an
    infinite prediction against a zero target gives NaN, as in Keras).

    Derivative with respect to ``y_pred`` where the hinge is active (``l > 0``):
    ``-y_c``, plus ``1 - y_c`` at the first class attaining ``neg``; 0 elsewhere.

    Parameters
    ----------
    y_true, y_pred : array_like
        The same shape; ``axis`` is the class axis (Keras: the last).
    axis : int, default -1
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> cyloss.categorical_hinge([[0, 1, 0], [1, 0, 0]], [[0.3, 0.6, 0.1], [0.2, 0.7, 0.1]],
    ...                          reduction="none")
    array([0.7, 1.5])
    """
    return _catalogue(_loops.ROW_CAT_HINGE, 0, 0.0, y_true, y_pred, axis, sample_weight,
                      reduction, n_threads, "categorical_hinge")


def cosine_similarity(
    y_true, y_pred, *, axis=-1, sample_weight=None, reduction="mean", epsilon=1e-7,
    n_threads=None,
):
    r"""Keras's cosine similarity loss: minus the cosine of the angle between the rows.

    .. math:: l = -\sum_c \frac{y_c}{\max(\|y\|, \epsilon)}
                         \frac{p_c}{\max(\|p\|, \epsilon)}

    over ``axis``: Keras 3's ``ops.normalize`` (``x min(rsqrt(sum x^2), 1 / epsilon)``,
    epsilon 1e-7), so a zero row gives 0. PyTorch's ``cosine_similarity(p, y, dim=axis,
    eps=e)`` clamps each norm the same way: it is ``-cosine_similarity(y, p,
    epsilon=e)``. (Keras's NumPy backend normalises without the epsilon; the two differ
    only for rows of norm below ``epsilon``.) Rows whose squares overflow are rescaled
    first, so huge finite rows give their cosine rather than 0.

    Derivative with respect to ``y_pred``, with ``a = 1 / max(|y|, eps)``,
    ``b = 1 / max(|p|, eps)`` and ``c`` the cosine: ``-a b y_k + c b^2 p_k``, and
    ``-a b y_k`` where ``|p| < eps`` (the clamp is active).

    Parameters
    ----------
    y_true, y_pred : array_like
        The same shape.
    axis : int, default -1
        The axis along which the similarity is taken.
    sample_weight, reduction, n_threads
        As in :func:`categorical_crossentropy`.
    epsilon : float in (0, 0.5), default 1e-7
        The smallest norm a row is divided by.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import cyloss
    >>> cyloss.cosine_similarity([[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]],
    ...                          reduction="none")
    array([-0., -1.])
    """
    return _catalogue(_loops.ROW_COSINE, 0, V.check_epsilon(epsilon), y_true, y_pred,
                      axis, sample_weight, reduction, n_threads, "cosine_similarity")


# --- classes ------------------------------------------------------------------------------

class Loss:
    """Base of the Keras-style loss classes.

    A loss object stores its options (validated at construction), is called as
    ``loss(y_true, y_pred, sample_weight=None)``, has ``get_config()`` /
    ``from_config()``, pickles, and compares equal by config.
    """

    _function = None
    _defaults = {}

    def __init__(self, *, name, reduction, n_threads, **options):
        if not isinstance(name, str):
            raise ValueError(f"name must be a string; got {name!r}")
        self._options = dict(options)
        self._options["reduction"] = V.check_reduction(reduction)
        self._options["n_threads"] = V.check_n_threads(n_threads)
        self.name = name

    @property
    def reduction(self):
        return self._options["reduction"]

    def __call__(self, y_true, y_pred, sample_weight=None):
        return type(self)._function(y_true, y_pred, sample_weight=sample_weight,
                                    **self._call_options())

    def value_and_grad(self, y_true, y_pred, sample_weight=None, grad_out=None):
        """The loss and its derivative with respect to ``y_pred``, in one pass.

        ``value`` is exactly ``self(y_true, y_pred, sample_weight)``; ``grad`` has
        ``y_pred``'s shape and the compute dtype and is ``d value / d y_pred`` (for
        ``reduction="none"``, the derivative of the sum of the returned array), as
        ``torch.autograd`` gives for the same expression. Kinks follow PyTorch: MAE's
        derivative is 0 at zero error; Huber's and smooth L1's are continuous; clipped
        probabilities get 0. ``grad_out`` (a writeable, aligned C-contiguous array of that
        shape and dtype) receives the gradient instead of a new array.

        Returns
        -------
        (float or ndarray, ndarray)

        Examples
        --------
        >>> import numpy as np, cyloss
        >>> value, grad = cyloss.MeanSquaredError().value_and_grad([0.0, 1.0], [1.0, 3.0])
        >>> value, grad
        (2.5, array([1., 2.]))
        """
        return self._derivatives(y_true, y_pred, sample_weight, self.reduction,
                                 _GRAD if grad_out is None else grad_out)

    def grad(self, y_true, y_pred, sample_weight=None, grad_out=None):
        """Only the gradient of :meth:`value_and_grad`."""
        return self.value_and_grad(y_true, y_pred, sample_weight, grad_out)[1]

    def grad_hess(self, y_true, y_pred, sample_weight=None, grad_out=None, hess_out=None):
        r"""Per-sample gradient and diagonal Hessian, for gradient boosting.

        Both have ``y_pred``'s shape and the compute dtype and are the first and second
        derivatives of :math:`\sum_i w_i l_i` (``reduction="sum"`` whatever the object's
        reduction: boosting libraries want per-sample terms) with respect to each element
        of ``y_pred``; a per-sample mean over the last axis divides both by its length.
        The Hessians, per element of error ``e = p - y`` or logit ``x``:

        - the elementwise losses (``ELEMENTWISE``): as each function's docstring says
          under "Derivatives". Mean squared error gives 2; mean absolute error gives 1
          where the exact value is 0 (scikit-learn's convention: a Newton step needs a
          positive Hessian).
        - binary cross-entropy from logits: ``(pw y + 1 - y) sigmoid(x) sigmoid(-x)``
          with the smoothed target ``y`` and ``pos_weight`` ``pw``.
        - categorical and sparse cross-entropy from logits: ``Q p_k (1 - p_k)`` with
          ``p = softmax(x)`` and ``Q = sum_k cw_k q_k`` (1 for one-hot targets without
          class weights): the diagonal of the softmax Hessian. Ignored labels give zero
          rows.

        The cross-entropies need ``from_logits=True`` (Newton steps on probabilities are
        not what any booster does); a ``ValueError`` says so otherwise. ``grad_out`` and
        ``hess_out`` (writeable, aligned C-contiguous arrays of that shape and dtype, not
        overlapping) receive the results instead of new arrays.

        Returns
        -------
        (ndarray, ndarray)

        Examples
        --------
        >>> import cyloss
        >>> g, h = cyloss.BinaryCrossentropy(from_logits=True).grad_hess([1.0, 0.0],
        ...                                                            [0.0, 0.0])
        >>> g, h
        (array([-0.5,  0.5]), array([0.25, 0.25]))
        """
        if not self._options.get("from_logits", True):
            raise ValueError(
                f"grad_hess of {self.name} needs from_logits=True (Hessians are taken "
                "with respect to logits)"
            )
        _, g, h = self._derivatives(y_true, y_pred, sample_weight, "sum",
                                    _GRAD if grad_out is None else grad_out,
                                    _GRAD if hess_out is None else hess_out)
        return g, h

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        raise NotImplementedError  # each loss class runs its own loop

    def _call_options(self):
        return dict(self._options)

    def get_config(self):
        """The constructor arguments, as plain Python values."""
        config = {"name": self.name}
        for key, value in self._options.items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            config[key] = value
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuild a loss from :meth:`get_config` (Keras's ``dtype`` key is ignored)."""
        config = {k: v for k, v in dict(config).items() if k != "dtype"}
        return cls(**config)

    def _key(self):
        return tuple(
            (k, tuple(v) if isinstance(v, list) else v)
            for k, v in sorted(self.get_config().items())
        )

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def __repr__(self):
        config = self.get_config()
        defaults = dict(type(self)._defaults)
        shown = [f"{k}={v!r}" for k, v in config.items() if defaults.get(k, object()) != v]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __getstate__(self):
        return self.get_config()

    def __setstate__(self, state):
        self.__init__(**state)


def _defaults(name, **options):
    return {"name": name, "reduction": "mean", "n_threads": None, **options}


class CategoricalCrossentropy(Loss):
    """Categorical cross-entropy as a Keras-style object; see :func:`categorical_crossentropy`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.CategoricalCrossentropy(label_smoothing=0.1)
    >>> loss
    CategoricalCrossentropy(label_smoothing=0.1)
    >>> round(loss([[0, 1], [1, 0]], [[0.2, 0.8], [0.6, 0.4]]), 6)
    0.411779
    """

    _function = staticmethod(categorical_crossentropy)
    _defaults = _defaults("categorical_crossentropy", from_logits=False,
                          label_smoothing=0.0, axis=-1, epsilon=1e-7)

    def __init__(self, *, from_logits=False, label_smoothing=0.0, axis=-1, epsilon=1e-7,
                 reduction="mean", n_threads=None, name="categorical_crossentropy"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            from_logits=V.check_from_logits(from_logits),
            label_smoothing=V.check_label_smoothing(label_smoothing),
            axis=V.check_axis(axis), epsilon=V.check_epsilon(epsilon),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _categorical(y_true, y_pred, o["from_logits"], o["label_smoothing"],
                            o["axis"], sample_weight, reduction, o["epsilon"],
                            o["n_threads"], grad_request, hess_request)


class SparseCategoricalCrossentropy(Loss):
    """Sparse cross-entropy as a Keras-style object; see :func:`sparse_categorical_crossentropy`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.SparseCategoricalCrossentropy(from_logits=True, ignore_index=-1)
    >>> round(loss([0, -1, 1], [[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]]), 6)
    0.313262
    """

    _function = staticmethod(sparse_categorical_crossentropy)
    _defaults = _defaults("sparse_categorical_crossentropy", from_logits=False, axis=-1,
                          ignore_index=None, class_weight=None, label_smoothing=0.0,
                          epsilon=1e-7)

    def __init__(self, *, from_logits=False, axis=-1, ignore_index=None, class_weight=None,
                 label_smoothing=0.0, epsilon=1e-7, reduction="mean", n_threads=None,
                 name="sparse_categorical_crossentropy"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            from_logits=V.check_from_logits(from_logits), axis=V.check_axis(axis),
            ignore_index=V.check_ignore_index(ignore_index),
            class_weight=V.check_class_weight(class_weight),
            label_smoothing=V.check_label_smoothing(label_smoothing),
            epsilon=V.check_epsilon(epsilon),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _sparse(y_true, y_pred, o["from_logits"], o["axis"], o["ignore_index"],
                       o["class_weight"], o["label_smoothing"], sample_weight,
                       reduction, o["epsilon"], o["n_threads"], grad_request, hess_request)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy as a Keras-style object; see :func:`binary_crossentropy`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.BinaryCrossentropy(from_logits=True, pos_weight=2.0)
    >>> round(loss([1.0, 0.0], [0.0, 0.0]), 6)
    1.039721
    """

    _function = staticmethod(binary_crossentropy)
    _defaults = _defaults("binary_crossentropy", from_logits=False, label_smoothing=0.0,
                          pos_weight=None, epsilon=1e-7)

    def __init__(self, *, from_logits=False, label_smoothing=0.0, pos_weight=None,
                 epsilon=1e-7, reduction="mean", n_threads=None,
                 name="binary_crossentropy"):
        pw = V.check_pos_weight(pos_weight)
        if pw is not None and pw.ndim == 0:
            pw = float(pw)
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            from_logits=V.check_from_logits(from_logits),
            label_smoothing=V.check_label_smoothing(label_smoothing),
            pos_weight=pw, epsilon=V.check_epsilon(epsilon),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _binary(y_true, y_pred, o["from_logits"], o["label_smoothing"],
                       o["pos_weight"], sample_weight, reduction, o["epsilon"],
                       o["n_threads"], grad_request, hess_request)


class KLDivergence(Loss):
    """KL divergence as a Keras-style object; see :func:`kl_divergence`.

    Examples
    --------
    >>> import cyloss
    >>> round(cyloss.KLDivergence()([[0.2, 0.8]], [[0.5, 0.5]]), 12)
    0.192744757022
    """

    _function = staticmethod(kl_divergence)
    _defaults = _defaults("kl_divergence", log_input=False, log_target=False, axis=-1,
                          epsilon=1e-7)

    def __init__(self, *, log_input=False, log_target=False, axis=-1, epsilon=1e-7,
                 reduction="mean", n_threads=None, name="kl_divergence"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            log_input=V.check_flag(log_input, "log_input"),
            log_target=V.check_flag(log_target, "log_target"),
            axis=V.check_axis(axis), epsilon=V.check_epsilon(epsilon),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _kl(y_true, y_pred, o["log_input"], o["log_target"], o["axis"],
                   sample_weight, reduction, o["epsilon"], o["n_threads"], grad_request,
                   hess_request)


class NegativeLogLikelihood(Loss):
    """Negative log-likelihood as a Keras-style object; see :func:`nll`.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.NegativeLogLikelihood(ignore_index=-100)([1, -100], [[-1.2, -0.4],
    ...                                                             [-0.1, -2.3]])
    0.4
    """

    _function = staticmethod(nll)
    _defaults = _defaults("nll", axis=-1, ignore_index=None, class_weight=None)

    def __init__(self, *, axis=-1, ignore_index=None, class_weight=None, reduction="mean",
                 n_threads=None, name="nll"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads, axis=V.check_axis(axis),
            ignore_index=V.check_ignore_index(ignore_index),
            class_weight=V.check_class_weight(class_weight),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _nll(y_true, y_pred, o["axis"], o["ignore_index"], o["class_weight"],
                    sample_weight, reduction, o["n_threads"], grad_request, hess_request)


class CategoricalHinge(Loss):
    """Categorical hinge as a Keras-style object; see :func:`categorical_hinge`.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.CategoricalHinge()([[0, 1, 0]], [[0.3, 0.6, 0.1]])
    0.7
    """

    _function = staticmethod(categorical_hinge)
    _defaults = _defaults("categorical_hinge", axis=-1)

    def __init__(self, *, axis=-1, reduction="mean", n_threads=None,
                 name="categorical_hinge"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         axis=V.check_axis(axis))

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _catalogue(_loops.ROW_CAT_HINGE, 0, 0.0, y_true, y_pred, o["axis"],
                          sample_weight, reduction, o["n_threads"], "categorical_hinge",
                          grad_request, hess_request)


class CosineSimilarity(Loss):
    """Cosine similarity loss as a Keras-style object; see :func:`cosine_similarity`.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.CosineSimilarity(axis=0)([[0.0], [1.0]], [[1.0], [0.0]])
    0.0
    """

    _function = staticmethod(cosine_similarity)
    _defaults = _defaults("cosine_similarity", axis=-1, epsilon=1e-7)

    def __init__(self, *, axis=-1, epsilon=1e-7, reduction="mean", n_threads=None,
                 name="cosine_similarity"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         axis=V.check_axis(axis), epsilon=V.check_epsilon(epsilon))

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _catalogue(_loops.ROW_COSINE, 0, o["epsilon"], y_true, y_pred, o["axis"],
                          sample_weight, reduction, o["n_threads"], "cosine_similarity",
                          grad_request, hess_request)


class BinaryFocalCrossentropy(Loss):
    """Binary focal cross-entropy as a Keras-style object; see
    :func:`binary_focal_crossentropy`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=1.0)
    >>> loss
    BinaryFocalCrossentropy(apply_class_balancing=True, gamma=1.0)
    >>> round(loss([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]), 6)
    0.278838
    """

    _function = staticmethod(binary_focal_crossentropy)
    _defaults = _defaults("binary_focal_crossentropy", apply_class_balancing=False,
                          alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                          epsilon=1e-7)

    def __init__(self, *, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                 from_logits=False, label_smoothing=0.0, epsilon=1e-7, reduction="mean",
                 n_threads=None, name="binary_focal_crossentropy"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            apply_class_balancing=V.check_apply_class_balancing(apply_class_balancing),
            alpha=V.check_alpha(alpha), gamma=V.check_gamma(gamma),
            from_logits=V.check_from_logits(from_logits),
            label_smoothing=V.check_label_smoothing(label_smoothing),
            epsilon=V.check_epsilon(epsilon),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _binary_focal(y_true, y_pred, True, o["apply_class_balancing"], o["alpha"],
                             o["gamma"], o["from_logits"], o["label_smoothing"], None,
                             sample_weight, reduction, o["epsilon"], o["n_threads"],
                             self.name, grad_request, hess_request)


class CategoricalFocalCrossentropy(Loss):
    """Categorical focal cross-entropy as a Keras-style object; see
    :func:`categorical_focal_crossentropy`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.CategoricalFocalCrossentropy(from_logits=True)
    >>> round(loss([[0.0, 1.0]], [[0.0, 0.0]]), 6)
    0.043322
    """

    _function = staticmethod(categorical_focal_crossentropy)
    _defaults = _defaults("categorical_focal_crossentropy", alpha=0.25, gamma=2.0,
                          from_logits=False, label_smoothing=0.0, axis=-1, epsilon=1e-7)

    def __init__(self, *, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, epsilon=1e-7, reduction="mean", n_threads=None,
                 name="categorical_focal_crossentropy"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            alpha=V.check_alpha(alpha), gamma=V.check_gamma(gamma),
            from_logits=V.check_from_logits(from_logits),
            label_smoothing=V.check_label_smoothing(label_smoothing),
            axis=V.check_axis(axis), epsilon=V.check_epsilon(epsilon),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _focal_rows(False, y_true, y_pred, o["alpha"], o["gamma"], o["from_logits"],
                           o["label_smoothing"], o["axis"], None, None, sample_weight,
                           reduction, o["epsilon"], o["n_threads"], grad_request,
                           hess_request)


class SparseCategoricalFocalCrossentropy(Loss):
    """Sparse focal cross-entropy as a Keras-style object; see
    :func:`sparse_categorical_focal_crossentropy`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.SparseCategoricalFocalCrossentropy(from_logits=True, ignore_index=-1)
    >>> round(loss([1, -1], [[0.0, 0.0], [5.0, 0.0]]), 6)
    0.043322
    """

    _function = staticmethod(sparse_categorical_focal_crossentropy)
    _defaults = _defaults("sparse_categorical_focal_crossentropy", alpha=0.25, gamma=2.0,
                          from_logits=False, axis=-1, ignore_index=None, class_weight=None,
                          label_smoothing=0.0, epsilon=1e-7)

    def __init__(self, *, alpha=0.25, gamma=2.0, from_logits=False, axis=-1,
                 ignore_index=None, class_weight=None, label_smoothing=0.0, epsilon=1e-7,
                 reduction="mean", n_threads=None,
                 name="sparse_categorical_focal_crossentropy"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            alpha=V.check_alpha(alpha), gamma=V.check_gamma(gamma),
            from_logits=V.check_from_logits(from_logits), axis=V.check_axis(axis),
            ignore_index=V.check_ignore_index(ignore_index),
            class_weight=V.check_class_weight(class_weight),
            label_smoothing=V.check_label_smoothing(label_smoothing),
            epsilon=V.check_epsilon(epsilon),
        )

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _focal_rows(True, y_true, y_pred, o["alpha"], o["gamma"], o["from_logits"],
                           o["label_smoothing"], o["axis"], o["ignore_index"],
                           o["class_weight"], sample_weight, reduction, o["epsilon"],
                           o["n_threads"], grad_request, hess_request)


class MultilabelSoftMargin(Loss):
    """Multilabel soft margin loss as a Keras-style object; see
    :func:`multilabel_soft_margin`.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.MultilabelSoftMargin(class_weight=[1.0, 3.0])
    >>> round(loss([[1.0, 0.0]], [[2.0, -1.0]]), 6)
    0.533357
    """

    _function = staticmethod(multilabel_soft_margin)
    _defaults = _defaults("multilabel_soft_margin", class_weight=None)

    def __init__(self, *, class_weight=None, reduction="mean", n_threads=None,
                 name="multilabel_soft_margin"):
        super().__init__(name=name, reduction=reduction, n_threads=n_threads,
                         class_weight=V.check_class_weight(class_weight))

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        return _multilabel(y_true, y_pred, o["class_weight"], sample_weight, reduction,
                           o["n_threads"], grad_request, hess_request)


class _Elementwise(Loss):
    """Regression losses: one compiled loop, told which formula by ``_kind``."""

    _kind = None
    _param = None   # the option holding the formula's parameter, if any
    _prepared = False   # the parameter comes from y_true (the entry's `prepare`)

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        o = self._options
        param = o[self._param] if self._param else (None if self._prepared else 0.0)
        return _elementwise(self._kind, param, y_true, y_pred, sample_weight, reduction,
                            o["n_threads"], grad_request, hess_request)


# --- the elementwise functions and classes, made from ELEMENTWISE ---------------------
# Each function and constructor is compiled from a line of source (as dataclasses makes
# its __init__), so that it has the loss's own keyword-only signature, which
# inspect.signature shows, and costs no more per call than a hand-written one.

_FUNCTION_SOURCE = """\
def {function}(y_true, y_pred, *, {param}sample_weight=None, reduction="mean",
               n_threads=None):
{check}    return _elementwise({kind}, {value}, y_true, y_pred, sample_weight, reduction,
                        n_threads)
"""

_INIT_SOURCE = """\
def __init__(self, *, {param}reduction="mean", n_threads=None, name={function!r}):
    Loss.__init__(self, name=name, reduction=reduction, n_threads=n_threads{options})
"""

_FUNCTION_DOC = """{summary}

.. math:: {mean}

.. math:: {formula}
{notes}
Derivatives: {derivatives}

Parameters
----------
y_true, y_pred : array_like
    The same shape (a trailing axis of 1 on one side is squeezed); a 1-D input is ``n``
    samples of one output each.
{param}sample_weight, reduction, n_threads
    As in :func:`categorical_crossentropy`.

Returns
-------
float or ndarray
    A Python float, or for ``reduction="none"`` the per-sample losses in the compute
    dtype.

Examples
--------
>>> import cyloss
>>> cyloss.{function}({call})
{value}
>>> cyloss.{function}({call}, reduction="none")
{per_sample}
"""

_CLASS_DOC = """{title} as a Keras-style object; see :func:`{function}`.

Examples
--------
>>> import cyloss
>>> cyloss.{cls}({options})({y_true}, {y_pred})
{value}
"""


def _example_call(e):
    """The arguments of ``e``'s docstring example, as source text."""
    x = e.example
    return f"{x.y_true}, {x.y_pred}" + (f", {x.options}" if x.options else "")


def _function_doc(e):
    p = e.param
    param = (f"{p.name} : float, default {p.default!r}\n    ``{p.name} {p.domain}``. "
             f"{p.doc}\n") if p else ""
    # f(e) of the error, or f of the target y and prediction p (Keras's catalogue)
    mean = (r"l = \mathrm{mean}_k f(e_k), \quad e = y_\mathrm{pred} - y_\mathrm{true}"
            if e.formula.startswith("f(e)") else
            r"l = \mathrm{mean}_k f(y_k, p_k), \quad y = y_\mathrm{true}, "
            r"\ p = y_\mathrm{pred}")
    return _FUNCTION_DOC.format(
        mean=mean, summary=e.summary, formula=e.formula, notes=f"\n{e.notes}\n" if e.notes else "",
        derivatives=e.derivatives, param=param, function=e.function, call=_example_call(e),
        value=e.example.value, per_sample=e.example.per_sample,
    )


def _compile(source, name, **fields):
    namespace = {}
    # This module's globals: the function finds _elementwise, V and Loss, and doctest
    # (which takes a function as the module's when its globals are the module's) finds
    # its examples.
    exec(source.format(**fields), globals(), namespace)
    return namespace[name]


def _make_elementwise(e):
    kind = _loops.KINDS[e.kernel]
    p = e.param
    param = f"{p.name}={p.default!r}, " if p else ""
    check = f"    {p.name} = V.{p.check.__name__}({p.name})\n" if p else ""
    if e.prepare:
        _PREPARE[kind] = getattr(_loops, e.prepare)
    value = p.name if p else ("None" if e.prepare else "0.0")
    function = _compile(_FUNCTION_SOURCE, e.function, function=e.function, param=param,
                        check=check, kind=kind, value=value)
    function.__doc__ = _function_doc(e)
    init = _compile(_INIT_SOURCE, "__init__", function=e.function, param=param,
                    options=f", {p.name}=V.{p.check.__name__}({p.name})" if p else "")
    init.__qualname__ = f"{e.cls}.__init__"
    cls = type(e.cls, (_Elementwise,), {
        "__module__": __name__,
        "__qualname__": e.cls,
        "__doc__": _CLASS_DOC.format(title=e.title, function=e.function, cls=e.cls,
                                     options=e.example.options, y_true=e.example.y_true,
                                     y_pred=e.example.y_pred, value=e.example.value),
        "__init__": init,
        "_function": staticmethod(function),
        "_defaults": _defaults(e.function, **({p.name: p.default} if p else {})),
        "_kind": kind,
        "_param": p.name if p else None,
        "_prepared": bool(e.prepare),
    })
    return function, cls


def _install(e):
    function, cls = _make_elementwise(e)
    globals().update({e.function: function, e.cls: cls},
                     **{alias: function for alias in e.aliases})


for _e in ELEMENTWISE:
    _install(_e)
del _e


# CTC lives in its own module (its own compiled loop); it needs Loss defined above.
from cyloss._sequence import CTC, ctc  # noqa: E402

#: Every loss by its function name: the class that stores its options.
LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "kl_divergence": KLDivergence,
    "nll": NegativeLogLikelihood,
    "categorical_hinge": CategoricalHinge,
    "cosine_similarity": CosineSimilarity,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
    "sparse_categorical_focal_crossentropy": SparseCategoricalFocalCrossentropy,
    "multilabel_soft_margin": MultilabelSoftMargin,
    **{e.function: globals()[e.cls] for e in ELEMENTWISE},
    "ctc": CTC,
}
_ALIASES = {alias: e.function for e in ELEMENTWISE for alias in e.aliases}
_ALIASES["nll_loss"] = "nll"
# The other names keras.losses.get() knows (Keras 3's ALL_OBJECTS_DICT aliases); get()
# takes them too, so a Keras config string keeps working.
_KERAS_ALIASES = {"bce": "binary_crossentropy", "BCE": "binary_crossentropy",
                  "kld": "kl_divergence", "KLD": "kl_divergence",
                  "MAE": "mean_absolute_error", "MSE": "mean_squared_error",
                  "MAPE": "mean_absolute_percentage_error",
                  "MSLE": "mean_squared_logarithmic_error"}


nll_loss = nll   # PyTorch's name


def get(identifier, **options):
    """A loss object from its name (``"huber"``, ``"mse"``, ...), one of the other names
    ``keras.losses.get`` knows (``"kld"``, ``"bce"``, ``"MSLE"``, ...) or a class name.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.get("mse")
    MeanSquaredError()
    >>> cyloss.get("Huber", delta=2.0)
    Huber(delta=2.0)
    """
    if isinstance(identifier, Loss):
        return identifier
    name = _ALIASES.get(identifier, _KERAS_ALIASES.get(identifier, identifier))
    if name in LOSSES:
        return LOSSES[name](**options)
    for cls in LOSSES.values():
        if cls.__name__ == name:
            return cls(**options)
    raise ValueError(
        f"unknown loss {identifier!r}; known: {', '.join(sorted([*LOSSES, *_ALIASES]))}"
    )


def value_and_grad(loss, y_true, y_pred, *, sample_weight=None, grad_out=None, **options):
    """The value of a loss and its gradient with respect to ``y_pred``, in one pass.

    ``loss`` is a loss object, or a name (``"huber"``, ``"mse"``, ``"BinaryCrossentropy"``,
    ...) built with ``options``. See :meth:`Loss.value_and_grad`.

    Examples
    --------
    >>> import cyloss
    >>> value, grad = cyloss.value_and_grad("huber", [0.0, 0.0], [0.5, 3.0], delta=1.0)
    >>> round(value, 4), grad
    (1.3125, array([0.25, 0.5 ]))
    """
    return _loss_object(loss, options).value_and_grad(
        y_true, y_pred, sample_weight=sample_weight, grad_out=grad_out)


def _loss_object(loss, options):
    if isinstance(loss, Loss):
        if options:
            raise ValueError(
                "options belong to the loss object's constructor when a loss object is given"
            )
        return loss
    return get(loss, **options)


def grad(loss, y_true, y_pred, *, sample_weight=None, grad_out=None, **options):
    """Only the gradient of :func:`value_and_grad`.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.grad("mae", [0.0, 0.0, 0.0], [1.0, 0.0, -2.0], reduction="sum")
    array([ 1.,  0., -1.])
    """
    return value_and_grad(loss, y_true, y_pred, sample_weight=sample_weight,
                          grad_out=grad_out, **options)[1]


def grad_hess(loss, y_true, y_pred, *, sample_weight=None, grad_out=None, hess_out=None,
              **options):
    """Per-sample gradient and diagonal Hessian of a loss; see :meth:`Loss.grad_hess`.

    Examples
    --------
    >>> import cyloss
    >>> cyloss.grad_hess("mse", [0.0, 1.0], [1.0, 3.0])
    (array([2., 4.]), array([2., 2.]))
    """
    return _loss_object(loss, options).grad_hess(
        y_true, y_pred, sample_weight=sample_weight, grad_out=grad_out, hess_out=hess_out)


# --- issue #14's losses outside the ELEMENTWISE table (dice, tversky, poisson_nll, ...) ----
# Defined in _pairs, which needs this module's Loss and helpers, hence the import here.
from cyloss import _pairs  # noqa: E402

globals().update({name: getattr(_pairs, name) for name in _pairs.__all__})
__all__ += _pairs.__all__
LOSSES.update(_pairs.LOSSES)
