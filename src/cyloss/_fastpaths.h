/* Contiguous fast paths: the sum over a block of samples of the per-sample loss, for
 * C-contiguous (n, width) inputs without sample weights or a per-sample output: the case
 * that dominates large reducing calls. _loops.pyx calls them from its OpenMP blocks and
 * falls back to its general strided loops for everything else.
 *
 * Determinism: every sum here uses CYL_LANES accumulators in a fixed pattern (element j of
 * the main part goes to lane j % CYL_LANES, the tail to lane 0; lanes combined by a fixed
 * tree), exactly as the general loops in _loops.pyx do, so a contiguous and a strided
 * input give the same bits, and so do all thread counts. The pattern does not depend on
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

/* Sum over n elements of EXPR(y, x), lanes as above. T is float or double. */
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

/* Regression: sum over samples [0, n) of the mean over `width` contiguous elements. For
 * width 1 the samples are the elements, summed in lanes; for wider rows each row is
 * summed in lanes, divided by width, and the row means summed in lanes. */
#define CYL_DEFINE_REGRESSION(SUFFIX, T)                                                 \
    CYL_CLONES static double cyl_regression_sum_##SUFFIX(                                \
        int kind, double param, const T *t, const T *p, ptrdiff_t n, ptrdiff_t width)   \
    {                                                                                    \
        double total = 0.0;                                                              \
        if (width == 1) {                                                                \
            switch (kind) {                                                              \
            case CYL_MSE: CYL_LANE_SUM(T, t, p, n, cyl_mse(y, x), total); break;         \
            case CYL_MAE: CYL_LANE_SUM(T, t, p, n, cyl_mae(y, x), total); break;         \
            case CYL_HUBER: CYL_LANE_SUM(T, t, p, n, cyl_huber(y, x, param), total); break; \
            default: CYL_LANE_SUM(T, t, p, n, cyl_smooth_l1(y, x, param), total); break;  \
            }                                                                            \
            return total;                                                                \
        }                                                                                \
        double acc[CYL_LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};                \
        for (ptrdiff_t i = 0; i < n; i++) {                                              \
            const T *tr = t + i * width, *pr = p + i * width;                            \
            double row;                                                                  \
            switch (kind) {                                                              \
            case CYL_MSE: CYL_LANE_SUM(T, tr, pr, width, cyl_mse(y, x), row); break;     \
            case CYL_MAE: CYL_LANE_SUM(T, tr, pr, width, cyl_mae(y, x), row); break;     \
            case CYL_HUBER: CYL_LANE_SUM(T, tr, pr, width, cyl_huber(y, x, param), row); break; \
            default: CYL_LANE_SUM(T, tr, pr, width, cyl_smooth_l1(y, x, param), row); break; \
            }                                                                            \
            acc[i < (n / CYL_LANES) * CYL_LANES ? i % CYL_LANES : 0] += row / (double)width; \
        }                                                                                \
        return cyl_lanes_total(acc);                                                     \
    }

CYL_DEFINE_REGRESSION(f32, float)
CYL_DEFINE_REGRESSION(f64, double)

/* Binary cross-entropy over n contiguous vectors of one output each (width 1), with one
 * pos_weight. *bad is set when any datum is invalid (the sum is then meaningless); the
 * caller rescans that block serially for the first one, so the hot loop has no branch. */
#define CYL_DEFINE_BINARY(SUFFIX, T)                                                     \
    CYL_CLONES static double cyl_binary_sum_##SUFFIX(                                    \
        const T *t, const T *p, ptrdiff_t n, double pw, int from_logits, double keep,   \
        double half, double lo, double hi, int *bad)                                     \
    {                                                                                    \
        double total = 0.0;                                                              \
        int flag = 0;                                                                    \
        /* One pass: the validity flag is an OR-reduction beside the sum. */             \
        if (from_logits)                                                                 \
            CYL_LANE_SUM(T, t, p, n, (flag |= cyl_binary_bad(y, x, 1),                   \
                         cyl_binary(y, x, pw, 1, keep, half, lo, hi)), total);           \
        else                                                                             \
            CYL_LANE_SUM(T, t, p, n, (flag |= cyl_binary_bad(y, x, 0),                   \
                         cyl_binary(y, x, pw, 0, keep, half, lo, hi)), total);           \
        *bad = flag;                                                                     \
        return total;                                                                    \
    }

CYL_DEFINE_BINARY(f32, float)
CYL_DEFINE_BINARY(f64, double)

#endif /* CYLOSS_FASTPATHS_H */
