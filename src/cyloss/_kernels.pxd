# The scalar kernels and the contiguous fast paths, declared for Cython. The formulas
# live once, in C (_kernels.h, _fastpaths.h, _vecmath.h), written as branch-free selects so
# that the loops calling them vectorise; Cython's generated code for the same formulas
# does not. Anyone can `cimport cyloss._kernels` to reuse them.

from libc.stdint cimport int64_t

cdef extern from "_rows.h" nogil:
    # _vecmath.h: exp/log/log1p with C99 special values, 1-2 ulp, vectorisable
    double cyl_exp(double x) noexcept
    double cyl_log_f32(double x) noexcept                     # float32 losses, 2^-28
    double cyl_exp_f32(double x) noexcept
    double cyl_log(double x) noexcept
    double cyl_log1p(double x) noexcept
    double cyl_log1p_nonneg(double x) noexcept                # cyl_log1p's bits, x in [+0, 2^52)
    float cyl_log1pf_small(float u) noexcept                   # float32, u in [0, 1/e]
    float cyl_log1mf(float p) noexcept                         # float32 log1p(-p), <= 2 ulp
    float cyl_logf(float x) noexcept                          # float32, <= 2 ulp
    float cyl_expf(float x) noexcept                          # float32, <= 1.2 ulp
    float cyl_log1pf_unit(float u) noexcept                   # float32, u in [0, 1]
    float cyl_expf_nonpos(float x) noexcept                   # float32, x <= 0 or NaN

    # _kernels.h: one function per formula
    double cyl_term(double coef, double v) noexcept          # coef * v, 0 * inf := 0
    double cyl_clip(double p, double lo, double hi) noexcept
    # elementwise losses: cyl_<name>, cyl_<name>_grad, cyl_<name>_hess of (y, p, param),
    # one kind code each (the order of CYL_ELEMENTWISE); the dispatchers take the kind
    double cyl_mae(double y, double p, double param) noexcept
    double cyl_mse(double y, double p, double param) noexcept
    double cyl_huber(double y, double p, double delta) noexcept
    double cyl_smooth_l1(double y, double p, double beta) noexcept
    int CYL_MAE, CYL_MSE, CYL_HUBER, CYL_SMOOTH_L1, CYL_N_ELEMENTWISE
    const char* cyl_elementwise_names[]                       # by kind code
    double cyl_regression(int kind, double y, double p, double param) noexcept
    double cyl_regression_f32(int kind, double y, double p, double param) noexcept  # float32 input
    double cyl_regression_grad(int kind, double y, double p, double param) noexcept
    double cyl_regression_hess(int kind, double y, double p, double param) noexcept
    double cyl_bce_prob(double a, double b, double p) noexcept
    double cyl_softplus_tail(double x) noexcept               # log1p(e^-|x|)
    double cyl_bce_logit(double a, double b, double x) noexcept
    double cyl_binary(double y, double p, double pw, int from_logits, double keep,
                      double half, double lo, double hi) noexcept
    double cyl_binary_f32(double y, double p, double pw, int from_logits, double keep,
                          double half, double lo, double hi) noexcept
    double cyl_binary_grad(double y, double p, double pw, int from_logits, double keep,
                           double half, double lo, double hi) noexcept
    double cyl_binary_grad_f32(double y, double p, double pw, int from_logits, double keep,
                               double half, double lo, double hi) noexcept
    double cyl_binary_logit_hess(double y, double x, double pw, double keep,
                                 double half) noexcept
    int cyl_binary_bad(double y, double p, int from_logits) noexcept
    double cyl_binary_focal(double y, double p, int from_logits, double keep, double half,
                            double lo, double hi, double gamma, double alpha, int balance,
                            double cw, double* g) noexcept     # loss; d/dp in *g (or NULL)

    # _fastpaths.h: compensated sums over samples, and block sums over contiguous inputs
    # (baseline, x86-64-v3 and x86-64-v4 builds, chosen at run time)
    ctypedef struct cyl_acc:
        double s[8]
        double c[8]
        double part[8]
    void cyl_acc_init(cyl_acc* a) noexcept
    void cyl_acc_add(cyl_acc* a, Py_ssize_t o, Py_ssize_t n, double v) noexcept
    double cyl_acc_total(cyl_acc* a) noexcept
    void cyl_two_sum_add(double* s, double* c, double v) noexcept
    int cyl_simd_best() noexcept                             # 0 baseline, 1 v3, 2 v4
    int cyl_simd_set(int level) noexcept                     # clamped to the best
    int cyl_simd_level                                       # the level in force
    int CYL_HAVE_CLONES
    double cyl_margin_ranking(double y, double a, double b, double margin) noexcept
    double cyl_gaussian_nll(double y, double x, double var, double eps) noexcept
    double cyl_gaussian_nll_f32(double y, double x, double var, double eps) noexcept
    int cyl_gaussian_bad(double var) noexcept
    double cyl_ranking_sum_f32(const float* t, const float* x1, const float* x2,
                               Py_ssize_t n, double margin) noexcept
    double cyl_ranking_sum_f64(const double* t, const double* x1, const double* x2,
                               Py_ssize_t n, double margin) noexcept
    double cyl_gaussian_sum_f32(const float* t, const float* x, const float* var,
                                Py_ssize_t n, double eps, double extra, int* bad) noexcept
    double cyl_gaussian_sum_f64(const double* t, const double* x, const double* var,
                                Py_ssize_t n, double eps, double extra, int* bad) noexcept
    double cyl_binary_rows_sum_f32(const float* t, const float* p, Py_ssize_t n,
                                   Py_ssize_t width, const double* pw, Py_ssize_t pw_step,
                                   const double* cw,
                                   int from_logits, double keep, double half, double lo,
                                   double hi, int* bad) noexcept
    double cyl_binary_rows_sum_f64(const double* t, const double* p, Py_ssize_t n,
                                   Py_ssize_t width, const double* pw, Py_ssize_t pw_step,
                                   const double* cw,
                                   int from_logits, double keep, double half, double lo,
                                   double hi, int* bad) noexcept
    void cyl_overlap_sums_f32(int dice, const float* t, const float* p, Py_ssize_t n,
                              double* out) noexcept
    void cyl_overlap_sums_f64(int dice, const double* t, const double* p, Py_ssize_t n,
                              double* out) noexcept
    double cyl_focal_sum_f32(const float* t, const float* p, Py_ssize_t n, int from_logits,
                             double keep, double half, double lo, double hi, double gamma,
                             double alpha, int balance, double cw, double gscale, int* bad,
                             int* slow, float* g) noexcept
    double cyl_focal_sum_f64(const double* t, const double* p, Py_ssize_t n, int from_logits,
                             double keep, double half, double lo, double hi, double gamma,
                             double alpha, int balance, double cw, double gscale, int* bad,
                             int* slow, double* g) noexcept
    int cyl_all_binary_f32(const float* v, Py_ssize_t n) noexcept    # every value 0 or 1
    int cyl_all_binary_f64(const double* v, Py_ssize_t n) noexcept
    double cyl_regression_sum_f32(int kind, double param, const float* t, const float* p,
                                  Py_ssize_t n, Py_ssize_t width) noexcept
    double cyl_regression_sum_f64(int kind, double param, const double* t, const double* p,
                                  Py_ssize_t n, Py_ssize_t width) noexcept
    double cyl_binary_sum_f32(const float* t, const float* p, Py_ssize_t n, double pw,
                              int from_logits, double keep, double half, double lo,
                              double hi, int* bad) noexcept
    double cyl_binary_sum_f64(const double* t, const double* p, Py_ssize_t n, double pw,
                              int from_logits, double keep, double half, double lo,
                              double hi, int* bad) noexcept
    double cyl_regression_sum_grad_f32(int kind, double param, const float* t,
                                       const float* p, Py_ssize_t n, double gscale,
                                       float* g) noexcept
    double cyl_regression_sum_grad_f64(int kind, double param, const double* t,
                                       const double* p, Py_ssize_t n, double gscale,
                                       double* g) noexcept
    double cyl_binary_sum_grad_f32(const float* t, const float* p, Py_ssize_t n, double pw,
                                   int from_logits, double keep, double half, double lo,
                                   double hi, double gscale, int* bad, float* g) noexcept
    double cyl_binary_sum_grad_f64(const double* t, const double* p, Py_ssize_t n,
                                   double pw, int from_logits, double keep, double half,
                                   double lo, double hi, double gscale, int* bad,
                                   double* g) noexcept

    # _rows.h: one row of C classes read through a byte stride
    double cyl_unless(int cond, double v) noexcept            # v, or +0.0 where cond
    double cyl_row_logits_f32(const float* x, Py_ssize_t sb, Py_ssize_t C,
                              double* m, const void* next) noexcept
    double cyl_row_logits_f64(const double* x, Py_ssize_t sb, Py_ssize_t C,
                              double* m, const void* next) noexcept
    double cyl_row_soft_xent_f32(const float* y, Py_ssize_t ysb, const float* x,
                                 Py_ssize_t sb, Py_ssize_t C, double keep, double spread,
                                 double m, double lognorm, int* bad) noexcept
    double cyl_row_soft_xent_f64(const double* y, Py_ssize_t ysb, const double* x,
                                 Py_ssize_t sb, Py_ssize_t C, double keep, double spread,
                                 double m, double lognorm, int* bad) noexcept
    double cyl_row_logits_keep_f32(const float* x, Py_ssize_t C, double* m,
                                   float* e) noexcept
    void cyl_row_grad_kept_f32(const float* y, Py_ssize_t C, int64_t label, const double* cw,
                               double keep, double spread, double qsum, double lognorm,
                               double w, float* g) noexcept
    void cyl_row_logit_grad_f32(const float* x, Py_ssize_t sb, const float* y,
                                Py_ssize_t ysb, Py_ssize_t C, int64_t label, const double* cw,
                                double keep, double spread, double qsum, double m,
                                double lognorm, double w, float* g, float* h,
                                Py_ssize_t gsb) noexcept
    void cyl_row_logit_grad_f64(const double* x, Py_ssize_t sb, const double* y,
                                Py_ssize_t ysb, Py_ssize_t C, int64_t label, const double* cw,
                                double keep, double spread, double qsum, double m,
                                double lognorm, double w, double* g, double* h,
                                Py_ssize_t gsb) noexcept
    double cyl_row_gap_f32(const float* x, Py_ssize_t sb, Py_ssize_t C, double m) noexcept
    double cyl_row_gap_f64(const double* x, Py_ssize_t sb, Py_ssize_t C, double m) noexcept
    double cyl_row_weighted_nls_f32(const float* x, Py_ssize_t sb, Py_ssize_t C,
                                    const double* cw, double m, double lognorm) noexcept
    double cyl_row_weighted_nls_f64(const double* x, Py_ssize_t sb, Py_ssize_t C,
                                    const double* cw, double m, double lognorm) noexcept
    double cyl_row_total_f32(const float* x, Py_ssize_t sb, Py_ssize_t C,
                             int* negative) noexcept
    double cyl_row_total_f64(const double* x, Py_ssize_t sb, Py_ssize_t C,
                             int* negative) noexcept
    double cyl_row_prob_soft_xent_f32(const float* y, Py_ssize_t ysb, const float* x,
                                      Py_ssize_t sb, Py_ssize_t C, double total,
                                      double keep, double spread, double lo, double hi,
                                      int* bad) noexcept
    double cyl_row_prob_soft_xent_f64(const double* y, Py_ssize_t ysb, const double* x,
                                      Py_ssize_t sb, Py_ssize_t C, double total,
                                      double keep, double spread, double lo, double hi,
                                      int* bad) noexcept
    double cyl_row_prob_nll_sum_f32(const float* x, Py_ssize_t sb, Py_ssize_t C,
                                    const double* cw, double total, double lo,
                                    double hi) noexcept
    double cyl_row_prob_nll_sum_f64(const double* x, Py_ssize_t sb, Py_ssize_t C,
                                    const double* cw, double total, double lo,
                                    double hi) noexcept
    int cyl_sparse_logits_rows8_f32(const float* x, Py_ssize_t C, const int64_t* labels,
                                    Py_ssize_t n, cyl_acc* sums) noexcept
    int cyl_sparse_prob_rows_f32(const float* x, Py_ssize_t C, const int64_t* labels,
                                 Py_ssize_t n, double lo, double hi, cyl_acc* sums) noexcept
    int cyl_sparse_logits_rows8_f64(const double* x, Py_ssize_t C, const int64_t* labels,
                                    Py_ssize_t n, cyl_acc* sums) noexcept
    int cyl_categorical_logits_rows8_f32(const float* y, const float* x, Py_ssize_t C,
                                         Py_ssize_t n, double keep, double spread,
                                         cyl_acc* sums) noexcept
    int cyl_categorical_logits_rows8_f64(const double* y, const double* x, Py_ssize_t C,
                                         Py_ssize_t n, double keep, double spread,
                                         cyl_acc* sums) noexcept

    # _rows.h, the catalogue's row losses: the row's loss, and w * its gradient through
    # g's byte stride gsb when g is not NULL
    int CYL_KL_KERAS, CYL_KL_LOG_INPUT, CYL_KL_LOG_TARGET
    int cyl_kl_rows_sum_f32(const float* y, const float* x, Py_ssize_t n, Py_ssize_t C,
                            int mode, double lo, double* out) noexcept
    int cyl_kl_rows_sum_f64(const double* y, const double* x, Py_ssize_t n, Py_ssize_t C,
                            int mode, double lo, double* out) noexcept
    double cyl_row_kl_f32(const float* y, Py_ssize_t ysb, const float* x, Py_ssize_t sb,
                          Py_ssize_t C, int mode, double lo, float* g, Py_ssize_t gsb,
                          double w) noexcept
    double cyl_row_kl_f64(const double* y, Py_ssize_t ysb, const double* x, Py_ssize_t sb,
                          Py_ssize_t C, int mode, double lo, double* g, Py_ssize_t gsb,
                          double w) noexcept
    double cyl_row_cat_hinge_f32(const float* y, Py_ssize_t ysb, const float* x,
                                 Py_ssize_t sb, Py_ssize_t C, float* g, Py_ssize_t gsb,
                                 double w) noexcept
    double cyl_row_cat_hinge_f64(const double* y, Py_ssize_t ysb, const double* x,
                                 Py_ssize_t sb, Py_ssize_t C, double* g, Py_ssize_t gsb,
                                 double w) noexcept
    double cyl_row_cosine_f32(const float* y, Py_ssize_t ysb, const float* x, Py_ssize_t sb,
                              Py_ssize_t C, double eps, float* g, Py_ssize_t gsb,
                              double w) noexcept
    double cyl_row_cosine_f64(const double* y, Py_ssize_t ysb, const double* x,
                              Py_ssize_t sb, Py_ssize_t C, double eps, double* g,
                              Py_ssize_t gsb, double w) noexcept
