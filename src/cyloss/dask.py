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

import functools
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
    "kl_divergence",
    "nll",
    "nll_loss",
    "categorical_hinge",
    "cosine_similarity",
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "sparse_categorical_focal_crossentropy",
    "multilabel_soft_margin",
    *(e.function for e in _losses.ELEMENTWISE),
    *(a for e in _losses.ELEMENTWISE for a in e.aliases),
    "ctc",
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


def _with_param(weight, function, kind):
    """A loss whose parameter comes from the whole of y_true (hinge's label rule) gets it
    as a last 0-d block, decided over all chunks (_param_graph): the chunk's weights and
    the function with that parameter fixed."""
    if kind is None:
        return weight, function
    return weight[:-1], functools.partial(_losses._with_param, kind, float(weight[-1]))


def _block_param(y_pred, y_true, *, kind, ndim):
    """One chunk's answer to the whole-array rule (see losses._param_of)."""
    return np.full((1,) * ndim, _losses._param_of(kind, y_true, y_pred))


def _block_partial(y_pred, y_true, *weight, function, options, axis, scalar_weight,
                   kind=None, block_info=None):
    """One chunk's ``(num, den, count)``, shaped to sit in the blocks' grid."""
    weight, function = _with_param(weight, function, kind)
    w = np.squeeze(weight[0], axis=axis) if weight else scalar_weight
    try:
        sums = function(y_true, y_pred, sample_weight=w, reduction=V.PARTIAL, **options)
    except ValueError as exc:
        raise _in_chunk(exc, block_info) from None
    shape = [1] * y_pred.ndim
    shape[axis] = 3
    return np.array(sums, dtype=np.float64).reshape(shape)


def _block_none(y_pred, y_true, *weight, function, options, axis, scalar_weight,
                kind=None, block_info=None):
    """One chunk's per-sample losses (``reduction="none"``)."""
    weight, function = _with_param(weight, function, kind)
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
    if getattr(type(loss), "_prepared", False):
        # Keras's hinge rule looks at the whole of y_true: every chunk answers it, the
        # smallest answer (a lazy 0-d array) goes to every chunk's loss.
        kind = type(loss)._kind
        answers = da.map_blocks(
            _block_param, arrays[0], arrays[1], kind=kind, ndim=y_pred.ndim,
            chunks=tuple((1,) * len(c) for c in y_pred.chunks), dtype=np.float64,
            token=f"{token}-param", meta=np.empty((0,) * y_pred.ndim, dtype=np.float64))
        arrays.append(answers.min())
        kwargs["kind"] = kind
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


def kl_divergence(
    y_true, y_pred, *, log_input=False, log_target=False, axis=-1, sample_weight=None,
    reduction="mean", epsilon=1e-7, n_threads=None,
):
    """:func:`cyloss.kl_divergence` on Dask arrays (lazy); ``y_pred`` must not be chunked
    along ``axis``. Otherwise as :func:`categorical_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y = da.from_array([[0.2, 0.8], [0.5, 0.5]], chunks=(1, 2))
    >>> lazy = cyloss.dask.kl_divergence(y, [[0.5, 0.5], [0.5, 0.5]], reduction="sum")
    >>> round(float(lazy.compute()), 12)
    0.192744757022
    """
    return _run(_losses.KLDivergence, y_true, y_pred, sample_weight, log_input=log_input,
                log_target=log_target, axis=axis, reduction=reduction, epsilon=epsilon,
                n_threads=n_threads)


def nll(
    y_true, y_pred, *, axis=-1, ignore_index=None, class_weight=None, sample_weight=None,
    reduction="mean", n_threads=None,
):
    """:func:`cyloss.nll` on Dask arrays (lazy); labels as in
    :func:`sparse_categorical_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> x = da.from_array([[-1.2, -0.4], [-0.1, -2.3]], chunks=(1, 2))
    >>> float(cyloss.dask.nll([1, 0], x).compute())
    0.25
    """
    return _run(_losses.NegativeLogLikelihood, y_true, y_pred, sample_weight, axis=axis,
                ignore_index=ignore_index, class_weight=class_weight, reduction=reduction,
                n_threads=n_threads)


nll_loss = nll


def categorical_hinge(
    y_true, y_pred, *, axis=-1, sample_weight=None, reduction="mean", n_threads=None,
):
    """:func:`cyloss.categorical_hinge` on Dask arrays (lazy); ``y_pred`` must not be
    chunked along ``axis``.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> p = da.from_array([[0.3, 0.6, 0.1], [0.2, 0.7, 0.1]], chunks=(1, 3))
    >>> float(cyloss.dask.categorical_hinge([[0, 1, 0], [1, 0, 0]], p).compute())
    1.1
    """
    return _run(_losses.CategoricalHinge, y_true, y_pred, sample_weight, axis=axis,
                reduction=reduction, n_threads=n_threads)


def cosine_similarity(
    y_true, y_pred, *, axis=-1, sample_weight=None, reduction="mean", epsilon=1e-7,
    n_threads=None,
):
    """:func:`cyloss.cosine_similarity` on Dask arrays (lazy); ``y_pred`` must not be
    chunked along ``axis``.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> p = da.from_array([[1.0, 0.0], [2.0, 0.0]], chunks=(1, 2))
    >>> float(cyloss.dask.cosine_similarity([[1.0, 0.0], [0.0, 3.0]], p).compute())
    -0.5
    """
    return _run(_losses.CosineSimilarity, y_true, y_pred, sample_weight, axis=axis,
                reduction=reduction, epsilon=epsilon, n_threads=n_threads)


def binary_focal_crossentropy(
    y_true, y_pred, *, apply_class_balancing=False, alpha=0.25, gamma=2.0,
    from_logits=False, label_smoothing=0.0, sample_weight=None, reduction="mean",
    epsilon=1e-7, n_threads=None,
):
    """:func:`cyloss.binary_focal_crossentropy` on Dask arrays (lazy); chunks as in
    :func:`binary_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y = da.from_array([[0.0, 1.0], [0.0, 0.0]], chunks=1)
    >>> p = da.from_array([[0.6, 0.4], [0.4, 0.6]], chunks=(1, 2))
    >>> round(float(cyloss.dask.binary_focal_crossentropy(y, p).compute()), 6)
    0.267832
    """
    return _run(_losses.BinaryFocalCrossentropy, y_true, y_pred, sample_weight,
                apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
                from_logits=from_logits, label_smoothing=label_smoothing,
                reduction=reduction, epsilon=epsilon, n_threads=n_threads)


def categorical_focal_crossentropy(
    y_true, y_pred, *, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
    axis=-1, sample_weight=None, reduction="mean", epsilon=1e-7, n_threads=None,
):
    """:func:`cyloss.categorical_focal_crossentropy` on Dask arrays (lazy); chunks as in
    :func:`categorical_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y = da.from_array([[0.0, 1.0]], chunks=1)
    >>> x = da.from_array([[0.0, 0.0]], chunks=(1, 2))
    >>> round(float(cyloss.dask.categorical_focal_crossentropy(
    ...     y, x, from_logits=True).compute()), 6)
    0.043322
    """
    return _run(_losses.CategoricalFocalCrossentropy, y_true, y_pred, sample_weight,
                alpha=alpha, gamma=gamma, from_logits=from_logits,
                label_smoothing=label_smoothing, axis=axis, reduction=reduction,
                epsilon=epsilon, n_threads=n_threads)


def sparse_categorical_focal_crossentropy(
    y_true, y_pred, *, alpha=0.25, gamma=2.0, from_logits=False, axis=-1,
    ignore_index=None, class_weight=None, label_smoothing=0.0, sample_weight=None,
    reduction="mean", epsilon=1e-7, n_threads=None,
):
    """:func:`cyloss.sparse_categorical_focal_crossentropy` on Dask arrays (lazy); chunks
    as in :func:`sparse_categorical_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> labels = da.from_array([1, -1], chunks=1)
    >>> x = da.from_array([[0.0, 0.0], [5.0, 0.0]], chunks=(1, 2))
    >>> round(float(cyloss.dask.sparse_categorical_focal_crossentropy(
    ...     labels, x, from_logits=True, ignore_index=-1).compute()), 6)
    0.043322
    """
    return _run(_losses.SparseCategoricalFocalCrossentropy, y_true, y_pred, sample_weight,
                alpha=alpha, gamma=gamma, from_logits=from_logits, axis=axis,
                ignore_index=ignore_index, class_weight=class_weight,
                label_smoothing=label_smoothing, reduction=reduction, epsilon=epsilon,
                n_threads=n_threads)


def multilabel_soft_margin(
    y_true, y_pred, *, class_weight=None, sample_weight=None, reduction="mean",
    n_threads=None,
):
    """:func:`cyloss.multilabel_soft_margin` on Dask arrays (lazy); chunks as in
    :func:`binary_crossentropy`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y = da.from_array([[1.0, 0.0]], chunks=1)
    >>> x = da.from_array([[2.0, -1.0]], chunks=(1, 2))
    >>> round(float(cyloss.dask.multilabel_soft_margin(
    ...     y, x, class_weight=[1.0, 3.0]).compute()), 6)
    0.533357
    """
    return _run(_losses.MultilabelSoftMargin, y_true, y_pred, sample_weight,
                class_weight=class_weight, reduction=reduction, n_threads=n_threads)


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


# --- CTC: chunks along the batch ----------------------------------------------------------

def _ctc_block(y_true, y_pred, label_length, logit_length, weight, start, options,
               reduction):
    reduction = V.PARTIAL if reduction is None else reduction   # see _sample_block
    try:
        return _losses.ctc(y_true, y_pred, label_length=label_length,
                           logit_length=logit_length, sample_weight=weight,
                           reduction=reduction, **options)
    except ValueError as exc:
        raise ValueError(f"{exc} [index within the Dask chunk of y_pred that starts at "
                         f"batch index {start}]") from None


def _ctc_finish(parts, reduction):
    num = math.fsum(p[0] for p in parts)
    den = math.fsum(p[1] for p in parts)
    return np.float64(_losses.reduce_sums(num, den, sum(p[2] for p in parts), reduction))


def ctc(y_true, y_pred, *, label_length=None, logit_length=None, blank=0, from_logits=True,
        zero_infinity=False, divide_by_target_length=False, sample_weight=None,
        reduction="mean", n_threads=None):
    """:func:`cyloss.ctc` on Dask arrays (lazy), one task per chunk of the batch.

    ``y_pred`` ``(batch, time, classes)`` must hold whole sequences (one chunk along its
    time and class axes); ``y_true`` ``(batch, max_label_length)`` (the 1-D concatenated
    layout is in-memory only), the lengths and ``sample_weight`` (Dask, NumPy or scalars)
    are rechunked to ``y_pred``'s batch chunks. Each chunk returns its float64 sums, added
    in chunk order (``math.fsum``) by the last task.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import cyloss.dask
    >>> y_pred = da.zeros((2, 2, 2), chunks=(1, 2, 2))
    >>> y_true = da.from_array(np.array([[1], [1]]), chunks=1)
    >>> round(float(cyloss.dask.ctc(y_true, y_pred).compute()), 6)
    0.287682
    """
    from dask import delayed
    from dask.base import tokenize

    loss = _losses.CTC(blank=blank, from_logits=from_logits, zero_infinity=zero_infinity,
                       divide_by_target_length=divide_by_target_length,
                       reduction=reduction, n_threads=n_threads)
    reduction = loss.reduction
    options = _options(loss)
    y_pred = _as_dask(y_pred)
    _check_known(y_pred, "y_pred")
    if y_pred.ndim != 3:
        raise ValueError("y_pred must have shape (batch, time, classes); "
                         f"got shape {y_pred.shape}")
    for axis, what in ((1, "time"), (2, "class")):
        if len(y_pred.chunks[axis]) > 1:
            raise ValueError(
                f"y_pred is chunked along axis {axis} (the {what} axis): chunks "
                f"{y_pred.chunks[axis]}. Each chunk must hold whole sequences; rechunk "
                f"first, e.g. y_pred.rechunk({{1: -1, 2: -1}})")
    n = y_pred.shape[0]
    batch = y_pred.chunks[0]
    y_true = _as_dask(y_true)
    _check_known(y_true, "y_true")
    if y_true.ndim != 2 or y_true.shape[0] != n:
        raise ValueError(f"y_true must have shape (batch, max_label_length) with batch = "
                         f"{n} (y_pred's first axis); got shape {y_true.shape}")
    y_true = y_true.rechunk((batch, -1))

    def per_sequence(value, name):
        if value is None:
            return [None] * len(batch)
        if not isinstance(value, da.Array) and np.ndim(value) == 0:
            value = np.broadcast_to(V.as_array(value, name), (n,))
        value = _as_dask(value)
        _check_known(value, name)
        if value.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), one value per sequence; got "
                             f"shape {value.shape}")
        return list(value.rechunk((batch,)).to_delayed())

    columns = [list(y_true.to_delayed()[:, 0]), list(y_pred.to_delayed()[:, 0, 0]),
               per_sequence(label_length, "label_length"),
               per_sequence(logit_length, "logit_length"),
               per_sequence(sample_weight, "sample_weight")]
    starts = np.concatenate([[0], np.cumsum(batch)[:-1]]).astype(int).tolist()
    block = delayed(_ctc_block, pure=True)
    token = tokenize(y_true, y_pred, label_length, logit_length, sample_weight, options,
                     reduction)
    if reduction == "none":
        dtype = V.compute_dtype(np.empty(0, dtype=y_pred.dtype))
        parts = [da.from_delayed(block(*args, start, options, "none"), shape=(size,),
                                 dtype=dtype, name=f"cyloss-ctc-{token}-{k}")
                 for k, (size, start, *args) in enumerate(zip(batch, starts, *columns))]
        return da.concatenate(parts) if parts else da.zeros((0,), dtype=dtype)
    sums = [block(*args, start, options, None)
            for start, *args in zip(starts, *columns)]
    total = delayed(_ctc_finish, pure=True)(sums, reduction)
    return da.from_delayed(total, shape=(), dtype=np.float64, name=f"cyloss-ctc-{token}")


# Issue #14: the elementwise PyTorch losses of cyloss._pairs (chunked as regression).
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


# --- the three-array losses and dice/tversky: chunks along axis 0 -------------------------
#
# Each chunk of axis 0 (the samples) runs the in-memory function on its rows of every
# array, as CTC does above. An array takes part chunk by chunk when its axis 0 is the
# samples' axis under the loss's own broadcasting rule (which the per-loss `aligned`
# numbers of dimensions encode); any other array (a scalar label, a variance shared by
# every row) goes whole to every chunk.

def _sample_block(function, arrays, weight, start, options, reduction):
    # The private reduction travels as None: a string through the graph may come back as
    # an equal string that is not V.PARTIAL, which the loss checks by identity.
    reduction = V.PARTIAL if reduction is None else reduction
    try:
        return function(*arrays, sample_weight=weight, reduction=reduction, **options)
    except ValueError as exc:
        raise ValueError(f"{exc} [index within the Dask chunk that starts at sample "
                         f"{start} of axis 0]") from None


def _along_samples(loss, names, arrays, lead, aligned, sample_shape, sample_weight):
    """The lazy result of ``loss(*arrays, sample_weight=...)`` with one task per chunk of
    ``arrays[lead]``'s axis 0, which must be the first axis of ``sample_shape`` (the
    per-sample shape); ``aligned[k]``: the numbers of dimensions at which array ``k``'s
    axis 0 is the samples' axis."""
    from dask import delayed
    from dask.base import tokenize

    reduction = loss.reduction
    options = _options(loss)
    function = type(loss)._function
    x = _as_dask(arrays[lead])
    _check_known(x, names[lead])
    if not sample_shape or sample_shape[0] != x.shape[0] or x.ndim == 0:
        raise ValueError(
            f"{names[lead]} of shape {x.shape} has no axis of samples to chunk: Dask "
            f"needs axis 0 to index the samples (per-sample shape {sample_shape})")
    for axis in range(1, x.ndim):
        if len(x.chunks[axis]) > 1:
            raise ValueError(
                f"{names[lead]} is chunked along axis {axis}: chunks {x.chunks[axis]}. "
                f"Only axis 0 (the samples) may be chunked; rechunk first, e.g. "
                f"{names[lead]}.rechunk({{{axis}: -1}})")
    n, batch = x.shape[0], x.chunks[0]

    def column(value, name, ndims):
        if value is None:
            return [None] * len(batch)
        if not isinstance(value, da.Array):
            value = V.as_array(value, name)
        if value.ndim in ndims and value.shape[0] == n:
            value = _as_dask(value)
            _check_known(value, name)
            value = value.rechunk((batch,) + (-1,) * (value.ndim - 1))
            return list(value.to_delayed().reshape(-1))
        if isinstance(value, da.Array):
            _check_known(value, name)
            value = value.rechunk(-1).to_delayed().reshape(-1)[0]
        return [value] * len(batch)

    columns = [column(a, name, ndims) for a, name, ndims in zip(arrays, names, aligned)]
    p = len(sample_shape)
    weights = column(sample_weight, "sample_weight", (p, p + 1))
    starts = np.concatenate([[0], np.cumsum(batch)[:-1]]).astype(int).tolist()
    block = delayed(_sample_block, pure=True)
    token = tokenize(*arrays, sample_weight, options, reduction, type(loss).__name__)
    name = f"cyloss-{function.__name__}-{token}"
    if reduction == "none":
        dtype = np.result_type(*(V.compute_dtype(np.empty(0, dtype=a.dtype))
                                 for a in arrays if hasattr(a, "dtype")
                                 and np.issubdtype(a.dtype, np.floating)), np.float32)
        parts = [da.from_delayed(block(function, args, w, start, options, "none"),
                                 shape=(size,) + tuple(sample_shape[1:]), dtype=dtype,
                                 name=f"{name}-{k}")
                 for k, (size, start, w, *args) in enumerate(zip(batch, starts, weights,
                                                                 *columns))]
        return (da.concatenate(parts) if parts
                else da.zeros((0,) + tuple(sample_shape[1:]), dtype=dtype))
    sums = [block(function, args, w, start, options, None)
            for start, w, *args in zip(starts, weights, *columns)]
    total = delayed(_ctc_finish, pure=True)(sums, reduction)
    return da.from_delayed(total, shape=(), dtype=np.float64, name=name)


def _rows_shape(shape):
    """Per-sample shape of a loss that is a mean over (or a function of) the last axis."""
    return tuple(shape) if len(shape) <= 1 else tuple(shape[:-1])


def _shape_of(a):
    return a.shape if isinstance(a, da.Array) else np.shape(a)


def _overlap(cls, y_true, y_pred, sample_weight, axis, **options):
    loss = cls(axis=axis, **options)
    shape = _shape_of(y_pred)
    if axis is None:
        raise ValueError(
            f"{cls.__name__} with axis=None sums over every axis: the whole input is one "
            "sample, which Dask cannot split. Give axis the axes of one sample (e.g. "
            "axis=-1 or a tuple of every axis but 0)")
    ndim = len(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    reduced = {a % ndim for a in axes if -ndim <= a < ndim}
    if 0 in reduced:
        raise ValueError(f"{cls.__name__}: axis {axis!r} sums over axis 0, where Dask "
                         "chunks the samples; it must leave axis 0 out")
    sample_shape = tuple(d for a, d in enumerate(shape) if a not in reduced)
    return _along_samples(loss, ("y_true", "y_pred"), (y_true, y_pred), 1,
                          ((ndim,), (ndim,)), sample_shape, sample_weight)


def dice(y_true, y_pred, *, axis=None, sample_weight=None, reduction="mean",
         n_threads=None):
    """:func:`cyloss.dice` on Dask arrays (lazy), one task per chunk of axis 0.

    ``axis`` must name the axes of one sample and leave axis 0 out (with the default
    ``axis=None`` the whole input is one sample: a ``ValueError``); only axis 0 of
    ``y_pred`` may be chunked, and ``y_true`` and ``sample_weight`` are rechunked to it.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y = da.from_array([[1.0, 0.0], [1.0, 1.0]], chunks=(1, 2))
    >>> round(float(cyloss.dask.dice(y, [[1.0, 0.0], [0.0, 1.0]], axis=-1).compute()), 6)
    0.166667
    """
    return _overlap(_losses.Dice, y_true, y_pred, sample_weight, axis,
                    reduction=reduction, n_threads=n_threads)


def tversky(y_true, y_pred, *, alpha=0.5, beta=0.5, axis=None, sample_weight=None,
            reduction="mean", n_threads=None):
    """:func:`cyloss.tversky` on Dask arrays (lazy); chunking as :func:`dice`.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> y = da.from_array([[1.0, 0.0], [1.0, 1.0]], chunks=(1, 2))
    >>> round(float(cyloss.dask.tversky(y, [[1.0, 0.0], [0.0, 1.0]], axis=-1,
    ...                                 alpha=0.3, beta=0.7).compute()), 6)
    0.115385
    """
    return _overlap(_losses.Tversky, y_true, y_pred, sample_weight, axis, alpha=alpha,
                    beta=beta, reduction=reduction, n_threads=n_threads)


def margin_ranking(y_true, input1, input2, *, margin=0.0, sample_weight=None,
                   reduction="mean", n_threads=None):
    """:func:`cyloss.margin_ranking` on Dask arrays (lazy), one task per chunk of
    ``input1``'s axis 0 (the samples; its other axes must be one chunk).

    ``input2``, and ``y_true`` and ``sample_weight`` where their axis 0 is the samples'
    (same number of axes as the inputs, or one more of size 1 at the end), are rechunked
    to ``input1``; a ``y_true`` that broadcasts otherwise (a scalar, one label per
    column) goes whole to every chunk.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> x1 = da.from_array([2.0, 0.0, 0.0], chunks=2)
    >>> float(cyloss.dask.margin_ranking([1.0, -1.0, 1.0], x1, [0.0, 1.0, 0.0],
    ...                                  margin=0.5).compute())
    0.16666666666666666
    """
    loss = _losses.MarginRanking(margin=margin, reduction=reduction, n_threads=n_threads)
    shape = _shape_of(input1)
    k = len(shape)
    return _along_samples(loss, ("y_true", "input1", "input2"), (y_true, input1, input2),
                          1, ((k, k + 1), (k,), (k,)), _rows_shape(shape), sample_weight)


def gaussian_nll(y_true, y_pred, var, *, full=False, eps=1e-6, sample_weight=None,
                 reduction="mean", n_threads=None):
    """:func:`cyloss.gaussian_nll` on Dask arrays (lazy); chunking as
    :func:`margin_ranking`, with ``y_pred`` leading (``var`` of ``y_pred``'s shape, or
    without its last axis, is chunked with it).

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> x = da.from_array([1.0, 2.0], chunks=1)
    >>> round(float(cyloss.dask.gaussian_nll([0.0, 0.0], x, [1.0, 4.0]).compute()), 6)
    0.846574
    """
    loss = _losses.GaussianNLL(full=full, eps=eps, reduction=reduction,
                               n_threads=n_threads)
    shape = _shape_of(y_pred)
    k = len(shape)
    return _along_samples(loss, ("y_true", "y_pred", "var"), (y_true, y_pred, var), 1,
                          ((k, k + 1), (k,), (k, k - 1) if k >= 2 else (k,)),
                          _rows_shape(shape), sample_weight)


def cosine_embedding(y_true, input1, input2, *, margin=0.0, sample_weight=None,
                     reduction="mean", n_threads=None):
    """:func:`cyloss.cosine_embedding` on Dask arrays (lazy), one task per chunk of
    ``input1``'s axis 0 (its last axis, the vectors, one chunk); ``y_true`` (one label
    per vector) and ``sample_weight`` are rechunked to it.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> x1 = da.from_array([[1.0, 0.0], [0.0, 1.0]], chunks=(1, 2))
    >>> float(cyloss.dask.cosine_embedding([1.0, -1.0], x1, [[1.0, 0.0], [0.0, 1.0]],
    ...                                    reduction="sum").compute())
    1.0
    """
    loss = _losses.CosineEmbedding(margin=margin, reduction=reduction, n_threads=n_threads)
    shape = _shape_of(input1)
    k = len(shape)
    return _along_samples(loss, ("y_true", "input1", "input2"), (y_true, input1, input2),
                          1, ((k - 1, k), (k,), (k,)), tuple(shape[:-1]), sample_weight)


def triplet_margin(anchor, positive, negative, *, margin=1.0, p=2.0, eps=1e-6, swap=False,
                   sample_weight=None, reduction="mean", n_threads=None):
    """:func:`cyloss.triplet_margin` on Dask arrays (lazy), one task per chunk of
    ``anchor``'s axis 0 (its last axis one chunk); ``positive``, ``negative`` and
    ``sample_weight`` are rechunked to it.

    Examples
    --------
    >>> import dask.array as da
    >>> import cyloss.dask
    >>> a = da.from_array([[0.0, 0.0], [1.0, 1.0]], chunks=(1, 2))
    >>> round(float(cyloss.dask.triplet_margin(a, [[0.0, 1.0], [1.0, 1.0]],
    ...                                        [[0.0, 2.0], [1.0, 1.5]]).compute()), 6)
    0.250001
    """
    loss = _losses.TripletMargin(margin=margin, p=p, eps=eps, swap=swap,
                                 reduction=reduction, n_threads=n_threads)
    shape = _shape_of(anchor)
    k = len(shape)
    return _along_samples(loss, ("anchor", "positive", "negative"),
                          (anchor, positive, negative), 0, ((k,), (k,), (k,)),
                          tuple(shape[:-1]), sample_weight)


__all__ += ["dice", "tversky", "margin_ranking", "gaussian_nll", "cosine_embedding",
            "triplet_margin"]

#: Losses of cyloss without a Dask version here (none since issue #14's last step).
UNSUPPORTED = ()
