/* Contiguous fast paths: the sum over a block of samples of the per-sample loss, for
 * C-contiguous (n, width) inputs without sample weights or a per-sample output: the case
 * that dominates large reducing calls. _loops.pyx calls them from its OpenMP blocks and
 * falls back to its general strided loops for everything else.
 *
 * Determinism: every sum here uses CYL_LANES accumulators in a fixed pattern (element j of
 * the main part goes to lane j % CYL_LANES, the tail to lane 0; lanes combined by a fixed
 * tree; sums over samples compensated, see cyl_acc), exactly as the general loops in
 * _loops.pyx do, so a contiguous and a strided input give the same bits, and so do all
 * thread counts. The pattern does not depend on the vector width, and setup.py turns off
 * the contraction of a*b+c into FMA, so the three SIMD paths below compute the same bits:
 * results do not depend on the thread count, the layout, or the CPU.
 *
 * Runtime dispatch (issue 13): on x86-64 glibc Linux with GCC or clang each function below
 * is compiled three times from one body (CYL_MULTI): for the baseline, for x86-64-v3 (AVX2,
 * FMA, BMI2) and for x86-64-v4 (AVX-512F/BW/CD/DQ/VL). A plain switch on cyl_simd_level
 * picks one per call (one predictable branch; the calls are per block or per row, never
 * per element). _loops.pyx sets the level once at import: the best the CPU has, or the
 * one CYLOSS_SIMD names; tests switch it to compare the paths' bits. Same bits on every
 * path: the lane patterns above are fixed by the shape, FMA contraction is off, and the
 * wider paths only execute the same operations in wider registers.
 */
#ifndef CYLOSS_FASTPATHS_H
#define CYLOSS_FASTPATHS_H

#include <stddef.h>
#include "_kernels.h"

#define CYL_LANES 8

/* The platforms where the wheels have always dispatched at run time (no ifunc is needed
 * any more, but the other platforms keep the baseline they were tested with). */
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && defined(__GNUC__) \
    && !defined(__INTEL_COMPILER) && !defined(CYLOSS_NO_CLONES)
#define CYL_HAVE_CLONES 1
#else
#define CYL_HAVE_CLONES 0
#endif

/* 0 baseline, 1 x86-64-v3 (avx2), 2 x86-64-v4 (avx512). Written only by cyl_simd_set,
 * at import and by the tests' path switch, never while a loop runs. */
static int cyl_simd_level = 0;

/* The best level this CPU (and its OS, for the AVX-512 register state) supports. */
static int cyl_simd_best(void)
{
#if CYL_HAVE_CLONES
    __builtin_cpu_init();
#if defined(__clang__) || __GNUC__ < 12
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
             && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
             && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
             && __builtin_cpu_supports("avx512vl");
#else
    int v3 = __builtin_cpu_supports("x86-64-v3");
    int v4 = v3 && __builtin_cpu_supports("x86-64-v4");
#endif
    return v4 ? 2 : (v3 ? 1 : 0);
#else
    return 0;
#endif
}

/* Set the level, at most the best one; returns the level in force. */
static int cyl_simd_set(int level)
{
    int best = cyl_simd_best();
    cyl_simd_level = level < 0 ? 0 : (level > best ? best : level);
    return cyl_simd_level;
}

/* CYL_MULTI(RET, NAME, (PARAMS), (ARGS)) { BODY }: defines NAME(PARAMS), which runs BODY
 * compiled for the level in force. BODY becomes an always-inline function, inlined into
 * one wrapper per level that carries that level's target attribute, so the compiler
 * generates (and vectorises) it three times; NAME switches between the wrappers. */
#if CYL_HAVE_CLONES
#define CYL_TARGET_V3_ __attribute__((target("arch=x86-64-v3")))
#define CYL_TARGET_V4_ __attribute__((target("arch=x86-64-v4")))
#define CYL_MULTI(RET, NAME, PARAMS, ARGS)                                               \
    CYL_INLINE RET NAME##_body_ PARAMS;                                                  \
    CYL_TARGET_V4_ static RET NAME##_v4_ PARAMS { return NAME##_body_ ARGS; }           \
    CYL_TARGET_V3_ static RET NAME##_v3_ PARAMS { return NAME##_body_ ARGS; }           \
    static RET NAME##_v0_ PARAMS { return NAME##_body_ ARGS; }                           \
    static RET NAME PARAMS                                                               \
    {                                                                                    \
        switch (cyl_simd_level) {                                                        \
        case 2: return NAME##_v4_ ARGS;                                                  \
        case 1: return NAME##_v3_ ARGS;                                                  \
        default: return NAME##_v0_ ARGS;                                                 \
        }                                                                                \
    }                                                                                    \
    CYL_INLINE RET NAME##_body_ PARAMS
#define CYL_MULTI_VOID(NAME, PARAMS, ARGS)                                               \
    CYL_INLINE void NAME##_body_ PARAMS;                                                 \
    CYL_TARGET_V4_ static void NAME##_v4_ PARAMS { NAME##_body_ ARGS; }                  \
    CYL_TARGET_V3_ static void NAME##_v3_ PARAMS { NAME##_body_ ARGS; }                  \
    static void NAME##_v0_ PARAMS { NAME##_body_ ARGS; }                                 \
    static void NAME PARAMS                                                              \
    {                                                                                    \
        switch (cyl_simd_level) {                                                        \
        case 2: NAME##_v4_ ARGS; break;                                                  \
        case 1: NAME##_v3_ ARGS; break;                                                  \
        default: NAME##_v0_ ARGS; break;                                                 \
        }                                                                                \
    }                                                                                    \
    CYL_INLINE void NAME##_body_ PARAMS
#else
#define CYL_MULTI(RET, NAME, PARAMS, ARGS) static RET NAME PARAMS
#define CYL_MULTI_VOID(NAME, PARAMS, ARGS) static void NAME PARAMS
#endif

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

/* The compensated sum of n elements EXPR, vectorised: 64 elements (8 per lane) of plain
 * lane sums between folds. Same result as cyl_acc_add on each element in order. DECL
 * declares what EXPR reads of element I_ (statements without commas), and STMT runs for
 * each element beside the sum. CYL_ACC_SUM_BLOCKS_ takes the sum of a whole block of 64
 * at i_ as BLOCK, which adds into the lanes A_.part as CYL_ACC_BLOCK_ does (the same
 * elements into the same lanes in the same order) but may compute the terms otherwise
 * (CYL_F32_BLOCKS_ below). */
#define CYL_ACC_BLOCK_(DECL, EXPR, STMT)                                                 \
    for (int q_ = 0; q_ < 64; q_ += CYL_LANES)                                           \
        for (int j_ = 0; j_ < CYL_LANES; j_++) {                                         \
            const ptrdiff_t I_ = i_ + q_ + j_;                                           \
            DECL;                                                                        \
            A_.part[j_] += (EXPR);                                                       \
            STMT;                                                                        \
        }
#define CYL_ACC_SUM_BLOCKS_(n, BLOCK, DECL, EXPR, STMT, out)                             \
    do {                                                                                 \
        cyl_acc A_;                                                                      \
        cyl_acc_init(&A_);                                                               \
        const ptrdiff_t main_ = (n) & ~(ptrdiff_t)7;                                     \
        ptrdiff_t i_ = 0;                                                                \
        for (; i_ + 64 <= main_; i_ += 64) {                                             \
            BLOCK;                                                                       \
            cyl_acc_fold(&A_);                                                           \
        }                                                                                \
        for (; i_ < main_; i_ += CYL_LANES)                                              \
            for (int j_ = 0; j_ < CYL_LANES; j_++) {                                     \
                const ptrdiff_t I_ = i_ + j_;                                            \
                DECL;                                                                    \
                A_.part[j_] += (EXPR);                                                   \
                STMT;                                                                    \
            }                                                                            \
        for (; i_ < (n); i_++) {                                                         \
            const ptrdiff_t I_ = i_;                                                     \
            DECL;                                                                        \
            A_.part[0] += (EXPR);                                                        \
            STMT;                                                                        \
        }                                                                                \
        (out) = cyl_acc_total(&A_);                                                      \
    } while (0)
#define CYL_ACC_SUM_GEN(n, DECL, EXPR, STMT, out)                                        \
    CYL_ACC_SUM_BLOCKS_(n, CYL_ACC_BLOCK_(DECL, EXPR, STMT), DECL, EXPR, STMT, out)

/* EXPR(y, x) of two arrays t and p. */
#define CYL_ACC_SUM_EACH(T, t, p, n, EXPR, STMT, out)                                    \
    CYL_ACC_SUM_GEN(n, double y = (double)(t)[I_]; double x = (double)(p)[I_], EXPR, STMT, out)

#define CYL_ACC_SUM(T, t, p, n, EXPR, out) CYL_ACC_SUM_EACH(T, t, p, n, EXPR, (void)0, out)

/* A sum of float32 elements computed in float32 (binary cross-entropy where
 * cyl_binary_f32_ok, log-cosh, MSLE; _kernels.h): each block of 64 elements in two loops,
 * the elements' terms first (TERMS fills term_[0, 64) of the block at i_ in float32:
 * sixteen lanes per AVX-512 vector, no conversion in the loop; its declarations without
 * commas), then their sum in double in CYL_ACC_BLOCK_'s lanes. Where TERMS sets big_ (an
 * element that float32 cannot hold), the block is summed from SLOW instead, the loops'
 * element function, which computes that element in double and the others as TERMS did;
 * so is the part after the last whole block. Same bits as CYL_ACC_SUM_GEN of SLOW. */
#define CYL_F32_BLOCK_(TERMS, SLOW_DECL, SLOW, SLOW_STMT)                                \
    do {                                                                                 \
        float term_[64];                                                                 \
        int big_ = 0;                                                                    \
        TERMS;                                                                           \
        if (!big_) {                                                                     \
            for (int q_ = 0; q_ < 64; q_ += CYL_LANES)                                   \
                for (int j_ = 0; j_ < CYL_LANES; j_++)                                   \
                    A_.part[j_] += (double)term_[q_ + j_];                               \
        } else {                                                                         \
            CYL_ACC_BLOCK_(SLOW_DECL, SLOW, SLOW_STMT)                                   \
        }                                                                                \
    } while (0)
#define CYL_F32_BLOCKS_(n, TERMS, SLOW_DECL, SLOW, SLOW_STMT, out)                      \
    CYL_ACC_SUM_BLOCKS_(n, CYL_F32_BLOCK_(TERMS, SLOW_DECL, SLOW, SLOW_STMT),           \
                        SLOW_DECL, SLOW, SLOW_STMT, out)

/* The float32 data of element I_ for SLOW, and the float32 weights for TERMS. */
#define CYL_F32_SLOW_DECL_ double y = (double)t[I_]; double x = (double)p[I_]
#define CYL_F32_WEIGHTS_                                                                 \
    const float pwf = (float)pw, keepf = (float)keep, halff = (float)half

/* Regression: sum over samples [0, n) of the mean over `width` contiguous elements. For
 * width 1 the samples are the elements, summed in lanes; for wider rows each row is
 * summed in lanes, divided by width, and the row means summed in lanes. One case per
 * loss of CYL_ELEMENTWISE, each a loop over its own kernel (the switch stays outside the
 * loops, so each vectorises); an unknown kind gives NaN. */
/* The value kernel of a loss for the element type being instantiated: CYL_VALUE_ is
 * defined as one of these around each instantiation below (the case macros expand it
 * there). */
#define CYL_VALUE_F64_(name, name32) cyl_##name
#define CYL_VALUE_F32_(name, name32) cyl_##name32
#define CYL_SUM_CASE_(NAME, name, name32)                                                \
    case CYL_##NAME:                                                                     \
        CYL_ACC_SUM(elem_t_, t, p, n, CYL_VALUE_(name, name32)(y, x, param), total);     \
        break;
#define CYL_ROW_CASE_(NAME, name, name32)                                                \
    case CYL_##NAME:                                                                     \
        CYL_LANE_SUM(elem_t_, tr, pr, width, CYL_VALUE_(name, name32)(y, x, param), row); \
        break;
#define CYL_DEFINE_REGRESSION(SUFFIX, T)                                                 \
    CYL_MULTI(double, cyl_regression_sum_##SUFFIX, (                                     \
        int kind, double param, const T *t, const T *p, ptrdiff_t n, ptrdiff_t width),   \
            (kind, param, t, p, n, width))                                               \
    {                                                                                    \
        typedef T elem_t_;   /* T for the case macros, which are not given it */         \
        double total = 0.0;                                                              \
        if (width == 1) {                                                                \
            CYL_REG_FLOAT_                                                               \
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

/* float32 log-cosh and MSLE, whose elements are float32 end to end (cyl_log_cosh_ff,
 * cyl_msle_ff), by blocks of float32 terms (CYL_F32_BLOCKS_: sixteen lanes per AVX-512
 * vector, where the loop of their double-valued case runs eight): the case's bits. */
#define CYL_REG_FF_(KIND, FF)                                                            \
    if (kind == KIND) {                                                                  \
        CYL_F32_BLOCKS_(n, for (int k_ = 0; k_ < 64; k_++)                               \
                               term_[k_] = FF(t[i_ + k_], p[i_ + k_]),                   \
                        CYL_F32_SLOW_DECL_, (double)FF((float)y, (float)x), (void)0,      \
                        total);                                                          \
        return total;                                                                    \
    }
/* float32 Poisson and Poisson NLL, whose elements are computed in double (their sums
 * cancel; _kernels.h), by blocks widened to double first: the loop over the doubles runs
 * eight lanes per AVX-512 vector, where GCC 12 keeps the loop over float32 loads at
 * four. The case's bits. */
#define CYL_WIDE_BLOCK_(FN)                                                              \
    do {                                                                                 \
        double yd_[64];                                                                  \
        double xd_[64];                                                                  \
        for (int k_ = 0; k_ < 64; k_++) {                                                \
            yd_[k_] = (double)t[i_ + k_];                                                \
            xd_[k_] = (double)p[i_ + k_];                                                \
        }                                                                                \
        CYL_ACC_BLOCK_(double y = yd_[I_ - i_]; double x = xd_[I_ - i_],                 \
                       FN(y, x, param), (void)0)                                         \
    } while (0)
#define CYL_REG_WIDE_(KIND, FN)                                                          \
    if (kind == KIND) {                                                                  \
        CYL_ACC_SUM_BLOCKS_(n, CYL_WIDE_BLOCK_(FN), CYL_F32_SLOW_DECL_, FN(y, x, param), \
                            (void)0, total);                                             \
        return total;                                                                    \
    }
/* float32 Poisson and Poisson NLL from log-input, widened as above, with their
 * functions' special cases left out where the block's elements all satisfy OK: TERM in
 * double then (Poisson: cyl_log_f32_normal where p + eps is normal and finite; Poisson
 * NLL: cyl_exp_f32_clamped where |x| <= 700, and y x without cyl_term's guard, which for
 * a finite x only turns a -0 into the 0 that e^x - y x cannot show); else the block as
 * CYL_WIDE_BLOCK_ of the loss's function FN. The case's bits either way. */
#define CYL_CHECKED_BLOCK_(OK, TERM, FN)                                                 \
    do {                                                                                 \
        double term_[64];                                                                \
        int normal_ = 1;                                                                 \
        for (int k_ = 0; k_ < 64; k_++) {                                                \
            const double y = (double)t[i_ + k_];                                         \
            const double x = (double)p[i_ + k_];                                         \
            normal_ &= (OK);                                                             \
            term_[k_] = (TERM);                                                          \
        }                                                                                \
        if (normal_) {                                                                   \
            for (int q_ = 0; q_ < 64; q_ += CYL_LANES)                                   \
                for (int j_ = 0; j_ < CYL_LANES; j_++)                                   \
                    A_.part[j_] += term_[q_ + j_];                                       \
        } else {                                                                         \
            CYL_WIDE_BLOCK_(FN);                                                         \
        }                                                                                \
    } while (0)
#define CYL_REG_CHECKED_(KIND, OK, TERM, FN)                                             \
    if (kind == KIND) {                                                                  \
        CYL_ACC_SUM_BLOCKS_(n, CYL_CHECKED_BLOCK_(OK, TERM, FN), CYL_F32_SLOW_DECL_,     \
                            FN(y, x, param), (void)0, total);                            \
        return total;                                                                    \
    }
#define CYL_VALUE_ CYL_VALUE_F32_
#define CYL_REG_FLOAT_                                                                   \
    CYL_REG_FF_(CYL_LOG_COSH, cyl_log_cosh_ff) CYL_REG_FF_(CYL_MSLE, cyl_msle_ff)        \
    CYL_REG_CHECKED_(CYL_POISSON,                                                        \
                     (x + CYL_KERAS_EPS >= 2.2250738585072014e-308)                      \
                     & (x + CYL_KERAS_EPS <= 1.7976931348623157e308),                    \
                     x - y * cyl_log_f32_normal(x + CYL_KERAS_EPS, 0.0), cyl_poisson_f32) \
    CYL_REG_CHECKED_(CYL_POISSON_NLL_LOG, fabs(x) <= 700.0,                              \
                     cyl_exp_f32_clamped(x) - y * x, cyl_poisson_nll_log_f32)            \
    CYL_REG_WIDE_(CYL_POISSON_NLL, cyl_poisson_nll_f32)
CYL_DEFINE_REGRESSION(f32, float)
#undef CYL_VALUE_
#undef CYL_REG_FLOAT_
#define CYL_VALUE_ CYL_VALUE_F64_
#define CYL_REG_FLOAT_
CYL_DEFINE_REGRESSION(f64, double)
#undef CYL_VALUE_
#undef CYL_REG_FLOAT_
#undef CYL_REG_FF_
#undef CYL_REG_WIDE_
#undef CYL_WIDE_BLOCK_
#undef CYL_CHECKED_BLOCK_
#undef CYL_REG_CHECKED_
#undef CYL_SUM_CASE_
#undef CYL_ROW_CASE_

/* Value and gradient in one pass over n contiguous samples of one output each (no
 * weights): the sum as cyl_regression_sum, and g[i] = d l_i / d p_i, the same bits as the
 * general loop's. */
#define CYL_GRAD_CASE_(NAME, name, name32)                                               \
    case CYL_##NAME:                                                                     \
        CYL_ACC_SUM_EACH(elem_t_, t, p, n, CYL_VALUE_(name, name32)(y, x, param),        \
                         g[I_] = (elem_t_)(gscale * cyl_##name##_grad(y, x, param)),      \
                         total);                                                         \
        break;
#define CYL_DEFINE_REGRESSION_GRAD(SUFFIX, T)                                            \
    CYL_MULTI(double, cyl_regression_sum_grad_##SUFFIX, (                                \
        int kind, double param, const T *t, const T *p, ptrdiff_t n, double gscale,     \
        T *g), (kind, param, t, p, n, gscale, g))                                        \
    {                                                                                    \
        typedef T elem_t_;   /* T for the case macros, which are not given it */         \
        double total = 0.0;                                                              \
        switch (kind) {                                                                  \
        CYL_ELEMENTWISE(CYL_GRAD_CASE_)                                                  \
        default: total = NAN; break;                                                     \
        }                                                                                \
        return total;                                                                    \
    }

#define CYL_VALUE_ CYL_VALUE_F32_
CYL_DEFINE_REGRESSION_GRAD(f32, float)
#undef CYL_VALUE_
#define CYL_VALUE_ CYL_VALUE_F64_
CYL_DEFINE_REGRESSION_GRAD(f64, double)
#undef CYL_VALUE_
#undef CYL_GRAD_CASE_

/* Binary cross-entropy over n contiguous vectors of one output each (width 1), with one
 * pos_weight. *bad is set when any datum is invalid (the sum is then meaningless); the
 * caller rescans that block serially for the first one, so the hot loop has no branch. */
#define CYL_DEFINE_BINARY(SUFFIX, T, BINARY)                                             \
    CYL_MULTI(double, cyl_binary_sum_##SUFFIX, (                                         \
        const T *t, const T *p, ptrdiff_t n, double pw, int from_logits, double keep,   \
        double half, double lo, double hi, int *bad),                                    \
            (t, p, n, pw, from_logits, keep, half, lo, hi, bad))                         \
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

CYL_DEFINE_BINARY(f32_any, float, cyl_binary_f32)
CYL_DEFINE_BINARY(f64, double, cyl_binary)


/* The terms of a block from float32 logits (cyl_bce_logit_ff_fin: a block with a NaN or a
 * logit beyond 2^64 is summed from SLOW), then GRAD_STMT with a, b, x and e in scope.
 * PLAIN (pos_weight 1, no smoothing) takes a = y, b = 1 - y: what CYL_BCE_WEIGHTS_F
 * gives then, in two operations fewer. */
#define CYL_BCE_LOGIT_TERMS_F_(PLAIN, GRAD_STMT)                                        \
    for (int k_ = 0; k_ < 64; k_++) {                                                    \
        const float y = t[i_ + k_];                                                      \
        const float x = p[i_ + k_];                                                      \
        float a;                                                                         \
        float b;                                                                         \
        if (PLAIN) {                                                                     \
            a = y;                                                                       \
            b = 1.0f - y;                                                                \
        } else {                                                                         \
            CYL_BCE_WEIGHTS_F(y, pwf, keepf, halff, a, b);                               \
        }                                                                                \
        const float e = cyl_expf_nonpos(-fabsf(x));                                      \
        flag |= (y < 0.0f) | (y > 1.0f);                                                 \
        big_ |= !(fabsf(x) <= 0x1p64f);                                                  \
        term_[k_] = cyl_bce_logit_ff_fin(a, b, x, e);                                    \
        GRAD_STMT;                                                                       \
    }
#define CYL_BCE_LOGIT_SLOW_F_                                                            \
    (flag |= cyl_binary_bad(y, x, 1), cyl_binary_f32(y, x, pw, 1, keep, half, lo, hi))

CYL_MULTI(double, cyl_binary_sum_f32, (
    const float *t, const float *p, ptrdiff_t n, double pw, int from_logits, double keep,
    double half, double lo, double hi, int *bad),
        (t, p, n, pw, from_logits, keep, half, lo, hi, bad))
{
    double total = 0.0;
    int flag = 0;
    CYL_F32_WEIGHTS_;
    if (!cyl_binary_f32_ok(pw, 0.0, 0))
        return cyl_binary_sum_f32_any(t, p, n, pw, from_logits, keep, half, lo, hi, bad);
    if (from_logits) {
        if (pw == 1.0 && keep == 1.0 && half == 0.0)
            CYL_F32_BLOCKS_(n, CYL_BCE_LOGIT_TERMS_F_(1, (void)0), CYL_F32_SLOW_DECL_,
                            CYL_BCE_LOGIT_SLOW_F_, (void)0, total);
        else
            CYL_F32_BLOCKS_(n, CYL_BCE_LOGIT_TERMS_F_(0, (void)0), CYL_F32_SLOW_DECL_,
                            CYL_BCE_LOGIT_SLOW_F_, (void)0, total);
    } else {
        CYL_BCE_PROB_BOUNDS_F(lo, hi);
        CYL_F32_BLOCKS_(n,
            for (int k_ = 0; k_ < 64; k_++) {
                const float y = t[i_ + k_];
                const float x = p[i_ + k_];
                flag |= (y < 0.0f) | (y > 1.0f) | (x < 0.0f) | (x > 1.0f);
                term_[k_] = cyl_bce_prob_ff(y, x, pwf, keepf, halff, slo_low_, llo_low_,
                                            slo_high_, llo_high_);
            },
            CYL_F32_SLOW_DECL_,
            (flag |= cyl_binary_bad(y, x, 0),
             cyl_binary_f32(y, x, pw, 0, keep, half, lo, hi)), (void)0, total);
    }
    *bad = flag;
    return total;
}

/* Value and gradient of binary cross-entropy in one pass (width 1, no weights), as
 * cyl_binary_sum plus g[i] = d l_i / d p_i with the general loop's bits. */
#define CYL_DEFINE_BINARY_GRAD(SUFFIX, T, BINARY, GRAD)                                  \
    CYL_MULTI(double, cyl_binary_sum_grad_##SUFFIX, (                                    \
        const T *t, const T *p, ptrdiff_t n, double pw, int from_logits, double keep,   \
        double half, double lo, double hi, double gscale, int *bad, T *g),               \
            (t, p, n, pw, from_logits, keep, half, lo, hi, gscale, bad, g))              \
    {                                                                                    \
        double total = 0.0;                                                              \
        int flag = 0;                                                                    \
        if (from_logits)                                                                 \
            CYL_ACC_SUM_EACH(T, t, p, n, (flag |= cyl_binary_bad(y, x, 1),               \
                             BINARY(y, x, pw, 1, keep, half, lo, hi)),                   \
                             g[I_] = (T)(gscale                                  \
                                         * GRAD(y, x, pw, 1, keep, half, lo, hi)),     \
                             total);                                                     \
        else                                                                             \
            CYL_ACC_SUM_EACH(T, t, p, n, (flag |= cyl_binary_bad(y, x, 0),               \
                             BINARY(y, x, pw, 0, keep, half, lo, hi)),                   \
                             g[I_] = (T)(gscale                                  \
                                         * GRAD(y, x, pw, 0, keep, half, lo, hi)),     \
                             total);                                                     \
        *bad = flag;                                                                     \
        return total;                                                                    \
    }

CYL_DEFINE_BINARY_GRAD(f32_any, float, cyl_binary_f32, cyl_binary_grad_f32)
CYL_DEFINE_BINARY_GRAD(f64, double, cyl_binary, cyl_binary_grad)

/* The gradient's element in the blocks (GRAD_STMT) and in SLOW. */
#define CYL_BCE_LOGIT_GRAD_STMT_F_                                                       \
    g[i_ + k_] = (float)(gscale * (double)cyl_bce_logit_grad_ff_fin(a, b, x, e))
#define CYL_BCE_LOGIT_GRAD_SLOW_F_                                                       \
    g[I_] = (float)(gscale * cyl_binary_grad_f32(y, x, pw, 1, keep, half, lo, hi))

/* Float32 from logits in float32, as cyl_binary_sum_f32, with g[i] written in TERMS:
 * e^-|x| computed once for the term and the derivative. */
CYL_MULTI(double, cyl_binary_sum_grad_f32, (
    const float *t, const float *p, ptrdiff_t n, double pw, int from_logits, double keep,
    double half, double lo, double hi, double gscale, int *bad, float *g),
        (t, p, n, pw, from_logits, keep, half, lo, hi, gscale, bad, g))
{
    double total = 0.0;
    int flag = 0;
    CYL_F32_WEIGHTS_;
    if (!from_logits || !cyl_binary_f32_ok(pw, 0.0, 0))
        return cyl_binary_sum_grad_f32_any(t, p, n, pw, from_logits, keep, half, lo, hi,
                                           gscale, bad, g);
    if (pw == 1.0 && keep == 1.0 && half == 0.0)
        CYL_F32_BLOCKS_(n, CYL_BCE_LOGIT_TERMS_F_(1, CYL_BCE_LOGIT_GRAD_STMT_F_),
                        CYL_F32_SLOW_DECL_, CYL_BCE_LOGIT_SLOW_F_,
                        CYL_BCE_LOGIT_GRAD_SLOW_F_, total);
    else
        CYL_F32_BLOCKS_(n, CYL_BCE_LOGIT_TERMS_F_(0, CYL_BCE_LOGIT_GRAD_STMT_F_),
                        CYL_F32_SLOW_DECL_, CYL_BCE_LOGIT_SLOW_F_,
                        CYL_BCE_LOGIT_GRAD_SLOW_F_, total);
    *bad = flag;
    return total;
}

/* The three-array losses over n contiguous samples of one element each, without weights:
 * the sums of their general loops (_pairs.pxi), same bits. Gaussian NLL sets *bad when a
 * variance is negative (the caller then rescans the block for the first one). */
#define CYL_DEFINE_THREE(SUFFIX, T, GAUSSIAN, GAUSSIAN_BLOCK)                            \
    CYL_MULTI(double, cyl_ranking_sum_##SUFFIX, (                                        \
        const T *t, const T *x1, const T *x2, ptrdiff_t n, double margin),               \
            (t, x1, x2, n, margin))                                                      \
    {                                                                                    \
        double total;                                                                    \
        CYL_ACC_SUM_GEN(n, double y = (double)t[I_]; double a = (double)x1[I_];          \
                        double b = (double)x2[I_],                                       \
                        cyl_margin_ranking(y, a, b, margin), (void)0, total);            \
        return total;                                                                    \
    }                                                                                    \
    CYL_MULTI(double, cyl_gaussian_sum_##SUFFIX, (                                       \
        const T *t, const T *x, const T *var, ptrdiff_t n, double eps, double extra,    \
        int *bad), (t, x, var, n, eps, extra, bad))                                      \
    {                                                                                    \
        double total;                                                                    \
        int flag = 0;                                                                    \
        CYL_ACC_SUM_BLOCKS_(n, GAUSSIAN_BLOCK,                                           \
                            CYL_GAUSSIAN_DECL_(t[I_], x[I_], var[I_]),                   \
                            CYL_GAUSSIAN_TERM_(GAUSSIAN), (void)0, total);               \
        *bad = flag;                                                                     \
        return total;                                                                    \
    }

/* Gaussian NLL's element I_ (the loop's element function GAUSSIAN) and its blocks: as
 * they come for float64, and for float32 widened to double first (as CYL_WIDE_BLOCK_:
 * eight lanes per AVX-512 vector instead of four; same bits). */
#define CYL_GAUSSIAN_DECL_(A, B, C)                                                      \
    double y = (double)(A); double p = (double)(B); double v = (double)(C)
#define CYL_GAUSSIAN_TERM_(GAUSSIAN)                                                     \
    (flag |= cyl_gaussian_bad(v), GAUSSIAN(y, p, v, eps) + extra)
#define CYL_GAUSSIAN_BLOCK_F64_                                                          \
    CYL_ACC_BLOCK_(CYL_GAUSSIAN_DECL_(t[I_], x[I_], var[I_]),                            \
                   CYL_GAUSSIAN_TERM_(cyl_gaussian_nll), (void)0)
#define CYL_GAUSSIAN_BLOCK_F32_                                                          \
    do {                                                                                 \
        double yd_[64];                                                                  \
        double pd_[64];                                                                  \
        double vd_[64];                                                                  \
        for (int k_ = 0; k_ < 64; k_++) {                                                \
            yd_[k_] = (double)t[i_ + k_];                                                \
            pd_[k_] = (double)x[i_ + k_];                                                \
            vd_[k_] = (double)var[i_ + k_];                                              \
        }                                                                                \
        CYL_ACC_BLOCK_(CYL_GAUSSIAN_DECL_(yd_[I_ - i_], pd_[I_ - i_], vd_[I_ - i_]),     \
                       CYL_GAUSSIAN_TERM_(cyl_gaussian_nll_f32), (void)0)                \
    } while (0)

CYL_DEFINE_THREE(f32, float, cyl_gaussian_nll_f32, CYL_GAUSSIAN_BLOCK_F32_)
CYL_DEFINE_THREE(f64, double, cyl_gaussian_nll, CYL_GAUSSIAN_BLOCK_F64_)

/* Keras's dice (dice != 0) and tversky: the three sums over n contiguous elements of a row
 * (or of a piece of one), in one pass with the lane pattern of CYL_LANE_SUM each, the
 * bits of _pairs.pxi's strided loop: out[0] = sum y p; dice: out[1] = sum y,
 * out[2] = sum p; tversky: out[1] = sum (1 - p) y, out[2] = sum p (1 - y). */
#define CYL_OVERLAP_LANES_(T1, T2)                                                       \
    do {                                                                                 \
        for (; i + CYL_LANES <= n; i += CYL_LANES)                                       \
            for (int j = 0; j < CYL_LANES; j++) {                                        \
                double y = (double)t[i + j], x = (double)p[i + j];                       \
                a0[j] += y * x;                                                          \
                a1[j] += (T1);                                                           \
                a2[j] += (T2);                                                           \
            }                                                                            \
        for (; i < n; i++) {                                                             \
            double y = (double)t[i], x = (double)p[i];                                   \
            a0[0] += y * x;                                                              \
            a1[0] += (T1);                                                               \
            a2[0] += (T2);                                                               \
        }                                                                                \
    } while (0)
#if CYL_HAVE_V8
/* The eight lanes of CYL_OVERLAP_LANES_'s main loop held in vector registers: GCC
 * vectorised the array form only element by element (a scalar conversion and add per
 * element, twice the time of reading the inputs). Lane j still adds elements j, j + 8,
 * ... in order with the same double operations, so the same bits. LOAD8(q, lo, hi) puts
 * elements q[0..3] and q[4..7], in double, into lo and hi. */
#define CYL_OVERLAP_V8_(LOAD8, T1, T2)                                                   \
    do {                                                                                 \
        const cyl_vd4 z_ = {0.0, 0.0, 0.0, 0.0};                                         \
        cyl_vd4 s0[2] = {z_, z_}, s1[2] = {z_, z_}, s2[2] = {z_, z_};                    \
        for (; i + CYL_LANES <= n; i += CYL_LANES) {                                     \
            cyl_vd4 yv[2], xv[2];                                                        \
            LOAD8(t + i, yv[0], yv[1]);                                                  \
            LOAD8(p + i, xv[0], xv[1]);                                                  \
            for (int h_ = 0; h_ < 2; h_++) {                                             \
                const cyl_vd4 y = yv[h_], x = xv[h_];                                    \
                s0[h_] += y * x;                                                         \
                s1[h_] += (T1);                                                          \
                s2[h_] += (T2);                                                          \
            }                                                                            \
        }                                                                                \
        memcpy(a0, s0, sizeof a0);                                                       \
        memcpy(a1, s1, sizeof a1);                                                       \
        memcpy(a2, s2, sizeof a2);                                                       \
    } while (0)
#define CYL_LOAD8_f32_(q, lo, hi)                                                        \
    do {                                                                                 \
        cyl_vf8 v_;                                                                      \
        memcpy(&v_, (q), sizeof v_);                                                     \
        CYL_VF8_WIDEN(v_, lo, hi);                                                       \
    } while (0)
#define CYL_LOAD8_f64_(q, lo, hi)                                                        \
    do {                                                                                 \
        memcpy(&(lo), (q), sizeof(lo));                                                  \
        memcpy(&(hi), (q) + 4, sizeof(hi));                                              \
    } while (0)
#define CYL_OVERLAP_FAST_(SUFFIX)                                                        \
    do {                                                                                 \
        if (dice)                                                                        \
            CYL_OVERLAP_V8_(CYL_LOAD8_##SUFFIX##_, y, x);                                \
        else                                                                             \
            CYL_OVERLAP_V8_(CYL_LOAD8_##SUFFIX##_, (1.0 - x) * y, x * (1.0 - y));        \
    } while (0)
#else
#define CYL_OVERLAP_FAST_(SUFFIX) (void)0
#endif
#define CYL_DEFINE_OVERLAP(SUFFIX, T)                                                    \
    CYL_MULTI_VOID(cyl_overlap_sums_##SUFFIX, (int dice, const T *t, const T *p,         \
                                                     ptrdiff_t n, double *out),          \
                                                         (dice, t, p, n, out))           \
    {                                                                                    \
        double a0[CYL_LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};                 \
        double a1[CYL_LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};                 \
        double a2[CYL_LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};                 \
        ptrdiff_t i = 0;                                                                 \
        CYL_OVERLAP_FAST_(SUFFIX);                                                       \
        if (dice)                                                                        \
            CYL_OVERLAP_LANES_(y, x);                                                    \
        else                                                                             \
            CYL_OVERLAP_LANES_((1.0 - x) * y, x * (1.0 - y));                            \
        out[0] = cyl_lanes_total(a0);                                                    \
        out[1] = cyl_lanes_total(a1);                                                    \
        out[2] = cyl_lanes_total(a2);                                                    \
    }

CYL_DEFINE_OVERLAP(f32, float)
CYL_DEFINE_OVERLAP(f64, double)

/* 1 when each of n contiguous values is 0 or 1 (Keras's hinge label rule, see
 * cyl_hinge_label), else 0: blocks of 4096 checked without branches (vectorised), stopping
 * after the first block that holds another value (NaN included). */
#define CYL_DEFINE_ALL_BINARY(SUFFIX, T)                                                 \
    CYL_MULTI(int, cyl_all_binary_##SUFFIX, (const T *v, ptrdiff_t n), (v, n))           \
    {                                                                                    \
        for (ptrdiff_t s = 0; s < n; s += 4096) {                                        \
            const ptrdiff_t e = n - s < 4096 ? n : s + 4096;                             \
            int other = 0;                                                               \
            for (ptrdiff_t i = s; i < e; i++)                                            \
                other |= (v[i] != (T)0) & (v[i] != (T)1);                                \
            if (other)                                                                   \
                return 0;                                                                \
        }                                                                                \
        return 1;                                                                        \
    }

CYL_DEFINE_ALL_BINARY(f32, float)
CYL_DEFINE_ALL_BINARY(f64, double)

/* Binary cross-entropy over n contiguous rows of `width` outputs, without weights: the
 * sum over rows of each row's mean of BINARY(y, x, pw_k) (pw_k = pw[k * pw_step]; times
 * cw_k with class weights: multilabel soft margin, else plain), the bits of the general
 * loop (_binary_row and _focal_row: element k in lane k % 8 of the row's main part, the
 * tail in lane 0, cyl_lanes_total / width; the rows compensated as cyl_acc_add). The
 * elements of up to CYL_ROWS_CHUNK_ values are computed first, in one flat loop (rows of
 * 10 leave a per-row loop mostly scalar: 11-17 ns an element), then summed row by row
 * from that buffer. *bad is set for an invalid datum, or for rows wider than the buffer;
 * the caller then runs the general loop. */
#define CYL_ROWS_CHUNK_ 2048
/* The terms of one chunk, from_logits (LOGITS) a constant so that the loop vectorises. */
#define CYL_BROWS_TERMS_(BINARY, LOGITS, TERM)                                           \
    do {                                                                                 \
        for (ptrdiff_t j = 0; j < len; j++) {                                            \
            double y = (double)tc[j], x = (double)pc[j];                                 \
            flag |= cyl_binary_bad(y, x, LOGITS);                                        \
            double v_ = BINARY(y, x, pwt[j], LOGITS, keep, half, lo, hi);                \
            e[j] = TERM;                                                                 \
        }                                                                                \
    } while (0)
/* The same for float32 data when every pos_weight passes cyl_binary_f32_ok: the element
 * in float32 (cyl_binary_f32's form for such weights), big set where a logit is beyond
 * float32's reach (the chunk is then redone by CYL_BROWS_TERMS_). */
#define CYL_BROWS_TERMS_F_(LOGITS, TERM)                                                 \
    do {                                                                                 \
        for (ptrdiff_t j = 0; j < len; j++) {                                            \
            const float yf = (float)tc[j], xf = (float)pc[j];                            \
            double y = (double)yf, x = (double)xf;                                       \
            flag |= cyl_binary_bad(y, x, LOGITS);                                        \
            big |= LOGITS & !(fabsf(xf) <= 0x1p64f);                                      \
            double v_ = LOGITS ? (double)cyl_bce_logit_ff(yf, xf, pwf[j], keepf, halff)  \
                               : (double)cyl_bce_prob_ff(yf, xf, pwf[j], keepf, halff,   \
                                                         slo_low_, llo_low_, slo_high_,  \
                                                         llo_high_);                     \
            e[j] = TERM;                                                                 \
        }                                                                                \
    } while (0)
#define CYL_BROWS_ALL_(BINARY, TERMS, ...)                                               \
    do {                                                                                 \
        if (from_logits) {                                                               \
            if (cw != NULL) TERMS(__VA_ARGS__ 1, cyl_term(cwt[j], v_));                  \
            else TERMS(__VA_ARGS__ 1, v_);                                               \
        } else {                                                                         \
            if (cw != NULL) TERMS(__VA_ARGS__ 0, cyl_term(cwt[j], v_));                  \
            else TERMS(__VA_ARGS__ 0, v_);                                               \
        }                                                                                \
    } while (0)
#define CYL_DEFINE_BINARY_ROWS(SUFFIX, T, BINARY, F32)                                   \
    CYL_MULTI(double, cyl_binary_rows_sum_##SUFFIX, (                                    \
        const T *t, const T *p, ptrdiff_t n, ptrdiff_t width, const double *pw,          \
        ptrdiff_t pw_step, const double *cw, int from_logits, double keep, double half,  \
        double lo, double hi, int *bad),                                                 \
        (t, p, n, width, pw, pw_step, cw, from_logits, keep, half, lo, hi, bad))         \
    {                                                                                    \
        double e[CYL_ROWS_CHUNK_], pwt[CYL_ROWS_CHUNK_], cwt[CYL_ROWS_CHUNK_];           \
        float pwf[F32 ? CYL_ROWS_CHUNK_ : 1];                                            \
        int flag = 0, fast = F32;                                                        \
        const float keepf = (float)keep, halff = (float)half;                            \
        CYL_BCE_PROB_BOUNDS_F(lo, hi);                                                   \
        cyl_acc A;                                                                       \
        if (width < 1 || width > CYL_ROWS_CHUNK_) { *bad = 1; return 0.0; }              \
        const ptrdiff_t rows = CYL_ROWS_CHUNK_ / width;                                  \
        cyl_acc_init(&A);                                                                \
        for (ptrdiff_t j = 0; j < rows * width; j++) {                                   \
            pwt[j] = pw[(j % width) * pw_step];                                          \
            fast &= cyl_binary_f32_ok(pwt[j], 0.0, 0);                                   \
        }                                                                                \
        if (fast)                                                                        \
            for (ptrdiff_t j = 0; j < rows * width; j++)                                 \
                pwf[j] = (float)pwt[j];                                                  \
        if (cw != NULL)                                                                  \
            for (ptrdiff_t j = 0; j < rows * width; j++)                                 \
                cwt[j] = cw[j % width];                                                  \
        for (ptrdiff_t i0 = 0; i0 < n; i0 += rows) {                                     \
            const ptrdiff_t r = n - i0 < rows ? n - i0 : rows, len = r * width;          \
            const T *tc = t + i0 * width, *pc = p + i0 * width;                          \
            int big = !fast;                                                             \
            if (fast)                                                                    \
                CYL_BROWS_ALL_(BINARY, CYL_BROWS_TERMS_F_, );                            \
            if (big)                                                                     \
                CYL_BROWS_ALL_(BINARY, CYL_BROWS_TERMS_, BINARY,);                       \
            for (ptrdiff_t q = 0; q < r; q++) {                                          \
                const double *er = e + q * width;                                        \
                double row;                                                              \
                CYL_LANE_SUM(double, er, er, width, ((void)x, y), row);                  \
                cyl_acc_add(&A, i0 + q, n, row / (double)width);                         \
            }                                                                            \
        }                                                                                \
        *bad = flag;                                                                     \
        return cyl_acc_total(&A);                                                        \
    }

CYL_DEFINE_BINARY_ROWS(f32, float, cyl_binary_f32, 1)
CYL_DEFINE_BINARY_ROWS(f64, double, cyl_binary, 0)

/* Binary focal cross-entropy over n contiguous samples of one element each, without
 * weights: the sum of the general loop's elements (cyl_binary_focal) and, when g is not
 * NULL, their derivatives into g, same bits. *bad is set for an invalid datum, *slow for a
 * logit beyond CYL_FOCAL_FAST_MAX; the caller then runs the general loop over the block,
 * which finds the first invalid datum or takes the exact form there. One loop per
 * (gamma's mode, logits or probabilities), so that each vectorises with its own power. */
#define CYL_FOCAL_LOOP_(T, MODE, LOGITS)                                                 \
    if (g)                                                                               \
        CYL_ACC_SUM_GEN(n, double y = (double)t[I_]; double x = (double)p[I_];           \
                        double gk_ = 0.0,                                                \
                        (flag |= cyl_binary_bad(y, x, LOGITS),                           \
                         slow |= cyl_focal_slow(x, LOGITS),                              \
                         cyl_binary_focal_fast(y, x, LOGITS, keep, half, lo, hi, gamma,  \
                                               MODE, alpha, balance, cw, &gk_)),         \
                        g[I_] = (T)(gscale * gk_), total);                               \
    else                                                                                 \
        CYL_ACC_SUM(T, t, p, n, (flag |= cyl_binary_bad(y, x, LOGITS),                   \
                                 slow |= cyl_focal_slow(x, LOGITS),                      \
                                 cyl_binary_focal_fast(y, x, LOGITS, keep, half, lo, hi, \
                                                       gamma, MODE, alpha, balance, cw,  \
                                                       NULL)),                           \
                    total)
#define CYL_FOCAL_MODES_(T, LOGITS)                                                      \
    switch (cyl_focal_mode(gamma)) {                                                     \
        case 0: CYL_FOCAL_LOOP_(T, 0, LOGITS); break;                                    \
        case 1: CYL_FOCAL_LOOP_(T, 1, LOGITS); break;                                    \
        case 2: CYL_FOCAL_LOOP_(T, 2, LOGITS); break;                                    \
        default: CYL_FOCAL_LOOP_(T, 3, LOGITS); break;                                   \
    }
#define CYL_DEFINE_FOCAL(SUFFIX, T)                                                      \
    CYL_MULTI(double, cyl_focal_sum_##SUFFIX, (                                          \
        const T *t, const T *p, ptrdiff_t n, int from_logits, double keep, double half,  \
        double lo, double hi, double gamma, double alpha, int balance, double cw,        \
        double gscale, int *bad, int *slow_out, T *g),                                   \
            (t, p, n, from_logits, keep, half, lo, hi, gamma, alpha, balance, cw,        \
             gscale, bad, slow_out, g))                                                  \
    {                                                                                    \
        double total = 0.0;                                                              \
        int flag = 0, slow = 0;                                                          \
        if (from_logits) {                                                               \
            CYL_FOCAL_MODES_(T, 1)                                                       \
        } else {                                                                         \
            CYL_FOCAL_MODES_(T, 0)                                                       \
        }                                                                                \
        *bad = flag;                                                                     \
        *slow_out = slow;                                                                \
        return total;                                                                    \
    }

CYL_DEFINE_FOCAL(f32, float)
CYL_DEFINE_FOCAL(f64, double)

#endif /* CYLOSS_FASTPATHS_H */
