"""Run-time SIMD paths (issue 13): every path this machine has gives the same bits.

cyloss compiles its contiguous fast paths three times (baseline, x86-64-v3 = ``avx2``,
x86-64-v4 = ``avx512``) and picks one at import (``CYLOSS_SIMD`` forces one). Each test
here computes the same calls on every available path and compares raw bytes: values,
per-sample losses and gradients of every registry loss and option (inputs large enough
for the vectorised main loops, their tails and the long-row kernels), and the three-array
losses. A path the CPU lacks is reported, not skipped silently: ``test_paths_reported``
checks the list against /proc/cpuinfo.
"""

import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import cyloss
from cyloss import _loops

import registry

PATHS = _loops.simd_available()


@pytest.fixture
def restore_path():
    before = _loops.simd_current()
    yield
    _loops._set_simd(before)


def on_every_path(fn):
    """fn() on each available path: {path: result}."""
    out = {}
    before = _loops.simd_current()
    try:
        for path in PATHS:
            _loops._set_simd(path)
            out[path] = fn()
    finally:
        _loops._set_simd(before)
    return out


def fingerprint(result):
    if isinstance(result, tuple):
        return tuple(fingerprint(r) for r in result)
    if isinstance(result, np.ndarray):
        return (result.dtype.str, result.shape, result.tobytes())
    return float(result).hex()


def assert_same_bits(results):
    base = fingerprint(results["baseline"])
    for path, r in results.items():
        assert fingerprint(r) == base, f"{path} differs from baseline"


def _big_shapes(case, opts):
    """Shapes with vectorised main loops and tails: long vectors, many short rows, a few
    long rows (the kernels for C above the small-class limit), the class axis where the
    options put it."""
    if case.name in registry.CLASS_AXIS_LOSSES or case.name in registry.LABEL_LOSSES:
        shapes = [(523, 7), (9, 1031), (2, 4099)]
        if opts.get("axis", -1) == 0:
            shapes = [s[::-1] for s in shapes]
        return shapes
    return [(4099,), (517, 9), (3, 2053)]


def _fit_options(opts, shape):
    """Per-class options (class weights, pos_weight vectors) resized to the shape's class
    or last axis."""
    axis = opts.get("axis", -1)
    size = shape[-1 if axis is None else axis] if len(shape) > 1 else 1
    return {k: np.resize(v, size) if isinstance(v, np.ndarray) and v.ndim == 1 else v
            for k, v in opts.items()}


CASES = [
    pytest.param(case, dict(opts), id=f"{case.name}-{oid}")
    for case in registry.LOSSES
    # Every option of the small grids, the first eight of the large ones (the rest vary
    # what the scalar wrappers pass, not which compiled loop runs).
    for oid, opts in case.options[:8]
]


@pytest.mark.skipif(len(PATHS) < 2, reason="this machine runs a single SIMD path")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case,opts", CASES)
def test_every_path_gives_the_same_bits(case, opts, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{case.name}{sorted(opts.items())}".encode()))
    for shape in _big_shapes(case, opts):
        fitted = _fit_options(opts, shape)
        y, p = case.make_inputs(rng, shape, dtype, fitted)
        loss = case.cls(**fitted)
        has_grad = hasattr(loss, "value_and_grad")

        def compute():
            out = (case.function(y, p, **fitted),
                   case.function(y, p, reduction="none", **fitted),
                   case.function(y, p, reduction="sum", n_threads=1, **fitted))
            if has_grad:
                out += tuple(loss.value_and_grad(y, p))
            return out

        assert_same_bits(on_every_path(compute))


def _three_array_calls(dtype):
    rng = np.random.default_rng(7)
    n = 40961
    y = rng.choice([-1.0, 1.0], size=n).astype(dtype)
    a, b = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    var = rng.uniform(0.1, 3.0, size=n).astype(dtype)
    t01 = rng.uniform(size=(n,)).astype(dtype)
    rows = rng.normal(size=(4099, 10)).astype(dtype)
    rows2 = rng.normal(size=(4099, 10)).astype(dtype)
    rows3 = rng.normal(size=(4099, 10)).astype(dtype)
    ylab = rng.choice([-1.0, 1.0], size=4099).astype(dtype)
    return [
        lambda: cyloss.margin_ranking(y, a, b, margin=0.1),
        lambda: cyloss.MarginRanking(margin=0.1).value_and_grad(y, a, b),
        lambda: cyloss.gaussian_nll(a, b, var),
        lambda: cyloss.GaussianNLL(full=True).value_and_grad(a, b, var),
        lambda: cyloss.dice(t01, np.abs(b)),
        lambda: cyloss.tversky(t01, np.abs(b), alpha=0.3, beta=0.7),
        lambda: cyloss.cosine_embedding(ylab, rows, rows2, margin=0.2),
        lambda: cyloss.triplet_margin(rows, rows2, rows3),
    ]


@pytest.mark.skipif(len(PATHS) < 2, reason="this machine runs a single SIMD path")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("k", range(8))
def test_three_array_losses_same_bits(k, dtype):
    call = _three_array_calls(dtype)[k]
    assert_same_bits(on_every_path(call))


def test_paths_reported(restore_path):
    """The available paths follow the CPU's flags; show_config names the one in force."""
    assert PATHS[0] == "baseline"
    flags = set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    dispatch = "(no run-time dispatch" not in _loops.simd_path()
    if dispatch and flags:
        v4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma"}
        assert ("avx512" in PATHS) == v4.issubset(flags)
        assert ("avx2" in PATHS) == {"avx2", "fma", "bmi2"}.issubset(flags)
    for path in PATHS:
        _loops._set_simd(path)
        assert _loops.simd_current() == path
        assert cyloss.show_config(mode="dicts")["simd_path"].startswith(path + " (")
    with pytest.raises(ValueError, match="SIMD path must be one of"):
        _loops._set_simd("sse9")


def _import_with(value):
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as w:
            from cyloss import _loops
        print(_loops.simd_current())
        print("|".join(str(x.message) for x in w))
    """)
    env = dict(os.environ, CYLOSS_SIMD=value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("value", ["baseline", "avx2", "avx512", "auto", "", " AVX2 "])
def test_environment_variable_forces_a_path(value):
    r = _import_with(value)
    assert r.returncode == 0, r.stderr
    current, warned = r.stdout.splitlines()[:2] + [""] * (2 - len(r.stdout.splitlines()))
    want = value.strip().lower()
    if want in ("", "auto"):
        assert current == PATHS[-1] and not warned
    elif want in PATHS:
        assert current == want and not warned
    else:   # forced beyond what this machine has: the best it has, with a warning
        assert current == PATHS[-1]
        assert f"CYLOSS_SIMD={value!r}" in warned and "using" in warned


def test_environment_variable_unknown_value_is_an_error():
    r = _import_with("avx1024")
    assert r.returncode != 0
    assert "CYLOSS_SIMD must be one of" in r.stderr and "'avx1024'" in r.stderr
