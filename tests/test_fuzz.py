"""Property-based fuzzing of every public entry point with hostile inputs (hypothesis).

Each example draws one call: a loss, a subset of its options (now and then an invalid
value), ``y_true`` / ``y_pred`` / ``sample_weight`` of random shapes (0-d to 3-d, axes of
size 0 and 1), dtypes (float16/32/64, longdouble, int8/32/64, uint8, bool; complex, object
and str that must be refused), layouts (C, F, strided with negative steps, zero-stride
broadcast views, read-only, ``np.memmap``, Python lists) and values (NaN, +-inf,
subnormals, +-1e300, 0, -0, 1, labels at 0, C - 1, C, -1 and ignore_index); see
``fuzz_inputs.py``. The call goes through one of the entry points (the function, its
alias, the class, ``cyloss.get``; ``value_and_grad`` / ``grad`` as functions and
methods; ``Accumulator`` update / merge / result; ``python -m cyloss eval`` in-process).

Every example must either
- return what the independent float64 reference returns (``reference.py``;
  ``reference_grad.py`` for gradients), or
- raise ``ValueError`` / ``TypeError`` whose message names an argument the oracle
  (``fuzz_inputs.problems``, written from SPEC section 5) found at fault,
and it must raise exactly when the oracle finds a problem. Any other exception, a crash,
a mismatch or a missing error fails.

Tolerances (``_tolerance``): the reference gets the values cyloss computes with (inputs
cast to the compute dtype) and is exact or correctly rounded, so the allowed error is that
of a backward-stable float computation:
``rtol * (sum_i |w_i| (|l_i| + c_i) + |value| sum_i |w_i v_i|) / |denominator|`` for a
reduced value (the numerator's and denominator's rounding, relative to their terms), and
``rtol * (|w_i l_i| + |w_i| c_i)`` per sample for ``reduction="none"``, where ``c_i`` is the
size of the terms a per-sample loss adds before cancellation (``max |x|`` times the sum of
the coefficients for log-softmax rows, since ``logsumexp(x) - x_k`` is computed to
``ulp(max |x|)``; the coefficients for binary cross-entropy; 0 for regression).
``rtol`` is 1e-12 for float64 computation and 1e-5 for float32 (SPEC section 4 allows
float32 arithmetic per element); results below the smallest normal number of the compute
dtype count as equal. NaN and infinities must match exactly.

Example counts: ``CYLOSS_FUZZ_EXAMPLES`` (default 300 per test; the eval command gets a
quarter). ``CYLOSS_FUZZ_REPORT=path`` writes how many examples each test tried, how many
were rejected with ValueError/TypeError, and how many were compared with the reference.
The long run:

    CYLOSS_FUZZ_EXAMPLES=20000 CYLOSS_FUZZ_REPORT=fuzz.json \\
        python -m pytest tests/test_fuzz.py -p no:cacheprovider

Under CI (CI=true) conftest.py loads hypothesis's derandomized profile, which the
settings below inherit.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cyloss
import fuzz_inputs as fz
import reference
import reference_grad
from cyloss.__main__ import main as cli_main
from fuzz_inputs import BINARY, CATEGORICAL, SPARSE, Call

N_EXAMPLES = int(os.environ.get("CYLOSS_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
FUZZ_CLI = settings(FUZZ, max_examples=max(1, N_EXAMPLES // 4))

CLASSES = cyloss.LOSSES
ALIASES = {"mean_absolute_error": "mae", "mean_squared_error": "mse",
           "mean_absolute_percentage_error": "mape", "mean_squared_logarithmic_error": "msle"}

# --------------------------------------------------------------------------------------
# Counting, for a reliability report
# --------------------------------------------------------------------------------------
STATS = defaultdict(Counter)


def count(test, outcome):
    """One more example of ``test`` with ``outcome`` (also shown by pytest's
    --hypothesis-show-statistics)."""
    STATS[test][outcome] += 1
    if outcome != "tried":
        event(outcome)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("CYLOSS_FUZZ_REPORT")
    if path:
        total = Counter()
        for counts in STATS.values():
            total.update(counts)
        with open(path, "w") as f:
            json.dump({"examples_per_test": N_EXAMPLES, "tests": STATS, "total": total},
                      f, indent=2, sort_keys=True)


@pytest.fixture(scope="module")
def memmaps(tmp_path_factory):
    return fz.MemmapDir(str(tmp_path_factory.mktemp("fuzz_memmap")))


# --------------------------------------------------------------------------------------
# Expected values
# --------------------------------------------------------------------------------------
def _reduction(call):
    return fz.REDUCTIONS[call.option("reduction")]


def _options(call):
    """The loss options as the reference takes them (plain floats, arrays)."""
    out = {}
    for key in fz.OPTIONS[call.loss]:
        value = call.option(key)
        if key in ("class_weight", "pos_weight"):
            value = None if value is None else np.asarray(value, dtype=np.float64)
        elif key == "from_logits":
            value = bool(value)
        elif key in ("axis", "ignore_index"):
            value = None if value is None else int(value)
        else:
            value = float(value)
        out[key] = value
    return out


def _inputs(call):
    """(y_true, y_pred, sample_weight) as the reference takes them: the values cyloss
    computes with (labels as they are; weights in float64)."""
    yp = np.asarray(call.y_pred)
    dtype = fz.compute_dtype(yp)
    yt = np.asarray(call.y_true)
    y_true = yt if call.loss == SPARSE else fz.as_compute(yt, dtype)
    w = call.sample_weight
    w = None if w is None else np.asarray(w).astype(np.float64)
    return y_true, fz.as_compute(yp, dtype), w


def _sample_terms(call, y_true, y_pred, options):
    """Per sample: counted, v (the weighted_mean denominator's weight) and c (the size of
    the terms summed before cancellation; see the module docstring)."""
    if call.loss in (CATEGORICAL, SPARSE):
        ax = options["axis"] % y_pred.ndim
        x = np.moveaxis(y_pred, ax, -1)
        n_classes = x.shape[-1]
        s = options["label_smoothing"]
        finite = np.where(np.isfinite(x), np.abs(x), 0.0)
        spread = 1.0 + (finite.max(axis=-1, initial=0.0) if options["from_logits"] else 0.0)
        if call.loss == CATEGORICAL:
            y = np.moveaxis(y_true, ax, -1)
            coef = np.abs(y * (1 - s) + s / max(n_classes, 1)).sum(axis=-1)
            return np.ones(coef.shape, bool), np.ones(coef.shape), coef * spread
        labels = np.asarray(y_true)
        if labels.ndim == y_pred.ndim:
            labels = np.squeeze(labels, axis=ax)
        labels = labels.astype(np.int64)
        ignore = options["ignore_index"]
        counted = np.ones(labels.shape, bool) if ignore is None else labels != ignore
        safe = np.where(counted, labels, 0)
        cw = options["class_weight"]
        cw = np.ones(n_classes) if cw is None else cw
        coef = cw[safe] * (1 - s) + s * cw.sum() / max(n_classes, 1)
        return counted, cw[safe], coef * spread
    y, p = reference._same_shape(y_true, y_pred)
    shape = p.shape[:-1] if p.ndim >= 2 else p.shape
    if call.loss == BINARY:
        s = options["label_smoothing"]
        ys = y * (1 - s) + s / 2
        pw = options["pos_weight"]
        pw = 1.0 if pw is None else pw.reshape(-1)
        c = np.abs(pw * ys) + np.abs(1 - ys)
        if p.ndim >= 2:
            c = c.sum(axis=-1) / max(p.shape[-1], 1)
    else:
        c = _cancelling_terms(call.loss, y, p)
        if c is None:
            c = np.zeros(shape)
        else:
            # infinite terms give an infinite, NaN or exactly clamped value: no bound
            c = np.where(np.isfinite(c), c, 0.0)
            if p.ndim >= 2:
                c = c.sum(axis=-1) / max(p.shape[-1], 1)
    return np.ones(shape, bool), np.ones(shape), c


def _cancelling_terms(loss, y, p):
    """Per element, the size of the terms an elementwise loss subtracts (its value's
    rounding error is relative to them), or None where nothing cancels."""
    eps = reference.EPSILON
    if loss == "poisson":
        return np.abs(p) + np.abs(y * np.log(p + eps))
    if loss == "mean_squared_logarithmic_error":
        la, lb = np.log1p(np.maximum(p, eps)), np.log1p(np.maximum(y, eps))
        return 2.0 * np.abs(la - lb) * (np.abs(la) + np.abs(lb))
    if loss in ("hinge", "squared_hinge"):
        tp = np.abs(reference.hinge_labels(y) * p)
        if loss == "hinge":
            return 1.0 + tp
        return 2.0 * np.abs(1.0 - reference.hinge_labels(y) * p) * (1.0 + tp)
    return None


def _rtol(call):
    return 1e-12 if fz.compute_dtype(np.asarray(call.y_pred)) == np.float64 else 1e-5


def expected(call):
    """``(value, tolerance)`` of a valid call; ``tolerance`` is None when the value is
    not well defined by the float64 sums (see ``_tolerance``)."""
    y_true, y_pred, w = _inputs(call)
    options = _options(call)
    ref = getattr(reference, call.loss)
    reduction = _reduction(call)
    with np.errstate(all="ignore"):
        try:
            value = ref(y_true, y_pred, **options, sample_weight=w, reduction=reduction)
            losses = ref(y_true, y_pred, **options, reduction="none")
            counted, v, c = _sample_terms(call, y_true, y_pred, options)
            return value, _tolerance(call, value, losses, counted, v, c, w)
        except OverflowError:  # terms of both signs whose sum overflows (reference._sum)
            return None, None


def _tolerance(call, value, losses, counted, v, c, w):
    rtol = _rtol(call)
    dtype = fz.compute_dtype(np.asarray(call.y_pred))
    weights = reference._broadcast_sample_weight(w, losses.shape)
    if _reduction(call) == "none":
        return rtol * (np.abs(value) + np.abs(weights) * c) + np.finfo(dtype).tiny
    num_scale = reference._sum((np.abs(weights) * (np.abs(losses) + c))[counted])
    den, den_scale = 1.0, 0.0
    if _reduction(call) == "mean":
        den = den_scale = float(np.count_nonzero(counted))
    elif _reduction(call) == "weighted_mean":
        wv = (weights * v)[counted]
        den, den_scale = reference._sum(wv), reference._sum(np.abs(wv))
    if den == 0.0:
        # An exact zero denominator gives 0.0 when its terms are all zero; with weights of
        # both signs a float64 sum of them may be any tiny number: no defined result.
        return 0.0 if den_scale == 0.0 else None
    tol = rtol * (num_scale + abs(value) * den_scale) / abs(den) + 1e-300
    # Terms near the float64 limit: a finite value with no finite error bound.
    return None if math.isfinite(value) and not math.isfinite(tol) else tol


def check_value(actual, call, what=""):
    """``actual`` (cyloss's result for a valid call) against the reference."""
    value, tol = expected(call)
    where = f"{what} {call.describe()}"
    if _reduction(call) != "none":
        assert type(actual) is float, (type(actual), where)
        if tol is None:
            count(what, "ill_conditioned")
            return
        if math.isnan(value) or math.isinf(value):
            assert actual == value or (math.isnan(actual) and math.isnan(value)), (
                actual, value, where)
        else:
            assert abs(actual - value) <= tol, (actual, value, tol, where)
        return
    dtype = fz.compute_dtype(np.asarray(call.y_pred))
    assert isinstance(actual, np.ndarray) and actual.dtype == dtype, (actual, where)
    assert actual.shape == fz.sample_shape(call), (actual.shape, where)
    with np.errstate(all="ignore"):
        value = value.astype(dtype).astype(np.float64)  # "none" is in the compute dtype
    _assert_close_arrays(actual.astype(np.float64), value, tol, where)


def _assert_close_arrays(actual, value, tol, where, mask=None):
    nan = np.isnan(value)
    if mask is None:
        assert np.array_equal(np.isnan(actual), nan), (actual, value, where)
        mask = ~nan
    inf = np.isinf(value) & mask
    assert np.array_equal(actual[inf], value[inf]), (actual, value, where)
    finite = mask & np.isfinite(value)
    with np.errstate(all="ignore"):
        err = np.abs(actual - value)
    bad = finite & ~(err <= tol)
    assert not bad.any(), (actual[bad], value[bad], np.broadcast_to(tol, bad.shape)[bad],
                           where)


def same_bits(a, b):
    """Bitwise equality of two results (floats or arrays), NaN equal to NaN."""
    if isinstance(a, float) or isinstance(b, float):
        return (type(a) is type(b) and (np.float64(a).tobytes() == np.float64(b).tobytes()
                                        or (math.isnan(a) and math.isnan(b))))
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b))
                and a[~nan].tobytes() == b[~nan].tobytes())


def note_input(call):
    """Events for --hypothesis-show-statistics: what a compared example held."""
    yp = np.asarray(call.y_pred)
    event(f"compute {fz.compute_dtype(yp)}, y_pred {call.layouts.get('y_pred')}")
    with np.errstate(all="ignore"):
        values = [np.asarray(a, dtype=np.float64) for a in (call.y_true, call.y_pred)]
    if not all(np.isfinite(a).all() for a in values):
        event("non-finite input")
    if yp.size >= 65536:
        event("several blocks")


def _expect_raise(exc, found, where):
    """An exception from a call the oracle expected to raise."""
    assert found, f"raised {exc!r} but the oracle found nothing wrong: {where}"
    assert fz.message_matches(exc, found), (
        f"{type(exc).__name__}({exc}) does not name any of {found}: {where}")


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------
def call_loss(call, entry):
    """Run ``call`` through an entry point: the function, its alias, the class,
    ``cyloss.get`` (by function or class name)."""
    if entry == "function":
        fn = getattr(cyloss, call.loss)
        return fn(call.y_true, call.y_pred, sample_weight=call.sample_weight, **call.options)
    if entry == "alias":
        fn = getattr(cyloss, ALIASES.get(call.loss, call.loss))
        return fn(call.y_true, call.y_pred, sample_weight=call.sample_weight, **call.options)
    if entry == "class":
        obj = CLASSES[call.loss](**call.options)
        return obj(call.y_true, call.y_pred, call.sample_weight)
    name = call.loss if entry == "get" else CLASSES[call.loss].__name__
    obj = cyloss.get(name, **call.options)
    return obj(call.y_true, call.y_pred, sample_weight=call.sample_weight)


@FUZZ
@given(data=st.data(), entry=st.sampled_from(["function", "function", "alias", "class",
                                              "get", "get_class"]))
def test_losses_match_the_reference_or_raise(data, entry, memmaps):
    call = data.draw(fz.calls(memmaps=memmaps))
    found = fz.problems(call)
    count("losses", "tried")
    try:
        actual = call_loss(call, entry)
    except (ValueError, TypeError) as exc:
        _expect_raise(exc, found, call.describe())
        count("losses", "rejected")
        return
    assert not found, f"returned {actual!r}; expected an error for {found}: {call.describe()}"
    check_value(actual, call, "losses")
    note_input(call)
    if entry != "function":
        again = call_loss(call, "function")
        assert same_bits(actual, again), (actual, again, entry, call.describe())
    count("losses", "compared")


# --------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------
def _grad_out(kind, call):
    yp = np.asarray(call.y_pred)
    if kind == "none" or yp.dtype.kind not in "biuf":
        return None
    dtype = fz.compute_dtype(yp)
    if kind == "good":
        return np.full(yp.shape, np.nan, dtype=dtype)  # every element must be written
    if kind == "shape":
        return np.empty(yp.shape + (2,), dtype=dtype)
    if kind == "dtype":
        return np.empty(yp.shape, dtype=np.float16)
    if kind == "fortran":
        return np.empty(yp.shape, dtype=dtype, order="F")
    if kind == "readonly":
        out = np.empty(yp.shape, dtype=dtype)
        out.setflags(write=False)
        return out
    return np.zeros(yp.shape).tolist()


def call_grad(call, entry, grad_out):
    """``(value, grad)`` through ``cyloss.value_and_grad`` / ``cyloss.grad`` or the
    methods (``grad`` alone gives None for the value)."""
    args = (call.y_true, call.y_pred)
    if entry == "value_and_grad":
        return cyloss.value_and_grad(call.loss, *args, sample_weight=call.sample_weight,
                                     grad_out=grad_out, **call.options)
    if entry == "grad":
        return None, cyloss.grad(call.loss, *args, sample_weight=call.sample_weight,
                                 grad_out=grad_out, **call.options)
    obj = CLASSES[call.loss](**call.options)
    if entry == "method_value_and_grad":
        return obj.value_and_grad(*args, call.sample_weight, grad_out=grad_out)
    return None, obj.grad(*args, call.sample_weight, grad_out=grad_out)


@FUZZ
@given(data=st.data(),
       entry=st.sampled_from(["value_and_grad", "grad", "method_value_and_grad",
                              "method_grad"]),
       out_kind=st.sampled_from(["none"] * 3 + ["good"] * 3 + ["shape", "dtype", "fortran",
                                                               "readonly", "list"]))
def test_gradients_match_the_reference_or_raise(data, entry, out_kind, memmaps):
    call = data.draw(fz.calls(memmaps=memmaps))
    grad_out = _grad_out(out_kind, call)
    found = fz.problems(call) + fz.grad_out_problems(grad_out, call.y_pred)
    count("gradients", "tried")
    try:
        value, grad = call_grad(call, entry, grad_out)
    except (ValueError, TypeError) as exc:
        _expect_raise(exc, found, call.describe())
        count("gradients", "rejected")
        return
    assert not found, f"returned; expected an error for {found}: {call.describe()}"
    plain = call_loss(call, "function")
    if value is not None:
        assert same_bits(value, plain), (value, plain, call.describe())
    yp = np.asarray(call.y_pred)
    dtype = fz.compute_dtype(yp)
    assert isinstance(grad, np.ndarray) and grad.shape == yp.shape and grad.dtype == dtype
    if out_kind == "good":
        assert grad is grad_out
    check_grad(grad, call)
    note_input(call)
    count("gradients", "compared")


def check_grad(grad, call):
    """``grad`` against reference_grad where the reference is finite (the value's NaN
    and infinities are checked by the value; a gradient there has no reference)."""
    y_true, y_pred, w = _inputs(call)
    with np.errstate(all="ignore"):
        g, mag, den_condition = reference_grad.gradient(
            call.loss, y_true, y_pred, sample_weight=w, reduction=call.option("reduction"),
            **_options(call))
        dtype = grad.dtype
        g = g.astype(dtype).astype(np.float64)
        tol = _rtol(call) * (np.abs(g) + mag) * (1.0 + den_condition) + np.finfo(dtype).tiny
        # The loops write each element's derivative of the weighted sum in the compute
        # dtype and divide by the reduction's divisor afterwards (README, "float32
        # gradients"): where that derivative overflows the dtype, so does the element.
        summed, _, _ = reference_grad.gradient(
            call.loss, y_true, y_pred, sample_weight=w, reduction="sum", **_options(call))
        representable = np.isfinite(summed.astype(dtype))
    finite = np.isfinite(g) & representable
    assert np.isfinite(grad[finite]).all(), (grad, g, call.describe())
    _assert_close_arrays(grad.astype(np.float64), g, tol, f"gradient {call.describe()}",
                         mask=finite)


# --------------------------------------------------------------------------------------
# Accumulator
# --------------------------------------------------------------------------------------
def _split_axes(call):
    """The axis of y_pred, y_true and sample_weight along which samples are cut (None:
    not cut; the weight then goes whole with every batch), for a valid call."""
    yp, yt = np.asarray(call.y_pred), np.asarray(call.y_true)
    S = fz.sample_shape(call)
    if not S:
        return None, None, None
    if call.loss in (CATEGORICAL, SPARSE):
        ax = call.option("axis") % yp.ndim
        p_axis = 1 if ax == 0 else 0
        t_axis = p_axis if yt.ndim == yp.ndim else 0
    else:
        p_axis = t_axis = 0
    w_axis = None
    if call.sample_weight is not None:
        w_shape = np.shape(call.sample_weight)
        # The weight's axis 0 is the samples' first axis unless it broadcasts along it
        # (README: a trailing 1 squeezed, a weight per batch entry, then broadcasting).
        aligned = len(w_shape) in (len(S), len(S) + 1) or (
            0 < len(w_shape) < len(S) and w_shape == S[: len(w_shape)])
        if aligned and w_shape and w_shape[0] != 1:
            w_axis = 0
    return p_axis, t_axis, w_axis


def _take(a, axis, part):
    """Samples ``part`` (a range) of ``a`` along ``axis``, as a view where ``a`` is an
    array (a strided or memmapped input stays one)."""
    if axis is None:
        return a
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    stop = part[-1] + 1 if len(part) else 0
    start = part[0] if len(part) else 0
    return a[(slice(None),) * axis + (slice(start, stop),)]


@FUZZ
@given(data=st.data(), n_batches=st.integers(1, 4), name_only=st.booleans())
def test_accumulator_matches_one_call_or_raises(data, n_batches, name_only, memmaps):
    call = data.draw(fz.calls(memmaps=memmaps))
    count("accumulator", "tried")
    found = fz.problems(call)
    try:
        loss = CLASSES[call.loss](**call.options)
        if _reduction(call) == "none":
            with pytest.raises(ValueError, match="reduction"):
                cyloss.Accumulator(loss)
            count("accumulator", "rejected")
            return
        acc = cyloss.Accumulator(call.loss if name_only and not call.options else loss)
    except (ValueError, TypeError) as exc:
        _expect_raise(exc, found, call.describe())
        count("accumulator", "rejected")
        return
    if any(not p.data for p in found):
        # Shapes or dtypes are wrong: every batch is refused and the state stays empty.
        with pytest.raises((ValueError, TypeError)) as info:
            acc.update(call.y_true, call.y_pred, call.sample_weight)
        _expect_raise(info.value, found, call.describe())
        assert (acc.num, acc.den, acc.count) == (0.0, 0.0, 0)
        count("accumulator", "rejected")
        return
    p_axis, t_axis, w_axis = _split_axes(call)
    rng = np.random.default_rng(data.draw(fz.seeds))
    n = np.shape(call.y_pred)[p_axis] if p_axis is not None else 1
    # Keras's hinge label rule is decided per batch by an Accumulator (as by a Keras
    # metric; README), so only one batch can match one call on the whole.
    per_batch_rule = any(e.function == call.loss and e.prepare for e in cyloss.ELEMENTWISE)
    parts = np.array_split(np.arange(n), n_batches if p_axis is not None
                           and not per_batch_rule else 1)
    other = cyloss.Accumulator(loss)
    kept = []
    for part in parts:
        batch = Call(call.loss, call.options, _take(call.y_true, t_axis, part),
                     _take(call.y_pred, p_axis, part),
                     None if call.sample_weight is None
                     else _take(call.sample_weight, w_axis, part))
        target = acc if rng.random() < 0.6 else other
        before = (target.num, target.den, target.count)
        batch_found = fz.problems(batch)
        try:
            target.update(batch.y_true, batch.y_pred, batch.sample_weight)
        except (ValueError, TypeError) as exc:
            _expect_raise(exc, batch_found, batch.describe())
            assert same_bits(float(before[0]), float(target.num)) and same_bits(
                float(before[1]), float(target.den)) and before[2] == target.count
            count("accumulator", "rejected_batches")
            continue
        assert not batch_found, (batch_found, batch.describe())
        kept.append(batch)
    restored = pickle.loads(pickle.dumps(acc))
    assert same_bits(restored.result(), acc.result())
    acc.merge(other)
    if not kept:
        assert acc.result() == 0.0 and acc.count == 0
        count("accumulator", "every_batch_rejected")
        return
    whole = Call(call.loss, call.options,
                 np.concatenate([np.asarray(b.y_true) for b in kept], axis=t_axis or 0)
                 if t_axis is not None else kept[0].y_true,
                 np.concatenate([np.asarray(b.y_pred) for b in kept], axis=p_axis or 0)
                 if p_axis is not None else kept[0].y_pred,
                 None if call.sample_weight is None else (
                     np.concatenate([np.asarray(b.sample_weight) for b in kept], axis=0)
                     if w_axis is not None else call.sample_weight))
    check_value(acc.result(), whole, "accumulator")
    count("accumulator", "compared")


def test_accumulator_refuses_what_it_cannot_hold():
    with pytest.raises(TypeError, match="Accumulator"):
        cyloss.Accumulator(42)
    acc = cyloss.Accumulator("mse")
    with pytest.raises(TypeError, match="Accumulator"):
        acc.merge(object())
    with pytest.raises(ValueError, match="different losses"):
        acc.merge(cyloss.Accumulator(cyloss.Huber(delta=2.0)))
    with pytest.raises(ValueError, match="reduction"):
        cyloss.Accumulator(cyloss.MeanSquaredError(reduction="none"))


# --------------------------------------------------------------------------------------
# python -m cyloss eval, in-process
# --------------------------------------------------------------------------------------
_CLI_FLAGS = {"label_smoothing": "--label-smoothing", "epsilon": "--epsilon",
              "delta": "--delta", "beta": "--beta", "axis": "--axis",
              "ignore_index": "--ignore-index", "reduction": "--reduction",
              "n_threads": "--n-threads", "class_weight": "--class-weight",
              "pos_weight": "--pos-weight"}


def _cli_options(call, directory, rng):
    """The call's options as command-line flags, and the options as the command line
    means them (a flag carries text: a value that has none is left out)."""
    argv, meant = [], {}
    for key, value in call.options.items():
        if key == "from_logits":
            if fz.option_ok(key, value):
                meant[key] = bool(value)
                argv += ["--from-logits"] if value else []
            continue
        if key in ("class_weight", "pos_weight"):
            w = np.asarray(value)
            if w.dtype.kind == "O" or w.size == 0:
                continue
            if w.dtype.kind in "biuf" and w.ndim <= 1 and rng.random() < 0.5:
                parsed = [float(x) for x in w.reshape(-1)]
                text = ",".join(repr(x) for x in parsed)
                meant[key] = parsed[0] if key == "pos_weight" and len(parsed) == 1 else parsed
            else:
                text = os.path.join(directory, f"{key}.npy")
                np.save(text, w, allow_pickle=False)
                meant[key] = w
            argv += [_CLI_FLAGS[key], text]
            continue
        if key == "reduction" and not isinstance(value, str):
            if value is None:
                argv += ["--reduction", "none"]
                meant[key] = "none"
            continue
        if key in ("axis", "ignore_index", "n_threads"):
            if not fz._is_int(value):
                continue
            value = int(value)
        elif key in ("label_smoothing", "epsilon", "delta", "beta"):
            if not fz._is_real(value):
                continue
            value = float(value)
        # "--epsilon -1e-07" reads as two flags to argparse; "--epsilon=-1e-07" does not.
        argv += [f"{_CLI_FLAGS[key]}={value}"] if rng.random() < 0.5 else [
            _CLI_FLAGS[key], str(value)]
        meant[key] = value
    return argv, meant


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz_eval"))


@FUZZ_CLI
@given(data=st.data(), json_output=st.booleans(),
       chunk=st.sampled_from([None, 1, 2, 3, 5]))
def test_eval_command_matches_the_reference_or_fails_cleanly(data, json_output, chunk,
                                                             eval_dir):
    call = data.draw(fz.calls(layouts=["C", "F", "strided", "broadcast"], big=False))
    rng = np.random.default_rng(data.draw(fz.seeds))
    argv, meant = _cli_options(call, eval_dir, rng)
    call = Call(call.loss, meant, call.y_true, call.y_pred, call.sample_weight)
    paths = {}
    for name, a in (("y_true", call.y_true), ("y_pred", call.y_pred),
                    ("sample_weight", call.sample_weight)):
        if a is not None:
            paths[name] = os.path.join(eval_dir, f"{name}.npy")
            np.save(paths[name], np.asarray(a), allow_pickle=True)
    name = data.draw(st.sampled_from([call.loss, ALIASES.get(call.loss, call.loss),
                                      CLASSES[call.loss].__name__]))
    argv = ["eval", name, "--y-true", paths["y_true"], "--y-pred", paths["y_pred"],
            *argv, "--no-progress"]
    if "sample_weight" in paths:
        argv += ["--sample-weight", paths["sample_weight"]]
    argv += ["--json"] if json_output else []
    argv += ["--chunk-size", str(chunk)] if chunk else []
    found = fz.problems(call)
    if call.options.get("reduction") == "none":  # eval prints one number
        found.append(fz.Problem(fz.V, ("reduction",), "none on the command line"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli_main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            status = exc.code
    count("eval", "tried")
    if found:
        expected_status = 1 if all(p.data for p in found) else 2
        assert status == expected_status, (status, found, err.getvalue(), call.describe())
        message = err.getvalue()
        assert "python -m cyloss eval: error:" in message, message
        # Flags are spelled with hyphens: --y-true, --class-weight.
        assert fz.message_matches(ValueError(message.replace("-", "_")), [
            fz.Problem(fz.VT, p.names, p.why) for p in found]), (message, found)
        count("eval", "rejected")
        return
    assert status == 0, (status, err.getvalue(), call.describe())
    text = out.getvalue()
    if json_output:
        record = json.loads(text)
        value = record["value"]
        value = float(record["nonfinite"]) if value is None else float(value)
    else:
        value = float(text)
    check_value(value, call, "eval")
    count("eval", "compared")


# --------------------------------------------------------------------------------------
# What the fuzzer found, as plain reproducers
# --------------------------------------------------------------------------------------
def test_float32_computation_of_a_float64_target_beyond_its_range_is_quiet():
    # y_true is cast to the compute dtype: 1e300 becomes inf there, without NumPy's cast
    # warning (an exception under -W error); binary cross-entropy then refuses it.
    y_pred = np.array([1.0, 2.0], dtype=np.float32)
    assert cyloss.mean_squared_error(np.array([1e300, 2.0]), y_pred) == math.inf
    with pytest.raises(ValueError, match="y_true"):
        cyloss.binary_crossentropy(np.array([1e300, 1.0]), y_pred / 2)


@pytest.mark.parametrize("loss, y_true, y_pred, flag", [
    ("sparse_categorical_crossentropy", np.array(1), np.array([0.2, 0.3, 0.5]),
     ["--class-weight", "1,2"]),
    ("binary_crossentropy", np.array(1.0), np.array(0.3), ["--pos-weight", "1,2"]),
])
def test_eval_refuses_a_bad_option_as_an_argument_error_for_a_single_sample(
        loss, y_true, y_pred, flag, eval_dir):
    # One sample has no axis to cut an empty chunk from; the option is still an argument
    # error (exit status 2), as for any other shape, not a data error (1).
    paths = [os.path.join(eval_dir, name) for name in ("one_true.npy", "one_pred.npy")]
    np.save(paths[0], y_true)
    np.save(paths[1], y_pred)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = cli_main(["eval", loss, "--y-true", paths[0], "--y-pred", paths[1], *flag])
    assert status == 2 and flag[0][2:].replace("-", "_") in err.getvalue(), err.getvalue()


@pytest.mark.parametrize("dtype, weight", [(np.float32, 1e-40), (np.float64, 1e-320),
                                           (np.float32, 1e39), (np.float64, 1e300)])
def test_weighted_mean_gradient_with_extreme_weights(dtype, weight):
    y_pred = np.array([1.0, 2.0, 3.0, 4.0], dtype=dtype)
    # Equal weights cancel in a weighted mean: the gradient is that of the plain mean.
    _, grad = cyloss.value_and_grad("mse", np.zeros(4), y_pred,
                                    sample_weight=np.full(4, weight),
                                    reduction="weighted_mean")
    np.testing.assert_allclose(grad, 2 * y_pred / 4, rtol=1e-6)
