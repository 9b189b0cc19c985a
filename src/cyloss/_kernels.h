/* Scalar kernels of cyloss: the one definition of every loss formula, in double.
 *
 * Declared for Cython in _kernels.pxd (the loops in _loops.pyx call them) and used by the
 * contiguous fast paths in _fastpaths.h, so a formula is never written twice. Written as
 * selects rather than branches, so that the loops calling them vectorise; edge cases are
 * part of each formula:
 *
 * - cyl_term(coef, v) is coef * v with 0 * (+-inf) := 0: a target or weight of exactly 0
 *   never contributes, even against an infinite log-probability. NaN still propagates
 *   (0 * NaN is NaN), as in NumPy.
 * - Comparisons are arranged so that NaN falls through to the formula and comes out NaN.
 */
#ifndef CYLOSS_KERNELS_H
#define CYLOSS_KERNELS_H

#include <math.h>
#include "_vecmath.h"

CYL_INLINE double cyl_term(double coef, double v)
{
    return ((coef == 0.0) & (v == v)) ? 0.0 : coef * v;   /* v == v: v is not NaN */
}

CYL_INLINE double cyl_clip(double p, double lo, double hi)
{
    return p < lo ? lo : (p > hi ? hi : p);               /* NaN passes through */
}

/* --- elementwise (regression-style) losses --------------------------------------------
 * Each loss is one kernel triple of (y, p, param), param being its option (Huber's delta,
 * smooth L1's beta, hinge's label conversion, which the caller derives from y_true;
 * ignored by the others):
 *   cyl_<name>(y, p, param)       the loss of one element,
 *   cyl_<name>_grad(y, p, param)  d l / d p,
 *   cyl_<name>_hess(y, p, param)  d2 l / d p2,
 * listed once in CYL_ELEMENTWISE below, from which the kind enum, the dispatchers and the
 * fast paths' switches (_fastpaths.h) are generated. Adding a loss: its triple here, its
 * line in CYL_ELEMENTWISE, and its entry in losses.py's ELEMENTWISE table.
 *
 * Float32 input (SPEC section 4 lets per-element arithmetic run in float32): a loss whose
 * value needs a logarithm or an exponential may give a second value kernel,
 * cyl_<name>_f32, that takes them at float32 precision (cyl_log_f32, cyl_exp_f32,
 * cyl_expf: eight lanes per AVX2 vector instead of four, shorter polynomials); its
 * CYL_ELEMENTWISE line names it, every path (fast, strided, accumulated) of float32 input
 * uses it, so the bits still do not depend on the layout or the thread count. The
 * derivatives stay in double.
 *
 * Derivatives: kinks follow PyTorch (MAE's derivative is 0 at e = 0, Huber's and smooth
 * L1's are continuous: e at |e| = delta, sign(e) for beta = 0). Second derivatives follow
 * scikit-learn where the exact one is 0 almost everywhere: MAE (and smooth L1 with
 * beta = 0, which is L1) take 1, so that Newton steps stay defined; Huber and smooth L1
 * are exact (0 on the linear arms). NaN propagates through all three. */

CYL_INLINE double cyl_sign(double e)
{
    return e > 0.0 ? 1.0 : (e < 0.0 ? -1.0 : e * 0.0);   /* sign(0) = 0, sign(NaN) = NaN */
}

CYL_INLINE double cyl_mae(double y, double p, double param)
{
    (void)param;
    return fabs(p - y);
}

CYL_INLINE double cyl_mae_grad(double y, double p, double param)
{
    (void)param;
    return cyl_sign(p - y);
}

CYL_INLINE double cyl_mae_hess(double y, double p, double param)
{
    double e = p - y;
    (void)param;
    return e != e ? e : 1.0;
}

CYL_INLINE double cyl_mse(double y, double p, double param)
{
    double e = p - y;
    (void)param;
    return e * e;
}

CYL_INLINE double cyl_mse_grad(double y, double p, double param)
{
    double e = p - y;
    (void)param;
    return 2.0 * e;
}

CYL_INLINE double cyl_mse_hess(double y, double p, double param)
{
    double e = p - y;
    (void)param;
    return e != e ? e : 2.0;
}

/* Keras's form: quadratic up to and including |e| == delta; NaN takes the linear arm. */
CYL_INLINE double cyl_huber(double y, double p, double delta)
{
    double e = p - y, a = fabs(e);
    return a <= delta ? 0.5 * e * e : delta * (a - 0.5 * delta);
}

CYL_INLINE double cyl_huber_grad(double y, double p, double delta)
{
    double e = p - y, a = fabs(e);
    return a <= delta ? e : delta * cyl_sign(e);
}

CYL_INLINE double cyl_huber_hess(double y, double p, double delta)
{
    double e = p - y, a = fabs(e);
    return e != e ? e : (a <= delta ? 1.0 : 0.0);
}

/* PyTorch's form: quadratic strictly below beta, so beta == 0 is plain L1 (the quadratic
 * arm, 0/0 then, is computed but never selected). */
CYL_INLINE double cyl_smooth_l1(double y, double p, double beta)
{
    double e = p - y, a = fabs(e);
    return a < beta ? 0.5 * e * e / beta : a - 0.5 * beta;
}

CYL_INLINE double cyl_smooth_l1_grad(double y, double p, double beta)
{
    double e = p - y, a = fabs(e);
    return a < beta ? e / beta : cyl_sign(e);
}

CYL_INLINE double cyl_smooth_l1_hess(double y, double p, double beta)
{
    double e = p - y, a = fabs(e);
    return e != e ? e : (beta == 0.0 ? 1.0 : (a < beta ? 1.0 / beta : 0.0));
}

/* Keras 3's log_cosh: log cosh(e), from a = |e|. For a >= 1/8, Keras's form
 * log cosh a = a + log1p(e^-2a) - log 2, which never overflows (a = inf gives inf); its
 * error is ~2e-16 absolute, so relatively ~2e-16 / (a^2 / 2) as a -> 0 (3e-15 at 1/8).
 * Below 1/8 the Taylor series a^2/2 - a^4/12 + a^6/45 - ... to a^14, whose first omitted
 * term is below 1e-16 relative there. Both arms are computed and one selected, so loops
 * vectorise; NaN fails a < 1/8 and takes Keras's form. */
#define CYL_LOG_COSH_SMALL 0.125
#define CYL_LN2 0.693147180559945309417232121458176568

CYL_INLINE double cyl_log_cosh(double y, double p, double param)
{
    double a = fabs(p - y), s = a * a;
    double series = s * (1.0 / 2 + s * (-1.0 / 12 + s * (1.0 / 45 + s * (-17.0 / 2520
                    + s * (31.0 / 14175 + s * (-691.0 / 935550 + s * (10922.0 / 42567525)))))));
    double direct = a + cyl_log1p(cyl_exp(-2.0 * a)) - CYL_LN2;
    (void)param;
    return a < CYL_LOG_COSH_SMALL ? series : direct;
}

/* Float32 input, in float32: the series below a = 1/2 (its first omitted term is < 2e-8
 * relative there), Keras's form above it with the tail log1p(e^-2a) (cyl_expf_nonpos,
 * cyl_log1pf_small: e^-2a <= 1/e there): the form cancels at most 7-fold from a = 1/2 up,
 * so the result stays within 8e-7 relative (of the float32 inputs' exact value). */
CYL_INLINE float cyl_log_cosh_ff(float y, float p)
{
    float a = fabsf(p - y), s = a * a;
    float series = s * (1.0f / 2 + s * (-1.0f / 12 + s * (1.0f / 45 + s * (-17.0f / 2520
                   + s * (31.0f / 14175 + s * (-691.0f / 935550 + s * (10922.0f / 42567525)))))));
    float direct = (a + cyl_log1pf_small(cyl_expf_nonpos(-2.0f * a))) - 0.693147180559945309f;
    return a < 0.5f ? series : direct;
}

CYL_INLINE double cyl_log_cosh_f32(double y, double p, double param)
{
    (void)param;
    return (double)cyl_log_cosh_ff((float)y, (float)p);
}

/* tanh(e): (1 - u) / (1 + u) with u = e^-2|e| (no overflow; +-1 at e = +-inf), signed;
 * below |e| = 1/8 the Taylor series e - e^3/3 + 2e^5/15 - ... to e^13 (the quotient loses
 * ~1e-16 / |e| relatively there; the series' first omitted term is < 4e-16 relative). */
CYL_INLINE double cyl_log_cosh_grad(double y, double p, double param)
{
    double e = p - y, a = fabs(e), s = a * a, u = cyl_exp(-2.0 * a);
    double series = a * (1.0 + s * (-1.0 / 3 + s * (2.0 / 15 + s * (-17.0 / 315
                    + s * (62.0 / 2835 + s * (-1382.0 / 155925 + s * (21844.0 / 6081075)))))));
    double t = a < CYL_LOG_COSH_SMALL ? series : (1.0 - u) / (1.0 + u);
    (void)param;
    return copysign(t, e);   /* NaN stays NaN */
}

/* 1 - tanh(e)^2 = sech^2(e) = 4u / (1 + u)^2, u = e^-2|e|: no cancellation, 0 at |e| = inf. */
CYL_INLINE double cyl_log_cosh_hess(double y, double p, double param)
{
    double u = cyl_exp(-2.0 * fabs(p - y)), v = 1.0 + u;
    (void)param;
    return 4.0 * u / (v * v);
}

/* Keras's backend.epsilon(), which its poisson, MAPE and MSLE use. */
#define CYL_KERAS_EPS 1e-7

/* Keras 3's poisson: p - y log(p + eps). Plain arithmetic as Keras has it, so invalid
 * input gives what Keras gives: p + eps < 0 gives NaN, p = -eps gives -inf times y (NaN
 * for y = 0, not cyl_term's 0). Derivatives exact: 1 - y / (p + eps), y / (p + eps)^2. */
CYL_INLINE double cyl_poisson(double y, double p, double param)
{
    (void)param;
    return p - y * cyl_log(p + CYL_KERAS_EPS);
}

/* Float32 input: the logarithm by cyl_log_f32, the rest in double. Not in float32 as Keras
 * has it: the terms have both signs, and a sum of them rounded in float32 (p + eps loses
 * eps above p = 1.7; the logarithm its last bits) drifts from the float64 result by more
 * than SPEC's 1e-6 where they cancel. */
CYL_INLINE double cyl_poisson_f32(double y, double p, double param)
{
    (void)param;
    return p - y * cyl_log_f32(p + CYL_KERAS_EPS);
}

CYL_INLINE double cyl_poisson_grad(double y, double p, double param)
{
    (void)param;
    return 1.0 - y / (p + CYL_KERAS_EPS);
}

CYL_INLINE double cyl_poisson_hess(double y, double p, double param)
{
    double q = p + CYL_KERAS_EPS;
    (void)param;
    return y / (q * q);
}

/* Keras 3's mean_absolute_percentage_error: 100 |p - y| / max(|y|, eps), an absolute
 * error with the weight c = 100 / max(|y|, eps) (the max lets NaN through, as NumPy's).
 * Derivatives as MAE's times c: c sign(e) (0 at e = 0), Hessian c where the exact one is
 * 0 (MAE's Newton convention). */
CYL_INLINE double cyl_mape_scale(double y)
{
    double a = fabs(y);
    return 100.0 / (a < CYL_KERAS_EPS ? CYL_KERAS_EPS : a);
}

CYL_INLINE double cyl_mape(double y, double p, double param)
{
    (void)param;
    return fabs(p - y) * cyl_mape_scale(y);
}

CYL_INLINE double cyl_mape_grad(double y, double p, double param)
{
    (void)param;
    return cyl_sign(p - y) * cyl_mape_scale(y);
}

CYL_INLINE double cyl_mape_hess(double y, double p, double param)
{
    double e = p - y;
    (void)param;
    return e != e ? e : cyl_mape_scale(y);
}

/* Keras 3's mean_squared_logarithmic_error: d^2, d = log1p(max(p, eps)) - log1p(max(y,
 * eps)) (Keras writes log(x + 1); log1p is the same function without the rounding of
 * x + 1). Gradient 2 d / (1 + p) and Hessian 2 (1 - d) / (1 + p)^2 where p >= eps, 0
 * where Keras's clip holds p (torch.clamp's gradient, which passes at p == eps); NaN
 * propagates. */
CYL_INLINE double cyl_msle_diff(double y, double p)
{
    double a = p < CYL_KERAS_EPS ? CYL_KERAS_EPS : p;   /* NaN passes */
    double b = y < CYL_KERAS_EPS ? CYL_KERAS_EPS : y;
    return cyl_log1p(a) - cyl_log1p(b);
}

CYL_INLINE double cyl_msle(double y, double p, double param)
{
    double d = cyl_msle_diff(y, p);
    (void)param;
    return d * d;
}

/* Float32 input, in float32: d = log1p(r), r = (a - b) / (1 + b), so that d keeps its
 * relative precision where the prediction is close to the target (the difference of two
 * float32 logarithms would cancel there): log1p(r) = log(v) + (r - (v - 1)) / v with
 * v = 1 + r rounded (Goldberg's correction), or v = (1 + a) / (1 + b) itself where
 * r < -1/2 (there 1 + r would lose the small quotient); d^2 in float32 too (a float32
 * element end to end, which the fast path computes sixteen lanes at a time). Within 6e-7
 * relative; the special values of the double form (inf for an infinite side, NaN for
 * both). */
CYL_INLINE float cyl_msle_ff(float yf, float pf)
{
    const float eps = (float)CYL_KERAS_EPS;
    float a = pf < eps ? eps : pf, b = yf < eps ? eps : yf;   /* NaN passes */
    float inv = 1.0f / (1.0f + b), r = (a - b) * inv;
    float q = (1.0f + a) * inv, w = 1.0f + r;
    float c = (r - (w - 1.0f)) / w;
    /* (selects on float comparisons only: an int mask between them stops GCC's
     * vectoriser) */
    float v = a + 0.5f < 0.5f * b ? q : w;
    c = a + 0.5f < 0.5f * b ? 0.0f : c;
    c = w == INFINITY ? 0.0f : c;
    float d = cyl_logf(v) + c;
    return d * d;
}

CYL_INLINE double cyl_msle_f32(double y, double p, double param)
{
    (void)param;
    return (double)cyl_msle_ff((float)y, (float)p);
}

CYL_INLINE double cyl_msle_grad(double y, double p, double param)
{
    double d = cyl_msle_diff(y, p);
    (void)param;
    return p < CYL_KERAS_EPS ? (d != d ? d : 0.0) : 2.0 * d / (1.0 + p);
}

CYL_INLINE double cyl_msle_hess(double y, double p, double param)
{
    double d = cyl_msle_diff(y, p), q = 1.0 + p;
    (void)param;
    return p < CYL_KERAS_EPS ? (d != d ? d : 0.0) : 2.0 * (1.0 - d) / (q * q);
}

/* Keras 3's hinge and squared_hinge on the margin m = 1 - t p, where t is y, or 2 y - 1
 * when param != 0: Keras converts labels that are all 0 or 1 to -1 and 1, a decision over
 * the whole of y_true that the caller makes (_loops.binary_labels) and passes as param.
 * max(m, 0) lets NaN through (as NumPy's maximum). Derivatives: at the kink m = 0 the
 * gradient is 0, as torch.relu's and MultiMarginLoss's (only a positive margin pulls);
 * hinge: -t where m > 0, Hessian 0 (exact: piecewise linear); squared hinge: -2 t m and
 * 2 t^2 where m > 0, else 0 (exact but at m = 0, where the Hessian jumps). */
CYL_INLINE double cyl_hinge_label(double y, double param)
{
    return param != 0.0 ? 2.0 * y - 1.0 : y;
}

CYL_INLINE double cyl_hinge(double y, double p, double param)
{
    double m = 1.0 - cyl_hinge_label(y, param) * p;
    return m < 0.0 ? 0.0 : m;
}

CYL_INLINE double cyl_hinge_grad(double y, double p, double param)
{
    double t = cyl_hinge_label(y, param), m = 1.0 - t * p;
    return m > 0.0 ? -t : (m != m ? m : 0.0);
}

CYL_INLINE double cyl_hinge_hess(double y, double p, double param)
{
    double m = 1.0 - cyl_hinge_label(y, param) * p;
    return m != m ? m : 0.0;
}

CYL_INLINE double cyl_squared_hinge(double y, double p, double param)
{
    double m = 1.0 - cyl_hinge_label(y, param) * p;
    double h = m < 0.0 ? 0.0 : m;
    return h * h;
}

CYL_INLINE double cyl_squared_hinge_grad(double y, double p, double param)
{
    double t = cyl_hinge_label(y, param), m = 1.0 - t * p;
    return m > 0.0 ? -2.0 * t * m : (m != m ? m : 0.0);
}

CYL_INLINE double cyl_squared_hinge_hess(double y, double p, double param)
{
    double t = cyl_hinge_label(y, param), m = 1.0 - t * p;
    return m > 0.0 ? 2.0 * t * t : (m != m ? m : 0.0);
}

#include "_kernels_pairs.h"

/* X(NAME, name, name32) per elementwise loss: name32 is the value kernel for float32 input
 * (name itself, or name_f32, above); the order gives the kind codes (MAE = 0, ...), which
 * losses.py reads back from _loops. */
#define CYL_ELEMENTWISE(X)                           \
    X(MAE, mae, mae)                                 \
    X(MSE, mse, mse)                                 \
    X(HUBER, huber, huber)                           \
    X(SMOOTH_L1, smooth_l1, smooth_l1)               \
    X(LOG_COSH, log_cosh, log_cosh_f32)              \
    X(POISSON, poisson, poisson_f32)                 \
    X(MAPE, mape, mape)                              \
    X(MSLE, msle, msle_f32)                          \
    X(HINGE, hinge, hinge)                           \
    X(SQUARED_HINGE, squared_hinge, squared_hinge)   \
    CYL_ELEMENTWISE_PAIRS(X)

#define CYL_KIND_(NAME, name, name32) CYL_##NAME,
enum { CYL_ELEMENTWISE(CYL_KIND_) CYL_N_ELEMENTWISE };
#undef CYL_KIND_

/* The loss names by kind code, for _loops to give Python the codes by name. */
#define CYL_NAME_(NAME, name, name32) #name,
static const char *const cyl_elementwise_names[] = { CYL_ELEMENTWISE(CYL_NAME_) };
#undef CYL_NAME_

/* One element of loss `kind`, and its derivatives. An unknown kind (the loops reject it
 * before any data is read) gives NaN. */
#define CYL_CASE_(NAME, name, name32) if (kind == CYL_##NAME) return cyl_##name(y, p, param);
CYL_INLINE double cyl_regression(int kind, double y, double p, double param)
{
    CYL_ELEMENTWISE(CYL_CASE_)
    return NAN;
}
#undef CYL_CASE_

/* The value of one element of float32 input (y and p float32 values). */
#define CYL_CASE_(NAME, name, name32) \
    if (kind == CYL_##NAME) return cyl_##name32(y, p, param);
CYL_INLINE double cyl_regression_f32(int kind, double y, double p, double param)
{
    CYL_ELEMENTWISE(CYL_CASE_)
    return NAN;
}
#undef CYL_CASE_

#define CYL_CASE_(NAME, name, name32) if (kind == CYL_##NAME) return cyl_##name##_grad(y, p, param);
CYL_INLINE double cyl_regression_grad(int kind, double y, double p, double param)
{
    CYL_ELEMENTWISE(CYL_CASE_)
    return NAN;
}
#undef CYL_CASE_

#define CYL_CASE_(NAME, name, name32) if (kind == CYL_##NAME) return cyl_##name##_hess(y, p, param);
CYL_INLINE double cyl_regression_hess(int kind, double y, double p, double param)
{
    CYL_ELEMENTWISE(CYL_CASE_)
    return NAN;
}
#undef CYL_CASE_

/* --- binary cross-entropy ----------------------------------------------------------------
 * With a = pos_weight * y and b = 1 - y (after label smoothing):
 *   probabilities: l = a (-log p) + b (-log(1 - p)),  p clipped to [eps, 1 - eps]
 *   logits:        l = a softplus(-x) + b softplus(x)
 * The logit form is PyTorch's (1 - y) x + (1 + (pw - 1) y) softplus(-x) split so that each
 * coefficient meets only its own softplus: x = +-inf then gives the limit (0 or inf)
 * instead of inf - inf. */

CYL_INLINE double cyl_bce_prob(double a, double b, double p)
{
    return cyl_term(a, -cyl_log(p)) + cyl_term(b, -cyl_log1p(-p));
}

/* log1p(e^-|x|): e^-|x| lies in [0, 1], where log1p is accurate as it stands, so no
 * cutoffs are needed (the usual ones, x < -37 -> e^x and so on, only save time in scalar
 * code). |x| = inf gives log1p(0) = 0. */
CYL_INLINE double cyl_softplus_tail(double x) { return cyl_log1p(cyl_exp(-fabs(x))); }

/* a softplus(-x) + b softplus(x) given tail = log1p(e^-|x|):
 * softplus(+-x) = max(+-x, 0) + tail. */
CYL_INLINE double cyl_bce_logit_tail(double a, double b, double x, double tail)
{
    double pos = x > 0.0 ? x : 0.0;
    double neg = x < 0.0 ? -x : 0.0;
    return cyl_term(a, neg + tail) + cyl_term(b, pos + tail);
}

CYL_INLINE double cyl_bce_logit(double a, double b, double x)
{
    return cyl_bce_logit_tail(a, b, x, cyl_softplus_tail(x));
}

/* One element of binary cross-entropy: smoothing, then the probability or logit form. */
CYL_INLINE double cyl_binary(double y, double p, double pw, int from_logits, double keep,
                             double half, double lo, double hi)
{
    double ys = y * keep + half;
    return from_logits ? cyl_bce_logit(pw * ys, 1.0 - ys, p)
                       : cyl_bce_prob(pw * ys, 1.0 - ys, cyl_clip(p, lo, hi));
}

/* float32 input: the softplus tail in float32 (cyl_expf, cyl_log1pf_unit: eight lanes per
 * AVX2 vector), which SPEC section 4 allows; the rest in double. x is a float32 value. */
CYL_INLINE double cyl_softplus_tail_f32(double x)
{
    return (double)cyl_log1pf_unit(cyl_expf_nonpos(-fabsf((float)x)));
}

CYL_INLINE double cyl_bce_logit_f32(double a, double b, double x)
{
    return cyl_bce_logit_tail(a, b, x, cyl_softplus_tail_f32(x));
}

/* float32 probabilities: both logarithms in float32 (cyl_logf, cyl_log1mf: within 2 ulp,
 * eight lanes per AVX2 vector), the weighting and the sum in double. The logarithms take
 * the smaller of p and 1 - p (p the clipped probability; 1 - p in double), as a float32:
 * exact for a float32 p, and within 3e-8 for a clip bound (1 - 1e-7 is no float32, but
 * 1e-7 rounds closely), so a saturated p keeps its log(eps). Both terms are >= 0: the
 * float32 result keeps about 2e-7 relative. */
CYL_INLINE double cyl_bce_prob_f32(double a, double b, double p, double lo, double hi)
{
    int low = p <= 0.5;
    float s = (float)(low ? p : 1.0 - p);
    double ls = (double)cyl_logf(s), lm = (double)cyl_log1mf(s);   /* log s, log(1 - s) */
    /* At a clip bound, its logarithm in double (loop-invariant): an epsilon below float32's
     * range (1e-300 rounds to 0) or in its subnormals keeps its value. */
    ls = (low & (p == lo)) ? cyl_log(lo) : ls;
    ls = ((!low) & (p == hi)) ? cyl_log(1.0 - hi) : ls;
    return cyl_term(a, -(low ? ls : lm)) + cyl_term(b, -(low ? lm : ls));
}

/* --- binary cross-entropy of float32 input, all in float32 --------------------------------
 * SPEC section 4 allows float32 arithmetic per element for float32 input: the whole
 * element, weights included, in float32 (sixteen lanes per AVX-512 vector and no
 * conversions), rounded to double only for the sum. The weights a = pw ys, b = 1 - ys are
 * formed without cancellation, b as (1 - y) keep + half, so a smoothed target near 1
 * keeps b's digits; both terms are >= 0 and the element keeps about 3e-7 relative.
 * Taken only where float32 can hold every intermediate (cyl_binary_f32_ok): pos_weight 0
 * or in [2^-60, 2^60] and, from logits, |x| <= 2^64 (so a |x| < 2^124 cannot overflow);
 * elsewhere cyl_binary_f32 computes in double (the loops' element function, and the fast
 * paths' fallback per block, so every path gives the same bits). */
CYL_INLINE float cyl_termf(float coef, float v)
{
    return ((coef == 0.0f) & (v == v)) ? 0.0f : coef * v;
}

CYL_INLINE int cyl_binary_f32_ok(double pw, double x, int from_logits)
{
    return (pw == 0.0 || (pw >= 0x1p-60 && pw <= 0x1p60))
           && (!from_logits || fabs(x) <= 0x1p64);            /* NaN: the double form */
}

/* The weights in float32: a = pw ys, b = 1 - ys. */
#define CYL_BCE_WEIGHTS_F(y, pw, keep, half, a, b)                                       \
    do {                                                                                 \
        (a) = (pw) * ((y) * (keep) + (half));                                            \
        (b) = (1.0f - (y)) * (keep) + (half);                                            \
    } while (0)

/* From logits: a softplus(-x) + b softplus(x), the tail log1p(e^-|x|) as in
 * cyl_softplus_tail_f32. */
CYL_INLINE float cyl_bce_logit_ff_e(float a, float b, float x, float e)
{
    float tail = cyl_log1pf_unit(e);
    float pos = x > 0.0f ? x : 0.0f, neg = x < 0.0f ? -x : 0.0f;
    return cyl_termf(a, neg + tail) + cyl_termf(b, pos + tail);
}

CYL_INLINE float cyl_bce_logit_ff(float y, float x, float pw, float keep, float half)
{
    float a, b;
    CYL_BCE_WEIGHTS_F(y, pw, keep, half, a, b);
    return cyl_bce_logit_ff_e(a, b, x, cyl_expf_nonpos(-fabsf(x)));
}

/* cyl_bce_logit_ff_e for a finite x (the fast paths' blocks without a NaN or huge logit):
 * a term's factor neg + tail or pos + tail is then finite and >= 0, so cyl_termf's guard
 * against 0 * inf is not needed and the products give its bits (a zero's sign aside,
 * which no sum of these terms can show). */
CYL_INLINE float cyl_bce_logit_ff_fin(float a, float b, float x, float e)
{
    float tail = cyl_log1pf_unit(e);
    float pos = x > 0.0f ? x : 0.0f, neg = x < 0.0f ? -x : 0.0f;
    return a * (neg + tail) + b * (pos + tail);
}

/* Its derivative given e = e^-|x| (cyl_bce_logit_grad_e in float32). */
CYL_INLINE float cyl_bce_logit_grad_ff(float a, float b, float x, float e)
{
    float r = 1.0f / (1.0f + e), er = e * r;
    float sp = x >= 0.0f ? r : er, sn = x >= 0.0f ? er : r;
    return x != x ? x : cyl_termf(b, sp) - cyl_termf(a, sn);
}

/* cyl_bce_logit_grad_ff for a finite x (cyl_bce_logit_ff_fin's blocks): the sigmoids are
 * finite, so the products need no guard and there is no NaN to pass on. */
CYL_INLINE float cyl_bce_logit_grad_ff_fin(float a, float b, float x, float e)
{
    float r = 1.0f / (1.0f + e), er = e * r;
    float sp = x >= 0.0f ? r : er, sn = x >= 0.0f ? er : r;
    return b * sp - a * sn;
}

/* From probabilities (cyl_bce_prob_f32 in float32): s = min(p, 1 - p) (exact), clipped at
 * slo, the float32 of its side's clip bound, where the logarithm is llo, that bound's
 * logarithm in double (loop-invariant; an epsilon below float32's range keeps its value). */
CYL_INLINE float cyl_bce_prob_ff(float y, float p, float pw, float keep, float half,
                                 float slo_low, float llo_low, float slo_high, float llo_high)
{
    float a, b;
    CYL_BCE_WEIGHTS_F(y, pw, keep, half, a, b);
    int low = p <= 0.5f;
    float s = low ? p : 1.0f - p;
    float slo = low ? slo_low : slo_high;
    int clipped = s <= slo;
    s = clipped ? slo : s;
    float ls = clipped ? (low ? llo_low : llo_high) : cyl_logf(s);
    float lm = cyl_log1mf(s);                                       /* log(1 - s) */
    return cyl_termf(a, -(low ? ls : lm)) + cyl_termf(b, -(low ? lm : ls));
}

/* The loop-invariant clip constants of cyl_bce_prob_ff. */
#define CYL_BCE_PROB_BOUNDS_F(lo, hi)                                                    \
    const float slo_low_ = (float)(lo), slo_high_ = (float)(1.0 - (hi));                 \
    const float llo_low_ = (float)cyl_log(lo), llo_high_ = (float)cyl_log(1.0 - (hi))

CYL_INLINE double cyl_binary_f32(double y, double p, double pw, int from_logits,
                                 double keep, double half, double lo, double hi)
{
    if (cyl_binary_f32_ok(pw, p, from_logits)) {
        if (from_logits)
            return (double)cyl_bce_logit_ff((float)y, (float)p, (float)pw, (float)keep,
                                            (float)half);
        CYL_BCE_PROB_BOUNDS_F(lo, hi);
        return (double)cyl_bce_prob_ff((float)y, (float)p, (float)pw, (float)keep,
                                       (float)half, slo_low_, llo_low_, slo_high_,
                                       llo_high_);
    }
    double ys = y * keep + half;
    return from_logits ? cyl_bce_logit_f32(pw * ys, 1.0 - ys, p)
                       : cyl_bce_prob_f32(pw * ys, 1.0 - ys, cyl_clip(p, lo, hi), lo, hi);
}

/* d l / d p of one binary element (the derivative of cyl_binary and cyl_binary_f32):
 *   logits:        -a sigmoid(-x) + b sigmoid(x), sigmoid(x) = 1 / (1 + e^-x) (exact 0 and
 *                  1 at -+inf), each term 0 when its coefficient is;
 *   probabilities: (-a / p + b / (1 - p)) where eps <= p <= 1 - eps, 0 where clipped
 *                  (torch.clamp's gradient), NaN for NaN. */
/* The logit form given e = exp(-|x|): r = 1 / (1 + e) is the sigmoid of |x|, e r that of
 * -|x|; neither cancels. */
CYL_INLINE double cyl_bce_logit_grad_e(double a, double b, double x, double e)
{
    double r = 1.0 / (1.0 + e), er = e * r;
    double sp = x >= 0.0 ? r : er, sn = x >= 0.0 ? er : r;
    return x != x ? x : cyl_term(b, sp) - cyl_term(a, sn);
}

CYL_INLINE double cyl_binary_grad(double y, double p, double pw, int from_logits,
                                  double keep, double half, double lo, double hi)
{
    double ys = y * keep + half;
    double a = pw * ys, b = 1.0 - ys;
    if (from_logits)
        return cyl_bce_logit_grad_e(a, b, p, cyl_exp(-fabs(p)));
    double g = cyl_term(b, 1.0 / (1.0 - p)) - cyl_term(a, 1.0 / p);
    return p != p ? p : ((p >= lo) & (p <= hi) ? g : 0.0);
}

/* float32 input: e = exp(-|x|) in float32, the exponential the loss's softplus tail takes
 * (cyl_softplus_tail_f32; the fused value-and-gradient loop computes it once for both),
 * the rest in double. x is a float32 value, so -|x| is exact and the sigmoids are within
 * about 2 ulp (float) of their values. */
CYL_INLINE double cyl_binary_grad_f32(double y, double p, double pw, int from_logits,
                                      double keep, double half, double lo, double hi)
{
    if (!from_logits)
        return cyl_binary_grad(y, p, pw, 0, keep, half, lo, hi);
    if (cyl_binary_f32_ok(pw, 0.0, 1)) {
        /* All in float32 as the value (its range condition on x is not needed: every
         * intermediate is at most a weight). */
        float a, b, x = (float)p;
        CYL_BCE_WEIGHTS_F((float)y, (float)pw, (float)keep, (float)half, a, b);
        return (double)cyl_bce_logit_grad_ff(a, b, x, cyl_expf_nonpos(-fabsf(x)));
    }
    double ys = y * keep + half;
    return cyl_bce_logit_grad_e(pw * ys, 1.0 - ys, p,
                                (double)cyl_expf_nonpos(-fabsf((float)p)));
}

/* d2 l / d x2 from logits: (a + b) sigmoid(x) sigmoid(-x), the weights as in
 * cyl_binary_grad. */
CYL_INLINE double cyl_binary_logit_hess(double y, double x, double pw, double keep,
                                        double half)
{
    double ys = y * keep + half;
    double e = cyl_exp(-fabs(x)), r = 1.0 / (1.0 + e);
    return x != x ? x : cyl_term(pw * ys + (1.0 - ys), e * r * r);
}

/* 1 where a binary datum is invalid (target outside [0, 1], or a probability outside
 * [0, 1]); NaN is not invalid: every comparison with it is false. */
CYL_INLINE int cyl_binary_bad(double y, double p, int from_logits)
{
    return (y < 0.0) | (y > 1.0) | ((!from_logits) & ((p < 0.0) | (p > 1.0)));
}

/* --- binary focal cross-entropy (Keras 3) -----------------------------------------------
 * With ys the smoothed target and u = 1 - p_t = ys (1 - p) + (1 - ys) p (Keras's
 * 1 - (ys p + (1 - ys)(1 - p)), written without its cancellation):
 *   l = wt u^gamma B,  B = the binary cross-entropy of cyl_binary (pos_weight 1),
 *   wt = cw (alpha ys + (1 - alpha)(1 - ys)) with class balancing, else cw.
 * Probabilities: as Keras, B takes the clipped p and u the unclipped one.
 * Logits: u = ys sigmoid(-x) + (1 - ys) sigmoid(x) in log space,
 *   log u = logaddexp(log ys - softplus(x), log(1 - ys) - softplus(-x)),
 * so u^gamma = exp(gamma log u) and the derivative's u^(gamma - 1) sigmoid(x) sigmoid(-x)
 * = exp((gamma - 1) log u - |x| - 2 log1p(e^-|x|)) neither underflow to 0 nor overflow
 * to inf at |x| = 1e4 (u itself would be e^-1e4 = 0 there). At x = +-inf the derivative
 * of u^gamma is 0 (its limit for every gamma >= 0). */
CYL_INLINE double cyl_focal_log_u(double ys, double sp, double sn)
{
    double a1 = ys > 0.0 ? log(ys) - sp : -INFINITY;
    double a2 = ys < 1.0 ? log1p(-ys) - sn : -INFINITY;
    double top = a1 > a2 ? a1 : a2, low = a1 > a2 ? a2 : a1;
    return top == -INFINITY ? top : top + log1p(exp(low - top));
}

/* One element, exact in every range (libm, log space): the loss, and d l / d p in *g when
 * g is not NULL. cyl_binary_focal takes it only where its fast form would underflow. */
CYL_INLINE double cyl_binary_focal_exact(double y, double p, int from_logits, double keep,
                                         double half, double lo, double hi, double gamma,
                                         double alpha, int balance, double cw, double *g)
{
    double ys = y * keep + half;
    double wt = cw * (balance ? ys * alpha + (1.0 - ys) * (1.0 - alpha) : 1.0);
    double B = cyl_binary(y, p, 1.0, from_logits, keep, half, lo, hi);
    double F, dF;
    if (from_logits) {
        double ax = fabs(p), tail = log1p(exp(-ax));
        double sp = (p > 0.0 ? p : 0.0) + tail, sn = (p < 0.0 ? -p : 0.0) + tail;
        double lu = cyl_focal_log_u(ys, sp, sn);
        F = exp(cyl_term(gamma, lu));
        dF = ax == INFINITY ? 0.0
             : cyl_term(gamma * (1.0 - 2.0 * ys),
                        exp(cyl_term(gamma - 1.0, lu) - ax - 2.0 * tail));
    } else {
        double u = ys * (1.0 - p) + (1.0 - ys) * p;
        F = pow(u, gamma);
        dF = cyl_term(gamma * (1.0 - 2.0 * ys), pow(u, gamma - 1.0));
    }
    if (g)
        *g = cyl_term(wt, cyl_term(dF, B)
                          + cyl_term(F, cyl_binary_grad(y, p, 1.0, from_logits, keep, half,
                                                        lo, hi)));
    return cyl_term(wt, cyl_term(F, B));
}

/* The focal factor's power: u^gamma (*d = u^(gamma - 1)) by `mode`, a function of gamma
 * alone (cyl_focal_mode), so every loop that sees the same gamma takes the same form:
 * 0 (gamma = 0: 1, and d unused), 1 (u, 1), 2 (u u, u), else exp(gamma log u) with
 * u = 0 giving 0 for gamma > 0 and inf for a negative exponent, as pow does. */
CYL_INLINE int cyl_focal_mode(double gamma)
{
    return gamma == 0.0 ? 0 : (gamma == 1.0 ? 1 : (gamma == 2.0 ? 2 : 3));
}

CYL_INLINE double cyl_focal_pow(double u, double gamma, int mode, double *d)
{
    if (mode == 0) { *d = 0.0; return 1.0; }
    if (mode == 1) { *d = 1.0; return u; }
    if (mode == 2) { *d = u; return u * u; }
    double lu = cyl_log(u);
    *d = cyl_exp((gamma - 1.0) * lu);
    return cyl_exp(gamma * lu);
}

/* The vectorisable form of binary focal cross-entropy (cyl_exp, cyl_log1p, no libm, no
 * branch but the constant `mode`), valid where it does not underflow: every probability,
 * and logits with |x| <= CYL_FOCAL_FAST_MAX (NaN too, which it propagates). From logits
 * with e = exp(-|x|) and r = 1 / (1 + e), the sigmoids of +-x are r and e r (neither
 * cancels) and u = ys sigmoid(-x) + (1 - ys) sigmoid(x) is a sum of two non-negative
 * terms, so it keeps its relative precision down to e = e^-708 (normal); the derivative of
 * u is (1 - 2 ys) sigmoid(x) sigmoid(-x) = (1 - 2 ys) e r^2. B and its derivative are
 * cyl_binary's and cyl_binary_grad's, the same expressions (the compiler shares e). */
#define CYL_FOCAL_FAST_MAX 708.0

CYL_INLINE double cyl_binary_focal_fast(double y, double p, int from_logits, double keep,
                                        double half, double lo, double hi, double gamma,
                                        int mode, double alpha, int balance, double cw,
                                        double *g)
{
    double ys = y * keep + half;
    double wt = cw * (balance ? ys * alpha + (1.0 - ys) * (1.0 - alpha) : 1.0);
    double u, du, F, d, dF, dB;
    double B = cyl_binary(y, p, 1.0, from_logits, keep, half, lo, hi);
    if (from_logits) {
        double e = cyl_exp(-fabs(p)), r = 1.0 / (1.0 + e), er = e * r;
        double spos = p >= 0.0 ? r : er, sneg = p >= 0.0 ? er : r;
        u = ys * sneg + (1.0 - ys) * spos;
        du = er * r;
        dB = g ? cyl_bce_logit_grad_e(ys, 1.0 - ys, p, e) : 0.0;
    } else {
        u = ys * (1.0 - p) + (1.0 - ys) * p;
        du = 1.0;
        dB = g ? cyl_binary_grad(y, p, 1.0, 0, keep, half, lo, hi) : 0.0;
    }
    F = cyl_focal_pow(u, gamma, mode, &d);
    if (g) {
        dF = mode == 0 ? 0.0 : cyl_term(gamma * (1.0 - 2.0 * ys), d * du);
        *g = cyl_term(wt, cyl_term(dF, B) + cyl_term(F, dB));
    }
    return cyl_term(wt, cyl_term(F, B));
}

/* 1 where cyl_binary_focal_fast does not apply (its caller then takes the exact form). */
CYL_INLINE int cyl_focal_slow(double p, int from_logits)
{
    return from_logits & (fabs(p) > CYL_FOCAL_FAST_MAX);
}

/* One element: the loss, and d l / d p in *g when g is not NULL; the fast form wherever
 * it applies (the bits of the vectorised sums in _fastpaths.h), else the exact one. */
CYL_INLINE double cyl_binary_focal(double y, double p, int from_logits, double keep,
                                   double half, double lo, double hi, double gamma,
                                   double alpha, int balance, double cw, double *g)
{
    if (cyl_focal_slow(p, from_logits))
        return cyl_binary_focal_exact(y, p, from_logits, keep, half, lo, hi, gamma, alpha,
                                      balance, cw, g);
    return cyl_binary_focal_fast(y, p, from_logits, keep, half, lo, hi, gamma,
                                 cyl_focal_mode(gamma), alpha, balance, cw, g);
}

#endif /* CYLOSS_KERNELS_H */
