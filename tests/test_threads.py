"""Threads and memory (SPEC sections 3, 4 and 6).

- Reduced and per-sample results are bitwise identical for every ``n_threads`` on inputs
  large enough to be cut into many blocks, and under ``threadpoolctl`` or
  ``OMP_NUM_THREADS`` limits.
- Python threads raising errors and threads computing values at once get their own
  results (tests/test_concurrency.py has every entry point from 16 threads).
- A reducing call allocates nothing proportional to its input (tracemalloc).
- ``cyloss.show_config()`` reports the version, OpenMP, the thread count and the flags.

The values themselves are checked once against small float64 NumPy references written
here, so that "identical for every thread count" cannot hide "identically wrong".
"""

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import cyloss

N_THREADS = [None, 1, 2, 3, 7, -1]
EPS = 1e-7


# --- float64 NumPy references ----------------------------------------------------------


def softplus(x):
    return np.logaddexp(0.0, x)


def ref_regression(kind, y, p, param=1.0):
    e = p.astype(np.float64) - y.astype(np.float64)
    a = np.abs(e)
    if kind == "mae":
        l = a
    elif kind == "mse":
        l = e * e
    elif kind == "huber":
        l = np.where(a <= param, 0.5 * e * e, param * (a - 0.5 * param))
    else:
        l = np.where(a < param, 0.5 * e * e / param, a - 0.5 * param)
    return l.mean(axis=-1), np.ones(len(l))


def ref_binary(y, p, from_logits=False, label_smoothing=0.0, pos_weight=1.0):
    y = y.astype(np.float64) * (1 - label_smoothing) + label_smoothing / 2
    p = p.astype(np.float64)
    pw = np.asarray(pos_weight, dtype=np.float64)
    if from_logits:
        l = (1 - y) * p + (1 + (pw - 1) * y) * softplus(-p)
    else:
        pc = np.clip(p, EPS, 1 - EPS)
        l = -(pw * y * np.log(pc) + (1 - y) * np.log(1 - pc))
    return l.mean(axis=-1), np.ones(len(l))


def log_probs(p, from_logits):
    p = p.astype(np.float64)
    if from_logits:
        m = p.max(axis=-1, keepdims=True)
        return p - m - np.log(np.exp(p - m).sum(axis=-1, keepdims=True))
    return np.log(np.clip(p / p.sum(axis=-1, keepdims=True), EPS, 1 - EPS))


def ref_categorical(y, p, from_logits=False, label_smoothing=0.0, axis=-1):
    y, p = np.moveaxis(y, axis, -1), np.moveaxis(p, axis, -1)
    c = p.shape[-1]
    q = y.astype(np.float64) * (1 - label_smoothing) + label_smoothing / c
    l = -(q * log_probs(p, from_logits)).sum(axis=-1)
    return l, np.ones(l.shape)


def ref_sparse(labels, p, from_logits=False, label_smoothing=0.0, class_weight=None,
               ignore_index=None):
    c = p.shape[-1]
    counted = np.ones(labels.shape, bool) if ignore_index is None else labels != ignore_index
    safe = np.where(counted, labels, 0)
    q = np.eye(c)[safe] * (1 - label_smoothing) + label_smoothing / c
    cw = np.ones(c) if class_weight is None else np.asarray(class_weight, np.float64)
    l = -(cw * q * log_probs(p, from_logits)).sum(axis=-1)
    v = cw[safe]
    return np.where(counted, l, 0.0), np.where(counted, v, 0.0)


def reduce_ref(l, v, w, reduction):
    """The SPEC section 3 reductions of per-sample losses l with class weights v."""
    w = np.ones(l.shape) if w is None else w
    counted = v != 0 if v is not None else np.ones(l.shape, bool)
    wl = w * l
    if reduction == "none":
        return wl
    if reduction == "sum":
        return float(wl.sum())
    if reduction == "mean":
        return float(wl.sum() / counted.sum())
    return float(wl.sum() / (w * v).sum())


# --- large inputs (300 000 elements each) ----------------------------------------------


def _make_configs():
    rng = np.random.default_rng(20240501)
    n_rows, n_cls = 30_000, 10
    y_reg, p_reg = rng.normal(size=(100_000, 3)), rng.normal(0, 2, size=(100_000, 3))
    y_bin = rng.integers(0, 2, size=(100_000, 3)).astype(float)
    y_bin[::7] = rng.uniform(0, 1, size=y_bin[::7].shape)
    p_bin = rng.uniform(1e-9, 1, size=(100_000, 3))
    p_bin[::11, 0] = 0.0
    p_bin[::13, 1] = 1.0
    x_bin = rng.normal(0, 4, size=(100_000, 3))
    y_cat = rng.dirichlet(np.ones(n_cls), size=n_rows)
    y_cat[::2] = np.eye(n_cls)[rng.integers(0, n_cls, n_rows // 2)]
    p_cat = rng.uniform(0, 1, size=(n_rows, n_cls))
    x_cat = rng.normal(0, 5, size=(n_rows, n_cls))
    labels = rng.integers(0, n_cls, n_rows)
    labels_ign = labels.copy()
    labels_ign[::9] = -1
    cw = rng.uniform(0.2, 3, n_cls)
    f32 = np.float32
    return {
        # id: (function, y_true, y_pred, options, reference per-sample (l, v))
        "mae": (cyloss.mean_absolute_error, y_reg, p_reg, {},
                lambda y, p: ref_regression("mae", y, p)),
        "mse": (cyloss.mean_squared_error, y_reg, p_reg, {},
                lambda y, p: ref_regression("mse", y, p)),
        "mse-f32": (cyloss.mean_squared_error, y_reg.astype(f32), p_reg.astype(f32), {},
                    lambda y, p: ref_regression("mse", y, p)),
        "huber": (cyloss.huber, y_reg, p_reg, {"delta": 0.8},
                  lambda y, p: ref_regression("huber", y, p, 0.8)),
        "huber-f32": (cyloss.huber, y_reg.astype(f32), p_reg.astype(f32), {"delta": 1.5},
                      lambda y, p: ref_regression("huber", y, p, 1.5)),
        "smooth_l1": (cyloss.smooth_l1, y_reg, p_reg, {"beta": 0.6},
                      lambda y, p: ref_regression("smooth_l1", y, p, 0.6)),
        "bce-prob": (cyloss.binary_crossentropy, y_bin, p_bin, {"label_smoothing": 0.1},
                     lambda y, p: ref_binary(y, p, label_smoothing=0.1)),
        # Away from 0 and 1: the float32 clip bounds are tested in test_layouts.py.
        "bce-prob-f32": (cyloss.binary_crossentropy, y_bin.astype(f32),
                         np.clip(p_bin, 1e-4, 1 - 1e-4).astype(f32),
                         {}, lambda y, p: ref_binary(y, p)),
        "bce-logit": (cyloss.binary_crossentropy, y_bin, x_bin,
                      {"from_logits": True, "pos_weight": [1.0, 2.5, 0.5]},
                      lambda y, p: ref_binary(y, p, True, 0.0, [1.0, 2.5, 0.5])),
        "cce-prob": (cyloss.categorical_crossentropy, y_cat, p_cat, {"label_smoothing": 0.1},
                     lambda y, p: ref_categorical(y, p, label_smoothing=0.1)),
        "cce-logit": (cyloss.categorical_crossentropy, y_cat, x_cat, {"from_logits": True},
                      lambda y, p: ref_categorical(y, p, True)),
        "cce-logit-f32": (cyloss.categorical_crossentropy, y_cat.astype(f32),
                          x_cat.astype(f32), {"from_logits": True},
                          lambda y, p: ref_categorical(y, p, True)),
        "cce-logit-axis0": (cyloss.categorical_crossentropy, np.ascontiguousarray(y_cat.T),
                            np.ascontiguousarray(x_cat.T),
                            {"from_logits": True, "axis": 0, "label_smoothing": 0.05},
                            lambda y, p: ref_categorical(y, p, True, 0.05, axis=0)),
        "scce-prob": (cyloss.sparse_categorical_crossentropy, labels, p_cat,
                      {"class_weight": cw},
                      lambda y, p: ref_sparse(y, p, class_weight=cw)),
        "scce-logit": (cyloss.sparse_categorical_crossentropy, labels_ign, x_cat,
                       {"from_logits": True, "ignore_index": -1, "label_smoothing": 0.2},
                       lambda y, p: ref_sparse(y, p, True, 0.2, ignore_index=-1)),
        "scce-logit-f32-cw": (cyloss.sparse_categorical_crossentropy, labels_ign,
                              x_cat.astype(f32),
                              {"from_logits": True, "ignore_index": -1, "class_weight": cw},
                              lambda y, p: ref_sparse(y, p, True, 0.0, cw, -1)),
    }


CONFIGS = _make_configs()
CONFIG_IDS = list(CONFIGS)
WEIGHTS = {
    key: np.random.default_rng(1).uniform(0.5, 2.0, size=len(cfg[1]) if "axis0" not in key
                                          else cfg[1].shape[1])
    for key, cfg in CONFIGS.items()
}
# (reduction, weighted?)
REDUCTIONS = [("mean", False), ("mean", True), ("sum", True), ("weighted_mean", True),
              ("none", False), ("none", True)]


def run(key, reduction, weighted, n_threads):
    fn, y, p, options, _ = CONFIGS[key]
    w = WEIGHTS[key] if weighted else None
    return fn(y, p, sample_weight=w, reduction=reduction, n_threads=n_threads, **options)


def bits(result):
    """A bitwise fingerprint of a result: float.hex for floats, raw bytes for arrays."""
    if isinstance(result, np.ndarray):
        return (result.dtype.str, result.shape, result.tobytes())
    assert type(result) is float, type(result)
    return result.hex()


# --- n_threads -------------------------------------------------------------------------


@pytest.mark.parametrize("key", CONFIG_IDS)
def test_bitwise_identical_for_every_n_threads(key):
    for reduction, weighted in REDUCTIONS:
        serial = bits(run(key, reduction, weighted, 1))
        for k in N_THREADS:
            assert bits(run(key, reduction, weighted, k)) == serial, (reduction, weighted, k)


@pytest.mark.parametrize("key", CONFIG_IDS)
def test_values_match_float64_reference(key):
    fn, y, p, options, ref = CONFIGS[key]
    l, v = ref(y, p)
    single = p.dtype == np.float32
    rtol_reduced, rtol_none = (2e-6, 2e-5) if single else (1e-12, 1e-11)
    # Per-sample losses near 0 (a confident right answer) come from a cancellation
    # (logsumexp - x_label) in the reference as well: allow a few ulps of the terms.
    atol_none = 1e-6 if single else 1e-14
    for reduction, weighted in REDUCTIONS:
        w = WEIGHTS[key] if weighted else None
        expected = reduce_ref(l, v, w, reduction)
        got = run(key, reduction, weighted, None)
        if reduction == "none":
            assert got.dtype == (np.float32 if single else np.float64)
            np.testing.assert_allclose(got, expected, rtol=rtol_none, atol=atol_none)
        else:
            assert got == pytest.approx(expected, rel=rtol_reduced), reduction


def test_threadpoolctl_limits_do_not_change_results():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    keys = ["mse", "bce-logit", "cce-logit-axis0", "scce-logit", "cce-logit-f32"]
    expected = {(k, r, w): bits(run(k, r, w, 1)) for k in keys for r, w in REDUCTIONS}
    for limits, api in [(1, None), (1, "openmp"), (2, "openmp")]:
        with threadpoolctl.threadpool_limits(limits=limits, user_api=api):
            for (k, r, w), want in expected.items():
                assert bits(run(k, r, w, None)) == want, (limits, api, k, r, w)
                assert bits(run(k, r, w, 2)) == want, (limits, api, k, r, w)


def test_omp_num_threads_environment_does_not_change_results():
    script = textwrap.dedent("""
        import numpy as np, cyloss
        rng = np.random.default_rng(5)
        y, x = rng.normal(size=(120_000, 4)), rng.normal(0, 3, size=(120_000, 4))
        labels = rng.integers(0, 4, 120_000)
        out = [cyloss.mse(y, x), cyloss.huber(y, x, reduction="sum"),
               cyloss.sparse_categorical_crossentropy(labels, x, from_logits=True),
               cyloss.binary_crossentropy(np.abs(y) > 1, x, from_logits=True)]
        print(" ".join(v.hex() for v in out))
    """)
    outputs = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout.strip())
    assert len(outputs) == 1, outputs
    # The values themselves.
    rng = np.random.default_rng(5)
    y, x = rng.normal(size=(120_000, 4)), rng.normal(0, 3, size=(120_000, 4))
    first = float.fromhex(outputs.pop().split()[0])
    assert first == pytest.approx(np.mean((x - y) ** 2), rel=1e-12)


# --- many Python threads at once -------------------------------------------------------


def test_concurrent_errors_are_reported_to_their_own_caller():
    # Threads raising data errors and threads computing values do not mix up their
    # results or messages.
    good_y, good_p = CONFIGS["scce-logit"][1], CONFIGS["scce-logit"][2]
    bad_labels = good_y.copy()
    bad_labels[12_345] = 10
    expected = bits(cyloss.sparse_categorical_crossentropy(good_y, good_p, from_logits=True,
                                                           ignore_index=-1))

    def good():
        return bits(cyloss.sparse_categorical_crossentropy(good_y, good_p, from_logits=True,
                                                           ignore_index=-1, n_threads=2))

    def bad():
        with pytest.raises(ValueError, match=r"(?s)(y_true|label).*12345|12345.*(y_true|label)"):
            cyloss.sparse_categorical_crossentropy(bad_labels, good_p, from_logits=True,
                                                   ignore_index=-1, n_threads=2)
        return "raised"

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(good if i % 2 else bad) for i in range(16)]
        results = [f.result() for f in futures]
    assert results == ["raised", expected] * 8


# --- memory ----------------------------------------------------------------------------


def _peak_bytes(fn, *args, **kwargs):
    fn(*(a[:100] for a in args), **kwargs)       # warm-up: imports, caches
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


MIB = 1 << 20


def test_reducing_mse_on_1e7_float32_allocates_under_1_mib():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(10**7, dtype=np.float32)
    p = rng.standard_normal(10**7, dtype=np.float32)
    result, peak = _peak_bytes(cyloss.mean_squared_error, y, p)
    assert peak < MIB, peak
    result2d, peak2d = _peak_bytes(cyloss.mean_squared_error, y.reshape(10**5, 100),
                                   p.reshape(10**5, 100), reduction="sum")
    assert peak2d < MIB, peak2d
    e = p[:10**6].astype(np.float64) - y[:10**6]
    # Spot check of the values on a prefix (the full float64 reference would be slow).
    head = cyloss.mean_squared_error(y[:10**6], p[:10**6])
    assert head == pytest.approx(float(np.mean(e * e)), rel=1e-6)
    assert result == pytest.approx(result2d / 10**5, rel=1e-12)


def test_reducing_sparse_logits_on_1e5_by_100_float32_allocates_under_1_mib():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10**5, 100), dtype=np.float32)
    labels = rng.integers(0, 100, 10**5)
    fn = cyloss.sparse_categorical_crossentropy
    result, peak = _peak_bytes(fn, labels, x, from_logits=True)
    assert peak < MIB, peak
    _, peak_smooth = _peak_bytes(fn, labels, x, from_logits=True, label_smoothing=0.1)
    assert peak_smooth < MIB, peak_smooth
    head = x[:5000].astype(np.float64)
    lse = np.log(np.exp(head).sum(axis=1))
    expected = np.mean(lse - head[np.arange(5000), labels[:5000]])
    assert fn(labels[:5000], x[:5000], from_logits=True) == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(result) and result > 0


def test_reducing_categorical_and_binary_allocate_under_1_mib():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10**5, 20), dtype=np.float32)
    y = (x > 1).astype(np.float32)
    _, peak = _peak_bytes(cyloss.categorical_crossentropy, y, x, from_logits=True)
    assert peak < MIB, peak
    _, peak = _peak_bytes(cyloss.binary_crossentropy, y, x, from_logits=True)
    assert peak < MIB, peak
    _, peak = _peak_bytes(cyloss.huber, y, x)
    assert peak < MIB, peak


# --- show_config -----------------------------------------------------------------------


def test_show_config_prints_version_openmp_threads_and_flags(capsys):
    returned = cyloss.show_config()
    out = capsys.readouterr().out
    assert returned is None or isinstance(returned, dict)
    assert cyloss.__version__ in out
    assert isinstance(cyloss.__version__, str) and cyloss.__version__[0].isdigit()
    low = out.lower()
    assert "openmp" in low
    assert "thread" in low
    assert "flag" in low


def test_show_config_dicts_mode():
    config = cyloss.show_config(mode="dicts")
    assert isinstance(config, dict)
    assert cyloss.__version__ in [str(v) for v in config.values()]
    openmp = [v for k, v in config.items() if k.lower() == "openmp" or k.lower().startswith(
        "openmp")]
    assert openmp and isinstance(openmp[0], bool)
    threads = {k: v for k, v in config.items() if "thread" in k.lower()}
    assert threads and all(isinstance(v, int) and v >= 1 for v in threads.values())
    flags = [v for k, v in config.items() if "flag" in k.lower()]
    assert flags and isinstance(flags[0], str)
    # Never a silent serial build: the flags say whether OpenMP was compiled in.
    assert ("openmp" in flags[0].lower()) == openmp[0]
