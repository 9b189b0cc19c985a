"""Layouts and dtypes (SPEC sections 2 and 4): the result depends on the values only.

Every loss must give the same result (bitwise, or to 1e-15 relative) for any array-like
holding the same values: lists, read-only arrays, F-ordered arrays, strided and
negatively strided views, zero-stride broadcasts, memmaps, objects with ``__array__``,
torch CPU tensors. The class axis may be any axis. Dtype rules: integer/bool ``y_pred``
computes in float64, float16 in float32, ``y_true`` is cast to ``y_pred``'s compute
dtype, and ``reduction="none"`` returns the compute dtype. Empty inputs reduce to 0.0.

Strided views are cut from a larger array whose other entries are NaN (or a huge label),
so a loop that ignores the strides reads poison and fails loudly.
"""

import numpy as np
import pytest

import cyloss

CCE = cyloss.categorical_crossentropy
SCCE = cyloss.sparse_categorical_crossentropy
BCE = cyloss.binary_crossentropy
W = 4  # outputs / classes per sample


def _reg(rng, n):
    return rng.normal(size=(n, W)), rng.normal(size=(n, W))


def _counts(rng, n):
    return rng.poisson(2.0, size=(n, W)).astype(float), rng.uniform(0.0, 5.0, (n, W))


def _labels(rng, n):
    # 0/1 labels: Keras's hinge rule, a scan of y_true in its own layout, converts them
    return rng.integers(0, 2, size=(n, W)).astype(float), rng.normal(0, 1.5, (n, W))


def _bce_prob(rng, n):
    return rng.integers(0, 2, size=(n, W)).astype(float), rng.uniform(0.02, 0.98, (n, W))


def _bce_logit(rng, n):
    return rng.uniform(0, 1, (n, W)), rng.normal(0, 3, (n, W))


def _soft(rng, n):
    y = rng.uniform(0, 1, (n, W))
    return y / y.sum(axis=-1, keepdims=True)


def _cce_prob(rng, n):
    return _soft(rng, n), rng.uniform(0.05, 1, (n, W))


def _cce_logit(rng, n):
    return _soft(rng, n), rng.normal(0, 3, (n, W))


def _scce_prob(rng, n):
    return rng.integers(0, W, n), rng.uniform(0.05, 1, (n, W))


def _scce_logit(rng, n):
    labels = rng.integers(0, W, n)
    labels[::5] = -1
    return labels, rng.normal(0, 3, (n, W))


# (id, function, options, maker, kind)
CASES = [
    ("mae", cyloss.mean_absolute_error, {}, _reg, "reg"),
    ("mse", cyloss.mean_squared_error, {}, _reg, "reg"),
    ("huber", cyloss.huber, {"delta": 0.7}, _reg, "reg"),
    ("smooth_l1", cyloss.smooth_l1, {"beta": 0.5}, _reg, "reg"),
    ("poisson", cyloss.poisson, {}, _counts, "reg"),
    ("mape", cyloss.mape, {}, _reg, "reg"),
    ("msle", cyloss.msle, {}, _counts, "reg"),
    ("hinge", cyloss.hinge, {}, _labels, "reg"),
    ("squared_hinge", cyloss.squared_hinge, {}, _labels, "reg"),
    ("bce-prob", BCE, {"label_smoothing": 0.1}, _bce_prob, "bce-prob"),
    ("bce-logit", BCE, {"from_logits": True, "pos_weight": [1.0, 2.0, 0.5, 3.0]},
     _bce_logit, "logit"),
    ("cce-prob", CCE, {"label_smoothing": 0.05}, _cce_prob, "cat-prob"),
    ("cce-logit", CCE, {"from_logits": True}, _cce_logit, "logit"),
    ("scce-prob", SCCE, {"class_weight": [1.0, 2.0, 0.5, 1.5]}, _scce_prob, "cat-prob"),
    ("scce-logit", SCCE, {"from_logits": True, "ignore_index": -1, "label_smoothing": 0.1},
     _scce_logit, "logit"),
]
IDS = [c[0] for c in CASES]
SPARSE = {"scce-prob", "scce-logit"}


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return request.param


def inputs(case, n=37, seed=0):
    return case[3](np.random.default_rng(seed), n)


def call(case, y_true, y_pred, **kwargs):
    return case[1](y_true, y_pred, **case[2], **kwargs)


def assert_same(got, expected, rtol=1e-15):
    if isinstance(expected, float):
        assert type(got) is float, type(got)
        assert got == expected or abs(got - expected) <= rtol * abs(expected), (got, expected)
    else:
        assert isinstance(got, np.ndarray), type(got)
        assert got.shape == expected.shape, (got.shape, expected.shape)
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=0)


def check_layout(case, y_true, y_pred, reductions=("mean", "sum", "none"), **kwargs):
    """y_true/y_pred in some layout give what their C-contiguous copies give."""
    yc = np.ascontiguousarray(np.asarray(y_true))
    pc = np.ascontiguousarray(np.asarray(y_pred))
    for reduction in reductions:
        expected = call(case, yc, pc, reduction=reduction, **kwargs)
        got = call(case, y_true, y_pred, reduction=reduction, **kwargs)
        assert_same(got, expected)


def poisoned_view(a, axis, step):
    """A view equal to ``a`` taken with ``step`` along ``axis`` of a poisoned array."""
    a = np.asarray(a)
    axis = axis % a.ndim
    shape = list(a.shape)
    shape[axis] *= abs(step)
    poison = np.nan if a.dtype.kind == "f" else 10**9
    big = np.full(shape, poison, dtype=a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(None, None, step)
    big[tuple(index)] = a
    view = big[tuple(index)]
    assert np.shares_memory(view, big) and np.array_equal(view, a)
    return view


# --- array-likes -----------------------------------------------------------------------


def test_python_lists(case):
    y, p = inputs(case)
    check_layout(case, y.tolist(), p.tolist())


def test_read_only_arrays(case):
    y, p = inputs(case)
    y.setflags(write=False)
    p.setflags(write=False)
    check_layout(case, y, p)


def test_fortran_order(case):
    y, p = inputs(case)
    yf, pf = np.asfortranarray(y), np.asfortranarray(p)
    assert pf.flags.f_contiguous and not pf.flags.c_contiguous
    check_layout(case, yf, pf)


@pytest.mark.parametrize("axis, step", [(0, 2), (0, -1), (0, -3), (-1, 2), (-1, -1)],
                         ids=["rows::2", "rows::-1", "rows::-3", "cols::2", "cols::-1"])
def test_strided_views(case, axis, step):
    y, p = inputs(case)
    pv = poisoned_view(p, axis, step)
    yv = poisoned_view(y, axis, step) if (axis == 0 or y.ndim > 1) else y
    check_layout(case, yv, pv)
    check_layout(case, y, pv)
    check_layout(case, yv, p)


def test_transposed_view(case):
    y, p = inputs(case)
    pt = np.ascontiguousarray(p.T).T           # F-ordered view, not a copy
    yt = np.ascontiguousarray(y.T).T
    check_layout(case, yt, pt)


def test_zero_stride_broadcast(case):
    y, p = inputs(case, n=1)
    yb = np.broadcast_to(y[0], (50,) + y.shape[1:])
    pb = np.broadcast_to(p[0], (50,) + p.shape[1:])
    assert pb.strides[0] == 0
    check_layout(case, yb, pb)
    # A column broadcast along the last axis (stride 0 there).
    y, p = inputs(case, n=50)
    pc = np.broadcast_to(p[:, :1], p.shape)
    check_layout(case, y, pc)


def test_broadcast_scalar_weight_view(case):
    y, p = inputs(case)
    w = np.broadcast_to(np.float64(1.7), (len(p),))
    check_layout(case, y, p, sample_weight=w)
    check_layout(case, y, p, sample_weight=poisoned_view(np.full(len(p), 1.7), 0, -2))


@pytest.mark.parametrize("mode", ["np.load-r", "memmap-r+", "memmap-c"])
def test_memmap(case, mode, tmp_path):
    y, p = inputs(case)
    arrays = []
    for tag, a in (("y", y), ("p", p)):
        if mode == "np.load-r":
            np.save(tmp_path / f"{tag}.npy", a)
            m = np.load(tmp_path / f"{tag}.npy", mmap_mode="r")
        else:
            m = np.memmap(tmp_path / f"{tag}.bin", dtype=a.dtype, mode="w+", shape=a.shape)
            m[...] = a
            m.flush()
            del m
            m = np.memmap(tmp_path / f"{tag}.bin", dtype=a.dtype, mode=mode.split("-")[1],
                          shape=a.shape)
        assert isinstance(m, np.memmap)
        arrays.append(m)
    check_layout(case, *arrays)
    expected = call(case, y, p)
    assert_same(call(case, *arrays), expected)
    del arrays


def misaligned(a):
    """``a`` in a buffer that starts one byte past an aligned address (as np.frombuffer at
    an odd offset, a packed record field or an unpickled dask chunk can give)."""
    a = np.asarray(a)
    raw = np.zeros(a.nbytes + 1, np.uint8)
    m = np.frombuffer(raw.data, a.dtype, a.size, offset=1).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned
    return m


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_misaligned_buffers(case, dtype):
    # On x86 a misaligned read happens to work, so the values agree either way; the ASan +
    # UBSan run (tools/sanitize.sh) is what fails if such a buffer reaches the C loops.
    y, p = inputs(case)
    p = p.astype(dtype)
    w = np.linspace(0.5, 2.0, len(p))
    y_true = misaligned(y) if case[0] in SPARSE else misaligned(y.astype(dtype))
    check_layout(case, y_true, misaligned(p), sample_weight=misaligned(w))
    assert_same(call(case, y_true, misaligned(p), sample_weight=misaligned(w)),
                call(case, y, p, sample_weight=w))
    loss = cyloss.get(case[1].__name__, **case[2])
    value, grad = loss.value_and_grad(y_true, misaligned(p), sample_weight=misaligned(w))
    expected_value, expected_grad = loss.value_and_grad(y, p, sample_weight=w)
    assert_same(value, expected_value)
    assert_same(grad, expected_grad)
    with pytest.raises(ValueError, match="grad_out must be a writeable, aligned"):
        loss.value_and_grad(y, p, grad_out=misaligned(np.empty_like(p)))


class ArrayLike:
    """Not an ndarray, but converts to one (like many tensor types)."""

    def __init__(self, a):
        self._a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        a = self._a if dtype is None else self._a.astype(dtype, copy=False)
        return a.copy() if copy else a


def test_objects_with_array_method(case):
    y, p = inputs(case)
    check_layout(case, ArrayLike(y), ArrayLike(p))
    check_layout(case, y, p, sample_weight=ArrayLike(np.linspace(0.5, 2, len(p))))


def test_torch_cpu_tensors(case):
    torch = pytest.importorskip("torch")
    y, p = inputs(case)
    for dtype in (np.float64, np.float32):
        yd = y.astype(dtype) if y.dtype.kind == "f" else y
        pd = p.astype(dtype)
        for reduction in ("mean", "none"):
            expected = call(case, yd, pd, reduction=reduction)
            got = call(case, torch.from_numpy(yd), torch.from_numpy(pd), reduction=reduction)
            assert_same(got if reduction != "none" else np.asarray(got), expected)
            # A transposed (non-contiguous) tensor.
            pt = torch.from_numpy(np.ascontiguousarray(pd.T)).T
            assert not pt.is_contiguous()
            got = call(case, torch.from_numpy(yd), pt, reduction=reduction)
            assert_same(got if reduction != "none" else np.asarray(got), expected)
    w = torch.linspace(0.5, 2.0, len(p), dtype=torch.float64)
    assert_same(call(case, y, p, sample_weight=w), call(case, y, p, sample_weight=w.numpy()))


# --- the class axis --------------------------------------------------------------------


def _soft_along(rng, shape, axis):
    y = rng.uniform(0, 1, shape)
    return y / y.sum(axis=axis, keepdims=True)


CAT_AXES = [((4, 5, 3), a) for a in (0, 1, 2, -1, -2, -3)] + \
           [((3, 4, 2, 5), a) for a in (0, 1, 2, 3, -1, -4)]


@pytest.mark.parametrize("shape, axis", CAT_AXES, ids=[f"{s}-axis{a}" for s, a in CAT_AXES])
@pytest.mark.parametrize("options", [{"label_smoothing": 0.1},
                                     {"from_logits": True, "label_smoothing": 0.2}],
                         ids=["probs", "logits"])
def test_categorical_axis_equals_moving_it_last(shape, axis, options):
    rng = np.random.default_rng(3)
    y = _soft_along(rng, shape, axis)
    if options.get("from_logits"):
        p = rng.normal(0, 3, shape)
    else:
        p = rng.uniform(0.05, 1, shape)
    y_last, p_last = np.moveaxis(y, axis, -1), np.moveaxis(p, axis, -1)
    per_sample = y_last.shape[:-1]
    w = rng.uniform(0.5, 2, per_sample)
    for reduction in ("none", "mean", "sum", "weighted_mean"):
        expected = CCE(np.ascontiguousarray(y_last), np.ascontiguousarray(p_last),
                       reduction=reduction, sample_weight=w, **options)
        got = CCE(y, p, axis=axis, reduction=reduction, sample_weight=w, **options)
        assert_same(got, expected)
    none = CCE(y, p, axis=axis, reduction="none", **options)
    assert none.shape == per_sample
    # Independent float64 check of the per-sample values.
    s = options["label_smoothing"]
    q = y_last * (1 - s) + s / shape[axis]
    if options.get("from_logits"):
        logp = p_last - np.log(np.exp(p_last).sum(axis=-1, keepdims=True))
    else:
        logp = np.log(np.clip(p_last / p_last.sum(axis=-1, keepdims=True), 1e-7, 1 - 1e-7))
    np.testing.assert_allclose(none, -(q * logp).sum(axis=-1), rtol=1e-13)


SPARSE_AXES = [((6, 4, 3), 1), ((6, 4, 3), -2), ((4, 6), 0), ((2, 4, 3, 5), 1),
               ((2, 3, 5, 4), 3), ((4, 2, 3), 0)]


@pytest.mark.parametrize("shape, axis", SPARSE_AXES,
                         ids=[f"{s}-axis{a}" for s, a in SPARSE_AXES])
@pytest.mark.parametrize("options", [{}, {"from_logits": True, "label_smoothing": 0.1,
                                          "class_weight": [1.0, 2.0, 0.5, 3.0]}],
                         ids=["probs", "logits"])
def test_sparse_class_axis_not_last(shape, axis, options):
    rng = np.random.default_rng(4)
    c = shape[axis]
    assert c == 4
    per_sample = tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    labels = rng.integers(0, c, per_sample)
    p = rng.normal(0, 3, shape) if options else rng.uniform(0.05, 1, shape)
    p_last = np.ascontiguousarray(np.moveaxis(p, axis, -1))
    w = rng.uniform(0.5, 2, per_sample)
    for reduction in ("none", "mean", "weighted_mean"):
        expected = SCCE(labels, p_last, reduction=reduction, sample_weight=w, **options)
        got = SCCE(labels, p, axis=axis, reduction=reduction, sample_weight=w, **options)
        assert_same(got, expected)
        # Labels with a size-1 class axis.
        got = SCCE(np.expand_dims(labels, axis), p, axis=axis, reduction=reduction,
                   sample_weight=w, **options)
        assert_same(got, expected)
    if not options:
        logp = np.log(np.clip(p_last / p_last.sum(-1, keepdims=True), 1e-7, 1 - 1e-7))
        ref = -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(SCCE(labels, p, axis=axis, reduction="none"), ref,
                                   rtol=1e-13)


# --- dtypes ----------------------------------------------------------------------------


def _int_pred(case, rng, shape):
    kind = case[4]
    if kind == "bce-prob":
        return rng.integers(0, 2, shape)
    if kind == "cat-prob":
        return rng.integers(1, 6, shape)
    if case[3] is _counts:   # rates >= 0 (Poisson's log is NaN below -1e-7)
        return rng.integers(0, 6, shape)
    return rng.integers(-5, 6, shape)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.int8, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_integer_and_bool_y_pred_compute_in_float64(case, dtype):
    rng = np.random.default_rng(5)
    y, p = inputs(case, n=20)
    if dtype is np.bool_:
        pi = rng.integers(0, 2, p.shape).astype(bool)
        if case[4] == "cat-prob":
            pi[:, 0] = True                    # no all-zero row
    else:
        pi = _int_pred(case, rng, p.shape)
        if np.dtype(dtype).kind == "u":
            pi = np.abs(pi)
            if case[4] == "cat-prob":
                pi[:, 0] += 1
        pi = pi.astype(dtype)
    for reduction in ("mean", "sum", "none"):
        expected = call(case, y, pi.astype(np.float64), reduction=reduction)
        got = call(case, y, pi, reduction=reduction)
        assert_same(got, expected)
    assert call(case, y, pi, reduction="none").dtype == np.float64


def test_integer_y_true(case):
    y, p = inputs(case, n=20)
    if case[0] in SPARSE:
        yi = y.astype(np.int32)
        expected_y = y
    elif case[4] == "reg":
        yi = np.round(y * 3).astype(np.int16)
        expected_y = yi.astype(np.float64)
    else:
        yi = np.random.default_rng(6).integers(0, 2, y.shape).astype(np.int8)
        if case[4] == "cat-prob" or case[0] == "cce-logit":
            yi = np.eye(W, dtype=np.int8)[np.arange(len(y)) % W]
        expected_y = yi.astype(np.float64)
    for reduction in ("mean", "none"):
        assert_same(call(case, yi, p, reduction=reduction),
                    call(case, expected_y, p, reduction=reduction))


def test_float16_y_pred_computes_in_float32(case):
    y, p = inputs(case, n=20)
    p16 = p.astype(np.float16)
    y32 = y.astype(np.float32) if y.dtype.kind == "f" else y
    for reduction in ("mean", "sum", "none"):
        expected = call(case, y32, p16.astype(np.float32), reduction=reduction)
        assert_same(call(case, y, p16, reduction=reduction), expected)
    assert call(case, y, p16, reduction="none").dtype == np.float32


def test_mixed_dtypes_follow_y_pred(case):
    y, p = inputs(case, n=20)
    p32 = p.astype(np.float32)
    if case[0] not in SPARSE:
        # float64 y_true with float32 y_pred: y_true is cast to float32.
        for reduction in ("mean", "none"):
            expected = call(case, y.astype(np.float32), p32, reduction=reduction)
            assert_same(call(case, y, p32, reduction=reduction), expected)
        assert call(case, y, p32, reduction="none").dtype == np.float32
        # float32 y_true with float64 y_pred: float64 compute.
        y32 = y.astype(np.float32)
        for reduction in ("mean", "none"):
            expected = call(case, y32.astype(np.float64), p, reduction=reduction)
            assert_same(call(case, y32, p, reduction=reduction), expected)
        assert call(case, y32, p, reduction="none").dtype == np.float64
    else:
        # Sparse labels stay integers whatever their dtype; exact float labels are fine.
        for labels in (y.astype(np.int32), y.astype(np.int8), y.astype(np.float64),
                       y.astype(np.float32)):
            for pp in (p, p32):
                for reduction in ("mean", "none"):
                    assert_same(call(case, labels, pp, reduction=reduction),
                                call(case, y, pp, reduction=reduction))
    # float32 and float64 agree to ~1e-6 relative (SPEC section 4).
    y32 = y.astype(np.float32) if y.dtype.kind == "f" else y
    r32 = call(case, y32, p32)
    r64 = call(case, y32.astype(np.float64) if y.dtype.kind == "f" else y,
               p32.astype(np.float64))
    assert type(r32) is float
    assert r32 == pytest.approx(r64, rel=2e-6)


def test_float32_sample_weight_does_not_change_compute_dtype(case):
    y, p = inputs(case, n=20)
    w = np.linspace(0.5, 2.0, 20)
    got = call(case, y, p, sample_weight=w.astype(np.float32), reduction="none")
    expected = call(case, y, p, sample_weight=w.astype(np.float32).astype(np.float64),
                    reduction="none")
    assert_same(got, expected)


# --- empty inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_empty_inputs(case, dtype):
    y, p = inputs(case, n=0)
    assert p.shape == (0, W)
    p = p.astype(dtype)
    for reduction in ("mean", "sum", "weighted_mean", "sum_over_batch_size"):
        got = call(case, y, p, reduction=reduction)
        assert type(got) is float and got == 0.0
        got = call(case, y, p, reduction=reduction, sample_weight=np.ones(0))
        assert type(got) is float and got == 0.0
    none = call(case, y, p, reduction="none")
    assert isinstance(none, np.ndarray)
    assert none.shape == (0,) and none.dtype == dtype


@pytest.mark.parametrize("y_shape, p_shape, per_sample", [
    ((0, 5, 3), (0, 5, 3), (0, 5)), ((3, 0, 2), (3, 0, 2), (3, 0)), ((0,), (0,), (0,)),
    ((0, 1), (0,), (0,)),
])
@pytest.mark.parametrize("fn", [cyloss.mean_absolute_error, cyloss.mean_squared_error,
                                cyloss.huber, cyloss.smooth_l1, BCE],
                         ids=["mae", "mse", "huber", "smooth_l1", "bce"])
def test_empty_regression_and_binary_shapes(fn, y_shape, p_shape, per_sample):
    none = fn(np.zeros(y_shape), np.full(p_shape, 0.5), reduction="none")
    assert none.shape == per_sample and none.dtype == np.float64
    assert fn(np.zeros(y_shape), np.full(p_shape, 0.5)) == 0.0


def test_empty_categorical_shapes():
    none = CCE(np.zeros((2, 0, 4)), np.ones((2, 0, 4)), reduction="none")
    assert none.shape == (2, 0)
    none = CCE(np.zeros((0, 4, 2)), np.ones((0, 4, 2)), axis=1, reduction="none")
    assert none.shape == (0, 2)
    none = SCCE(np.zeros((0, 3), int), np.ones((0, 3, 4)), reduction="none")
    assert none.shape == (0, 3)
    assert SCCE(np.zeros((0, 3), int), np.ones((0, 3, 4)), reduction="sum") == 0.0


# --- sample_weight shapes --------------------------------------------------------------


def test_sample_weight_scalar_vector_and_column(case):
    rng = np.random.default_rng(7)
    y, p = inputs(case, n=23)
    n = len(p)
    for reduction in ("mean", "sum", "weighted_mean", "none"):
        full = call(case, y, p, sample_weight=np.full(n, 2.5), reduction=reduction)
        assert_same(call(case, y, p, sample_weight=2.5, reduction=reduction), full)
        assert_same(call(case, y, p, sample_weight=np.float32(2.5), reduction=reduction),
                    full)
        assert_same(call(case, y, p, sample_weight=np.array(2.5), reduction=reduction), full)
        w = rng.uniform(0.2, 3, n)
        vec = call(case, y, p, sample_weight=w, reduction=reduction)
        assert_same(call(case, y, p, sample_weight=w[:, None], reduction=reduction), vec)
        assert_same(call(case, y, p, sample_weight=w.tolist(), reduction=reduction), vec)
    # The reductions, from the unweighted per-sample losses, in float64 NumPy.
    w = rng.uniform(0.2, 3, n)
    losses = call(case, y, p, reduction="none")
    assert_same(call(case, y, p, sample_weight=w, reduction="none"), w * losses)
    counted = np.ones(n, bool)
    v = np.ones(n)
    if case[0] == "scce-logit":
        counted = y != -1
        v = counted.astype(float)
        assert (losses[~counted] == 0).all()
    if case[0] == "scce-prob":
        v = np.asarray(case[2]["class_weight"])[y]
    total = float(np.sum(w * losses))
    assert call(case, y, p, sample_weight=w, reduction="sum") == pytest.approx(total,
                                                                                rel=1e-14)
    assert call(case, y, p, sample_weight=w) == pytest.approx(total / counted.sum(),
                                                              rel=1e-14)
    assert call(case, y, p, sample_weight=w, reduction="weighted_mean") == pytest.approx(
        total / np.sum(w * v), rel=1e-14)


def test_sample_weight_broadcasts_to_per_sample_shape():
    rng = np.random.default_rng(8)
    y, p = rng.normal(size=(4, 5, 3)), rng.normal(size=(4, 5, 3))
    wfull = np.broadcast_to(rng.uniform(0.5, 2, 5), (4, 5))
    expected = cyloss.mean_squared_error(y, p, sample_weight=np.ascontiguousarray(wfull),
                                         reduction="none")
    np.testing.assert_allclose(expected, wfull * ((p - y) ** 2).mean(-1), rtol=1e-15)
    for w in (wfull[0], wfull[..., None], wfull[0][None, :]):
        got = cyloss.mean_squared_error(y, p, sample_weight=w, reduction="none")
        assert_same(got, expected)
    labels = rng.integers(0, 3, (4, 5))
    expected = SCCE(labels, np.abs(p), sample_weight=np.ascontiguousarray(wfull),
                    reduction="sum")
    assert_same(SCCE(labels, np.abs(p), sample_weight=wfull[0], reduction="sum"), expected)
    assert_same(SCCE(labels[..., None], np.abs(p), sample_weight=wfull[..., None],
                     reduction="sum"), expected)


# --- Keras (n,) vs (n, 1) squeezing and 1-D input ---------------------------------------


@pytest.mark.parametrize("fn, options, kind", [
    (cyloss.mean_absolute_error, {}, "reg"), (cyloss.mean_squared_error, {}, "reg"),
    (cyloss.huber, {"delta": 0.5}, "reg"), (cyloss.smooth_l1, {"beta": 0.3}, "reg"),
    (BCE, {}, "prob"), (BCE, {"from_logits": True, "label_smoothing": 0.1}, "logit"),
], ids=["mae", "mse", "huber", "smooth_l1", "bce-prob", "bce-logit"])
def test_keras_trailing_axis_of_one_is_squeezed(fn, options, kind):
    rng = np.random.default_rng(9)
    n = 17
    if kind == "reg":
        y, p = rng.normal(size=n), rng.normal(size=n)
    elif kind == "prob":
        y, p = rng.integers(0, 2, n).astype(float), rng.uniform(0.05, 0.95, n)
    else:
        y, p = rng.uniform(0, 1, n), rng.normal(0, 3, n)
    for reduction in ("mean", "sum", "none"):
        expected = fn(y[:, None], p[:, None], reduction=reduction, **options)
        assert_same(fn(y, p[:, None], reduction=reduction, **options), expected)
        assert_same(fn(y[:, None], p, reduction=reduction, **options), expected)
        assert_same(fn(y, p, reduction=reduction, **options), expected)
    assert fn(y, p[:, None], reduction="none", **options).shape == (n,)


def test_sparse_labels_n_or_n_by_1():
    rng = np.random.default_rng(10)
    labels, p = rng.integers(0, 4, 15), rng.uniform(0.1, 1, (15, 4))
    for reduction in ("mean", "none"):
        for logits in (False, True):
            expected = SCCE(labels, p, reduction=reduction, from_logits=logits)
            assert_same(SCCE(labels[:, None], p, reduction=reduction, from_logits=logits),
                        expected)
            assert_same(SCCE(labels[:, None].astype(float), p, reduction=reduction,
                             from_logits=logits), expected)
    assert SCCE(labels[:, None], p, reduction="none").shape == (15,)


@pytest.mark.parametrize("fn, formula", [
    (cyloss.mean_absolute_error, lambda e: np.abs(e)),
    (cyloss.mean_squared_error, lambda e: e * e),
    (cyloss.huber, lambda e: np.where(np.abs(e) <= 1.0, 0.5 * e * e, np.abs(e) - 0.5)),
    (cyloss.smooth_l1, lambda e: np.where(np.abs(e) < 1.0, 0.5 * e * e, np.abs(e) - 0.5)),
    (cyloss.mae, lambda e: np.abs(e)),
    (cyloss.mse, lambda e: e * e),
], ids=["mae", "mse", "huber", "smooth_l1", "alias-mae", "alias-mse"])
def test_one_dimensional_regression_is_n_samples_of_one_output(fn, formula):
    rng = np.random.default_rng(11)
    y, p = rng.normal(size=25), rng.normal(0, 2, size=25)
    expected = formula(p - y)
    got = fn(y, p, reduction="none")
    assert got.shape == (25,)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert fn(y, p) == pytest.approx(expected.mean(), rel=1e-14)
    assert fn(y, p, reduction="sum") == pytest.approx(expected.sum(), rel=1e-14)
    assert_same(fn(y, p, reduction="none"), fn(y[:, None], p[:, None], reduction="none"))


def test_single_sample_one_dimensional_categorical():
    # A 1-D categorical input is one sample with C classes; reduced it is that sample.
    y, p = np.array([0.0, 1.0, 0.0]), np.array([0.2, 0.5, 0.3])
    assert CCE(y, p) == pytest.approx(-np.log(0.5), rel=1e-14)
    assert SCCE(1, p) == pytest.approx(-np.log(0.5), rel=1e-14)
    assert SCCE(np.array([1]), p) == pytest.approx(-np.log(0.5), rel=1e-14)


@pytest.mark.parametrize("fn, y, p", [
    (BCE, [[0.0, 1.0, 0.0, 1.0]], [[1.0, 0.0, 0.5, 1.0]]),
    (BCE, [[0.0], [1.0]], [[1.0], [0.25]]),
    (CCE, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0], [0.2, 0.8, 0.0]]),
    (CCE, [[1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]]),
    (SCCE, [0, 1], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
], ids=["binary-saturated", "binary-p1-y0", "categorical-saturated", "categorical-p1-y1",
     "sparse-saturated"])
def test_float32_saturated_probabilities_agree_with_float64(fn, y, p):
    # SPEC section 4: float32 results agree with the float64 result (same input values)
    # to ~1e-6 relative; probabilities of exactly 0 or 1 meet the clip bounds
    # [epsilon, 1 - epsilon], where 1 - 1e-7 is not a float32 number.
    p32 = np.asarray(p, np.float32)
    r64 = fn(y, p32.astype(np.float64))
    r32 = fn(np.asarray(y, np.float32) if fn is not SCCE else y, p32)
    assert r32 == pytest.approx(r64, rel=2e-6)
