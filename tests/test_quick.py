"""The quick path of small regression calls (``_loops.regression_quick``): it must give
the bits of the general path, and step aside for every call it does not cover."""

import numpy as np
import pytest

import cyloss
from cyloss import _loops

FUNCS = {
    "mse": (cyloss.mean_squared_error, lambda e: e * e),
    "mae": (cyloss.mean_absolute_error, np.abs),
    "huber": (cyloss.huber, lambda e: np.where(np.abs(e) <= 1.0, 0.5 * e * e,
                                               np.abs(e) - 0.5)),
    "smooth_l1": (cyloss.smooth_l1, lambda e: np.where(np.abs(e) < 1.0, 0.5 * e * e,
                                                       np.abs(e) - 0.5)),
}
KINDS = {"mse": _loops.MSE, "mae": _loops.MAE, "huber": _loops.HUBER,
         "smooth_l1": _loops.SMOOTH_L1}


def _bits(v):
    return np.float64(v).tobytes()


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (9,), (10_000,), (3, 5), (1000, 13), (64, 1)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_quick_path_gives_the_general_paths_bits(name, dtype, shape, reduction):
    rng = np.random.default_rng(abs(hash((name, shape, reduction))) % 2**32)
    a = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    func, formula = FUNCS[name]
    quick = _loops.regression_quick(KINDS[name], 1.0, a, b, reduction == "mean", None)
    assert quick is not None                       # the path under test was taken
    assert _bits(func(a, b, reduction=reduction)) == _bits(quick)
    # The general path: a strided view of the same data, and an all-ones weight.
    wide = np.stack([a, a], axis=-1)[..., 0]
    assert not wide.flags.c_contiguous or wide.ndim == 1 and wide.size == 1
    assert _bits(func(wide, b, reduction=reduction)) == _bits(quick)
    # An independent float64 value.
    e = b.astype(np.float64) - a.astype(np.float64)
    per_sample = formula(e) if e.ndim == 1 else formula(e).mean(axis=-1)
    want = per_sample.mean() if reduction == "mean" else per_sample.sum()
    assert quick == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_quick_path_steps_aside():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 6))
    b = rng.standard_normal((40, 6))
    quick = lambda y, p, n_threads=None: _loops.regression_quick(
        _loops.MSE, 0.0, y, p, True, n_threads)
    assert quick(a, b) is not None
    assert quick(a[:, ::2], b[:, ::2]) is None                   # not contiguous
    assert quick(a.astype(np.float32), b) is None                # mixed dtypes
    assert quick(a.reshape(2, 20, 6), b.reshape(2, 20, 6)) is None   # three axes
    assert quick(a.tolist(), b) is None                          # not an ndarray
    assert quick(np.ma.asarray(a), b) is None                    # a subclass
    assert quick(a.astype(">f8"), b) is None                     # foreign byte order
    assert quick(a[:, :5], b[:, :5]) is None                     # rows not packed
    assert quick(a, b[:, :5]) is None                            # shapes differ
    assert quick(a[:0], b[:0]) is None                           # empty
    big = np.zeros(10**6)
    assert quick(big, big) is None                               # may be threaded
    for bad in (0, -2, 1.5, True, "2"):
        assert quick(a, b, bad) is None                          # validated elsewhere
    raw = np.zeros(8 * 41, np.uint8)[1:-7].view(np.float64)      # misaligned
    assert not raw.flags.aligned
    assert quick(raw, raw.copy()) is None


@pytest.mark.parametrize("n_threads", [0, -2, 1.5, True])
def test_bad_n_threads_still_raises(n_threads):
    a = np.ones(10)
    with pytest.raises(ValueError, match="n_threads"):
        cyloss.mean_squared_error(a, a, n_threads=n_threads)


def test_fallbacks_agree_with_the_quick_path():
    rng = np.random.default_rng(4)
    a = rng.standard_normal(1000)
    b = rng.standard_normal(1000)
    want = cyloss.mean_squared_error(a, b)
    assert _bits(cyloss.mean_squared_error(a.tolist(), b.tolist())) == _bits(want)
    assert _bits(cyloss.mean_squared_error(a, b, n_threads=2)) == _bits(want)
    assert _bits(cyloss.mean_squared_error(a, b, reduction="auto")) == _bits(want)
