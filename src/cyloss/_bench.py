"""``python -m cyloss bench``: cyloss against NumPy, PyTorch, scikit-learn and two ceilings.

For every workload (a loss, an input size, a dtype) the harness times:

- ``cyloss`` with each ``--threads`` count (``n_threads=k``);
- ``numpy``: the stable NumPy a careful user writes, with Keras semantics (probabilities
  renormalised and clipped, log-sum-exp with the row maximum subtracted, softplus through
  ``np.logaddexp``), reduced as cyloss's ``"mean"``;
- ``torch``: ``torch.nn.functional`` on ``torch.from_numpy`` tensors under
  ``torch.no_grad()`` with PyTorch's default thread count, when PyTorch is importable;
- ``sklearn``: scikit-learn's private ``sklearn._loss`` (``.loss(..., n_threads=k)`` then
  ``.mean()``) for the workloads it covers, when scikit-learn is importable;
- two ceilings: ``read`` (``np.add.reduce`` over each input array: streaming the same bytes
  once; also ``torch.sum`` when PyTorch is importable) and ``exp`` (``np.exp`` over
  ``y_pred`` into a preallocated array, for the cross-entropies).

Each implementation's value is checked once against cyloss's before timing (mismatches
are recorded, never raised). Implementations are interleaved: round ``r`` runs every
implementation once, in an order shuffled per round, after a few warm-up calls; a sample
is the mean over enough back-to-back calls to last ``--target-ms``, after one untimed call
of the same implementation (the previous implementation's OpenMP workers may still be
spinning on a core for a moment: PyTorch and cyloss each bring their own runtime, and
which of them pays for the switch should not depend on the shuffled order). The report
gives the
median and the spread (IQR, min, max) over the rounds, and per workload the ratio of every
median to the read ceiling and to torch. Results go to ``results.json``, ``results.md``
and ``results.png`` (matplotlib, ``pip install "cyloss[bench]"``) under ``--out``.

Only NumPy and cyloss are needed; PyTorch, scikit-learn, matplotlib and threadpoolctl
are used when importable.
"""

import argparse
import datetime
import functools
import gc
import json
import math
import os
import platform
import random
import shlex
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EPS = 1e-7  # cyloss's default epsilon, used by every probability implementation here
DELTA = 1.0  # Huber delta
BETA = 1.0  # smooth L1 beta
FOCAL_ALPHA = 0.25  # focal losses (Keras's and torchvision's defaults)
FOCAL_GAMMA = 2.0
TVERSKY_ALPHA = 0.3  # Tversky: weights of false positives and false negatives
TVERSKY_BETA = 0.7
SCHEMA = 1

# name: (family, from_logits, cyloss function, cyloss keyword arguments, description)
LOSSES = {
    "mae": ("regression", None, "mean_absolute_error", {}, "mean absolute error"),
    "mse": ("regression", None, "mean_squared_error", {}, "mean squared error"),
    "huber": ("regression", None, "huber", {"delta": DELTA}, f"Huber, delta={DELTA:g}"),
    "smooth_l1": ("regression", None, "smooth_l1", {"beta": BETA},
                  f"smooth L1, beta={BETA:g}"),
    "bce_probs": ("binary", False, "binary_crossentropy", {"from_logits": False},
                  "binary cross-entropy from probabilities"),
    "bce_logits": ("binary", True, "binary_crossentropy", {"from_logits": True},
                   "binary cross-entropy from logits"),
    "cce_logits": ("categorical", True, "categorical_crossentropy", {"from_logits": True},
                   "categorical cross-entropy (one-hot targets) from logits"),
    "cce_probs": ("categorical", False, "categorical_crossentropy", {"from_logits": False},
                  "categorical cross-entropy (one-hot targets) from probabilities"),
    "sparse_logits": ("sparse", True, "sparse_categorical_crossentropy",
                      {"from_logits": True}, "sparse cross-entropy from logits"),
    "sparse_probs": ("sparse", False, "sparse_categorical_crossentropy",
                     {"from_logits": False}, "sparse cross-entropy from probabilities"),
    # Value and gradient (issue 5): cyloss's value_and_grad into a reused grad_out against
    # PyTorch's forward + backward and NumPy written by hand.
    "mse_grad": ("regression", None, "mean_squared_error", {},
                 "mean squared error, value and gradient"),
    "bce_logits_grad": ("binary", True, "binary_crossentropy", {"from_logits": True},
                        "binary cross-entropy from logits, value and gradient"),
    "cce_logits_grad": ("categorical", True, "categorical_crossentropy",
                        {"from_logits": True},
                        "categorical cross-entropy from logits, value and gradient"),
    "sparse_logits_grad": ("sparse", True, "sparse_categorical_crossentropy",
                           {"from_logits": True},
                           "sparse cross-entropy from logits, value and gradient"),
    # Keras 3's elementwise catalogue (issue 14), at 10^7 elements (CATALOGUE_SIZES).
    "poisson": ("regression", None, "poisson", {}, "Poisson (Keras's, eps 1e-7 in the log)"),
    "mape": ("regression", None, "mean_absolute_percentage_error", {},
             "mean absolute percentage error"),
    "msle": ("regression", None, "mean_squared_logarithmic_error", {},
             "mean squared logarithmic error"),
    "hinge": ("regression", None, "hinge", {}, "hinge (0/1 labels, Keras's rule)"),
    "squared_hinge": ("regression", None, "squared_hinge", {},
                      "squared hinge (0/1 labels, Keras's rule)"),
    "log_cosh": ("regression", None, "log_cosh", {}, "log-cosh (Keras's, stable form)"),
    # One training step's loss through the framework adapters (issue 15): cyloss.torch's
    # forward + backward against F.cross_entropy's; cyloss.jax under jax.jit(jax.value_and_
    # grad) against optax's. float32 only, at the two large class shapes.
    "torch_ce_step": ("sparse", True, "sparse_categorical_crossentropy",
                      {"from_logits": True},
                      "training step through cyloss.torch.CrossEntropyLoss "
                      "(forward + backward)"),
    "jax_ce_step": ("sparse", True, "sparse_categorical_crossentropy",
                    {"from_logits": True},
                    "training step through cyloss.jax.cross_entropy "
                    "(jit of value_and_grad)"),
    # The row losses of the catalogue (issue 14); from_logits "log" marks log-probability
    # input (the log-softmax of the class data's logits).
    "kl_probs": ("categorical", False, "kl_divergence", {},
                 "KL divergence (Keras: clipped probabilities; one-hot targets)"),
    "kl_logs": ("categorical", "log", "kl_divergence", {"log_input": True},
                "KL divergence from log-probabilities (PyTorch's kl_div, batchmean)"),
    "nll": ("sparse", "log", "nll", {}, "negative log-likelihood of log-probabilities"),
    "categorical_hinge": ("categorical", True, "categorical_hinge", {},
                          "categorical hinge (one-hot targets, scores)"),
    "cosine": ("categorical", True, "cosine_similarity", {},
               "cosine similarity loss (one-hot targets against scores)"),
    # The focal losses (issue 14), at one size each: cyloss's loops against the plain
    # NumPy and torch expressions (torchvision's sigmoid_focal_loss formula for binary).
    "bfocal_logits": ("binary", True, "binary_focal_crossentropy",
                      {"from_logits": True, "apply_class_balancing": True,
                       "alpha": FOCAL_ALPHA, "gamma": FOCAL_GAMMA},
                      f"binary focal cross-entropy from logits, alpha={FOCAL_ALPHA:g}, "
                      f"gamma={FOCAL_GAMMA:g} (torchvision's sigmoid_focal_loss)"),
    "cfocal_logits": ("categorical", True, "categorical_focal_crossentropy",
                      {"from_logits": True, "alpha": FOCAL_ALPHA, "gamma": FOCAL_GAMMA},
                      f"categorical focal cross-entropy from logits, alpha={FOCAL_ALPHA:g}, "
                      f"gamma={FOCAL_GAMMA:g}"),
    "sfocal_logits": ("sparse", True, "sparse_categorical_focal_crossentropy",
                      {"from_logits": True, "alpha": FOCAL_ALPHA, "gamma": FOCAL_GAMMA},
                      f"sparse categorical focal cross-entropy from logits, "
                      f"alpha={FOCAL_ALPHA:g}, gamma={FOCAL_GAMMA:g}"),
    # CTC (issue 14): value and gradient of cyloss.CTC against F.ctc_loss's forward +
    # backward (log_softmax included in both). Shape (batch, time, classes), targets of
    # time // 5 labels.
    "ctc_grad": ("ctc", True, "ctc", {}, "CTC from logits, value and gradient"),
    # Issue #14's pair losses (cyloss._pairs) at 10^7 elements, or (10^6, 10) rows for the
    # row losses, with PyTorch's functional (Keras's formula written in torch for dice).
    "poisson_nll": ("regression", None, "poisson_nll", {},
                    "Poisson NLL from log-rates (PyTorch's poisson_nll_loss)"),
    "hinge_embedding": ("regression", None, "hinge_embedding", {},
                        "hinge embedding loss, margin=1"),
    "dice": ("regression", None, "dice", {}, "Dice loss (Keras), axis=None"),
    "tversky": ("regression", None, "tversky", {"alpha": TVERSKY_ALPHA, "beta": TVERSKY_BETA},
                f"Tversky loss (Keras), alpha={TVERSKY_ALPHA:g}, beta={TVERSKY_BETA:g}, "
                "axis=None"),
    "margin_ranking": ("regression", None, "margin_ranking", {},
                       "margin ranking loss, margin=0 (three inputs)"),
    "gaussian_nll": ("regression", None, "gaussian_nll", {},
                     "Gaussian NLL with a variance per element (three inputs)"),
    "cosine_embedding": ("rows", None, "cosine_embedding", {},
                         "cosine embedding loss over rows of 10"),
    "triplet_margin": ("rows", None, "triplet_margin", {},
                       "triplet margin loss over rows of 10"),
    "multilabel_soft_margin": ("rows", None, "multilabel_soft_margin", {},
                               "multilabel soft margin loss (0/1 targets, logits), rows of 10"),
}
# Workloads run at their own shapes only, not their family's.
SHAPES = {"bfocal_logits": [(10**7,)], "cfocal_logits": [(10**4, 1000)],
          "sfocal_logits": [(10**4, 1000)]}
# Losses whose inputs _pair_data makes (their own domains, or a third array).
PAIR_LOSSES = {"poisson_nll", "hinge_embedding", "dice", "tversky", "margin_ranking",
               "gaussian_nll", "cosine_embedding", "triplet_margin", "multilabel_soft_margin"}
PAIR_SIZES = {"regression": [(10**7,)], "rows": [(10**6, 10)]}
GRADIENT_LOSSES = {"mse_grad", "bce_logits_grad", "cce_logits_grad", "sparse_logits_grad"}
ADAPTER_LOSSES = {"torch_ce_step", "jax_ce_step"}
ADAPTER_SHAPES = [(10**4, 1000), (256, 32000)]
CTC_SHAPES = [(32, 200, 30)]
ELEMENTWISE_SIZES = [(10**4,), (10**6,), (10**7,)]
CATALOGUE_LOSSES = {"poisson", "mape", "msle", "hinge", "squared_hinge", "log_cosh"}
CATALOGUE_SIZES = [(10**7,)]
COUNT_LOSSES = {"poisson", "msle"}       # y_true counts, y_pred positive rates
LABEL_LOSSES = {"hinge", "squared_hinge"}  # y_true 0/1, y_pred real scores
CLASS_SHAPES = [(10**5, 10), (10**4, 1000), (256, 32000)]
DTYPES = ["float32", "float64"]
QUICK_IDS = [
    "mse-1e4", "mae-1e6", "mse-1e6", "huber-1e6", "smooth_l1-1e6",
    "bce_probs-1e6", "bce_logits-1e6",
    "cce_logits-100000x10", "cce_probs-100000x10",
    "sparse_logits-100000x10", "sparse_probs-100000x10", "sparse_logits-10000x1000",
    "mse_grad-1e6", "sparse_logits_grad-100000x10", "ctc_grad-32x200x30",
]
DEFAULTS = {"rounds": 15, "warmup": 3, "target_ms": 5.0}
QUICK = {"rounds": 5, "warmup": 1, "target_ms": 2.0}
MAX_CALLS_PER_SAMPLE = 100_000
RTOL = {"float32": 1e-4, "float64": 1e-9}


# --- workloads and data -------------------------------------------------------------------

def _size_text(shape):
    if len(shape) == 1:
        n = shape[0]
        k = round(math.log10(n)) if n > 0 else 0
        return f"1e{k}" if n == 10**k else str(n)
    return "x".join(str(s) for s in shape)


@dataclass(frozen=True)
class Workload:
    """One benchmark case: a loss of :data:`LOSSES`, the ``y_pred`` shape and the dtype."""

    loss: str
    shape: tuple
    dtype: str

    @property
    def family(self):
        return LOSSES[self.loss][0]

    @property
    def from_logits(self):
        return LOSSES[self.loss][1]

    @property
    def n_elements(self):
        return math.prod(self.shape)

    @property
    def key(self):
        """The id without the dtype: ``mse-1e7``, ``sparse_logits-10000x1000``."""
        return f"{self.loss}-{_size_text(self.shape)}"

    @property
    def id(self):
        return f"{self.key}-{'f32' if self.dtype == 'float32' else 'f64'}"


def all_workloads(dtypes=DTYPES):
    """Every workload of issue 3 in the given dtypes, dtype-major."""
    out = []
    for dtype in dtypes:
        for loss, (family, *_rest) in LOSSES.items():
            shapes = ELEMENTWISE_SIZES if family in ("regression", "binary") else CLASS_SHAPES
            if loss in ADAPTER_LOSSES:
                shapes = ADAPTER_SHAPES if dtype == "float32" else []
            if loss in CATALOGUE_LOSSES:
                shapes = CATALOGUE_SIZES
            shapes = SHAPES.get(loss, shapes)
            if family == "ctc":
                shapes = CTC_SHAPES
            if loss in PAIR_LOSSES:
                shapes = PAIR_SIZES[family]
            out.extend(Workload(loss, shape, dtype) for shape in shapes)
    return out


def select_workloads(*, quick=False, dtypes=None, filters=None):
    """The workloads a run covers: ``--quick``'s subset or all, narrowed by ``--filter``."""
    dtypes = dtypes or (["float32"] if quick else DTYPES)
    chosen = all_workloads(dtypes)
    if quick:
        chosen = [w for w in chosen if w.key in QUICK_IDS]
    if filters:
        chosen = [w for w in chosen if any(f in w.id for f in filters)]
    return chosen


def _seed(workload, seed):
    return zlib.crc32(f"{workload.id}/{seed}".encode())


def make_data(workload, seed=0):
    """Inputs for one workload: ``y_true``, ``y_pred`` (NumPy, C-contiguous) and extras.

    Regression: ``y_true ~ N(0, 1)`` and ``y_pred = y_true + N(0, 1)``, so both branches of
    Huber and smooth L1 run; Poisson and MSLE: Poisson(2) counts and rates uniform in
    ``[0.01, 5.01]``; hinge: 0/1 labels (converted by Keras's rule after a scan of
    ``y_true``) and scores ``1.5 N(0, 1)``, about half of them inside the margin. Binary: 0/1 targets; logits ``3 N(0, 1)``, probabilities
    uniform in ``[0.001, 0.999]``. Classes: logits ``1.5 N(0, 1)`` with the label's raised
    by 2, probabilities their softmax; dense one-hot targets (categorical) or int64 labels
    (sparse, plus a float copy of the labels for scikit-learn). CTC: logits ``N(0, 1)``
    of shape (batch, time, classes) and targets of ``time // 5`` labels in ``[1, C)``
    (blank 0), every sequence using all frames.
    """
    rng = np.random.default_rng(_seed(workload, seed))
    dt = np.dtype(workload.dtype)
    family = workload.family
    data = {}
    if workload.loss in PAIR_LOSSES:
        return _pair_data(workload.loss, workload.shape, rng, dt)
    if family == "ctc":
        n, frames, classes = workload.shape
        data["y_true"] = rng.integers(1, classes, (n, frames // 5))
        data["y_pred"] = rng.standard_normal(workload.shape, dtype=dt)
        return data
    if workload.loss in COUNT_LOSSES:
        (n,) = workload.shape
        y_true = rng.poisson(2.0, n).astype(dt)
        y_pred = rng.random(n, dtype=dt)
        y_pred *= 5
        y_pred += 0.01
    elif workload.loss in LABEL_LOSSES:
        (n,) = workload.shape
        y_true = (rng.random(n, dtype=dt) < 0.5).astype(dt)
        y_pred = rng.standard_normal(n, dtype=dt)
        y_pred *= 1.5
    elif family == "regression":
        (n,) = workload.shape
        y_true = rng.standard_normal(n, dtype=dt)
        y_pred = rng.standard_normal(n, dtype=dt)
        y_pred += y_true
    elif family == "binary":
        (n,) = workload.shape
        y_true = (rng.random(n, dtype=dt) < 0.5).astype(dt)
        if workload.from_logits:
            y_pred = rng.standard_normal(n, dtype=dt)
            y_pred *= 3
        else:
            y_pred = rng.random(n, dtype=dt)
            y_pred *= 0.998
            y_pred += 0.001
    else:
        rows, classes = workload.shape
        labels = rng.integers(0, classes, rows)
        y_pred = rng.standard_normal((rows, classes), dtype=dt)
        y_pred *= 1.5
        y_pred[np.arange(rows), labels] += 2
        if workload.from_logits == "log":
            y_pred -= y_pred.max(axis=1, keepdims=True)
            y_pred -= np.log(np.exp(y_pred).sum(axis=1, keepdims=True))
        elif not workload.from_logits:
            y_pred -= y_pred.max(axis=1, keepdims=True)
            np.exp(y_pred, out=y_pred)
            y_pred /= y_pred.sum(axis=1, keepdims=True)
        if family == "categorical":
            y_true = np.zeros((rows, classes), dtype=dt)
            y_true[np.arange(rows), labels] = 1
        else:
            y_true = labels
            data["labels_float"] = labels.astype(dt)
    data["y_true"] = y_true
    data["y_pred"] = y_pred
    return data


def _pair_data(loss, shape, rng, dt):
    """Inputs of the pair losses, each in its domain. The three-input losses keep their
    first two arrays as ``y_true`` and ``y_pred`` (triplet: anchor and positive) and the
    third as ``input2`` (Gaussian NLL: ``var``)."""
    def normal(*extra):
        return rng.standard_normal(shape + extra if extra else shape, dtype=dt)
    n = shape[0]
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dt)
    data = {}
    if loss == "poisson_nll":
        data["y_true"] = rng.poisson(2.0, shape).astype(dt)
        data["y_pred"] = normal() * dt.type(0.5) + dt.type(math.log(2.0))
    elif loss == "hinge_embedding":
        data["y_true"] = signs
        data["y_pred"] = normal() + dt.type(1.0)
    elif loss in ("dice", "tversky"):
        data["y_true"] = (rng.random(shape) < 0.3).astype(dt)
        data["y_pred"] = rng.random(shape, dtype=dt)
    elif loss == "multilabel_soft_margin":
        data["y_true"] = (rng.random(shape) < 0.3).astype(dt)
        data["y_pred"] = normal() * dt.type(3.0)
    elif loss == "margin_ranking":
        data["y_true"], data["y_pred"], data["input2"] = signs, normal(), normal()
    elif loss == "gaussian_nll":
        data["y_true"] = normal()
        data["y_pred"] = data["y_true"] + normal()
        data["input2"] = rng.uniform(0.5, 2.0, shape).astype(dt)
    elif loss == "cosine_embedding":
        data["y_true"], data["y_pred"], data["input2"] = signs, normal(), normal()
    else:   # triplet_margin: anchor, positive near it, negative
        data["y_true"] = normal()
        data["y_pred"] = data["y_true"] + normal() * dt.type(0.5)
        data["input2"] = normal()
    return data


def _pair_args(loss, data):
    """The pair loss's positional arguments, in cyloss's order."""
    if loss == "cosine_embedding":
        return data["y_true"], data["y_pred"], data["input2"]
    if "input2" in data:
        return data["y_true"], data["y_pred"], data["input2"]
    return data["y_true"], data["y_pred"]


def _numpy_pair_fn(loss, data):
    y, x = data["y_true"], data["y_pred"]
    z = data.get("input2")
    if loss == "poisson_nll":
        return lambda: float(np.mean(np.exp(x) - y * x))
    if loss == "hinge_embedding":
        return lambda: float(np.mean(np.where(y == 1, x, np.maximum(0, 1 - x))))
    if loss == "dice":
        return lambda: float(1 - 2 * np.sum(y * x) / (np.sum(y) + np.sum(x) + 1e-7))
    if loss == "tversky":
        def tversky():
            t = np.sum(y * x)
            fp, fn = np.sum((1 - x) * y), np.sum(x * (1 - y))
            return float(1 - t / (t + TVERSKY_ALPHA * fp + TVERSKY_BETA * fn + 1e-7))
        return tversky
    if loss == "multilabel_soft_margin":
        return lambda: float(np.mean((1 - y) * x + np.logaddexp(0, -x)))
    if loss == "margin_ranking":
        return lambda: float(np.mean(np.maximum(0, -y * (x - z))))
    if loss == "gaussian_nll":
        def gaussian():
            v = np.maximum(z, 1e-6)
            return float(np.mean(0.5 * (np.log(v) + (x - y) ** 2 / v)))
        return gaussian
    if loss == "cosine_embedding":
        eps = float(np.float32(1e-12))   # PyTorch's EPSILON, a float32 constant

        def cosine():
            cos = np.sum(x * z, axis=1) / np.sqrt(
                (np.sum(x * x, axis=1) + eps) * (np.sum(z * z, axis=1) + eps))
            return float(np.mean(np.where(y == 1, 1 - cos, np.maximum(0, cos))))
        return cosine

    def triplet():
        dp = np.linalg.norm(y - x + 1e-6, axis=1)
        dn = np.linalg.norm(y - z + 1e-6, axis=1)
        return float(np.mean(np.maximum(1.0 + dp - dn, 0)))
    return triplet


def _torch_pair_fn(torch, loss, data):
    F = torch.nn.functional
    y, x = torch.from_numpy(data["y_true"]), torch.from_numpy(data["y_pred"])
    z = torch.from_numpy(data["input2"]) if "input2" in data else None
    if loss == "poisson_nll":
        return lambda: F.poisson_nll_loss(x, y).item()
    if loss == "hinge_embedding":
        return lambda: F.hinge_embedding_loss(x, y).item()
    if loss == "dice":
        return lambda: (1 - 2 * (y * x).sum() / (y.sum() + x.sum() + 1e-7)).item()
    if loss == "tversky":
        def tversky():
            t = (y * x).sum()
            fp, fn = ((1 - x) * y).sum(), (x * (1 - y)).sum()
            return (1 - t / (t + TVERSKY_ALPHA * fp + TVERSKY_BETA * fn + 1e-7)).item()
        return tversky
    if loss == "multilabel_soft_margin":
        return lambda: F.multilabel_soft_margin_loss(x, y).item()
    if loss == "margin_ranking":
        return lambda: F.margin_ranking_loss(x, z, y).item()
    if loss == "gaussian_nll":
        return lambda: F.gaussian_nll_loss(x, y, z).item()
    if loss == "cosine_embedding":
        return lambda: F.cosine_embedding_loss(x, z, y).item()
    return lambda: F.triplet_margin_loss(y, x, z).item()


# --- implementations ----------------------------------------------------------------------

@dataclass
class Impl:
    """One timed callable. ``scale``: its value divided by cyloss's (``None``: no check)."""

    id: str
    label: str
    kind: str  # "cyloss", "baseline" or "ceiling"
    fn: object
    scale: float = None
    note: str = ""


def _numpy_grad_fn(workload, y_true, y_pred):
    """Value and gradient of the 'mean' reduction, written by hand in NumPy."""
    loss, n = workload.loss, y_pred.shape[0]
    if loss == "mse_grad":
        def mse():
            e = y_pred - y_true
            return float(np.mean(e * e)), e * (2.0 / n)
        return mse
    if loss == "bce_logits_grad":
        def bce():
            sp = np.logaddexp(0, -y_pred)
            return (float(np.mean((1 - y_true) * y_pred + sp)),
                    (np.exp(-sp) - y_true) / n)          # sigmoid(x) = exp(-softplus(-x))
        return bce
    if loss in ("cce_logits_grad", "sparse_logits_grad", *ADAPTER_LOSSES):
        def cross_entropy():
            z = y_pred - y_pred.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            log_p = z - np.log(s)
            g = e / s
            if loss != "cce_logits_grad":
                rows = np.arange(n)
                value = -np.mean(log_p[rows, y_true])
                g[rows, y_true] -= 1
            else:
                value = -np.mean(np.sum(y_true * log_p, axis=1))
                g = g * y_true.sum(axis=1, keepdims=True) - y_true
            g /= n
            return float(value), g
        return cross_entropy
    raise KeyError(loss)


def _numpy_ctc(y_true, y_pred):
    """CTC's mean loss by the forward recursion, vectorised over the batch and the states
    (full-length targets and inputs, blank 0)."""
    n, frames, _ = y_pred.shape
    z = y_pred - y_pred.max(axis=2, keepdims=True)
    lp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    ext = np.zeros((n, 2 * y_true.shape[1] + 1), dtype=np.int64)
    ext[:, 1::2] = y_true
    skip = np.zeros(ext.shape, dtype=bool)
    skip[:, 3::2] = y_true[:, 1:] != y_true[:, :-1]
    emit = np.take_along_axis(lp, ext[:, None, :], axis=2)      # (n, time, states)
    alpha = np.full(ext.shape, -np.inf, dtype=lp.dtype)
    alpha[:, :2] = emit[:, 0, :2]
    for t in range(1, frames):
        one = np.concatenate([np.full((n, 1), -np.inf), alpha[:, :-1]], axis=1)
        two = np.concatenate([np.full((n, 2), -np.inf), alpha[:, :-2]], axis=1)
        alpha = np.logaddexp(np.logaddexp(alpha, one), np.where(skip, two, -np.inf))
        alpha += emit[:, t]
    return float(-np.mean(np.logaddexp(alpha[:, -1], alpha[:, -2])))


def _numpy_fn(workload, y_true, y_pred, data=None):
    loss = workload.loss
    if loss in PAIR_LOSSES:
        return _numpy_pair_fn(loss, data)
    if loss == "ctc_grad":
        return lambda: _numpy_ctc(y_true, y_pred)
    if loss in GRADIENT_LOSSES or loss in ADAPTER_LOSSES:
        fn = _numpy_grad_fn(workload, y_true, y_pred)
        return lambda: fn()[0]
    if loss == "mae":
        return lambda: float(np.mean(np.abs(y_pred - y_true)))
    if loss == "mse":
        return lambda: float(np.mean((y_pred - y_true) ** 2))
    if loss == "huber":
        def huber():
            e = np.abs(y_pred - y_true)
            return float(np.mean(np.where(e <= DELTA, 0.5 * e * e, DELTA * (e - 0.5 * DELTA))))
        return huber
    if loss == "smooth_l1":
        def smooth_l1():
            e = np.abs(y_pred - y_true)
            return float(np.mean(np.where(e < BETA, 0.5 * e * e / BETA, e - 0.5 * BETA)))
        return smooth_l1
    if loss == "poisson":
        return lambda: float(np.mean(y_pred - y_true * np.log(y_pred + EPS)))
    if loss == "mape":
        return lambda: float(100.0 * np.mean(np.abs(y_true - y_pred)
                                             / np.maximum(np.abs(y_true), EPS)))
    if loss == "msle":
        return lambda: float(np.mean((np.log1p(np.maximum(y_pred, EPS))
                                      - np.log1p(np.maximum(y_true, EPS))) ** 2))
    if loss in LABEL_LOSSES:
        power = 2 if loss == "squared_hinge" else 1

        def hinge():
            binary = np.all((y_true == 0) | (y_true == 1))
            t = 2 * y_true - 1 if binary else y_true
            return float(np.mean(np.maximum(1 - t * y_pred, 0) ** power))
        return hinge
    if loss == "bce_probs":
        def bce_probs():
            p = np.clip(y_pred, EPS, 1 - EPS)
            return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))
        return bce_probs
    if loss == "bce_logits":
        # (1 - y) x + softplus(-x), softplus(-x) = logaddexp(0, -x): stable for any x.
        return lambda: float(np.mean((1 - y_true) * y_pred + np.logaddexp(0, -y_pred)))
    if loss == "cce_logits":
        def cce_logits():
            z = y_pred - y_pred.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return float(-np.mean(np.sum(y_true * log_p, axis=1)))
        return cce_logits
    if loss == "cce_probs":
        def cce_probs():
            p = y_pred / y_pred.sum(axis=1, keepdims=True)
            p = np.clip(p, EPS, 1 - EPS)
            return float(-np.mean(np.sum(y_true * np.log(p), axis=1)))
        return cce_probs
    if loss == "sparse_logits":
        def sparse_logits():
            m = y_pred.max(axis=1, keepdims=True)
            lse = np.log(np.exp(y_pred - m).sum(axis=1)) + m[:, 0]
            return float(np.mean(lse - y_pred[np.arange(len(y_true)), y_true]))
        return sparse_logits
    if loss == "sparse_probs":
        def sparse_probs():
            p = y_pred[np.arange(len(y_true)), y_true] / y_pred.sum(axis=1)
            return float(-np.mean(np.log(np.clip(p, EPS, 1 - EPS))))
        return sparse_probs
    if loss == "kl_probs":
        def kl_probs():
            y = np.clip(y_true, EPS, 1)
            return float(np.mean(np.sum(y * np.log(y / np.clip(y_pred, EPS, 1)), axis=1)))
        return kl_probs
    if loss == "kl_logs":
        def kl_logs():
            pos = y_true > 0           # xlogy: a zero target contributes 0
            y = np.where(pos, y_true, 1)
            return float(np.mean(np.sum(np.where(pos, y * (np.log(y) - y_pred), 0), axis=1)))
        return kl_logs
    if loss == "nll":
        return lambda: float(-np.mean(y_pred[np.arange(len(y_true)), y_true]))
    if loss == "categorical_hinge":
        def categorical_hinge():
            pos = np.sum(y_true * y_pred, axis=1)
            neg = np.max((1 - y_true) * y_pred, axis=1)
            return float(np.mean(np.maximum(neg - pos + 1, 0)))
        return categorical_hinge
    if loss == "cosine":
        def cosine():
            ny = np.maximum(np.sqrt(np.sum(y_true * y_true, axis=1)), EPS)
            np_ = np.maximum(np.sqrt(np.sum(y_pred * y_pred, axis=1)), EPS)
            return float(-np.mean(np.sum(y_true * y_pred, axis=1) / (ny * np_)))
        return cosine
    if loss == "bfocal_logits":
        def bfocal_logits():
            p = 1 / (1 + np.exp(-y_pred))
            ce = (1 - y_true) * y_pred + np.logaddexp(0, -y_pred)
            p_t = p * y_true + (1 - p) * (1 - y_true)
            a_t = FOCAL_ALPHA * y_true + (1 - FOCAL_ALPHA) * (1 - y_true)
            return float(np.mean(a_t * ce * (1 - p_t) ** FOCAL_GAMMA))
        return bfocal_logits
    if loss == "cfocal_logits":
        def cfocal_logits():
            z = y_pred - y_pred.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            f = (1 - np.exp(log_p)) ** FOCAL_GAMMA
            return float(-FOCAL_ALPHA * np.mean(np.sum(y_true * f * log_p, axis=1)))
        return cfocal_logits
    if loss == "sfocal_logits":
        def sfocal_logits():
            z = y_pred - y_pred.max(axis=1, keepdims=True)
            rows = np.arange(z.shape[0])
            log_p = z[rows, y_true] - np.log(np.exp(z).sum(axis=1))
            f = (1 - np.exp(log_p)) ** FOCAL_GAMMA
            return float(-FOCAL_ALPHA * np.mean(f * log_p))
        return sfocal_logits
    if loss == "log_cosh":
        def log_cosh():   # Keras's form: e + softplus(-2e) - log 2
            e = y_pred - y_true
            return float(np.mean(e + np.logaddexp(0, -2 * e) - math.log(2.0)))
        return log_cosh
    raise KeyError(loss)


def _torch_grad_fn(torch, workload, y_true, y_pred):
    """Forward and backward of the 'mean' loss (gradients set to None between calls, as
    optimizer.zero_grad() does)."""
    F = torch.nn.functional
    t = torch.from_numpy(y_true)
    x = torch.from_numpy(y_pred).requires_grad_()
    forward = {
        "mse_grad": lambda: F.mse_loss(x, t),
        "bce_logits_grad": lambda: F.binary_cross_entropy_with_logits(x, t),
        "cce_logits_grad": lambda: F.cross_entropy(x, t),
        "sparse_logits_grad": lambda: F.cross_entropy(x, t),
        "torch_ce_step": lambda: F.cross_entropy(x, t),
    }[workload.loss]

    def run():
        with torch.enable_grad():
            x.grad = None
            out = forward()
            out.backward()
        return out.item()
    return run


def _torch_fn(torch, workload, y_true, y_pred, data=None):
    if workload.loss in PAIR_LOSSES:
        return _torch_pair_fn(torch, workload.loss, data)
    F = torch.nn.functional
    t = torch.from_numpy(y_true)
    x = torch.from_numpy(y_pred)
    loss = workload.loss
    if loss in GRADIENT_LOSSES or loss == "torch_ce_step":
        return _torch_grad_fn(torch, workload, y_true, y_pred)
    if loss == "ctc_grad":
        x = x.requires_grad_()
        n, frames, _ = y_pred.shape
        input_lengths = torch.full((n,), frames, dtype=torch.int64)
        target_lengths = torch.full((n,), y_true.shape[1], dtype=torch.int64)

        def ctc():
            with torch.enable_grad():
                x.grad = None
                lp = torch.log_softmax(x, dim=2).transpose(0, 1)
                out = F.ctc_loss(lp, t, input_lengths, target_lengths,
                                 reduction="none").mean()   # cyloss's (Keras's) "mean"
                out.backward()
            return out.item()
        return ctc
    if loss == "mae":
        return lambda: F.l1_loss(x, t).item()
    if loss == "mse":
        return lambda: F.mse_loss(x, t).item()
    if loss == "huber":
        return lambda: F.huber_loss(x, t, delta=DELTA).item()
    if loss == "smooth_l1":
        return lambda: F.smooth_l1_loss(x, t, beta=BETA).item()
    # Keras's catalogue as plain torch expressions: F.poisson_nll_loss(log_input=False)
    # puts its eps (1e-8) in the log the same way but is another helper's loss, and torch
    # has no Keras hinge (F.hinge_embedding_loss is a different loss).
    if loss == "poisson":
        return lambda: (x - t * (x + EPS).log()).mean().item()
    if loss == "mape":
        return lambda: (100.0 * (t - x).abs() / t.abs().clamp(min=EPS)).mean().item()
    if loss == "msle":
        return lambda: ((x.clamp(min=EPS).log1p() - t.clamp(min=EPS).log1p()) ** 2
                        ).mean().item()
    if loss in LABEL_LOSSES:
        power = 2 if loss == "squared_hinge" else 1

        def hinge():
            binary = bool(((t == 0) | (t == 1)).all())
            labels = 2 * t - 1 if binary else t
            return (F.relu(1 - labels * x) ** power).mean().item()
        return hinge
    if loss == "bce_probs":
        return lambda: F.binary_cross_entropy(x, t).item()
    if loss == "bce_logits":
        return lambda: F.binary_cross_entropy_with_logits(x, t).item()
    if loss in ("cce_logits", "sparse_logits"):
        # Soft (dense) targets for categorical, int64 class indices for sparse.
        return lambda: F.cross_entropy(x, t).item()
    if loss == "cce_probs":
        def cce_probs():
            p = (x / x.sum(dim=1, keepdim=True)).clamp_(EPS, 1 - EPS)
            return -(t * p.log_()).sum(dim=1).mean().item()
        return cce_probs
    if loss == "sparse_probs":
        index = t.unsqueeze(1)

        def sparse_probs():
            p = (x.gather(1, index).squeeze(1) / x.sum(dim=1)).clamp_(EPS, 1 - EPS)
            return -p.log_().mean().item()
        return sparse_probs
    if loss == "kl_probs":
        return lambda: F.kl_div(x.clamp(EPS, 1).log(), t.clamp(EPS, 1),
                                reduction="batchmean").item()
    if loss == "kl_logs":
        return lambda: F.kl_div(x, t, reduction="batchmean").item()
    if loss == "nll":
        return lambda: F.nll_loss(x, t).item()
    if loss == "categorical_hinge":
        def categorical_hinge():
            pos = (t * x).sum(dim=1)
            neg = ((1 - t) * x).amax(dim=1)
            return (neg - pos + 1).clamp_(min=0).mean().item()
        return categorical_hinge
    if loss == "cosine":
        return lambda: -F.cosine_similarity(x, t, dim=1, eps=EPS).mean().item()
    if loss == "bfocal_logits":
        def bfocal_logits():   # torchvision.ops.sigmoid_focal_loss, reduction="mean"
            p = torch.sigmoid(x)
            ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
            p_t = p * t + (1 - p) * (1 - t)
            loss = ce * ((1 - p_t) ** FOCAL_GAMMA)
            alpha_t = FOCAL_ALPHA * t + (1 - FOCAL_ALPHA) * (1 - t)
            return (alpha_t * loss).mean().item()
        return bfocal_logits
    if loss == "cfocal_logits":
        def cfocal_logits():
            log_p = F.log_softmax(x, dim=1)
            f = (1 - log_p.exp()) ** FOCAL_GAMMA
            return (-FOCAL_ALPHA * (t * f * log_p).sum(dim=1)).mean().item()
        return cfocal_logits
    if loss == "sfocal_logits":
        def sfocal_logits():
            log_p = F.log_softmax(x, dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
            f = (1 - log_p.exp()) ** FOCAL_GAMMA
            return (-FOCAL_ALPHA * f * log_p).mean().item()
        return sfocal_logits
    if loss == "log_cosh":
        def log_cosh():
            e = x - t
            return (e + F.softplus(-2 * e) - math.log(2.0)).mean().item()
        return log_cosh
    raise KeyError(loss)


def _adapter_impls(workload, data, libs, threads):
    """The adapter workloads' cyloss implementations (one per thread count) and the
    framework's own loss (``torch`` or ``jax``); ``None`` when the framework is missing."""
    y_true, y_pred = data["y_true"], data["y_pred"]
    if workload.loss == "torch_ce_step":
        torch = libs.get("torch")
        if torch is None:
            return None
        import cyloss.torch

        x, t = torch.from_numpy(y_pred).requires_grad_(), torch.from_numpy(y_true)

        def step(k):
            loss = cyloss.torch.CrossEntropyLoss(n_threads=k)

            def run():
                with torch.enable_grad():
                    x.grad = None
                    out = loss(x, t)
                    out.backward()
                return out.item()
            return run
        return [Impl(f"cyloss-{k}t", f"cyloss {k}t", "cyloss", step(k), 1.0)
                for k in threads]
    jax, optax = libs.get("jax"), libs.get("optax")
    if jax is None or optax is None:
        return None
    import cyloss.jax

    x, t = jax.numpy.asarray(y_pred), jax.numpy.asarray(y_true.astype(np.int32))

    def jitted(loss):
        fn = jax.jit(jax.value_and_grad(loss))

        def run():
            value, grad = fn(x)
            grad.block_until_ready()
            return float(value)
        return run

    impls = [Impl(f"cyloss-{k}t", f"cyloss {k}t", "cyloss",
                  jitted(lambda a, k=k: cyloss.jax.cross_entropy(a, t, n_threads=k)), 1.0)
             for k in threads]
    impls.append(Impl("jax", "jax (optax)", "baseline", jitted(
        lambda a: optax.softmax_cross_entropy_with_integer_labels(a, t).mean()), 1.0,
        "jax.jit(jax.value_and_grad) of optax.softmax_cross_entropy_with_integer_labels"))
    return impls


def _sklearn_impl(sk_loss, workload, data, n_threads):
    """scikit-learn's ``_loss`` for the workloads it covers (logit and regression ones)."""
    loss = workload.loss
    y_true, y_pred = data["y_true"], data["y_pred"]
    scale, note = 1.0, ""
    if loss == "mae":
        obj = sk_loss.AbsoluteError()
    elif loss == "mse":
        obj, scale = sk_loss.HalfSquaredError(), 0.5
        note = "HalfSquaredError is half the MSE: its value is checked at 2x"
    elif loss == "huber":
        obj = sk_loss.HuberLoss(delta=DELTA)
    elif loss == "smooth_l1" and BETA > 0:
        # smooth L1 with beta equals Huber with delta = beta, divided by beta.
        obj, scale = sk_loss.HuberLoss(delta=BETA), BETA
        note = f"smooth L1 (beta={BETA:g}) through HuberLoss(delta={BETA:g})"
    elif loss == "bce_logits":
        obj = sk_loss.HalfBinomialLoss()
        note = "HalfBinomialLoss equals binary cross-entropy from logits"
    elif loss == "sparse_logits":
        obj = sk_loss.HalfMultinomialLoss(n_classes=workload.shape[1])
        y_true = data["labels_float"]
        note = ("HalfMultinomialLoss equals cross-entropy from logits; its labels are "
                "floats of y_pred's dtype (converted before timing)")
    else:
        return None

    def run():
        return float(obj.loss(y_true, y_pred, n_threads=n_threads).mean())

    return Impl("sklearn", f"sklearn {n_threads}t", "baseline", run, scale, note)


def build_impls(workload, data, libs, threads):
    """Every implementation of one workload, in report order."""
    import cyloss

    _, _, name, kwargs, _ = LOSSES[workload.loss]
    fn = getattr(cyloss, name)
    y_true, y_pred = data["y_true"], data["y_pred"]
    if workload.loss in ADAPTER_LOSSES:
        impls = _adapter_impls(workload, data, libs, threads)
        if impls is None:
            raise RuntimeError(f"{workload.id} needs "
                               + ("torch" if workload.loss == "torch_ce_step"
                                  else "jax and optax"))
        return _with_baselines(workload, data, libs, threads, impls)
    if workload.loss in GRADIENT_LOSSES or workload.family == "ctc":
        grad_out = np.empty_like(y_pred)

        def cyloss_impl(k):
            loss = cyloss.get(name, n_threads=k, **kwargs)
            return lambda: loss.value_and_grad(y_true, y_pred, grad_out=grad_out)[0]
    elif workload.loss in PAIR_LOSSES:
        def cyloss_impl(k):
            return functools.partial(fn, *_pair_args(workload.loss, data), n_threads=k,
                                     **kwargs)
    else:
        def cyloss_impl(k):
            return functools.partial(fn, y_true, y_pred, n_threads=k, **kwargs)
    impls = [Impl(f"cyloss-{k}t", f"cyloss {k}t", "cyloss", cyloss_impl(k), 1.0)
             for k in threads]
    return _with_baselines(workload, data, libs, threads, impls)


def _with_baselines(workload, data, libs, threads, impls):
    y_true, y_pred = data["y_true"], data["y_pred"]
    framework = [i for i in impls if i.kind == "baseline"]
    impls = [i for i in impls if i.kind != "baseline"]
    impls.append(Impl("numpy", "numpy", "baseline",
                      _numpy_fn(workload, y_true, y_pred, data), 1.0))
    impls.extend(framework)
    torch = libs.get("torch")
    if torch is not None and workload.loss != "jax_ce_step":
        impls.append(Impl("torch", "torch", "baseline",
                          _torch_fn(torch, workload, y_true, y_pred, data), 1.0,
                          "F.binary_cross_entropy clamps the log at -100 instead of "
                          "clipping p (equal on this data)"
                          if workload.loss == "bce_probs" else ""))
    sk_loss = libs.get("sklearn_loss")
    if sk_loss is not None and workload.loss not in ADAPTER_LOSSES:
        impl = _sklearn_impl(sk_loss, workload, data, max(threads))
        if impl is not None:
            impls.append(impl)
    inputs = [y_true, y_pred] + ([data["input2"]] if "input2" in data else [])
    if workload.family in ("binary", "categorical", "sparse", "ctc"):
        buf = np.empty_like(y_pred)
        impls.append(Impl("exp", "exp (numpy)", "ceiling",
                          lambda: np.exp(y_pred, out=buf), None))
    flat = [a.reshape(-1) for a in inputs]
    impls.append(Impl("read", "read (numpy)", "ceiling",
                      lambda: [np.add.reduce(a) for a in flat], None))
    if workload.loss in GRADIENT_LOSSES and y_true.shape == y_pred.shape:
        # Issue 13: a value-and-gradient pass reads both inputs and writes the gradient
        # once; np.add(y_true, y_pred, out=g) streams exactly those bytes.
        out = np.empty_like(y_pred)
        impls.append(Impl("readwrite", "read+write (numpy)", "ceiling",
                          lambda: np.add(y_true, y_pred, out=out), None))
    if torch is not None:
        tensors = [torch.from_numpy(a) for a in flat]
        impls.append(Impl("read-torch", "read (torch)", "ceiling",
                          lambda: [torch.sum(a) for a in tensors], None))
    return impls


# --- timing -------------------------------------------------------------------------------

def _time_calls(fn, number):
    gc_was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if gc_was:
            gc.enable()


def _stats(samples):
    a = np.sort(np.asarray(samples, dtype=np.float64))
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_s": float(med), "q1_s": float(q1), "q3_s": float(q3),
            "min_s": float(a[0]), "max_s": float(a[-1])}


def _check(impl, reference, dtype):
    """Compare ``impl``'s value with cyloss's; ``None`` for ceilings."""
    if impl.scale is None:
        return None, None
    value = float(impl.fn())
    expected = reference * impl.scale
    rel = abs(value - expected) / max(abs(expected), 1e-300)
    ok = bool(math.isfinite(value) and rel <= RTOL[dtype])
    return value, {"ok": ok, "expected": expected, "rel_err": rel, "rtol": RTOL[dtype],
                   "scale": impl.scale}


def bench_workload(workload, libs, *, threads, rounds, warmup, target_s, seed=0,
                   on_round=None):
    """Check, warm up, calibrate and time every implementation of one workload."""
    t_start = time.perf_counter()
    data = make_data(workload, seed)
    impls = build_impls(workload, data, libs, threads)
    nbytes = int(sum(data[k].nbytes for k in ("y_true", "y_pred", "input2") if k in data))
    entry = {
        "id": workload.id, "key": workload.key, "loss": workload.loss,
        "description": LOSSES[workload.loss][4], "family": workload.family,
        "from_logits": workload.from_logits, "dtype": workload.dtype,
        "shape": list(workload.shape), "n_elements": workload.n_elements,
        "bytes_read": nbytes, "implementations": [], "errors": [], "mismatches": [],
    }

    # The reference value: cyloss with each thread count (they must agree bitwise).
    reference, cy_values = None, {}
    results = {}
    for impl in impls:
        rec = {"id": impl.id, "label": impl.label, "kind": impl.kind, "note": impl.note,
               "value": None, "check": None}
        try:
            if impl.kind == "cyloss":
                value = float(impl.fn())
                cy_values[impl.id] = value
                if reference is None:
                    reference = value
                rec["value"] = value
                rec["check"] = {"ok": value == reference, "expected": reference,
                                "rel_err": abs(value - reference) / max(abs(reference),
                                                                        1e-300),
                                "rtol": 0.0, "scale": 1.0, "bitwise": True}
            elif reference is None:  # cyloss failed (recorded): time the others unchecked
                value = impl.fn()
                if impl.scale is not None:
                    rec["value"] = float(value)
            else:
                impl.fn()  # a first call, also for the ceilings
                rec["value"], rec["check"] = _check(impl, reference, workload.dtype)
        except Exception as exc:  # recorded, never raised: one library must not stop a run
            entry["errors"].append({"implementation": impl.id,
                                    "error": f"{type(exc).__name__}: {exc}"})
            continue
        if rec["check"] is not None and not rec["check"]["ok"]:
            entry["mismatches"].append({"implementation": impl.id, "value": rec["value"],
                                        **rec["check"]})
        results[impl.id] = (impl, rec)
    entry["cyloss_bitwise_equal_across_threads"] = len(set(cy_values.values())) <= 1

    timed = [impl for impl, _ in results.values()]
    # Warm-up, then calibrate: a sample is `number` back-to-back calls lasting >= target_s.
    for impl, rec in results.values():
        one = min(_time_calls(impl.fn, 1) for _ in range(max(1, warmup)))
        rec["calls_per_sample"] = int(min(MAX_CALLS_PER_SAMPLE,
                                          max(1, math.ceil(target_s / max(one, 1e-9)))))
        rec["samples_s"] = []
    order_rng = random.Random(_seed(workload, seed))
    for r in range(rounds):
        order = list(timed)
        order_rng.shuffle(order)
        for impl in order:
            rec = results[impl.id][1]
            impl.fn()  # untimed lead-in: see the module docstring
            rec["samples_s"].append(_time_calls(impl.fn, rec["calls_per_sample"]))
        if on_round is not None:
            on_round(r + 1)

    for impl, rec in results.values():
        rec.update(_stats(rec["samples_s"]))
    read = results.get("read", (None, {}))[1].get("median_s")
    readwrite = results.get("readwrite", (None, {}))[1].get("median_s")
    torch_t = results.get("torch", (None, {}))[1].get("median_s")
    jax_t = results.get("jax", (None, {}))[1].get("median_s")
    for impl, rec in results.values():
        rec["ratio_read"] = rec["median_s"] / read if read else None
        rec["ratio_torch"] = rec["median_s"] / torch_t if torch_t else None
        if readwrite:
            rec["ratio_readwrite"] = rec["median_s"] / readwrite
        if jax_t:
            rec["ratio_jax"] = rec["median_s"] / jax_t
        entry["implementations"].append(rec)
    if read:
        entry["read_gb_per_s"] = nbytes / read / 1e9
    entry["elapsed_s"] = time.perf_counter() - t_start
    del data, impls, results, timed
    gc.collect()
    return entry


# --- progress -----------------------------------------------------------------------------

def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """A one-line progress bar on a terminal; one line per workload otherwise."""

    def __init__(self, total, count, enabled=True, stream=None, width=28):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.count, self.width = max(total, 1e-12), count, width
        self.done, self.index, self.start, self.last = 0.0, 0, time.perf_counter(), 0.0

    def _eta(self, frac):
        elapsed = time.perf_counter() - self.start
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        return elapsed, eta

    def update(self, done, label):
        if not self.tty:
            return
        now = time.perf_counter()
        if now - self.last < 0.1:
            return
        self.last = now
        frac = min(1.0, done / self.total)
        elapsed, eta = self._eta(frac)
        fill = int(round(frac * self.width))
        eta_text = _duration(eta) if math.isfinite(eta) else "?"
        self.stream.write(
            f"\r[{'#' * fill}{'.' * (self.width - fill)}] {frac:4.0%} "
            f"{self.index + 1}/{self.count} {label:<34.34} {_duration(elapsed)} "
            f"(~{eta_text} left) "
        )
        self.stream.flush()

    def workload_done(self, done, label, seconds):
        self.index += 1
        self.done = done
        if self.enabled and not self.tty:
            frac = min(1.0, done / self.total)
            elapsed, eta = self._eta(frac)
            eta_text = _duration(eta) if math.isfinite(eta) else "?"
            print(f"[{self.index}/{self.count}] {label} ({seconds:.1f} s; elapsed "
                  f"{_duration(elapsed)}, ~{eta_text} left)", file=self.stream, flush=True)

    def close(self):
        if self.tty:
            self.stream.write("\r" + " " * (self.width + 80) + "\r")
            self.stream.flush()


# --- machine information ------------------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def load_libraries(use_torch=True, use_sklearn=True, use_jax=False):
    """The optional comparison libraries that import, and why the others do not."""
    libs, missing = {}, {}
    if use_jax:  # only for the jax workloads: importing JAX takes a while
        for name in ("jax", "optax"):
            try:
                libs[name] = __import__(name)
            except Exception as exc:
                missing[name] = f"{type(exc).__name__}: {exc}"
    if use_torch:
        try:
            import torch

            libs["torch"] = torch
        except Exception as exc:
            missing["torch"] = f"{type(exc).__name__}: {exc}"
    if use_sklearn:
        try:
            from sklearn import _loss as sk_loss

            libs["sklearn_loss"] = sk_loss
        except Exception as exc:
            missing["sklearn"] = f"{type(exc).__name__}: {exc}"
    return libs, missing


def machine_info(libs):
    import cyloss

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "cyloss": cyloss.__version__,
        "cyloss_config": cyloss.show_config(mode="dicts"),
        "torch": None, "torch_threads": None, "sklearn": None, "threadpoolctl": None,
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_"))},
        "loadavg_start": _loadavg(),
    }
    try:
        from cyloss import _openmp

        info["physical_cores"] = _openmp.physical_cores()
    except Exception:
        info["physical_cores"] = None
    for name in ("jax", "optax"):
        if libs.get(name) is not None:
            info[name] = libs[name].__version__
    torch = libs.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    if libs.get("sklearn_loss") is not None:
        import sklearn

        info["sklearn"] = sklearn.__version__
    try:
        import threadpoolctl

        info["threadpoolctl"] = threadpoolctl.__version__
        info["threadpools"] = threadpoolctl.threadpool_info()
    except ImportError:
        pass
    return info


# --- the run ------------------------------------------------------------------------------

def run_benchmark(workloads, *, threads=(1, 2), rounds=15, warmup=2, target_ms=5.0,
                  seed=0, progress=True, libs=None, missing=None, command=None,
                  stream=None):
    """Time ``workloads`` and return the results dictionary (what ``results.json`` holds)."""
    threads = list(threads)
    if libs is None:
        libs, missing = load_libraries(
            use_jax=any(w.loss == "jax_ce_step" for w in workloads))
    missing = missing or {}
    results = {
        "schema": SCHEMA,
        "command": command,
        "settings": {"rounds": rounds, "warmup": warmup, "target_ms": target_ms,
                     "threads": threads, "seed": seed,
                     "sklearn_threads": max(threads), "eps": EPS, "huber_delta": DELTA,
                     "smooth_l1_beta": BETA},
        "machine": machine_info(libs),
        "unavailable": missing,
        "notes": notes(libs, threads),
        "workloads": [],
    }
    weights = [(w.n_elements + 5e4) * (rounds + warmup + 2) for w in workloads]
    bar = Progress(sum(weights), len(workloads), enabled=progress, stream=stream)
    done = 0.0
    start = time.perf_counter()
    torch = libs.get("torch")
    grad = torch.no_grad() if torch is not None else None
    try:
        if grad is not None:
            grad.__enter__()
        for w, weight in zip(workloads, weights):
            per_round = weight / (rounds + warmup + 2)
            bar.update(done, w.id)

            def on_round(r, w=w, base=done, per_round=per_round):
                bar.update(base + (2 + warmup + r) * per_round, f"{w.id} round {r}/{rounds}")

            entry = bench_workload(w, libs, threads=threads, rounds=rounds, warmup=warmup,
                                   target_s=target_ms / 1e3, seed=seed, on_round=on_round)
            results["workloads"].append(entry)
            done += weight
            bar.workload_done(done, w.id, entry["elapsed_s"])
    finally:
        if grad is not None:
            grad.__exit__(None, None, None)
        bar.close()
    results["machine"]["loadavg_end"] = _loadavg()
    results["elapsed_s"] = time.perf_counter() - start
    results["mismatches"] = [dict(workload=e["id"], **m)
                             for e in results["workloads"] for m in e["mismatches"]]
    results["errors"] = [dict(workload=e["id"], **m)
                         for e in results["workloads"] for m in e["errors"]]
    return results


def notes(libs, threads):
    torch = libs.get("torch")
    out = [
        "Times are medians over the rounds, per call; a sample is the mean of enough "
        "back-to-back calls to last the target time, after one untimed call of the same "
        "implementation (so that no sample pays for the previous implementation's "
        "thread pool winding down). Implementations are interleaved: every round runs "
        "each once, in a shuffled order.",
        "read: np.add.reduce over each input array (y_true, y_pred; labels for sparse), "
        "single-threaded: streaming the input bytes once. xread = time / read.",
        "read+write (gradient workloads with y_true shaped like y_pred): np.add(y_true, "
        "y_pred, out=g), single-threaded: reading both inputs and writing the gradient "
        "once; the JSON's ratio_readwrite = time / read+write.",
        "read (torch): torch.sum over each input tensor, PyTorch's default threads.",
        "exp: np.exp over y_pred into a preallocated array (cross-entropies only).",
        "numpy: hand-written stable NumPy with Keras semantics (renormalise and clip "
        f"probabilities at eps={EPS:g}, log-sum-exp after subtracting the row max, "
        "softplus via np.logaddexp), reduced as cyloss's 'mean'.",
    ]
    if torch is not None:
        out.append(
            f"torch: torch.nn.functional on torch.from_numpy tensors under torch.no_grad(), "
            f"default threads ({torch.get_num_threads()}), .item() included; "
            "cross-entropy from probabilities written out with the same semantics "
            "(renormalise, clamp, log); BCE from probabilities is F.binary_cross_entropy, "
            "which clamps the log at -100 instead of clipping p (equal on this data). "
            "xtorch = time / torch."
        )
    out.append(
        "*_grad workloads: value and gradient of the 'mean' loss. cyloss: "
        "loss.value_and_grad(..., grad_out=buf) into a buffer allocated once; torch: the "
        "forward, .backward() and .item() under torch.enable_grad(), the input's .grad "
        "set to None before each call (optimizer.zero_grad()'s default); numpy: the "
        "value and the closed-form gradient written by hand."
    )
    out.append(
        "*_ce_step workloads (issue 15): one training step's loss, forward and backward, "
        "through the framework adapters. torch_ce_step: cyloss.torch.CrossEntropyLoss("
        "n_threads=k) on a tensor that requires grad, .backward() and .item(), against "
        "F.cross_entropy's (the torch column; xtorch). jax_ce_step: "
        "jax.jit(jax.value_and_grad(...)) of cyloss.jax.cross_entropy(n_threads=k) "
        "against the same of optax.softmax_cross_entropy_with_integer_labels(...).mean() "
        "(the jax column; xjax = time / jax), waiting for the gradient "
        "(block_until_ready) and converting the value to a float."
    )
    if libs.get("sklearn_loss") is not None:
        out.append(
            f"sklearn: scikit-learn's private sklearn._loss, .loss(y_true, raw_prediction, "
            f"n_threads={max(threads)}).mean(), for the workloads it covers (regression, "
            "BCE and sparse CE from logits). HalfSquaredError is half the MSE (its value is "
            "checked at 2x); HalfBinomialLoss and HalfMultinomialLoss equal the "
            "cross-entropies from logits; smooth L1 runs as HuberLoss(delta=beta); sparse "
            "labels are passed as floats (its input format)."
        )
    return out


# --- outputs ------------------------------------------------------------------------------

# Columns of the summary table, in order: implementation id -> header.
_COLUMN_ORDER = ["numpy", "torch", "jax", "sklearn", "read", "read-torch", "exp"]


def _ms(seconds):
    if seconds is None:
        return "–"
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 0.1:
        return f"{ms:.3g}"
    return f"{ms:.2g}"


def _ratio(r):
    return "–" if r is None else f"{r:.3g}"


def _impl_map(entry):
    return {rec["id"]: rec for rec in entry["implementations"]}


def _cyloss_ids(results):
    return [f"cyloss-{k}t" for k in results["settings"]["threads"]]


def _flag(rec):
    check = rec.get("check")
    return " !" if check is not None and not check["ok"] else ""


def markdown(results):
    """The Markdown report: a summary table per dtype, then every implementation."""
    m = results["machine"]
    cfg = m.get("cyloss_config") or {}
    s = results["settings"]
    cy_ids = _cyloss_ids(results)
    lines = ["# cyloss benchmark", ""]
    lines.append(
        f"{m['date']} · {m['cpu_model']} · {m['usable_cpus']} CPUs "
        f"({m.get('physical_cores')} physical cores) · Python {m['python']} · "
        f"numpy {m['numpy']} · torch {m['torch'] or 'not installed'}"
        + (f" ({m['torch_threads']} threads)" if m["torch"] else "")
        + f" · scikit-learn {m['sklearn'] or 'not installed'} · cyloss {m['cyloss']} "
        f"(OpenMP {'on' if cfg.get('openmp') else 'off'}"
        + (f", SIMD {cfg['simd_path'].split(' ')[0]}" if cfg.get("simd_path") else "")
        + ")"
    )
    lines.append("")
    if results.get("command"):
        lines += [f"Command: `{results['command']}`", ""]
    lines.append(
        f"Median time per call in ms over {s['rounds']} interleaved rounds "
        f"({s['warmup']} warm-up calls; samples of >= {s['target_ms']:g} ms); "
        "xread: time / read ceiling, xtorch: time / torch (below 1 is faster). "
        f"Load average {m.get('loadavg_start')} at the start, {m.get('loadavg_end')} "
        f"at the end. Run time {_duration(results.get('elapsed_s', 0))}."
    )
    lines.append("")
    columns = cy_ids + [c for c in _COLUMN_ORDER]
    present = {rec["id"] for e in results["workloads"] for rec in e["implementations"]}
    columns = [c for c in columns if c in present]
    labels = {rec["id"]: rec["label"] for e in results["workloads"]
              for rec in e["implementations"]}
    dtypes = []
    for e in results["workloads"]:
        if e["dtype"] not in dtypes:
            dtypes.append(e["dtype"])
    for dtype in dtypes:
        rows = [e for e in results["workloads"] if e["dtype"] == dtype]
        lines += [f"## {dtype}", ""]
        head = (["workload"] + [labels[c] for c in columns]
                + [f"{labels[c]} xread" for c in cy_ids if c in present]
                + ([f"{labels[c]} xtorch" for c in cy_ids if c in present]
                   if "torch" in present else [])
                + ([f"{labels[c]} xjax" for c in cy_ids if c in present]
                   if "jax" in present else []))
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for e in rows:
            recs = _impl_map(e)
            cells = [f"`{e['key']}`"]
            for c in columns:
                rec = recs.get(c)
                cells.append(_ms(rec["median_s"]) + _flag(rec) if rec else "–")
            for c in cy_ids:
                if c in present:
                    cells.append(_ratio(recs[c]["ratio_read"]) if c in recs else "–")
            if "torch" in present:
                for c in cy_ids:
                    if c in present:
                        cells.append(_ratio(recs[c]["ratio_torch"]) if c in recs else "–")
            if "jax" in present:
                for c in cy_ids:
                    if c in present:
                        cells.append(_ratio(recs[c].get("ratio_jax")) if c in recs else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Notes", ""]
    lines += [f"- {n}" for n in results["notes"]]
    lines.append("- `!` marks a value that disagrees with cyloss's (see Mismatches).")
    lines.append("")
    if results.get("unavailable"):
        lines += ["Not installed or failed to import: "
                  + "; ".join(f"{k} ({v})" for k, v in results["unavailable"].items()), ""]
    if results.get("mismatches") or results.get("errors"):
        lines += ["## Mismatches and errors", ""]
        for mm in results.get("mismatches", []):
            lines.append(f"- `{mm['workload']}` {mm['implementation']}: {mm['value']!r} "
                         f"against {mm['expected']!r} (relative {mm['rel_err']:.3g})")
        for err in results.get("errors", []):
            lines.append(f"- `{err['workload']}` {err['implementation']}: {err['error']}")
        lines.append("")
    lines += ["## Every implementation", "",
              "| workload | implementation | median ms | IQR ms | min–max ms | xread | "
              "xtorch | calls/sample | value | check |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for e in results["workloads"]:
        for rec in e["implementations"]:
            check = rec.get("check")
            if check is None:
                check_text = "–"
            elif check["ok"]:
                check_text = "ok" if check.get("scale", 1.0) == 1.0 else \
                    f"ok (x{check['scale']:g})"
            else:
                check_text = f"MISMATCH ({check['rel_err']:.2g})"
            value = "–" if rec["value"] is None else f"{rec['value']:.9g}"
            lines.append(
                f"| `{e['id']}` | {rec['label']} | {_ms(rec['median_s'])} | "
                f"{_ms(rec['q3_s'] - rec['q1_s'])} | "
                f"{_ms(rec['min_s'])}–{_ms(rec['max_s'])} | {_ratio(rec['ratio_read'])} | "
                f"{_ratio(rec['ratio_torch'])} | {rec['calls_per_sample']} | {value} | "
                f"{check_text} |"
            )
    lines.append("")
    return "\n".join(lines)


_BAR_ORDER = ["numpy", "torch", "sklearn", "exp", "read-torch"]
_GREYS = {"numpy": "#4c72b0", "torch": "#8c8c8c", "sklearn": "#55a868", "exp": "#c4ad66",
          "read-torch": "#bbbbbb"}
_CYLOSS_COLORS = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b"]


def write_plot(results, path):
    """A grouped horizontal bar chart of time / read ceiling; a note if it cannot be drawn."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install \"cyloss[bench]\")"
    workloads = results["workloads"]
    if not workloads:
        return "plot skipped: no workloads"
    present = {rec["id"] for e in workloads for rec in e["implementations"]
               if rec.get("ratio_read")}
    bars = [c for c in _cyloss_ids(results) + _BAR_ORDER if c in present]
    labels = {rec["id"]: rec["label"] for e in workloads for rec in e["implementations"]}
    colors = dict(_GREYS)
    for i, c in enumerate(_cyloss_ids(results)):
        colors[c] = _CYLOSS_COLORS[i % len(_CYLOSS_COLORS)]
    dtypes = []
    for e in workloads:
        if e["dtype"] not in dtypes:
            dtypes.append(e["dtype"])
    per_dtype = {d: [e for e in workloads if e["dtype"] == d] for d in dtypes}
    rows = max(len(v) for v in per_dtype.values())
    seen = set()
    height = 1.6 + rows * (0.12 * len(bars) + 0.25)
    fig = Figure(figsize=(6.5 * len(dtypes) + 1.5, height), layout="constrained")
    axes = fig.subplots(1, len(dtypes), squeeze=False, sharex=True)[0]
    for ax, dtype in zip(axes, dtypes):
        es = per_dtype[dtype]
        for i, e in enumerate(es):
            recs = _impl_map(e)
            shown = [c for c in bars if recs.get(c, {}).get("ratio_read")]
            slot = 0.84 / max(1, len(shown))
            for j, c in enumerate(shown):
                is_cy = c.startswith("cyloss")
                ax.barh(i - 0.42 + slot * (j + 0.5), recs[c]["ratio_read"],
                        height=slot * 0.9, color=colors.get(c, "#999999"),
                        edgecolor="black" if is_cy else "none", linewidth=0.6,
                        label=None if c in seen else labels.get(c, c),
                        zorder=3 if is_cy else 2)
                seen.add(c)
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=1.0, linestyle="--", zorder=4)
        ax.set_yticks(range(len(es)))
        ax.set_yticklabels([e["key"] for e in es], fontsize=8)
        ax.set_ylim(len(es) - 0.5, -0.5)
        ax.grid(axis="x", which="both", alpha=0.3, zorder=0)
        ax.set_title(f"{dtype}: time / read ceiling (log; dashed = np.add.reduce)",
                     fontsize=10)
        ax.set_xlabel("median time relative to reading the inputs once")
    found = {}
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels()):
            found.setdefault(n, h)
    order = [labels.get(c, c) for c in bars]
    names = [n for n in order if n in found]
    handles = [found[n] for n in names]
    width = fig.get_figwidth()
    fig.legend(handles, names, loc="outside lower center",
               ncol=max(2, min(len(bars), int(width / 1.5))), fontsize=9)
    m = results["machine"]
    fig.suptitle(f"cyloss {m['cyloss']} · {m['cpu_model']} · {m['usable_cpus']} CPUs · "
                 f"{m['date'][:10]} · median of {results['settings']['rounds']} rounds",
                 fontsize=10)
    fig.savefig(path, dpi=100)
    return None


def write_outputs(results, out_dir, *, plot=True):
    """Write ``results.json``, ``results.md`` and (matplotlib) ``results.png`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    results["plot"] = None
    if plot:
        note = write_plot(results, out / "results.png")
        if note is None:
            results["plot"] = "results.png"
            paths["png"] = out / "results.png"
        else:
            results["plot_note"] = note
    else:
        results["plot_note"] = "plot skipped: --no-plot"
    text = markdown(results)
    if results["plot"]:
        image = "![time relative to the read ceiling](results.png)"
        text = text.replace("\n## ", f"\n{image}\n\n## ", 1)
    (out / "results.md").write_text(text, encoding="utf-8")
    paths["md"] = out / "results.md"
    with open(out / "results.json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, default=str)
        f.write("\n")
    paths["json"] = out / "results.json"
    return paths


# --- command line -------------------------------------------------------------------------

def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas: {text!r}")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1: {text!r}")
    return values


def _dtype_list(text):
    values = DTYPES if text == "both" else [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in DTYPES]
    if bad or not values:
        raise argparse.ArgumentTypeError(
            f"dtype must be float32, float64, both or a comma list; got {text!r}")
    return values


DESCRIPTION = (
    "Time cyloss against hand-written NumPy, PyTorch and scikit-learn (when installed) and "
    "two ceilings (reading the inputs once; exp over them), interleaved round by round. "
    "Writes results.json, results.md and results.png to --out."
)


def add_arguments(parser, default_out=None):
    parser.add_argument("--quick", action="store_true",
                        help=f"a float32 subset of {len(QUICK_IDS)} workloads, "
                             f"{QUICK['rounds']} rounds (under a minute)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"timed rounds (default {DEFAULTS['rounds']}, "
                             f"--quick {QUICK['rounds']})")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"warm-up calls per implementation (default "
                             f"{DEFAULTS['warmup']}, --quick {QUICK['warmup']})")
    parser.add_argument("--target-ms", type=float, default=None,
                        help="shortest sample; fast calls are repeated to fill it "
                             f"(default {DEFAULTS['target_ms']:g}, --quick "
                             f"{QUICK['target_ms']:g})")
    parser.add_argument("--filter", action="append", metavar="SUBSTRING",
                        help="only workloads whose id (e.g. mse-1e7-f32, "
                             "sparse_logits-10000x1000-f64) contains SUBSTRING; repeatable")
    parser.add_argument("--dtype", type=_dtype_list, default=None,
                        help="float32, float64, both or a comma list (default both; "
                             "--quick float32)")
    parser.add_argument("--threads", type=_int_list, default=[1, 2],
                        help="cyloss n_threads values, comma-separated (default 1,2); "
                             "scikit-learn runs with the largest")
    parser.add_argument("--out", default=default_out,
                        help="output directory (default "
                             f"{default_out or 'benchmarks/results'})")
    parser.add_argument("--seed", type=int, default=0, help="data and order seed")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-sklearn", action="store_true", help="leave scikit-learn out")
    parser.add_argument("--no-jax", action="store_true",
                        help="leave JAX out (its workloads are skipped)")
    parser.add_argument("--no-plot", action="store_true", help="skip results.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    return parser


def add_parser(subparsers, default_out=None):
    """Add ``bench`` to ``python -m cyloss``'s subparsers; run it with :func:`run`."""
    parser = subparsers.add_parser("bench", help="benchmark cyloss against NumPy, PyTorch, "
                                                 "scikit-learn and the memory ceiling",
                                   description=DESCRIPTION)
    add_arguments(parser, default_out)
    return parser


def run(args, *, stdout=None, stderr=None):
    """Run the harness for parsed ``args``.

    Returns 0 when done, 1 after a value mismatch or an implementation error (both
    recorded in the results), 2 for a usage error.
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    quick = args.quick
    settings = QUICK if quick else DEFAULTS
    rounds = args.rounds if args.rounds is not None else settings["rounds"]
    warmup = args.warmup if args.warmup is not None else settings["warmup"]
    target_ms = args.target_ms if args.target_ms is not None else settings["target_ms"]
    if rounds < 1 or warmup < 0 or target_ms <= 0:
        print("bench: --rounds must be >= 1, --warmup >= 0 and --target-ms > 0", file=stderr)
        return 2
    workloads = select_workloads(quick=quick, dtypes=args.dtype, filters=args.filter)
    if args.list:
        for w in workloads:
            print(f"{w.id:<32} {LOSSES[w.loss][4]}, shape {w.shape}", file=stdout)
        return 0
    if args.no_jax:
        workloads = [w for w in workloads if w.loss != "jax_ce_step"]
    if args.no_torch:
        workloads = [w for w in workloads if w.loss != "torch_ce_step"]
    if not workloads:
        print(f"bench: no workload matches --filter {args.filter}; see --list", file=stderr)
        return 2
    out = args.out or os.path.join("benchmarks", "results")
    libs, missing = load_libraries(
        use_torch=not args.no_torch, use_sklearn=not args.no_sklearn,
        use_jax=any(w.loss == "jax_ce_step" for w in workloads))
    for name, why in missing.items():
        print(f"bench: {name} left out ({why})", file=stderr)
    # The adapter workloads need their framework (and optax for the JAX baseline).
    runnable = [w for w in workloads
                if w.loss != "torch_ce_step" or "torch" in libs
                if w.loss != "jax_ce_step" or ("jax" in libs and "optax" in libs)]
    for w in workloads:
        if w not in runnable:
            print(f"bench: {w.id} skipped (its framework is not installed)", file=stderr)
    workloads = runnable
    if not workloads:
        return 2
    command = getattr(args, "command_line", None) or (
        "python -m cyloss " + shlex.join(sys.argv[1:]))
    results = run_benchmark(
        workloads, threads=args.threads, rounds=rounds, warmup=warmup, target_ms=target_ms,
        seed=args.seed, progress=not args.no_progress, libs=libs, missing=missing,
        command=command, stream=stderr,
    )
    results["settings"]["quick"] = quick
    results["settings"]["filter"] = args.filter
    paths = write_outputs(results, out, plot=not args.no_plot)
    print(markdown(results).split("\n## Notes", 1)[0], file=stdout)
    for kind, path in paths.items():
        print(f"wrote {path}", file=stdout)
    if results.get("plot_note"):
        print(results["plot_note"], file=stdout)
    status = 0
    for mm in results["mismatches"]:
        print(f"MISMATCH {mm['workload']} {mm['implementation']}: {mm['value']!r} against "
              f"{mm['expected']!r}", file=stderr)
        status = 1
    for err in results["errors"]:
        print(f"ERROR {err['workload']} {err['implementation']}: {err['error']}", file=stderr)
        status = 1
    print(f"bench: {len(workloads)} workloads in {_duration(results['elapsed_s'])}",
          file=stderr)
    return status


def main(argv=None, *, default_out=None, prog="python -m cyloss bench"):
    """Stand-alone entry point (``benchmarks/harness.py`` calls this)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser, default_out)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = " ".join([prog, shlex.join(argv)]).strip()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
