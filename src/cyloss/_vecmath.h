/* Branch-free exp, log and log1p in double precision, written so that a compiler can
 * vectorise the loops that call them (glibc's exp/log are opaque calls, and its vector
 * versions need -ffast-math, which breaks the NaN contract).
 *
 * Accuracy: within 1-2 ulp of the correctly rounded result over the whole double range
 * (tests/test_vecmath.py measures it against libm and mpmath). Special values follow C99:
 *   exp(NaN) = NaN, exp(+inf) = +inf, exp(-inf) = 0, overflow to +inf, gradual underflow
 *   through the subnormals to 0;
 *   log(NaN) = NaN, log(x < 0) = NaN, log(+-0) = -inf, log(+inf) = +inf, subnormals exact;
 *   log1p(x) = log(1 + x) without cancellation, log1p(-1) = -inf, log1p(x < -1) = NaN.
 *
 * Every special case is a select at the end, never a branch: NaN propagates through the
 * arithmetic and comparisons with NaN are false.
 */
#ifndef CYLOSS_VECMATH_H
#define CYLOSS_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define CYL_INLINE static inline __attribute__((always_inline))
#else
#define CYL_INLINE static __forceinline
#endif

CYL_INLINE double cyl_from_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
CYL_INLINE uint64_t cyl_to_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

/* 2^k for integer k in [-1022, 1023], built from its exponent bits. */
CYL_INLINE double cyl_pow2i(int64_t k) { return cyl_from_bits((uint64_t)(k + 1023) << 52); }

/* exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 in two parts (Cody & Waite),
 * |r| <= ln(2)/2; exp(r) by its Taylor series to r^13 (truncation < 2^-60 relative). */
CYL_INLINE double cyl_exp(double x)
{
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000: k*ln2_hi exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shifter = 6755399441055744.0;         /* 1.5 * 2^52: rounds to an integer */
    /* Beyond these the result is inf or 0 anyway; clamping keeps k in range. NaN passes. */
    double xc = x > 710.0 ? 710.0 : (x < -746.0 ? -746.0 : x);
    double t = xc * log2e + shifter;
    double kd = t - shifter;
    /* The low bits of t hold k in two's complement: no float-to-int conversion needed. */
    int64_t k = (int64_t)(cyl_to_bits(t) - cyl_to_bits(shifter));
    double r = (xc - kd * ln2_hi) - kd * ln2_lo;
    double p = 1.0 / 6227020800.0;                     /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* Two scale factors so that 2^k below 2^-1022 (subnormal results) and up to 2^1024
     * (overflow to inf) are both reached with a single rounding at the end. */
    int64_t k1 = k >> 1;
    int64_t k2 = k - k1;
    double y = (p * cyl_pow2i(k1)) * cyl_pow2i(k2);
    return x != x ? x : y;
}

/* log(x) for x > 0: x = 2^e m with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s),
 * s = (m - 1) / (m + 1), |s| <= 0.1716, by its odd series to s^23 (< 2^-60 relative).
 * cyl_log_core is the arithmetic for a positive normal xs whose exponent is eadj too
 * high (54 for a subnormal scaled by 2^54); `above1` (a constant): xs >= 1, where a
 * logical shift extracts e (AVX2 has no 64-bit arithmetic shift; the same e). */
CYL_INLINE double cyl_log_core(double xs, double eadj, const int above1)
{
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    uint64_t bits = cyl_to_bits(xs);
    /* Shift the mantissa range to [sqrt(1/2), sqrt(2)) by biasing before splitting. */
    uint64_t tmp = bits - 0x3fe6a09e667f3bcdULL;             /* bits of sqrt(1/2) */
    int64_t e = above1 ? (int64_t)(tmp >> 52) : (int64_t)tmp >> 52;
    double m = cyl_from_bits(bits - ((uint64_t)e << 52));
    /* e as a double without an int64-to-double conversion (small integer trick). */
    double ed = cyl_from_bits(0x4330000000000000ULL + (uint64_t)(e + 2048))
                - 4503599627372544.0;                     /* 2^52 + 2048 */
    ed = ed - eadj;
    double s = (m - 1.0) / (m + 1.0);
    double z = s * s;
    /* q = sum_{j=0..10} z^j 2/(2j+3) by Estrin's scheme: the terms in pairs, then pairs of
     * pairs, so that the dependent chain is four steps deep instead of eleven. */
    double z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
    double q = ((z * (2.0 / 5.0) + 2.0 / 3.0) + (z * (2.0 / 9.0) + 2.0 / 7.0) * z2)
             + ((z * (2.0 / 13.0) + 2.0 / 11.0) + (z * (2.0 / 17.0) + 2.0 / 15.0) * z2) * z4
             + ((z * (2.0 / 21.0) + 2.0 / 19.0) + (2.0 / 23.0) * z2) * z8;
    /* log(m) = 2s + s z q, with 2s split as (m - 1) - s (m - 1) to keep it exact-ish. */
    double f = m - 1.0;
    double logm = f - s * f + s * z * q;
    return ed * ln2_hi + (logm + ed * ln2_lo);
}

CYL_INLINE double cyl_log(double x)
{
    /* Subnormals: scale by 2^54 first so that the exponent field is meaningful. */
    int sub = x < 2.2250738585072014e-308;
    double xs = sub ? x * 18014398509481984.0 : x;
    double y = cyl_log_core(xs, sub ? 54.0 : 0.0, 0);
    y = x == 0.0 ? -INFINITY : y;
    y = x < 0.0 ? NAN : y;
    y = x == INFINITY ? x : y;
    return x != x ? x : y;
}

/* log1p(x) = log(u) + (x - (u - 1)) / u with u = 1 + x rounded: the correction restores
 * what the rounding of u lost (Goldberg 1991, "What every computer scientist should know
 * about floating-point arithmetic", theorem 4). */
CYL_INLINE double cyl_log1p(double x)
{
    double u = 1.0 + x;
    double c = (x - (u - 1.0)) / u;
    double y = cyl_log(u) + c;
    y = u == 1.0 ? x : y;                  /* |x| below half an ulp of 1: log1p(x) = x */
    y = u == INFINITY ? u : y;
    y = u == 0.0 ? -INFINITY : y;          /* x = -1 (c would be 0/0) */
    return x != x ? x : y;
}

/* cyl_log1p(x) to the bit for x in [+0, 2^52) or NaN, without its special cases: the
 * lognorm of a row, log1p((ties - 1) + total). There u = 1 + x is normal, >= 1 and
 * finite; at u == 1, log(u) comes out +0 and c = x, so the sum is x as the select gives;
 * NaN propagates through c. */
CYL_INLINE double cyl_log1p_nonneg(double x)
{
    double u = 1.0 + x;
    double c = (x - (u - 1.0)) / u;
    return cyl_log_core(u, 0.0, 1) + c;
}

/* log(x) of a double x for the losses of float32 input (SPEC section 4): within 2^-28
 * relative of the exact value (tests/test_vecmath.py), with cyl_log's special values. A
 * float32 result must stay within ~1e-6 of the float64 one even where the terms of a sum
 * cancel (Poisson's p - y log p, Gaussian NLL's log v + e^2 / v), which a logarithm
 * rounded to float32 does not give; cyl_log's full double precision is not needed either.
 * x = 2^e m, m in [sqrt(1/2), sqrt(2)), f = m - 1 exact, log(m) = 2 atanh(f / (m + 1)) by
 * its odd series to s^9 in double (truncation < 2^-28 relative, |s| < 0.1716): about a
 * fifth less time than cyl_log. */
/* cyl_log_f32's steps for a normal, positive, finite xs, less sub_e from the exponent (54
 * for a subnormal that cyl_log_f32 scaled by 2^54, else 0). */
CYL_INLINE double cyl_log_f32_normal(double xs, double sub_e)
{
    uint64_t bits = cyl_to_bits(xs);
    uint64_t tmp = bits - 0x3fe6a09e667f3bcdULL;             /* bits of sqrt(1/2) */
    int64_t e = (int64_t)tmp >> 52;
    double m = cyl_from_bits(bits - ((uint64_t)e << 52));
    double ed = cyl_from_bits(0x4330000000000000ULL + (uint64_t)(e + 2048))
                - 4503599627372544.0;                     /* 2^52 + 2048 */
    ed = ed - sub_e;
    double f = m - 1.0, s = f / (m + 1.0), z = s * s;
    double q = ((z * (2.0 / 9.0) + 2.0 / 7.0) * z + 2.0 / 5.0) * z + 2.0 / 3.0;
    double logm = (f - s * f) + s * z * q;
    return ed * 0.693147180559945309417232121458176568 + logm;
}

CYL_INLINE double cyl_log_f32(double x)
{
    int sub = x < 2.2250738585072014e-308;
    double xs = sub ? x * 18014398509481984.0 : x;
    double y = cyl_log_f32_normal(xs, sub ? 54.0 : 0.0);
    y = x == 0.0 ? -INFINITY : y;
    y = x < 0.0 ? NAN : y;
    y = x == INFINITY ? x : y;
    return x != x ? x : y;
}

/* --- single precision --------------------------------------------------------------------
 * For float32 input the SPEC allows per-element arithmetic in float32 (every sum stays in
 * double): eight lanes per AVX2 vector instead of four, and shorter polynomials.
 * cyl_expf: within 2 ulp (float) over the whole range, C99 special values. */

CYL_INLINE float cyl_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
CYL_INLINE uint32_t cyl_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* The steps of cyl_expf that its eight-lane twin (cyl_expf_v8_reduce/_finish) shares, written
 * once for a float or a vector of floats so that the two give the same bits:
 * t = xc / ln 2 + 1.5 * 2^23 holds k = round(xc / ln 2) in its low bits, kf = k as a
 * float, r = xc - k ln 2 in two parts (Cody & Waite; 0x3f317200: k * ln2_hi is exact),
 * |r| <= ln(2)/2, and p = e^r by its Taylor series to r^7 (truncation < 2^-27 relative),
 * evaluated by Estrin's scheme,
 * (1 + r + r^2/2 + r^3/6) + r^4 (1/24 + r/120 + r^2/720 + r^3/5040): the same operation
 * count as Horner's but half the dependent steps, which is what limits the vectorised row
 * loops. */
#define CYL_EXPF_SHIFTER 12582912.0f                   /* 1.5 * 2^23 */
#define CYL_EXPF_REDUCE(xc, t, kf, r)                                                    \
    do {                                                                                 \
        (t) = (xc) * 1.44269504088896341f + CYL_EXPF_SHIFTER;                            \
        (kf) = (t) - CYL_EXPF_SHIFTER;                                                   \
        (r) = ((xc) - (kf) * 0.693145751953125f) - (kf) * 1.428606765330187045e-06f;     \
    } while (0)
#define CYL_EXPF_POLY(r, r2, r4)                                                         \
    ((((r) * (1.0f / 5040.0f) + 1.0f / 720.0f) * (r2)                                    \
      + ((r) * (1.0f / 120.0f) + 1.0f / 24.0f)) * (r4)                                   \
     + (((r) * (1.0f / 6.0f) + 0.5f) * (r2) + ((r) + 1.0f)))

/* e^xc for xc in [-104, 89] (or NaN): cyl_expf's steps after its clamp. */
CYL_INLINE float cyl_expf_clamped_(float xc)
{
    float t, kf, r;
    CYL_EXPF_REDUCE(xc, t, kf, r);
    int32_t k = (int32_t)(cyl_f32_to_bits(t) - cyl_f32_to_bits(CYL_EXPF_SHIFTER));
    float r2 = r * r, r4 = r2 * r2;
    float p = CYL_EXPF_POLY(r, r2, r4);
    int32_t k1 = k >> 1;
    int32_t k2 = k - k1;
    return (p * cyl_f32_from_bits((uint32_t)(k1 + 127) << 23))
           * cyl_f32_from_bits((uint32_t)(k2 + 127) << 23);
}

CYL_INLINE float cyl_expf(float x)
{
    float xc = x > 89.0f ? 89.0f : (x < -104.0f ? -104.0f : x);
    float y = cyl_expf_clamped_(xc);
    return x != x ? x : y;
}

/* cyl_expf for x <= 0 or NaN (the e^-|x| of the softplus tails): the same operations, so
 * the same bits, less the upper clamp that such arguments never reach and the final NaN
 * select (a NaN x stays NaN through the arithmetic, which is all its callers need). */
CYL_INLINE float cyl_expf_nonpos(float x)
{
    return cyl_expf_clamped_(x < -104.0f ? -104.0f : x);
}

/* exp(x) of a double x for the losses of float32 input (within 2^-26 relative; cyl_exp's
 * range and special values, so a float32 input's exp(100) is the double 2.7e43, not inf),
 * precise enough for sums whose terms cancel (Poisson NLL's exp(x) - y x), as
 * cyl_log_f32: the reduction k = round(x / ln 2), r = x - k ln 2 of cyl_exp, e^r by
 * cyl_expf's polynomial (Taylor to r^7, truncation < 2^-27 relative at |r| <= ln(2)/2)
 * in double, the scaling by 2^k. */
/* cyl_exp_f32's steps for xc in [-746, 710] (the clamp's range; without the NaN select). */
CYL_INLINE double cyl_exp_f32_clamped(double xc)
{
    const double shifter = 6755399441055744.0;         /* 1.5 * 2^52 */
    double t = xc * 1.4426950408889634074 + shifter;
    double kd = t - shifter;
    int64_t k = (int64_t)(cyl_to_bits(t) - cyl_to_bits(shifter));
    double r = (xc - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
    double r2 = r * r, r4 = r2 * r2;
    double p = ((r * (1.0 / 5040.0) + 1.0 / 720.0) * r2 + (r * (1.0 / 120.0) + 1.0 / 24.0)) * r4
               + ((r * (1.0 / 6.0) + 0.5) * r2 + (r + 1.0));
    int64_t k1 = k >> 1;
    return (p * cyl_pow2i(k1)) * cyl_pow2i(k - k1);
}

CYL_INLINE double cyl_exp_f32(double x)
{
    double xc = x > 710.0 ? 710.0 : (x < -746.0 ? -746.0 : x);
    double y = cyl_exp_f32_clamped(xc);
    return x != x ? x : y;
}

/* log(x) in float32, within 2 ulp (float), C99 special values (cyl_log's): x = 2^e m,
 * m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s), s = (m - 1) / (m + 1), by its odd series
 * to s^9 (truncation < 2^-28 relative); subnormals scaled by 2^24 first. All in float32
 * (eight lanes per AVX2 vector), for a loss whose argument is itself a float32 value. */
CYL_INLINE float cyl_logf(float x)
{
    int sub = x < 1.17549435e-38f;
    float xs = sub ? x * 16777216.0f : x;
    uint32_t bits = cyl_f32_to_bits(xs);
    /* e + 256 by a logical shift (AVX2 has it for 32 bits too, but this is one op less) */
    uint32_t u = (bits - 0x3f3504f3u + 0x80000000u) >> 23;
    float m = cyl_f32_from_bits(bits - (u << 23) + 0x80000000u);
    float ef = (float)((int32_t)u - 256) - (sub ? 24.0f : 0.0f);
    float f = m - 1.0f, s = f / (m + 1.0f), z = s * s;
    float q = ((z * (2.0f / 9.0f) + 2.0f / 7.0f) * z + 2.0f / 5.0f) * z + 2.0f / 3.0f;
    float logm = (f - s * f) + s * z * q;
    float y = ef * 0.693145751953125f + (logm + ef * 1.428606765330187045e-06f);
    y = x == 0.0f ? -INFINITY : y;
    y = x < 0.0f ? NAN : y;
    y = x == INFINITY ? x : y;
    return x != x ? x : y;
}

#if defined(__GNUC__)
/* Eight floats (one AVX2 vector; two SSE vectors on the baseline) and their masks. */
typedef float cyl_vf8 __attribute__((vector_size(32)));
typedef int32_t cyl_vi8 __attribute__((vector_size(32)));
typedef double cyl_vd4 __attribute__((vector_size(32)));
typedef int64_t cyl_vi4 __attribute__((vector_size(32)));

/* a where the mask is set, else b. */
CYL_INLINE cyl_vf8 cyl_vf8_pick(cyl_vi8 mask, cyl_vf8 a, cyl_vf8 b)
{
    return (cyl_vf8)((mask & (cyl_vi8)a) | (~mask & (cyl_vi8)b));
}

/* The eight floats as two vectors of four doubles (element initialisers: GCC 12 turns
 * them into vcvtps2pd, and __builtin_convertvector into shuffles through memory). */
#define CYL_VF8_WIDEN(e, lo, hi)                                                         \
    do {                                                                                 \
        cyl_vd4 l_ = {(e)[0], (e)[1], (e)[2], (e)[3]}, h_ = {(e)[4], (e)[5], (e)[6], (e)[7]}; \
        (lo) = l_;                                                                       \
        (hi) = h_;                                                                       \
    } while (0)

typedef float cyl_vf4 __attribute__((vector_size(16)));

/* Eight floats read from memory as two vectors of four doubles: a vcvtps2pd from memory
 * each. (CYL_VF8_WIDEN on a vector that was only loaded lets GCC 12 split the load into
 * eight scalar loads and inserts.) */
CYL_INLINE void cyl_load_widen8(const float *p, cyl_vd4 *lo, cyl_vd4 *hi)
{
    cyl_vf4 a, b;
    memcpy(&a, p, sizeof a);
    memcpy(&b, p + 4, sizeof b);
    cyl_vd4 l = {a[0], a[1], a[2], a[3]}, h = {b[0], b[1], b[2], b[3]};
    *lo = l;
    *hi = h;
}

/* cyl_expf on eight lanes for x <= 0 (including -inf) or NaN, the arguments of the row
 * exponentials e^(x_k - max): the same operations in the same order, so the same bits
 * lane by lane, less the upper clamp that such arguments never reach and the NaN select
 * (below). In two halves, so that a loop can run the first half of several vectors
 * before the second (cyl_expsum8_run): each half is a shorter chain of dependent steps,
 * and the out-of-order window, which one whole exponential per vector filled long
 * before the floating-point units were busy, overlaps more vectors (a quarter less time
 * per element on this machine's Zen 3). */
typedef struct {
    cyl_vf8 r;          /* x - k ln 2 */
    cyl_vf8 s1, s2;     /* the scale 2^k = 2^k1 2^k2 (2^k1 alone when not wide) */
} cyl_expf8_parts;

CYL_INLINE cyl_expf8_parts cyl_expf_v8_reduce(cyl_vf8 x, const int wide)
{
    const cyl_vf8 lowest = {-104.0f, -104.0f, -104.0f, -104.0f,
                            -104.0f, -104.0f, -104.0f, -104.0f};
    cyl_vf8 xc = wide ? cyl_vf8_pick(x < lowest, lowest, x) : x;
    cyl_vf8 t, kf;
    cyl_expf8_parts q;
    CYL_EXPF_REDUCE(xc, t, kf, q.r);
    cyl_vi8 k = (cyl_vi8)t - (int32_t)cyl_f32_to_bits(CYL_EXPF_SHIFTER);
    cyl_vi8 k1 = wide ? k >> 1 : k;
    q.s1 = (cyl_vf8)((k1 + 127) << 23);
    q.s2 = (cyl_vf8)((k - k1 + 127) << 23);
    return q;
}

CYL_INLINE cyl_vf8 cyl_expf_v8_finish(cyl_expf8_parts q, const int wide)
{
    cyl_vf8 r2 = q.r * q.r, r4 = r2 * r2;
    cyl_vf8 p = CYL_EXPF_POLY(q.r, r2, r4);
    /* A NaN x stays NaN through the arithmetic (p is NaN, the scale factors are finite or
     * inf), with its payload: cyl_expf's final select is not needed here. */
    return wide ? (p * q.s1) * q.s2 : p * q.s1;
}
/* wide = 0 is for arguments known to be >= -87 (or NaN): k >= -126, so 2^k is a normal
 * float and one multiplication by it rounds p 2^k exactly as the two by 2^k1 and 2^k2 do
 * (each of those is exact but the last, which rounds the same product); no clamp either.
 * The callers test the row's minimum first: about a sixth fewer operations. */
#define CYL_HAVE_V8 1
#else
#define CYL_HAVE_V8 0
#endif

/* log1p(u) for u in [0, 1] (the softplus tail log1p(e^-|x|)), float32, within 2 ulp
 * (1.93 measured; tests/test_vecmath.py): log1p(u) = 2 atanh(s), s = u / (2 + u) <= 1/3,
 * by its odd series to s^13 (truncation below 2^-26 relative at s = 1/3). One division:
 * the form through log(1 + u) and Goldberg's correction took two. NaN propagates; other
 * inputs are outside its domain. */
CYL_INLINE float cyl_log1pf_unit(float u)
{
    float s = u / (2.0f + u), z = s * s;
    float q = 2.0f / 13.0f;
    q = q * z + 2.0f / 11.0f;
    q = q * z + 2.0f / 9.0f;
    q = q * z + 2.0f / 7.0f;
    q = q * z + 2.0f / 5.0f;
    q = q * z + 2.0f / 3.0f;
    return 2.0f * s + s * z * q;
}

/* log1p(-p) = log(1 - p) in float32 for p in [0, 1] (binary cross-entropy's second log):
 * v = 1 - p rounded, then log(v) + c / v, Goldberg's correction, with c = (1 - v) - p
 * exact (1 - v and p are floats within a factor 2 of each other where p < 1/2) and 0
 * where p >= 1/2 (v exact there). |c| <= 2^-25, so 1 / v = 1 / (1 - p) may be taken as
 * 1 + p + p^2 (relative error p^3 / (1 - p)): the correction's error stays below
 * 2^-26 p of the result, no division. Within 2 ulp; -inf at p = 1. */
CYL_INLINE float cyl_log1mf(float p)
{
    float v = 1.0f - p;
    float c = (1.0f - v) - p;
    return cyl_logf(v) + c * (1.0f + p * (1.0f + p));
}

/* log1p(u) in float32 for u in [0, 1/e] (log-cosh's tail, u = e^-2a at a >= 1/2): within
 * 2 ulp there (tests/test_vecmath.py); outside it, a finite value of no meaning (for a
 * select that discards it), NaN for NaN. log1p(u) = 2 atanh(s), s = u / (2 + u) <= 0.16,
 * by its odd series to s^9 (truncation < 2^-30 relative): cyl_log1pf_unit's form with
 * a shorter series for the shorter domain. */
CYL_INLINE float cyl_log1pf_small(float u)
{
    float s = u / (2.0f + u), z = s * s;
    float q = ((z * (2.0f / 9.0f) + 2.0f / 7.0f) * z + 2.0f / 5.0f) * z + 2.0f / 3.0f;
    return 2.0f * s + s * z * q;
}

#endif /* CYLOSS_VECMATH_H */
