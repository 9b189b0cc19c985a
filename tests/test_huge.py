"""Inputs of more than 2**31 elements (issue 7): every loss, on arrays that take almost no
memory, against closed forms. A 32-bit count, index or offset anywhere would wrap and
drop, repeat or misplace elements.

Three kinds of input:
- periodic: a C-contiguous array (the SIMD fast paths) that repeats a 1.5 MiB pattern,
  one memfd mapped again and again (Linux). The period (3 * 2**19 bytes) divides neither
  2**31 nor 2**32, so an offset that wrapped would read another phase of the pattern.
  Such an array uses 1.5 MiB of memory and 32 MiB of page tables, but RSS counts every
  mapping: 16 GiB per array while a test runs;
- zero-stride broadcasts (np.broadcast_to) of a row that is not constant;
- overlapping windows of one real 128 MiB buffer (non-zero strides over real data).

Exact where the loss allows: regression inputs are multiples of 1/4, so every per-element
loss and every partial sum is exact in float64 and the answer, known as a fraction, must
come back bit for bit. The cross-entropies need log/exp: their reference is
tests/reference.py (float64) on one period, scaled by how often the input repeats it,
with a relative tolerance of 1e-12: far above the ~1e-15 by which two float64
evaluations of the same formula and compensated sums differ, far below the relative
change that one sample more or less makes (about 1 / samples, at least 4e-10 here).

No gradient: value_and_grad writes a dense gradient of y_pred's shape, 16 GiB here.
Every call uses all cores (n_threads=-1).
"""

import contextlib
import ctypes
import mmap
import os
from fractions import Fraction

import numpy as np
import pytest

import cyloss
import reference

BIG = 2**31
PERIOD = 3 * 2**16          # float64 elements per period: 1.5 MiB
REPS = BIG // PERIOD + 1    # REPS * PERIOD = 2**31 + 65536 elements
ROWS, WIDTH = PERIOD // 8, 8
C, B = 8, PERIOD // 8       # classes, and samples per period of a class layout

periodic_only_on_linux = pytest.mark.skipif(
    not hasattr(os, "memfd_create"), reason="needs memfd_create and mmap(MAP_FIXED)")


@contextlib.contextmanager
def periodic(pattern, reps=REPS):
    """A read-only C-contiguous array of shape (reps,) + pattern.shape, every entry along
    axis 0 equal to ``pattern``: one memfd holding the pattern, mapped ``reps`` times back
    to back into one reserved range (address space reps * pattern.nbytes, memory
    pattern.nbytes)."""
    size = pattern.nbytes
    assert size % mmap.PAGESIZE == 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    map_fixed, map_noreserve, prot_none = 0x10, 0x4000, 0  # Linux values

    def check(addr, want=None):
        if addr in (None, ctypes.c_void_p(-1).value) or (want is not None and addr != want):
            raise OSError(ctypes.get_errno(), "mmap failed")
        return addr

    fd = os.memfd_create("cyloss-test-periodic")
    base = None
    try:
        with open(fd, "wb", closefd=False) as f:
            f.write(np.ascontiguousarray(pattern).tobytes())
        base = check(libc.mmap(None, reps * size, prot_none,
                               mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | map_noreserve, -1, 0))
        for k in range(reps):
            check(libc.mmap(base + k * size, size, mmap.PROT_READ,
                            mmap.MAP_SHARED | map_fixed, fd, 0), base + k * size)
        raw = (ctypes.c_char * (reps * size)).from_address(base)
        view = np.frombuffer(raw, pattern.dtype).reshape((reps,) + pattern.shape)
        view.flags.writeable = False
        assert view.flags.c_contiguous
        yield view
    finally:
        if base is not None:
            libc.munmap(base, reps * size)
        os.close(fd)


def quarters(seed, shape):
    """Multiples of 1/4 in [-2, 1.75]: exact in float64, and so are their losses."""
    return np.random.default_rng(seed).integers(-8, 8, size=shape) / 4.0


def exact_total(term, y_true, y_pred):
    """Sum over samples of the per-sample mean (last axis) of ``term``, as a fraction."""
    errors, counts = np.unique((y_pred - y_true) * 4, return_counts=True)
    total = sum(int(c) * term(Fraction(int(e), 4)) for e, c in zip(errors, counts))
    return total / y_pred.shape[-1]


def huber_term(e, delta=Fraction(1, 2)):
    return e * e / 2 if abs(e) <= delta else delta * (abs(e) - delta / 2)


def smooth_l1_term(e, beta=Fraction(1, 2)):
    return e * e / (2 * beta) if abs(e) < beta else abs(e) - beta / 2


@periodic_only_on_linux
@pytest.mark.parametrize("fn, reduction, term", [
    (cyloss.mean_squared_error, "sum", lambda e: e * e),
    (cyloss.mean_absolute_error, "mean", abs),
    (cyloss.huber, "sum", huber_term),
], ids=["mse-sum", "mae-mean", "huber-sum"])
def test_regression_periodic(fn, reduction, term):
    y, p = quarters(1, (ROWS, WIDTH)), quarters(2, (ROWS, WIDTH))
    total = REPS * exact_total(term, y, p)
    options = {"delta": 0.5} if fn is cyloss.huber else {}
    with periodic(y) as y_true, periodic(p) as y_pred:
        assert y_pred.size > BIG
        got = fn(y_true, y_pred, reduction=reduction, n_threads=-1, **options)
    assert got == float(total if reduction == "sum" else total / (REPS * ROWS))


@periodic_only_on_linux
def test_smooth_l1_periodic_weights_more_than_2_31_samples():
    # One dimension: 2**31 + 65536 samples, a count that does not fit in 32 bits, and as
    # many per-sample weights (multiples of 1/4, so every product is exact too).
    y, p = quarters(3, PERIOD), quarters(4, PERIOD)
    w = np.random.default_rng(5).integers(0, 9, PERIOD) / 4.0
    pairs, counts = np.unique(np.stack([p - y, w]) * 4, axis=1, return_counts=True)
    expected = REPS * sum(int(c) * Fraction(int(wi), 4) * smooth_l1_term(Fraction(int(e), 4))
                          for (e, wi), c in zip(pairs.T, counts))
    with periodic(y) as y_true, periodic(p) as y_pred, periodic(w) as weight:
        assert y_pred.size > BIG
        got = cyloss.smooth_l1(y_true.reshape(-1), y_pred.reshape(-1), beta=0.5,
                               sample_weight=weight.reshape(-1), reduction="sum",
                               n_threads=-1)
    assert got == float(expected)


@periodic_only_on_linux
def test_binary_crossentropy_periodic_more_than_2_31_samples():
    rng = np.random.default_rng(8)
    y, p = rng.uniform(0, 1, PERIOD), rng.uniform(0.01, 0.99, PERIOD)
    options = {"pos_weight": 2.5, "label_smoothing": 0.1, "reduction": "sum"}
    expected = REPS * reference.binary_crossentropy(y, p, **options)
    with periodic(y) as y_true, periodic(p) as y_pred:
        assert y_pred.size > BIG
        got = cyloss.binary_crossentropy(y_true.reshape(-1), y_pred.reshape(-1),
                                         n_threads=-1, **options)
    assert got == pytest.approx(expected, rel=1e-12, abs=0)


@periodic_only_on_linux
def test_categorical_periodic_from_logits():
    # Every sample of a period appears REPS times, so the mean is the period's mean.
    rng = np.random.default_rng(6)
    soft = rng.dirichlet(np.ones(C), size=B)
    logits = rng.normal(0.0, 3.0, (B, C))
    options = {"from_logits": True, "label_smoothing": 0.1}
    expected = reference.categorical_crossentropy(soft, logits, **options)
    with periodic(soft) as y_true, periodic(logits) as y_pred:
        assert y_pred.size > BIG
        got = cyloss.categorical_crossentropy(y_true, y_pred, n_threads=-1, **options)
    assert got == pytest.approx(expected, rel=1e-12, abs=0)


@periodic_only_on_linux
def test_sparse_periodic_labels_class_axis_1():
    # (REPS, C, B): the class axis in the middle, labels (REPS, B) that vary along B.
    rng = np.random.default_rng(7)
    labels = rng.integers(0, C, B)
    labels[::7] = -1
    probs = rng.uniform(0.05, 1.0, (C, B))
    options = {"axis": 1, "ignore_index": -1, "class_weight": np.linspace(0.5, 2.25, C),
               "reduction": "weighted_mean"}
    expected = reference.sparse_categorical_crossentropy(labels[None], probs[None], **options)
    with periodic(labels) as y_true, periodic(probs) as y_pred:
        assert y_pred.size > BIG
        got = cyloss.sparse_categorical_crossentropy(y_true, y_pred, n_threads=-1, **options)
    assert got == pytest.approx(expected, rel=1e-12, abs=0)


# --- zero-stride broadcasts and overlapping windows: the strided loops --------------------

def broadcast_rows(row, rows=2**28 + 3):
    view = np.broadcast_to(row, (rows, row.size))   # 2**31 + 24 elements for 8 columns
    assert view.size > BIG and view.strides == (0, row.itemsize)
    return view


def test_mse_broadcast_rows():
    y, p = quarters(9, WIDTH), quarters(10, WIDTH)
    y_true, y_pred = broadcast_rows(y), broadcast_rows(p)
    expected = len(y_pred) * exact_total(lambda e: e * e, y[None], p[None])
    assert cyloss.mean_squared_error(y_true, y_pred, reduction="sum",
                                     n_threads=-1) == float(expected)


def test_sparse_broadcast_labels():
    probs = np.random.default_rng(11).uniform(0.05, 1.0, WIDTH)
    y_pred = broadcast_rows(probs)
    labels = np.broadcast_to(np.int64(3), len(y_pred))
    expected = reference.sparse_categorical_crossentropy([3], probs[None], reduction="sum")
    got = cyloss.sparse_categorical_crossentropy(labels, y_pred, reduction="sum",
                                                 n_threads=-1)
    assert got == pytest.approx(len(y_pred) * expected, rel=1e-12, abs=0)


def test_mae_overlapping_windows_of_a_real_buffer():
    # Row i is x[i:i+64]: strides (4, 4) over 128 MiB, 2**31 + 64 elements. Small integer
    # values keep every sum exact, so the answer is an exact fraction.
    width = 64
    x = np.random.default_rng(12).integers(-3, 4, size=2**25 + width, dtype=np.int8)
    y_pred = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32), width)
    assert y_pred.size > BIG and y_pred.strides == (4, 4)
    y_true = np.broadcast_to(np.float32(0.0), y_pred.shape)
    # x[k] lies in min(k + 1, width, len(x) - k) windows.
    a = np.abs(x)
    total = (width * int(a.sum(dtype=np.int64))
             - int(a[: width - 1].astype(np.int64) @ np.arange(width - 1, 0, -1))
             - int(a[-(width - 1):].astype(np.int64) @ np.arange(1, width)))
    got = cyloss.mean_absolute_error(y_true, y_pred, reduction="sum", n_threads=-1)
    assert got == float(Fraction(total, width))
