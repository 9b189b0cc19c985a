"""How a loss call splits into per-sample chunks, worked out from shapes alone.

The out-of-core paths (``python -m cyloss eval`` over ``.npy`` files, ``cyloss.dask``)
cut their inputs into chunks of samples, call the ordinary loss function on each chunk
with the private reduction ``_validation.PARTIAL`` and add the float64 sums. This module
says where to cut, without reading any data: it runs ``_validation``'s own shape checks
on zero-stride stand-ins of the arrays ("ghosts", O(1) memory whatever the shape), so
the shapes accepted and the error messages are exactly those of an in-memory call.

Chunks always run along the first axis of the per-sample shape ``S``. That is axis 0 of
every input, except that a class axis 0 (categorical or sparse ``axis=0``) shifts it to
axis 1 of ``y_pred`` (and of a categorical ``y_true``).
"""

import math
from typing import NamedTuple, Optional

import numpy as np

from cyloss import _validation as V

_KINDS = {
    "categorical_crossentropy": "categorical",
    "sparse_categorical_crossentropy": "sparse",
    "kl_divergence": "categorical",
    "categorical_hinge": "categorical",
    "cosine_similarity": "categorical",
    "nll": "sparse",
    "categorical_focal_crossentropy": "categorical",
    "sparse_categorical_focal_crossentropy": "sparse",
}


def kind_of(loss):
    """``"categorical"``, ``"sparse"`` or ``"elementwise"`` (regression and binary)."""
    return _KINDS.get(type(loss)._function.__name__, "elementwise")


def ghost(shape, dtype):
    """A read-only array of zeros of any shape that uses one element of memory."""
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape))


def take(array, axis, start, stop):
    """``array[start:stop]`` along ``axis``; the whole array when ``axis`` is None."""
    if axis is None:
        return array
    return array[(slice(None),) * axis + (slice(start, stop),)]


class Layout(NamedTuple):
    """Where the samples of a loss call lie in each input.

    ``n_rows`` is the length of the first per-sample axis (1 for a single sample); rows
    ``[start, stop)`` of the call are ``take(y_pred, y_pred_axis, start, stop)`` with
    ``take(y_true, y_true_axis, ...)`` and ``take(sample_weight.reshape(weight_shape),
    weight_axis, ...)``. ``reduced_axis`` is the axis of ``shape`` (the common shape of
    ``y_pred`` after Keras's trailing-axis squeeze) that each sample reduces over: the
    class axis, or the last axis of a regression/binary input with 2 or more axes.
    """

    kind: str
    shape: tuple
    sample_shape: tuple
    n_rows: int
    dtype: np.dtype
    class_axis: Optional[int]
    reduced_axis: Optional[int]
    y_pred_axis: Optional[int]
    y_true_axis: Optional[int]
    weight_shape: Optional[tuple]
    weight_axis: Optional[int]


def _check_dtype(dtype, name):
    # Same TypeError as an in-memory call, from a 0-d array of that dtype.
    V.as_array(np.zeros((), dtype=dtype), name)


def weight_shape(w_shape, sample_shape):
    """``sample_weight``'s shape after ``_validation.sample_weights``'s two Keras rules,
    left-padded with 1s to ``len(sample_shape)`` so that it broadcasts plainly."""
    w_shape = tuple(w_shape)
    s = tuple(sample_shape)
    # The checks and messages are _validation's own, on a stand-in of the weights.
    V.sample_weights(ghost(w_shape, np.float64), s, math.prod(s))
    if len(w_shape) == len(s) + 1 and w_shape[-1] == 1:
        w_shape = w_shape[:-1]
    elif 0 < len(w_shape) < len(s) and w_shape == s[: len(w_shape)]:
        w_shape = w_shape + (1,) * (len(s) - len(w_shape))
    return (1,) * (len(s) - len(w_shape)) + w_shape


def layout(loss, y_true_shape, y_true_dtype, y_pred_shape, y_pred_dtype,
           sample_weight_shape=None, sample_weight_dtype=None):
    """The :class:`Layout` of ``loss(y_true, y_pred, sample_weight)``, from shapes alone.

    Raises the ValueError or TypeError that the in-memory call would raise for these
    shapes, dtypes and options (data checks such as label ranges happen per chunk).
    """
    kind = kind_of(loss)
    y_true_shape, y_pred_shape = tuple(y_true_shape), tuple(y_pred_shape)
    _check_dtype(y_true_dtype, "y_true")
    _check_dtype(y_pred_dtype, "y_pred")
    dtype = V.compute_dtype(np.zeros((), dtype=y_pred_dtype))
    options = loss._call_options()
    class_axis = reduced_axis = None
    if kind == "elementwise":
        prep = V.elementwise(ghost(y_true_shape, dtype), ghost(y_pred_shape, dtype))
        s = prep.sample_shape
        # The common shape after Keras's squeeze of a trailing axis of 1 on one side.
        shape = V._squeeze_trailing(ghost(y_true_shape, dtype),
                                    ghost(y_pred_shape, dtype))[1].shape
        reduced_axis = len(shape) - 1 if len(shape) >= 2 else None
        y_pred_axis = y_true_axis = 0 if s else None
    else:
        yt_dtype = np.int64 if kind == "sparse" else dtype
        check = V.sparse if kind == "sparse" else V.categorical
        prep = check(ghost(y_true_shape, yt_dtype), ghost(y_pred_shape, dtype),
                     V.check_axis(options["axis"]))
        s = prep.sample_shape
        shape = y_pred_shape
        class_axis = reduced_axis = options["axis"] % len(y_pred_shape)
        y_pred_axis = (1 if class_axis == 0 else 0) if s else None
        if kind == "categorical" or len(y_true_shape) == len(y_pred_shape):
            y_true_axis = y_pred_axis  # y_true with y_pred's axes (a class axis of 1)
        else:
            y_true_axis = 0 if s else None

    w_shape = w_axis = None
    if sample_weight_shape is not None:
        _check_dtype(sample_weight_dtype, "sample_weight")
        w_shape = weight_shape(sample_weight_shape, s)
        w_axis = 0 if s and w_shape[0] == s[0] else None

    lay = Layout(kind, shape, s, s[0] if s else 1, dtype, class_axis, reduced_axis,
                 y_pred_axis, y_true_axis, w_shape, w_axis)
    # The options that depend on shapes (class_weight's length, pos_weight's width) are
    # checked by the function itself, on a ghost call with no samples: a slice of none,
    # or for a single sample (no per-sample axis) a new leading axis of length 0, ahead
    # of y_pred's only axis when it is the class axis.
    yt_dtype = np.int64 if kind == "sparse" else dtype
    options["reduction"] = V.PARTIAL
    if s:
        yt = take(ghost(y_true_shape, yt_dtype), y_true_axis, 0, 0)
        yp = take(ghost(y_pred_shape, dtype), y_pred_axis, 0, 0)
    else:
        yt = ghost((0,) + y_true_shape, yt_dtype)
        yp = ghost((0,) + y_pred_shape, dtype)
        if kind != "elementwise":
            options["axis"] = -1
    type(loss)._function(yt, yp, **options)
    return lay
