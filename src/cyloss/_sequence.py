"""CTC loss (Connectionist Temporal Classification): :func:`ctc` and :class:`CTC`.

Validation and reductions here; the forward-backward recursion is the compiled loop of
``_ctc.pyx``, one sequence per OpenMP iteration. ``losses.py`` registers both names.
"""

import math

import numpy as np

from cyloss import _ctc as _loop
from cyloss import _validation as V
from cyloss._openmp import resolve_threads
from cyloss.losses import _GRAD, Loss, _defaults


def _check_blank(blank):
    if isinstance(blank, (bool, np.bool_)) or not isinstance(blank, (int, np.integer)):
        raise ValueError(f"blank must be an integer class index; got {blank!r}")
    return int(blank)


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _integers(a, name, what):
    """An integer-valued array as int64, or ValueError naming the first bad entry."""
    if a.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(a) | (a != np.trunc(a)) | (np.abs(a) > 2.0 ** 62)
        if bad.any():
            idx = tuple(int(j) for j in np.unravel_index(int(np.argmax(bad)), a.shape))
            raise ValueError(f"{name} must hold integer {what}; got "
                             f"{a[idx].item()!r} at index {idx}")
    elif a.dtype.kind == "u" and a.dtype.itemsize == 8:
        bad = a > np.iinfo(np.int64).max
        if bad.any():
            idx = tuple(int(j) for j in np.unravel_index(int(np.argmax(bad)), a.shape))
            raise ValueError(f"{name} {a[idx].item()} at index {idx} is out of range")
    return a.astype(np.int64)


def _lengths(value, name, n, top, top_name):
    """Per-sequence lengths: shape (n,) (or a scalar for all), integers in [0, top]."""
    a = V.as_array(value, name)
    if a.ndim == 0:
        a = np.broadcast_to(a, (n,))
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one length per sequence; "
                         f"got shape {a.shape}")
    a = _integers(a, name, "lengths")
    bad = (a < 0) | (a > top)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {int(a[i])} is outside [0, {top}] ({top_name})")
    return np.ascontiguousarray(a)


class _Prepared:
    __slots__ = ("x", "labels", "offsets", "label_length", "logit_length", "dtype")


def _prepare(y_true, y_pred, label_length, logit_length, blank):
    yp = V.as_array(y_pred, "y_pred")
    if yp.ndim != 3:
        raise ValueError("y_pred must have shape (batch, time, classes); "
                         f"got shape {yp.shape}")
    n, T, C = yp.shape
    if not 0 <= blank < C:
        raise ValueError(f"blank = {blank} is outside [0, {C}) (y_pred has {C} classes)")
    dtype = V.compute_dtype(yp)
    yt = V.as_array(y_true, "y_true")
    if yt.dtype.kind == "b":
        raise TypeError("y_true must hold integer labels; got dtype bool")

    if yt.ndim == 1 and label_length is not None:
        # PyTorch's concatenated targets: sequence i's labels follow sequence i-1's.
        lengths = _lengths(label_length, "label_length", n, yt.shape[0], "y_true's size")
        total = int(lengths.sum())
        if total != yt.shape[0]:
            raise ValueError(f"1-D y_true holds the concatenated targets, so its size "
                             f"{yt.shape[0]} must equal sum(label_length) = {total}")
        offsets = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        inside = np.ones(yt.shape, dtype=bool)
        position = lambda j: (j,)  # noqa: E731
    elif yt.ndim == 2:
        if yt.shape[0] != n:
            raise ValueError(f"y_true must have shape (batch, max_label_length) with batch "
                             f"= {n} (y_pred's first axis); got shape {yt.shape}")
        S = yt.shape[1]
        if label_length is None:
            # Keras: the labels are padded with the blank (mask) index; label_length
            # counts the rest. A blank before a label is caught below as a blank inside
            # the target.
            lengths = np.count_nonzero(yt != blank, axis=1).astype(np.int64)
        else:
            lengths = _lengths(label_length, "label_length", n, S, "y_true's second axis")
        offsets = np.arange(n, dtype=np.int64) * S
        inside = np.arange(S) < lengths[:, None]
        position = lambda j: tuple(int(k) for k in np.unravel_index(j, yt.shape))  # noqa
    else:
        raise ValueError("y_true must have shape (batch, max_label_length), or be 1-D "
                         "concatenated targets with label_length given; got shape "
                         f"{yt.shape}")

    # Labels inside the lengths must be classes other than the blank; the padding past
    # each length is never read.
    if yt.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = inside & (~np.isfinite(yt) | (yt != np.trunc(yt)))
        if bad.any():
            j = int(np.argmax(bad.reshape(-1)))
            raise ValueError(f"y_true must hold integer labels; got "
                             f"{yt.reshape(-1)[j].item()!r} at index {position(j)}")
    with np.errstate(invalid="ignore"):
        out = inside & ((yt < 0) | (yt >= C))
    if out.any():
        j = int(np.argmax(out.reshape(-1)))
        raise ValueError(f"y_true label {yt.reshape(-1)[j].item()!r} at index {position(j)} "
                         f"is outside [0, {C})")
    labels = np.where(inside, yt, 0).astype(np.int64).reshape(-1)
    is_blank = inside.reshape(-1) & (labels == blank)
    if is_blank.any():
        j = int(np.argmax(is_blank))
        hint = (" (Keras layout: labels are padded at the end with the blank, so a "
                "blank before a label is not allowed)" if label_length is None else "")
        raise ValueError(f"y_true label at index {position(j)} is the blank index {blank}, "
                         f"which cannot be a target label{hint}")
    if labels.size == 0:
        labels = np.zeros(1, dtype=np.int64)   # the loop takes &labels[0]

    if logit_length is None:
        logit = np.full(n, T, dtype=np.int64)
    else:
        logit = _lengths(logit_length, "logit_length", n, T, "y_pred's time axis")

    p = _Prepared()
    p.x = V._cast(yp, dtype)
    p.labels = np.ascontiguousarray(labels)
    p.offsets = np.ascontiguousarray(offsets)
    p.label_length = np.ascontiguousarray(lengths)
    p.logit_length = logit
    p.dtype = dtype
    return p


def _grad_buffer(grad_out, shape, dtype):
    if grad_out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(grad_out, np.ndarray):
        raise TypeError(f"grad_out must be a NumPy array; got {type(grad_out).__name__}")
    if grad_out.shape != shape or grad_out.dtype != dtype:
        raise ValueError(f"grad_out must have y_pred's shape {shape} and the compute dtype "
                         f"{dtype}; got shape {grad_out.shape} and dtype {grad_out.dtype}")
    if not (grad_out.flags.c_contiguous and grad_out.flags.writeable
            and grad_out.flags.aligned):
        raise ValueError("grad_out must be a writeable, aligned C-contiguous array")
    return grad_out


def _ctc(y_true, y_pred, label_length, logit_length, blank, from_logits, zero_infinity,
         divide_by_target_length, sample_weight, reduction, n_threads, grad_request=None):
    reduction = V.check_reduction(reduction)
    n_threads = V.check_n_threads(n_threads)
    blank = _check_blank(blank)
    from_logits = V.check_from_logits(from_logits)
    zero_infinity = _check_flag(zero_infinity, "zero_infinity")
    divide = _check_flag(divide_by_target_length, "divide_by_target_length")
    p = _prepare(y_true, y_pred, label_length, logit_length, blank)
    n, T, C = p.x.shape
    weight, has_weight = V.sample_weights(sample_weight, (n,), n)

    # The per-sample factor: l_i = w_i * nll_i (/ max(L_i, 1)), and its share of the
    # reduction for the gradient; all length n, never input-sized.
    factor = weight.copy() if has_weight else np.ones(n)
    if divide:
        factor /= np.maximum(p.label_length, 1)
    den = math.fsum(weight) if has_weight else float(n)
    if reduction == "mean":
        share = 1.0 / n if n else 0.0
    elif reduction == "weighted_mean":
        share = 1.0 / den if den != 0.0 else 0.0
    else:
        share = 1.0
    write_grad = grad_request is not None
    grad = None
    if write_grad:
        grad = _grad_buffer(None if grad_request is _GRAD else grad_request, (n, T, C),
                            p.dtype)
    max_label = int(p.label_length.max()) if n else 0
    # A state of the recursion costs about as much as 16 elements of an elementwise loss
    # (two to four exp/log), which is the unit of resolve_threads' serial threshold.
    work = p.x.size + 16 * n * T * (2 * max_label + 1)
    team = max(1, min(resolve_threads(n_threads, work), n))
    work = np.empty((team, _loop.workspace_size(T, C, max_label, write_grad)))
    nll = np.empty(n)
    _loop.ctc_loop(p.x, p.labels, p.offsets, p.label_length, p.logit_length, blank,
                  from_logits, zero_infinity, np.ascontiguousarray(factor * share), nll,
                  grad, write_grad, work, team)

    with np.errstate(invalid="ignore"):   # a 0 weight on an infinite loss: NaN, as NumPy
        per_sample = nll * factor
    if reduction == "none":
        value = per_sample.astype(p.dtype)
    elif reduction is V.PARTIAL:
        value = (math.fsum(per_sample), den, n)
    else:
        num = math.fsum(per_sample)   # exactly rounded, so independent of any order
        if reduction == "sum":
            value = num
        elif reduction == "mean":
            value = num / n if n else 0.0
        else:
            value = num / den if den != 0.0 else 0.0
    return value if grad is None else (value, grad)


def ctc(y_true, y_pred, *, label_length=None, logit_length=None, blank=0, from_logits=True,
        zero_infinity=False, divide_by_target_length=False, sample_weight=None,
        reduction="mean", n_threads=None):
    r"""CTC loss (Connectionist Temporal Classification), Keras's ``ctc`` and PyTorch's
    ``ctc_loss``.

    .. math:: l_i = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_i)}
              \prod_{t < T_i} p_{t, \pi_t}

    over the alignments ``pi`` of ``T_i`` frames that collapse to the target ``y_i``
    (merge repeats, then drop blanks), with ``p = softmax(y_pred)`` over the classes.
    Computed by the forward-backward recursion, one sequence per thread, in probability
    space scaled per frame (no logarithm per state), or in log space for a sequence in
    which a probability would leave double's normal range; the gradient with respect to
    ``y_pred`` comes from the same alpha-beta pass.

    Without lengths this is Keras 3: ``y_true`` is ``(batch, max_label_length)`` padded
    with the blank (Keras's mask index 0), each target is its labels before the padding,
    and every sequence uses all ``time`` frames. With ``label_length`` /
    ``logit_length`` (PyTorch's ``target_lengths`` / ``input_lengths``) the padding is
    never read. An input too short for its target (``T_i < L_i`` + its number of
    repeated neighbours) has no alignment: its loss is ``inf`` and its gradient 0, or 0
    with ``zero_infinity=True`` (PyTorch). Keras's numerical form gives about 1e5
    there instead of ``inf`` (its log of 0 is -1e5).

    Parameters
    ----------
    y_true : array_like of int
        Labels, ``(batch, max_label_length)``; or, with ``label_length`` given, 1-D
        concatenated targets of size ``sum(label_length)`` (PyTorch). Labels within a
        target are in ``[0, C)`` and not ``blank``.
    y_pred : array_like, shape (batch, time, C)
        Logits (Keras; ``log_softmax`` is applied over the classes), or with
        ``from_logits=False`` log-probabilities used as given (PyTorch's ``log_probs``).
        PyTorch's ``(time, batch, C)`` tensor is passed as ``log_probs.transpose(0, 1)``,
        a view that is read in place.
    label_length : array_like of int, shape (batch,), optional
        The target lengths, in ``[0, max_label_length]``; default: the count of
        non-``blank`` labels per row (Keras).
    logit_length : array_like of int, shape (batch,), optional
        The frames used per sequence, in ``[0, time]``; default ``time`` for all (Keras).
        Frames past a sequence's length are ignored and get gradient 0.
    blank : int, default 0
        The blank class (Keras: always 0, also the padding of ``y_true``).
    from_logits : bool, default True
        ``False``: ``y_pred`` holds log-probabilities (not renormalised), and the
        gradient is taken with respect to them.
    zero_infinity : bool, default False
        Infinite losses (and their gradients) become 0 (PyTorch).
    divide_by_target_length : bool, default False
        Divide each sequence's loss by ``max(L_i, 1)`` before the reduction.
        PyTorch's ``reduction="mean"`` is ``divide_by_target_length=True,
        reduction="mean"``; its ``"sum"`` and ``"none"`` are cyloss's.
    sample_weight : array_like, shape (batch,), optional
    reduction : {"mean", "weighted_mean", "sum", "none"} or an alias, default "mean"
        Over the batch; ``"mean"`` is Keras's ``sum_over_batch_size``.
    n_threads : int or None
        Threads over the batch; the result does not depend on it.

    Returns
    -------
    float or ndarray
        A Python float, or for ``reduction="none"`` the per-sequence losses
        ``(batch,)`` in the compute dtype.

    Raises
    ------
    ValueError
        Shapes other than the above, ``blank`` outside ``[0, C)``, a label outside
        ``[0, C)`` or equal to ``blank`` within a target, non-integer labels or lengths,
        lengths outside their range.
    TypeError
        Non-numeric input.

    Examples
    --------
    Two frames of uniform logits over {blank, a}: the target "a" has three alignments
    (``a a``, ``a -``, ``- a``) of probability 1/4 each, so the loss is ``-log(3/4)``.

    >>> import cyloss
    >>> round(cyloss.ctc([[1]], [[[0.0, 0.0], [0.0, 0.0]]]), 6)
    0.287682
    >>> cyloss.ctc([[1, 1]], [[[0.0, 0.0], [0.0, 0.0]]], reduction="none")
    array([inf])
    """
    return _ctc(y_true, y_pred, label_length, logit_length, blank, from_logits,
                zero_infinity, divide_by_target_length, sample_weight, reduction, n_threads)


class CTC(Loss):
    """CTC loss as a Keras-style object; see :func:`ctc`.

    Called as ``loss(y_true, y_pred, sample_weight=None, *, label_length=None,
    logit_length=None)``; ``value_and_grad`` and ``grad`` take the lengths the same way.

    Examples
    --------
    >>> import cyloss
    >>> loss = cyloss.CTC(zero_infinity=True)
    >>> loss
    CTC(zero_infinity=True)
    >>> loss([[1, 1]], [[[0.0, 0.0], [0.0, 0.0]]])
    0.0
    """

    _function = staticmethod(ctc)
    _defaults = _defaults("ctc", blank=0, from_logits=True, zero_infinity=False,
                          divide_by_target_length=False)

    def __init__(self, *, blank=0, from_logits=True, zero_infinity=False,
                 divide_by_target_length=False, reduction="mean", n_threads=None,
                 name="ctc"):
        super().__init__(
            name=name, reduction=reduction, n_threads=n_threads,
            blank=_check_blank(blank), from_logits=V.check_from_logits(from_logits),
            zero_infinity=_check_flag(zero_infinity, "zero_infinity"),
            divide_by_target_length=_check_flag(divide_by_target_length,
                                                "divide_by_target_length"),
        )

    def __call__(self, y_true, y_pred, sample_weight=None, *, label_length=None,
                 logit_length=None):
        return ctc(y_true, y_pred, label_length=label_length, logit_length=logit_length,
                   sample_weight=sample_weight, **self._call_options())

    def value_and_grad(self, y_true, y_pred, sample_weight=None, grad_out=None, *,
                       label_length=None, logit_length=None):
        """The loss and its gradient with respect to ``y_pred`` (logits, or the
        log-probabilities with ``from_logits=False``), from one forward-backward pass.

        Examples
        --------
        >>> import cyloss
        >>> value, g = cyloss.CTC().value_and_grad([[1]], [[[0.0, 0.0], [0.0, 0.0]]])
        >>> g.round(6)
        array([[[ 0.166667, -0.166667],
                [ 0.166667, -0.166667]]])
        """
        return self._run(y_true, y_pred, sample_weight, self.reduction,
                         _GRAD if grad_out is None else grad_out, label_length,
                         logit_length)

    def grad(self, y_true, y_pred, sample_weight=None, grad_out=None, *, label_length=None,
             logit_length=None):
        """Only the gradient of :meth:`value_and_grad`."""
        return self.value_and_grad(y_true, y_pred, sample_weight, grad_out,
                                   label_length=label_length, logit_length=logit_length)[1]

    def grad_hess(self, y_true, y_pred, sample_weight=None, grad_out=None, hess_out=None):
        raise NotImplementedError("CTC has no diagonal Hessian in cyloss (the recursion "
                                  "gives the gradient only)")

    def _derivatives(self, y_true, y_pred, sample_weight, reduction, grad_request,
                     hess_request=None):
        if hess_request is not None:
            self.grad_hess(y_true, y_pred)
        return self._run(y_true, y_pred, sample_weight, reduction, grad_request, None, None)

    def _run(self, y_true, y_pred, sample_weight, reduction, grad_request, label_length,
             logit_length):
        o = self._options
        return _ctc(y_true, y_pred, label_length, logit_length, o["blank"],
                    o["from_logits"], o["zero_infinity"], o["divide_by_target_length"],
                    sample_weight, reduction, o["n_threads"], grad_request)
