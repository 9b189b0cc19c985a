"""Hostile-value fuzzing of every loss of the registry (hypothesis).

``tests/test_fuzz.py`` fuzzes the first-contract losses against an independent oracle
of errors, and ``test_catalogue_rows.py::test_hostile_values`` three row losses; the
losses added since (focal, KL, NLL, hinge embedding, Poisson NLL, Dice, Tversky, ...)
had no such sweep. This module draws its calls from ``registry.LOSSES`` alone, so a loss
added to the registry is fuzzed with no code here.

Each example takes one loss and draws one of its option sets and shapes, a seed, a dtype
(float64, float32, float16), a reduction and perhaps a ``sample_weight``
(``registry.make_sample_weight``). The registry's generator gives valid float64 inputs;
then, now and then, hostile values (NaN, +-inf, 0, -0, +-1e300, the subnormals 5e-324
and 2.5e-310, 1e-8; all of them, or NaN alone, the non-finite or the finite ones)
replace a random subset of the float entries of ``y_true``, ``y_pred`` or
``sample_weight`` (label arrays are left alone: their errors are the subject of
``test_fuzz.py``). The arrays are cast to the dtype (``y_true`` and ``sample_weight`` now
and then to another one) and laid out as C, Fortran, negative-stride or non-contiguous
strided views of the same logical content (a strided view sits in a buffer whose gaps
hold NaN, or a label no loss accepts, so that reading a gap shows).

Every example must satisfy:

1. The calls return, or raise ``ValueError`` / ``TypeError`` with a message (no other
   exception, no crash). The registry's inputs are valid, so a call raises only where
   hostile values went in, and its message names an argument that received them
   (SPEC section 5: the message names the argument); NaN alone is never an error
   ("NaN in the data is not an error"). A call that raises does so whatever the layout,
   thread count and entry point, with the same message.
2. ``value_and_grad`` returns a Python float for a reduction, an array of the per-sample
   shape for ``"none"``, and a gradient of ``y_pred``'s shape; arrays are in the compute
   dtype of SPEC section 4: float64 for float64 ``y_pred``, float32 for float32 and
   float16 (``test_values.py::test_float16_computes_in_float32``).
3. The plain function returns bitwise the value of ``value_and_grad`` (its docstring:
   "``value`` is exactly ``self(y_true, y_pred, sample_weight)``").
4. The result does not depend on the layout: C-contiguous copies give the same bits.
5. Nor on the thread count (SPEC section 3, "bitwise identical for every
   ``n_threads``"): ``n_threads=1`` and ``n_threads=2`` give the same bits, value and
   gradient; the plain function runs with ``None``, 1 or 2 threads.
6. Without hostile values, in float64, the value is the reference's
   (``reference.py``, called as ``test_values.py`` calls it) to ``rtol=1e-9``.
7. With hostile values, in float64: SPEC section 5 says NaN propagates "as in NumPy",
   so a per-sample loss (``reduction="none"``, no sample weight) is NaN exactly where
   the reference's is. Nothing is claimed for reduced values: a sum whose finite terms
   overflow, next to an infinite one, is NaN or infinite depending on the order of
   addition (``reference._sum``). The property holds for every loss of the registry,
   so none is exempt (had one clipped or rescaled where its reference does not, it
   would be listed here with the reason).

The test is parametrised over the registry (one pytest id per loss), so every loss gets
its share of examples: ``CYLOSS_FUZZ_EXAMPLES`` (default 300) divided by 4 per loss, each
example making four or five cyloss calls. One example in ten grows a batch axis to 2**17
elements, the size from which ``n_threads=2`` really runs two threads (property 5 is
vacuous below it). Under CI (CI=true) conftest.py loads hypothesis's derandomized
profile. ``--hypothesis-show-statistics`` shows how many examples were rejected,
compared with the reference, or checked for NaN patterns.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cyloss
import registry

#: Examples per loss: a quarter of CYLOSS_FUZZ_EXAMPLES (about 1900 in all at the
#: default of 300, for the 25 losses of the registry).
N_EXAMPLES = max(1, int(os.environ.get("CYLOSS_FUZZ_EXAMPLES", "300")) // 4)

HOSTILE = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 5e-324, 2.5e-310,
                    1e-8])
#: The hostile values an example draws from: all of them, or one kind. NaN alone is
#: never an error (SPEC section 5), which only an example of NaN alone can check.
PALETTES = {
    "mixed": HOSTILE,
    "nan": HOSTILE[:1],
    "non-finite": HOSTILE[:3],
    "finite": HOSTILE[3:],
}
ARRAYS = ("y_true", "y_pred", "sample_weight")
DTYPES = (np.float64, np.float32, np.float16)
REDUCTIONS = ("mean", "sum", "none", "weighted_mean")
LAYOUTS = ("C", "F", "reversed", "strided")
#: A label that no loss accepts (nor takes as ignore_index): the gaps of a strided view.
GAP_LABEL = -7777

#: Elements of a "big" example: sixteen blocks of the loops, so n_threads=2 uses two.
BIG = 1 << 17


def _big(case, options, shape):
    """``shape`` with one batch axis (not a class axis, nor an axis an option vector
    fixes) grown to about ``BIG`` elements: the loops use a second thread only from
    eight blocks of 8192 elements on, and the registry's shapes are far smaller."""
    axis = 0
    class_axis = options.get("axis", -1)
    if case.name in registry.CLASS_AXIS_LOSSES and class_axis % len(shape) == 0:
        axis = len(shape) - 1
    grown = list(shape)
    grown[axis] = -(-BIG * shape[axis] // math.prod(shape))
    return tuple(grown)


def _layout(a, layout):
    """``a`` (an ndarray) with the same logical content in ``layout``."""
    if a is None or a.ndim == 0 or layout == "C":
        return a
    if layout == "F":
        return np.asfortranarray(a)
    every = (slice(None, None, -1),) * a.ndim
    if layout == "reversed":  # negative strides on every axis
        return a[every].copy()[every]
    # "strided": every other element of a larger buffer, whose gaps hold junk
    gap = np.nan if a.dtype.kind == "f" else GAP_LABEL
    buffer = np.full(tuple(2 * n + 1 for n in a.shape), gap, dtype=a.dtype)
    view = buffer[(slice(1, None, 2),) * a.ndim]
    view[...] = a
    return view


def _inject(rng, a, fraction, palette):
    """Replace about ``fraction`` of the entries of the float64 array ``a`` (in place) by
    values of ``palette``; True if any was replaced."""
    if a is None or a.size == 0 or fraction == 0.0:
        return False
    flat = a.reshape(-1)  # a view: make_inputs and make_sample_weight give fresh arrays
    k = max(1, int(round(fraction * flat.size)))
    idx = rng.choice(flat.size, size=k, replace=False)
    flat[idx] = rng.choice(palette, size=k)
    return True


def _as_dtype(a, dtype):
    if a is None or a.dtype.kind != "f":
        return a
    with np.errstate(over="ignore"):  # 1e300 is inf in float32 and float16, on purpose
        return a.astype(dtype)


def same_bits(a, b):
    """Bitwise equality of two results (floats or arrays), any NaN equal to any NaN."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and (
            np.float64(a).tobytes() == np.float64(b).tobytes()
            or (math.isnan(a) and math.isnan(b)))
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(nan_a, nan_b)
                and np.ascontiguousarray(a[~nan_a]).tobytes()
                == np.ascontiguousarray(b[~nan_b]).tobytes())


def _run(fn):
    """``("ok", result)`` or ``("error", exception)`` for ValueError / TypeError; any
    other exception propagates and fails the example (property 1)."""
    try:
        return "ok", fn()
    except (ValueError, TypeError) as exc:
        return "error", exc


def _error_key(outcome):
    kind, exc = outcome
    return (kind, type(exc).__name__, str(exc)) if kind == "error" else (kind,)


@st.composite
def examples(draw, case):
    option_id, options = draw(st.sampled_from(case.options))
    shape = draw(st.sampled_from(case.shapes(options)))
    if draw(st.integers(0, 9)) == 9:  # shrinks towards the small shapes
        shape = _big(case, options, shape)
    return dict(
        case=case, option_id=option_id, options=options, shape=shape,
        seed=draw(st.integers(0, 2**32 - 1)),
        dtype=draw(st.sampled_from(DTYPES)),
        # y_true and sample_weight now and then in another dtype than y_pred's (None:
        # y_pred's); SPEC section 4 takes the compute dtype from y_pred alone
        true_dtype=draw(st.sampled_from([None, None, *DTYPES])),
        weight_dtype=draw(st.sampled_from([None, np.float64, np.float32])),
        reduction=draw(st.sampled_from(REDUCTIONS)),
        sw_kind=draw(st.sampled_from([None, "full", "column"])),
        # how much of each float input turns hostile (0: none)
        fractions=tuple(draw(st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.3, 1.0]))
                        for _ in ARRAYS),
        palette=draw(st.sampled_from(list(PALETTES))),
        layouts=tuple(draw(st.sampled_from(LAYOUTS)) for _ in range(3)),
        function_threads=draw(st.sampled_from([None, 1, 2])),
    )


def _name(dtype):
    return "same" if dtype is None else np.dtype(dtype).name


def _describe(ex):
    return (f"{ex['case'].name}[{ex['option_id']}] shape={ex['shape']} seed={ex['seed']} "
            f"dtype={np.dtype(ex['dtype']).name} (y_true {_name(ex['true_dtype'])}, "
            f"sample_weight {_name(ex['weight_dtype'])}) reduction={ex['reduction']} "
            f"sample_weight={ex['sw_kind']} hostile={ex['palette']} {ex['fractions']} "
            f"layouts={ex['layouts']} function n_threads={ex['function_threads']}")


@settings(max_examples=N_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.parametrize("case", registry.loss_params())
@given(data=st.data())
def test_hostile_values(case, data):
    ex = data.draw(examples(case), label="example")
    options, shape = ex["options"], ex["shape"]
    dtype, reduction = ex["dtype"], ex["reduction"]
    where = _describe(ex)
    rng = np.random.default_rng(ex["seed"])
    y_true, y_pred = case.make_inputs(rng, shape, np.float64, options)
    per_sample = case.per_sample_shape(shape, options)
    sample_weight = registry.make_sample_weight(rng, per_sample, ex["sw_kind"])
    if sample_weight is not None:
        sample_weight = np.array(sample_weight, dtype=np.float64)  # 0-d: an array too
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    # the arguments that received hostile values (labels are left alone)
    hostile_in = [name for name, a, fraction in zip(ARRAYS, (y_true, y_pred, sample_weight),
                                                     ex["fractions"])
                  if a is not None and a.dtype.kind == "f"
                  and _inject(rng, a, fraction, PALETTES[ex["palette"]])]
    hostile = bool(hostile_in)
    # the values the calls receive, C-contiguous, and the same in the drawn layouts
    plain = [_as_dtype(y_true, ex["true_dtype"] or dtype), _as_dtype(y_pred, dtype),
             _as_dtype(sample_weight, ex["weight_dtype"] or dtype)]
    laid = [_layout(a, layout) for a, layout in zip(plain, ex["layouts"])]
    for a, b in zip(plain, laid):
        assert a is None or np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    event(f"hostile values: {ex['palette'] if hostile else 'none'}")

    def vg(arrays, n_threads):
        yt, yp, sw = arrays
        return cyloss.value_and_grad(case.name, yt, yp, sample_weight=sw,
                                     reduction=reduction, n_threads=n_threads, **options)

    def function(arrays, n_threads):
        yt, yp, sw = arrays
        return case.function(yt, yp, sample_weight=sw, reduction=reduction,
                             n_threads=n_threads, **options)

    main = _run(lambda: vg(laid, 1))
    direct = _run(lambda: function(laid, ex["function_threads"]))
    contiguous = _run(lambda: vg(plain, 1))
    threaded = _run(lambda: vg(plain, 2))

    # 1. a clean error, or none
    if main[0] == "error":
        exc = main[1]
        assert hostile, f"valid registry input refused: {exc!r} {where}"
        # the fault can only lie in an argument that received hostile values
        assert any(name in str(exc) for name in hostile_in), (repr(exc), hostile_in, where)
        assert ex["palette"] != "nan", f"NaN is not an error (SPEC 5): {exc!r} {where}"
        for what, other in (("function", direct), ("C-contiguous", contiguous),
                            ("n_threads=2", threaded)):
            assert _error_key(other) == _error_key(main), (what, other, exc, where)
        event(f"rejected: {type(exc).__name__}")
        return
    for what, other in (("function", direct), ("C-contiguous", contiguous),
                        ("n_threads=2", threaded)):
        assert other[0] == "ok", (what, other[1], where)
    value, grad = main[1]

    # 2. types, shapes and the compute dtype
    compute = np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    if reduction == "none":
        assert isinstance(value, np.ndarray), (type(value), where)
        assert value.shape == tuple(per_sample), (value.shape, per_sample, where)
        assert value.dtype == compute, (value.dtype, where)
    else:
        assert type(value) is float, (type(value), where)
    assert isinstance(grad, np.ndarray), (type(grad), where)
    assert grad.shape == y_pred.shape and grad.dtype == compute, (grad.shape, grad.dtype,
                                                                  where)

    # 3. the function is the value of value_and_grad
    assert same_bits(direct[1], value), ("function", direct[1], value, where)
    # 4. layout invariance; 5. thread invariance
    for what, (other_value, other_grad) in (("C-contiguous", contiguous[1]),
                                            ("n_threads=2", threaded[1])):
        assert same_bits(other_value, value), (what, other_value, value, where)
        assert same_bits(other_grad, grad), (what, other_grad, grad, where)

    if compute != np.float64:
        return
    # the reference takes the values cyloss received, in float64 (as test_values._ref)
    y_true64, y_pred64, weight64 = (
        a if a is None or a.dtype.kind != "f" else a.astype(np.float64) for a in plain)
    # 6. the reference, for valid inputs
    if not hostile:
        expected = case.reference(y_true64, y_pred64, **options,
                                  sample_weight=weight64, reduction=reduction)
        if reduction == "none":
            np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-15,
                                       err_msg=where)
        else:
            assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-15), (
                value, expected, where)
        event("compared with the reference")
        return
    # 7. NaN where, and only where, the reference has NaN
    with np.errstate(all="ignore"):
        expected = case.reference(y_true64, y_pred64, **options, reduction="none")
    losses = case.function(plain[0], plain[1], reduction="none", n_threads=1, **options)
    assert np.array_equal(np.isnan(losses), np.isnan(expected)), (losses, expected, where)
    event("NaN pattern compared with the reference")
