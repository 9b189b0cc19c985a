"""Streaming accumulators: one loss over data that arrives in batches.

An :class:`Accumulator` keeps the three float64 sums that every reduction is made of
and adds each batch's sums to them, so the result over many batches is the result of
one call on the concatenated data (to rounding: the sums are associated differently).
The sums of a batch come from the ordinary loss function called with the private
reduction ``_validation.PARTIAL``; no loss is computed here.
"""

import math

from cyloss import _validation as V
from cyloss.losses import Loss, get, reduce_sums

__all__ = ["Accumulator"]

# Options that cannot change the sums, so accumulators that differ only in them merge.
_NOT_COMPARED = ("name", "n_threads")


class Accumulator:
    r"""The running value of a loss over batches: Keras's stateful metric, exactly.

    With ``w_i`` the sample weight, ``l_i`` the per-sample loss (class weights inside
    it) and ``v_i = class_weight[label_i]`` for sparse cross-entropy (else 1), summed
    over every counted (not ignored) sample of every batch seen so far:

    .. math::

        \mathrm{num} = \sum_i w_i l_i, \qquad
        \mathrm{den} = \sum_i w_i v_i, \qquad
        \mathrm{count} = \#\{i \text{ counted}\}

    and :meth:`result` is ``num / count`` (``"mean"``), ``num / den``
    (``"weighted_mean"``) or ``num`` (``"sum"``), with ``0.0`` for a zero denominator:
    the value one call of the loss on all the batches concatenated returns. Each
    batch's sums are computed in float64 by the compiled loops and added here with
    compensated (Neumaier) summation, so however many batches there are, the result
    agrees with the single call to rounding, not bitwise: the single call adds the
    same terms in other blocks. On sums of non-negative terms both lie within about
    1e-15 (relative) of the exactly rounded sum, so they differ by a few 1e-15 at
    most.

    Parameters
    ----------
    loss : Loss or str
        A loss object such as ``cyloss.Huber(delta=2.0)``, or a name that
        :func:`cyloss.get` accepts (``"mse"``, ``"huber"``, ...). Its options, including
        ``reduction`` and ``n_threads``, apply to every batch. ``reduction="none"``
        returns one value per sample, which no running scalar can hold: it is a
        ``ValueError``.

    Attributes
    ----------
    loss : Loss
    num, den : float
        The float64 sums above (read-only; kept internally with their compensation).
    count : int
        The number of counted samples (an exact integer).

    Notes
    -----
    The state is plain data, so an accumulator pickles (its loss travels as its
    config) and partial accumulators computed in other processes or machines combine
    with :meth:`merge`. A batch that raises (for instance a label out of range) leaves
    the state unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> import cyloss
    >>> y_true = np.array([0.0, 1.0, 2.0, 3.0])
    >>> y_pred = np.array([0.5, 1.0, 4.0, 3.0])
    >>> acc = cyloss.Accumulator(cyloss.MeanSquaredError())
    >>> acc.update(y_true[:3], y_pred[:3]).update(y_true[3:], y_pred[3:])
    Accumulator(MeanSquaredError(), num=4.25, den=4.0, count=4)
    >>> acc.result() == cyloss.mean_squared_error(y_true, y_pred)
    True

    Partial accumulators, say from two workers, merge:

    >>> left = cyloss.Accumulator("mse").update(y_true[:1], y_pred[:1])
    >>> right = cyloss.Accumulator("mse").update(y_true[1:], y_pred[1:])
    >>> left.merge(right).result()
    1.0625
    """

    def __init__(self, loss):
        if isinstance(loss, str):
            loss = get(loss)
        if not isinstance(loss, Loss):
            raise TypeError(
                f"Accumulator needs a cyloss loss object (such as cyloss.Huber()) or a loss "
                f"name; got {type(loss).__name__}"
            )
        if loss.reduction == "none":
            raise ValueError(
                f"Accumulator cannot accumulate {loss!r}: reduction='none' gives one value "
                "per sample, not a running scalar. Use reduction='mean', 'weighted_mean' "
                "or 'sum', or keep the per-sample arrays of each batch yourself."
            )
        self.loss = loss
        self.reset()

    def reset(self):
        """Forget every batch: ``num = den = 0.0``, ``count = 0``. Returns ``self``."""
        self._num = (0.0, 0.0)  # (sum, rounding error of the sum): see _two_sum_add
        self._den = (0.0, 0.0)
        self.count = 0
        return self

    def update(self, y_true, y_pred, *more, sample_weight=None):
        """Add one batch, exactly as the loss would take it; returns ``self``.

        Called with the arrays the loss is called with: ``update(y_true, y_pred,
        sample_weight=None)``, or for the three-array losses (margin ranking, Gaussian
        NLL, cosine embedding, triplet margin) ``update(a, b, c, sample_weight=None)``
        in the loss's own order, e.g. ``update(y_true, input1, input2)``.

        Parameters
        ----------
        y_true, y_pred, *more, sample_weight : array_like
            One batch, with the shapes and meaning of the loss's arguments. Batches may
            have any number of samples (zero included).

        Raises
        ------
        ValueError, TypeError
            Whatever the loss raises for this batch; the state is then unchanged. A
            wrong number of arrays is a ``TypeError``.

        Examples
        --------
        >>> import cyloss
        >>> acc = cyloss.Accumulator(cyloss.MarginRanking(margin=0.5))
        >>> acc.update([1.0, -1.0], [2.0, 0.0], [0.0, 1.0]).update([1.0], [0.0], [0.0])
        Accumulator(MarginRanking(margin=0.5), num=0.5, den=3.0, count=3)
        >>> acc.result()
        0.16666666666666666
        """
        arrays = (y_true, y_pred)
        n_arrays = 3 if getattr(self.loss, "_three_inputs", False) else 2
        if len(more) > n_arrays - 2:   # a positional sample_weight after the arrays
            if sample_weight is not None:
                raise TypeError("update() got sample_weight both by position and by name")
            *more, sample_weight = more
        arrays += tuple(more)
        if len(arrays) != n_arrays:
            raise TypeError(
                f"{type(self.loss).__name__} takes {n_arrays} arrays; update() got "
                f"{len(arrays)}"
            )
        options = self.loss._call_options()
        options["reduction"] = V.PARTIAL
        num, den, count = type(self.loss)._function(
            *arrays, sample_weight=sample_weight, **options
        )
        self._add(num, den, count)
        return self

    def _add(self, num, den, count):
        self._num = _two_sum_add(self._num, num)
        self._den = _two_sum_add(self._den, den)
        self.count += count

    @property
    def num(self):
        """``sum w_i l_i`` over every batch so far (float)."""
        return self._num[0] + self._num[1]

    @property
    def den(self):
        """``sum w_i v_i`` over every batch so far (float)."""
        return self._den[0] + self._den[1]

    def _compare_key(self):
        config = self.loss.get_config()
        return type(self.loss), {k: v for k, v in config.items() if k not in _NOT_COMPARED}

    def merge(self, other):
        """Add the sums of another accumulator of the same loss; returns ``self``.

        ``other`` must hold the same loss class with the same options; ``name`` and
        ``n_threads``, which cannot change the sums, may differ. ``other`` is unchanged.

        Raises
        ------
        TypeError
            ``other`` is not an :class:`Accumulator`.
        ValueError
            The losses differ.
        """
        if not isinstance(other, Accumulator):
            raise TypeError(f"can only merge an Accumulator; got {type(other).__name__}")
        if self._compare_key() != other._compare_key():
            raise ValueError(
                f"cannot merge accumulators of different losses: {self.loss!r} and "
                f"{other.loss!r} (only name and n_threads may differ)"
            )
        self._add(other._num[0], other._den[0], other.count)
        self._add(other._num[1], other._den[1], 0)
        return self

    def result(self):
        """The reduced loss over every batch so far, as a Python float.

        The loss's reduction applied to the sums: ``num / count`` (``"mean"``),
        ``num / den`` (``"weighted_mean"``) or ``num`` (``"sum"``); ``0.0`` when the
        denominator is zero, as for an empty call.
        """
        return reduce_sums(self.num, self.den, self.count, self.loss.reduction)

    def __getstate__(self):
        # The loss travels as its class (by reference) and config, like Loss itself.
        return {"loss_class": type(self.loss), "config": self.loss.get_config(),
                "num": self._num, "den": self._den, "count": self.count}

    def __setstate__(self, state):
        self.loss = state["loss_class"].from_config(state["config"])
        self._num = tuple(float(x) for x in state["num"])
        self._den = tuple(float(x) for x in state["den"])
        self.count = int(state["count"])

    def __repr__(self):
        return (f"Accumulator({self.loss!r}, num={self.num!r}, den={self.den!r}, "
                f"count={self.count!r})")


def _two_sum_add(acc, x):
    """``(s, c) + x`` with Neumaier's compensation.

    ``s`` is the float64 running sum and ``c`` the sum of its rounding errors, each
    recovered exactly (Fast2Sum, the larger operand first), so ``s + c`` stays within
    about one rounding of the exact sum of the added values however many there are.
    Once the sum is infinite or NaN the compensation is meaningless and kept at 0.
    """
    s, c = acc
    t = s + x
    if not math.isfinite(t):
        return t, 0.0
    if abs(s) >= abs(x):
        c += (s - t) + x
    else:
        c += (x - t) + s
    return t, c
