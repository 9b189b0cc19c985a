"""Leaks: many calls of every entry point, error paths included, leave memory flat.

After a warm-up, ``calls`` calls of one entry point on small inputs (microseconds each)
must grow

- traced Python memory (tracemalloc, NumPy's data buffers included) by under 8 bytes a
  call plus 16 KiB: keeping even the smallest Python object (16 bytes) on every call
  exceeds it from 2 048 calls on;
- the bytes in use in C malloc (glibc's mallinfo2, where available) by as much: a
  C-level leak that tracemalloc cannot see exceeds it too (a malloc chunk is at least
  32 bytes). The 16 KiB absorb tracemalloc's own tables (at most 6 KiB measured);
- the resident set size by under 2 MiB, the coarse check everywhere: a leak of any
  21 bytes a call over 10**5 calls exceeds it (unless it reuses memory freed earlier in
  the process, which the malloc count does not miss).

tracemalloc makes each call several times slower, so by default a representative set
runs 10**5 calls and the rest 3 000; CYLOSS_LEAK_CALLS=100000 runs every entry point
10**5 times (a few minutes).
"""

import ctypes
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import cyloss

FULL = 10**5
CALLS = int(os.environ.get("CYLOSS_LEAK_CALLS", 3000))
MIB = 1 << 20
RSS_BOUND = 2 * MIB


def bound(calls):
    """Traced and malloc growth allowed over ``calls`` calls."""
    return 8 * calls + 16 * 1024


N = 32  # samples: 128 float64 elements, a 1 KiB y_pred

rng = np.random.default_rng(0)
y_reg, p_reg = rng.normal(size=(N, 4)), rng.normal(size=(N, 4))
y_bin, x_bin = (rng.random((N, 4)) < 0.5).astype(float), rng.normal(size=(N, 4))
p_bin = rng.uniform(0.05, 0.95, (N, 4))
y_cat, x_cat = rng.dirichlet(np.ones(4), N), rng.normal(size=(N, 4))
labels = rng.integers(0, 4, N)
w = rng.uniform(0.5, 2.0, N)
bad_labels = labels.copy()
bad_labels[-1] = 4  # found by the compiled loop, after the Python-level checks
grad_out = np.empty((N, 4))
huber_obj = cyloss.Huber(delta=0.5, reduction="sum")
mse_accumulator = cyloss.Accumulator("mse")
accumulator = cyloss.Accumulator(cyloss.SparseCategoricalCrossentropy(from_logits=True))
other = cyloss.Accumulator(cyloss.SparseCategoricalCrossentropy(from_logits=True))
other.update(labels, x_cat)


def _accumulate_and_merge():
    accumulator.reset().update(labels, x_cat, w).merge(other)
    return accumulator.result()


# name: (zero-argument call, expected exception or None)
ENTRY_POINTS = {
    "mean_squared_error": (lambda: cyloss.mean_squared_error(y_reg, p_reg), None),
    "sparse_logits_weighted": (lambda: cyloss.sparse_categorical_crossentropy(
        labels, x_cat, from_logits=True, sample_weight=w), None),
    "value_and_grad_bce_logits": (lambda: cyloss.value_and_grad(
        "binary_crossentropy", y_bin, x_bin, from_logits=True, pos_weight=2.0), None),
    "accumulator_update_result": (lambda: mse_accumulator.update(y_reg, p_reg).result(),
                                  None),
    "accumulator_update_merge_result": (_accumulate_and_merge, None),
    "error_label_out_of_range": (lambda: cyloss.sparse_categorical_crossentropy(
        bad_labels, x_cat, from_logits=True), ValueError),
    "categorical_probs": (lambda: cyloss.categorical_crossentropy(
        y_cat, np.abs(x_cat), label_smoothing=0.1), None),
    "categorical_logits_none": (lambda: cyloss.categorical_crossentropy(
        y_cat, x_cat, from_logits=True, reduction="none"), None),
    "sparse_probs_class_weight": (lambda: cyloss.sparse_categorical_crossentropy(
        labels, np.abs(x_cat), class_weight=[1.0, 2.0, 0.5, 1.0], ignore_index=3), None),
    "binary_probs": (lambda: cyloss.binary_crossentropy(y_bin, p_bin), None),
    "mean_absolute_error_none": (lambda: cyloss.mean_absolute_error(
        y_reg, p_reg, reduction="none"), None),
    "huber_object": (lambda: huber_obj(y_reg, p_reg, w), None),
    "smooth_l1_float32": (lambda: cyloss.smooth_l1(
        y_reg.astype(np.float32), p_reg.astype(np.float32), beta=0.5), None),
    "value_and_grad_sparse_logits": (lambda: cyloss.value_and_grad(
        "sparse_categorical_crossentropy", labels, x_cat, from_logits=True,
        reduction="none"), None),
    "grad_categorical_logits": (lambda: cyloss.grad(
        "categorical_crossentropy", y_cat, x_cat, from_logits=True), None),
    "grad_object_grad_out": (lambda: huber_obj.grad(y_reg, p_reg, grad_out=grad_out), None),
    "get": (lambda: cyloss.get("Huber", delta=2.0), None),
    "error_shape_mismatch": (lambda: cyloss.mean_squared_error(y_reg, p_reg[:, :3]),
                             ValueError),
    "error_bad_option": (lambda: cyloss.huber(y_reg, p_reg, delta=-1.0), ValueError),
    "error_bad_reduction": (lambda: cyloss.mae(y_reg, p_reg, reduction="avg"), ValueError),
    "error_bad_n_threads": (lambda: cyloss.mse(y_reg, p_reg, n_threads=0), ValueError),
    "error_string_input": (lambda: cyloss.mse(["a", "b"], ["c", "d"]), TypeError),
    "error_bad_grad_out": (lambda: huber_obj.grad(y_reg, p_reg, grad_out=grad_out[:, :2]),
                           ValueError),
    "error_accumulator_bad_batch": (lambda: accumulator.update(bad_labels, x_cat),
                                    ValueError),
    "error_merge_other_loss": (lambda: accumulator.merge(cyloss.Accumulator("mse")),
                               ValueError),
    "error_unknown_loss": (lambda: cyloss.get("hubber"), ValueError),
}
# A loss function, a gradient into grad_out, an accumulator and an error: FULL calls
# each (the cheapest of their kind); the others CALLS.
REPRESENTATIVE = ("mean_squared_error", "grad_object_grad_out", "accumulator_update_result",
                  "error_bad_option")


def _rss():
    """The resident set size (Linux), else its peak, which only grows (Unix), else 0."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, else KiB


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


try:
    _libc = ctypes.CDLL(None)
    _mallinfo2 = _libc.mallinfo2
    _mallinfo2.restype = _MallInfo2
except (AttributeError, OSError, TypeError):  # not glibc >= 2.33
    _mallinfo2 = None


def _malloc_in_use():
    """Bytes in use in C malloc (heap and mmap'ed chunks), or 0 where unknown."""
    if _mallinfo2 is None:
        return 0
    info = _mallinfo2()
    return info.uordblks + info.hblkhd


def _repeat(call, exception, calls):
    if exception is None:
        for _ in range(calls):
            call()
    else:
        for _ in range(calls):
            try:
                call()
            except exception:
                pass


def _usage():
    return tracemalloc.get_traced_memory()[0], _malloc_in_use(), _rss()


def memory_growth(call, exception, calls):
    """Bytes gained over ``calls`` calls after a warm-up: (traced, malloc, RSS)."""
    _repeat(call, exception, 300)
    tracemalloc.start()
    try:
        _repeat(call, exception, 300)  # tracemalloc's own tables settle
        gc.collect()
        before = _usage()
        _repeat(call, exception, calls)
        gc.collect()
        return tuple(after - b for after, b in zip(_usage(), before))
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_repeated_calls_leave_memory_flat(name, record_property):
    call, exception = ENTRY_POINTS[name]
    if exception is not None:
        with pytest.raises(exception):
            call()
    calls = max(CALLS, FULL) if name in REPRESENTATIVE else CALLS
    traced, malloced, rss = memory_growth(call, exception, calls)
    record_property("calls", calls)
    record_property("traced_growth_bytes", traced)
    record_property("malloc_growth_bytes", malloced)
    record_property("rss_growth_bytes", rss)
    assert traced < bound(calls), f"{traced} bytes traced after {calls} calls"
    assert malloced < bound(calls), f"{malloced} bytes more in malloc after {calls} calls"
    assert rss < RSS_BOUND, f"RSS grew {rss} bytes after {calls} calls"


def test_injected_leaks_are_caught():
    kept = []

    def python_leak():
        kept.append(cyloss.mean_squared_error(y_reg, p_reg))  # a float a call

    assert memory_growth(python_leak, None, 10**4)[0] >= bound(10**4)
    if _mallinfo2 is None:
        return
    _libc.malloc.restype = ctypes.c_void_p
    _libc.free.argtypes = [ctypes.c_void_p]
    buffers = []

    def c_leak():
        buffers.append(_libc.malloc(16))  # invisible to tracemalloc
        cyloss.mean_squared_error(y_reg, p_reg)

    try:
        assert memory_growth(c_leak, None, 10**4)[1] >= bound(10**4)
    finally:
        for buffer in buffers:
            _libc.free(buffer)
