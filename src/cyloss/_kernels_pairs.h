/* Kernel triples of the PyTorch pair losses that are elementwise (issue #14): Poisson
 * negative log-likelihood and the hinge embedding loss. Included by _kernels.h just
 * before CYL_ELEMENTWISE, which lists them; the conventions are those of _kernels.h
 * (selects, NaN propagates; a zero target times an infinite log is 0, cyl_term). */
#ifndef CYLOSS_KERNELS_PAIRS_H
#define CYLOSS_KERNELS_PAIRS_H

/* --- Poisson NLL (torch.nn.functional.poisson_nll_loss) ----------------------------------
 * log_input=True:  l = exp(x) - y x                  (param unused)
 * log_input=False: l = x - y log(x + eps)            (param = eps)
 * full=True adds Stirling's term y log y - y + log(2 pi y) / 2 where y > 1 (PyTorch's
 * masked_fill(target <= 1, 0): a NaN target keeps it, so NaN propagates). Four kinds,
 * one per (log_input, full), so that each stays a kernel of one parameter. Unlike
 * PyTorch, y = 0 contributes 0 against an infinite x or log (cyl_term), the limit, where
 * PyTorch gives NaN. */
#define CYL_HALF_LOG_2PI 0.918938533204672741780329736405617640

CYL_INLINE double cyl_stirling(double y)
{
    double s = y * cyl_log(y) - y + 0.5 * cyl_log(y) + CYL_HALF_LOG_2PI;
    return y <= 1.0 ? 0.0 : s;
}

/* Float32 input: the logarithms at float32 precision (cyl_log_f32). */
CYL_INLINE double cyl_stirling_f32(double y)
{
    double ly = cyl_log_f32(y);
    double s = y * ly - y + 0.5 * ly + CYL_HALF_LOG_2PI;
    return y <= 1.0 ? 0.0 : s;
}

CYL_INLINE double cyl_poisson_nll_log(double y, double x, double param)
{
    (void)param;
    return cyl_exp(x) - cyl_term(y, x);
}

/* Float32 input: exp(x) at float32 precision over the double range (cyl_exp_f32). */
CYL_INLINE double cyl_poisson_nll_log_f32(double y, double x, double param)
{
    (void)param;
    return cyl_exp_f32(x) - cyl_term(y, x);
}

CYL_INLINE double cyl_poisson_nll_log_full_f32(double y, double x, double param)
{
    return cyl_poisson_nll_log_f32(y, x, param) + cyl_stirling_f32(y);
}

CYL_INLINE double cyl_poisson_nll_log_grad(double y, double x, double param)
{
    (void)param;
    return cyl_exp(x) - y;
}

CYL_INLINE double cyl_poisson_nll_log_hess(double y, double x, double param)
{
    (void)param;
    return y != y ? y : cyl_exp(x);
}

CYL_INLINE double cyl_poisson_nll_log_full(double y, double x, double param)
{
    return cyl_poisson_nll_log(y, x, param) + cyl_stirling(y);
}

CYL_INLINE double cyl_poisson_nll_log_full_grad(double y, double x, double param)
{
    return cyl_poisson_nll_log_grad(y, x, param);
}

CYL_INLINE double cyl_poisson_nll_log_full_hess(double y, double x, double param)
{
    return cyl_poisson_nll_log_hess(y, x, param);
}

CYL_INLINE double cyl_poisson_nll(double y, double x, double eps)
{
    return x - cyl_term(y, cyl_log(x + eps));
}

CYL_INLINE double cyl_poisson_nll_f32(double y, double x, double eps)
{
    return x - cyl_term(y, cyl_log_f32(x + eps));
}

CYL_INLINE double cyl_poisson_nll_full_f32(double y, double x, double eps)
{
    return cyl_poisson_nll_f32(y, x, eps) + cyl_stirling_f32(y);
}

/* 1 - y / (x + eps); y = 0 gives 1 even where x + eps = 0 (the value's convention). */
CYL_INLINE double cyl_poisson_nll_grad(double y, double x, double eps)
{
    return 1.0 - cyl_term(y, 1.0 / (x + eps));
}

CYL_INLINE double cyl_poisson_nll_hess(double y, double x, double eps)
{
    double r = 1.0 / (x + eps);
    return x != x ? x : cyl_term(y, r * r);
}

CYL_INLINE double cyl_poisson_nll_full(double y, double x, double eps)
{
    return cyl_poisson_nll(y, x, eps) + cyl_stirling(y);
}

CYL_INLINE double cyl_poisson_nll_full_grad(double y, double x, double eps)
{
    return cyl_poisson_nll_grad(y, x, eps);
}

CYL_INLINE double cyl_poisson_nll_full_hess(double y, double x, double eps)
{
    return cyl_poisson_nll_hess(y, x, eps);
}

/* --- hinge embedding (torch.nn.functional.hinge_embedding_loss) --------------------------
 * l = [y != 1] max(margin - x, 0) + [y != -1] x, PyTorch's formula for every label value
 * (y = 1: x; y = -1: max(margin - x, 0); any other label: both terms, as PyTorch).
 * Derivative: clamp_min passes the gradient where margin - x >= 0 (torch.clamp_min's
 * backward); NaN propagates. Hessian 0 (exact almost everywhere). */
CYL_INLINE double cyl_hinge_embedding(double y, double x, double margin)
{
    double d = margin - x;
    double hinge = d < 0.0 ? 0.0 : d;                    /* NaN passes through */
    return (y != 1.0 ? hinge : 0.0) + (y != -1.0 ? x : 0.0);
}

CYL_INLINE double cyl_hinge_embedding_grad(double y, double x, double margin)
{
    double d = margin - x;
    double g = (y != 1.0 ? (d >= 0.0 ? -1.0 : 0.0) : 0.0) + (y != -1.0 ? 1.0 : 0.0);
    return d != d ? d : g;
}

CYL_INLINE double cyl_hinge_embedding_hess(double y, double x, double margin)
{
    double d = margin - x;
    (void)y;
    return d != d ? d : 0.0;
}

/* --- the three-array losses' elements (loops in _pairs.pxi, fast paths in _fastpaths.h) ---
 * margin ranking (torch.nn.functional.margin_ranking_loss): max(-y (a - b) + margin, 0),
 * NaN passing through. */
CYL_INLINE double cyl_margin_ranking(double y, double a, double b, double margin)
{
    double d = -y * (a - b) + margin;
    return d < 0.0 ? 0.0 : d;
}

/* Gaussian NLL (torch.nn.functional.gaussian_nll_loss) of one element without its
 * constant: (log v + (x - y)^2 / v) / 2 at v = max(var, eps) (NaN passes); the caller
 * rejects var < 0 (cyl_gaussian_bad). Float32 input takes the logarithm in float32 of v
 * rounded to float32 (SPEC section 4). */
CYL_INLINE double cyl_gaussian_nll(double y, double x, double var, double eps)
{
    double v = var < eps ? eps : var, e = x - y;
    return 0.5 * (cyl_log(v) + e * e / v);
}

CYL_INLINE double cyl_gaussian_nll_f32(double y, double x, double var, double eps)
{
    double v = var < eps ? eps : var, e = x - y;
    return 0.5 * (cyl_log_f32(v) + e * e / v);
}

CYL_INLINE int cyl_gaussian_bad(double var) { return var < 0.0; }

#define CYL_ELEMENTWISE_PAIRS(X)                                             \
    X(POISSON_NLL_LOG, poisson_nll_log, poisson_nll_log_f32)                 \
    X(POISSON_NLL_LOG_FULL, poisson_nll_log_full, poisson_nll_log_full_f32)  \
    X(POISSON_NLL, poisson_nll, poisson_nll_f32)                             \
    X(POISSON_NLL_FULL, poisson_nll_full, poisson_nll_full_f32)              \
    X(HINGE_EMBEDDING, hinge_embedding, hinge_embedding)

#endif /* CYLOSS_KERNELS_PAIRS_H */
