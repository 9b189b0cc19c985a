/* Row operations of the categorical and sparse cross-entropies, over one row of C classes
 * read through a byte stride (so any class axis is read in place).
 *
 * Each operation is written once and instantiated twice by CYL_STRIDED: for the
 * contiguous stride (a compile-time constant, so the loop vectorises) and for any other
 * stride. Both run the same arithmetic in the same order, with the fixed 8-lane sums of
 * _fastpaths.h, so a row gives the same bits whatever its layout. The functions are
 * compiled for the baseline and for x86-64-v3 where run-time dispatch exists.
 *
 * Log-softmax: with m the row maximum and b the first class holding it,
 *   -log softmax(x)_k = (m - x_k) + lognorm,  lognorm = log1p(sum_{k != b} e^(x_k - m)),
 * and exactly lognorm for k = b. Leaving the argmax term (exactly 1) out of the sum keeps
 * tiny losses of confident, correct rows accurate to the last bit instead of to 1e-16
 * absolute, and a single +inf logit gives the limit 0 instead of inf - inf.
 */
#ifndef CYLOSS_ROWS_H
#define CYLOSS_ROWS_H

#include "_fastpaths.h"

#define CYL_AT(T, x, k, sb) (*(const T *)((const char *)(x) + (ptrdiff_t)(k) * (sb)))

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

/* Run the statements for K = 0 .. C-1 with lane L: K % 8 in the main part, 0 in the tail
 * (the pattern of CYL_LANE_SUM in _fastpaths.h), as an inner loop the compiler vectorises. */
#define CYL_FOR_LANES(C, ...)                                                            \
    do {                                                                                 \
        ptrdiff_t b_ = 0;                                                                \
        for (; b_ + CYL_LANES <= (C); b_ += CYL_LANES)                                   \
            for (int L = 0; L < CYL_LANES; L++) {                                        \
                const ptrdiff_t K = b_ + L;                                              \
                __VA_ARGS__                                                              \
            }                                                                            \
        for (; b_ < (C); b_++) {                                                         \
            const int L = 0;                                                             \
            const ptrdiff_t K = b_;                                                      \
            __VA_ARGS__                                                                  \
        }                                                                                \
    } while (0)

#define CYL_DEFINE_ROWS(SUFFIX, T)                                                       \
                                                                                         \
/* lognorm of a logit row; *m_out = its maximum, *best_out = the first class holding it  \
 * (0 when none does: an all-NaN row, which comes out NaN anyway). */                    \
CYL_CLONES static double cyl_row_logits_##SUFFIX(                                        \
    const T *x, ptrdiff_t sb, ptrdiff_t C, double *m_out, ptrdiff_t *best_out)           \
{                                                                                        \
    double m = -INFINITY, total = 0.0;                                                   \
    ptrdiff_t best = 0;                                                                  \
    CYL_STRIDED(T, sb,                                                                   \
        double mx[CYL_LANES] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,              \
                                -INFINITY, -INFINITY, -INFINITY, -INFINITY};             \
        /* NaN is never the maximum: the comparison is false. */                         \
        CYL_FOR_LANES(C, double v = CYL_AT(T, x, K, S_); mx[L] = v > mx[L] ? v : mx[L];); \
        for (int l = 0; l < CYL_LANES; l++)                                              \
            m = mx[l] > m ? mx[l] : m;                                                   \
        for (ptrdiff_t k = 0; k < C; k++)                                                \
            if ((double)CYL_AT(T, x, k, S_) == m) { best = k; break; }                   \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C, double e = cyl_exp((double)CYL_AT(T, x, K, S_) - m);            \
                         acc[L] += K == best ? 0.0 : e;);                                \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    *m_out = m;                                                                          \
    *best_out = best;                                                                    \
    return cyl_log1p(total);                                                             \
}                                                                                        \
                                                                                         \
/* sum_k cyl_term(q_k, -log softmax(x)_k), q = y (1 - s) + s / C given as keep, spread;  \
 * *bad = 1 when a target lies outside [0, 1]. */                                        \
CYL_CLONES static double cyl_row_soft_xent_##SUFFIX(                                     \
    const T *y, ptrdiff_t ysb, const T *x, ptrdiff_t sb, ptrdiff_t C, double keep,       \
    double spread, double m, ptrdiff_t best, double lognorm, int *bad)                   \
{                                                                                        \
    double total = 0.0;                                                                  \
    int flag = 0;                                                                        \
    CYL_STRIDED2(T, sb, ysb,                                                             \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C,                                                                 \
            double yv = CYL_AT(T, y, K, YS_);                                            \
            double nls = K == best ? lognorm : (m - (double)CYL_AT(T, x, K, S_)) + lognorm; \
            flag |= (yv < 0.0) | (yv > 1.0);                                             \
            acc[L] += cyl_term(yv * keep + spread, nls););                               \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    *bad = flag;                                                                         \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* sum_{k != best} (m - x_k) = C (lse - mean_k x_k) - C lognorm: the smoothing term. */  \
CYL_CLONES static double cyl_row_gap_##SUFFIX(                                           \
    const T *x, ptrdiff_t sb, ptrdiff_t C, double m, ptrdiff_t best)                     \
{                                                                                        \
    double total = 0.0;                                                                  \
    CYL_STRIDED(T, sb,                                                                   \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C, double g = m - (double)CYL_AT(T, x, K, S_);                     \
                         acc[L] += K == best ? 0.0 : g;);                                \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* sum_k cyl_term(cw_k, -log softmax(x)_k), cw contiguous. */                            \
CYL_CLONES static double cyl_row_weighted_nls_##SUFFIX(                                  \
    const T *x, ptrdiff_t sb, ptrdiff_t C, const double *cw, double m, ptrdiff_t best,   \
    double lognorm)                                                                      \
{                                                                                        \
    double total = 0.0;                                                                  \
    CYL_STRIDED(T, sb,                                                                   \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C,                                                                 \
            double nls = K == best ? lognorm : (m - (double)CYL_AT(T, x, K, S_)) + lognorm; \
            acc[L] += cyl_term(cw[K], nls););                                            \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* Sum of a probability row; *negative = 1 when an entry is negative. */                 \
CYL_CLONES static double cyl_row_total_##SUFFIX(                                         \
    const T *x, ptrdiff_t sb, ptrdiff_t C, int *negative)                                \
{                                                                                        \
    double total = 0.0;                                                                  \
    int flag = 0;                                                                        \
    CYL_STRIDED(T, sb,                                                                   \
        CYL_LANES_INIT(acc);                                                             \
        CYL_FOR_LANES(C, double v = CYL_AT(T, x, K, S_); flag |= v < 0.0; acc[L] += v;); \
        total = cyl_lanes_total(acc);                                                    \
    );                                                                                   \
    *negative = flag;                                                                    \
    return total;                                                                        \
}                                                                                        \
                                                                                         \
/* sum_k cyl_term(q_k, -log clip(p_k / total)); *bad = 1 for a target outside [0, 1]. */ \
CYL_CLONES static double cyl_row_prob_soft_xent_##SUFFIX(                                \
    const T *y, ptrdiff_t ysb, const T *x, ptrdiff_t sb, ptrdiff_t C, double total,      \
    double keep, double spread, double lo, double hi, int *bad)                          \
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
CYL_CLONES static double cyl_row_prob_nll_sum_##SUFFIX(                                  \
    const T *x, ptrdiff_t sb, ptrdiff_t C, const double *cw, double total, double lo,    \
    double hi)                                                                           \
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

CYL_DEFINE_ROWS(f32, float)
CYL_DEFINE_ROWS(f64, double)

/* Sparse cross-entropy from logits over contiguous rows of few classes, eight rows at a
 * time (one row per vector lane), for the plain case: no smoothing, class weights,
 * ignored labels, sample weights or per-sample output. Each row's lognorm is computed
 * with exactly the operations and order of cyl_row_logits, and the rows' losses go to
 * sample lanes r % 8 as in the general loop, so the result is the same to the bit; only
 * the per-row overhead is gone. Adds the first n - n % 8 rows' losses to the compensated
 * sum *sums (as cyl_acc_add would, row by row) and returns 0, or returns 1 when a label
 * lies outside [0, C), so that the caller's general loop can report it (*sums is then
 * partly filled: the caller starts it afresh). */
#define CYL_DEFINE_SPARSE_SMALL(SUFFIX, T)                                               \
CYL_CLONES static int cyl_sparse_logits_rows8_##SUFFIX(                                  \
    const T *x, ptrdiff_t C, const int64_t *labels, ptrdiff_t n, cyl_acc *sums)          \
{                                                                                        \
    for (ptrdiff_t r0 = 0; r0 + CYL_LANES <= n; r0 += CYL_LANES) {                       \
        double m[CYL_LANES], acc[CYL_LANES][CYL_LANES];                                  \
        ptrdiff_t best[CYL_LANES];                                                       \
        int bad = 0;                                                                     \
        for (int r = 0; r < CYL_LANES; r++) {                                            \
            int64_t lab = labels[r0 + r];                                                \
            bad |= (lab < 0) | (lab >= C);                                               \
            m[r] = -INFINITY;                                                            \
            best[r] = 0;                                                                 \
            for (int l = 0; l < CYL_LANES; l++)                                          \
                acc[l][r] = 0.0;                                                         \
        }                                                                                \
        if (bad)                                                                         \
            return 1;                                                                    \
        const T *xr = x + r0 * C;                                                        \
        for (ptrdiff_t k = 0; k < C; k++)                                                \
            for (int r = 0; r < CYL_LANES; r++) {                                        \
                double v = xr[r * C + k];                                                \
                m[r] = v > m[r] ? v : m[r];                                              \
            }                                                                            \
        for (ptrdiff_t k = C - 1; k >= 0; k--)   /* the first class holding the max */   \
            for (int r = 0; r < CYL_LANES; r++)                                          \
                best[r] = (double)xr[r * C + k] == m[r] ? k : best[r];                   \
        for (ptrdiff_t k = 0; k < C; k++) {                                              \
            int l = k < (C & ~(ptrdiff_t)7) ? (int)(k & 7) : 0;                          \
            for (int r = 0; r < CYL_LANES; r++) {                                        \
                double e = cyl_exp((double)xr[r * C + k] - m[r]);                        \
                acc[l][r] += k == best[r] ? 0.0 : e;                                     \
            }                                                                            \
        }                                                                                \
        for (int r = 0; r < CYL_LANES; r++) {                                            \
            double total = ((acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r]))           \
                         + ((acc[4][r] + acc[5][r]) + (acc[6][r] + acc[7][r]));          \
            double lognorm = cyl_log1p(total);                                           \
            int64_t lab = labels[r0 + r];                                                \
            double nll = lab == best[r] ? lognorm                                        \
                                        : (m[r] - (double)xr[r * C + lab]) + lognorm;    \
            sums->part[r] += nll;                                                        \
        }                                                                                \
        if (((r0 + 7) & 63) == 63)   /* as cyl_acc_add at offset r0 + 7 */               \
            cyl_acc_fold(sums);                                                          \
    }                                                                                    \
    return 0;                                                                            \
}

CYL_DEFINE_SPARSE_SMALL(f32, float)
CYL_DEFINE_SPARSE_SMALL(f64, double)

#endif /* CYLOSS_ROWS_H */
