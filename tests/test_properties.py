"""Properties (hypothesis): invariances and identities that hold for any input.

- log-softmax shift invariance: adding a constant to every logit of a row leaves
  categorical / sparse from-logits losses unchanged;
- categorical from logits with one-hot targets is sparse from logits (also smoothed);
- ``huber(delta) / delta == smooth_l1(beta=delta)``;
- float32 input agrees with the float64 result to ~1e-6 relative (SPEC section 4);
- every ``n_threads`` gives bitwise identical results (SPEC section 3), on inputs
  large enough to be split into several blocks;
- agreement with the float64 reference on random shapes and options.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cyloss
import reference
import registry
from registry import LOSSES, make_sample_weight

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=25)

REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _close(a, b, rtol, atol):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    else:
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=atol), (a, b)


# Logits on a 2^-10 grid and integer shifts: ``x + c`` is exact in float64, so any
# difference comes from the loss, not from rounding the shifted input.
def _logit_rows(n_classes_min=2):
    def grid_logits(t):
        n, c, seed = t
        return np.random.default_rng(seed).integers(-30 * 1024, 30 * 1024, size=(n, c)) / 1024.0

    return st.tuples(st.integers(1, 12), st.integers(n_classes_min, 8), seeds).map(grid_logits)


@SETTINGS
@given(
    x=_logit_rows(),
    shift_seed=seeds,
    label_smoothing=st.sampled_from([0.0, 0.1, 1.0]),
)
def test_log_softmax_shift_invariance(x, shift_seed, label_smoothing):
    rng = np.random.default_rng(shift_seed)
    shift = rng.integers(-1000, 1001, size=(x.shape[0], 1)).astype(np.float64)
    n, c = x.shape
    labels = rng.integers(0, c, size=n)
    q = rng.dirichlet(np.ones(c), size=n)
    kw = dict(from_logits=True, label_smoothing=label_smoothing, reduction="none")
    # |lse| <= ~1e3: an implementation forming lse = m + log(s) rounds at ulp(1e3)
    atol = 1e-12
    _close(
        cyloss.categorical_crossentropy(q, x + shift, **kw),
        cyloss.categorical_crossentropy(q, x, **kw),
        1e-12,
        atol,
    )
    _close(
        cyloss.sparse_categorical_crossentropy(labels, x + shift, **kw),
        cyloss.sparse_categorical_crossentropy(labels, x, **kw),
        1e-12,
        atol,
    )


@SETTINGS
@given(
    x=_logit_rows(),
    seed=seeds,
    label_smoothing=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    from_logits=st.booleans(),
    reduction=st.sampled_from(REDUCTIONS),
)
def test_categorical_one_hot_equals_sparse(x, seed, label_smoothing, from_logits, reduction):
    rng = np.random.default_rng(seed)
    n, c = x.shape
    if not from_logits:
        x = rng.uniform(0.0, 1.0, size=x.shape) + 1e-3  # probabilities (renormalised)
    labels = rng.integers(0, c, size=n)
    one_hot = np.eye(c)[labels]
    sw = rng.uniform(0, 2, size=n)
    kw = dict(from_logits=from_logits, label_smoothing=label_smoothing, reduction=reduction)
    _close(
        cyloss.categorical_crossentropy(one_hot, x, **kw, sample_weight=sw),
        cyloss.sparse_categorical_crossentropy(labels, x, **kw, sample_weight=sw),
        1e-10,
        1e-13,
    )


@SETTINGS
@given(
    seed=seeds,
    delta=st.sampled_from([1e-3, 0.1, 0.5, 1.0, 2.0, 7.5]),
    shape=st.sampled_from([(1,), (17,), (6, 3), (2, 3, 4)]),
    reduction=st.sampled_from(REDUCTIONS),
)
def test_huber_over_delta_is_smooth_l1(seed, delta, shape, reduction):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=shape)
    p = y + rng.normal(0, 2 * delta, size=shape)
    p.reshape(-1)[0] = y.reshape(-1)[0] + delta  # exactly on the boundary, if representable
    h = cyloss.huber(y, p, delta=delta, reduction=reduction)
    s = cyloss.smooth_l1(y, p, beta=delta, reduction=reduction)
    _close(h / delta, s, 1e-12, 1e-300)


# --------------------------------------------------------------------------- #
# Registry-driven properties
# --------------------------------------------------------------------------- #
CASE_OPTIONS = [(case, oid, opts) for case in LOSSES for oid, opts in case.options]


def _draw_shape(data, case, options):
    """A random y_pred shape valid for this loss and option set."""
    dim = st.integers(1, 6)
    name = case.name
    if name in registry.CLASS_AXIS_LOSSES:
        if name in registry.LABEL_LOSSES:
            n_classes = registry.N_CLASSES  # class_weight and ignore_index=2 need 5
        else:
            n_classes = data.draw(st.integers(2, 7))
        axis = options.get("axis", -1)
        if axis == 0:
            return (n_classes, data.draw(dim))
        if axis == 1:
            return (data.draw(dim), n_classes, data.draw(dim))
        batch = data.draw(st.lists(dim, min_size=1, max_size=2))
        return tuple(batch) + (n_classes,)
    width = registry.fixed_width(case, options)
    if width is not None:
        return tuple(data.draw(st.lists(dim, min_size=1, max_size=2))) + (width,)
    return tuple(data.draw(st.lists(dim, min_size=1, max_size=3)))


@SETTINGS
@given(
    data=st.data(),
    case_options=st.sampled_from(CASE_OPTIONS),
    seed=seeds,
    reduction=st.sampled_from(REDUCTIONS),
    sw_kind=st.sampled_from([None, "full", "column"]),
)
def test_reference_agreement_random_shapes(data, case_options, seed, reduction, sw_kind):
    case, oid, options = case_options
    shape = _draw_shape(data, case, options)
    rng = np.random.default_rng(seed)
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    per_sample = case.per_sample_shape(shape, options)
    sw = make_sample_weight(rng, per_sample, sw_kind)
    kw = dict(options, sample_weight=sw, reduction=reduction)
    expected = case.reference(y_true, y_pred, **kw)
    actual = case.function(y_true, y_pred, **kw)
    if reduction == "none":
        assert actual.shape == per_sample and actual.dtype == np.float64
    else:
        assert type(actual) is float
    _close(actual, expected, 1e-9, 1e-15)


@SETTINGS
@given(
    data=st.data(),
    case_options=st.sampled_from(CASE_OPTIONS),
    seed=seeds,
    reduction=st.sampled_from(REDUCTIONS),
)
def test_float32_close_to_float64(data, case_options, seed, reduction):
    case, oid, options = case_options
    shape = _draw_shape(data, case, options)
    rng = np.random.default_rng(seed)
    y_true, y_pred = case.make_inputs(rng, shape, np.float32, options, extremes=False)
    per_sample = case.per_sample_shape(shape, options)
    sw = make_sample_weight(rng, per_sample, "full")
    y_true64 = y_true.astype(np.float64) if y_true.dtype.kind == "f" else y_true
    kw = dict(options, sample_weight=sw, reduction=reduction)
    expected = case.reference(y_true64, y_pred.astype(np.float64), **kw)
    actual = case.function(y_true, y_pred, **kw)
    if reduction == "none":
        assert actual.dtype == np.float32 and actual.shape == per_sample
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
        np.testing.assert_allclose(
            actual.astype(np.float64), expected, rtol=2e-6, atol=1e-6 * scale
        )
    else:
        assert type(actual) is float
        assert math.isclose(actual, expected, rel_tol=2e-6, abs_tol=1e-12), (actual, expected)


# --------------------------------------------------------------------------- #
# Thread-count independence, bitwise
# --------------------------------------------------------------------------- #
N_ELEMENTS = 200_000
THREAD_COUNTS = (1, 2, 3, 7)


def _big_shape(case, options):
    if case.name in registry.CLASS_AXIS_LOSSES:
        axis = options.get("axis", -1)
        c = registry.N_CLASSES
        if axis == 0:
            return (c, N_ELEMENTS // c)
        if axis == 1:
            return (N_ELEMENTS // (c * 8), c, 8)
        return (N_ELEMENTS // c, c)
    width = registry.fixed_width(case, options)
    if width is not None:
        return (N_ELEMENTS // width, width)
    return (N_ELEMENTS,)


@FEW
@given(
    case_options=st.sampled_from(CASE_OPTIONS),
    seed=seeds,
    dtype=st.sampled_from([np.float64, np.float32]),
    weighted=st.booleans(),
    two_d=st.booleans(),
)
def test_n_threads_bitwise_identical(case_options, seed, dtype, weighted, two_d):
    case, oid, options = case_options
    shape = _big_shape(case, options)
    if two_d and len(shape) == 1:
        shape = (N_ELEMENTS // 4, 4)
    rng = np.random.default_rng(seed)
    y_true, y_pred = case.make_inputs(rng, shape, dtype, options, extremes=dtype == np.float64)
    per_sample = case.per_sample_shape(shape, options)
    sw = make_sample_weight(rng, per_sample, "full") if weighted else None
    for reduction in REDUCTIONS:
        results = [
            case.function(
                y_true, y_pred, **options, sample_weight=sw, reduction=reduction, n_threads=k
            )
            for k in THREAD_COUNTS
        ]
        first = results[0]
        for k, other in zip(THREAD_COUNTS[1:], results[1:]):
            if reduction == "none":
                assert other.dtype == first.dtype
                assert other.tobytes() == first.tobytes(), (reduction, k)
            else:
                # bitwise: compare the IEEE bit patterns, not a tolerance
                assert np.float64(other).tobytes() == np.float64(first).tobytes(), (
                    reduction,
                    k,
                    first,
                    other,
                )


@pytest.mark.parametrize("case", registry.loss_params())
def test_n_threads_none_and_all_cores_match_serial(case):
    # n_threads=None and -1 are thread counts too: same bits as n_threads=1
    oid, options = case.options[-1]
    shape = _big_shape(case, options)
    rng = np.random.default_rng(12345)
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    for reduction in ("mean", "sum"):
        serial = case.function(y_true, y_pred, **options, reduction=reduction, n_threads=1)
        for k in (None, -1):
            other = case.function(y_true, y_pred, **options, reduction=reduction, n_threads=k)
            assert np.float64(other).tobytes() == np.float64(serial).tobytes(), (k, serial, other)
