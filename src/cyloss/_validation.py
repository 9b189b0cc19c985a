"""Shapes, dtypes and parameters: every check and every error message of cyloss.

``losses.py`` calls these before any loop runs. Checks that need the data itself
(labels in range, probabilities in [0, 1], ...) run inside the loops, which report the
first offending position; :func:`raise_data_error` turns that report into the message.
"""

import math
import numbers
from typing import NamedTuple, Optional

import numpy as np

from cyloss import _loops

# Every accepted spelling of a reduction, mapped to its canonical name. ``None`` is
# Keras 3's spelling of "none"; "auto" is tf.keras 2's spelling of the default.
REDUCTIONS = {
    "mean": "mean",
    "sum_over_batch_size": "mean",
    "auto": "mean",
    "weighted_mean": "weighted_mean",
    "mean_with_sample_weight": "weighted_mean",
    "sum": "sum",
    "none": "none",
    None: "none",
}

_INT64_MAX = np.iinfo(np.int64).max
_ONE = np.ones(1, dtype=np.float64)


# --- parameters ---------------------------------------------------------------------------

def _real(value, name):
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None


#: Private "reduction" that makes a loss function return its raw float64 sums
#: ``(num, den, count)`` instead of reducing them: what accumulators and the Dask path
#: combine across batches and chunks.
PARTIAL = "__cyloss_partial__"


def check_reduction(reduction):
    if reduction is PARTIAL:
        return PARTIAL
    if isinstance(reduction, (str, type(None))) and reduction in REDUCTIONS:
        return REDUCTIONS[reduction]
    names = ", ".join(repr(k) for k in REDUCTIONS)
    raise ValueError(f"reduction must be one of {names}; got {reduction!r}")


def check_n_threads(n_threads):
    if n_threads is None:
        return None
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise ValueError(f"n_threads must be None, -1 or a positive integer; got {n_threads!r}")
    n = int(n_threads)
    if n == -1 or n > 0:
        return n
    raise ValueError(f"n_threads must be None, -1 or a positive integer; got {n}")


def check_label_smoothing(value):
    s = _real(value, "label_smoothing")
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1]; got {value!r}")
    return s


def check_epsilon(value):
    eps = _real(value, "epsilon")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"epsilon must lie in (0, 0.5); got {value!r}")
    return eps


def check_delta(value):
    d = _real(value, "delta")
    if not 0.0 < d < math.inf:
        raise ValueError(f"delta must be a finite number > 0; got {value!r}")
    return d


def check_beta(value):
    b = _real(value, "beta")
    if not 0.0 <= b < math.inf:
        raise ValueError(f"beta must be a finite number >= 0; got {value!r}")
    return b


def check_gamma(value):
    g = _real(value, "gamma")
    if not (0.0 <= g < math.inf):
        raise ValueError(f"gamma must be finite and >= 0; got {value!r}")
    return g


def check_alpha(value):
    a = _real(value, "alpha")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {value!r}")
    return a


def check_apply_class_balancing(value):
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise ValueError(f"apply_class_balancing must be True or False; got {value!r}")


def check_from_logits(value):
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise ValueError(f"from_logits must be True or False; got {value!r}")


def check_flag(value, name):
    """A boolean option other than from_logits (log_input, log_target)."""
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise ValueError(f"{name} must be True or False; got {value!r}")


def check_axis(axis):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"axis must be an integer; got {axis!r}")
    return int(axis)


def check_ignore_index(value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"ignore_index must be None or an integer; got {value!r}")
    v = int(value)
    if not -_INT64_MAX - 1 <= v <= _INT64_MAX:
        raise ValueError(f"ignore_index must fit in a signed 64-bit integer; got {v}")
    return v


def _weights_1d(value, name):
    w = as_array(value, name)
    if w.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D; got shape {w.shape}")
    w = w.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(w) & (w >= 0)))
    if bad.size:
        k = int(bad[0])
        where = f"[{k}]" if w.ndim else ""
        raise ValueError(
            f"{name} must be finite and non-negative; got {name}{where} = {w.reshape(-1)[k].item()!r}"
        )
    return w


def check_class_weight(value):
    """Values only; the length is checked against the classes at call time."""
    if value is None:
        return None
    w = _weights_1d(value, "class_weight")
    if w.ndim != 1:
        raise ValueError(f"class_weight must be 1-D with one weight per class; got shape {w.shape}")
    return w


def check_pos_weight(value):
    if value is None:
        return None
    w = as_array(value, "pos_weight")
    if w.ndim > 1 and all(d == 1 for d in w.shape[:-1]):
        w = w.reshape(w.shape[-1])  # (1, K) broadcasts against (n, K) too
    return _weights_1d(w, "pos_weight")


# --- arrays -------------------------------------------------------------------------------

def as_array(x, name):
    """Any array-like as an ndarray without copying where possible; numeric or TypeError."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        if not hasattr(x, "__array__") and hasattr(x, "__dlpack__"):
            x = np.from_dlpack(x)
        try:
            arr = np.asarray(x)
        except ValueError as exc:  # ragged nested sequences
            raise ValueError(f"{name} is not a rectangular array: {exc}") from None
        except (TypeError, RuntimeError) as exc:  # e.g. a tensor that requires grad
            raise TypeError(f"{name} cannot be read as a NumPy array: {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must hold real numbers; got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype} ({type(x).__name__})")
    return arr


def compute_dtype(y_pred):
    """float32 for float32/float16 input, float64 otherwise (SPEC section 4)."""
    if y_pred.dtype.kind == "f" and y_pred.dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _cast(arr, dtype):
    if arr.dtype != dtype:
        # A float64 y_true beyond float32's range becomes inf, as float32 arithmetic
        # would make it; NumPy's cast also warns, which -W error turns into an exception.
        with np.errstate(over="ignore"):
            arr = arr.astype(dtype)
    # The loops read through double*/float*/int64_t*, which C requires to be aligned; a
    # buffer at an odd offset (np.frombuffer, a packed record field, an unpickled dask
    # chunk) is copied.
    return arr if arr.flags.aligned else arr.copy()


class Prepared(NamedTuple):
    """Arrays in the layout a loop reads, and what is needed to explain an error."""

    y_true: Optional[np.ndarray]   # (n, K) or (A, C, B) in the compute dtype
    y_pred: np.ndarray             # (n, K) or (A, C, B) in the compute dtype
    labels: Optional[np.ndarray]   # (n,) int64, sparse only
    sample_shape: tuple            # shape of the per-sample loss
    n_samples: int
    n_elements: int
    dtype: np.dtype
    insert_axis: Optional[int]     # where a column/class index goes in y_pred's index
    pred_shape: tuple = ()         # y_pred's shape as given (before any squeeze)


def locate(prep, i, k):
    """The index in the caller's y_pred of sample ``i`` (and column/class ``k``)."""
    shape = prep.sample_shape
    idx = [int(j) for j in np.unravel_index(i, shape)] if shape else []
    if prep.insert_axis is not None and k is not None and k >= 0:
        idx.insert(prep.insert_axis, int(k))
    return tuple(idx)


_FAST_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _squeeze_trailing(a, b):
    # Keras: (n,) against (n, 1) -- a trailing axis of 1 on one side only is dropped.
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        return a.reshape(a.shape[:-1]), b
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        return a, b.reshape(b.shape[:-1])
    return a, b


def elementwise(y_true, y_pred):
    """Regression and binary: same shape, per-sample loss = mean over the last axis."""
    if (type(y_true) is np.ndarray and type(y_pred) is np.ndarray
            and y_true.shape == y_pred.shape and y_true.dtype == y_pred.dtype
            and y_pred.dtype in _FAST_DTYPES and y_pred.ndim in (1, 2)
            and y_true.flags.aligned and y_pred.flags.aligned):
        # The common case (two float arrays of one shape), in a few hundred nanoseconds:
        # the rest of the checks below cannot fire for it.
        yt, yp = y_true, y_pred
        pred_shape = yp.shape
    else:
        yt = as_array(y_true, "y_true")
        yp = as_array(y_pred, "y_pred")
        pred_shape = yp.shape
        yt, yp = _squeeze_trailing(yt, yp)
        if yt.shape != yp.shape:
            raise ValueError(
                "y_true and y_pred must have the same shape (a trailing axis of 1 on one "
                f"side is squeezed); got y_true {yt.shape} and y_pred {yp.shape}"
            )
        dtype = compute_dtype(yp)
        yt = _cast(yt, dtype)
        yp = _cast(yp, dtype)
    shape = yp.shape
    if yp.ndim <= 1:
        sample_shape, width, insert_axis = shape, 1, None
    else:
        sample_shape, width, insert_axis = shape[:-1], shape[-1], yp.ndim - 1
    n = math.prod(sample_shape)
    return Prepared(
        yt.reshape(n, width), yp.reshape(n, width), None,
        sample_shape, n, n * width, yp.dtype, insert_axis, pred_shape,
    )


def _class_layout(yp, axis):
    if yp.ndim == 0:
        raise ValueError("y_pred must have at least one axis (the class axis); got a scalar")
    if not -yp.ndim <= axis < yp.ndim:
        raise ValueError(
            f"axis {axis} is out of range for y_pred of shape {yp.shape} ({yp.ndim} axes)"
        )
    axis %= yp.ndim
    outer = math.prod(yp.shape[:axis])
    classes = yp.shape[axis]
    inner = math.prod(yp.shape[axis + 1:])
    sample_shape = yp.shape[:axis] + yp.shape[axis + 1:]
    if classes == 0 and outer * inner > 0:
        raise ValueError(f"y_pred has no classes: axis {axis} of shape {yp.shape} has size 0")
    return axis, (outer, classes, inner), sample_shape


def categorical(y_true, y_pred, axis):
    yt = as_array(y_true, "y_true")
    yp = as_array(y_pred, "y_pred")
    axis, layout, sample_shape = _class_layout(yp, axis)
    if yt.shape != yp.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape; got y_true {yt.shape} "
            f"and y_pred {yp.shape}"
        )
    dtype = compute_dtype(yp)
    n = layout[0] * layout[2]
    return Prepared(
        _cast(yt, dtype).reshape(layout), _cast(yp, dtype).reshape(layout), None,
        sample_shape, n, yp.size, dtype, axis, yp.shape,
    )


def _first(mask):
    flat = np.flatnonzero(mask.reshape(-1))
    return int(flat[0]) if flat.size else None


def _labels(yt, sample_shape, n_classes):
    kind = yt.dtype.kind
    if kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(yt) | (yt != np.trunc(yt))
        i = _first(bad)
        if i is not None:
            idx = tuple(int(j) for j in np.unravel_index(i, sample_shape)) if sample_shape else ()
            raise ValueError(
                f"y_true must hold integer class labels; got {yt.reshape(-1)[i].item()!r} "
                f"at index {idx}"
            )
        # Beyond +-2**62 no label can be valid, and the cast to int64 would be undefined.
        i = _first(np.abs(yt) > 2.0 ** 62)
        if i is not None:
            idx = tuple(int(j) for j in np.unravel_index(i, sample_shape)) if sample_shape else ()
            raise ValueError(
                f"y_true label {yt.reshape(-1)[i].item()!r} at index {idx} is outside "
                f"[0, {n_classes})"
            )
    elif kind == "u" and yt.dtype.itemsize == 8:
        i = _first(yt > _INT64_MAX)
        if i is not None:
            idx = tuple(int(j) for j in np.unravel_index(i, sample_shape)) if sample_shape else ()
            raise ValueError(
                f"y_true label {int(yt.reshape(-1)[i])} at index {idx} is outside "
                f"[0, {n_classes})"
            )
    return _cast(yt, np.int64).reshape(-1)


def sparse(y_true, y_pred, axis):
    yt = as_array(y_true, "y_true")
    yp = as_array(y_pred, "y_pred")
    axis, layout, sample_shape = _class_layout(yp, axis)
    with_class_axis = yp.shape[:axis] + (1,) + yp.shape[axis + 1:]
    if yt.shape == with_class_axis and yt.shape != sample_shape:
        yt = yt.reshape(sample_shape)
    if yt.shape != sample_shape:
        raise ValueError(
            f"y_true must have the shape of y_pred without its class axis {axis}, "
            f"{sample_shape} (or {with_class_axis}); got y_true {yt.shape} "
            f"and y_pred {yp.shape}"
        )
    dtype = compute_dtype(yp)
    labels = _labels(yt, sample_shape, layout[1])
    n = layout[0] * layout[2]
    return Prepared(
        None, _cast(yp, dtype).reshape(layout), labels,
        sample_shape, n, yp.size, dtype, axis, yp.shape,
    )


def sample_weights(sample_weight, sample_shape, n):
    """``(weights, has_weight)``: per-sample float64 weights of length n (a stride-0 view
    for a scalar), or None and False when there are none."""
    if sample_weight is None:
        return None, False
    w = as_array(sample_weight, "sample_weight")
    original = w.shape
    if w.ndim == len(sample_shape) + 1 and w.shape[-1] == 1:
        w = w.reshape(w.shape[:-1])  # Keras's (n, 1) against (n,)
    elif 0 < w.ndim < len(sample_shape) and w.shape == sample_shape[: w.ndim]:
        # Keras: one weight per batch entry weights every loss of that entry.
        w = w.reshape(w.shape + (1,) * (len(sample_shape) - w.ndim))
    try:
        w = np.broadcast_to(w, sample_shape)
    except ValueError:
        raise ValueError(
            f"sample_weight of shape {original} cannot be broadcast to the per-sample "
            f"loss shape {sample_shape}"
        ) from None
    return _cast(w, np.float64).reshape(n), True


def class_weights(class_weight, n_classes):
    if class_weight is None:
        return None, False
    w = check_class_weight(class_weight)
    if w.shape != (n_classes,):
        raise ValueError(
            f"class_weight must have one weight per class, shape ({n_classes},); "
            f"got shape {w.shape}"
        )
    return np.ascontiguousarray(w), True


def pos_weights(pos_weight, width):
    if pos_weight is None:
        return np.broadcast_to(_ONE, (width,))
    w = check_pos_weight(pos_weight)
    try:
        return np.broadcast_to(w, (width,))
    except ValueError:
        raise ValueError(
            f"pos_weight of shape {w.shape} cannot be broadcast to the last axis of "
            f"y_pred (size {width})"
        ) from None


def grad_buffer(grad_out, prep, name="grad_out"):
    """The array a derivative goes to (``grad_out`` / ``hess_out``, or a new one), and its
    view in the loop's layout."""
    if grad_out is None:
        grad = np.empty(prep.pred_shape, dtype=prep.dtype)
    else:
        if not isinstance(grad_out, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array; got {type(grad_out).__name__}")
        if grad_out.shape != prep.pred_shape or grad_out.dtype != prep.dtype:
            raise ValueError(
                f"{name} must have y_pred's shape {prep.pred_shape} and the compute dtype "
                f"{prep.dtype}; got shape {grad_out.shape} and dtype {grad_out.dtype}"
            )
        if not (grad_out.flags.c_contiguous and grad_out.flags.writeable
                and grad_out.flags.aligned):
            raise ValueError(f"{name} must be a writeable, aligned C-contiguous array")
        grad = grad_out
    return grad, grad.reshape(prep.y_pred.shape)


def clip_bounds(epsilon):
    """[eps, 1 - eps] in double for every dtype, so float32 input gives the float64
    result to ~1e-6 (Keras computes 1 - eps in float32, which is 1 - 1.19e-7)."""
    return epsilon, 1.0 - epsilon


# --- data errors reported by the loops -----------------------------------------------------

def raise_data_error(err, i, k, prep, loss_name, ignore_index=None):
    """Turn a loop's (code, sample, column/label) report into SPEC section 5's ValueError."""
    if err == _loops.LABEL:
        idx = locate(prep, i, None)
        n_classes = prep.y_pred.shape[1]
        extra = f" and is not ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"y_true label {k} at index {idx} is outside [0, {n_classes}){extra}"
        )
    idx = locate(prep, i, k)
    if prep.y_pred.ndim == 3:
        a, c = divmod(i, prep.y_pred.shape[2])
        p = prep.y_pred[a, k, c] if k >= 0 else None
        y = prep.y_true[a, k, c] if prep.y_true is not None and k >= 0 else None
    else:
        p, y = prep.y_pred[i, k], (prep.y_true[i, k] if prep.y_true is not None else None)
    if err == _loops.TARGET:
        raise ValueError(
            f"y_true must lie in [0, 1] for {loss_name}; got {float(y)!r} at index {idx}"
        )
    if err == _loops.PROB_RANGE:
        raise ValueError(
            f"y_pred must lie in [0, 1] when from_logits=False; got {float(p)!r} at index "
            f"{idx}. If y_pred holds logits, pass from_logits=True."
        )
    if err == _loops.PROB_NEG:
        raise ValueError(
            f"y_pred holds a negative probability {float(p)!r} at index {idx}; with "
            "from_logits=False each row must be non-negative (pass from_logits=True for logits)"
        )
    if err == _loops.ROW_ZERO:
        raise ValueError(
            f"y_pred row at index {idx} (all classes) sums to 0; with from_logits=False "
            "each row needs a positive sum"
        )
    raise RuntimeError(f"cyloss internal error: unknown data error code {err}")
