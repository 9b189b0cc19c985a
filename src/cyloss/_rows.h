/* Row operations of the categorical and sparse cross-entropies, over one row of C classes
 * read through a byte stride (so any class axis is read in place).
 *
 * Each operation is written once and instantiated twice by CYL_STRIDED: for the
 * contiguous stride (a compile-time constant, so the loop vectorises) and for any other
 * stride. Both run the same arithmetic in the same order, with the fixed 8-lane sums of
 * _fastpaths.h, so a row gives the same bits whatever its layout. The functions are
 * compiled for the baseline and for x86-64-v3 where run-time dispatch exists.
 *
 * Log-softmax: with m the row maximum and t the number of classes equal to it,
 *   lognorm = log1p((t - 1) + sum_{x_k != m} e^(x_k - m)),
 *   -log softmax(x)_k = (m - x_k) + lognorm, with m - x_k taken as 0 where x_k == m.
 * The maximum's own term (exactly 1) stays out of the sum, so tiny losses of confident,
 * correct rows keep their last bit instead of 1e-16 absolute; classes at the maximum never
 * compute m - x_k, so t infinite logits give the limit log t instead of inf - inf. A row
 * with no finite maximum (all -inf) stays NaN, as do rows holding a NaN.
 */
#ifndef CYLOSS_ROWS_H
#define CYLOSS_ROWS_H

#include <string.h>
#include "_fastpaths.h"

#define CYL_AT(T, x, k, sb) (*(const T *)((const char *)(x) + (ptrdiff_t)(k) * (sb)))

/* e^(v - m) for an element v of a row with maximum m. float32 rows compute it in float32
 * (cyl_expf, eight lanes per AVX2 vector; the SPEC allows per-element float32 arithmetic,
 * and the sum stays in double): v - m <= 0, and the result's relative error (~1e-7) is
 * the input's own precision. float64 rows use cyl_exp. */
#define CYL_ROW_EXP_f64(v, m) cyl_exp((double)(v) - (m))

/* v, or +0.0 where cond holds: a bit mask rather than a ternary, which GCC leaves as a
 * branch (and the loop scalar) when the condition is a floating-point equality. */
CYL_INLINE double cyl_unless(int cond, double v)
{
    return cyl_pick(cond, 0.0, v);
}
#define CYL_ROW_EXP_f32(v, m) ((double)cyl_expf((float)(v) - (float)(m)))

/* The body sees the stride as S_ (and YS_ for a second array). */
#define CYL_STRIDED(T, sb, ...)                                                          \
    do {                                                                                 \
        if ((sb) == (ptrdiff_t)sizeof(T)) {                                              \
            const ptrdiff_t S_ = (ptrdiff_t)sizeof(T);                                   \
            __VA_ARGS__                                                                  \
        } else {                                                                         \
            const ptrdiff_t S_ = (sb);                                                   \
            __VA_ARGS__                                                                  \
        }                                                                                \
    } while (0)

#define CYL_STRIDED2(T, sb, ysb, ...)                                                    \
    do {                                                                                 \
        if ((sb) == (ptrdiff_t)sizeof(T) && (ysb) == (ptrdiff_t)sizeof(T)) {             \
            const ptrdiff_t S_ = (ptrdiff_t)sizeof(T), YS_ = (ptrdiff_t)sizeof(T);       \
            __VA_ARGS__                                                                  \
        } else {                                                                         \
            const ptrdiff_t S_ = (sb), YS_ = (ysb);                                      \
            __VA_ARGS__                                                                  \
        }                                                                                \
    } while (0)

#define CYL_LANES_INIT(acc) double acc[CYL_LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}

/* The largest (OP >, from -inf) or smallest (OP <, from +inf) of C values read through
 * byte stride sb; NaN is never selected (the comparison is false). The result does not
 * depend on the order, so contiguous rows take it in their own precision (exact) with
 * GCC/clang vector types: four 32-byte accumulators of the select a OP b ? a : b, which
 * GCC leaves a branch in scalar form. */
#if defined(__GNUC__)
#define CYL_DEFINE_ROW_EXTREME(NAME, SUFFIX, T, IT, OP, START)                           \
CYL_INLINE double NAME##_##SUFFIX(const T *x, ptrdiff_t sb, ptrdiff_t C)                 \
{                                                                                        \
    typedef T vt_ __attribute__((vector_size(32)));                                      \
    typedef IT vi_ __attribute__((vector_size(32)));                                     \
    enum { W_ = 32 / sizeof(T) };                                                        \
    ptrdiff_t k = 0;                                                                     \
    double m = (START);                                                                  \
    if (sb == (ptrdiff_t)sizeof(T) && C >= 4 * W_) {                                     \
        vt_ a[4];                                                                        \
        for (int r = 0; r < 4; r++)                                                      \
            for (int j = 0; j < W_; j++)                                                 \
                a[r][j] = (T)(START);                                                    \
        for (; k + 4 * W_ <= C; k += 4 * W_)                                             \
            for (int r = 0; r < 4; r++) {                                                \
                vt_ v;                                                                   \
                memcpy(&v, x + k + r * W_, sizeof v);                                    \
                vi_ take = v OP a[r];                                                    \
                a[r] = (vt_)(((vi_)v & take) | ((vi_)a[r] & ~take));                     \
            }                                                                            \
        for (int r = 0; r < 4; r++)                                                      \
            for (int j = 0; j < W_; j++)                                                 \
                m = a[r][j] OP m ? a[r][j] : m;                                          \
    }                                                                                    \
    for (; k < C; k++) {                                                                 \
        double v = CYL_AT(T, x, k, sb);                                                  \
        m = v OP m ? v : m;                                                              \
    }                                                                                    \
    return m;                                                                            \
}
#else
#define CYL_DEFINE_ROW_EXTREME(NAME, SUFFIX, T, IT, OP, START)                           \
CYL_INLINE double NAME##_##SUFFIX(const T *x, ptrdiff_t sb, ptrdiff_t C)                 \
{                                                                                        \
    double m = (START);                                                                  \
    for (ptrdiff_t k = 0; k < C; k++) {                                                  \
        double v = CYL_AT(T, x, k, sb);                                                  \
        m = v OP m ? v : m;                                                              \
    }                                                                                    \
    return m;                                                                            \
}
#endif
CYL_DEFINE_ROW_EXTREME(cyl_row_max, f32, float, int32_t, >, -INFINITY)
CYL_DEFINE_ROW_EXTREME(cyl_row_max, f64, double, int64_t, >, -INFINITY)
CYL_DEFINE_ROW_EXTREME(cyl_row_min, f32, float, int32_t, <, INFINITY)
CYL_DEFINE_ROW_EXTREME(cyl_row_min, f64, double, int64_t, <, INFINITY)

/* Software prefetch distance of the streaming loops, in bytes: the hardware prefetchers
 * of the machines measured (AMD EPYC, 4 KiB pages) do not follow a stream across a page
 * boundary, and a probability row total read 40 MB at 60% of the bandwidth without it.
 * A prefetch past the end of an array is harmless (it never faults). */
#define CYL_PREFETCH_AHEAD 4096

/* Prefetch the `bytes` bytes at p + CYL_PREFETCH_AHEAD, a cache line at a time. */
CYL_INLINE void cyl_prefetch_ahead(const void *p, ptrdiff_t bytes)
{
    const char *c = (const char *)p + CYL_PREFETCH_AHEAD;
    for (ptrdiff_t b = 0; b < bytes; b += 64)
        __builtin_prefetch(c + b, 0, 2);
}

#if CYL_HAVE_V8
/* The largest and (in *least) the smallest of a contiguous float32 row in one pass, as
 * cyl_row_max_f32 and cyl_row_min_f32 take them (NaN never selected). */
CYL_INLINE double cyl_row_maxmin_v8(const float *x, ptrdiff_t C, double *least)
{
    const cyl_vf8 ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                          -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    cyl_vf8 hi[4] = {ninf, ninf, ninf, ninf}, lo[4] = {-ninf, -ninf, -ninf, -ninf};
    ptrdiff_t k = 0;
    for (; k + 32 <= C; k += 32)
        for (int q = 0; q < 4; q++) {
            cyl_vf8 v;
            memcpy(&v, x + k + 8 * q, sizeof v);
            hi[q] = cyl_vf8_pick(v > hi[q], v, hi[q]);
            lo[q] = cyl_vf8_pick(v < lo[q], v, lo[q]);
        }
    float m = -INFINITY, n = INFINITY;
    for (int q = 0; q < 4; q++)
        for (int j = 0; j < 8; j++) {
            m = hi[q][j] > m ? hi[q][j] : m;
            n = lo[q][j] < n ? lo[q][j] : n;
        }
    for (; k < C; k++) {
        m = x[k] > m ? x[k] : m;
        n = x[k] < n ? x[k] : n;
    }
    *least = n;
    return m;
}
#define CYL_ROW_MAX_f32(x, sb, C, least)                                                 \
    ((sb) == (ptrdiff_t)sizeof(float) ? cyl_row_maxmin_v8((x), (C), (least))             \
                                      : cyl_row_max_f32((x), (sb), (C)))
#else
#define CYL_ROW_MAX_f32(x, sb, C, least) cyl_row_max_f32((x), (sb), (C))
#endif
#define CYL_ROW_MAX_f64(x, sb, C, least) cyl_row_max_f64((x), (sb), (C))

#if CYL_HAVE_V8
/* One vector step of the exponential sums, in the two halves of cyl_expf_v8_*: e^(v - mv)
 * for the lanes below their row maximum mv, +0.0 at it (the mask applied before the
 * conversion to double, which keeps the bits), the ties counted in *cnt (int32 lanes,
 * exact), the result added to the double halves *lo and *hi. `wide` as in
 * cyl_expf_v8_reduce. Not wide, the mask clears the scale factor instead, in the first
 * half: there the maximum is finite (the callers' range test fails for an infinite one),
 * so a tie's p = e^0 = 1 and 1 * +0.0 is the +0.0 of the mask. Wide, v = mv = +inf gives
 * p = NaN, and the mask must come last. */
typedef struct {
    cyl_expf8_parts q;
    cyl_vi8 eq;
} cyl_expsum8_parts;

CYL_INLINE cyl_expsum8_parts cyl_expsum8_begin(cyl_vf8 v, cyl_vf8 mv, const int wide,
                                               cyl_vi8 *cnt)
{
    cyl_expsum8_parts h;
    h.eq = v == mv;
    *cnt -= h.eq;
    h.q = cyl_expf_v8_reduce(v - mv, wide);
    if (!wide)
        h.q.s1 = (cyl_vf8)(~h.eq & (cyl_vi8)h.q.s1);
    return h;
}

CYL_INLINE cyl_vf8 cyl_expsum8_value(cyl_expsum8_parts h, const int wide)
{
    cyl_vf8 e = cyl_expf_v8_finish(h.q, wide);
    if (wide)
        e = (cyl_vf8)(~h.eq & (cyl_vi8)e);
    return e;
}

CYL_INLINE void cyl_expsum8_end(cyl_expsum8_parts h, const int wide, cyl_vd4 *lo,
                                cyl_vd4 *hi, float *store)
{
    cyl_vf8 e = cyl_expsum8_value(h, wide);
    if (store) {    /* the gradient's e^(x - m), 1 at the maximum (see cyl_row_logits_keep_f32) */
        const cyl_vf8 one = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
        cyl_vf8 kept = cyl_vf8_pick(h.eq, one, e);
        memcpy(store, &kept, sizeof kept);
    }
    cyl_vd4 el, eh;
    CYL_VF8_WIDEN(e, el, eh);
    *lo += el;
    *hi += eh;
}

/* The steps of CYL_EXPSUM8_GROUP vectors run half by half, each half's loop unrolled (GCC
 * keeps the loops, and the parts in memory, otherwise). */
#define CYL_EXPSUM8_GROUP 4
#define CYL_UNROLL_GROUP _Pragma("GCC unroll 4")

/* The exponential sum steps over x[0 .. C - C % 8), a group of vectors at a time, then
 * one at a time, prefetching pf_x and pf_n (if not NULL) at the same offsets over their
 * first pf_end items; returns the index where the tail starts. Each e^(x_k - m) also goes
 * to e_out[k] when e_out is not NULL (a constant NULL in the loss's own calls, where the
 * store is compiled away). */
CYL_INLINE ptrdiff_t cyl_expsum8_run(const float *x, ptrdiff_t C, cyl_vf8 mv, const int wide,
                                     const char *pf_x, const char *pf_n, ptrdiff_t pf_end,
                                     cyl_vi8 *cnt, cyl_vd4 *lo, cyl_vd4 *hi, float *e_out)
{
    enum { G = CYL_EXPSUM8_GROUP };
    ptrdiff_t k = 0;
    for (; k + 8 * G <= C; k += 8 * G) {
        if (k < pf_end)
            for (int j = 0; j < G; j += 2) {      /* a 64-byte line per two vectors */
                __builtin_prefetch(pf_x + 4 * k + 32 * j, 0, 2);
                if (pf_n)
                    __builtin_prefetch(pf_n + 4 * k + 32 * j, 0, 2);
            }
        cyl_expsum8_parts h[G];
        CYL_UNROLL_GROUP
        for (int j = 0; j < G; j++) {
            cyl_vf8 v;
            memcpy(&v, x + k + 8 * j, sizeof v);
            h[j] = cyl_expsum8_begin(v, mv, wide, cnt);
        }
        CYL_UNROLL_GROUP
        for (int j = 0; j < G; j++)
            cyl_expsum8_end(h[j], wide, lo, hi, e_out ? e_out + k + 8 * j : NULL);
    }
    for (; k + 8 <= C; k += 8) {
        cyl_vf8 v;
        memcpy(&v, x + k, sizeof v);
        cyl_expsum8_end(cyl_expsum8_begin(v, mv, wide, cnt), wide, lo, hi,
                        e_out ? e_out + k : NULL);
    }
    return k;
}

/* The exponential sum of cyl_row_logits_f32 over a contiguous row, eight classes per
 * vector: *total = sum_{x_k != m} e^(x_k - m) and *ties = #{k : x_k == m}, with element k
 * of the main part in lane k % 8 and the tail in lane 0, combined by cyl_lanes_total: the
 * bits of the scalar loop. The ties are counted in int32 lanes (exact, as the double
 * lanes were; C < 2^31), and the mask applied before the conversion to double. */
CYL_INLINE void cyl_row_expsum_v8(const float *x, ptrdiff_t C, double m, double least,
                                  double *total, double *ties, const void *next,
                                  float *e_out)
{
    /* This pass is bound by the exponentials, and the passes after it by memory: it
     * prefetches into L2 what they read first, `next` (the caller's next row: the targets
     * of this row for the categorical loss) and the following row of x (the next call's
     * maximum pass; a prefetch past the array's end is harmless). Only for rows that leave
     * room in L2 for three of them. */
    const char *pf_x = (const char *)(x + C), *pf_n = (const char *)next;
    const ptrdiff_t pf_end = C <= 32768 ? C : 0;
    const float mf = (float)m;
    const cyl_vf8 mv = {mf, mf, mf, mf, mf, mf, mf, mf};
    cyl_vd4 lo = {0.0, 0.0, 0.0, 0.0}, hi = lo;
    cyl_vi8 cnt = {0, 0, 0, 0, 0, 0, 0, 0};
    /* Every argument x_k - m >= -87 (the common case): the cheaper exponential. Each call
     * below is inlined with `wide` a constant. */
    ptrdiff_t k = least - m >= -87.0
        ? cyl_expsum8_run(x, C, mv, 0, pf_x, pf_n, pf_end, &cnt, &lo, &hi, e_out)
        : cyl_expsum8_run(x, C, mv, 1, pf_x, pf_n, pf_end, &cnt, &lo, &hi, e_out);
    double acc[CYL_LANES];
    memcpy(acc, &lo, sizeof lo);
    memcpy(acc + 4, &hi, sizeof hi);
    int64_t count = 0;
    for (int j = 0; j < 8; j++)
        count += cnt[j];
    for (; k < C; k++) {
        double v = x[k];
        acc[0] += cyl_unless(v == m, CYL_ROW_EXP_f32(v, m));
        count += v == m;
        if (e_out)
            e_out[k] = v == m ? 1.0f : cyl_expf((float)v - (float)m);
    }
    *total = cyl_lanes_total(acc);
    *ties = (double)count;
}
/* Four lanes of cyl_row_soft_xent's term: cyl_term(y keep + spread, nls), with
 * nls = cyl_unless(v == m, m - v) + lognorm; the same double operations, so the same
 * bits. */
CYL_INLINE cyl_vd4 cyl_xent_term4(cyl_vd4 y, cyl_vd4 v, cyl_vd4 m, cyl_vd4 lognorm,
                                  double keep, double spread)
{
    const cyl_vd4 zero4 = {0.0, 0.0, 0.0, 0.0};
    cyl_vd4 nls = (cyl_vd4)(~(v == m) & (cyl_vi4)(m - v)) + lognorm;
    cyl_vd4 q = y * keep + spread;
    return (cyl_vd4)(~((q == zero4) & (nls == nls)) & (cyl_vi4)(q * nls));
}

/* All-ones lanes where a target lies outside [0, 1] (NaN passes, as in the scalar check). */
CYL_INLINE cyl_vi8 cyl_outside_unit8(cyl_vf8 y)
{
    const cyl_vf8 zero8 = {0, 0, 0, 0, 0, 0, 0, 0}, one8 = {1, 1, 1, 1, 1, 1, 1, 1};
    return (y < zero8) | (y > one8);
}

/* cyl_lanes_total of eight lanes held as acc[0..7][h], for the four rows of half h. */
CYL_INLINE cyl_vd4 cyl_lanes_total8x4(const cyl_vd4 (*acc)[2], int h)
{
    return ((acc[0][h] + acc[1][h]) + (acc[2][h] + acc[3][h]))
         + ((acc[4][h] + acc[5][h]) + (acc[6][h] + acc[7][h]));
}

/* cyl_row_soft_xent_f32 over contiguous rows, the target check fused into the one pass:
 * the same double operations lane by lane as the scalar loop, so the same bits. */
CYL_INLINE double cyl_row_soft_xent_v8(const float *y, const float *x, ptrdiff_t C,
                                       double keep, double spread, double m,
                                       double lognorm, int *bad)
{
    const cyl_vd4 m4 = {m, m, m, m}, ln4 = {lognorm, lognorm, lognorm, lognorm};
    cyl_vd4 lo = {0.0, 0.0, 0.0, 0.0}, hi = lo;
    cyl_vi8 out = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t k = 0;
    for (; k + 8 <= C; k += 8) {
        cyl_vf8 yv, v;
        memcpy(&yv, y + k, sizeof yv);
        memcpy(&v, x + k, sizeof v);
        out |= cyl_outside_unit8(yv);
        cyl_vd4 yl, yh, vl, vh;
        CYL_VF8_WIDEN(yv, yl, yh);
        CYL_VF8_WIDEN(v, vl, vh);
        lo += cyl_xent_term4(yl, vl, m4, ln4, keep, spread);
        hi += cyl_xent_term4(yh, vh, m4, ln4, keep, spread);
    }
    double acc[CYL_LANES];
    memcpy(acc, &lo, sizeof lo);
    memcpy(acc + 4, &hi, sizeof hi);
    int flag = 0;
    for (int j = 0; j < 8; j++)
        flag |= out[j];
    for (; k < C; k++) {
        double yv = y[k], v = x[k];
        double nls = cyl_unless(v == m, m - v) + lognorm;
        flag |= (yv < 0.0) | (yv > 1.0);
        acc[0] += cyl_term(yv * keep + spread, nls);
    }
    *bad = flag != 0;
    return cyl_lanes_total(acc);
}
#define CYL_ROW_SOFT_XENT_FAST_f32(y, ysb, x, sb, C, keep, spread, m, lognorm, bad, total) \
    ((sb) == (ptrdiff_t)sizeof(float) && (ysb) == (ptrdiff_t)sizeof(float)                \
     ? ((total) = cyl_row_soft_xent_v8((y), (x), (C), (keep), (spread), (m), (lognorm),   \
                                       (bad)), 1) : 0)
#define CYL_ROW_EXPSUM_FAST_f32(x, sb, C, m, least, total, ties, next)                   \
    ((sb) == (ptrdiff_t)sizeof(float) && (C) <= INT32_MAX                                \
     ? (cyl_row_expsum_v8((x), (C), (m), (least), (total), (ties), (next), NULL), 1) : 0)
#else
#define CYL_ROW_EXPSUM_FAST_f32(x, sb, C, m, least, total, ties, next) 0
#define CYL_ROW_SOFT_XENT_FAST_f32(y, ysb, x, sb, C, keep, spread, m, lognorm, bad, total) 0
#endif
#define CYL_ROW_SOFT_XENT_FAST_f64(y, ysb, x, sb, C, keep, spread, m, lognorm, bad, total) 0
#define CYL_ROW_EXPSUM_FAST_f64(x, sb, C, m, least, total, ties, next) 0

/* Run the statements for K = 0 .. C-1 with lane L: K % W in the main part
 * (K < C - C % W), 0 in the tail (the pattern of CYL_LANE_SUM in _fastpaths.h), as an
 * inner loop the compiler vectorises. CYL_FOR_LANES has the eight lanes of every other
 * sum (cyl_lanes_total), CYL_FOR_LANES16 sixteen (cyl_lanes16_total). */
#define CYL_FOR_LANES_W(W, C, ...)                                                       \
    do {                                                                                 \
        ptrdiff_t b_ = 0;                                                                \
        for (; b_ + (W) <= (C); b_ += (W))                                               \
            for (int L = 0; L < (W); L++) {                                              \
                const ptrdiff_t K = b_ + L;                                              \
                __VA_ARGS__                                                              \
            }                                                                            \
        for (; b_ < (C); b_++) {                                                         \
            const int L = 0;                                                             \
            const ptrdiff_t K = b_;                                                      \
            __VA_ARGS__                                                                  \
        }                                                                                \
    } while (0)
#define CYL_FOR_LANES(C, ...) CYL_FOR_LANES_W(CYL_LANES, C, __VA_ARGS__)
#define CYL_FOR_LANES16(C, ...) CYL_FOR_LANES_W(16, C, __VA_ARGS__)

CYL_INLINE double cyl_lanes16_total(const double *acc)
{
    return cyl_lanes_total(acc) + cyl_lanes_total(acc + 8);
}

#if CYL_HAVE_V8
/* cyl_row_total_f32 over a contiguous row: the sixteen lanes as four vectors of doubles,
 * the negative check fused into the same pass. */
CYL_INLINE double cyl_row_total_v8(const float *x, ptrdiff_t C, int *negative)
{
    const cyl_vd4 zero4 = {0.0, 0.0, 0.0, 0.0};
    const cyl_vf8 zero8 = {0, 0, 0, 0, 0, 0, 0, 0};
    cyl_vd4 a0 = zero4, a1 = zero4, a2 = zero4, a3 = zero4;
    /* Lanes where some value is below 0 (NaN is not): an OR of masks, not a minimum, so
     * that the row's end waits on no chain of sixteen selects. The next row's loop
     * cannot start before that end: this loop alone fills the reorder buffer. */
    cyl_vi8 below = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t k = 0;
    for (; k + 16 <= C; k += 16) {
        __builtin_prefetch(x + k + CYL_PREFETCH_AHEAD / sizeof(float), 0, 2);
        cyl_vf8 v, u;
        memcpy(&v, x + k, sizeof v);
        memcpy(&u, x + k + 8, sizeof u);
        below |= (v < zero8) | (u < zero8);
        cyl_vd4 d0, d1, d2, d3;
        CYL_VF8_WIDEN(v, d0, d1);
        CYL_VF8_WIDEN(u, d2, d3);
        a0 += d0;
        a1 += d1;
        a2 += d2;
        a3 += d3;
    }
    double acc[16];
    memcpy(acc, &a0, sizeof a0);
    memcpy(acc + 4, &a1, sizeof a1);
    memcpy(acc + 8, &a2, sizeof a2);
    memcpy(acc + 12, &a3, sizeof a3);
    int flag = 0;
    for (int j = 0; j < 8; j++)
        flag |= below[j];
    for (; k < C; k++) {
        acc[0] += (double)x[k];
        flag |= x[k] < 0.0f;
    }
    *negative = flag != 0;
    return cyl_lanes16_total(acc);
}
#define CYL_ROW_TOTAL_FAST_f32(x, sb, C, negative, total)                                \
    ((sb) == (ptrdiff_t)sizeof(float) ? ((total) = cyl_row_total_v8((x), (C), (negative)), 1) : 0)
#else
#define CYL_ROW_TOTAL_FAST_f32(x, sb, C, negative, total) 0
#endif
#define CYL_ROW_TOTAL_FAST_f64(x, sb, C, negative, total) 0

#define CYL_DEFINE_ROWS(SUFFIX, T)                                                       \
                                                                                         \
/* lognorm of a logit row (see above); *m_out = its maximum. next: a row the caller reads \
 * next (prefetched where that pays), or NULL. */                                        \
CYL_MULTI(double, cyl_row_logits_##SUFFIX, (                                             \
    const T *x, ptrdiff_t sb, ptrdiff_t C, double *m_out, const void *next),             \
        (x, sb, C, m_out, next))                                                         \
{                                                                                        \
    double m = -INFINITY, total = 0.0, ties = 0.0;                                       \
    (void)next;                                                                          \
    double least = -INFINITY;                                                            \
    (void)least;                                                                         \
    m = CYL_ROW_MAX_##SUFFIX(x, sb, C, &least);                                          \
    if (!CYL_ROW_EXPSUM_FAST_##SUFFIX(x, sb, C, m, least, &total, &ties, next))          \
    CYL_STRIDED(T, sb,                                                                   \
        CYL_LANES_INIT(acc);                                                             \
        CYL_LANES_INIT(cnt);                                                             \
        CYL_FOR_LANES(C, double v = CYL_AT(T, x, K, S_);                                 \
                         double e = CYL_ROW_EXP_##SUFFIX(v, m);                          \
                         acc[L] += cyl_unless(v == m, e);                                \
                         cnt[L] += (double)(v == m););                                   \
        total = cyl_lanes_total(acc);                                                    \
        ties = cyl_lanes_total(cnt);                                                     \
    );                                                                                   \
    *m_out = m;                                                                          \
    /* ties >= 1 whenever m is a finite or +inf maximum; exact small integers. */        \
    return m == -INFINITY ? NAN : cyl_log1p_nonneg((ties - 1.0) + total);                \
}                                                                                        \
                                                                                         \
/* sum_k cyl_term(q_k, -log softmax(x)_k), q = y (1 - s) + s / C given as keep, spread;  \
 * *bad = 1 when a target lies outside [0, 1]. */                                        \
CYL_MULTI(double, cyl_row_soft_xent_##SUFFIX, (                                          \
    const T *y, ptrdiff_t ysb, const T *x, ptrdiff_t sb, ptrdiff_t C, double keep,       \
    double spread, double m, double lognorm, int *bad),                                  \
        (y, ysb, x, sb, C, keep, spread, m, lognorm, bad))                               \
{                                                                                        \
    double total = 0.0;                                                                  \
    if (CYL_ROW_SOFT_XENT_FAST_##SUFFIX(y, ysb, x, sb, C, keep, spread, m, lognorm, bad, \
                                        total))                                          \
        return total;                                                                    \
    CYL_STRIDED2(T, sb, ysb,                                                             \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C,                                                                 \
            double yv = CYL_AT(T, y, K, YS_);                                            \
            double v = CYL_AT(T, x, K, S_);                                              \
            double nls = cyl_unless(v == m, m - v) + lognorm;                            \
            acc[L] += cyl_term(yv * keep + spread, nls););                               \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    /* Checked apart: an OR of comparisons in the loop keeps GCC from vectorising it. */  \
    *bad = cyl_row_min_##SUFFIX(y, ysb, C) < 0.0 || cyl_row_max_##SUFFIX(y, ysb, C) > 1.0; \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* sum_k (m - x_k) over classes below the maximum: C (lse - mean_k x_k) - C lognorm. */  \
CYL_MULTI(double, cyl_row_gap_##SUFFIX, (                                                \
    const T *x, ptrdiff_t sb, ptrdiff_t C, double m), (x, sb, C, m))                     \
{                                                                                        \
    double total = 0.0;                                                                  \
    CYL_STRIDED(T, sb,                                                                   \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C, double v = CYL_AT(T, x, K, S_);                                 \
                         acc[L] += cyl_unless(v == m, m - v););                          \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* sum_k cyl_term(cw_k, -log softmax(x)_k), cw contiguous. */                            \
CYL_MULTI(double, cyl_row_weighted_nls_##SUFFIX, (                                       \
    const T *x, ptrdiff_t sb, ptrdiff_t C, const double *cw, double m, double lognorm),  \
        (x, sb, C, cw, m, lognorm))                                                      \
{                                                                                        \
    double total = 0.0;                                                                  \
    CYL_STRIDED(T, sb,                                                                   \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C,                                                                 \
            double v = CYL_AT(T, x, K, S_);                                              \
            double nls = cyl_unless(v == m, m - v) + lognorm;                            \
            acc[L] += cyl_term(cw[K], nls););                                            \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* Sum of a probability row; *negative = 1 when an entry is negative. Sixteen lanes (the  \
 * pattern of CYL_FOR_LANES16): a sum this cheap is bound by the latency of its adds, and \
 * eight lanes are only two vectors of doubles in flight. */                             \
CYL_MULTI(double, cyl_row_total_##SUFFIX, (                                              \
    const T *x, ptrdiff_t sb, ptrdiff_t C, int *negative), (x, sb, C, negative))         \
{                                                                                        \
    double total = 0.0;                                                                  \
    if (CYL_ROW_TOTAL_FAST_##SUFFIX(x, sb, C, negative, total))                          \
        return total;                                                                    \
    CYL_STRIDED(T, sb,                                                                   \
        double acc[16] = {0.0};                                                          \
        CYL_FOR_LANES16(C, acc[L] += (double)CYL_AT(T, x, K, S_););                      \
        total = cyl_lanes16_total(acc);                                                  \
    );                                                                                   \
    *negative = cyl_row_min_##SUFFIX(x, sb, C) < 0.0;                                    \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* sum_k cyl_term(q_k, -log clip(p_k / total)); *bad = 1 for a target outside [0, 1]. */ \
CYL_MULTI(double, cyl_row_prob_soft_xent_##SUFFIX, (                                     \
    const T *y, ptrdiff_t ysb, const T *x, ptrdiff_t sb, ptrdiff_t C, double total,      \
    double keep, double spread, double lo, double hi, int *bad),                         \
        (y, ysb, x, sb, C, total, keep, spread, lo, hi, bad))                            \
{                                                                                        \
    double sum = 0.0;                                                                    \
    int flag = 0;                                                                        \
    CYL_STRIDED2(T, sb, ysb,                                                             \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C,                                                                 \
            double yv = CYL_AT(T, y, K, YS_);                                            \
            double nl = -cyl_log(cyl_clip((double)CYL_AT(T, x, K, S_) / total, lo, hi)); \
            flag |= (yv < 0.0) | (yv > 1.0);                                             \
            acc[L] += cyl_term(yv * keep + spread, nl););                                \
        sum = cyl_lanes_total(acc);                                                      \
    );                                                                                   \
    *bad = flag;                                                                         \
    return sum;                                                                          \
}                                                                                        \
                                                                                         \
/* sum_k cyl_term(cw_k, -log clip(p_k / total)), cw_k = 1 when cw is NULL. */            \
CYL_MULTI(double, cyl_row_prob_nll_sum_##SUFFIX, (                                       \
    const T *x, ptrdiff_t sb, ptrdiff_t C, const double *cw, double total, double lo,    \
    double hi), (x, sb, C, cw, total, lo, hi))                                           \
{                                                                                        \
    double sum = 0.0;                                                                    \
    CYL_STRIDED(T, sb,                                                                   \
        CYL_LANES_INIT(acc);                                                             \
        if (cw) {                                                                        \
            CYL_FOR_LANES(C,                                                             \
                double nl = -cyl_log(cyl_clip((double)CYL_AT(T, x, K, S_) / total, lo, hi)); \
                acc[L] += cyl_term(cw[K], nl););                                         \
        } else {                                                                         \
            CYL_FOR_LANES(C,                                                             \
                double nl = -cyl_log(cyl_clip((double)CYL_AT(T, x, K, S_) / total, lo, hi)); \
                acc[L] += nl;);                                                          \
        }                                                                                \
        sum = cyl_lanes_total(acc);                                                      \
    );                                                                                   \
    return sum;                                                                          \
}

/* Row gradient of w sum_k cw_k q_k (-log softmax(x)_k):
 *   g_k = w (p_k Q - cw_k q_k),   h_k = w Q p_k (1 - p_k)   (h may be NULL),
 * q_k = y_k keep + spread for a target row y, or spread + keep [k == label] when y is
 * NULL; cw NULL means all 1. g and h are written through the byte stride gsb.
 * p_k is CYL_ROW_P: for float64 rows exp(-((m - x_k) + lognorm)) in double; for float32
 * rows e^(x_k - m) in float32 (cyl_expf, the exponential the loss itself takes; 1 at the
 * maximum) times e^-lognorm, computed once per row in double: the double exponential per
 * element cost three times the loss. Off the maximum p_k <= 1/2, so the float32
 * exponential's 2 ulp stay 2 ulp of g_k; at the maximum e = 1 is exact and p_k as
 * accurate as in double. 1 - p_k = -expm1(log p_k) (exact near p_k = 1).
 * The contiguous case (every stride the item size) is a separate, vectorised instance of
 * the same arithmetic. */
#define CYL_ROW_P_f64(v, m, lognorm, inv) cyl_exp(-(cyl_unless((v) == (m), (m) - (v)) + (lognorm)))
#define CYL_ROW_P_f32(v, m, lognorm, inv)                                                \
    ((double)((v) == (m) ? 1.0f : cyl_expf((float)(v) - (float)(m))) * (inv))

#define CYL_ROW_GRAD_LOOP(SUFFIX, T, C, x, m, lognorm, QEXPR, TARGET)                   \
    for (ptrdiff_t k = 0; k < (C); k++) {                                                \
        double v = (double)(x)[k];                                                       \
        double pk = CYL_ROW_P_##SUFFIX(v, m, lognorm, inv);                              \
        double q = (QEXPR);                                                              \
        g[k] = (T)(w * (pk * qsum - (TARGET)));                                          \
    }

#define CYL_DEFINE_ROW_GRAD(SUFFIX, T)                                                   \
CYL_MULTI_VOID(cyl_row_logit_grad_##SUFFIX, (                                            \
    const T *x, ptrdiff_t sb, const T *y, ptrdiff_t ysb, ptrdiff_t C, int64_t label,    \
    const double *cw, double keep, double spread, double qsum, double m, double lognorm, \
    double w, T *g, T *h, ptrdiff_t gsb),                                                \
        (x, sb, y, ysb, C, label, cw, keep, spread, qsum, m, lognorm, w, g, h, gsb))     \
{                                                                                        \
    const ptrdiff_t it = (ptrdiff_t)sizeof(T);                                           \
    const double inv = cyl_exp(-lognorm);                                                \
    (void)inv;                                                                           \
    if (sb == it && gsb == it && (y == NULL || ysb == it) && h == NULL) {                \
        /* One loop per case: a NULL pointer tested inside the loop becomes a masked load \
         * from it, which costs a fault-suppression assist per vector. */                \
        if (y != NULL) {                                                                 \
            CYL_ROW_GRAD_LOOP(SUFFIX, T, C, x, m, lognorm, (double)y[k] * keep + spread, q); \
        } else if (cw != NULL) {                                                         \
            CYL_ROW_GRAD_LOOP(SUFFIX, T, C, x, m, lognorm, spread + (k == label ? keep : 0.0), \
                              q * cw[k]);                                                \
        } else {                                                                         \
            CYL_ROW_GRAD_LOOP(SUFFIX, T, C, x, m, lognorm, spread + (k == label ? keep : 0.0), q); \
        }                                                                                \
        return;                                                                          \
    }                                                                                    \
    for (ptrdiff_t k = 0; k < C; k++) {                                                  \
        double v = CYL_AT(T, x, k, sb);                                                  \
        double logp = -(cyl_unless(v == m, m - v) + lognorm);                            \
        double pk = CYL_ROW_P_##SUFFIX(v, m, lognorm, inv);                              \
        double q = y != NULL ? CYL_AT(T, y, k, ysb) * keep + spread                      \
                             : spread + (k == label ? keep : 0.0);                       \
        *(T *)((char *)g + k * gsb) = (T)(w * (pk * qsum - (cw != NULL ? q * cw[k] : q))); \
        if (h != NULL)                                                                   \
            *(T *)((char *)h + k * gsb) = (T)(w * (qsum * pk * -expm1(logp)));           \
    }                                                                                    \
}

CYL_DEFINE_ROWS(f32, float)
CYL_DEFINE_ROWS(f64, double)
CYL_DEFINE_ROW_GRAD(f32, float)
CYL_DEFINE_ROW_GRAD(f64, double)

/* Value and gradient of a contiguous float32 logit row in two passes instead of three:
 * cyl_row_logits_keep_f32 is cyl_row_logits_f32 (same lognorm bits) that also writes each
 * e_k = e^(x_k - m), 1 at the maximum, to e (the row's gradient, contiguous: C floats);
 * cyl_row_grad_kept_f32 then turns e in place into cyl_row_logit_grad_f32's g_k, with the
 * same operations on the same e_k (CYL_ROW_P_f32), hence the same bits, without a second
 * exponential: the row is still in the cache. */
CYL_MULTI(double, cyl_row_logits_keep_f32, (const float *x, ptrdiff_t C, double *m_out,
                                                 float *e), (x, C, m_out, e))
{
    double least = -INFINITY, total = 0.0, ties = 0.0;
    double m = CYL_ROW_MAX_f32(x, (ptrdiff_t)sizeof(float), C, &least);
    (void)least;
#if CYL_HAVE_V8
    if (C <= INT32_MAX) {
        cyl_row_expsum_v8(x, C, m, least, &total, &ties, NULL, e);
    } else
#endif
    {
        CYL_LANES_INIT(acc);
        CYL_LANES_INIT(cnt);
        CYL_FOR_LANES(C, double v = x[K];
                         double ek = CYL_ROW_EXP_f32(v, m);
                         acc[L] += cyl_unless(v == m, ek);
                         cnt[L] += (double)(v == m);
                         e[K] = v == m ? 1.0f : cyl_expf((float)v - (float)m););
        total = cyl_lanes_total(acc);
        ties = cyl_lanes_total(cnt);
    }
    *m_out = m;
    return m == -INFINITY ? NAN : cyl_log1p_nonneg((ties - 1.0) + total);
}

#define CYL_ROW_GRAD_KEPT_LOOP(C, QEXPR, TARGET)                                         \
    for (ptrdiff_t k = 0; k < (C); k++) {                                                \
        double pk = (double)g[k] * inv;                                                  \
        double q = (QEXPR);                                                              \
        g[k] = (float)(w * (pk * qsum - (TARGET)));                                      \
    }

CYL_MULTI_VOID(cyl_row_grad_kept_f32, (
    const float *y, ptrdiff_t C, int64_t label, const double *cw, double keep,
    double spread, double qsum, double lognorm, double w, float *g),
    (y, C, label, cw, keep, spread, qsum, lognorm, w, g))
{
    const double inv = cyl_exp(-lognorm);
    if (y != NULL) {
        CYL_ROW_GRAD_KEPT_LOOP(C, (double)y[k] * keep + spread, q);
    } else if (cw == NULL && spread == 0.0 && label >= 0 && label < C && isfinite(lognorm)) {
        /* A one-hot target without smoothing or class weights: q_k = 0 off the label,
         * where w (p_k Q - 0) is w (p_k Q) exactly, so the loop needs no label test; the
         * label's element is then finished from its saved e_k as the general loop would.
         * Only for a finite lognorm: then inv and every e_k are finite, no product has
         * two NaN operands, and the bits cannot depend on the order in which the
         * compiler puts a product's operands (which NaN x86 keeps from two NaNs does). */
        const float e_label = g[label];
        for (ptrdiff_t k = 0; k < C; k++)
            g[k] = (float)(w * (((double)g[k] * inv) * qsum));
        const double p_label = (double)e_label * inv, q_label = spread + keep;
        g[label] = (float)(w * (p_label * qsum - q_label));
    } else if (cw != NULL) {
        CYL_ROW_GRAD_KEPT_LOOP(C, spread + (k == label ? keep : 0.0), q * cw[k]);
    } else {
        CYL_ROW_GRAD_KEPT_LOOP(C, spread + (k == label ? keep : 0.0), q);
    }
}

/* Sparse cross-entropy from logits over contiguous rows of few classes, eight rows at a
 * time (one row per vector lane), for the plain case: no smoothing, class weights,
 * ignored labels, sample weights or per-sample output. Each row's lognorm is computed
 * with exactly the operations and order of cyl_row_logits, and the rows' losses go to
 * sample lanes r % 8 as in the general loop, so the result is the same to the bit; only
 * the per-row overhead is gone. Adds the first n - n % 8 rows' losses to the compensated
 * sum *sums (as cyl_acc_add would, row by row) and returns 0, or returns 1 when a label
 * lies outside [0, C), so that the caller's general loop can report it (*sums is then
 * partly filled: the caller starts it afresh). */
#define CYL_SMALL_CLASSES 32   /* the most classes the cross-row kernels take */

/* xt[k * 8 + r] = xr[r * C + k] for eight rows of C classes: a plain copy, and for
 * float32 with vector types an 8 x 8 transpose by shuffles (unpack, shufps, perm2f128 on
 * AVX2) for each run of eight classes. Only copies, so the same bits either way. */
#define CYL_ROWS8_TRANSPOSE_SCALAR(T, xr, C, xt, from)                                   \
    for (int r_ = 0; r_ < CYL_LANES; r_++)                                               \
        for (ptrdiff_t k_ = (from); k_ < (C); k_++)                                      \
            (xt)[k_ * CYL_LANES + r_] = (xr)[r_ * (C) + k_]

#if CYL_HAVE_V8
CYL_INLINE void cyl_rows8_transpose_f32(const float *xr, ptrdiff_t C, float *xt)
{
    const cyl_vi8 lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const cyl_vi8 s01 = {0, 1, 8, 9, 4, 5, 12, 13}, s23 = {2, 3, 10, 11, 6, 7, 14, 15};
    const cyl_vi8 pl = {0, 1, 2, 3, 8, 9, 10, 11}, ph = {4, 5, 6, 7, 12, 13, 14, 15};
    ptrdiff_t c0 = 0;
    for (; c0 + 8 <= C; c0 += 8) {
        cyl_vf8 r[8], t[8], u[8];
        for (int q = 0; q < 8; q++)
            memcpy(&r[q], xr + q * C + c0, sizeof r[q]);
        for (int q = 0; q < 8; q += 2) {
            t[q] = __builtin_shuffle(r[q], r[q + 1], lo);
            t[q + 1] = __builtin_shuffle(r[q], r[q + 1], hi);
        }
        for (int q = 0; q < 8; q += 4) {
            u[q] = __builtin_shuffle(t[q], t[q + 2], s01);
            u[q + 1] = __builtin_shuffle(t[q], t[q + 2], s23);
            u[q + 2] = __builtin_shuffle(t[q + 1], t[q + 3], s01);
            u[q + 3] = __builtin_shuffle(t[q + 1], t[q + 3], s23);
        }
        for (int q = 0; q < 4; q++) {
            cyl_vf8 a = __builtin_shuffle(u[q], u[q + 4], pl);
            cyl_vf8 b = __builtin_shuffle(u[q], u[q + 4], ph);
            memcpy(xt + (c0 + q) * CYL_LANES, &a, sizeof a);
            memcpy(xt + (c0 + q + 4) * CYL_LANES, &b, sizeof b);
        }
    }
    /* The tail a class vector at a time, built in a register and stored whole: the
     * loads that read it next then take it from that one store (eight scalar stores
     * cannot forward to a vector load, which then waits for them to reach the cache). */
    for (ptrdiff_t k = c0; k < C; k++) {
        const float *c = xr + k;
        cyl_vf8 v = {c[0], c[C], c[2 * C], c[3 * C], c[4 * C], c[5 * C], c[6 * C], c[7 * C]};
        memcpy(xt + k * CYL_LANES, &v, sizeof v);
    }
}
#define CYL_ROWS8_TRANSPOSE_f32(xr, C, xt) cyl_rows8_transpose_f32((xr), (C), (xt))
#else
#define CYL_ROWS8_TRANSPOSE_f32(xr, C, xt) CYL_ROWS8_TRANSPOSE_SCALAR(float, xr, C, xt, 0)
#endif
#define CYL_ROWS8_TRANSPOSE_f64(xr, C, xt) CYL_ROWS8_TRANSPOSE_SCALAR(double, xr, C, xt, 0)

/* For eight rows held transposed in xt (class k of row r at xt[k * 8 + r]): each row's
 * maximum m[r] and lognorm[r], by the operations and order of cyl_row_logits. Shared by
 * the sparse and categorical cross-row kernels. */
#define CYL_DEFINE_ROWS8_LOGNORM(SUFFIX, T)                                              \
CYL_INLINE void cyl_rows8_lognorm_##SUFFIX(const T *xt, ptrdiff_t C, double *m,          \
                                           double *lognorm)                              \
{                                                                                        \
    double acc[CYL_LANES][CYL_LANES], cnt[CYL_LANES][CYL_LANES];                         \
    for (int r = 0; r < CYL_LANES; r++) {                                                \
        m[r] = -INFINITY;                                                                \
        for (int l = 0; l < CYL_LANES; l++)                                              \
            acc[l][r] = cnt[l][r] = 0.0;                                                 \
    }                                                                                    \
    for (ptrdiff_t k = 0; k < C; k++)                                                    \
        for (int r = 0; r < CYL_LANES; r++) {                                            \
            double v = xt[k * CYL_LANES + r];                                            \
            m[r] = v > m[r] ? v : m[r];                                                  \
        }                                                                                \
    for (ptrdiff_t k = 0; k < C; k++) {                                                  \
        int l = k < (C & ~(ptrdiff_t)7) ? (int)(k & 7) : 0;                              \
        for (int r = 0; r < CYL_LANES; r++) {                                            \
            double v = xt[k * CYL_LANES + r];                                            \
            double e = CYL_ROW_EXP_##SUFFIX(v, m[r]);                                    \
            acc[l][r] += cyl_unless(v == m[r], e);                                       \
            cnt[l][r] += (double)(v == m[r]);                                            \
        }                                                                                \
    }                                                                                    \
    for (int r = 0; r < CYL_LANES; r++) {                                                \
        double total = ((acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r]))               \
                     + ((acc[4][r] + acc[5][r]) + (acc[6][r] + acc[7][r]));              \
        double ties = ((cnt[0][r] + cnt[1][r]) + (cnt[2][r] + cnt[3][r]))                \
                    + ((cnt[4][r] + cnt[5][r]) + (cnt[6][r] + cnt[7][r]));               \
        lognorm[r] = m[r] == -INFINITY ? NAN : cyl_log1p_nonneg((ties - 1.0) + total);   \
    }                                                                                    \
}

#if CYL_HAVE_V8
/* The per-row sums of eight transposed rows over C <= CYL_SMALL_CLASSES classes, as the
 * row loops add them: class k into lane k % 8 (0 for the tail, after the main part), the
 * lanes combined as cyl_lanes_total does. BODY sets tk[0], tk[1] (rows 0-3, 4-7) to the
 * terms of class K; total[0], total[1] receive the sums. Each lane's sum is built in its
 * own loop with a constant lane index, so that they can stay in registers. */
#define CYL_ROWS8_LANE_SUMS(C, K, tk, BODY, total)                                       \
    do {                                                                                 \
        const ptrdiff_t main_end_ = (C) & ~(ptrdiff_t)7;                                 \
        cyl_vd4 a_[CYL_LANES][2];                                                        \
        _Pragma("GCC unroll 8")                                                          \
        for (int l_ = 0; l_ < CYL_LANES; l_++) {                                         \
            a_[l_][0] = a_[l_][1] = (cyl_vd4){0.0, 0.0, 0.0, 0.0};                       \
            for (ptrdiff_t K = l_; K < main_end_; K += 8) {                              \
                cyl_vd4 tk[2];                                                           \
                BODY                                                                     \
                a_[l_][0] += tk[0];                                                      \
                a_[l_][1] += tk[1];                                                      \
            }                                                                            \
        }                                                                                \
        for (ptrdiff_t K = main_end_; K < (C); K++) {                                    \
            cyl_vd4 tk[2];                                                               \
            BODY                                                                         \
            a_[0][0] += tk[0];                                                           \
            a_[0][1] += tk[1];                                                           \
        }                                                                                \
        (total)[0] = cyl_lanes_total8x4((const cyl_vd4 (*)[2])a_, 0);                    \
        (total)[1] = cyl_lanes_total8x4((const cyl_vd4 (*)[2])a_, 1);                    \
    } while (0)

/* The exponential sums of eight transposed rows (C <= CYL_SMALL_CLASSES): class k into
 * lane k % 8 of each row (0 for the tail), combined as cyl_lanes_total does, for rows
 * 0-3 (*lo) and 4-7 (*hi). The exponentials of a group of vectors first (their chains
 * overlap), then the sums in registers: lane l collects classes l, l + 8, ... in order
 * and lane 0 the tail after them, as the row loop adds them. */
CYL_INLINE void cyl_rows8_expsum(const float *xt, ptrdiff_t C, cyl_vf8 mv, const int wide,
                                 cyl_vi8 *cnt, cyl_vd4 *lo, cyl_vd4 *hi)
{
    enum { G = CYL_EXPSUM8_GROUP };
    cyl_vf8 e[CYL_SMALL_CLASSES];
    ptrdiff_t k = 0;
    for (; k + G <= C; k += G) {
        cyl_expsum8_parts h[G];
        CYL_UNROLL_GROUP
        for (int j = 0; j < G; j++) {
            cyl_vf8 v;
            memcpy(&v, xt + (k + j) * CYL_LANES, sizeof v);
            h[j] = cyl_expsum8_begin(v, mv, wide, cnt);
        }
        CYL_UNROLL_GROUP
        for (int j = 0; j < G; j++)
            e[k + j] = cyl_expsum8_value(h[j], wide);
    }
    for (; k < C; k++) {
        cyl_vf8 v;
        memcpy(&v, xt + k * CYL_LANES, sizeof v);
        e[k] = cyl_expsum8_value(cyl_expsum8_begin(v, mv, wide, cnt), wide);
    }
    cyl_vd4 total[2];
    CYL_ROWS8_LANE_SUMS(C, c, tc, CYL_VF8_WIDEN(e[c], tc[0], tc[1]);, total);
    *lo = total[0];
    *hi = total[1];
}

/* The float32 instance with vector types: row r in lane r, the same operations per lane,
 * so the same bits (the ties counted exactly in int32 lanes, the mask applied before the
 * conversion to double, as in cyl_row_expsum_v8). Returns 1 when every row's values lie
 * within 87 of its maximum (NaN aside): then each row's maximum and values are finite,
 * or the row is all NaN. */
CYL_INLINE int cyl_rows8_lognorm_arg_f32(const float *xt, ptrdiff_t C, double *m,
                                         double *arg)
{
    cyl_vf8 mv = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                  -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    cyl_vi8 cnt = {0, 0, 0, 0, 0, 0, 0, 0};
    cyl_vf8 least = {INFINITY, INFINITY, INFINITY, INFINITY,
                     INFINITY, INFINITY, INFINITY, INFINITY};
    for (ptrdiff_t k = 0; k < C; k++) {
        cyl_vf8 v;
        memcpy(&v, xt + k * CYL_LANES, sizeof v);
        mv = cyl_vf8_pick(v > mv, v, mv);
        least = cyl_vf8_pick(v < least, v, least);
    }
    /* Every argument x_k - m_r >= -87 (NaN lanes aside): the cheaper exponential. */
    int near = 1;
    for (int r = 0; r < CYL_LANES; r++)
        near &= (double)least[r] - (double)mv[r] >= -87.0;
    cyl_vd4 tl, th;
    if (near)   /* each call inlined with `wide` a constant */
        cyl_rows8_expsum(xt, C, mv, 0, &cnt, &tl, &th);
    else
        cyl_rows8_expsum(xt, C, mv, 1, &cnt, &tl, &th);
    double total[CYL_LANES], ties[CYL_LANES];
    memcpy(total, &tl, sizeof tl);
    memcpy(total + 4, &th, sizeof th);
    for (int r = 0; r < CYL_LANES; r++) {
        m[r] = mv[r];
        ties[r] = (double)cnt[r];
    }
    for (int r = 0; r < CYL_LANES; r++)
        arg[r] = (ties[r] - 1.0) + total[r];
    return near;
}

/* lognorm = log1p(arg), NaN for a row without a finite or +inf maximum: the last step of
 * cyl_row_logits, over a run of rows (independent lanes: the loop vectorises, and its
 * long dependent chains overlap). */
CYL_INLINE void cyl_rows_log1p(const double *m, const double *arg, double *lognorm,
                               ptrdiff_t count)
{
    for (ptrdiff_t r = 0; r < count; r++) {
        double y = cyl_log1p_nonneg(arg[r]);   /* unconditional: no masked load */
        lognorm[r] = m[r] == -INFINITY ? NAN : y;
    }
}

CYL_DEFINE_ROWS8_LOGNORM(f64, double)
#else
CYL_DEFINE_ROWS8_LOGNORM(f32, float)
CYL_DEFINE_ROWS8_LOGNORM(f64, double)
#endif

#define CYL_DEFINE_SPARSE_SMALL(SUFFIX, T)                                               \
CYL_MULTI(int, cyl_sparse_logits_rows8_##SUFFIX, (                                       \
    const T *x, ptrdiff_t C, const int64_t *labels, ptrdiff_t n, cyl_acc *sums),         \
        (x, C, labels, n, sums))                                                         \
{                                                                                        \
    if (C > CYL_SMALL_CLASSES)                                                           \
        return 1;                                                                        \
    for (ptrdiff_t r0 = 0; r0 + CYL_LANES <= n; r0 += CYL_LANES) {                       \
        double m[CYL_LANES], lognorm[CYL_LANES];                                         \
        int bad = 0;                                                                     \
        for (int r = 0; r < CYL_LANES; r++) {                                            \
            int64_t lab = labels[r0 + r];                                                \
            bad |= (lab < 0) | (lab >= C);                                               \
        }                                                                                \
        if (bad)                                                                         \
            return 1;                                                                    \
        const T *xr = x + r0 * C;                                                        \
        cyl_prefetch_ahead(xr, CYL_LANES * C * (ptrdiff_t)sizeof(T));                    \
        /* Transposed into (class, row) order so that the loops read eight rows with    \
         * one contiguous vector load instead of a strided gather. */                    \
        T xt[CYL_SMALL_CLASSES * CYL_LANES];                                             \
        CYL_ROWS8_TRANSPOSE_##SUFFIX(xr, C, xt);                                         \
        cyl_rows8_lognorm_##SUFFIX(xt, C, m, lognorm);                                   \
        for (int r = 0; r < CYL_LANES; r++) {                                            \
            double xl = xr[r * C + labels[r0 + r]];                                      \
            sums->part[r] += cyl_unless(xl == m[r], m[r] - xl) + lognorm[r];             \
        }                                                                                \
        if (((r0 + 7) & 63) == 63)   /* as cyl_acc_add at offset r0 + 7 */               \
            cyl_acc_fold(sums);                                                          \
    }                                                                                    \
    return 0;                                                                            \
}

#if CYL_HAVE_V8
/* The float32 instance: the same per-row operations and the same order of additions into
 * *sums, but the log1p of 16 blocks (128 rows) at a time, after their exponential sums:
 * one block's log1p is a chain of ~150 cycles that the processor cannot overlap with the
 * next block's work, a run of them it can. */
CYL_MULTI(int, cyl_sparse_logits_rows8_f32, (
    const float *x, ptrdiff_t C, const int64_t *labels, ptrdiff_t n, cyl_acc *sums),
    (x, C, labels, n, sums))
{
    enum { RUN = 16 };
    if (C > CYL_SMALL_CLASSES)
        return 1;
    for (ptrdiff_t r0 = 0; r0 + CYL_LANES <= n; r0 += RUN * CYL_LANES) {
        double m[RUN * CYL_LANES], arg[RUN * CYL_LANES], lognorm[RUN * CYL_LANES];
        double gap[RUN * CYL_LANES];
        int nb = 0;
        for (; nb < RUN && r0 + (nb + 1) * CYL_LANES <= n; nb++) {
            const ptrdiff_t rb = r0 + nb * CYL_LANES;
            int bad = 0;
            for (int r = 0; r < CYL_LANES; r++) {
                int64_t lab = labels[rb + r];
                bad |= (lab < 0) | (lab >= C);
            }
            if (bad)
                return 1;
            const float *xr = x + rb * C;
            cyl_prefetch_ahead(xr, CYL_LANES * C * (ptrdiff_t)sizeof(float));
            float xt[CYL_SMALL_CLASSES * CYL_LANES];
            cyl_rows8_transpose_f32(xr, C, xt);
            double *mb = m + nb * CYL_LANES;
            cyl_rows8_lognorm_arg_f32(xt, C, mb, arg + nb * CYL_LANES);
            for (int r = 0; r < CYL_LANES; r++) {
                double xl = xr[r * C + labels[rb + r]];
                gap[nb * CYL_LANES + r] = cyl_unless(xl == mb[r], mb[r] - xl);
            }
        }
        cyl_rows_log1p(m, arg, lognorm, nb * CYL_LANES);
        for (int b = 0; b < nb; b++) {
            const ptrdiff_t rb = r0 + b * CYL_LANES;
            for (int r = 0; r < CYL_LANES; r++)
                sums->part[r] += gap[b * CYL_LANES + r] + lognorm[b * CYL_LANES + r];
            if (((rb + 7) & 63) == 63)   /* as cyl_acc_add at offset rb + 7 */
                cyl_acc_fold(sums);
        }
    }
    return 0;
}
#else
CYL_DEFINE_SPARSE_SMALL(f32, float)
#endif
CYL_DEFINE_SPARSE_SMALL(f64, double)

/* Sparse cross-entropy from float32 probabilities over contiguous rows, in the plain case
 * (no smoothing, class weights, ignored labels, sample weights or per-sample output): per
 * row -log(clip(p_label / total, lo, hi)) by the operations of the general loop, so the
 * same bits, and the rows' losses into *sums as cyl_acc_add adds them. The totals and
 * label entries of 64 rows first, then their logs together: one row of a thousand
 * classes fills the reorder buffer, so a log at each row's end would add its whole
 * latency to every row. Covers the first n - n % 8 rows; returns 0, or 1 when a label lies
 * outside [0, C), a row has a negative entry or sums to 0 (the caller's general loop then
 * redoes the block and reports it; *sums is then partly filled). */
#if CYL_HAVE_V8
#define CYL_PROB_ROW_TOTAL_f32(xr, C, negative) cyl_row_total_v8((xr), (C), (negative))
#else
#define CYL_PROB_ROW_TOTAL_f32(xr, C, negative)                                          \
    cyl_row_total_f32((xr), (ptrdiff_t)sizeof(float), (C), (negative))
#endif
CYL_MULTI(int, cyl_sparse_prob_rows_f32, (
    const float *x, ptrdiff_t C, const int64_t *labels, ptrdiff_t n, double lo, double hi,
    cyl_acc *sums), (x, C, labels, n, lo, hi, sums))
{
    enum { RUN = 64 };
    const ptrdiff_t end = n & ~(ptrdiff_t)7;
    for (ptrdiff_t r0 = 0; r0 < end; r0 += RUN) {
        const ptrdiff_t count = end - r0 < RUN ? end - r0 : RUN;
        double q[RUN], nll[RUN];
        for (ptrdiff_t r = 0; r < count; r++) {
            const int64_t lab = labels[r0 + r];
            if (lab < 0 || lab >= C)
                return 1;
            const float *xr = x + (r0 + r) * C;
            int negative;
            double total = CYL_PROB_ROW_TOTAL_f32(xr, C, &negative);
            if (negative || total == 0.0)
                return 1;
            q[r] = (double)xr[lab] / total;
        }
        for (ptrdiff_t r = 0; r < count; r++)
            nll[r] = -cyl_log(cyl_clip(q[r], lo, hi));
        for (ptrdiff_t r = 0; r < count; r++)
            cyl_acc_add(sums, r0 + r, n, nll[r]);
    }
    return 0;
}

/* Categorical cross-entropy from logits with soft targets over contiguous (n, C) rows of
 * few classes, eight rows at a time, in the plain case (no sample weights or per-sample
 * output): the operations and order of cyl_row_logits and cyl_row_soft_xent, so the same
 * bits. Returns 0, or 1 when a target lies outside [0, 1] (the caller then redoes the
 * block in its general loop, which reports it). */
#define CYL_DEFINE_CATEGORICAL_SMALL(SUFFIX, T)                                          \
CYL_MULTI(int, cyl_categorical_logits_rows8_##SUFFIX, (                                  \
    const T *y, const T *x, ptrdiff_t C, ptrdiff_t n, double keep, double spread,       \
    cyl_acc *sums), (y, x, C, n, keep, spread, sums))                                    \
{                                                                                        \
    if (C > CYL_SMALL_CLASSES)                                                           \
        return 1;                                                                        \
    for (ptrdiff_t r0 = 0; r0 + CYL_LANES <= n; r0 += CYL_LANES) {                       \
        double m[CYL_LANES], lognorm[CYL_LANES], xent[CYL_LANES][CYL_LANES];             \
        T xt[CYL_SMALL_CLASSES * CYL_LANES], yt[CYL_SMALL_CLASSES * CYL_LANES];          \
        const T *xr = x + r0 * C, *yr = y + r0 * C;                                      \
        int bad = 0;                                                                     \
        for (int r = 0; r < CYL_LANES; r++)                                              \
            for (ptrdiff_t k = 0; k < C; k++) {                                          \
                double yv = yr[r * C + k];                                               \
                bad |= (yv < 0.0) | (yv > 1.0);                                          \
                xt[k * CYL_LANES + r] = xr[r * C + k];                                   \
                yt[k * CYL_LANES + r] = yr[r * C + k];                                   \
            }                                                                            \
        if (bad)                                                                         \
            return 1;                                                                    \
        cyl_rows8_lognorm_##SUFFIX(xt, C, m, lognorm);                                   \
        for (int r = 0; r < CYL_LANES; r++)                                              \
            for (int l = 0; l < CYL_LANES; l++)                                          \
                xent[l][r] = 0.0;                                                        \
        for (ptrdiff_t k = 0; k < C; k++) {                                              \
            int l = k < (C & ~(ptrdiff_t)7) ? (int)(k & 7) : 0;                          \
            for (int r = 0; r < CYL_LANES; r++) {                                        \
                double v = xt[k * CYL_LANES + r], yv = yt[k * CYL_LANES + r];            \
                double nls = cyl_unless(v == m[r], m[r] - v) + lognorm[r];               \
                xent[l][r] += cyl_term(yv * keep + spread, nls);                         \
            }                                                                            \
        }                                                                                \
        for (int r = 0; r < CYL_LANES; r++)                                              \
            sums->part[r] += ((xent[0][r] + xent[1][r]) + (xent[2][r] + xent[3][r]))     \
                           + ((xent[4][r] + xent[5][r]) + (xent[6][r] + xent[7][r]));    \
        if (((r0 + 7) & 63) == 63)   /* as cyl_acc_add at offset r0 + 7 */               \
            cyl_acc_fold(sums);                                                          \
    }                                                                                    \
    return 0;                                                                            \
}

#if CYL_HAVE_V8
/* The float32 instance with vector types (row r in lane r): the same double operations
 * lane by lane as the macro above and cyl_row_soft_xent, so the same bits; the target
 * check compares bit patterns (a NaN or -0.0 target also returns 1: the general loop
 * takes it, without an error). As in cyl_sparse_logits_rows8_f32, the log1p of 16
 * blocks (128 rows) at a time, after their exponential sums; the transposed blocks wait
 * for it on the stack (2 x 16 KiB at most, 2 x 5 KiB for ten classes). */
CYL_MULTI(int, cyl_categorical_logits_rows8_f32, (
    const float *y, const float *x, ptrdiff_t C, ptrdiff_t n, double keep, double spread,
    cyl_acc *sums), (y, x, C, n, keep, spread, sums))
{
    enum { RUN = 16 };
    if (C > CYL_SMALL_CLASSES)
        return 1;
    const ptrdiff_t span = C * CYL_LANES;     /* one block, transposed */
    const int plain = keep == 1.0 && spread == 0.0;
    for (ptrdiff_t r0 = 0; r0 + CYL_LANES <= n; r0 += RUN * CYL_LANES) {
        double m[RUN * CYL_LANES], arg[RUN * CYL_LANES], lognorm[RUN * CYL_LANES];
        float xt[RUN * CYL_SMALL_CLASSES * CYL_LANES], yt[RUN * CYL_SMALL_CLASSES * CYL_LANES];
        int near[RUN];
        int nb = 0;
        for (; nb < RUN && r0 + (nb + 1) * CYL_LANES <= n; nb++) {
            const ptrdiff_t rb = r0 + nb * CYL_LANES;
            const float *xr = x + rb * C, *yr = y + rb * C;
            float *xb = xt + nb * span, *yb = yt + nb * span;
            cyl_prefetch_ahead(xr, CYL_LANES * C * (ptrdiff_t)sizeof(float));
            cyl_prefetch_ahead(yr, CYL_LANES * C * (ptrdiff_t)sizeof(float));
            /* Targets in [+0, 1] have bit patterns up to that of 1.0f; a larger pattern
             * is a target outside, or a NaN or -0.0 (the general loop takes those). */
            uint32_t top = 0;
            for (ptrdiff_t i = 0; i < span; i++) {
                uint32_t u;
                memcpy(&u, yr + i, sizeof u);
                top = u > top ? u : top;
            }
            if (top > 0x3f800000u)
                return 1;
            cyl_rows8_transpose_f32(xr, C, xb);
            cyl_rows8_transpose_f32(yr, C, yb);
            near[nb] = cyl_rows8_lognorm_arg_f32(xb, C, m + nb * CYL_LANES,
                                                 arg + nb * CYL_LANES);
        }
        cyl_rows_log1p(m, arg, lognorm, nb * CYL_LANES);
        for (int b = 0; b < nb; b++) {
            const ptrdiff_t rb = r0 + b * CYL_LANES;
            const float *xb = xt + b * span, *yb = yt + b * span;
            cyl_vd4 m4[2], ln4[2], t[2];
            memcpy(&m4[0], m + b * CYL_LANES, sizeof m4[0]);
            memcpy(&m4[1], m + b * CYL_LANES + 4, sizeof m4[1]);
            memcpy(&ln4[0], lognorm + b * CYL_LANES, sizeof ln4[0]);
            memcpy(&ln4[1], lognorm + b * CYL_LANES + 4, sizeof ln4[1]);
            /* Near (see cyl_rows8_lognorm_arg_f32), m - x_k is finite and >= +0, +0 at a
             * tie, and so is nls: the term's two masks change nothing, q nls is its value
             * to the bit (q >= +0 by the target check). Plain (no smoothing), q = y. */
#define CYL_XENT_TERMS(TERM)                                                             \
            CYL_ROWS8_LANE_SUMS(C, k, tk,                                                \
                cyl_vd4 vh[2];                                                           \
                cyl_vd4 yh[2];                                                           \
                cyl_load_widen8(xb + k * CYL_LANES, &vh[0], &vh[1]);                     \
                cyl_load_widen8(yb + k * CYL_LANES, &yh[0], &yh[1]);                     \
                for (int h = 0; h < 2; h++)                                              \
                    tk[h] = (TERM);,                                                     \
                t)
            if (near[b] && plain)
                CYL_XENT_TERMS(yh[h] * ((m4[h] - vh[h]) + ln4[h]));
            else if (near[b])
                CYL_XENT_TERMS((yh[h] * keep + spread) * ((m4[h] - vh[h]) + ln4[h]));
            else
                CYL_XENT_TERMS(cyl_xent_term4(yh[h], vh[h], m4[h], ln4[h], keep, spread));
#undef CYL_XENT_TERMS
            for (int h = 0; h < 2; h++)
                for (int j = 0; j < 4; j++)
                    sums->part[4 * h + j] += t[h][j];
            if (((rb + 7) & 63) == 63)   /* as cyl_acc_add at offset rb + 7 */
                cyl_acc_fold(sums);
        }
    }
    return 0;
}
#else
CYL_DEFINE_CATEGORICAL_SMALL(f32, float)
#endif
CYL_DEFINE_CATEGORICAL_SMALL(f64, double)

/* --- row losses of the catalogue: KL divergence, categorical hinge, cosine similarity ---
 * One row of C classes of y_true (y, byte stride ysb) and y_pred (x, stride sb); each
 * function returns the row's loss and, when g is not NULL, writes w * d loss / d x_k
 * through g's byte stride gsb. Every sum over the row uses the fixed 8-lane pattern
 * (CYL_FOR_LANES), so any layout gives the same bits. Arithmetic is in double for both
 * dtypes. */

#define CYL_GAT(T, g, k, gsb) (*(T *)((char *)(g) + (ptrdiff_t)(k) * (gsb)))

/* KL divergence modes: bit 0 set when y_pred holds log-probabilities (PyTorch's input),
 * bit 1 when y_true does (log_target). Mode 0 is Keras's clipped formula. */
#define CYL_KL_KERAS 0
#define CYL_KL_LOG_INPUT 1
#define CYL_KL_LOG_TARGET 2

/* One class's term. Keras: y, p clipped to [lo, 1], y log(y / p). Otherwise nothing on
 * the log side is clipped and a zero target contributes 0 (xlogy), even against an
 * infinite log-probability, unless the prediction is NaN. */
CYL_INLINE double cyl_kl_term(int mode, double y, double x, double lo)
{
    double e, lp;
    switch (mode) {
    case CYL_KL_KERAS:
        e = cyl_clip(y, lo, 1.0);
        return e * cyl_log(e / cyl_clip(x, lo, 1.0));
    case CYL_KL_LOG_INPUT:
        return cyl_unless(y == 0.0 && x == x, y * (cyl_log(y) - x));
    case CYL_KL_LOG_TARGET:
        e = cyl_exp(y);
        lp = cyl_clip(x, lo, 1.0);
        return cyl_unless(e == 0.0 && lp == lp, e * (y - cyl_log(lp)));
    default:
        e = cyl_exp(y);
        return cyl_unless(e == 0.0 && x == x, e * (y - x));
    }
}

/* d term / d x: the clip passes the gradient where lo <= x <= 1 (torch.clamp's
 * convention) and gives 0 outside; a NaN prediction gives NaN. */
CYL_INLINE double cyl_kl_grad(int mode, double y, double x, double lo)
{
    double t;
    switch (mode) {
    case CYL_KL_KERAS:
    case CYL_KL_LOG_TARGET:
        t = mode == CYL_KL_KERAS ? cyl_clip(y, lo, 1.0) : cyl_exp(y);
        return (lo <= x && x <= 1.0) ? -t / x : (x != x ? x : 0.0);
    case CYL_KL_LOG_INPUT:
        return -y;
    default:
        return -cyl_exp(y);
    }
}

/* One row of cyl_row_kl with its mode a constant: the switch inside cyl_kl_term folds
 * away and the loops vectorise (with the switch inside them, 10^4 x 1000 float32 took
 * 52 ms). */
#define CYL_KL_ROW_(T, MODE)                                                             \
    do {                                                                                 \
        CYL_STRIDED2(T, sb, ysb,                                                         \
            CYL_LANES_INIT(acc);                                                         \
            CYL_FOR_LANES(C, acc[L] += cyl_kl_term((MODE), CYL_AT(T, y, K, YS_),         \
                                                   CYL_AT(T, x, K, S_), lo););           \
            total = cyl_lanes_total(acc);                                                \
        );                                                                               \
        if (g != NULL)                                                                   \
            for (ptrdiff_t k = 0; k < C; k++)                                            \
                CYL_GAT(T, g, k, gsb) = (T)(w * cyl_kl_grad((MODE), CYL_AT(T, y, k, ysb), \
                                                             CYL_AT(T, x, k, sb), lo));  \
    } while (0)

/* KL divergence over n contiguous rows of C classes, without weights, outputs or
 * gradient: the sum over rows of cyl_row_kl's value, same bits (element k in lane k % 8
 * of the main part, the tail in lane 0, cyl_lanes_total; rows compensated as
 * cyl_acc_add). The terms of whole rows, up to CYL_KL_CHUNK_ values, are computed first in
 * one flat loop with the mode a constant (rows of 10 leave the per-row loop mostly
 * scalar), then summed row by row. Returns 0 when C is too wide for the buffer (the caller
 * runs its row loop). */
#define CYL_KL_CHUNK_ 2048
#define CYL_KL_TERMS_(MODE)                                                              \
    do {                                                                                 \
        for (ptrdiff_t j = 0; j < len; j++)                                              \
            e[j] = cyl_kl_term((MODE), (double)yc[j], (double)xc[j], lo);                \
    } while (0)
#define CYL_DEFINE_KL_ROWS(SUFFIX, T)                                                    \
    CYL_MULTI(int, cyl_kl_rows_sum_##SUFFIX, (                                           \
        const T *y, const T *x, ptrdiff_t n, ptrdiff_t C, int mode, double lo,           \
        double *out), (y, x, n, C, mode, lo, out))                                       \
    {                                                                                    \
        double e[CYL_KL_CHUNK_];                                                         \
        cyl_acc A;                                                                       \
        if (C < 1 || C > CYL_KL_CHUNK_)                                                  \
            return 0;                                                                    \
        const ptrdiff_t rows = CYL_KL_CHUNK_ / C;                                        \
        cyl_acc_init(&A);                                                                \
        for (ptrdiff_t i0 = 0; i0 < n; i0 += rows) {                                     \
            const ptrdiff_t r = n - i0 < rows ? n - i0 : rows, len = r * C;              \
            const T *yc = y + i0 * C, *xc = x + i0 * C;                                  \
            switch (mode) {                                                              \
            case CYL_KL_KERAS: CYL_KL_TERMS_(CYL_KL_KERAS); break;                       \
            case CYL_KL_LOG_INPUT: CYL_KL_TERMS_(CYL_KL_LOG_INPUT); break;               \
            case CYL_KL_LOG_TARGET: CYL_KL_TERMS_(CYL_KL_LOG_TARGET); break;             \
            default: CYL_KL_TERMS_(CYL_KL_LOG_INPUT | CYL_KL_LOG_TARGET); break;         \
            }                                                                            \
            for (ptrdiff_t q = 0; q < r; q++) {                                          \
                const double *er = e + q * C;                                            \
                double row;                                                              \
                CYL_LANE_SUM(double, er, er, C, ((void)x, y), row);                      \
                cyl_acc_add(&A, i0 + q, n, row);                                         \
            }                                                                            \
        }                                                                                \
        *out = cyl_acc_total(&A);                                                        \
        return 1;                                                                        \
    }

/* neg = max_k (1 - y_k) x_k of categorical hinge over contiguous rows, in vector
 * registers (the scalar loop's branch on each element does not vectorise); returns 0,
 * leaving the work to that loop, where some product is NaN (the loop keeps the first
 * NaN's own bits). Without NaN the maximum's value does not depend on the order of the
 * comparisons, up to the sign of a zero maximum, and neg - pos + 1 has the same bits for
 * +0 and -0; *arg (wanted: the gradient) is the first k whose product equals it, as the
 * loop's strict comparison finds it. */
#if CYL_HAVE_V8
#define CYL_DEFINE_HINGE_NEG(SUFFIX, T)                                                  \
CYL_INLINE int cyl_hinge_neg_##SUFFIX(const T *y, const T *x, ptrdiff_t C, double *neg,  \
                                      ptrdiff_t *arg, int wanted)                        \
{                                                                                        \
    const cyl_vd4 ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};                   \
    cyl_vd4 mx[2] = {ninf, ninf};                                                        \
    cyl_vi4 nan[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};                                       \
    ptrdiff_t k = 0;                                                                     \
    for (; k + CYL_LANES <= C; k += CYL_LANES) {                                         \
        cyl_vd4 yv[2], xv[2];                                                            \
        CYL_LOAD8_##SUFFIX##_(y + k, yv[0], yv[1]);                                      \
        CYL_LOAD8_##SUFFIX##_(x + k, xv[0], xv[1]);                                      \
        for (int h = 0; h < 2; h++) {                                                    \
            const cyl_vd4 d = (1.0 - yv[h]) * xv[h];                                     \
            const cyl_vi4 up = d > mx[h];                                                \
            nan[h] |= d != d;                                                            \
            mx[h] = (cyl_vd4)((up & (cyl_vi4)d) | (~up & (cyl_vi4)mx[h]));               \
        }                                                                                \
    }                                                                                    \
    int64_t bad = 0;                                                                     \
    double m = -INFINITY;                                                                \
    for (int j = 0; j < 4; j++) {                                                        \
        bad |= nan[0][j] | nan[1][j];                                                    \
        m = mx[0][j] > m ? mx[0][j] : m;                                                 \
        m = mx[1][j] > m ? mx[1][j] : m;                                                 \
    }                                                                                    \
    for (; k < C; k++) {                                                                 \
        const double d = (1.0 - (double)y[k]) * (double)x[k];                            \
        bad |= d != d;                                                                   \
        m = d > m ? d : m;                                                               \
    }                                                                                    \
    if (bad)                                                                             \
        return 0;                                                                        \
    *neg = m;                                                                            \
    *arg = 0;                                                                            \
    if (wanted)                                                                          \
        for (k = 0; k < C; k++)                                                          \
            if ((1.0 - (double)y[k]) * (double)x[k] == m) {                              \
                *arg = k;                                                                \
                break;                                                                   \
            }                                                                            \
    return 1;                                                                            \
}
#define CYL_HINGE_NEG_FAST(SUFFIX, T, y, ysb, x, sb, C, neg, arg, wanted)                \
    ((sb) == (ptrdiff_t)sizeof(T) && (ysb) == (ptrdiff_t)sizeof(T)                       \
     && cyl_hinge_neg_##SUFFIX((y), (x), (C), (neg), (arg), (wanted)))
#else
#define CYL_DEFINE_HINGE_NEG(SUFFIX, T)
#define CYL_HINGE_NEG_FAST(SUFFIX, T, y, ysb, x, sb, C, neg, arg, wanted) 0
#endif
CYL_DEFINE_HINGE_NEG(f32, float)
CYL_DEFINE_HINGE_NEG(f64, double)

#define CYL_DEFINE_CATALOGUE_ROWS(SUFFIX, T)                                             \
                                                                                         \
/* sum_k KL term(y_k, x_k) (see cyl_kl_term), and its gradient. */                       \
CYL_MULTI(double, cyl_row_kl_##SUFFIX, (                                                 \
    const T *y, ptrdiff_t ysb, const T *x, ptrdiff_t sb, ptrdiff_t C, int mode,          \
    double lo, T *g, ptrdiff_t gsb, double w), (y, ysb, x, sb, C, mode, lo, g, gsb, w))  \
{                                                                                        \
    double total = 0.0;                                                                  \
    switch (mode) {                                                                      \
    case CYL_KL_KERAS: CYL_KL_ROW_(T, CYL_KL_KERAS); break;                              \
    case CYL_KL_LOG_INPUT: CYL_KL_ROW_(T, CYL_KL_LOG_INPUT); break;                      \
    case CYL_KL_LOG_TARGET: CYL_KL_ROW_(T, CYL_KL_LOG_TARGET); break;                    \
    default: CYL_KL_ROW_(T, CYL_KL_LOG_INPUT | CYL_KL_LOG_TARGET); break;                \
    }                                                                                    \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* Keras's categorical hinge max(neg - pos + 1, 0), pos = sum_k y_k x_k,                 \
 * neg = max_k (1 - y_k) x_k (plain IEEE products, as Keras). The gradient takes the     \
 * first maximum (torch.argmax's choice), and is 0 where the hinge is not active (at 0   \
 * too, as relu's); a NaN loss makes the row's gradient NaN. */                          \
CYL_MULTI(double, cyl_row_cat_hinge_##SUFFIX, (                                          \
    const T *y, ptrdiff_t ysb, const T *x, ptrdiff_t sb, ptrdiff_t C,                    \
    T *g, ptrdiff_t gsb, double w), (y, ysb, x, sb, C, g, gsb, w))                       \
{                                                                                        \
    double pos = 0.0, neg = -INFINITY, t, l;                                             \
    ptrdiff_t arg = 0;                                                                   \
    CYL_STRIDED2(T, sb, ysb,                                                             \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C, acc[L] += (double)CYL_AT(T, y, K, YS_) * CYL_AT(T, x, K, S_););  \
        pos = cyl_lanes_total(acc);                                                      \
    );                                                                                   \
    if (!CYL_HINGE_NEG_FAST(SUFFIX, T, y, ysb, x, sb, C, &neg, &arg, g != NULL))         \
        for (ptrdiff_t k = 0; k < C; k++) {                                              \
            double d = (1.0 - CYL_AT(T, y, k, ysb)) * CYL_AT(T, x, k, sb);               \
            if (d > neg || (d != d && neg == neg)) {  /* the first NaN sticks */         \
                neg = d;                                                                 \
                arg = k;                                                                 \
            }                                                                            \
        }                                                                                \
    t = neg - pos + 1.0;                                                                 \
    l = t > 0.0 ? t : (t != t ? t : 0.0);                                                \
    if (g != NULL)                                                                       \
        for (ptrdiff_t k = 0; k < C; k++) {                                              \
            double yk = CYL_AT(T, y, k, ysb);                                            \
            double d = l > 0.0 ? w * ((k == arg ? 1.0 - yk : 0.0) - yk)                  \
                               : (l != l ? l : 0.0);                                     \
            CYL_GAT(T, g, k, gsb) = (T)d;                                                \
        }                                                                                \
    return l;                                                                            \
}                                                                                        \
                                                                                         \
/* Keras's cosine similarity loss -sum_k (y_k a)(x_k b), a = 1 / max(|y|, eps) and       \
 * b = 1 / max(|x|, eps) (ops.normalize: x min(rsqrt(sum x^2), 1 / eps)). Sums whose     \
 * squares overflow are taken again with each row scaled by its largest magnitude, so    \
 * huge finite rows give their cosine, not 0. */                                         \
CYL_MULTI(double, cyl_row_cosine_##SUFFIX, (                                             \
    const T *y, ptrdiff_t ysb, const T *x, ptrdiff_t sb, ptrdiff_t C, double eps,        \
    T *g, ptrdiff_t gsb, double w), (y, ysb, x, sb, C, eps, g, gsb, w))                  \
{                                                                                        \
    double syy = 0.0, sxx = 0.0, syx = 0.0, sy = 1.0, sx = 1.0;                          \
    CYL_STRIDED2(T, sb, ysb,                                                             \
        CYL_LANES_INIT(a_yy);                                                            \
        CYL_LANES_INIT(a_xx);                                                            \
        CYL_LANES_INIT(a_yx);                                                            \
        CYL_FOR_LANES(C, double yv = CYL_AT(T, y, K, YS_);                               \
                         double xv = CYL_AT(T, x, K, S_);                                \
                         a_yy[L] += yv * yv;                                             \
                         a_xx[L] += xv * xv;                                             \
                         a_yx[L] += yv * xv;);                                           \
        syy = cyl_lanes_total(a_yy);                                                     \
        sxx = cyl_lanes_total(a_xx);                                                     \
        syx = cyl_lanes_total(a_yx);                                                     \
    );                                                                                   \
    if (!(isfinite(syy) && isfinite(sxx) && isfinite(syx))) {                            \
        double my = 0.0, mx = 0.0;                                                       \
        for (ptrdiff_t k = 0; k < C; k++) {                                              \
            double yv = fabs((double)CYL_AT(T, y, k, ysb));                              \
            double xv = fabs((double)CYL_AT(T, x, k, sb));                               \
            my = yv > my ? yv : my;                                                      \
            mx = xv > mx ? xv : mx;                                                      \
        }                                                                                \
        if (my > 0.0 && mx > 0.0 && isfinite(my) && isfinite(mx)) {                      \
            CYL_LANES_INIT(a_yy);                                                        \
            CYL_LANES_INIT(a_xx);                                                        \
            CYL_LANES_INIT(a_yx);                                                        \
            CYL_FOR_LANES(C, double yv = CYL_AT(T, y, K, ysb) / my;                      \
                             double xv = CYL_AT(T, x, K, sb) / mx;                       \
                             a_yy[L] += yv * yv;                                         \
                             a_xx[L] += xv * xv;                                         \
                             a_yx[L] += yv * xv;);                                       \
            syy = cyl_lanes_total(a_yy);                                                 \
            sxx = cyl_lanes_total(a_xx);                                                 \
            syx = cyl_lanes_total(a_yx);                                                 \
            sy = my;                                                                     \
            sx = mx;                                                                     \
        }                                                                                \
    }                                                                                    \
    double ny = sy * sqrt(syy), nx = sx * sqrt(sxx);                                     \
    int clamped = !(nx >= eps);                                                          \
    double a = 1.0 / (ny >= eps ? ny : eps), b = 1.0 / (clamped ? eps : nx);             \
    /* cos = (y . x) a b with y . x = sy sx syx */                                       \
    double cos_ = syx * (sy * a) * (sx * b);                                             \
    if (g != NULL)                                                                       \
        for (ptrdiff_t k = 0; k < C; k++) {                                              \
            double yk = CYL_AT(T, y, k, ysb), xk = CYL_AT(T, x, k, sb);                  \
            double d = -(yk * a) * b;                                                    \
            if (!clamped)                                                                \
                d += cos_ * (xk * b) * b;                                                \
            CYL_GAT(T, g, k, gsb) = (T)(cos_ != cos_ ? cos_ : w * d);                    \
        }                                                                                \
    return -cos_;                                                                        \
}

CYL_DEFINE_KL_ROWS(f32, float)
CYL_DEFINE_KL_ROWS(f64, double)
CYL_DEFINE_CATALOGUE_ROWS(f32, float)
CYL_DEFINE_CATALOGUE_ROWS(f64, double)

#endif /* CYLOSS_ROWS_H */
