r"""cyloss losses as XGBoost and LightGBM custom objectives.

:func:`xgboost` returns the callable that ``xgboost.train(params, dtrain, obj=...)`` takes
(``obj(predt, dtrain) -> (grad, hess)``); :func:`lightgbm` returns the one that LightGBM's
scikit-learn estimators take as ``objective=`` (``obj(y_true, y_pred, weight) -> (grad,
hess)``). Both compute the per-sample gradient and Hessian with
:meth:`cyloss.Loss.grad_hess` in one fused pass, multiplied by the sample weights, and
follow the library's own conventions, so that a cyloss objective trains the same trees as
the built-in objective it replaces:

======================================  ========================  ======================  ============================================
cyloss loss                             XGBoost built-in          LightGBM built-in       gradient, Hessian (per element, weight 1)
======================================  ========================  ======================  ============================================
``mean_squared_error``                  ``reg:squarederror``      ``regression``          ``e``, ``1`` (the libraries' scale, e**2 / 2)
``mean_absolute_error``                 (none: leaves re-fitted)  (none: leaves re-fit)   ``sign(e)``, ``1``
``huber`` (``delta``)                   (pseudo-Huber only)       ``huber`` (``alpha``)   ``clip(e, -delta, delta)``, ``1``
``smooth_l1`` (``beta``)                (none)                    (none)                  ``clip(e / beta, -1, 1)``, ``1 / beta``
``binary_crossentropy``                 ``binary:logistic``       ``binary``              ``p - y``, ``p (1 - p)``
``sparse_categorical_crossentropy``     ``multi:softprob``        ``multiclass``          ``p - onehot``, ``c p (1 - p)``
======================================  ========================  ======================  ============================================

with ``e = prediction - label``, ``p`` the sigmoid or softmax of the raw scores, ``c = 2``
for XGBoost and ``K / (K - 1)`` for LightGBM (their multiclass Hessian factors), and
XGBoost's floor of ``1e-16`` on the logistic Hessians. The linear arms of Huber and
smooth L1 take the curvature of the quadratic arm, as LightGBM's ``huber`` does: their
exact Hessian, 0, would make a Newton leaf value ``-G / lambda``, unbounded. The options of
the loss apply (``delta``, ``beta``, ``pos_weight``, ``label_smoothing``,
``class_weight``, ``ignore_index``); the cross-entropies take raw scores
(``from_logits=True``, set for you when the loss is given by name). Multi-output
regression and multi-label binary predictions of shape ``(n, T)`` are treated element by
element (one sample weight per row). Categorical cross-entropy is refused: boosters pass
class indices; use the sparse loss. Every other loss is refused with a ``ValueError``.

Models trained with a custom objective start from the raw score ``base_score`` (XGBoost)
or 0 (LightGBM) and predict raw scores: compare with a built-in objective with
``output_margin=True`` / ``raw_score=True`` and the same starting score.

Examples
--------
>>> import numpy as np, cyloss.objectives
>>> obj = cyloss.objectives.lightgbm("huber", delta=1.0)
>>> obj(np.array([0.0, 0.0]), np.array([0.5, 3.0]), None)
(array([0.5, 1. ]), array([1., 1.]))
"""

import numpy as np

from cyloss import losses as L

__all__ = ["xgboost", "lightgbm"]

_ENTROPIES = ("binary_crossentropy", "sparse_categorical_crossentropy")
_FLOOR = 1e-16          # XGBoost's floor on the logistic and softmax Hessians
# The losses of the table in the module docstring. The others are refused rather than
# given a Hessian convention nobody chose (several have a zero or unbounded one).
_SUPPORTED = (L.MeanSquaredError, L.MeanAbsoluteError, L.Huber, L.SmoothL1,
              L.BinaryCrossentropy, L.SparseCategoricalCrossentropy)


def _loss(loss, options):
    """The loss object an objective uses, checked for boosting."""
    if not isinstance(loss, L.Loss):
        name = L._ALIASES.get(loss, loss)
        if name in _ENTROPIES or name in ("BinaryCrossentropy",
                                          "SparseCategoricalCrossentropy"):
            options = {"from_logits": True, **options}
    obj = L._loss_object(loss, options)
    if isinstance(obj, L.CategoricalCrossentropy):
        raise ValueError(
            "categorical_crossentropy cannot be a boosting objective: boosters pass class "
            "indices, use sparse_categorical_crossentropy"
        )
    if not isinstance(obj, _SUPPORTED):
        names = ", ".join(c.__name__ for c in _SUPPORTED)
        raise ValueError(f"unknown loss for a boosting objective: {obj.name} (the objectives "
                         f"implement the conventions of the table above for {names})")
    if not obj._options.get("from_logits", True):
        raise ValueError(f"a boosting objective takes raw scores: {obj.name} needs "
                         "from_logits=True")
    return obj


class _Objective:
    """The gradient and Hessian of a loss with a library's conventions (module docstring)."""

    _library = None

    def __init__(self, loss, **options):
        self.loss = _loss(loss, options)

    def __repr__(self):
        return f"cyloss.objectives.{self._library}({self.loss!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.loss == self.loss

    def __hash__(self):
        return hash((type(self), self.loss))

    def _terms(self, labels, preds, weight):
        preds = np.asarray(preds)
        weight = None if weight is None or np.size(weight) == 0 else np.asarray(
            weight, dtype=np.float64)
        loss = self.loss
        if isinstance(loss, L.SparseCategoricalCrossentropy):
            if preds.ndim != 2:
                raise ValueError("a multiclass objective needs raw scores of shape "
                                 f"(n_samples, n_classes); got shape {preds.shape}")
            grad, hess = loss.grad_hess(np.asarray(labels).reshape(-1), preds, weight)
            k = preds.shape[1]
            hess *= 2.0 if self._library == "xgboost" else k / max(k - 1, 1)
            return grad, self._floor(hess, weight, preds.shape)
        # Element by element: an (n, T) prediction is n * T one-output samples.
        shape = preds.shape
        labels = np.asarray(labels).reshape(-1)
        if weight is not None and preds.ndim == 2:
            weight = np.repeat(weight, shape[1])
        grad, hess = loss.grad_hess(labels, preds.reshape(-1), weight)
        if isinstance(loss, L.BinaryCrossentropy):
            hess = self._floor(hess, weight, hess.shape)
        else:
            if isinstance(loss, L.MeanSquaredError):
                grad *= 0.5
            beta = loss._options.get("beta", 0.0) if isinstance(loss, L.SmoothL1) else 0.0
            hess[...] = 1.0 / beta if beta > 0 else 1.0
            if weight is not None:
                hess *= weight
        return grad.reshape(shape), hess.reshape(shape)

    def _floor(self, hess, weight, shape):
        if self._library == "xgboost":
            floor = _FLOOR if weight is None else _FLOOR * weight.reshape(
                (-1,) + (1,) * (len(shape) - 1))
            np.maximum(hess, floor, out=hess, casting="unsafe")
        return hess


class _XGBoost(_Objective):
    _library = "xgboost"

    def __call__(self, predt, dtrain):
        return self._terms(dtrain.get_label(), predt, dtrain.get_weight())


class _LightGBM(_Objective):
    _library = "lightgbm"

    def __call__(self, y_true, y_pred, weight):
        return self._terms(y_true, y_pred, weight)


def xgboost(loss, **options):
    """An objective for ``xgboost.train(params, dtrain, obj=...)``.

    Parameters
    ----------
    loss : str or cyloss.Loss
        A loss name (built with ``options``) or object; see the module docstring for the
        losses and the conventions.

    Returns
    -------
    callable
        ``obj(predt, dtrain) -> (grad, hess)``, arrays shaped like ``predt``; picklable.

    Examples
    --------
    >>> import numpy as np, cyloss.objectives
    >>> class DMatrix:  # what the objective reads of an xgboost.DMatrix
    ...     def get_label(self): return np.array([1.0, 0.0])
    ...     def get_weight(self): return np.array([])
    >>> obj = cyloss.objectives.xgboost("binary_crossentropy")
    >>> obj(np.array([0.0, 0.0]), DMatrix())
    (array([-0.5,  0.5]), array([0.25, 0.25]))
    """
    return _XGBoost(loss, **options)


def lightgbm(loss, **options):
    """An objective for LightGBM's scikit-learn estimators (``objective=...``).

    Parameters
    ----------
    loss : str or cyloss.Loss
        As in :func:`xgboost`.

    Returns
    -------
    callable
        ``obj(y_true, y_pred, weight) -> (grad, hess)``; picklable.

    Examples
    --------
    >>> import numpy as np, cyloss.objectives
    >>> obj = cyloss.objectives.lightgbm("mse")
    >>> obj(np.array([0.0, 1.0]), np.array([1.0, 3.0]), None)
    (array([1., 2.]), array([1., 1.]))
    """
    return _LightGBM(loss, **options)
