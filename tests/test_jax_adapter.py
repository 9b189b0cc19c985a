"""cyloss.jax against ``jax.grad`` of the plain formulas, written here in jax.numpy.

The references are PyTorch's definitions (cross-entropy with class weights, ignored labels
and label smoothing, BCE with pos_weight and the log clamped at -100, ...) written out in
jax.numpy and differentiated by JAX; nothing is compared with cyloss's own output.
"""

import zlib

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import cyloss.jax as cj  # noqa: E402
from cyloss import _adapters  # noqa: E402

RTOL = {"float32": 1e-6, "float64": 1e-12}


def assert_close(actual, expected, dtype):
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape
    scale = max(np.abs(e).max(initial=0.0), 1e-30)
    np.testing.assert_allclose(a, e, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


# --- the plain formulas (PyTorch's definitions) ---------------------------------------------

def _reduce(per, reduction, den=None):
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / (per.size if den is None else den)


def ref_cross_entropy(x, t, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
    axis = 1 if x.ndim > 1 else 0
    n_classes = x.shape[axis]
    logp = jax.nn.log_softmax(x, axis=axis)
    w = jnp.ones(n_classes, x.dtype) if weight is None else jnp.asarray(weight, x.dtype)
    wb = w.reshape([n_classes if i == axis else 1 for i in range(x.ndim)])
    s = label_smoothing
    if jnp.issubdtype(t.dtype, jnp.floating):
        q = t * (1 - s) + s / n_classes
        return _reduce(-(wb * q * logp).sum(axis), reduction)
    valid = t != ignore_index
    label = jnp.where(valid, t, 0)
    q = jax.nn.one_hot(label, n_classes, axis=axis, dtype=x.dtype) * (1 - s) + s / n_classes
    per = jnp.where(valid, -(wb * q * logp).sum(axis), 0)
    return _reduce(per, reduction, jnp.where(valid, w[label], 0).sum())


def ref_bce_with_logits(x, y, weight=None, reduction="mean", pos_weight=None):
    pw = 1.0 if pos_weight is None else pos_weight
    w = 1.0 if weight is None else weight
    per = -w * (pw * y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
    return _reduce(per, reduction)


def ref_bce(p, y, weight=None, reduction="mean"):
    w = 1.0 if weight is None else weight
    per = -w * (y * jnp.maximum(jnp.log(p), -100) + (1 - y) * jnp.maximum(jnp.log1p(-p), -100))
    return _reduce(per, reduction)


def ref_l1(x, y, reduction="mean"):
    return _reduce(jnp.abs(x - y), reduction)


def ref_mse(x, y, reduction="mean"):
    return _reduce((x - y) ** 2, reduction)


def ref_huber(x, y, reduction="mean", delta=1.0):
    e = jnp.abs(x - y)
    return _reduce(jnp.where(e <= delta, 0.5 * e * e, delta * (e - 0.5 * delta)), reduction)


def ref_smooth_l1(x, y, reduction="mean", beta=1.0):
    e = jnp.abs(x - y)
    if beta == 0:
        return _reduce(e, reduction)
    return _reduce(jnp.where(e < beta, 0.5 * e * e / beta, e - 0.5 * beta), reduction)


REFERENCES = {
    "cross_entropy": ref_cross_entropy,
    "binary_cross_entropy_with_logits": ref_bce_with_logits,
    "binary_cross_entropy": ref_bce,
    "l1_loss": ref_l1,
    "mse_loss": ref_mse,
    "huber_loss": ref_huber,
    "smooth_l1_loss": ref_smooth_l1,
}


def _data(kind, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if kind == "labels":
        axis = 1 if len(shape) > 1 else 0
        x = rng.standard_normal(shape) * 2
        t = rng.integers(0, shape[axis], shape[:axis] + shape[axis + 1:]).astype(np.int32)
        return x.astype(dtype), t
    if kind == "probs_target":
        x = rng.standard_normal(shape) * 2
        e = np.exp(rng.standard_normal(shape))
        return x.astype(dtype), (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    if kind == "logits":
        return (rng.standard_normal(shape) * 3).astype(dtype), rng.random(shape).astype(dtype)
    if kind == "probs":
        return (rng.random(shape) * 0.98 + 0.01).astype(dtype), rng.random(shape).astype(dtype)
    x = rng.standard_normal(shape)
    return x.astype(dtype), (x + rng.standard_normal(shape) * 1.5).astype(dtype)


# (id, function, options (integers under weight / pos_weight: sizes), data, shape)
CASES = [
    ("ce", "cross_entropy", {}, "labels", (7, 5)),
    ("ce-all", "cross_entropy", {"weight": 4, "ignore_index": 1, "label_smoothing": 0.15},
     "labels", (9, 4)),
    ("ce-spatial", "cross_entropy", {"weight": 3, "label_smoothing": 0.1}, "labels",
     (4, 3, 5)),
    ("ce-unbatched", "cross_entropy", {}, "labels", (6,)),
    ("ce-probs", "cross_entropy", {"weight": 5, "label_smoothing": 0.2}, "probs_target",
     (7, 5)),
    ("bcel", "binary_cross_entropy_with_logits", {}, "logits", (6, 4)),
    ("bcel-both", "binary_cross_entropy_with_logits", {"weight": 4, "pos_weight": 4},
     "logits", (6, 4)),
    ("bce-weight", "binary_cross_entropy", {"weight": 4}, "probs", (6, 4)),
    ("l1", "l1_loss", {}, "regression", (6, 4)),
    ("mse", "mse_loss", {}, "regression", (11,)),
    ("huber", "huber_loss", {"delta": 0.7}, "regression", (6, 4)),
    ("smooth_l1", "smooth_l1_loss", {"beta": 0.6}, "regression", (6, 4)),
    ("smooth_l1-beta0", "smooth_l1_loss", {"beta": 0.0}, "regression", (6, 4)),
]


def _options(opts, dtype):
    rng = np.random.default_rng(5)
    return {k: (rng.random(v) * 2 + 0.1).astype(dtype) if k in ("weight", "pos_weight")
            else v for k, v in opts.items()}


def _values_and_grads(fn, x, t, options, cotangents):
    """Every reduction's value and its vjp with ``cotangents[reduction]``, in one jit."""
    def run(x):
        out = {}
        for reduction, c in cotangents.items():
            value, pull = jax.vjp(lambda x: fn(x, t, reduction=reduction, **options), x)
            out[reduction] = (value, pull(c)[0])
        return out
    return jax.jit(run)(x)


def _check_case(case, dtype):
    name, fn_name, opts, kind, shape = case
    x, t = _data(kind, shape, dtype, zlib.crc32(name.encode()))
    if "ignore_index" in opts:
        t[::3] = opts["ignore_index"]
    options = _options(opts, dtype)
    x, t = jnp.asarray(x), jnp.asarray(t)
    # The cotangent: -2.5 for a reduced loss (the incoming gradient is multiplied in), a
    # random array of the per-sample shape for "none".
    per_sample = jax.eval_shape(
        lambda x: REFERENCES[fn_name](x, t, reduction="none", **options), x).shape
    cotangents = {"mean": jnp.asarray(-2.5, x.dtype), "sum": jnp.asarray(-2.5, x.dtype),
                  "none": jnp.asarray(np.random.default_rng(1).standard_normal(per_sample),
                                      x.dtype)}
    ours = _values_and_grads(getattr(cj, fn_name), x, t, options, cotangents)
    refs = _values_and_grads(REFERENCES[fn_name], x, t, options, cotangents)
    for reduction in cotangents:
        (value, grad), (ref_value, ref_grad) = ours[reduction], refs[reduction]
        assert value.dtype == x.dtype, reduction
        assert_close(value, ref_value, dtype)
        assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_and_grad_match_the_formula_float32(case):
    _check_case(case, "float32")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_and_grad_match_the_formula_float64(case):
    with jax.enable_x64(True):
        _check_case(case, "float64")


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[6]], ids=lambda c: c[0])
def test_pure_callback_fallback(case, monkeypatch):
    """The path for JAX without buffer_callback, or a backend other than the CPU."""
    monkeypatch.setattr(cj, "_buffer_callback", None)
    _check_case(case, "float32")


def test_equals_optax_with_integer_labels():
    optax = pytest.importorskip("optax")
    x, t = _data("labels", (32, 10), "float32", 0)
    value, grad = jax.jit(jax.value_and_grad(lambda x: cj.cross_entropy(x, t)))(x)
    ref_value, ref_grad = jax.jit(jax.value_and_grad(
        lambda x: optax.softmax_cross_entropy_with_integer_labels(x, t).mean()))(x)
    assert_close(value, ref_value, "float32")
    assert_close(grad, ref_grad, "float32")


def test_residual_used_by_two_pullbacks_is_not_overwritten():
    """The backward pass scales the residual in place (an input-output alias): a second
    pullback of the same forward must still see the unscaled gradient, and a cotangent
    of 1 leaves it as it is."""
    x, t = _data("labels", (64, 7), "float32", 3)

    def pulls(fn):
        def run(x):
            value, pull = jax.vjp(lambda x: fn(x, t, label_smoothing=0.1), x)
            return value, pull(jnp.float32(-2.5))[0], pull(jnp.float32(1.0))[0], \
                pull(jnp.float32(3.0))[0]
        return jax.jit(run)(x)

    ours, refs = pulls(cj.cross_entropy), pulls(ref_cross_entropy)
    for a, b in zip(ours, refs):
        assert_close(a, b, "float32")
    assert not np.array_equal(np.asarray(ours[1]), np.asarray(ours[2]))


def test_large_outputs_take_the_huge_page_advice():
    """Outputs of 4 MiB and more get madvise(MADV_HUGEPAGE) before cyloss writes them:
    the values are unchanged, and a buffer below the threshold is left alone."""
    x, t = _data("labels", (1100, 1000), "float32", 4)   # a 4.4 MB gradient
    value, grad = jax.jit(jax.value_and_grad(lambda x: cj.cross_entropy(x, t)))(x)
    ref_value, ref_grad = jax.jit(jax.value_and_grad(ref_cross_entropy))(x, t)
    assert_close(value, ref_value, "float32")
    assert_close(grad, ref_grad, "float32")
    import sys
    if sys.platform.startswith("linux"):
        assert cj._madvise not in (None, False)     # resolved and used
    calls = []
    real = cj._madvise
    try:
        cj._madvise = lambda *a: calls.append(a) or 0
        cj._hugepages(np.empty(1000, np.float32))
        assert calls == []
        big = np.empty(3 << 20, np.float32)
        cj._hugepages(big)
        (start, length, advice), = calls
        assert start % 4096 == 0 and advice == 14
        assert big.ctypes.data <= start and start + length <= big.ctypes.data + big.nbytes
    finally:
        cj._madvise = real


def test_vmap_runs_one_call_per_batch_element():
    problems = [_data("labels", (8, 5), "float32", seed) for seed in range(3)]
    x, t = np.stack([p[0] for p in problems]), np.stack([p[1] for p in problems])
    value = jax.vmap(lambda a, b: cj.cross_entropy(a, b, label_smoothing=0.1))(x, t)
    ref = jax.jit(lambda a, b: ref_cross_entropy(a, b, label_smoothing=0.1))
    assert_close(value, [ref(a, b) for a, b in zip(x, t)], "float32")
    grads = jax.jit(jax.vmap(jax.grad(lambda a, b: cj.cross_entropy(a, b))))(x, t)
    assert_close(grads, jax.jit(jax.vmap(jax.grad(ref_cross_entropy)))(x, t), "float32")


def test_labels_stay_integer_and_inputs_reach_cyloss_unchanged(monkeypatch):
    seen = []
    real = _adapters.LOSSES["cross_entropy"]

    def spy(x, t, **kw):
        seen.append((x.dtype, t.dtype, x.shape))
        return real(x, t, **kw)

    monkeypatch.setitem(_adapters.LOSSES, "cross_entropy", spy)
    x, t = _data("labels", (6, 4), "float32", 3)
    jax.jit(jax.grad(cj.cross_entropy))(x, t)
    assert seen == [(np.float32, np.int32, (6, 4))]     # one fused call, integer labels


def test_errors():
    x, t = _data("labels", (6, 4), "float32", 4)
    xr, yr = _data("regression", (5,), "float32", 4)
    with pytest.raises(NotImplementedError, match="target.*input only"):
        jax.grad(lambda y: cj.mse_loss(xr, y))(yr)
    with pytest.raises(TypeError, match="weight.*concrete"):
        jax.jit(lambda w: cj.cross_entropy(x, t, weight=w))(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="input.*float32 or float64"):
        cj.mse_loss(jnp.asarray(xr, jnp.float16), yr)
    with pytest.raises(ValueError, match="reduction"):
        cj.mse_loss(xr, yr, reduction="batchmean")
    with pytest.raises(ValueError, match="target: shape"):
        jax.jit(lambda x: cj.cross_entropy(x, t[:2]))(x)
    with pytest.raises(ValueError, match="target: shape .* differs"):
        cj.huber_loss(xr, yr[:3])
    with pytest.raises(ValueError, match="JVP"):        # no higher-order derivatives
        jax.hessian(lambda x: cj.cross_entropy(x, t))(x)
