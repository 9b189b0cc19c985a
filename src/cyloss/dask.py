"""cyloss's losses on Dask arrays: lazy, chunked, exact.

``import cyloss.dask`` (dask is an extra, ``pip install "cyloss[dask]"``; plain
``import cyloss`` never imports it). Its functions take the arguments of their
in-memory namesakes and Dask (or NumPy) arrays:

- A reducing call returns a lazy 0-d Dask array; ``.compute()`` gives the float. Each
  chunk runs the compiled loop on its samples and returns its float64 sums
  ``(num, den, count)`` (the private reduction ``_validation.PARTIAL``); the sums are
  added in a tree reduction (``dask.array.sum`` with ``split_every``), and the last task
  applies the reduction. The result equals the in-memory call's to rounding (~1e-15
  relative on well-conditioned data; the block sums are associated differently).
- ``reduction="none"`` returns a lazy array of the per-sample losses, chunked like
  ``y_pred`` without its class axis (categorical, sparse) or its last axis (regression,
  binary with 2 or more axes).

Chunking rules (chosen to keep every chunk's work and memory as the user set it):

- The axis that each sample reduces over (the class axis ``axis``, or the last axis of a
  regression or binary input) must be a single chunk: a ``ValueError`` names the axis and
  the chunks and shows the ``rechunk`` call. It is refused rather than rechunked, because
  a silent rechunk can multiply the size of every chunk.
- ``y_true`` and ``sample_weight`` (Dask or NumPy) are rechunked to ``y_pred``'s chunks
  where they differ, which moves only the (usually smaller) targets and weights.
- Shapes, dtypes and options are checked when the graph is built, with the in-memory
  messages; data checks (labels in range, probabilities in [0, 1], ...) run inside the
  chunks at compute time, and their message names the index within the chunk and the
  chunk's first index in ``y_pred``.

Examples
--------
>>> import dask.array as da
>>> import numpy as np
>>> import cyloss, cyloss.dask
>>> y_true = da.from_array(np.arange(8.0).reshape(4, 2), chunks=(2, 2))
>>> y_pred = y_true + 1.0
>>> loss = cyloss.dask.huber(y_true, y_pred, delta=0.5)
>>> loss
dask.array<cyloss-huber, shape=(), dtype=float64, chunksize=(), chunktype=numpy.ndarray>
>>> float(loss.compute())
0.375
>>> cyloss.dask.mse(y_true, y_pred, reduction="none").chunks
((2, 2),)
"""

import math

import dask.array as da
import numpy as np

from cyloss import _chunking
from cyloss import _validation as V
from cyloss import losses as _losses

__all__ = [
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    *(e.function for e in _losses.ELEMENTWISE),
    *(a for e in _losses.ELEMENTWISE for a in e.aliases),
]

#: Partial sums combined per task of the tree reduction.
SPLIT_EVERY = 16


def _as_dask(x):
    return x if isinstance(x, da.Array) else da.asarray(x)


def _is_scalar_weight(w):
    return not isinstance(w, da.Array) and np.ndim(w) == 0


def _check_known(x, name):
    if any(math.isnan(s) for s in x.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {x.shape}); call "
            f"{name}.compute_chunk_sizes() first"
        )


def _block_partial(y_pred, y_true, *weight, function, options, axis, scalar_weight,
                   block_info=None):
    """One chunk's ``(num, den, count)``, shaped to sit in the blocks' grid."""
    w = np.squeeze(weight[0], axis=axis) if weight else scalar_weight
    try:
        sums = function(y_true, y_pred, sample_weight=w, reduction=V.PARTIAL, **options)
    except ValueError as exc:
        raise _in_chunk(exc, block_info) from None
    shape = [1] * y_pred.ndim
    shape[axis] = 3
    return np.array(sums, dtype=np.float64).reshape(shape)


def _block_none(y_pred, y_true, *weight, function, options, axis, scalar_weight,
                block_info=None):
    """One chunk's per-sample losses (``reduction="none"``)."""
    w = np.squeeze(weight[0], axis=axis) if weight else scalar_weight
    try:
        out = function(y_true, y_pred, sample_weight=w, reduction="none", **options)
    except ValueError as exc:
        raise _in_chunk(exc, block_info) from None
    return out.reshape(y_pred.shape[:axis] + y_pred.shape[axis + 1:])


def _in_chunk(exc, block_info):
    if not block_info or 0 not in block_info:
        return exc
    start = tuple(lo for lo, _ in block_info[0]["array-location"])
    return ValueError(f"{exc} [index within the Dask chunk of y_pred that starts at {start}]")


def _finish(totals, reduction):
    num, den, count = totals
    return np.float64(_losses.reduce_sums(num, den, int(count), reduction))


def _compute(loss, y_true, y_pred, sample_weight):
    """The lazy result of ``loss(y_true, y_pred, sample_weight)`` on Dask arrays."""
    reduction = loss.reduction
    y_true, y_pred = _as_dask(y_true), _as_dask(y_pred)
    _check_known(y_true, "y_true")
    _check_known(y_pred, "y_pred")
    scalar_weight = None
    weight = None
    if sample_weight is not None:
        if _is_scalar_weight(sample_weight):
            scalar_weight = V.as_array(sample_weight, "sample_weight")
        else:
            weight = _as_dask(sample_weight)
            _check_known(weight, "sample_weight")
    lay = _chunking.layout(
        loss, y_true.shape, y_true.dtype, y_pred.shape, y_pred.dtype,
        None if weight is None else weight.shape, None if weight is None else weight.dtype,
    )

    # Bring every input to y_pred's axes: the common shape of a regression/binary input
    # (Keras's trailing squeeze), a size-1 axis where a sample reduces (a 1-D input is n
    # samples of width 1, which gives the same values), a size-1 class axis for labels.
    if lay.kind == "elementwise":
        y_true, y_pred = y_true.reshape(lay.shape), y_pred.reshape(lay.shape)
        if lay.reduced_axis is None:
            y_true = y_true.reshape(lay.sample_shape + (1,))
            y_pred = y_pred.reshape(lay.sample_shape + (1,))
        axis = y_pred.ndim - 1
        what = "the last axis, over which each sample's loss is the mean"
    else:
        axis = lay.class_axis
        if lay.kind == "sparse" and y_true.ndim < y_pred.ndim:
            y_true = da.expand_dims(y_true, axis)
        what = "the class axis"
    if len(y_pred.chunks[axis]) > 1:
        raise ValueError(
            f"y_pred is chunked along axis {axis} ({what}): chunks "
            f"{y_pred.chunks[axis]}. Each chunk must hold that whole axis; rechunk first, "
            f"e.g. y_pred.rechunk({{{axis}: -1}})"
        )

    def aligned(x):
        chunks = tuple(c if n == size else (n,)
                       for c, n, size in zip(y_pred.chunks, x.shape, y_pred.shape))
        return x if x.chunks == chunks else x.rechunk(chunks)

    arrays = [y_pred, aligned(y_true)]
    if weight is not None:
        w = weight.reshape(lay.weight_shape) if weight.shape != lay.weight_shape else weight
        arrays.append(aligned(da.expand_dims(w, axis)))

    function = type(loss)._function
    kwargs = dict(function=function, options=_options(loss), axis=axis,
                  scalar_weight=scalar_weight)
    token = f"cyloss-{function.__name__}"
    if reduction == "none":
        out = da.map_blocks(
            _block_none, *arrays, drop_axis=axis, dtype=lay.dtype, token=token,
            meta=np.empty((0,) * (y_pred.ndim - 1), dtype=lay.dtype), **kwargs,
        )
        return out.reshape(lay.sample_shape) if out.shape != lay.sample_shape else out

    chunks = tuple((3,) if i == axis else (1,) * len(c) for i, c in enumerate(y_pred.chunks))
    parts = da.map_blocks(
        _block_partial, *arrays, chunks=chunks, dtype=np.float64, token=f"{token}-sums",
        meta=np.empty((0,) * y_pred.ndim, dtype=np.float64), **kwargs,
    )
    others = tuple(i for i in range(y_pred.ndim) if i != axis)
    totals = parts.sum(axis=others, split_every=SPLIT_EVERY) if others else parts
    return totals.map_blocks(
        _finish, reduction, drop_axis=0, dtype=np.float64, meta=np.empty((), np.float64),
        token=token,
    )


def _options(loss):
    options = loss._call_options()
    del options["reduction"]
    return options


def _run(cls, y_true, y_pred, sample_weight, **options):
    return _compute(cls(**options), y_true, y_pred, sample_weight)


# --- functions ----------------------------------------------------------------------------

def categorical_crossentropy(
    y_true, y_pred, *, from_logits=False, label_smoothing=0.0, axis=-1,
    sample_weight=None, reduction="mean", epsilon=1e-7, n_threads=None,
):
    """:func:`cyloss.categorical_crossentropy` on Dask arrays (lazy).

    Parameters as in the in-memory function; ``y_true``, ``y_pred`` and
    ``sample_weight`` may be Dask or NumPy arrays. ``y_pred`` must not be chunked along
    ``axis``.

    Returns
    -------
    dask.array.Array
        0-d float64 (``.compute()`` gives the value), or for ``reduction="none"`` the
        per-sample losses, chunked like ``y_pred`` without ``axis``.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y_true = da.from_array([[0, 1, 0], [0, 0, 1]], chunks=(1, 3))
    >>> y_pred = da.from_array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], chunks=(1, 3))
    >>> round(float(cyloss.dask.categorical_crossentropy(y_true, y_pred).compute()), 7)
    1.1769392
    """
    return _run(_losses.CategoricalCrossentropy, y_true, y_pred, sample_weight,
                from_logits=from_logits, label_smoothing=label_smoothing, axis=axis,
                reduction=reduction, epsilon=epsilon, n_threads=n_threads)


def sparse_categorical_crossentropy(
    y_true, y_pred, *, from_logits=False, axis=-1, ignore_index=None, class_weight=None,
    label_smoothing=0.0, sample_weight=None, reduction="mean", epsilon=1e-7,
    n_threads=None,
):
    """:func:`cyloss.sparse_categorical_crossentropy` on Dask arrays (lazy).

    ``y_true`` holds the labels, shaped like ``y_pred`` without ``axis`` (or with a
    class axis of 1); it is rechunked to ``y_pred``'s chunks. ``ignore_index`` and
    ``class_weight`` are honoured across chunks (``"weighted_mean"`` divides by the
    total weight of every chunk). Otherwise as :func:`categorical_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> labels = da.from_array([0, -1, 1], chunks=2)
    >>> logits = da.from_array([[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]], chunks=(2, 2))
    >>> round(float(cyloss.dask.sparse_categorical_crossentropy(
    ...     labels, logits, from_logits=True, ignore_index=-1).compute()), 6)
    0.313262
    """
    return _run(_losses.SparseCategoricalCrossentropy, y_true, y_pred, sample_weight,
                from_logits=from_logits, axis=axis, ignore_index=ignore_index,
                class_weight=class_weight, label_smoothing=label_smoothing,
                reduction=reduction, epsilon=epsilon, n_threads=n_threads)


def binary_crossentropy(
    y_true, y_pred, *, from_logits=False, label_smoothing=0.0, pos_weight=None,
    sample_weight=None, reduction="mean", epsilon=1e-7, n_threads=None,
):
    """:func:`cyloss.binary_crossentropy` on Dask arrays (lazy).

    With 2 or more axes, the last axis (the mean of each sample) must be one chunk.
    Otherwise as :func:`categorical_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y = da.from_array([[0.0], [1.0]], chunks=1)
    >>> p = da.from_array([[0.4], [0.6]], chunks=1)
    >>> round(float(cyloss.dask.binary_crossentropy(y, p).compute()), 7)
    0.5108256
    """
    return _run(_losses.BinaryCrossentropy, y_true, y_pred, sample_weight,
                from_logits=from_logits, label_smoothing=label_smoothing,
                pos_weight=pos_weight, reduction=reduction, epsilon=epsilon,
                n_threads=n_threads)


# The elementwise losses, one per entry of cyloss.losses.ELEMENTWISE, with the in-memory
# function's signature (compiled from source, as there).

_FUNCTION_SOURCE = """\
def {function}(y_true, y_pred, *, {param}sample_weight=None, reduction="mean",
               n_threads=None):
    return _run(_losses.{cls}, y_true, y_pred, sample_weight, {option}reduction=reduction,
                n_threads=n_threads)
"""

_FUNCTION_DOC = """:func:`cyloss.{function}` on Dask arrays (lazy); see :func:`binary_crossentropy`
for the chunking rule.

Examples
--------
>>> import dask.array as da
>>> import cyloss.dask
>>> float(cyloss.dask.{function}(da.from_array({y_true}, chunks=1), {args}).compute())
{value}
"""


def _make_elementwise(e):
    p, x = e.param, e.example
    namespace = {}
    exec(_FUNCTION_SOURCE.format(  # this module's globals: doctest finds the examples
        function=e.function, cls=e.cls, param=f"{p.name}={p.default!r}, " if p else "",
        option=f"{p.name}={p.name}, " if p else ""), globals(), namespace)
    function = namespace[e.function]
    function.__doc__ = _FUNCTION_DOC.format(
        function=e.function, y_true=x.y_true, value=x.value,
        args=x.y_pred + (f", {x.options}" if x.options else ""))
    return function


for _e in _losses.ELEMENTWISE:
    globals()[_e.function] = _make_elementwise(_e)
    globals().update({alias: globals()[_e.function] for alias in _e.aliases})
del _e


# Issue #14: the elementwise PyTorch losses of cyloss._pairs (chunked as regression).
# dice and tversky (sums over axes a chunk may split) and the three-array losses have no
# Dask version.
UNSUPPORTED = ("dice", "tversky", "margin_ranking", "gaussian_nll", "cosine_embedding",
               "triplet_margin")


def poisson_nll(y_true, y_pred, *, log_input=True, full=False, eps=1e-8,
                sample_weight=None, reduction="mean", n_threads=None):
    """:func:`cyloss.poisson_nll` on Dask arrays (lazy); see :func:`binary_crossentropy`
    for the chunking rule.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> round(float(cyloss.dask.poisson_nll(da.from_array([2.0, 0.0], chunks=1),
    ...                                     [0.0, 1.0]).compute()), 6)
    1.859141
    """
    return _run(_losses.PoissonNLL, y_true, y_pred, sample_weight, log_input=log_input,
                full=full, eps=eps, reduction=reduction, n_threads=n_threads)


def hinge_embedding(y_true, y_pred, *, margin=1.0, sample_weight=None, reduction="mean",
                    n_threads=None):
    """:func:`cyloss.hinge_embedding` on Dask arrays (lazy); see
    :func:`binary_crossentropy` for the chunking rule.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> float(cyloss.dask.hinge_embedding(da.from_array([1.0, -1.0], chunks=1),
    ...                                   [0.5, 0.5], margin=2.0).compute())
    1.0
    """
    return _run(_losses.HingeEmbedding, y_true, y_pred, sample_weight, margin=margin,
                reduction=reduction, n_threads=n_threads)


__all__ += ["poisson_nll", "hinge_embedding"]
