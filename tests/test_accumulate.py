"""cyloss.Accumulator: batches in any sizes give the one-call result."""

import doctest
import math
import pickle
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyloss
import cyloss.accumulate
from streaming_cases import (
    CASES, CLASS_WEIGHT, REDUCTIONS, case_params, exact, make_inputs, make_weights,
    one_shot,
)

# Agreement is to rounding, not bitwise: the one-shot call sums the per-sample terms in
# its own blocks, a batch in its own, and the accumulator adds the batches' sums. Every
# sum over samples is compensated (cyl_acc in _fastpaths.h, Neumaier in the accumulator),
# so each path lies within an ulp or two of the exactly rounded sum (streaming_cases.exact,
# by math.fsum), and the bound holds: within 1e-15 of the exact sum and of the
# one-shot call (worst measured over 300 random cases: 2.8e-16). Where every sum is exact
# the results are bitwise equal (test_exact_sums_are_bitwise_equal).
STREAM_RTOL = 1e-15
ONE_SHOT_RTOL = 1e-15
N = 128


def assert_streamed(value, expected, exact_value):
    assert math.isclose(value, exact_value, rel_tol=STREAM_RTOL, abs_tol=0.0)
    assert math.isclose(value, expected, rel_tol=ONE_SHOT_RTOL, abs_tol=0.0)


def splits(n, rng):
    """Batch boundaries: one batch, single samples, ragged cuts with empty batches."""
    cuts = np.sort(rng.choice(np.arange(0, n + 1), size=9))
    return {
        "one": [0, n],
        "ones": list(range(n + 1)),
        "ragged": [0, *cuts.tolist(), n],  # repeated cuts give empty batches
        "halves": [0, n // 2, n],
    }


def feed(acc, y_true, y_pred, weight, bounds):
    for a, b in zip(bounds[:-1], bounds[1:]):
        acc.update(y_true[a:b], y_pred[a:b], None if weight is None else weight[a:b])
    return acc


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", case_params())
def test_batches_give_the_one_call_result(case, reduction, weighted):
    rng = np.random.default_rng(zlib.crc32(f"{case.id()}{reduction}{weighted}".encode()))
    y_true, y_pred = make_inputs(case, N, rng)
    weight = make_weights(case, N, rng) if weighted else None
    expected = one_shot(case, y_true, y_pred, weight, reduction)
    exact_value = exact(case, y_true, y_pred, weight, reduction)
    assert expected != 0.0
    assert math.isclose(expected, exact_value, rel_tol=1e-14)  # the harness itself
    for name, bounds in splits(N, rng).items():
        acc = feed(cyloss.Accumulator(case.loss_object(reduction=reduction)),
                   y_true, y_pred, weight, bounds)
        assert isinstance(acc.result(), float)
        if name == "one":  # one batch is the one-shot call itself: bitwise
            assert acc.result() == expected
        else:
            assert_streamed(acc.result(), expected, exact_value)


@pytest.mark.parametrize("case", case_params())
def test_float32_batches(case):
    # Per-element arithmetic may run in float32, but it is the same per element in the
    # one-shot call and the batches; only the float64 sums are grouped differently. (The
    # "none" values are rounded to float32, so there is no exact reference here.)
    rng = np.random.default_rng(7)
    y_true, y_pred = make_inputs(case, N, rng, dtype=np.float32)
    expected = one_shot(case, y_true, y_pred)
    acc = feed(cyloss.Accumulator(case.loss_object()), y_true, y_pred, None,
               splits(N, rng)["ragged"])
    assert math.isclose(acc.result(), expected, rel_tol=ONE_SHOT_RTOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", [
    cyloss.MeanAbsoluteError(), cyloss.MeanSquaredError(), cyloss.Huber(delta=0.5),
    cyloss.Huber(delta=2.0), cyloss.SmoothL1(beta=0.0), cyloss.SmoothL1(beta=1.0),
], ids=repr)
def test_exact_sums_are_bitwise_equal(loss, reduction):
    # Multiples of 1/8 and weights in quarters: every term and every partial sum is a
    # short dyadic number, so every grouping is exact and the results must be identical.
    rng = np.random.default_rng(11)
    y_true = rng.integers(-32, 32, (300, 4)) / 8.0
    y_pred = rng.integers(-32, 32, (300, 4)) / 8.0
    w = rng.integers(0, 9, 300) / 4.0
    loss = loss.from_config({**loss.get_config(), "reduction": reduction})
    expected = loss(y_true, y_pred, sample_weight=w)
    for bounds in [[0, 1, 2, 150, 150, 299, 300], list(range(301))]:
        acc = feed(cyloss.Accumulator(loss), y_true, y_pred, w, bounds)
        assert acc.result() == expected
        assert acc.count == 300 and acc.den == w.sum()


def test_batch_sums_are_added_with_compensation():
    # 1e16 (ulp 2) then a thousand batches of 1: plain float64 addition drops every 1;
    # the compensated sums keep the exact 1e16 + 1000 (representable).
    acc = cyloss.Accumulator(cyloss.MeanAbsoluteError(reduction="sum"))
    acc.update([0.0], [1e16])
    for _ in range(1000):
        acc.update([0.0], [1.0])
    assert acc.result() == 1e16 + 1000 and acc.count == 1001
    merged = cyloss.Accumulator(acc.loss).update([0.0], [1.0]).merge(acc)
    assert merged.result() == 1e16 + 1001
    inf = cyloss.Accumulator(acc.loss).update([0.0], [1e308]).update([0.0], [1e308])
    assert inf.result() == math.inf  # an overflow stays inf, not NaN


def test_state_holds_the_raw_sums():
    # Independent of cyloss's reductions: the sums by hand for MSE with weights.
    y_true = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.0, 1.0, 0.0, 3.5, 4.0])
    w = np.array([1.0, 2.0, 0.5, 0.0, 3.0])
    acc = cyloss.Accumulator(cyloss.MeanSquaredError(reduction="weighted_mean"))
    acc.update(y_true[:2], y_pred[:2], w[:2]).update(y_true[2:], y_pred[2:], w[2:])
    assert acc.num == 1.0 * 1 + 2.0 * 0 + 0.5 * 4 + 0.0 * 0.25 + 3.0 * 0
    assert acc.den == w.sum()
    assert acc.count == 5 and isinstance(acc.count, int)
    assert acc.result() == 3.0 / 6.5


def test_independent_formula_sparse_ignore_and_class_weight():
    # PyTorch's weighted mean over ignored labels, by NumPy in float64.
    rng = np.random.default_rng(3)
    n, c = 301, len(CLASS_WEIGHT)
    logits = rng.normal(0, 2, (n, c))
    labels = rng.integers(0, c, n)
    labels[rng.random(n) < 0.25] = -1
    sw = rng.uniform(0, 2, n)
    cw = np.array(CLASS_WEIGHT)
    keep = labels != -1
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    nll = lse[keep] - logits[keep, labels[keep]]
    vw = sw[keep] * cw[labels[keep]]
    loss = cyloss.SparseCategoricalCrossentropy(
        from_logits=True, ignore_index=-1, class_weight=cw, reduction="weighted_mean")
    acc = feed(cyloss.Accumulator(loss), labels, logits, sw, [0, 1, 100, 100, 250, n])
    assert math.isclose(acc.result(), (vw * nll).sum() / vw.sum(), rel_tol=1e-13)
    assert acc.count == keep.sum()
    mean = cyloss.Accumulator(loss.from_config({**loss.get_config(), "reduction": "mean"}))
    feed(mean, labels, logits, sw, [0, 7, n])
    assert math.isclose(mean.result(), (vw * nll).sum() / keep.sum(), rel_tol=1e-13)


def test_independent_formula_huber_sum():
    rng = np.random.default_rng(4)
    y, p = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) * 3
    e = np.abs(p - y)
    expected = np.where(e <= 2.0, 0.5 * e**2, 2.0 * (e - 1.0)).mean(axis=1).sum()
    acc = feed(cyloss.Accumulator(cyloss.Huber(delta=2.0, reduction="sum")), y, p, None,
               [0, 10, 11, 50])
    assert math.isclose(acc.result(), expected, rel_tol=1e-13)


def test_class_axis_first_batches_along_axis_1():
    # The accumulator does not care how the samples are cut: here along axis 1.
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 60)
    probs = rng.uniform(0.1, 1.0, (4, 60))
    loss = cyloss.SparseCategoricalCrossentropy(axis=0)
    acc = cyloss.Accumulator(loss)
    for a, b in [(0, 13), (13, 40), (40, 60)]:
        acc.update(labels[a:b], probs[:, a:b])
    assert math.isclose(acc.result(), loss(labels, probs), rel_tol=ONE_SHOT_RTOL)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 97), max_size=12),
       reduction=st.sampled_from(REDUCTIONS), index=st.integers(0, len(CASES) - 1))
def test_any_cuts_property(cuts, reduction, index):
    case = CASES[index]
    rng = np.random.default_rng(index)
    y_true, y_pred = make_inputs(case, 97, rng)
    weight = make_weights(case, 97, rng)
    acc = feed(cyloss.Accumulator(case.loss_object(reduction=reduction)), y_true, y_pred,
               weight, [0, *sorted(cuts), 97])
    assert_streamed(acc.result(), one_shot(case, y_true, y_pred, weight, reduction),
                    exact(case, y_true, y_pred, weight, reduction))


# --- state, merge, pickle ---------------------------------------------------------------

def test_empty_accumulator_and_reset():
    for reduction in REDUCTIONS:
        acc = cyloss.Accumulator(cyloss.Huber(reduction=reduction))
        assert acc.result() == 0.0 == cyloss.huber([], [], reduction=reduction)
        acc.update([0.0, 1.0], [1.0, 1.0])
        assert acc.result() != 0.0
        assert acc.reset() is acc
        assert (acc.num, acc.den, acc.count, acc.result()) == (0.0, 0.0, 0, 0.0)
    # every sample ignored: the zero denominator gives 0.0, as one call does
    acc = cyloss.Accumulator(cyloss.SparseCategoricalCrossentropy(ignore_index=0))
    acc.update([0, 0], [[0.5, 0.5], [0.2, 0.8]])
    assert acc.result() == 0.0 and acc.count == 0


def test_merge_equals_feeding_everything():
    rng = np.random.default_rng(6)
    case = CASES[5]  # sparse, logits, ignore_index, class_weight
    y_true, y_pred = make_inputs(case, N, rng)
    w = make_weights(case, N, rng)
    loss = case.loss_object(reduction="weighted_mean")
    parts = [cyloss.Accumulator(loss).update(y_true[a:b], y_pred[a:b], w[a:b])
             for a, b in [(0, 50), (50, 51), (51, N)]]
    total = cyloss.Accumulator(loss)
    for part in parts:
        assert total.merge(part) is total
    assert_streamed(total.result(), one_shot(case, y_true, y_pred, w, "weighted_mean"),
                    exact(case, y_true, y_pred, w, "weighted_mean"))
    assert total.count == sum(p.count for p in parts)
    assert parts[1].count <= 1  # merge leaves the other accumulator alone


def test_merge_needs_the_same_loss():
    acc = cyloss.Accumulator(cyloss.Huber(delta=2.0))
    for other in [cyloss.Huber(delta=1.0), cyloss.Huber(delta=2.0, reduction="sum"),
                  cyloss.SmoothL1(beta=2.0), cyloss.MeanSquaredError()]:
        with pytest.raises(ValueError, match="cannot merge accumulators of different losses"):
            acc.merge(cyloss.Accumulator(other))
    # name and n_threads cannot change the sums
    acc.merge(cyloss.Accumulator(cyloss.Huber(delta=2.0, n_threads=1, name="h")))
    with pytest.raises(TypeError, match="can only merge an Accumulator"):
        acc.merge(cyloss.Huber(delta=2.0))


def test_pickle_carries_state_and_loss():
    loss = cyloss.SparseCategoricalCrossentropy(
        from_logits=True, class_weight=CLASS_WEIGHT, ignore_index=-1,
        reduction="weighted_mean", n_threads=1)
    acc = cyloss.Accumulator(loss).update([0, 1, -1], np.eye(5)[:3] * 3.0)
    clone = pickle.loads(pickle.dumps(acc))
    assert (clone.num, clone.den, clone.count) == (acc.num, acc.den, acc.count)
    assert clone.loss == loss and clone.loss.get_config() == loss.get_config()
    assert clone.result() == acc.result()
    clone.update([4], [[0.0, 0.0, 0.0, 0.0, 9.0]])
    assert clone.count == acc.count + 1  # independent copies
    assert acc.merge(clone) is acc


def test_failed_update_leaves_the_state_unchanged():
    acc = cyloss.Accumulator(cyloss.SparseCategoricalCrossentropy())
    acc.update([0, 1], [[0.9, 0.1], [0.3, 0.7]])
    before = (acc.num, acc.den, acc.count)
    with pytest.raises(ValueError, match="label 5"):
        acc.update([0, 5], [[0.9, 0.1], [0.3, 0.7]])
    with pytest.raises(ValueError, match="same shape"):
        cyloss.Accumulator("mse").update([1.0, 2.0], [1.0])
    assert (acc.num, acc.den, acc.count) == before


def test_nan_propagates():
    acc = cyloss.Accumulator("mae").update([0.0], [1.0]).update([np.nan], [0.0])
    assert math.isnan(acc.result())


def test_reduction_none_is_refused_at_construction():
    for loss in [cyloss.MeanSquaredError(reduction="none"), cyloss.Huber(reduction=None)]:
        with pytest.raises(ValueError, match="reduction='none'"):
            cyloss.Accumulator(loss)


def test_construction_from_names_and_bad_types():
    assert cyloss.Accumulator("mse").loss == cyloss.MeanSquaredError()
    assert cyloss.Accumulator("Huber").loss == cyloss.Huber()
    with pytest.raises(ValueError, match="unknown loss"):
        cyloss.Accumulator("nope")
    with pytest.raises(TypeError, match="loss object"):
        cyloss.Accumulator(cyloss.mse)


def test_options_and_threads_reach_every_batch():
    # n_threads is a loss option; the sums (and the result) do not depend on it.
    rng = np.random.default_rng(8)
    y, p = rng.normal(size=(70_000, 2)), rng.normal(size=(70_000, 2))
    results = {cyloss.Accumulator(cyloss.Huber(delta=0.5, n_threads=k))
               .update(y[:40_000], p[:40_000]).update(y[40_000:], p[40_000:]).result()
               for k in (1, 2, -1)}
    assert len(results) == 1
    exact_value = math.fsum(cyloss.huber(y, p, delta=0.5, reduction="none").tolist()) / 70_000
    assert_streamed(results.pop(), cyloss.huber(y, p, delta=0.5), exact_value)


def test_repr():
    acc = cyloss.Accumulator(cyloss.Huber(delta=2.0)).update([0.0], [1.0])
    assert repr(acc) == "Accumulator(Huber(delta=2.0), num=0.5, den=1.0, count=1)"


def test_exported():
    assert "Accumulator" in cyloss.__all__
    assert cyloss.Accumulator is cyloss.accumulate.Accumulator


def test_docstring_examples():
    result = doctest.testmod(cyloss.accumulate, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# The three-array losses (issue #14) take their arrays in the loss's own order; samples
# run along axis 0 of every array.
def _three_array_batch(name, n, rng):
    if name == "margin_ranking":
        return (np.where(rng.random((n, 3)) < 0.5, -1.0, 1.0), rng.normal(size=(n, 3)),
                rng.normal(size=(n, 3)))
    if name == "gaussian_nll":
        y = rng.normal(size=(n, 3))
        return y, y + rng.normal(size=(n, 3)), rng.uniform(0.1, 2.0, (n, 3))
    if name == "cosine_embedding":
        return (np.where(rng.random(n) < 0.5, -1.0, 1.0), rng.normal(size=(n, 4)),
                rng.normal(size=(n, 4)))
    a = rng.normal(size=(n, 4))
    return a, a + 0.5 * rng.normal(size=(n, 4)), rng.normal(size=(n, 4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["margin_ranking", "gaussian_nll", "cosine_embedding",
                                  "triplet_margin"])
def test_three_array_losses_stream(name, reduction):
    rng = np.random.default_rng(zlib.crc32(f"three/{name}/{reduction}".encode()))
    arrays = _three_array_batch(name, N, rng)
    weight = rng.uniform(0.0, 2.0, N)
    loss = cyloss.get(name, reduction=reduction)
    for w in (None, weight):
        expected = loss(*arrays, sample_weight=w)
        # exact: math.fsum of the per-sample terms, as streaming_cases.exact does
        terms = cyloss.get(name, reduction="none")(*arrays, sample_weight=w)
        num = math.fsum(terms.tolist())
        den = float(N) if w is None else math.fsum(w.tolist())
        exact_value = cyloss.losses.reduce_sums(num, den, N, reduction)
        for bounds in splits(N, rng).values():
            acc = cyloss.Accumulator(loss)
            for a, b in zip(bounds[:-1], bounds[1:]):
                batch = [x[a:b] for x in arrays]
                if w is None:
                    acc.update(*batch)
                else:
                    acc.update(*batch, w[a:b])   # positional weight after the arrays
            assert_streamed(acc.result(), expected, exact_value)
    with pytest.raises(TypeError, match="takes 3 arrays; update\\(\\) got 2"):
        cyloss.Accumulator(loss).update(arrays[0], arrays[1])
    with pytest.raises(TypeError, match="both by position and by name"):
        cyloss.Accumulator(loss).update(*arrays, weight, sample_weight=weight)


def test_two_array_losses_refuse_a_third_array():
    with pytest.raises(TypeError, match="MeanSquaredError takes 2 arrays; update\\(\\) got 3"):
        cyloss.Accumulator("mse").update([1.0], [1.0], [1.0], [1.0])
