"""cyloss's own vectorisable exp/log/log1p (_vecmath.h): accuracy in ulp against mpmath
and C99 special values."""

import math

import mpmath
import numpy as np
import pytest

from cyloss import _loops

mpmath.mp.prec = 200


def run(name, x):
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _loops.vecmath(name, x, out)
    return out


REFERENCE = {
    "exp": lambda v: mpmath.exp(v),
    "log": lambda v: mpmath.log(v),
    "log1p": lambda v: mpmath.log1p(v),
}


def ulp_error(got, exact):
    """|got - exact| in units of the last place of the correctly rounded result."""
    rounded = float(exact)
    if rounded == 0.0 or math.isinf(rounded):
        return 0.0 if got == rounded else math.inf
    spacing = math.ulp(rounded)
    return float(abs(mpmath.mpf(got) - exact) / spacing)


def sample(name, rng, n):
    if name == "exp":
        return np.concatenate([rng.uniform(-745, 709.7, n // 2), rng.uniform(-1, 1, n // 2)])
    if name == "log":
        return 10.0 ** rng.uniform(-320, 308, n)   # subnormals included
    return np.concatenate([
        rng.uniform(-1, 1, n // 3),
        np.sign(rng.uniform(-1, 1, n // 3)) * 10.0 ** rng.uniform(-300, -1, n // 3),
        10.0 ** rng.uniform(0, 300, n - 2 * (n // 3)),
    ])


@pytest.mark.parametrize("name", ["exp", "log", "log1p"])
def test_within_two_ulp_of_mpmath(name):
    rng = np.random.default_rng(7)
    x = sample(name, rng, 3000)
    got = run(name, x)
    worst = max(ulp_error(g, REFERENCE[name](mpmath.mpf(v))) for v, g in zip(x, got))
    assert worst <= 2.0, f"{name}: worst error {worst:.2f} ulp"


@pytest.mark.parametrize("name", ["exp", "log", "log1p"])
def test_close_to_libm_on_many_points(name):
    rng = np.random.default_rng(8)
    x = sample(name, rng, 200_000)
    got = run(name, x)
    want = getattr(np, name)(x)
    scale = np.spacing(np.abs(want))
    assert np.all(np.abs(got - want) <= 3 * scale)


SPECIAL = [
    # (function, x, expected): C99 Annex F
    ("exp", math.nan, math.nan), ("exp", math.inf, math.inf), ("exp", -math.inf, 0.0),
    ("exp", 0.0, 1.0), ("exp", -0.0, 1.0), ("exp", 710.0, math.inf), ("exp", 1e300, math.inf),
    ("exp", -746.0, 0.0), ("exp", -1e300, 0.0),
    ("exp", -745.13, 5e-324),          # the smallest subnormal
    ("log", math.nan, math.nan), ("log", math.inf, math.inf), ("log", 0.0, -math.inf),
    ("log", -0.0, -math.inf), ("log", -1.0, math.nan), ("log", -math.inf, math.nan),
    ("log", 1.0, 0.0), ("log", 5e-324, -744.4400719213812),
    ("log1p", math.nan, math.nan), ("log1p", math.inf, math.inf), ("log1p", -1.0, -math.inf),
    ("log1p", -2.0, math.nan), ("log1p", 0.0, 0.0), ("log1p", 1e-300, 1e-300),
    ("log1p", -math.inf, math.nan),
]


@pytest.mark.parametrize("name,x,expected", SPECIAL, ids=lambda v: repr(v))
def test_special_values(name, x, expected):
    got = float(run(name, [x])[0])
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected
        if expected == 0.0:
            assert math.copysign(1.0, got) == math.copysign(1.0, expected)


def test_log1p_nonneg_gives_log1p_bits_on_its_domain():
    # The row lognorms take log1p((ties - 1) + total) through a copy without the special
    # cases; on [+0, 2^52) and NaN it must give cyl_log1p's bits (and so its accuracy).
    rng = np.random.default_rng(10)
    x = np.concatenate([
        [0.0, 5e-324, 2.0**-60, 2.0**-53, 2.0**-52, 1e-300, 0.5, 1.0, 2.0, 31.0, 32.0,
         2.0**31, 2.0**52 - 1.0],
        10.0 ** rng.uniform(-310, 15.6, 100_000),
        rng.uniform(0, 32, 100_000),                        # (ties - 1) + total, C <= 32
        rng.integers(0, 32, 1000) + rng.uniform(0, 1, 1000) * 2.0**-40,
    ])
    got, want = run("log1p_nonneg", x), run("log1p", x)
    assert got.tobytes() == want.tobytes()
    assert np.isnan(run("log1p_nonneg", [math.nan])[0])


def test_log1p_keeps_the_sign_of_zero():
    assert math.copysign(1.0, float(run("log1p", [-0.0])[0])) == -1.0


def test_expf_within_two_float_ulp():
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.uniform(-104, 89, 200_000), rng.uniform(-1, 1, 20_000)])
    x = x.astype(np.float32).astype(np.float64)
    got = run("expf", x)
    assert np.all(got == got.astype(np.float32))           # a float32 result
    want = np.exp(x)                                        # double, then compared in float ulp
    finite = want < float(np.finfo(np.float32).max)         # the float32 result is finite
    spacing = np.spacing(np.abs(want[finite].astype(np.float32))).astype(np.float64)
    spacing = np.maximum(spacing, 2.0 ** -149)
    assert np.max(np.abs(got[finite] - want[finite]) / spacing) <= 2.0
    assert np.all(np.isinf(got[~finite]))


@pytest.mark.parametrize("x,expected", [
    (math.nan, math.nan), (math.inf, math.inf), (-math.inf, 0.0), (0.0, 1.0),
    (89.0, math.inf), (-104.5, 0.0), (-103.97, 2.0 ** -149), (1e30, math.inf),
])
def test_expf_special_values(x, expected):
    got = float(run("expf", [x])[0])
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


def test_log1pf_small_within_two_float_ulp_on_its_domain():
    rng = np.random.default_rng(14)
    top = math.exp(-1.0)
    u = np.concatenate([rng.uniform(0, top, 200_000), top * 10.0 ** rng.uniform(-44, 0, 50_000),
                        [0.0, np.float32(top)]]).astype(np.float32).astype(np.float64)
    u = u[u <= top]
    got = run("log1pf_small", u)
    assert np.all(got == got.astype(np.float32))
    want = np.log1p(u)
    spacing = np.maximum(np.spacing(want.astype(np.float32)).astype(np.float64), 2.0 ** -149)
    assert np.max(np.abs(got - want) / spacing) <= 2.0
    assert math.isnan(float(run("log1pf_small", [math.nan])[0]))


def test_log1mf_within_two_float_ulp():
    # log1p(-p) of the float32 binary cross-entropy, over [0, 1]: near 0 (where 1 - p
    # rounds), near 1 (where log1p(-p) -> -inf) and between.
    rng = np.random.default_rng(15)
    p = np.concatenate([rng.uniform(0, 1, 200_000), 10.0 ** rng.uniform(-45, 0, 50_000),
                        1.0 - 10.0 ** rng.uniform(-7.5, 0, 50_000), [0.0, 0.5]])
    p = p.astype(np.float32).astype(np.float64)
    p = p[p < 1.0]
    got = run("log1mf", p)
    assert np.all(got == got.astype(np.float32))
    want = np.log1p(-p)
    spacing = np.maximum(np.spacing(np.abs(want).astype(np.float32)).astype(np.float64),
                         2.0 ** -149)
    assert np.max(np.abs(got - want) / spacing) <= 2.0
    assert float(run("log1mf", [1.0])[0]) == -math.inf
    assert math.isnan(float(run("log1mf", [math.nan])[0]))


def test_log1pf_unit_within_two_float_ulp_on_its_domain():
    rng = np.random.default_rng(10)
    u = np.concatenate([rng.uniform(0, 1, 200_000), 10.0 ** rng.uniform(-44, 0, 50_000),
                        [0.0, 1.0]]).astype(np.float32).astype(np.float64)
    got = run("log1pf_unit", u)
    assert np.all(got == got.astype(np.float32))
    want = np.log1p(u)
    spacing = np.maximum(np.spacing(want.astype(np.float32)).astype(np.float64), 2.0 ** -149)
    assert np.max(np.abs(got - want) / spacing) <= 2.0
    assert math.isnan(float(run("log1pf_unit", [math.nan])[0]))


def _relative_error(got, x, fn):
    exact = [fn(mpmath.mpf(float(v))) for v in x]
    return max(float(abs((mpmath.mpf(float(g)) - e) / e)) for g, e in zip(got, exact) if e != 0)


def test_log_f32_within_float_precision():
    # The logarithm of the float32 losses: 2^-28 relative over the whole double range, near
    # 1 included (where it keeps the relative precision of log x). Better than float32, so
    # that sums whose terms cancel stay within SPEC's 1e-6 (tests/test_values.py).
    rng = np.random.default_rng(11)
    x = np.concatenate([10.0 ** rng.uniform(-320, 308, 3000), 1.0 + rng.uniform(-0.3, 0.3, 2000),
                        1.0 + 10.0 ** rng.uniform(-15, -1, 1000),
                        rng.uniform(0, 1e-6, 500).astype(np.float32).astype(np.float64)])
    x = x[x != 1.0]
    assert _relative_error(run("log_f32", x), x, mpmath.log) <= 2.0 ** -28
    assert float(run("log_f32", [1.0])[0]) == 0.0


def test_exp_f32_within_float_precision():
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.uniform(-700, 700, 3000), rng.uniform(-1, 1, 2000),
                        rng.uniform(-745, -708, 300)])
    got = run("exp_f32", x)
    normal = np.exp(x) > 2.3e-308          # below, the double result itself is subnormal
    assert _relative_error(got[normal], x[normal], mpmath.exp) <= 2.0 ** -26
    # subnormal results: the same relative precision, down to the last subnormal
    want = np.exp(x[~normal])
    assert np.all(np.abs(got[~normal] - want) <= np.maximum(want * 2.0 ** -26, 2.0 ** -1074))


@pytest.mark.parametrize("name", ["log_f32", "exp_f32"])
@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-310, 800.0,
                               -800.0])
def test_f32_precision_special_values_are_cyl_logs_and_exps(name, x):
    # The same special values as the double functions (C99).
    double = {"log_f32": "log", "exp_f32": "exp"}[name]
    got, want = float(run(name, [x])[0]), float(run(double, [x])[0])
    if math.isnan(want):
        assert math.isnan(got)
    elif want == 0.0 or math.isinf(want):
        assert got == want
    else:
        assert math.isclose(got, want, rel_tol=2.0 ** -26)


def test_logf_within_two_float_ulp():
    rng = np.random.default_rng(13)
    x = np.concatenate([10.0 ** rng.uniform(-45, 38.5, 200_000), rng.uniform(0.5, 2.0, 50_000),
                        [2.0 ** -149, 1.0]]).astype(np.float32).astype(np.float64)
    got = run("logf", x)
    assert np.all(got == got.astype(np.float32))           # a float32 result
    want = np.log(x)
    spacing = np.maximum(np.spacing(np.abs(want).astype(np.float32)).astype(np.float64),
                         2.0 ** -149)
    assert np.max(np.abs(got - want) / spacing) <= 2.0


@pytest.mark.parametrize("x,expected", [
    (math.nan, math.nan), (math.inf, math.inf), (-math.inf, math.nan), (0.0, -math.inf),
    (-0.0, -math.inf), (-1.0, math.nan), (1.0, 0.0), (2.0 ** -149, -149 * math.log(2.0)),
])
def test_logf_special_values(x, expected):
    got = float(run("logf", [x])[0])
    if math.isnan(expected):
        assert math.isnan(got)
    elif math.isinf(expected):
        assert got == expected
    else:
        assert math.isclose(got, expected, rel_tol=1e-7)


def test_expf_nonpos_gives_expf_bits_on_its_domain():
    # The softplus tails' e^-|x| drops cyl_expf's upper clamp and NaN select: the same
    # bits for every x <= 0, the clamp at -104, subnormal and zero results included.
    rng = np.random.default_rng(16)
    x = -np.concatenate([rng.uniform(0, 110, 200_000), 10.0 ** rng.uniform(-45, 2.1, 50_000),
                         [0.0, 87.3, 103.9, 104.0, 104.1, 150.0, np.inf]])
    x = x.astype(np.float32).astype(np.float64)
    got, want = run("expf_nonpos", x), run("expf", x)
    assert got.tobytes() == want.tobytes()
    assert math.isnan(float(run("expf_nonpos", [math.nan])[0]))
