"""The contiguous fast paths (C kernels in _fastpaths.h / _rows.h) and the general
strided loops must give the same bits: same lanes, same order, same formulas.

A strided view of the same numbers (every other element of a doubled array) forces the
general loop; a contiguous copy takes the fast path. Sizes straddle the 8-lane main part,
the tail, several blocks, and the small-class cross-row kernel (C <= 32) and beyond.
"""

import math

import numpy as np
import pytest

import cyloss


def strided(a, axis=-1):
    """The same values as `a`, read through a stride of two elements along `axis`."""
    shape = list(a.shape)
    shape[axis] *= 2
    big = np.full(shape, np.nan, dtype=a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(None, None, 2)
    big[tuple(index)] = a
    view = big[tuple(index)]
    assert view.shape[axis] < 2 or not view.flags.c_contiguous
    return view


DTYPES = [np.float32, np.float64]
SIZES = [1, 7, 8, 9, 100, 8193, 40_000]


def same_bits(a, b):
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,kwargs", [
    ("mean_squared_error", {}), ("mean_absolute_error", {}), ("huber", {"delta": 0.7}),
    ("smooth_l1", {"beta": 0.3}), ("binary_crossentropy", {"from_logits": True}),
    ("binary_crossentropy", {"label_smoothing": 0.1}), ("log_cosh", {}),
    ("mean_squared_logarithmic_error", {}), ("poisson", {}), ("poisson_nll", {}),
    ("poisson_nll", {"log_input": False}),
])
def test_elementwise_fast_path_matches_strided_loop(name, kwargs, n, dtype):
    rng = np.random.default_rng(n)
    if name == "binary_crossentropy":
        y = rng.uniform(size=n).astype(dtype)
        p = (rng.normal(size=n) * 4 if kwargs.get("from_logits") else rng.uniform(size=n))
    elif name in ("mean_squared_logarithmic_error", "poisson", "poisson_nll"):
        # counts and rates; MSLE's clip at eps (negative and zero values) and a
        # prediction far below its target (the quotient branch) among them
        y = rng.poisson(3.0, size=n).astype(float)
        p = rng.exponential(3.0, size=n)
        if name == "mean_squared_logarithmic_error":
            p[::5] = -p[::5]
            p[1::7] = y[1::7] * 1e-3
    else:
        y, p = rng.normal(size=n), rng.normal(size=n) * 2
    y, p = np.asarray(y, dtype), np.asarray(p, dtype)
    fn = getattr(cyloss, name)
    for reduction in ("mean", "sum"):
        fast = fn(y, p, reduction=reduction, **kwargs)
        slow = fn(strided(y), strided(p), reduction=reduction, **kwargs)
        assert same_bits(fast, slow), (fast, slow)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("width", [1, 3, 8, 13])
def test_rows_of_outputs_match(width, dtype):
    rng = np.random.default_rng(width)
    y = rng.normal(size=(2051, width)).astype(dtype)
    p = rng.normal(size=(2051, width)).astype(dtype)
    for name in ("mean_squared_error", "huber"):
        fn = getattr(cyloss, name)
        assert same_bits(fn(y, p), fn(strided(y, 0), strided(p, 0)))
        assert same_bits(fn(y, p), fn(strided(y, 1), strided(p, 1)))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("options", [{}, {"ignore_index": 2}, {"ignore_index": None},
                                     {"class_weight": "vector"}],
                         ids=["default", "ignore2", "no_ignore", "class_weight"])
def test_nll_value_loop_matches_the_general_loop(options, dtype):
    """nll's value over samples of one position: the dedicated loop gives the general
    loop's bits (a 3-D input, classes on axis 1 with a trailing axis, takes the general
    one), and reports a bad label by its index."""
    rng = np.random.default_rng(11)
    n, classes = 20_011, 7
    opts = dict(options)
    if opts.get("class_weight") == "vector":
        opts["class_weight"] = rng.uniform(0.0, 2.0, size=classes)
    labels = rng.integers(0, classes, size=n)
    logp = np.log(rng.dirichlet(np.ones(classes), size=n)).astype(dtype)
    value = cyloss.nll(labels, logp, reduction="sum", **opts)
    # Unit sample weights send the same data through the general loop.
    ones = np.ones(n)
    assert same_bits(value, cyloss.nll(labels, logp, reduction="sum", sample_weight=ones,
                                       **opts))
    assert same_bits(value, cyloss.nll(labels, strided(logp, 1), reduction="sum",
                                       sample_weight=ones, **opts))
    # And the mean against an exact float64 sum written here.
    cw = opts.get("class_weight")
    cw = np.ones(classes) if cw is None else cw
    keep = labels != opts.get("ignore_index")
    picked = logp.astype(np.float64)[np.arange(n), labels]
    terms = cw[labels[keep]] * -picked[keep]
    # "mean" divides by the counted samples, "weighted_mean" (PyTorch's mean) by their
    # class weights.
    assert cyloss.nll(labels, logp, **opts) == pytest.approx(
        math.fsum(terms) / keep.sum(), rel=1e-15)
    assert cyloss.nll(labels, logp, reduction="weighted_mean", **opts) == pytest.approx(
        math.fsum(terms) / math.fsum(cw[labels[keep]]), rel=1e-15)
    bad = labels.copy()
    bad[12_345] = classes
    with pytest.raises(ValueError, match="12345"):
        cyloss.nll(bad, logp, **opts)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [1, 3, 8, 10, 17, 1000, 2048, 2049])
@pytest.mark.parametrize("options", [{}, {"log_input": True}, {"log_target": True},
                                     {"log_input": True, "log_target": True}],
                         ids=["keras", "log_input", "log_target", "both"])
def test_kl_rows_match_the_general_loop(options, classes, dtype):
    """KL divergence over contiguous rows (terms of whole rows in one flat loop, then the
    row sums) gives the bits of the per-row kernel that strided rows take."""
    rng = np.random.default_rng(classes)
    n = max(3, 30_000 // classes)
    y = rng.dirichlet(np.ones(classes), size=n)
    p = rng.dirichlet(np.ones(classes), size=n)
    y[rng.uniform(size=y.shape) < 0.1] = 0.0
    with np.errstate(divide="ignore"):
        if options.get("log_target"):
            y = np.log(y)
        if options.get("log_input"):
            p = np.log(p)
    y, p = y.astype(dtype), p.astype(dtype)
    value = cyloss.kl_divergence(y, p, **options)
    assert same_bits(value, cyloss.kl_divergence(strided(y, 0), strided(p, 0), **options))
    assert same_bits(value, cyloss.kl_divergence(strided(y, 1), strided(p, 1), **options))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("width", [2, 7, 8, 10, 17, 300, 2048, 2049])
@pytest.mark.parametrize("options", [
    {"from_logits": True}, {"from_logits": False}, {"from_logits": True, "pw": "vector"},
    {"from_logits": False, "label_smoothing": 0.1, "pw": "scalar"},
    {"multilabel": "class_weight"}, {"multilabel": None},
], ids=["logits", "probs", "logits-pw", "probs-ls-pw", "multilabel-cw", "multilabel"])
def test_binary_rows_match_the_general_loop(options, width, dtype):
    """Binary cross-entropy and multilabel soft margin over rows of several outputs: the
    flat-terms kernel (terms of whole rows first, then the rows' lane sums) gives the
    general loop's bits, chunk boundaries and widths beyond the buffer included."""
    rng = np.random.default_rng(width)
    n = max(3, 40_000 // width)
    opts = dict(options)
    logits = opts.pop("from_logits", True)
    y = (rng.uniform(size=(n, width)) < 0.3).astype(dtype)
    if logits:
        p = (rng.normal(size=(n, width)) * 3).astype(dtype)
    else:   # clipped at both ends: exact 0 and 1 among them
        p = np.clip(rng.uniform(-0.05, 1.05, size=(n, width)), 0.0, 1.0).astype(dtype)
    pw = opts.pop("pw", None)
    if "multilabel" in opts:
        cw = rng.uniform(0.0, 2.0, size=width) if opts["multilabel"] else None

        def fn(a, b):
            return cyloss.multilabel_soft_margin(a, b, class_weight=cw)
    else:
        kw = dict(from_logits=logits, **opts)
        if pw == "vector":
            kw["pos_weight"] = rng.uniform(0.5, 3.0, size=width)
        elif pw == "scalar":
            kw["pos_weight"] = 2.5

        def fn(a, b):
            return cyloss.binary_crossentropy(a, b, **kw)
    value = fn(y, p)
    assert same_bits(value, fn(strided(y, 0), strided(p, 0)))
    assert same_bits(value, fn(strided(y, 1), strided(p, 1)))
    assert same_bits(value, fn(y[::-1][::-1], np.ascontiguousarray(p[:, ::-1])[:, ::-1]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [1, 2, 3, 8, 10, 17, 32, 33, 200])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 1003, 5000])
def test_sparse_logits_small_class_kernel_matches(n, classes, dtype):
    rng = np.random.default_rng(classes * 1000 + n)
    logits = (rng.normal(size=(n, classes)) * 3).astype(dtype)
    logits[::5, 0] = logits[::5].max(axis=1) if classes > 1 else logits[::5, 0]  # ties
    labels = rng.integers(0, classes, size=n)
    fast = cyloss.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    slow = cyloss.sparse_categorical_crossentropy(labels, strided(logits, 1),
                                                  from_logits=True)
    per_sample = cyloss.sparse_categorical_crossentropy(labels, logits, from_logits=True,
                                                        reduction="none")
    assert same_bits(fast, slow)
    # Independent float64 reference, log-softmax written out.
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    ref = (np.log(np.exp(x - m).sum(axis=1)) + m[:, 0] - x[np.arange(n), labels])
    np.testing.assert_allclose(per_sample, ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(fast, ref.mean(), rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_small_class_kernel_reports_a_bad_label_by_index():
    logits = np.zeros((64, 5))
    labels = np.zeros(64, dtype=np.int64)
    labels[37] = 5
    with pytest.raises(ValueError, match=r"label 5 at index \(37,\)"):
        cyloss.sparse_categorical_crossentropy(labels, logits, from_logits=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [3, 10, 1000])
def test_categorical_rows_match_any_class_axis_layout(classes, dtype):
    rng = np.random.default_rng(classes)
    y = rng.dirichlet(np.ones(classes), size=300).astype(dtype)
    x = (rng.normal(size=(300, classes)) * 2).astype(dtype)
    for kwargs in ({"from_logits": True}, {"from_logits": False}):
        xx = x if kwargs["from_logits"] else np.abs(x)
        fast = cyloss.categorical_crossentropy(y, xx, **kwargs)
        slow = cyloss.categorical_crossentropy(strided(y, 1), strided(xx, 1), **kwargs)
        moved = cyloss.categorical_crossentropy(np.ascontiguousarray(y.T),
                                                np.ascontiguousarray(xx.T), axis=0, **kwargs)
        assert same_bits(fast, slow)
        assert same_bits(fast, moved)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rows", [1, 16])   # 16 rows go through the cross-row kernel
def test_infinite_logits_give_the_limit(rows, dtype):
    inf = np.inf
    logits = np.array([[inf, inf, 0.0], [inf, 0.0, -inf], [-inf, -inf, -inf],
                       [inf, inf, inf]], dtype=dtype)
    labels = np.array([0, 2, 1, 2])
    want = [np.log(2.0), inf, np.nan, np.log(3.0)]   # closed forms: softmax limits
    logits = np.tile(logits, (rows, 1))
    labels = np.tile(labels, rows)
    for x in (logits, strided(logits, 1)):
        got = cyloss.sparse_categorical_crossentropy(labels, x, from_logits=True,
                                                     reduction="none")
        np.testing.assert_allclose(got, np.tile(want, rows), rtol=1e-7)
    onehot = np.eye(3, dtype=dtype)[labels]
    got = cyloss.categorical_crossentropy(onehot, logits, from_logits=True, reduction="none")
    np.testing.assert_allclose(got, np.tile(want, rows), rtol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [1, 3, 8, 10, 32, 33])
@pytest.mark.parametrize("n", [1, 8, 9, 1003])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical_small_class_kernel_matches(smoothing, n, classes, dtype):
    rng = np.random.default_rng(classes * 100 + n)
    y = rng.dirichlet(np.ones(classes), size=n).astype(dtype)
    x = (rng.normal(size=(n, classes)) * 3).astype(dtype)
    kw = dict(from_logits=True, label_smoothing=smoothing)
    fast = cyloss.categorical_crossentropy(y, x, **kw)
    slow = cyloss.categorical_crossentropy(strided(y, 1), strided(x, 1), **kw)
    assert same_bits(fast, slow)
    # Independent float64 reference.
    yy = y.astype(np.float64) * (1 - smoothing) + smoothing / classes
    xx = x.astype(np.float64)
    m = xx.max(axis=1, keepdims=True)
    logp = xx - m - np.log(np.exp(xx - m).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(fast, -(yy * logp).sum(axis=1).mean(),
                               rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_categorical_small_class_kernel_reports_a_bad_target_by_index():
    y = np.full((40, 4), 0.25)
    y[21, 2] = 1.5
    with pytest.raises(ValueError, match=r"got 1\.5 at index \(21, 2\)"):
        cyloss.categorical_crossentropy(y, np.zeros((40, 4)), from_logits=True)


@pytest.mark.parametrize("classes", [3, 10, 32, 33, 1000])
@pytest.mark.parametrize("gap", [0.5, 86.9, 87.0, 87.1, 103.9, 104.0, 104.5, 150.0, np.inf])
def test_exponential_paths_agree_across_gaps(classes, gap):
    # Rows whose arguments x_k - max all lie above -87 take a cheaper exponential in the
    # vectorised float32 kernels (one scale factor, no clamp); rows below take the full
    # one, and the strided loop the scalar cyl_expf. All must give the same bits, and the
    # float64 log-sum-exp to float32 accuracy.
    rng = np.random.default_rng(int(classes * 1000 + min(gap, 999) * 10))
    n = 40
    x = rng.uniform(-3.0, 3.0, (n, classes)).astype(np.float32)
    far = rng.random((n, classes)) < 0.3
    x[far] = np.float32(3.0 - gap) if np.isfinite(gap) else -np.inf
    x[:, 0] = 3.0                                       # the maximum of every row
    labels = rng.integers(0, classes, n)
    onehot = np.eye(classes, dtype=np.float32)[labels]
    wide = np.zeros((n, 2 * classes), np.float32)
    wide[:, ::2] = x
    strided = wide[:, ::2]
    wide_t = np.zeros((n, 2 * classes), np.float32)
    wide_t[:, ::2] = onehot
    for contiguous, other in ((x, strided), (onehot, wide_t[:, ::2])):
        assert contiguous.flags.c_contiguous and not other.flags.c_contiguous
    got = cyloss.sparse_categorical_crossentropy(labels, x, from_logits=True,
                                                 reduction="none")
    assert got.tobytes() == cyloss.sparse_categorical_crossentropy(
        labels, strided, from_logits=True, reduction="none").tobytes()
    cat = cyloss.categorical_crossentropy(onehot, x, from_logits=True, reduction="none")
    assert cat.tobytes() == cyloss.categorical_crossentropy(
        wide_t[:, ::2], strided, from_logits=True, reduction="none").tobytes()
    x64 = x.astype(np.float64)
    m = x64.max(axis=1, keepdims=True)
    at_max = x64 == m
    # log sum e^(x - m) = log1p(sum over the rest + ties - 1), kept accurate when tiny.
    rest = (at_max.sum(axis=1) - 1) + np.where(at_max, 0.0, np.exp(x64 - m)).sum(axis=1)
    want = (m[:, 0] - x64[np.arange(n), labels]) + np.log1p(rest)
    # float32 exponentials (2 ulp each): the contract's 1e-6 relative, and in the
    # subnormal range their absolute resolution (2^-149 per term).
    tiny = 4 * classes * 2.0**-149
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=tiny)
    np.testing.assert_allclose(cat, want, rtol=1e-6, atol=tiny)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [3, 10, 17])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_categorical_kernel_near_and_far_blocks(smoothing, classes, dtype):
    # The float32 cross-row kernel drops the term's masks in blocks of eight rows whose
    # logits all lie within 87 of their row maximum ("near"), and keeps them elsewhere.
    # Mix both kinds of block with zero targets against -inf logits (0 * inf := 0), ties,
    # a NaN row and an all -inf row, over more than one run of 16 blocks; the reduced
    # result must have the general loop's bits, and finite rows the float64 value.
    rng = np.random.default_rng(classes * 10 + int(smoothing * 10))
    n = 16 * 8 * 2 + 13
    x = rng.normal(size=(n, classes)) * 3
    y = rng.dirichlet(np.ones(classes), size=n)
    y[rng.random((n, classes)) < 0.4] = 0.0
    far_rows = rng.choice(n, 40, replace=False)
    for r in far_rows:
        k = rng.integers(0, classes)
        x[r, k] = -np.inf if r % 2 else -200.0
        y[r, k] = 0.0
    x[5, :2] = x[5, :2].max()                              # a tie at the maximum
    x, y = x.astype(dtype), y.astype(dtype)
    kw = dict(from_logits=True, label_smoothing=smoothing)
    for reduction in ("sum", "mean"):
        fast = cyloss.categorical_crossentropy(y, x, reduction=reduction, **kw)
        slow = cyloss.categorical_crossentropy(strided(y, 1), strided(x, 1),
                                               reduction=reduction, **kw)
        assert same_bits(fast, slow)
    q = y.astype(np.float64) * (1 - smoothing) + smoothing / classes
    xx = x.astype(np.float64)
    m = xx.max(axis=1, keepdims=True)
    logp = xx - m - np.log(np.exp(xx - m).sum(axis=1, keepdims=True))
    want = -(q * np.where(q == 0, 0.0, logp)).sum()   # 0 * -inf := 0
    if smoothing == 0.0:   # with smoothing no target is 0 and -inf logits make the sum inf
        np.testing.assert_allclose(cyloss.categorical_crossentropy(y, x, reduction="sum", **kw),
                                   want, rtol=1e-6 if dtype == np.float32 else 1e-12)
    # A NaN row makes the sum NaN on both paths; an all -inf row too (no maximum).
    for bad in (np.nan, -np.inf):
        xb = x.copy()
        xb[100] = bad
        fast = cyloss.categorical_crossentropy(y, xb, reduction="sum", **kw)
        assert np.isnan(fast)
        assert np.isnan(cyloss.categorical_crossentropy(strided(y, 1), strided(xb, 1),
                                                        reduction="sum", **kw))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_categorical_kernel_hands_nan_and_negative_zero_targets_on(dtype):
    # The float32 kernel checks targets by bit pattern (at most that of 1.0): a NaN or a
    # -0.0 target fails that test although it is no error, and the block goes to the
    # general loop instead, which must give the value it gives for every layout.
    rng = np.random.default_rng(3)
    y = rng.dirichlet(np.ones(10), size=200).astype(dtype)
    x = (rng.normal(size=(200, 10)) * 2).astype(dtype)
    y[::7, 3] = 0.0
    yz = y.copy()
    yz[::7, 3] = -0.0
    for reduction in ("sum", "mean"):
        want = cyloss.categorical_crossentropy(y, x, from_logits=True, reduction=reduction)
        got = cyloss.categorical_crossentropy(yz, x, from_logits=True, reduction=reduction)
        assert same_bits(got, want)
        assert same_bits(got, cyloss.categorical_crossentropy(
            strided(yz, 1), strided(x, 1), from_logits=True, reduction=reduction))
    yn = y.copy()
    yn[150, 4] = np.nan
    assert np.isnan(cyloss.categorical_crossentropy(yn, x, from_logits=True))
    y1 = y.copy()
    y1[150] = 0.0
    y1[150, 4] = 1.0                                      # exactly 1 is in range
    assert same_bits(cyloss.categorical_crossentropy(y1, x, from_logits=True),
                     cyloss.categorical_crossentropy(strided(y1, 1), strided(x, 1),
                                                     from_logits=True))
    y1[150, 4] = np.nextafter(dtype(1), dtype(2))
    with pytest.raises(ValueError, match=r"index \(150, 4\)"):
        cyloss.categorical_crossentropy(y1, x, from_logits=True)


@pytest.mark.parametrize("classes", [1, 3, 10, 1000])
@pytest.mark.parametrize("n", [1, 7, 8, 63, 64, 65, 1003])
def test_sparse_probability_rows_kernel_matches(n, classes):
    # Plain sparse CE from contiguous float32 probabilities takes a kernel that computes
    # the logs of 64 rows together; it must give the general loop's bits, clip at both
    # ends, and agree with a float64 reference.
    rng = np.random.default_rng(n * 7 + classes)
    p = rng.random((n, classes)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    if classes > 1:
        p[::5, labels[0]] = 0.0                           # -log(0) clips to -log(eps)
        p[1::9] = 0.0
        p[1::9, 0] = 0.5                                  # p_label / total = 1 or 0
    for reduction in ("sum", "mean"):
        fast = cyloss.sparse_categorical_crossentropy(labels, p, reduction=reduction)
        slow = cyloss.sparse_categorical_crossentropy(labels, strided(p, 1),
                                                      reduction=reduction)
        assert same_bits(fast, slow)
    eps = 1e-7
    q = p.astype(np.float64)[np.arange(n), labels] / p.astype(np.float64).sum(axis=1)
    want = -np.log(np.clip(q, eps, 1 - eps)).sum()
    np.testing.assert_allclose(cyloss.sparse_categorical_crossentropy(labels, p,
                                                                      reduction="sum"),
                               want, rtol=1e-6)


@pytest.mark.parametrize("row", [0, 63, 64, 700, 1002])
def test_sparse_probability_rows_kernel_hands_errors_to_the_general_loop(row):
    rng = np.random.default_rng(row)
    p = rng.random((1003, 12)).astype(np.float32)
    labels = rng.integers(0, 12, 1003)
    bad = p.copy()
    bad[row, 5] = -0.25
    with pytest.raises(ValueError, match=rf"-0\.25 at index \({row}, 5\)"):
        cyloss.sparse_categorical_crossentropy(labels, bad)
    bad = p.copy()
    bad[row] = 0.0
    with pytest.raises(ValueError, match=rf"row at index \({row},\) .*sums to 0"):
        cyloss.sparse_categorical_crossentropy(labels, bad)
    wrong = labels.copy()
    wrong[row] = 12
    with pytest.raises(ValueError, match=rf"label 12 at index \({row},\)"):
        cyloss.sparse_categorical_crossentropy(wrong, p)
    nan = p.copy()
    nan[row, labels[row]] = np.nan
    assert np.isnan(cyloss.sparse_categorical_crossentropy(labels, nan))
    zero = p.copy()
    zero[row, (labels[row] + 1) % 12] = -0.0               # -0.0 is not negative
    assert same_bits(cyloss.sparse_categorical_crossentropy(labels, zero),
                     cyloss.sparse_categorical_crossentropy(labels, strided(zero, 1)))


def _hostile_logits(rng, n, classes, dtype):
    """Logit rows with ties at the maximum, +inf, an all -inf row, a NaN, arguments below
    float32's normal exponentials (-200 from the maximum) and wide spreads."""
    x = rng.normal(size=(n, classes)) * rng.choice([1.0, 30.0, 100.0], size=(n, 1))
    x[0, 0] = np.inf
    x[1] = -np.inf
    x[2, -1] = np.nan
    if classes > 2:
        x[3, 1] = x[3].max()
        x[4, :2] = x[4].max() - 200.0
    return x.astype(dtype)


@pytest.mark.parametrize("classes", [1, 3, 8, 31, 33, 100, 1000, 3001])
@pytest.mark.parametrize("case", ["sparse", "sparse-ls", "sparse-cw", "categorical",
                                  "categorical-ls"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "weighted_mean"])
def test_logit_gradient_rows_match_any_class_axis_layout(case, classes, reduction):
    # Contiguous float32 rows keep the loss's exponentials in the gradient row and finish
    # the gradient from them (cyl_row_logits_keep_f32); a class axis 0 reads the rows
    # through a stride and recomputes them (cyl_row_logit_grad_f32): same bits.
    rng = np.random.default_rng(classes)
    n = 37
    x = _hostile_logits(rng, n, classes, np.float32)
    options = {"from_logits": True, "reduction": reduction}
    if case.startswith("sparse"):
        name, y, y_t = "sparse_categorical_crossentropy", rng.integers(0, classes, n), None
        if case == "sparse-cw":
            options["class_weight"] = rng.uniform(0.0, 2.0, classes)
    else:
        name = "categorical_crossentropy"
        y = rng.uniform(size=(n, classes)).astype(np.float32)
        y /= y.sum(axis=1, keepdims=True)
    if case.endswith("-ls"):
        options["label_smoothing"] = 0.2
    y_t = y if y.ndim == 1 else y.T.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        value, grad = cyloss.value_and_grad(name, y, x, **options)
        value_t, grad_t = cyloss.value_and_grad(name, y_t, x.T.copy(), axis=0, **options)
    assert same_bits(value, value_t)
    assert same_bits(grad, grad_t.T)


@pytest.mark.parametrize("classes", [10, 1000, 32000])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_float32_logit_gradient_accuracy(classes, smoothing):
    # float32 rows take p_k = e^(x_k - m) / S with the float32 exponential the loss takes
    # (2 ulp) of the float32 difference x_k - m (as PyTorch's and JAX's float32 softmax
    # do; that difference carries half an ulp of |x_k - m|, which the reference below
    # models by rounding it to float32 too). Every element is then within a few float32
    # ulp of its own size, and the label's term at a confident row, p - 1 with p near 1,
    # keeps its relative precision (p comes from S in double: e = 1 exactly at the maximum).
    rng = np.random.default_rng(classes)
    n = 64
    x = (rng.normal(size=(n, classes)) * 6).astype(np.float32)
    labels = rng.integers(0, classes, n)
    labels[:8] = np.argmax(x[:8], axis=1)      # confident, correct rows: p near 1
    x[:8] *= 4
    grad = cyloss.grad("sparse_categorical_crossentropy", labels, x, from_logits=True,
                       label_smoothing=smoothing, reduction="sum")
    z = (x - x.max(axis=1, keepdims=True)).astype(np.float64)   # float32 differences
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    q = np.full_like(p, smoothing / classes)
    q[np.arange(n), labels] += 1.0 - smoothing
    expected = p - q
    # (plus float32's subnormal spacing, 2**-149, for the tiniest p_k)
    assert np.all(np.abs(grad - expected)
                  <= 8 * 2.0**-24 * (p + np.abs(expected)) + 4 * 2.0**-149)
    # confident rows: -g_label = 1 - p (+ the smoothing's share), p = 1 - tiny
    rows = np.arange(8)
    tiny = (e.sum(axis=1) - 1.0)[rows] / e.sum(axis=1)[rows]
    np.testing.assert_allclose(-grad[rows, labels[:8]], tiny - (1.0 - q[rows, labels[:8]]),
                               rtol=1e-5)


@pytest.mark.parametrize("n", [7, 8, 9, 100, 8193, 40_000])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"pos_weight": 2.5}],
                         ids=["plain", "ls", "pw"])
def test_float32_binary_logit_gradient(n, options):
    # float32 logits compute the whole element in float32 (SPEC section 4): the weights
    # a = pw ys, b = 1 - ys (two roundings each, plus those of keep and half), e^-|x| (the
    # loss's softplus tail exponential, one for both), the sigmoids 1/(1 + e) and e/(1 + e),
    # the products and the difference; the strided loop the same, so both layouts give the
    # same bits. The roundings add up to at most about 5 float32 ulp (3e-7, inside SPEC's
    # 1e-6) of the sum of the terms a sigmoid(-x) + b sigmoid(x) (for hard targets, of the
    # gradient itself), against float64 sigmoids computed here; 6 ulp is the bound.
    rng = np.random.default_rng(n)
    y = rng.uniform(size=n).astype(np.float32)
    y[: n // 2] = np.round(y[: n // 2])                # hard targets in the first half
    x = (rng.normal(size=n) * 8).astype(np.float32)
    x[:3] = [np.inf, -np.inf, np.nan]
    for reduction in ("mean", "sum"):
        value, grad = cyloss.value_and_grad("binary_crossentropy", y, x, from_logits=True,
                                            reduction=reduction, **options)
        value_s, grad_s = cyloss.value_and_grad("binary_crossentropy", strided(y),
                                                strided(x), from_logits=True,
                                                reduction=reduction, **options)
        assert same_bits(value, value_s) and same_bits(grad, grad_s)
    grad = cyloss.grad("binary_crossentropy", y, x, from_logits=True, reduction="sum",
                       **options)
    ys = y.astype(np.float64) * (1.0 - options.get("label_smoothing", 0.0)) \
        + options.get("label_smoothing", 0.0) / 2
    a, b = options.get("pos_weight", 1.0) * ys, 1.0 - ys
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        sp, sn = 1.0 / (1.0 + np.exp(-x64)), 1.0 / (1.0 + np.exp(x64))
    expected = b * sp - a * sn
    # the limits at +-inf (b and -a, rounded to float32) and NaN
    assert grad[0] == np.float32(b[0]) and grad[1] == np.float32(-a[1])
    assert np.isnan(grad[2])
    terms = (b * sp + a * sn)[3:]
    assert np.all(np.abs(grad[3:] - expected[3:]) <= 6 * 2.0**-24 * terms + 2.0**-149)
    hard = np.arange(3, n // 2) if "label_smoothing" not in options else np.arange(0)
    assert np.all(np.abs(grad[hard] - expected[hard])
                  <= 6 * 2.0**-24 * np.abs(expected[hard]) + 2.0**-149)


def _bce64(y, x, from_logits, pos_weight, smoothing):
    """Binary cross-entropy per element in float64, written from the formulas: a softplus(-x)
    + b softplus(x) from logits, -(a log p + b log(1 - p)) from probabilities clipped at
    Keras's epsilon, with a = pw ys, b = 1 - ys."""
    y, x = y.astype(np.float64), x.astype(np.float64)
    ys = y * (1.0 - smoothing) + smoothing / 2
    a, b = pos_weight * ys, 1.0 - ys
    if from_logits:
        return a * np.logaddexp(0.0, -x) + b * np.logaddexp(0.0, x)
    p = np.clip(x, 1e-7, 1.0 - 1e-7)
    return -(a * np.log(p) + b * np.log1p(-p))


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("pos_weight", [1.0, 2.5, 0.0, 2.0**70, 2.0**-70, 1e-30])
@pytest.mark.parametrize("n", [63, 64, 200, 8193])
def test_float32_bce_double_fallback(n, pos_weight, from_logits):
    """float32 binary cross-entropy runs in float32 where float32 holds every intermediate
    (pos_weight 0 or in [2^-60, 2^60], |logit| <= 2^64); a block of 64 with a larger logit,
    and every element under another pos_weight, is computed in double instead. Either way
    the contiguous fast paths (value, value and gradient) give the strided loop's bits,
    and the value agrees with float64 to SPEC's 1e-6."""
    rng = np.random.default_rng(n)
    y = rng.uniform(size=n).astype(np.float32)
    y[::3] = np.round(y[::3])
    if from_logits:
        x = (rng.normal(size=n) * 6).astype(np.float32)
        x[n // 2] = 3e20                              # beyond 2^64: that block in double
        x[-1] = -1e30                                 # in the part after the last block
    else:
        x = rng.uniform(size=n).astype(np.float32)
        x[:4] = [0.0, 1.0, 1e-9, 1.0 - 2.0**-24]
    kw = dict(from_logits=from_logits, pos_weight=pos_weight, label_smoothing=0.05)
    for reduction in ("mean", "sum"):
        fast = cyloss.binary_crossentropy(y, x, reduction=reduction, **kw)
        slow = cyloss.binary_crossentropy(strided(y), strided(x), reduction=reduction, **kw)
        assert same_bits(fast, slow), (fast, slow)
        fv, fg = cyloss.value_and_grad("binary_crossentropy", y, x, reduction=reduction, **kw)
        sv, sg = cyloss.value_and_grad("binary_crossentropy", strided(y), strided(x),
                                       reduction=reduction, **kw)
        assert same_bits(fv, sv) and same_bits(fg, sg)
        assert same_bits(fv, fast)
    terms = _bce64(y, x, from_logits, pos_weight, 0.05)
    total = cyloss.binary_crossentropy(y, x, reduction="sum", **kw)
    assert abs(total - terms.sum()) <= 1e-6 * np.abs(terms).sum() + 1e-300


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_float32_bce_rows_fall_back_per_row_weights(from_logits):
    """Rows of several outputs with a pos_weight vector: one entry outside float32's safe
    range sends the whole call to the double form; a logit beyond 2^64 sends its block.
    Same bits as the general loop, and float64's value to 1e-6."""
    rng = np.random.default_rng(5)
    n, width = 3000, 7
    y = (rng.uniform(size=(n, width)) < 0.4).astype(np.float32)
    if from_logits:
        x = (rng.normal(size=(n, width)) * 4).astype(np.float32)
        x[1234, 3] = -5e25
    else:
        x = rng.uniform(size=(n, width)).astype(np.float32)
    for pw in (rng.uniform(0.5, 3.0, size=width),
               np.array([1.0, 2.0, 2.0**70, 0.5, 1.0, 3.0, 1.0])):
        kw = dict(from_logits=from_logits, pos_weight=pw)
        value = cyloss.binary_crossentropy(y, x, reduction="sum", **kw)
        assert same_bits(value, cyloss.binary_crossentropy(strided(y, 0), strided(x, 0),
                                                           reduction="sum", **kw))
        terms = _bce64(y, x, from_logits, pw, 0.0).mean(axis=-1)    # Keras: mean per row
        assert abs(value - terms.sum()) <= 1e-6 * np.abs(terms).sum()


@pytest.mark.parametrize("name,kwargs,special", [
    ("poisson", {}, [0.0, np.inf, 3.4e38, 1e-45]),
    ("poisson_nll", {}, [700.5, -705.0, 88.0, np.inf, -np.inf]),
    ("poisson_nll", {"log_input": False}, [0.0, np.inf, 1e-45, 3.4e38]),
])
def test_float32_poisson_checked_blocks(name, kwargs, special):
    """float32 Poisson and Poisson NLL take their double logarithm or exponential without
    its special cases in a block of 64 whose arguments are all ordinary; a block holding
    an infinite, huge or tiny one is computed by the loss's own element function. Same
    bits as the strided loop for both kinds of block, in one array."""
    rng = np.random.default_rng(7)
    n = 64 * 5 + 13
    y = rng.poisson(2.0, size=n).astype(np.float32)
    p = rng.exponential(2.0, size=n).astype(np.float32)
    if name == "poisson_nll" and "log_input" not in kwargs:
        p = rng.normal(size=n).astype(np.float32) * 3
    p[64 + np.arange(len(special)) * 5] = special       # the second block only
    fn = getattr(cyloss, name)
    with np.errstate(all="ignore"):
        fast = fn(y, p, reduction="sum", **kwargs)
        slow = fn(strided(y), strided(p), reduction="sum", **kwargs)
        assert same_bits(fast, slow), (fast, slow)
        # the ordinary blocks alone, against float64 to SPEC's 1e-6 where the sum is finite
        keep = np.r_[0:64, 128:n]
        part = fn(y[keep], p[keep], reduction="sum", **kwargs)
        ref = fn(y[keep].astype(np.float64), p[keep].astype(np.float64), reduction="sum",
                 **kwargs)
    assert abs(part - ref) <= 1e-6 * abs(ref)
