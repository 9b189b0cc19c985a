# Scalar kernels: one inline function per formula, double in and double out, no Python
# objects, so the loops in _loops.pyx (and anyone who cimports this file) share exactly
# one definition of every formula. Edge cases first, then the formula.
#
# Conventions
# - ``c_term(coef, v)`` is ``coef * v`` with the rule ``0 * (+-inf) := 0``: a target or
#   weight of exactly 0 never contributes, even against an infinite log-probability.
#   NaN still propagates (``0 * NaN`` is NaN), as NumPy does.
# - Comparisons are written so that NaN falls through to the formula and comes out NaN.

from libc.math cimport exp, fabs, isnan, log, log1p


cdef inline double c_term(double coef, double v) noexcept nogil:
    if coef == 0.0 and not isnan(v):
        return 0.0
    return coef * v


cdef inline double c_clip(double p, double lo, double hi) noexcept nogil:
    # NaN fails both tests and passes through unchanged.
    if p < lo:
        return lo
    if p > hi:
        return hi
    return p


cdef inline double c_log1pexp(double x) noexcept nogil:
    # log(1 + e^x) with the cutoffs of Maechler (2012), "Accurately computing
    # log(1 - exp(-|a|))", as in scikit-learn's _loss. Only the first branch matters for
    # accuracy (log1p(t) = t to double precision once t = e^x < 1e-16); the last two save
    # an exp/log where the answer is already exact.
    if x <= -37.0:
        return exp(x)
    if x <= 18.0:
        return log1p(exp(x))
    if x <= 33.3:
        return x + exp(-x)      # log(1 + e^x) = x + log1p(e^-x), and log1p(t) ~ t
    return x                    # also +inf and NaN


# --- regression ----------------------------------------------------------------------

cdef inline double c_mae(double y, double p) noexcept nogil:
    return fabs(p - y)


cdef inline double c_mse(double y, double p) noexcept nogil:
    cdef double e = p - y
    return e * e


cdef inline double c_huber(double y, double p, double delta) noexcept nogil:
    # Keras's form: quadratic up to and including |e| == delta.
    cdef double e = p - y
    cdef double a = fabs(e)
    if a <= delta:
        return 0.5 * e * e
    return delta * (a - 0.5 * delta)   # also NaN


cdef inline double c_smooth_l1(double y, double p, double beta) noexcept nogil:
    # PyTorch's form: quadratic strictly below beta, so beta == 0 is plain L1 and the
    # division by beta is never evaluated then.
    cdef double e = p - y
    cdef double a = fabs(e)
    if a < beta:
        return 0.5 * e * e / beta
    return a - 0.5 * beta


# --- binary cross-entropy --------------------------------------------------------------
# With a = pos_weight * y and b = 1 - y (after label smoothing):
#   probabilities: l = a * (-log p) + b * (-log(1 - p)),  p clipped to [eps, 1 - eps]
#   logits:        l = a * softplus(-x) + b * softplus(x)
# The logit form is PyTorch's (1 - y) x + (1 + (pw - 1) y) softplus(-x) split so that each
# coefficient meets only its own softplus: x = +-inf then gives the limit (0 or inf)
# instead of inf - inf.

cdef inline double c_bce_prob(double a, double b, double p) noexcept nogil:
    return c_term(a, -log(p)) + c_term(b, -log1p(-p))


cdef inline double c_bce_logit(double a, double b, double x) noexcept nogil:
    # softplus(+-x) = max(+-x, 0) + log1p(e^-|x|)
    cdef double tail = c_log1pexp(-fabs(x))
    cdef double pos = x if x > 0.0 else 0.0
    cdef double neg = -x if x < 0.0 else 0.0
    return c_term(a, neg + tail) + c_term(b, pos + tail)
