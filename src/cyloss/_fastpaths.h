/* Contiguous fast paths: the sum over a block of samples of the per-sample loss, for
 * C-contiguous (n, width) inputs without sample weights or a per-sample output: the case
 * that dominates large reducing calls. _loops.pyx calls them from its OpenMP blocks and
 * falls back to its general strided loops for everything else.
 *
 * Determinism: every sum here uses CYL_LANES accumulators in a fixed pattern (element j of
 * the main part goes to lane j % CYL_LANES, the tail to lane 0; lanes combined by a fixed
 * tree; sums over samples compensated, see cyl_acc), exactly as the general loops in
 * _loops.pyx do, so a contiguous and a strided input give the same bits, and so do all
 * thread counts. The pattern does not depend on
 * the vector width, and setup.py turns off the contraction of a*b+c into FMA, so the
 * x86-64-v3 clone and the baseline compute the same bits: results do not depend on the
 * thread count, the layout, or the CPU.
 *
 * Runtime dispatch: on x86-64 glibc Linux with GCC or clang each function is compiled twice,
 * for the baseline and for x86-64-v3 (AVX2, FMA), and the loader picks one (ifunc).
 * cyl_simd_path() reports which.
 */
#ifndef CYLOSS_FASTPATHS_H
#define CYLOSS_FASTPATHS_H

#include <stddef.h>
#include "_kernels.h"

#define CYL_LANES 8

/* ifunc needs glibc's loader (musl has none); math.h, included above, defines __GLIBC__. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && defined(__GNUC__) \
    && !defined(__INTEL_COMPILER) && !defined(CYLOSS_NO_CLONES)
#define CYL_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define CYL_HAVE_CLONES 1
#else
#define CYL_CLONES
#define CYL_HAVE_CLONES 0
#endif

static const char *cyl_simd_path(void)
{
#if CYL_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "x86-64-v3 (AVX2, FMA), selected at run time";
    return "baseline (x86-64-v3 clone available, CPU lacks AVX2/FMA)";
#else
    return "baseline (no run-time dispatch on this platform)";
#endif
}

CYL_INLINE double cyl_lanes_total(const double *acc)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Sum over n elements of EXPR(y, x) with the plain lane pattern above: the sums inside
 * one sample (over the outputs of a row), which every path computes this same way. */
#define CYL_LANE_SUM(T, t, p, n, EXPR, out)                                              \
    do {                                                                                 \
        double acc_[CYL_LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};               \
        ptrdiff_t i_ = 0;                                                                \
        for (; i_ + CYL_LANES <= (n); i_ += CYL_LANES) {                                 \
            for (int j_ = 0; j_ < CYL_LANES; j_++) {                                     \
                double y = (double)(t)[i_ + j_], x = (double)(p)[i_ + j_];               \
                acc_[j_] += (EXPR);                                                      \
            }                                                                            \
        }                                                                                \
        for (; i_ < (n); i_++) {                                                         \
            double y = (double)(t)[i_], x = (double)(p)[i_];                             \
            acc_[0] += (EXPR);                                                           \
        }                                                                                \
        (out) = cyl_lanes_total(acc_);                                                   \
    } while (0)

/* --- compensated sums over samples -------------------------------------------------------
 * The sums over samples (what reductions divide) are nearly exact, so that one call and
 * the same data fed in batches to an Accumulator agree to ~1e-16, not ~1e-15: element o
 * of a block of n goes to lane o % 8 (o < n - n % 8) or lane 0 (the tail), as above, into
 * a plain partial sum; every 64 elements (8 per lane) each lane's partial is added to the
 * lane's running sum with Neumaier's compensation (Neumaier 1974, "Rundungsfehleranalyse
 * einiger Verfahren zur Summation endlicher Summen"). The compensation costs one step per
 * eight elements, so the loops stay as fast. Every path (fast, strided, cross-row) feeds
 * the same elements in the same order and gets the same bits. */

typedef struct {
    double s[CYL_LANES];      /* running sum of each lane */
    double c[CYL_LANES];      /* its compensation */
    double part[CYL_LANES];   /* plain partial sum since the last fold */
} cyl_acc;

CYL_INLINE void cyl_acc_init(cyl_acc *a)
{
    for (int j = 0; j < CYL_LANES; j++)
        a->s[j] = a->c[j] = a->part[j] = 0.0;
}

/* a where cond holds, else b, by bit masks: GCC leaves a ternary on a floating-point
 * comparison as a branch, and the fold below as scalar code (half the time of a small
 * call went to its mispredicted branches). */
CYL_INLINE double cyl_pick(int cond, double a, double b)
{
    uint64_t m = (uint64_t)(-(int64_t)(cond != 0));
    return cyl_from_bits((cyl_to_bits(a) & m) | (cyl_to_bits(b) & ~m));
}

/* s + v with the rounding error of the addition added to c. Skipped once the sum is
 * infinite or NaN, so that an overflow stays inf (inf - inf would make c NaN). */
CYL_INLINE void cyl_two_sum_add(double *s, double *c, double v)
{
    double sv = *s, t = sv + v;
    double err = cyl_pick(fabs(sv) >= fabs(v), (sv - t) + v, (v - t) + sv);
    *c += cyl_pick(t - t == 0.0, err, 0.0);
    *s = t;
}

#if CYL_HAVE_V8
/* cyl_two_sum_add on each lane, written with GCC/clang vector types: the same operations
 * lane by lane (so the same bits), four lanes per instruction. */
CYL_INLINE void cyl_acc_fold(cyl_acc *a)
{
    const cyl_vi4 magnitude = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    const cyl_vd4 zero = {0.0, 0.0, 0.0, 0.0};
    for (int h = 0; h < CYL_LANES; h += 4) {
        cyl_vd4 s, c, v;
        memcpy(&s, a->s + h, sizeof s);
        memcpy(&c, a->c + h, sizeof c);
        memcpy(&v, a->part + h, sizeof v);
        cyl_vd4 t = s + v;
        cyl_vi4 big = (cyl_vd4)((cyl_vi4)s & magnitude) >= (cyl_vd4)((cyl_vi4)v & magnitude);
        cyl_vi4 err = (big & (cyl_vi4)((s - t) + v)) | (~big & (cyl_vi4)((v - t) + s));
        c += (cyl_vd4)(err & ((t - t) == zero));
        memcpy(a->s + h, &t, sizeof t);
        memcpy(a->c + h, &c, sizeof c);
        memcpy(a->part + h, &zero, sizeof zero);
    }
}
#else
CYL_INLINE void cyl_acc_fold(cyl_acc *a)
{
    for (int j = 0; j < CYL_LANES; j++) {
        cyl_two_sum_add(&a->s[j], &a->c[j], a->part[j]);
        a->part[j] = 0.0;
    }
}
#endif

/* Add element o (offset in the block) of a block of n elements. */
CYL_INLINE void cyl_acc_add(cyl_acc *a, ptrdiff_t o, ptrdiff_t n, double v)
{
    if (o < (n & ~(ptrdiff_t)7)) {
        a->part[o & 7] += v;
        if ((o & 63) == 63)
            cyl_acc_fold(a);
    } else {
        a->part[0] += v;
    }
}

CYL_INLINE double cyl_acc_total(cyl_acc *a)
{
    double s = 0.0, c = 0.0;
    cyl_acc_fold(a);
    for (int j = 0; j < CYL_LANES; j++)
        cyl_two_sum_add(&s, &c, a->s[j]);
    for (int j = 0; j < CYL_LANES; j++)
        c += a->c[j];
    return (s - s == 0.0) ? s + c : s;
}

/* The compensated sum of n elements EXPR(y, x), vectorised: 64 elements (8 per lane) of
 * plain lane sums between folds. Same result as cyl_acc_add on each element in order.
 * CYL_ACC_SUM_EACH also runs STMT for each element (I_ its index), beside the sum. */
#define CYL_ACC_SUM_EACH(T, t, p, n, EXPR, STMT, out)                                    \
    do {                                                                                 \
        cyl_acc A_;                                                                      \
        cyl_acc_init(&A_);                                                               \
        const ptrdiff_t main_ = (n) & ~(ptrdiff_t)7;                                     \
        ptrdiff_t i_ = 0;                                                                \
        for (; i_ + 64 <= main_; i_ += 64) {                                             \
            for (int q_ = 0; q_ < 64; q_ += CYL_LANES)                                   \
                for (int j_ = 0; j_ < CYL_LANES; j_++) {                                 \
                    const ptrdiff_t I_ = i_ + q_ + j_;                                   \
                    double y = (double)(t)[I_], x = (double)(p)[I_];                     \
                    A_.part[j_] += (EXPR);                                               \
                    STMT;                                                                \
                }                                                                        \
            cyl_acc_fold(&A_);                                                           \
        }                                                                                \
        for (; i_ < main_; i_ += CYL_LANES)                                              \
            for (int j_ = 0; j_ < CYL_LANES; j_++) {                                     \
                const ptrdiff_t I_ = i_ + j_;                                            \
                double y = (double)(t)[I_], x = (double)(p)[I_];                         \
                A_.part[j_] += (EXPR);                                                   \
                STMT;                                                                    \
            }                                                                            \
        for (; i_ < (n); i_++) {                                                         \
            const ptrdiff_t I_ = i_;                                                     \
            double y = (double)(t)[I_], x = (double)(p)[I_];                             \
            A_.part[0] += (EXPR);                                                        \
            STMT;                                                                        \
        }                                                                                \
        (out) = cyl_acc_total(&A_);                                                      \
    } while (0)

#define CYL_ACC_SUM(T, t, p, n, EXPR, out) CYL_ACC_SUM_EACH(T, t, p, n, EXPR, (void)0, out)

/* Regression: sum over samples [0, n) of the mean over `width` contiguous elements. For
 * width 1 the samples are the elements, summed in lanes; for wider rows each row is
 * summed in lanes, divided by width, and the row means summed in lanes. One case per
 * loss of CYL_ELEMENTWISE, each a loop over its own kernel (the switch stays outside the
 * loops, so each vectorises); an unknown kind gives NaN. */
#define CYL_SUM_CASE_(NAME, name)                                                        \
    case CYL_##NAME:                                                                     \
        CYL_ACC_SUM(elem_t_, t, p, n, cyl_##name(y, x, param), total);                   \
        break;
#define CYL_ROW_CASE_(NAME, name)                                                        \
    case CYL_##NAME:                                                                     \
        CYL_LANE_SUM(elem_t_, tr, pr, width, cyl_##name(y, x, param), row);              \
        break;
#define CYL_DEFINE_REGRESSION(SUFFIX, T)                                                 \
    CYL_CLONES static double cyl_regression_sum_##SUFFIX(                                \
        int kind, double param, const T *t, const T *p, ptrdiff_t n, ptrdiff_t width)   \
    {                                                                                    \
        typedef T elem_t_;   /* T for the case macros, which are not given it */         \
        double total = 0.0;                                                              \
        if (width == 1) {                                                                \
            switch (kind) {                                                              \
            CYL_ELEMENTWISE(CYL_SUM_CASE_)                                               \
            default: total = NAN; break;                                                 \
            }                                                                            \
            return total;                                                                \
        }                                                                                \
        cyl_acc acc;                                                                     \
        cyl_acc_init(&acc);                                                              \
        for (ptrdiff_t i = 0; i < n; i++) {                                              \
            const elem_t_ *tr = t + i * width, *pr = p + i * width;                      \
            double row;                                                                  \
            switch (kind) {                                                              \
            CYL_ELEMENTWISE(CYL_ROW_CASE_)                                               \
            default: row = NAN; break;                                                   \
            }                                                                            \
            cyl_acc_add(&acc, i, n, row / (double)width);                                \
        }                                                                                \
        return cyl_acc_total(&acc);                                                      \
    }

CYL_DEFINE_REGRESSION(f32, float)
CYL_DEFINE_REGRESSION(f64, double)
#undef CYL_SUM_CASE_
#undef CYL_ROW_CASE_

/* Value and gradient in one pass over n contiguous samples of one output each (no
 * weights): the sum as cyl_regression_sum, and g[i] = d l_i / d p_i, the same bits as the
 * general loop's. */
#define CYL_GRAD_CASE_(NAME, name)                                                       \
    case CYL_##NAME:                                                                     \
        CYL_ACC_SUM_EACH(elem_t_, t, p, n, cyl_##name(y, x, param),                      \
                         g[I_] = (elem_t_)cyl_##name##_grad(y, x, param), total);         \
        break;
#define CYL_DEFINE_REGRESSION_GRAD(SUFFIX, T)                                            \
    CYL_CLONES static double cyl_regression_sum_grad_##SUFFIX(                           \
        int kind, double param, const T *t, const T *p, ptrdiff_t n, T *g)              \
    {                                                                                    \
        typedef T elem_t_;   /* T for the case macros, which are not given it */         \
        double total = 0.0;                                                              \
        switch (kind) {                                                                  \
        CYL_ELEMENTWISE(CYL_GRAD_CASE_)                                                  \
        default: total = NAN; break;                                                     \
        }                                                                                \
        return total;                                                                    \
    }

CYL_DEFINE_REGRESSION_GRAD(f32, float)
CYL_DEFINE_REGRESSION_GRAD(f64, double)
#undef CYL_GRAD_CASE_

/* Binary cross-entropy over n contiguous vectors of one output each (width 1), with one
 * pos_weight. *bad is set when any datum is invalid (the sum is then meaningless); the
 * caller rescans that block serially for the first one, so the hot loop has no branch. */
#define CYL_DEFINE_BINARY(SUFFIX, T, BINARY)                                             \
    CYL_CLONES static double cyl_binary_sum_##SUFFIX(                                    \
        const T *t, const T *p, ptrdiff_t n, double pw, int from_logits, double keep,   \
        double half, double lo, double hi, int *bad)                                     \
    {                                                                                    \
        double total = 0.0;                                                              \
        int flag = 0;                                                                    \
        /* One pass: the validity flag is an OR-reduction beside the sum. */             \
        if (from_logits)                                                                 \
            CYL_ACC_SUM(T, t, p, n, (flag |= cyl_binary_bad(y, x, 1),                    \
                        BINARY(y, x, pw, 1, keep, half, lo, hi)), total);                \
        else                                                                             \
            CYL_ACC_SUM(T, t, p, n, (flag |= cyl_binary_bad(y, x, 0),                    \
                        BINARY(y, x, pw, 0, keep, half, lo, hi)), total);                \
        *bad = flag;                                                                     \
        return total;                                                                    \
    }

CYL_DEFINE_BINARY(f32, float, cyl_binary_f32)
CYL_DEFINE_BINARY(f64, double, cyl_binary)

/* Value and gradient of binary cross-entropy in one pass (width 1, no weights), as
 * cyl_binary_sum plus g[i] = d l_i / d p_i with the general loop's bits. */
#define CYL_DEFINE_BINARY_GRAD(SUFFIX, T, BINARY, GRAD)                                        \
    CYL_CLONES static double cyl_binary_sum_grad_##SUFFIX(                               \
        const T *t, const T *p, ptrdiff_t n, double pw, int from_logits, double keep,   \
        double half, double lo, double hi, int *bad, T *g)                              \
    {                                                                                    \
        double total = 0.0;                                                              \
        int flag = 0;                                                                    \
        if (from_logits)                                                                 \
            CYL_ACC_SUM_EACH(T, t, p, n, (flag |= cyl_binary_bad(y, x, 1),               \
                             BINARY(y, x, pw, 1, keep, half, lo, hi)),                   \
                             g[I_] = (T)GRAD(y, x, pw, 1, keep, half, lo, hi),            \
                             total);                                                     \
        else                                                                             \
            CYL_ACC_SUM_EACH(T, t, p, n, (flag |= cyl_binary_bad(y, x, 0),               \
                             BINARY(y, x, pw, 0, keep, half, lo, hi)),                   \
                             g[I_] = (T)GRAD(y, x, pw, 0, keep, half, lo, hi),            \
                             total);                                                     \
        *bad = flag;                                                                     \
        return total;                                                                    \
    }

CYL_DEFINE_BINARY_GRAD(f32, float, cyl_binary_f32, cyl_binary_grad_f32)
CYL_DEFINE_BINARY_GRAD(f64, double, cyl_binary, cyl_binary_grad)

#endif /* CYLOSS_FASTPATHS_H */
