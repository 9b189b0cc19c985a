"""Array loops of cyloss.

Design
------
The package has four layers, each in its own file:

1. kernels in C, declared for Cython in ``_kernels.pxd``: ``_kernels.h`` (one branch-free
   formula per loss and its derivative), ``_vecmath.h`` (exp/log/log1p that vectorise),
   ``_fastpaths.h`` (compensated sums, contiguous block sums), ``_rows.h`` (row
   operations of the class losses, cross-row kernels for few classes);
2. ``_loops.pyx``    (this file) loops over typed memoryviews that call only those
   kernels, release the GIL and run blocks of samples in an OpenMP ``prange``. The
   elementwise families (regression, whose kernels ``CYL_ELEMENTWISE`` lists, and binary
   cross-entropy) share one entry and one general loop; only their fast paths differ;
3. ``_validation.py`` shapes, dtypes, parameters and every error message;
4. ``losses.py``     the public functions and classes: validate, call one loop, return.

Every loop here takes arrays whose shapes were already checked in Python, plus a
float64 ``weight`` per sample (stride 0 when the user gave a scalar; ``has_weight`` False
and None when there is none), and returns ``(num, den, count, err, err_i, err_k)``:

- ``num``   sum of ``w_i * l_i`` over counted samples,
- ``den``   sum of ``w_i * v_i`` (``v_i`` the class weight of the label, else 1),
- ``count`` number of counted (not ignored) samples,
- ``err``   0, or the code of the first invalid datum found (``ERR_*`` below), with
  ``err_i`` its sample index and ``err_k`` its class/column (or the bad label).

Determinism: the samples are cut into blocks whose size depends only on the input's
shape, never on the thread count. Each block sums serially in float64 into its own slot;
the slots are then added in block order on one thread. So the result is bitwise the same
for any ``n_threads``, and the only allocation is the slot array (at most ``MAX_BLOCKS``
entries, ~200 KiB), whatever the input size. Blocks are handed out by OpenMP's guided
schedule: which thread computes a block does not matter; each thread first takes long
runs of consecutive blocks (one stream for the hardware prefetcher: with single blocks
handed out in turn, two threads read a 40 MB input at 60% of the bandwidth they reach
this way), then ever shorter ones, so that a thread that another process delays holds up
only a short run at the end.

Data checks (labels in range, probabilities in [0, 1], ...) happen in the same pass: a
block stops at its first invalid datum and records it; since blocks are in sample order,
the first block with an error holds the first invalid datum overall. Labels are checked
before they are used as an index, so no out-of-range index reaches memory.
"""

from cython.parallel cimport prange
from cython cimport floating
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.math cimport exp, expm1, log, pow
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_RECORDS_RO
from numpy import ndarray as _ndarray
from cyloss._kernels cimport (
    cyl_exp, cyl_expf, cyl_log1pf_unit, cyl_log, cyl_log1p, cyl_term, cyl_clip, cyl_regression,
    cyl_regression_f32, cyl_log_f32, cyl_exp_f32, cyl_logf, cyl_log1pf_small, cyl_log1mf,
    cyl_expf_nonpos, cyl_log1p_nonneg, cyl_binary,
    cyl_binary_f32, cyl_regression_grad, cyl_binary_grad, cyl_binary_grad_f32,
    cyl_regression_hess,
    cyl_binary_logit_hess,
    cyl_binary_bad, cyl_binary_focal, cyl_regression_sum_f32, cyl_regression_sum_f64,
    cyl_binary_sum_f32, cyl_binary_sum_f64, cyl_all_binary_f32, cyl_all_binary_f64,
    cyl_simd_best, cyl_simd_set, cyl_simd_level, CYL_HAVE_CLONES, cyl_margin_ranking,
    cyl_gaussian_nll, cyl_gaussian_nll_f32,
    cyl_gaussian_bad, cyl_ranking_sum_f32, cyl_ranking_sum_f64, cyl_overlap_sums_f32,
    cyl_overlap_sums_f64, cyl_gaussian_sum_f32, cyl_gaussian_sum_f64, cyl_focal_sum_f32,
    cyl_focal_sum_f64, cyl_binary_rows_sum_f32, cyl_binary_rows_sum_f64,
    CYL_MAE, CYL_MSE, CYL_HUBER, CYL_SMOOTH_L1,
    CYL_N_ELEMENTWISE, cyl_elementwise_names,
    cyl_row_logits_f32, cyl_row_logits_f64, cyl_row_soft_xent_f32, cyl_row_soft_xent_f64,
    cyl_row_gap_f32, cyl_row_gap_f64, cyl_row_weighted_nls_f32, cyl_row_weighted_nls_f64,
    cyl_row_total_f32, cyl_row_total_f64, cyl_row_prob_soft_xent_f32,
    cyl_row_prob_soft_xent_f64, cyl_row_prob_nll_sum_f32, cyl_row_prob_nll_sum_f64,
    cyl_sparse_logits_rows8_f32, cyl_sparse_logits_rows8_f64, cyl_sparse_prob_rows_f32,
    cyl_categorical_logits_rows8_f32, cyl_categorical_logits_rows8_f64,
    cyl_row_logit_grad_f32, cyl_row_logit_grad_f64, cyl_row_logits_keep_f32,
    cyl_row_grad_kept_f32, cyl_regression_sum_grad_f32,
    cyl_regression_sum_grad_f64, cyl_binary_sum_grad_f32, cyl_binary_sum_grad_f64,
    cyl_acc, cyl_acc_init, cyl_acc_add, cyl_acc_total, cyl_two_sum_add, cyl_unless,
    CYL_KL_KERAS, CYL_KL_LOG_INPUT, CYL_KL_LOG_TARGET, cyl_row_kl_f32, cyl_row_kl_f64,
    cyl_kl_rows_sum_f32, cyl_kl_rows_sum_f64,
    cyl_row_cat_hinge_f32, cyl_row_cat_hinge_f64, cyl_row_cosine_f32, cyl_row_cosine_f64,
)

# Error codes, mirrored in _validation.py which turns them into messages.
cdef enum:
    ERR_NONE = 0
    ERR_LABEL = 1         # label outside [0, C) and not ignore_index; err_k = label
    ERR_PROB_RANGE = 2    # binary probability outside [0, 1]
    ERR_PROB_NEG = 3      # negative probability in a categorical/sparse row
    ERR_ROW_ZERO = 4      # probability row summing to 0
    ERR_TARGET = 5        # target outside [0, 1]

# Elementwise kind codes by kernel name, in the order of CYL_ELEMENTWISE (_kernels.h):
# losses.py's table looks its losses up here. MAE ... SMOOTH_L1 name the first four.
KINDS = {cyl_elementwise_names[k].decode(): k for k in range(CYL_N_ELEMENTWISE)}
MAE, MSE, HUBER, SMOOTH_L1 = CYL_MAE, CYL_MSE, CYL_HUBER, CYL_SMOOTH_L1
LABEL, PROB_RANGE, PROB_NEG, ROW_ZERO, TARGET = (
    ERR_LABEL, ERR_PROB_RANGE, ERR_PROB_NEG, ERR_ROW_ZERO, ERR_TARGET)

# A block holds about BLOCK_WORK elements; the number of blocks is capped at MAX_BLOCKS by
# growing the blocks. Both depend on the shape alone.
cdef Py_ssize_t BLOCK_WORK = 8192
cdef Py_ssize_t MAX_BLOCKS = 4096
# Contiguous rows of at most this many classes go eight at a time through the cross-row
# kernels of _rows.h (CYL_SMALL_CLASSES).
cdef Py_ssize_t SMALL_CLASSES = 32


cdef int _require(bint ok, str what) except -1:
    # Invariants that losses.py establishes; checked again here because the loops run
    # without bounds checks and a broken invariant would read outside an array.
    if not ok:
        raise ValueError(f"cyloss internal error: {what}")
    return 0


cdef int _check_common(Py_ssize_t n, Py_ssize_t n_weight, bint has_weight,
                       Py_ssize_t n_out, bint write_out) except -1:
    _require(not has_weight or n_weight == n,
             "weight length differs from the number of samples")
    _require(not write_out or n_out == n, "loss_out length differs from the samples")
    return 0


cdef tuple _empty_rows(Py_ssize_t n, const double[:] weight, bint has_weight,
                       loss_out, bint write_out):
    # No samples, or samples with no elements: the mean over an empty last axis is NaN,
    # as in NumPy. &array[0, 0] would not exist, so no loop runs.
    cdef Py_ssize_t i
    cdef double den = 0.0
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    for i in range(n):
        den += weight[i] if has_weight else 1.0
    if write_out:
        loss_out[:] = float("nan")
    return (float("nan"), den, n, ERR_NONE, -1, -1)


ctypedef struct Block:
    double num
    double den
    int64_t count
    int err
    int64_t err_i
    int64_t err_k


cdef inline Py_ssize_t _block_size(Py_ssize_t n, Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t size = BLOCK_WORK // (width if width > 0 else 1)
    if size < 1:
        size = 1
    if (n + size - 1) // size > MAX_BLOCKS:
        size = (n + MAX_BLOCKS - 1) // MAX_BLOCKS
    return size


cdef inline int _team(int n_threads, Py_ssize_t n_blocks) noexcept nogil:
    # At least four blocks (about 32k elements) per thread: below that, waking a thread
    # costs more than it saves, and far more when another process holds the core. The
    # result does not depend on the team size, so shrinking it is always allowed.
    cdef Py_ssize_t most = n_blocks // 4
    if most < 1:
        most = 1
    if n_threads > most:
        return <int>most
    return n_threads if n_threads > 0 else 1


cdef Block* _new_blocks(Py_ssize_t n_blocks) except NULL:
    cdef Block* blocks = <Block*>malloc((n_blocks if n_blocks > 0 else 1) * sizeof(Block))
    if blocks == NULL:
        raise MemoryError("cyloss: cannot allocate the block table")
    return blocks


cdef inline void _set(Block* blk, double num, double den, int64_t count) noexcept nogil:
    blk.num = num
    blk.den = den
    blk.count = count
    blk.err = ERR_NONE
    blk.err_i = -1
    blk.err_k = -1


cdef inline void _fail(Block* blk, int err, int64_t i, int64_t k) noexcept nogil:
    blk.num = 0.0
    blk.den = 0.0
    blk.count = 0
    blk.err = err
    blk.err_i = i
    blk.err_k = k


cdef tuple _combine(Block* blocks, Py_ssize_t n_blocks):
    # Fixed order, one thread: this is what makes the sum independent of the team size.
    # Compensated like the sums inside the blocks, so the total stays within an ulp or
    # two of the exact sum of the per-sample losses.
    cdef double num = 0.0, num_c = 0.0, den = 0.0, den_c = 0.0
    cdef int64_t count = 0
    cdef Py_ssize_t b
    for b in range(n_blocks):
        if blocks[b].err != ERR_NONE:
            return (0.0, 0.0, 0, blocks[b].err, blocks[b].err_i, blocks[b].err_k)
        cyl_two_sum_add(&num, &num_c, blocks[b].num)
        cyl_two_sum_add(&den, &den_c, blocks[b].den)
        count += blocks[b].count
    num = num + num_c if num - num == 0.0 else num
    den = den + den_c if den - den == 0.0 else den
    return (num, den, count, ERR_NONE, -1, -1)


# --- elementwise losses: regression and binary -------------------------------------------
# Element access goes through byte strides so any layout is read in place. Sums use
# CYL_LANES (8) accumulators in the fixed pattern of _fastpaths.h: element j of the main
# part of a row or block goes to lane j % 8, the tail to lane 0, lanes combined by a fixed
# tree. The contiguous fast paths in C use the same pattern, so every layout and every
# thread count gives the same bits.

cdef inline const floating* _at(const floating* base, Py_ssize_t offset) noexcept nogil:
    return <const floating*>((<const char*>base) + offset)


cdef inline int _lane(Py_ssize_t j, Py_ssize_t n) noexcept nogil:
    # Lane of element j among n: j % 8 in the main part, 0 in the tail.
    return <int>(j & 7) if j < (n & ~(<Py_ssize_t>7)) else 0


cdef inline double _lanes_total(double* acc) noexcept nogil:
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef inline void _lanes_clear(double* acc) noexcept nogil:
    cdef int j
    for j in range(8):
        acc[j] = 0.0


cdef inline double _regression_value(int kind, double y, double p, double param,
                                     const floating* like) noexcept nogil:
    # One element's value: float32 input takes the loss's float32 value kernel.
    if floating is float:
        return cyl_regression_f32(kind, y, p, param)
    else:
        return cyl_regression(kind, y, p, param)


cdef inline double _regression_row(
    int kind, double param, const floating* t, Py_ssize_t ts, const floating* p,
    Py_ssize_t ps, Py_ssize_t width,
) noexcept nogil:
    # Mean over one row of `width` elements (byte strides ts, ps).
    cdef double acc[8]
    cdef Py_ssize_t k
    _lanes_clear(acc)
    for k in range(width):
        acc[_lane(k, width)] += _regression_value(kind, _at(t, k * ts)[0], _at(p, k * ps)[0],
                                                  param, t)
    return _lanes_total(acc) / width


cdef double _regression_fast(int kind, double param, const floating* t, const floating* p,
                             Py_ssize_t n, Py_ssize_t width) noexcept nogil:
    if floating is float:
        return cyl_regression_sum_f32(kind, param, t, p, n, width)
    else:
        return cyl_regression_sum_f64(kind, param, t, p, n, width)


cdef bint _quick_buffer(object a, Py_buffer* view):
    # An exact ndarray of native float32/float64, C-contiguous and aligned, one or two
    # axes; view is filled (and must be released) only when this returns True.
    if type(a) is not _ndarray:
        return False
    try:
        PyObject_GetBuffer(a, view, PyBUF_RECORDS_RO)
    except Exception:
        return False
    cdef bint ok = (
        (view.ndim == 1 or view.ndim == 2) and view.format != NULL
        and view.format[1] == 0 and (view.format[0] == b"f" or view.format[0] == b"d")
        and view.strides[view.ndim - 1] == view.itemsize
        and (view.ndim == 1 or view.strides[0] == view.shape[1] * view.itemsize)
        and (<size_t>view.buf) % view.itemsize == 0
    )
    if not ok:
        PyBuffer_Release(view)
    return ok


cdef void _quick_blocks(int kind, double param, const floating* t, const floating* p,
                        Py_ssize_t n, Py_ssize_t width, Py_ssize_t size,
                        Py_ssize_t n_blocks, Block* blocks) noexcept nogil:
    # regression's blocks for contiguous rows without weights, serially: what each
    # _regression_block does on its fast path.
    cdef Py_ssize_t b, start, end
    for b in range(n_blocks):
        start = b * size
        end = min(n, start + size)
        _set(&blocks[b], _regression_fast(kind, param, t + start * width, p + start * width,
                                          end - start, width),
             <double>(end - start), end - start)


def regression_quick(int kind, double param, y_true, y_pred, bint mean, n_threads):
    """The value of a plain regression call (two same-shape contiguous float arrays of
    one dtype, one or two axes; no weights, reduction "mean" or "sum") small enough that
    every thread count runs it serially, or None for any other call. The same blocks,
    kernel and combination as `regression`, hence the same bits, without the Python-side
    preparation: a call on 10^4 elements is dominated by it."""
    if not (n_threads is None
            or (type(n_threads) is int and (n_threads == -1 or n_threads > 0))):
        return None
    if kind < 0 or kind >= CYL_N_ELEMENTWISE:
        return None
    cdef Py_buffer bt, bp
    if not _quick_buffer(y_true, &bt):
        return None
    if not _quick_buffer(y_pred, &bp):
        PyBuffer_Release(&bt)
        return None
    cdef Py_ssize_t n, width, size, n_blocks
    cdef Block blocks[8]
    try:
        if (bt.ndim != bp.ndim or bt.itemsize != bp.itemsize or bt.shape[0] != bp.shape[0]
                or (bt.ndim == 2 and bt.shape[1] != bp.shape[1])):
            return None
        n = bp.shape[0]
        width = bp.shape[1] if bp.ndim == 2 else 1
        if n == 0 or width == 0:
            return None
        size = _block_size(n, width)
        n_blocks = (n + size - 1) // size
        if n_blocks >= 8:   # _team could then pick more than one thread
            return None
        with nogil:
            if bp.itemsize == 4:
                _quick_blocks(kind, param, <const float*>bt.buf, <const float*>bp.buf, n,
                              width, size, n_blocks, blocks)
            else:
                _quick_blocks(kind, param, <const double*>bt.buf, <const double*>bp.buf, n,
                              width, size, n_blocks, blocks)
        num, den, count = _combine(blocks, n_blocks)[:3]   # no block can fail here
        return num / count if mean else num   # as losses.reduce_sums (count > 0 here)
    finally:
        PyBuffer_Release(&bt)
        PyBuffer_Release(&bp)


# Binary cross-entropy: validity is accumulated as a flag beside the sum (no branch in the
# loop); only a block whose flag is set is scanned again, serially, for its first invalid
# datum.

cdef inline double _binary_elem(const floating* like, double y, double x, double pw,
                                bint from_logits, double keep, double half, double lo,
                                double hi) noexcept nogil:
    # float32 input takes the float32 softplus tail, as the fast path does (`like` only
    # selects the specialisation).
    if floating is float:
        return cyl_binary_f32(y, x, pw, from_logits, keep, half, lo, hi)
    else:
        return cyl_binary(y, x, pw, from_logits, keep, half, lo, hi)


cdef inline double _binary_grad_elem(const floating* like, double y, double x, double pw,
                                     bint from_logits, double keep, double half, double lo,
                                     double hi) noexcept nogil:
    # The derivative of _binary_elem: float32 input takes the float32 e^-|x| as the value
    # does.
    if floating is float:
        return cyl_binary_grad_f32(y, x, pw, from_logits, keep, half, lo, hi)
    else:
        return cyl_binary_grad(y, x, pw, from_logits, keep, half, lo, hi)


cdef inline double _binary_row(
    const floating* t, Py_ssize_t ts, const floating* p, Py_ssize_t ps,
    const double[:] pos_weight, Py_ssize_t width, bint from_logits, double keep,
    double half, double lo, double hi, int* bad,
) noexcept nogil:
    cdef double acc[8], y, x
    cdef Py_ssize_t k
    cdef int flag = 0
    _lanes_clear(acc)
    for k in range(width):
        y = _at(t, k * ts)[0]
        x = _at(p, k * ps)[0]
        flag |= cyl_binary_bad(y, x, from_logits)
        acc[_lane(k, width)] += _binary_elem(t, y, x, pos_weight[k], from_logits, keep,
                                             half, lo, hi)
    bad[0] |= flag
    return _lanes_total(acc) / width


cdef void _binary_first_bad(
    const floating[:, :] y_true, const floating[:, :] y_pred, bint from_logits,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef double y, p
    for i in range(start, end):
        for k in range(y_pred.shape[1]):
            y = y_true[i, k]
            p = y_pred[i, k]
            if y < 0.0 or y > 1.0:
                _fail(blk, ERR_TARGET, i, k)
                return
            if not from_logits and (p < 0.0 or p > 1.0):
                _fail(blk, ERR_PROB_RANGE, i, k)
                return


cdef double _binary_fast(const floating* t, const floating* p, Py_ssize_t n, double pw,
                         bint from_logits, double keep, double half, double lo, double hi,
                         int* bad) noexcept nogil:
    if floating is float:
        return cyl_binary_sum_f32(t, p, n, pw, from_logits, keep, half, lo, hi, bad)
    else:
        return cyl_binary_sum_f64(t, p, n, pw, from_logits, keep, half, lo, hi, bad)


# --- one entry for both families ---------------------------------------------------------
# Regression (the kernels of CYL_ELEMENTWISE, told apart by `kind`) and binary
# cross-entropy share everything but the formula: the entry below (buffers, invariant
# checks, blocks, threads, combination) and the general strided loop of a block
# (_elementwise_rows). Each family keeps its own contiguous fast paths. The family is
# the type of its options, a fused type, so Cython compiles one copy of each function
# per family with the other family's branches removed: no test of the family is left
# in a loop.

ctypedef struct RegressionOptions:
    int kind              # the CYL_* kind of _kernels.h
    double param          # the kernel's parameter (delta, beta, ...)
    double gscale         # multiplies each gradient element (see losses._grad_prescale)

ctypedef struct BinaryOptions:
    bint from_logits
    double keep           # smoothed target y * keep + half
    double half
    double lo             # probability clip [lo, hi]
    double hi
    double gscale

# Binary focal cross-entropy and multilabel soft margin: the binary family's general
# loop (compiled as its own copy, so plain binary cross-entropy keeps its fast paths and
# its general loop untouched), with a per-class weight vector in pos_weight's place.
ctypedef struct FocalOptions:
    bint from_logits
    double keep
    double half
    double lo
    double hi
    bint focal            # False: class-weighted binary cross-entropy (multilabel soft margin)
    double gamma
    double alpha
    bint balance          # Keras's apply_class_balancing
    double gscale

ctypedef fused ElemOptions:
    RegressionOptions
    BinaryOptions
    FocalOptions


cdef inline double _focal_elem(const FocalOptions* o, const floating* like, double y,
                               double x, double cw, double* g) noexcept nogil:
    # One element of a FocalOptions loss, and its derivative in g (when not NULL). The
    # non-focal form is cw times binary cross-entropy's own element (same bits for cw = 1;
    # a zero class weight contributes 0 even against an infinite element).
    if o.focal:
        return cyl_binary_focal(y, x, o.from_logits, o.keep, o.half, o.lo, o.hi, o.gamma,
                                o.alpha, o.balance, cw, g)
    if g != NULL:
        g[0] = cw * _binary_grad_elem(like, y, x, 1.0, o.from_logits, o.keep, o.half, o.lo,
                                      o.hi)
    return cyl_term(cw, _binary_elem(like, y, x, 1.0, o.from_logits, o.keep, o.half, o.lo,
                                     o.hi))


cdef inline double _focal_row(
    const FocalOptions* o, const floating* t, Py_ssize_t ts, const floating* p,
    Py_ssize_t ps, const double[:] cw, Py_ssize_t width, int* bad,
    floating* g, Py_ssize_t gs, floating* h, Py_ssize_t hs, double w, double gscale,
) noexcept nogil:
    # The loss of one row (its mean; the element itself for one column), and, when g is
    # not NULL, w times each element's derivative / width into g (byte stride gs) in the
    # same pass (and the Hessian into h, when not NULL: losses.py asks for it only
    # without the focal terms). The value's bits do not depend on g.
    cdef double acc[8], y, x, e = 0.0, gk
    cdef Py_ssize_t k
    cdef int flag = 0
    _lanes_clear(acc)
    for k in range(width):
        y = _at(t, k * ts)[0]
        x = _at(p, k * ps)[0]
        flag |= cyl_binary_bad(y, x, o.from_logits)
        if g != NULL:
            e = _focal_elem(o, t, y, x, cw[k], &gk)
            (<floating*>((<char*>g) + k * gs))[0] = <floating>((w * gscale) * gk / width)
            if h != NULL:
                (<floating*>((<char*>h) + k * hs))[0] = <floating>(
                    w * cw[k] * cyl_binary_logit_hess(y, x, 1.0, o.keep, o.half) / width)
        else:
            e = _focal_elem(o, t, y, x, cw[k], NULL)
        acc[_lane(k, width)] += e
    bad[0] |= flag
    return e if width == 1 else _lanes_total(acc) / width


cdef inline void _elementwise_rows(
    const ElemOptions* o,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    const double[:] weight, bint has_weight, const double[:] pos_weight,
    floating[:] loss_out, bint write_out, floating[:, :] grad, bint write_grad,
    floating[:, :] hess, bint write_hess,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    # The general loop of a block: any strides, weights, per-sample output, derivatives.
    cdef Py_ssize_t i, width = y_pred.shape[1], m = end - start
    cdef const floating* t = &y_true[start, 0]
    cdef const floating* p = &y_pred[start, 0]
    cdef Py_ssize_t ts0 = y_true.strides[0], ts1 = y_true.strides[1]
    cdef Py_ssize_t ps0 = y_pred.strides[0], ps1 = y_pred.strides[1]
    cdef double l, y, x, w, pw, gw
    cdef double pw0 = 0.0
    cdef floating* g_row = NULL
    cdef floating* h_row = NULL
    cdef cyl_acc acc, den
    cdef int bad = 0
    cdef Py_ssize_t k
    if ElemOptions is BinaryOptions:
        pw0 = pos_weight[0]
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m):
        if ElemOptions is RegressionOptions:
            if width == 1:
                l = _regression_value(o.kind, _at(t, i * ts0)[0], _at(p, i * ps0)[0],
                                      o.param, t)
            else:
                l = _regression_row(o.kind, o.param, _at(t, i * ts0), ts1, _at(p, i * ps0),
                                    ps1, width)
        elif ElemOptions is BinaryOptions:
            if width == 1:
                y = _at(t, i * ts0)[0]
                x = _at(p, i * ps0)[0]
                bad |= cyl_binary_bad(y, x, o.from_logits)
                l = _binary_elem(t, y, x, pw0, o.from_logits, o.keep, o.half, o.lo, o.hi)
            else:
                l = _binary_row(_at(t, i * ts0), ts1, _at(p, i * ps0), ps1, pos_weight,
                                width, o.from_logits, o.keep, o.half, o.lo, o.hi, &bad)
        else:
            # value and derivatives in one pass over the row
            if write_grad:
                g_row = &grad[start + i, 0]
            if write_hess:
                h_row = &hess[start + i, 0]
            l = _focal_row(o, _at(t, i * ts0), ts1, _at(p, i * ps0), ps1, pos_weight,
                           width, &bad, g_row, grad.strides[1] if write_grad else 0,
                           h_row, hess.strides[1] if write_hess else 0,
                           weight[start + i] if has_weight else 1.0, o.gscale)
        w = weight[start + i] if has_weight else 1.0
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m, w)
        if write_out:
            loss_out[start + i] = <floating>l
        if ElemOptions is FocalOptions:
            pass   # _focal_row wrote the derivatives
        elif write_grad:
            # d (w_i mean_k f_ik) / d p_ik = w_i f'_ik / width, times the reduction's
            # scale when the caller knows it up front (o.gscale; else 1 and the caller
            # applies it). The Hessian is never prescaled.
            gw = w * o.gscale
            for k in range(width):
                y = _at(t, i * ts0 + k * ts1)[0]
                x = _at(p, i * ps0 + k * ps1)[0]
                if ElemOptions is RegressionOptions:
                    grad[start + i, k] = <floating>(
                        gw * cyl_regression_grad(o.kind, y, x, o.param) / width)
                    if write_hess:
                        hess[start + i, k] = <floating>(
                            w * cyl_regression_hess(o.kind, y, x, o.param) / width)
                else:
                    pw = pos_weight[k]
                    grad[start + i, k] = <floating>(gw * _binary_grad_elem(
                        t, y, x, pw, o.from_logits, o.keep, o.half, o.lo, o.hi) / width)
                    if write_hess:
                        hess[start + i, k] = <floating>(
                            w * cyl_binary_logit_hess(y, x, pw, o.keep, o.half) / width)
        cyl_acc_add(&acc, i, m, l)
    if ElemOptions is RegressionOptions:
        pass
    else:
        if bad:
            _binary_first_bad(y_true, y_pred, o.from_logits, start, end, blk)
            return
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m, m)


cdef void _regression_block(
    const RegressionOptions* o,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    const double[:] weight, bint has_weight, const double[:] pos_weight,
    floating[:] loss_out, bint write_out, floating[:, :] grad, bint write_grad,
    floating[:, :] hess, bint write_hess,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t width = y_pred.shape[1], m = end - start
    cdef const floating* t = &y_true[start, 0]
    cdef const floating* p = &y_pred[start, 0]
    cdef Py_ssize_t ts0 = y_true.strides[0], ts1 = y_true.strides[1]
    cdef Py_ssize_t ps0 = y_pred.strides[0], ps1 = y_pred.strides[1]
    cdef double l
    if (not has_weight and not write_out and not write_grad
            and ts1 == sizeof(floating) and ps1 == sizeof(floating)
            and ts0 == width * ts1 and ps0 == width * ps1):
        _set(blk, _regression_fast(o.kind, o.param, t, p, m, width), <double>m, m)
        return
    if (write_grad and not write_hess and not has_weight and not write_out and width == 1
            and ts0 == sizeof(floating) and ps0 == sizeof(floating)):
        # Value and gradient in one vectorised pass (same bits as the general loop).
        if floating is float:
            l = cyl_regression_sum_grad_f32(o.kind, o.param, t, p, m, o.gscale,
                                            &grad[start, 0])
        else:
            l = cyl_regression_sum_grad_f64(o.kind, o.param, t, p, m, o.gscale,
                                            &grad[start, 0])
        _set(blk, l, <double>m, m)
        return
    _elementwise_rows(o, y_true, y_pred, weight, has_weight, pos_weight,
                      loss_out, write_out, grad, write_grad, hess, write_hess, start, end,
                      blk)


cdef inline bint _binary_rows_fast(
    const floating[:, :] y_true, const floating[:, :] y_pred, const double* pw,
    Py_ssize_t pw_step, const double* cw, Py_ssize_t cw_len, Py_ssize_t cw_stride,
    bint from_logits, double keep, double half, double lo, double hi, bint general,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    # The value of binary cross-entropy over contiguous rows wider than one output
    # (multilabel soft margin when cw is given): cyl_binary_rows_sum, the general loop's
    # bits. pw_step 0: one pos_weight for every column; cw NULL: no class weights.
    # False when the general loop must run: weights, outputs, a layout or width the fast
    # path does not take, or an invalid datum (the general loop reports the first one).
    cdef Py_ssize_t width = y_pred.shape[1], m = end - start
    cdef double total
    cdef int bad = 0
    if (general or m <= 0 or width < 2
            or y_true.strides[1] != sizeof(floating) or y_pred.strides[1] != sizeof(floating)
            or y_true.strides[0] != width * sizeof(floating)
            or y_pred.strides[0] != width * sizeof(floating)
            or (cw != NULL and (cw_len != width or cw_stride != sizeof(double)))):
        return False
    if floating is float:
        total = cyl_binary_rows_sum_f32(&y_true[start, 0], &y_pred[start, 0], m, width, pw,
                                        pw_step, cw, from_logits, keep, half, lo, hi, &bad)
    else:
        total = cyl_binary_rows_sum_f64(&y_true[start, 0], &y_pred[start, 0], m, width, pw,
                                        pw_step, cw, from_logits, keep, half, lo, hi, &bad)
    if bad:
        return False
    _set(blk, total, <double>m, m)
    return True


cdef void _binary_block(
    const BinaryOptions* o,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    const double[:] weight, bint has_weight, const double[:] pos_weight,
    floating[:] loss_out, bint write_out, floating[:, :] grad, bint write_grad,
    floating[:, :] hess, bint write_hess,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t width = y_pred.shape[1], m = end - start
    cdef const floating* t = &y_true[start, 0]
    cdef const floating* p = &y_pred[start, 0]
    cdef Py_ssize_t ts0 = y_true.strides[0], ps0 = y_pred.strides[0]
    cdef double pw0 = pos_weight[0], total
    cdef int bad = 0
    if (width == 1 and not has_weight and not write_out and not write_grad
            and ts0 == sizeof(floating) and ps0 == sizeof(floating)):
        total = _binary_fast(t, p, m, pw0, o.from_logits, o.keep, o.half, o.lo, o.hi, &bad)
        if bad:
            _binary_first_bad(y_true, y_pred, o.from_logits, start, end, blk)
        else:
            _set(blk, total, <double>m, m)
        return
    if (width == 1 and write_grad and not write_hess and not has_weight and not write_out
            and ts0 == sizeof(floating) and ps0 == sizeof(floating)):
        # Value and gradient in one vectorised pass (same bits as the general loop).
        if floating is float:
            total = cyl_binary_sum_grad_f32(t, p, m, pw0, o.from_logits, o.keep, o.half,
                                            o.lo, o.hi, o.gscale, &bad, &grad[start, 0])
        else:
            total = cyl_binary_sum_grad_f64(t, p, m, pw0, o.from_logits, o.keep, o.half,
                                            o.lo, o.hi, o.gscale, &bad, &grad[start, 0])
        if bad:
            _binary_first_bad(y_true, y_pred, o.from_logits, start, end, blk)
        else:
            _set(blk, total, <double>m, m)
        return
    if _binary_rows_fast(y_true, y_pred, &pos_weight[0],
                         pos_weight.strides[0] // <Py_ssize_t>sizeof(double), NULL, 0, 0,
                         o.from_logits, o.keep, o.half, o.lo, o.hi,
                         has_weight or write_out or write_grad or write_hess, start, end,
                         blk):
        return
    _elementwise_rows(o, y_true, y_pred, weight, has_weight, pos_weight,
                      loss_out, write_out, grad, write_grad, hess, write_hess, start, end,
                      blk)


cdef void _binary_focal_block(
    const FocalOptions* o,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    const double[:] weight, bint has_weight, const double[:] cw,
    floating[:] loss_out, bint write_out, floating[:, :] grad, bint write_grad,
    floating[:, :] hess, bint write_hess,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    # Binary focal cross-entropy over contiguous samples of one element, unweighted: the
    # vectorised sum (and derivatives) of cyl_focal_sum, same bits as the general loop,
    # which takes the block over when a datum is invalid or needs the exact form.
    cdef Py_ssize_t m = end - start
    cdef int bad = 0, slow = 0
    cdef double total
    cdef floating* g = NULL
    if (o.focal and m > 0 and y_pred.shape[1] == 1 and not has_weight and not write_out
            and not write_hess and y_true.strides[0] == sizeof(floating)
            and y_pred.strides[0] == sizeof(floating)):
        if write_grad:
            g = &grad[start, 0]
            if grad.strides[0] != sizeof(floating):
                g = NULL
        if g != NULL or not write_grad:
            if floating is float:
                total = cyl_focal_sum_f32(&y_true[start, 0], &y_pred[start, 0], m,
                                          o.from_logits, o.keep, o.half, o.lo, o.hi,
                                          o.gamma, o.alpha, o.balance, cw[0], o.gscale,
                                          &bad, &slow, g)
            else:
                total = cyl_focal_sum_f64(&y_true[start, 0], &y_pred[start, 0], m,
                                          o.from_logits, o.keep, o.half, o.lo, o.hi,
                                          o.gamma, o.alpha, o.balance, cw[0], o.gscale,
                                          &bad, &slow, g)
            if not bad and not slow:
                _set(blk, total, <double>m, m)
                return
    cdef double one = 1.0
    if not o.focal and _binary_rows_fast(y_true, y_pred, &one, 0, &cw[0], cw.shape[0],
                                         cw.strides[0], o.from_logits, o.keep, o.half,
                                         o.lo, o.hi, has_weight or write_out or write_grad
                                         or write_hess, start, end, blk):
        return
    _elementwise_rows(o, y_true, y_pred, weight, has_weight, cw, loss_out, write_out,
                      grad, write_grad, hess, write_hess, start, end, blk)


cdef inline void _elementwise_block(
    const ElemOptions* o,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    const double[:] weight, bint has_weight, const double[:] pos_weight,
    floating[:] loss_out, bint write_out, floating[:, :] grad, bint write_grad,
    floating[:, :] hess, bint write_hess,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    if ElemOptions is RegressionOptions:
        _regression_block(o, y_true, y_pred, weight, has_weight, pos_weight, loss_out,
                          write_out, grad, write_grad, hess, write_hess, start, end, blk)
    elif ElemOptions is FocalOptions:
        _binary_focal_block(o, y_true, y_pred, weight, has_weight, pos_weight, loss_out,
                            write_out, grad, write_grad, hess, write_hess, start, end, blk)
    else:
        _binary_block(o, y_true, y_pred, weight, has_weight, pos_weight, loss_out,
                      write_out, grad, write_grad, hess, write_hess, start, end, blk)


cdef tuple _elementwise(
    const ElemOptions* o,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    weight, bint has_weight, pos_weight,
    loss_out, bint write_out, int n_threads, grad_out, hess_out,
):
    # The entry of both families: `regression` and `binary` fill `o` and call this.
    # Optional arrays (and binary's pos_weight) are acquired only when used: each buffer
    # acquisition costs time that matters for small inputs.
    cdef const double[:] w_view, pw_view
    cdef floating[:] out_view
    cdef floating[:, :] g_view, h_view
    cdef bint write_grad = grad_out is not None
    cdef bint write_hess = hess_out is not None
    if has_weight:
        w_view = weight
    if ElemOptions is RegressionOptions:
        pw_view = None   # never read: regression has no pos_weight
    else:
        pw_view = pos_weight
    if write_out:
        out_view = loss_out
    if write_grad:
        g_view = grad_out
        _require(g_view.shape[0] == y_pred.shape[0] and g_view.shape[1] == y_pred.shape[1],
                 "grad_out shape differs from y_pred")
    if write_hess:
        if ElemOptions is FocalOptions:
            _require(write_grad and o.from_logits and not o.focal,
                     "hess_out needs grad_out, logits and no focal terms")
        elif ElemOptions is BinaryOptions:
            _require(write_grad and o.from_logits, "hess_out needs grad_out and logits")
        else:
            _require(write_grad, "hess_out needs grad_out")
        h_view = hess_out
        _require(h_view.shape[0] == y_pred.shape[0] and h_view.shape[1] == y_pred.shape[1],
                 "hess_out shape differs from y_pred")
    cdef Py_ssize_t n = y_pred.shape[0]
    cdef Py_ssize_t size = _block_size(n, y_pred.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    _require(y_true.shape[0] == n and y_true.shape[1] == y_pred.shape[1], "shapes differ")
    if ElemOptions is RegressionOptions:
        _require(0 <= o.kind < CYL_N_ELEMENTWISE, "unknown elementwise kind")
    else:
        _require(pw_view.shape[0] == y_pred.shape[1], "pos_weight length differs")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0 or y_pred.shape[1] == 0:
        return _empty_rows(n, w_view, has_weight, loss_out, write_out)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            # No OpenMP region for one thread: it costs a microsecond on small inputs.
            with nogil:
                for b in range(n_blocks):
                    _elementwise_block(o, y_true, y_pred, w_view, has_weight, pw_view,
                                       out_view, write_out, g_view, write_grad, h_view,
                                       write_hess, b * size, min(n, (b + 1) * size),
                                       &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _elementwise_block(o, y_true, y_pred, w_view, has_weight, pw_view,
                                   out_view, write_out, g_view, write_grad, h_view,
                                   write_hess, b * size, min(n, (b + 1) * size),
                                   &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


def regression(
    int kind, double param,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    weight, bint has_weight,
    loss_out, bint write_out, int n_threads, grad_out=None, hess_out=None,
    double grad_scale=1.0,
):
    """Per-sample mean over the last axis of an elementwise regression loss (`kind`, one
    of KINDS, with its parameter `param`); ``grad_scale`` as in `categorical`."""
    cdef RegressionOptions o
    o.kind, o.param, o.gscale = kind, param, grad_scale
    return _elementwise(&o, y_true, y_pred, weight, has_weight, None, loss_out, write_out,
                        n_threads, grad_out, hess_out)


cdef int _all_binary_rows(const floating[:, :] y_true, Py_ssize_t start,
                          Py_ssize_t end) noexcept nogil:
    # Rows [start, end) of a matrix whose rows are contiguous: one C scan per row, or
    # one over all of them when they follow each other in memory.
    cdef Py_ssize_t i, width = y_true.shape[1]
    if start >= end or width == 0:   # (nothing to scan, and no [start, 0] to take)
        return 1
    if y_true.shape[0] == 1 or y_true.strides[0] == width * <Py_ssize_t>sizeof(floating):
        if floating is float:
            return cyl_all_binary_f32(&y_true[start, 0], (end - start) * width)
        else:
            return cyl_all_binary_f64(&y_true[start, 0], (end - start) * width)
    for i in range(start, end):
        if floating is float:
            if not cyl_all_binary_f32(&y_true[i, 0], width):
                return 0
        else:
            if not cyl_all_binary_f64(&y_true[i, 0], width):
                return 0
    return 1


def binary_labels(const floating[:, :] y_true, int n_threads=1):
    """1.0 when every value of `y_true` is 0 or 1, else 0.0 (and 1.0 when it is empty):
    Keras's rule for converting hinge labels to -1 and 1 (convert_binary_labels_to_hinge),
    the parameter of the hinge kernels. Rows with contiguous values are scanned by a
    vectorised C loop (`n_threads` slices of the rows at once, each stopping at the first
    block holding another value, NaN included); other layouts by a serial loop that stops
    at the first other value. No temporaries."""
    cdef Py_ssize_t i, k, n = y_true.shape[0], width = y_true.shape[1]
    cdef Py_ssize_t part, t
    cdef double v
    cdef bint binary = True
    cdef int team, found = 1
    if n == 0 or width == 0:
        return 1.0
    if y_true.strides[1] == sizeof(floating):
        # One slice of rows per thread; a slice below 2**16 values is not worth a thread.
        team = <int>max(1, min(<Py_ssize_t>max(n_threads, 1), (n * width) >> 16, n))
        part = (n + team - 1) // team
        if team == 1:
            with nogil:
                found = _all_binary_rows(y_true, 0, n)
        else:
            for t in prange(team, nogil=True, schedule="static", num_threads=team):
                found &= _all_binary_rows(y_true, t * part, min(n, (t + 1) * part))
        return 1.0 if found else 0.0
    with nogil:
        for i in range(n):
            for k in range(width):
                v = y_true[i, k]
                if not (v == 0.0 or v == 1.0):
                    binary = False
                    break
            if not binary:
                break
    return 1.0 if binary else 0.0


def binary(
    const floating[:, :] y_true, const floating[:, :] y_pred,
    weight, bint has_weight,
    pos_weight, bint from_logits, double smoothing, double lo, double hi,
    loss_out, bint write_out, int n_threads, grad_out=None, hess_out=None,
    double grad_scale=1.0,
):
    """Per-sample mean over the last axis of binary cross-entropy (`pos_weight` a
    float64 vector as long as that axis); ``grad_scale`` as in `categorical`."""
    cdef BinaryOptions o
    o.from_logits, o.keep, o.half, o.lo, o.hi, o.gscale = (
        from_logits, 1.0 - smoothing, 0.5 * smoothing, lo, hi, grad_scale)
    return _elementwise(&o, y_true, y_pred, weight, has_weight, pos_weight, loss_out,
                        write_out, n_threads, grad_out, hess_out)


def binary_focal(
    const floating[:, :] y_true, const floating[:, :] y_pred,
    weight, bint has_weight,
    class_weight, bint focal, double gamma, double alpha, bint balance,
    bint from_logits, double smoothing, double lo, double hi,
    loss_out, bint write_out, int n_threads, grad_out=None, hess_out=None,
    double grad_scale=1.0,
):
    """Per-sample mean over the last axis of binary focal cross-entropy (``focal``) or of
    class-weighted binary cross-entropy (not ``focal``: multilabel soft margin);
    ``class_weight`` a float64 vector as long as that axis; ``grad_scale`` as in
    `categorical`."""
    cdef FocalOptions o
    o.from_logits, o.keep, o.half, o.lo, o.hi, o.gscale = (
        from_logits, 1.0 - smoothing, 0.5 * smoothing, lo, hi, grad_scale)
    o.focal, o.gamma, o.alpha, o.balance = focal, gamma, alpha, balance
    return _elementwise(&o, y_true, y_pred, weight, has_weight, class_weight, loss_out,
                        write_out, n_threads, grad_out, hess_out)


# --- rows: categorical and sparse cross-entropy -------------------------------------------
# A class row is y_pred[a, :, c] for sample i = a * B + c (B = size after the class axis);
# the row operations of _rows.h read it through its byte stride, so any class axis is read
# in place, contiguous rows vectorise, and every layout gives the same bits.

cdef inline double _row_logits(const floating* x, Py_ssize_t sb, Py_ssize_t n_classes,
                               double* m, const void* next=NULL) noexcept nogil:
    # next: a row of n_classes items that the caller reads after this one (or NULL), for
    # the exponential pass to prefetch (see cyl_row_expsum_v8).
    if floating is float:
        return cyl_row_logits_f32(x, sb, n_classes, m, next)
    else:
        return cyl_row_logits_f64(x, sb, n_classes, m, next)


cdef inline double _row_logits_grad(const floating* x, Py_ssize_t sb, Py_ssize_t n_classes,
                                    double* m, bint kept, floating[:, :, :] grad,
                                    Py_ssize_t a, Py_ssize_t c,
                                    const void* next=NULL) noexcept nogil:
    # _row_logits for a row whose gradient follows: with `kept` (see _keeps_exps) the
    # exponential pass also leaves e^(x_k - m) in the row's gradient.
    if floating is float:
        if kept:
            return cyl_row_logits_keep_f32(x, n_classes, m, &grad[a, 0, c])
    return _row_logits(x, sb, n_classes, m, next)


cdef inline double _row_soft_xent(const floating* y, Py_ssize_t ysb, const floating* x,
                                  Py_ssize_t sb, Py_ssize_t n_classes, double keep,
                                  double spread, double m, double lognorm,
                                  int* bad) noexcept nogil:
    if floating is float:
        return cyl_row_soft_xent_f32(y, ysb, x, sb, n_classes, keep, spread, m, lognorm, bad)
    else:
        return cyl_row_soft_xent_f64(y, ysb, x, sb, n_classes, keep, spread, m, lognorm, bad)


cdef inline double _row_gap(const floating* x, Py_ssize_t sb, Py_ssize_t n_classes,
                            double m) noexcept nogil:
    if floating is float:
        return cyl_row_gap_f32(x, sb, n_classes, m)
    else:
        return cyl_row_gap_f64(x, sb, n_classes, m)


cdef inline double _row_weighted_nls(const floating* x, Py_ssize_t sb, Py_ssize_t n_classes,
                                     const double* cw, double m,
                                     double lognorm) noexcept nogil:
    if floating is float:
        return cyl_row_weighted_nls_f32(x, sb, n_classes, cw, m, lognorm)
    else:
        return cyl_row_weighted_nls_f64(x, sb, n_classes, cw, m, lognorm)


cdef inline double _row_total(const floating* x, Py_ssize_t sb, Py_ssize_t n_classes,
                              int* negative) noexcept nogil:
    if floating is float:
        return cyl_row_total_f32(x, sb, n_classes, negative)
    else:
        return cyl_row_total_f64(x, sb, n_classes, negative)


cdef inline double _row_prob_soft_xent(const floating* y, Py_ssize_t ysb, const floating* x,
                                       Py_ssize_t sb, Py_ssize_t n_classes, double total,
                                       double keep, double spread, double lo, double hi,
                                       int* bad) noexcept nogil:
    if floating is float:
        return cyl_row_prob_soft_xent_f32(y, ysb, x, sb, n_classes, total, keep, spread,
                                          lo, hi, bad)
    else:
        return cyl_row_prob_soft_xent_f64(y, ysb, x, sb, n_classes, total, keep, spread,
                                          lo, hi, bad)


cdef inline double _row_prob_nll_sum(const floating* x, Py_ssize_t sb, Py_ssize_t n_classes,
                                     const double* cw, double total, double lo,
                                     double hi) noexcept nogil:
    if floating is float:
        return cyl_row_prob_nll_sum_f32(x, sb, n_classes, cw, total, lo, hi)
    else:
        return cyl_row_prob_nll_sum_f64(x, sb, n_classes, cw, total, lo, hi)


cdef inline Py_ssize_t _first_outside_unit(const floating* y, Py_ssize_t sb,
                                           Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t k
    cdef double v
    for k in range(n_classes):
        v = _at(y, k * sb)[0]
        if v < 0.0 or v > 1.0:
            return k
    return 0


cdef inline Py_ssize_t _first_negative(const floating* x, Py_ssize_t sb,
                                       Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n_classes):
        if _at(x, k * sb)[0] < 0.0:
            return k
    return 0


cdef inline (Py_ssize_t, Py_ssize_t) _split(Py_ssize_t i, Py_ssize_t inner) noexcept nogil:
    # Sample i -> (outer, inner) position; the class axis is usually last (inner == 1),
    # and a 64-bit division per row is worth skipping then.
    if inner == 1:
        return i, 0
    return i // inner, i % inner


cdef inline double _target(const floating* yr, Py_ssize_t ysb, int64_t label, const double* cw,
                           double keep, double spread, Py_ssize_t k) noexcept nogil:
    # cw_k q_k: q the smoothed target row yr, or (yr NULL) the smoothed one-hot of label;
    # cw the class weights (NULL: all 1).
    cdef double q
    if yr != NULL:
        q = _at(yr, k * ysb)[0] * keep + spread
    else:
        q = spread + (keep if k == label else 0.0)
    return q * cw[k] if cw != NULL else q


cdef inline bint _keeps_exps(bint from_logits, bint write_grad, bint write_hess,
                             Py_ssize_t psb, Py_ssize_t gsb, Py_ssize_t ysb,
                             Py_ssize_t itemsize) noexcept nogil:
    # Contiguous float32 logit rows whose gradient row is contiguous too: the loss's own
    # exponential pass leaves e^(x_k - m) in the gradient row (cyl_row_logits_keep_f32),
    # and the gradient is computed from it, in place, with the same bits.
    return (itemsize == 4 and from_logits and write_grad and not write_hess
            and psb == 4 and gsb == 4 and ysb == 4)


cdef inline void _logit_grad_row(
    const floating* xr, Py_ssize_t psb, Py_ssize_t n_classes, const floating* yr,
    Py_ssize_t ysb, int64_t label, const double* cw, double keep, double spread,
    double qsum, double mx, double lognorm, double w, floating[:, :, :] grad,
    floating[:, :, :] hess, bint write_hess, Py_ssize_t a, Py_ssize_t c, bint kept,
) noexcept nogil:
    # d l / d x_k = p_k Q - cw_k q_k and d2 l / d x_k2 = Q p_k (1 - p_k) (see _rows.h);
    # with `kept`, finished from the e^(x_k - m) that _row_logits_grad left in the row.
    cdef floating* h = NULL
    if floating is float:
        if kept:
            cyl_row_grad_kept_f32(yr, n_classes, label, cw, keep, spread, qsum, lognorm, w,
                                  &grad[a, 0, c])
            return
    if write_hess:
        h = &hess[a, 0, c]
    if floating is float:
        cyl_row_logit_grad_f32(xr, psb, yr, ysb, n_classes, label, cw, keep, spread, qsum,
                               mx, lognorm, w, &grad[a, 0, c], h, grad.strides[1])
    else:
        cyl_row_logit_grad_f64(xr, psb, yr, ysb, n_classes, label, cw, keep, spread, qsum,
                               mx, lognorm, w, &grad[a, 0, c], h, grad.strides[1])


cdef inline void _prob_grad_row(
    const floating* xr, Py_ssize_t psb, Py_ssize_t n_classes, const floating* yr,
    Py_ssize_t ysb, int64_t label, const double* cw, double keep, double spread,
    double total, double lo, double hi, double w, floating[:, :, :] grad,
    Py_ssize_t a, Py_ssize_t c,
) noexcept nogil:
    # l = -sum_k cw_k q_k log clip(r_k, lo, hi), r = x / total. The clip passes the
    # gradient where lo <= r_k <= hi (m_k = 1; PyTorch's clamp), so
    #   d l / d x_j = (sum_k m_k cw_k q_k - m_j cw_j q_j / r_j) / total;
    # a NaN ratio makes the whole row NaN.
    cdef Py_ssize_t k
    cdef double r, kept = 0.0
    for k in range(n_classes):
        r = _at(xr, k * psb)[0] / total
        if lo <= r <= hi:
            kept += _target(yr, ysb, label, cw, keep, spread, k)
        elif r != r:
            kept += r
    for k in range(n_classes):
        r = _at(xr, k * psb)[0] / total
        grad[a, k, c] = <floating>(w * (
            kept - (_target(yr, ysb, label, cw, keep, spread, k) / r if lo <= r <= hi
                    else 0.0)) / total)


cdef inline int _categorical_rows8(const floating* y, const floating* x, Py_ssize_t n_classes,
                                   Py_ssize_t n, double keep, double spread,
                                   cyl_acc* sums) noexcept nogil:
    if floating is float:
        return cyl_categorical_logits_rows8_f32(y, x, n_classes, n, keep, spread, sums)
    else:
        return cyl_categorical_logits_rows8_f64(y, x, n_classes, n, keep, spread, sums)


cdef void _categorical_block(
    const floating[:, :, :] y_true, const floating[:, :, :] y_pred,
    const double[:] weight, bint has_weight, bint from_logits, double smoothing,
    double lo, double hi, floating[:] loss_out, bint write_out,
    floating[:, :, :] grad, bint write_grad, floating[:, :, :] hess, bint write_hess,
    double grad_scale, Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t n_classes = y_pred.shape[1], inner = y_pred.shape[2]
    cdef Py_ssize_t ysb = y_true.strides[1], psb = y_pred.strides[1]
    cdef Py_ssize_t k
    cdef double qsum
    cdef Py_ssize_t i, si, a, c, m_samples = end - start
    cdef const floating* yr
    cdef const floating* xr
    cdef double keep = 1.0 - smoothing, spread = smoothing / n_classes
    cdef double l, mx, lognorm, total, w
    cdef cyl_acc acc, den
    cdef int bad, negative, lane
    cdef Py_ssize_t first = 0
    cdef bint kept = _keeps_exps(from_logits, write_grad, write_hess, psb,
                                 grad.strides[1] if write_grad else 0, ysb, sizeof(floating))
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    if (from_logits and not has_weight and not write_out and not write_grad and inner == 1
            and n_classes <= SMALL_CLASSES and psb == sizeof(floating)
            and ysb == sizeof(floating) and y_pred.strides[0] == n_classes * psb
            and y_true.strides[0] == n_classes * ysb):
        # Contiguous rows of few classes: eight rows at a time (same bits as below).
        if _categorical_rows8(&y_true[start, 0, 0], &y_pred[start, 0, 0], n_classes,
                              m_samples, keep, spread, &acc) == 0:
            first = m_samples & ~(<Py_ssize_t>7)
        else:
            cyl_acc_init(&acc)
    for i in range(first, m_samples):
        si = start + i
        a, c = _split(si, inner)
        yr = &y_true[a, 0, c]
        xr = &y_pred[a, 0, c]
        bad = 0
        if from_logits:
            lognorm = _row_logits_grad(xr, psb, n_classes, &mx, kept, grad, a, c,
                                       yr if ysb == sizeof(floating) else NULL)
            l = _row_soft_xent(yr, ysb, xr, psb, n_classes, keep, spread, mx, lognorm, &bad)
            if bad:
                _fail(blk, ERR_TARGET, si, _first_outside_unit(yr, ysb, n_classes))
                return
        else:
            total = _row_total(xr, psb, n_classes, &negative)
            l = _row_prob_soft_xent(yr, ysb, xr, psb, n_classes, total, keep, spread,
                                    lo, hi, &bad)
            if bad:
                _fail(blk, ERR_TARGET, si, _first_outside_unit(yr, ysb, n_classes))
                return
            if negative:
                _fail(blk, ERR_PROB_NEG, si, _first_negative(xr, psb, n_classes))
                return
            if total == 0.0:
                _fail(blk, ERR_ROW_ZERO, si, -1)
                return
        w = weight[si] if has_weight else 1.0
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m_samples, w)
        if write_out:
            loss_out[si] = <floating>l
        if write_grad and from_logits:
            # d/dx_k sum_j q_j (-log softmax(x)_j) = p_k Q - q_k, Q = sum_j q_j.
            qsum = 0.0
            for k in range(n_classes):
                qsum += _at(yr, k * ysb)[0] * keep + spread
            _logit_grad_row(xr, psb, n_classes, yr, ysb, -1, NULL, keep, spread, qsum, mx,
                            lognorm, w * grad_scale, grad, hess, write_hess, a, c, kept)
        elif write_grad:
            _prob_grad_row(xr, psb, n_classes, yr, ysb, -1, NULL, keep, spread, total, lo,
                           hi, w * grad_scale, grad, a, c)
        cyl_acc_add(&acc, i, m_samples, l)
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m_samples,
         m_samples)


def categorical(
    const floating[:, :, :] y_true, const floating[:, :, :] y_pred,
    weight, bint has_weight, bint from_logits, double smoothing,
    double lo, double hi, loss_out, bint write_out, int n_threads, grad_out=None,
    hess_out=None, double grad_scale=1.0,
):
    """Categorical cross-entropy over arrays viewed as (outer, classes, inner).
    ``grad_scale`` multiplies every gradient element's sample weight (the reduction's
    1 / divisor when the caller knows it before the loop; see losses._grad_prescale)."""
    # Optional arrays are acquired only when used: each buffer acquisition costs time
    # that matters for small inputs.
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :, :] g_view, h_view
    cdef bint write_grad = grad_out is not None
    cdef bint write_hess = hess_out is not None
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    if write_grad:
        g_view = grad_out
        _require(g_view.shape[0] == y_pred.shape[0] and g_view.shape[1] == y_pred.shape[1]
                 and g_view.shape[2] == y_pred.shape[2], "grad_out shape differs from y_pred")
    if write_hess:
        _require(write_grad and from_logits, "hess_out needs grad_out and logits")
        h_view = hess_out
        _require(h_view.shape[0] == y_pred.shape[0] and h_view.shape[1] == y_pred.shape[1]
                 and h_view.shape[2] == y_pred.shape[2], "hess_out shape differs from y_pred")
    cdef Py_ssize_t n = y_pred.shape[0] * y_pred.shape[2]
    cdef Py_ssize_t size = _block_size(n, y_pred.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    _require(y_true.shape[0] == y_pred.shape[0] and y_true.shape[1] == y_pred.shape[1]
             and y_true.shape[2] == y_pred.shape[2], "shapes differ")
    _require(y_pred.shape[1] > 0 or n == 0, "no classes")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            # No OpenMP region for one thread: it costs a microsecond on small inputs.
            with nogil:
                for b in range(n_blocks):
                    _categorical_block(y_true, y_pred, w_view, has_weight, from_logits, smoothing,
                                       lo, hi, out_view, write_out, g_view, write_grad,
                                       h_view, write_hess, grad_scale,
                                       b * size, min(n, (b + 1) * size), &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _categorical_block(y_true, y_pred, w_view, has_weight, from_logits, smoothing,
                                   lo, hi, out_view, write_out, g_view, write_grad,
                                   h_view, write_hess, grad_scale,
                                   b * size, min(n, (b + 1) * size), &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# Sparse: with q the smoothed one-hot target (q_k = (1 - s)[k == label] + s/C) and cw the
# class weights (all 1 when absent),  l = sum_k cw_k q_k (-log p_k)
#   = (1 - s) cw_label (-log p_label) + (s/C) sum_k cw_k (-log p_k).
# Without class weights the logit form of the second sum is the closed form
#   s (lse - mean_k x_k) = (s/C) (C lognorm + sum_{k != argmax} (m - x_k)),
# so no one-hot row and no log-probability row is ever built.

cdef inline double _cw_total(const double* cw, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t k
    cdef double total = 0.0
    for k in range(n_classes):
        total += cw[k]
    return total


cdef inline int _sparse_rows8(const floating* x, Py_ssize_t n_classes, const int64_t* labels,
                              Py_ssize_t n, cyl_acc* sums) noexcept nogil:
    if floating is float:
        return cyl_sparse_logits_rows8_f32(x, n_classes, labels, n, sums)
    else:
        return cyl_sparse_logits_rows8_f64(x, n_classes, labels, n, sums)


cdef void _sparse_block(
    const int64_t[:] labels, const floating[:, :, :] y_pred,
    const double[:] weight, bint has_weight,
    const double[:] class_weight, bint has_class_weight,
    bint has_ignore, int64_t ignore_index,
    bint from_logits, double smoothing, double lo, double hi,
    floating[:] loss_out, bint write_out, floating[:, :, :] grad, bint write_grad,
    floating[:, :, :] hess, bint write_hess, double grad_scale,
    Py_ssize_t start, Py_ssize_t end, Block* blk, bint log_probs,
) noexcept nogil:
    cdef Py_ssize_t n_classes = y_pred.shape[1], inner = y_pred.shape[2]
    cdef Py_ssize_t psb = y_pred.strides[1]
    cdef Py_ssize_t i, si, a, c, m_samples = end - start
    cdef const floating* xr
    cdef const double* cw_row = &class_weight[0] if has_class_weight else NULL
    cdef int64_t label, count = 0
    cdef double keep = 1.0 - smoothing, spread = smoothing / n_classes
    cdef double l, mx, lognorm, total, nll, smooth, cw, w, xl
    cdef cyl_acc acc, den
    cdef int negative
    cdef Py_ssize_t first = 0
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    cdef double qsum
    cdef double cw_sum = _cw_total(cw_row, n_classes) if has_class_weight else 0.0
    cdef int fast = -1          # a cross-row kernel's answer: 0 done, 1 redo; -1 none ran
    cdef bint kept = _keeps_exps(from_logits, write_grad, write_hess, psb,
                                 grad.strides[1] if write_grad else 0, 4, sizeof(floating))
    if (not has_ignore and not has_class_weight and smoothing == 0.0 and not has_weight
            and not write_out and not write_grad and inner == 1
            and psb == sizeof(floating) and y_pred.strides[0] == n_classes * psb
            and labels.strides[0] == sizeof(int64_t)):
        # Plain sparse CE over contiguous rows: the first m - m % 8 rows go through a
        # cross-row kernel (same bits, no per-row overhead): eight rows of few classes
        # at a time from logits, 64 rows' logs at a time from float32 probabilities. The
        # rest, or everything when the kernel finds bad data (to report it), through the
        # loop below.
        if from_logits and n_classes <= SMALL_CLASSES:
            fast = _sparse_rows8(&y_pred[start, 0, 0], n_classes, &labels[start],
                                 m_samples, &acc)
        elif floating is float and not from_logits and not log_probs:
            fast = cyl_sparse_prob_rows_f32(&y_pred[start, 0, 0], n_classes, &labels[start],
                                            m_samples, lo, hi, &acc)
    if fast == 0:
        first = m_samples & ~(<Py_ssize_t>7)
        count = first
        # Each of those rows adds exactly 1 to den: any grouping gives the same sum.
        cyl_acc_add(&den, m_samples, m_samples, <double>first)
    elif fast == 1:
        cyl_acc_init(&acc)
    if (log_probs and inner == 1 and not has_weight and not write_out and not write_grad
            and first == 0):
        # nll's value: the loop below without its per-row branches and the division of
        # _split (inner is 1), the same operations (w = 1, smoothing 0: l = cw * nll).
        for i in range(m_samples):
            si = start + i
            label = labels[si]
            if has_ignore and label == ignore_index:
                continue
            if label < 0 or label >= n_classes:
                _fail(blk, ERR_LABEL, si, label)
                return
            cw = cw_row[label] if has_class_weight else 1.0
            l = cyl_term(keep * cw, -_at(&y_pred[si, 0, 0], label * psb)[0])
            cyl_acc_add(&acc, i, m_samples, l)
            cyl_acc_add(&den, i, m_samples, cw)
            count += 1
        _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den), count)
        return
    for i in range(first, m_samples):
        si = start + i
        label = labels[si]
        if has_ignore and label == ignore_index:
            if write_out:
                loss_out[si] = 0
            if write_grad:
                a, c = _split(si, inner)
                for k in range(n_classes):
                    grad[a, k, c] = 0
                    if write_hess:
                        hess[a, k, c] = 0
            continue
        if label < 0 or label >= n_classes:
            _fail(blk, ERR_LABEL, si, label)
            return
        a, c = _split(si, inner)
        xr = &y_pred[a, 0, c]
        cw = class_weight[label] if has_class_weight else 1.0
        smooth = 0.0
        if log_probs:
            # nll: y_pred holds log-probabilities, taken as they are (PyTorch's nll_loss)
            nll = -_at(xr, label * psb)[0]
        elif from_logits:
            lognorm = _row_logits_grad(xr, psb, n_classes, &mx, kept, grad, a, c)
            xl = _at(xr, label * psb)[0]
            nll = cyl_unless(xl == mx, mx - xl) + lognorm
            if smoothing != 0.0:
                if has_class_weight:
                    smooth = _row_weighted_nls(xr, psb, n_classes, cw_row, mx, lognorm)
                else:
                    smooth = _row_gap(xr, psb, n_classes, mx) + n_classes * lognorm
        else:
            total = _row_total(xr, psb, n_classes, &negative)
            if negative:
                _fail(blk, ERR_PROB_NEG, si, _first_negative(xr, psb, n_classes))
                return
            if total == 0.0:
                _fail(blk, ERR_ROW_ZERO, si, -1)
                return
            nll = -cyl_log(cyl_clip(_at(xr, label * psb)[0] / total, lo, hi))
            if smoothing != 0.0:
                smooth = _row_prob_nll_sum(xr, psb, n_classes, cw_row, total, lo, hi)
        l = cyl_term(keep * cw, nll)
        if smoothing != 0.0:
            l += cyl_term(spread, smooth)
        w = weight[si] if has_weight else 1.0
        l = w * l
        if write_out:
            loss_out[si] = <floating>l
        if write_grad and log_probs:
            for k in range(n_classes):
                grad[a, k, c] = 0
            grad[a, label, c] = <floating>(-(w * grad_scale) * cw)
        elif write_grad and from_logits:
            # d/dx_k sum_j cw_j q_j (-log softmax(x)_j) = p_k Q - cw_k q_k,
            # Q = sum_j cw_j q_j.
            qsum = keep * cw + (spread * cw_sum if has_class_weight else smoothing)
            _logit_grad_row(xr, psb, n_classes, NULL, 0, label, cw_row, keep, spread, qsum,
                            mx, lognorm, w * grad_scale, grad, hess, write_hess, a, c, kept)
        elif write_grad:
            _prob_grad_row(xr, psb, n_classes, NULL, 0, label, cw_row, keep, spread, total,
                           lo, hi, w * grad_scale, grad, a, c)
        cyl_acc_add(&acc, i, m_samples, l)
        cyl_acc_add(&den, i, m_samples, w * cw)
        count += 1
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den), count)


def sparse(
    const int64_t[:] labels, const floating[:, :, :] y_pred,
    weight, bint has_weight,
    class_weight, bint has_class_weight,
    bint has_ignore, int64_t ignore_index,
    bint from_logits, double smoothing, double lo, double hi,
    loss_out, bint write_out, int n_threads, grad_out=None, hess_out=None,
    double grad_scale=1.0, bint log_probs=False,
):
    """Sparse (integer-label) cross-entropy over y_pred viewed as (outer, classes, inner);
    ``grad_scale`` as in `categorical`. With ``log_probs`` y_pred holds log-probabilities
    (the negative log-likelihood: ``from_logits`` False, no smoothing)."""
    # Optional arrays are acquired only when used: each buffer acquisition costs time
    # that matters for small inputs.
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :, :] g_view, h_view
    cdef bint write_grad = grad_out is not None
    cdef bint write_hess = hess_out is not None
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    if write_grad:
        g_view = grad_out
        _require(g_view.shape[0] == y_pred.shape[0] and g_view.shape[1] == y_pred.shape[1]
                 and g_view.shape[2] == y_pred.shape[2], "grad_out shape differs from y_pred")
    if write_hess:
        _require(write_grad and from_logits, "hess_out needs grad_out and logits")
        h_view = hess_out
        _require(h_view.shape[0] == y_pred.shape[0] and h_view.shape[1] == y_pred.shape[1]
                 and h_view.shape[2] == y_pred.shape[2], "hess_out shape differs from y_pred")
    cdef const double[:] cw_view
    if has_class_weight:
        cw_view = class_weight
    _require(not log_probs or (not from_logits and smoothing == 0.0 and not write_hess),
             "log-probability input takes no from_logits, smoothing or Hessian")
    cdef Py_ssize_t n = y_pred.shape[0] * y_pred.shape[2]
    cdef Py_ssize_t size = _block_size(n, y_pred.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    _require(labels.shape[0] == n, "labels length differs from the number of samples")
    _require(not has_class_weight or (cw_view.shape[0] == y_pred.shape[1]
                                      and cw_view.strides[0] == sizeof(double)),
             "class_weight must be contiguous with one weight per class")
    _require(y_pred.shape[1] > 0 or n == 0, "no classes")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            # No OpenMP region for one thread: it costs a microsecond on small inputs.
            with nogil:
                for b in range(n_blocks):
                    _sparse_block(labels, y_pred, w_view, has_weight, cw_view, has_class_weight,
                                  has_ignore, ignore_index, from_logits, smoothing, lo, hi,
                                  out_view, write_out, g_view, write_grad, h_view, write_hess,
                                  grad_scale, b * size, min(n, (b + 1) * size), &blocks[b],
                                  log_probs)
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _sparse_block(labels, y_pred, w_view, has_weight, cw_view, has_class_weight,
                              has_ignore, ignore_index, from_logits, smoothing, lo, hi,
                              out_view, write_out, g_view, write_grad, h_view, write_hess,
                              grad_scale, b * size, min(n, (b + 1) * size), &blocks[b],
                              log_probs)
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# --- rows of the catalogue: KL divergence, categorical hinge, cosine similarity ----------
# The blocks, threads and fixed combination order of `categorical`, one row kernel of
# _rows.h per loss. None of them has invalid data to report: KL's Keras form clips, and
# its PyTorch forms give NaN where PyTorch does.

cdef enum:
    CAT_KL = 0
    CAT_HINGE = 1
    CAT_COSINE = 2

ROW_KL, ROW_CAT_HINGE, ROW_COSINE = CAT_KL, CAT_HINGE, CAT_COSINE
KL_KERAS, KL_LOG_INPUT, KL_LOG_TARGET = CYL_KL_KERAS, CYL_KL_LOG_INPUT, CYL_KL_LOG_TARGET


cdef inline double _catalogue_row(
    int kind, int mode, double param, const floating* y, Py_ssize_t ysb,
    const floating* x, Py_ssize_t psb, Py_ssize_t n_classes, floating* g, Py_ssize_t gsb,
    double w,
) noexcept nogil:
    if floating is float:
        if kind == CAT_KL:
            return cyl_row_kl_f32(y, ysb, x, psb, n_classes, mode, param, g, gsb, w)
        if kind == CAT_HINGE:
            return cyl_row_cat_hinge_f32(y, ysb, x, psb, n_classes, g, gsb, w)
        return cyl_row_cosine_f32(y, ysb, x, psb, n_classes, param, g, gsb, w)
    else:
        if kind == CAT_KL:
            return cyl_row_kl_f64(y, ysb, x, psb, n_classes, mode, param, g, gsb, w)
        if kind == CAT_HINGE:
            return cyl_row_cat_hinge_f64(y, ysb, x, psb, n_classes, g, gsb, w)
        return cyl_row_cosine_f64(y, ysb, x, psb, n_classes, param, g, gsb, w)


cdef void _catalogue_block(
    int kind, int mode, double param,
    const floating[:, :, :] y_true, const floating[:, :, :] y_pred,
    const double[:] weight, bint has_weight, floating[:] loss_out, bint write_out,
    floating[:, :, :] grad, bint write_grad, double grad_scale,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t n_classes = y_pred.shape[1], inner = y_pred.shape[2]
    cdef Py_ssize_t ysb = y_true.strides[1], psb = y_pred.strides[1]
    cdef Py_ssize_t gsb = grad.strides[1] if write_grad else 0
    cdef Py_ssize_t i, si, a, c, m_samples = end - start
    cdef floating* g = NULL
    cdef double l, w, total
    cdef cyl_acc acc, den
    cdef int done = 0
    if (kind == CAT_KL and not has_weight and not write_out and not write_grad and inner == 1
            and m_samples > 0 and ysb == sizeof(floating) and psb == sizeof(floating)
            and y_true.strides[0] == n_classes * ysb and y_pred.strides[0] == n_classes * psb):
        # Contiguous rows: the terms in one flat vectorised loop, then the row sums below's
        # bits (cyl_kl_rows_sum).
        if floating is float:
            done = cyl_kl_rows_sum_f32(&y_true[start, 0, 0], &y_pred[start, 0, 0], m_samples,
                                       n_classes, mode, param, &total)
        else:
            done = cyl_kl_rows_sum_f64(&y_true[start, 0, 0], &y_pred[start, 0, 0], m_samples,
                                       n_classes, mode, param, &total)
        if done:
            _set(blk, total, <double>m_samples, m_samples)
            return
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m_samples):
        si = start + i
        a, c = _split(si, inner)
        w = weight[si] if has_weight else 1.0
        if write_grad:
            g = &grad[a, 0, c]
        l = _catalogue_row(kind, mode, param, &y_true[a, 0, c], ysb, &y_pred[a, 0, c], psb,
                           n_classes, g, gsb, w * grad_scale)
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m_samples, w)
        if write_out:
            loss_out[si] = <floating>l
        cyl_acc_add(&acc, i, m_samples, l)
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m_samples,
         m_samples)


def catalogue_rows(
    int kind, int mode, double param,
    const floating[:, :, :] y_true, const floating[:, :, :] y_pred,
    weight, bint has_weight, loss_out, bint write_out, int n_threads, grad_out=None,
    double grad_scale=1.0,
):
    """A row loss of the catalogue (`kind`: ROW_KL with its `mode` and clip bound `param`,
    ROW_CAT_HINGE, ROW_COSINE with its epsilon `param`) over arrays viewed as (outer,
    classes, inner); ``grad_scale`` as in `categorical`."""
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :, :] g_view
    cdef bint write_grad = grad_out is not None
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    if write_grad:
        g_view = grad_out
        _require(g_view.shape[0] == y_pred.shape[0] and g_view.shape[1] == y_pred.shape[1]
                 and g_view.shape[2] == y_pred.shape[2], "grad_out shape differs from y_pred")
    cdef Py_ssize_t n = y_pred.shape[0] * y_pred.shape[2]
    cdef Py_ssize_t size = _block_size(n, y_pred.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    _require(0 <= kind <= CAT_COSINE, "unknown row loss")
    _require(0 <= mode <= 3, "unknown KL mode")
    _require(y_true.shape[0] == y_pred.shape[0] and y_true.shape[1] == y_pred.shape[1]
             and y_true.shape[2] == y_pred.shape[2], "shapes differ")
    _require(y_pred.shape[1] > 0 or n == 0, "no classes")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            with nogil:
                for b in range(n_blocks):
                    _catalogue_block(kind, mode, param, y_true, y_pred, w_view, has_weight,
                                     out_view, write_out, g_view, write_grad, grad_scale,
                                     b * size, min(n, (b + 1) * size), &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _catalogue_block(kind, mode, param, y_true, y_pred, w_view, has_weight,
                                 out_view, write_out, g_view, write_grad, grad_scale,
                                 b * size, min(n, (b + 1) * size), &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# --- focal rows: categorical and sparse focal cross-entropy (Keras 3) ----------------------
# l = alpha sum_k q_k (1 - p_k)^gamma (-log p_k), q the (smoothed) target row, or for the
# sparse loss the smoothed one-hot of the label times the class weights.
# Logits: -log p_k = nls_k = (m - x_k) + lognorm as in _rows.h, and 1 - p_k = -expm1(-nls_k),
# which keeps its digits when p_k is near 1 (1 - exp(-nls) would lose them). With
# h_k = q_k (p_k g'(p_k)), g(p) = (1 - p)^gamma (-log p),
#   h_k = -q_k (gamma p_k nls_k u_k^(gamma - 1) + u_k^gamma),  u_k = 1 - p_k,
#   d l / d x_j = alpha (h_j - p_j sum_k h_k).
# Probabilities (Keras): r = x / total clipped to c in [lo, hi], u = 1 - c; the clip passes
# the gradient where lo <= r <= hi, so with d_k = q_k g'(c_k) there (0 elsewhere),
#   d l / d x_j = alpha (d_j - sum_k d_k r_k) / total.
# The per-row sums run in class order, so the bits do not depend on the thread count.

cdef inline double _focal_logit_h(double q, double nls, double gamma) noexcept nogil:
    # (q = 0: the term below is -0 or NaN, NaN exactly where nls is; most classes of a
    # one-hot target take this branch, without expm1, exp and pow.)
    if q == 0.0:
        return -cyl_term(q, nls)
    cdef double u = -expm1(-nls), p = exp(-nls)
    return -cyl_term(q, cyl_term(gamma * cyl_term(p, nls), pow(u, gamma - 1.0))
                     + pow(u, gamma))


cdef inline double _focal_prob_d(double q, double r, double lo, double hi,
                                 double gamma) noexcept nogil:
    cdef double u, nls
    if r != r:
        return r
    if not (lo <= r <= hi):
        return 0.0
    if q == 0.0:
        return -0.0   # what the formula gives there (its bracket is finite), without pow
    u = 1.0 - r
    nls = -log(r)
    return -cyl_term(q, cyl_term(gamma, pow(u, gamma - 1.0) * nls) + pow(u, gamma) / r)


cdef void _focal_block(
    const floating[:, :, :] y_true, const int64_t[:] labels, bint sparse,
    const floating[:, :, :] y_pred, const double[:] weight, bint has_weight,
    const double[:] class_weight, bint has_class_weight, bint has_ignore,
    int64_t ignore_index, bint from_logits, double smoothing, double lo, double hi,
    double gamma, double alpha, floating[:] loss_out, bint write_out,
    floating[:, :, :] grad, bint write_grad, double grad_scale,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t n_classes = y_pred.shape[1], inner = y_pred.shape[2]
    cdef Py_ssize_t psb = y_pred.strides[1], ysb = 0
    cdef Py_ssize_t i, si, a, c, k, k0, k1, m_samples = end - start
    cdef const floating* yr = NULL
    cdef const floating* xr
    cdef const double* cw_row = &class_weight[0] if has_class_weight else NULL
    cdef int64_t label = -1, count = 0
    cdef double keep = 1.0 - smoothing, spread = smoothing / n_classes
    cdef double l, mx = 0.0, lognorm = 0.0, total = 1.0, w, q, v, nls, r, H, gw, cwl
    cdef cyl_acc acc, den
    cdef int negative
    if not sparse:
        ysb = y_true.strides[1]
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m_samples):
        si = start + i
        a, c = _split(si, inner)
        cwl = 1.0
        if sparse:
            label = labels[si]
            if has_ignore and label == ignore_index:
                if write_out:
                    loss_out[si] = 0
                if write_grad:
                    for k in range(n_classes):
                        grad[a, k, c] = 0
                continue
            if label < 0 or label >= n_classes:
                _fail(blk, ERR_LABEL, si, label)
                return
            if has_class_weight:
                cwl = class_weight[label]
        else:
            yr = &y_true[a, 0, c]
            for k in range(n_classes):
                v = _at(yr, k * ysb)[0]
                if v < 0.0 or v > 1.0:
                    _fail(blk, ERR_TARGET, si, k)
                    return
        xr = &y_pred[a, 0, c]
        if from_logits:
            lognorm = _row_logits(xr, psb, n_classes, &mx)
        else:
            total = _row_total(xr, psb, n_classes, &negative)
            if negative:
                _fail(blk, ERR_PROB_NEG, si, _first_negative(xr, psb, n_classes))
                return
            if total == 0.0:
                _fail(blk, ERR_ROW_ZERO, si, -1)
                return
        # Only the label's term is non-zero for a one-hot target without smoothing.
        k0, k1 = 0, n_classes
        if sparse and smoothing == 0.0:
            k0, k1 = label, label + 1
        l = 0.0
        for k in range(k0, k1):
            q = _target(yr, ysb, label, cw_row, keep, spread, k)
            v = _at(xr, k * psb)[0]
            # A zero target weight skips expm1, pow and log: its term is cyl_term(0, .),
            # 0 or NaN, and the bracket is NaN exactly where nls (r) is.
            if from_logits:
                nls = cyl_unless(v == mx, mx - v) + lognorm
                if q == 0.0:
                    l += cyl_term(q, nls)
                else:
                    l += cyl_term(q, cyl_term(pow(-expm1(-nls), gamma), nls))
            else:
                r = cyl_clip(v / total, lo, hi)
                if q == 0.0:
                    l += cyl_term(q, r)
                else:
                    l += cyl_term(q, pow(1.0 - r, gamma) * -log(r))
        l = cyl_term(alpha, l)
        w = weight[si] if has_weight else 1.0
        l = w * l
        if write_out:
            loss_out[si] = <floating>l
        if write_grad:
            # h_k (or d_k) waits in the gradient row for the sum H (in the compute dtype:
            # float32 rows round it to float32, which SPEC section 4 allows).
            gw = w * grad_scale * alpha
            H = 0.0
            for k in range(n_classes):
                q = _target(yr, ysb, label, cw_row, keep, spread, k)
                v = _at(xr, k * psb)[0]
                if from_logits:
                    r = _focal_logit_h(q, cyl_unless(v == mx, mx - v) + lognorm, gamma)
                    H += r
                else:
                    r = _focal_prob_d(q, v / total, lo, hi, gamma)
                    H += cyl_term(v / total, r)
                grad[a, k, c] = <floating>r
            for k in range(n_classes):
                v = _at(xr, k * psb)[0]
                if from_logits:
                    nls = cyl_unless(v == mx, mx - v) + lognorm
                    grad[a, k, c] = <floating>(gw * (grad[a, k, c] - cyl_term(exp(-nls), H)))
                else:
                    grad[a, k, c] = <floating>(gw * (grad[a, k, c] - H) / total)
        cyl_acc_add(&acc, i, m_samples, l)
        cyl_acc_add(&den, i, m_samples, w * cwl)
        count += 1
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den), count)


def focal_rows(
    y_true, labels, bint sparse, const floating[:, :, :] y_pred,
    weight, bint has_weight, class_weight, bint has_class_weight,
    bint has_ignore, int64_t ignore_index,
    bint from_logits, double smoothing, double lo, double hi, double gamma, double alpha,
    loss_out, bint write_out, int n_threads, grad_out=None, double grad_scale=1.0,
):
    """Categorical (``y_true`` a target array like y_pred) or sparse (``labels``) focal
    cross-entropy over y_pred viewed as (outer, classes, inner)."""
    cdef const floating[:, :, :] y_view
    cdef const int64_t[:] l_view
    cdef const double[:] w_view, cw_view
    cdef floating[:] out_view
    cdef floating[:, :, :] g_view
    cdef bint write_grad = grad_out is not None
    cdef Py_ssize_t n = y_pred.shape[0] * y_pred.shape[2]
    if sparse:
        l_view = labels
        _require(l_view.shape[0] == n, "labels length differs from the number of samples")
    else:
        y_view = y_true
        _require(y_view.shape[0] == y_pred.shape[0] and y_view.shape[1] == y_pred.shape[1]
                 and y_view.shape[2] == y_pred.shape[2], "shapes differ")
    if has_weight:
        w_view = weight
    if has_class_weight:
        cw_view = class_weight
        _require(sparse and cw_view.shape[0] == y_pred.shape[1]
                 and cw_view.strides[0] == sizeof(double),
                 "class_weight must be contiguous with one weight per class")
    if write_out:
        out_view = loss_out
    if write_grad:
        g_view = grad_out
        _require(g_view.shape[0] == y_pred.shape[0] and g_view.shape[1] == y_pred.shape[1]
                 and g_view.shape[2] == y_pred.shape[2], "grad_out shape differs from y_pred")
    cdef Py_ssize_t size = _block_size(n, y_pred.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    _require(y_pred.shape[1] > 0 or n == 0, "no classes")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            with nogil:
                for b in range(n_blocks):
                    _focal_block(y_view, l_view, sparse, y_pred, w_view, has_weight, cw_view,
                                 has_class_weight, has_ignore, ignore_index, from_logits,
                                 smoothing, lo, hi, gamma, alpha, out_view, write_out,
                                 g_view, write_grad, grad_scale,
                                 b * size, min(n, (b + 1) * size), &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _focal_block(y_view, l_view, sparse, y_pred, w_view, has_weight, cw_view,
                             has_class_weight, has_ignore, ignore_index, from_logits,
                             smoothing, lo, hi, gamma, alpha, out_view, write_out,
                             g_view, write_grad, grad_scale,
                             b * size, min(n, (b + 1) * size), &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# Issue #14: dice, tversky (Keras), margin ranking, Gaussian NLL, cosine embedding and
# triplet margin (PyTorch).
include "_pairs.pxi"


# --- run-time SIMD path (issue 13) --------------------------------------------------------

SIMD_PATHS = ("baseline", "avx2", "avx512")
_SIMD_ISA = {
    "baseline": "x86-64 baseline (SSE2)",
    "avx2": "x86-64-v3: AVX2, FMA, BMI2",
    "avx512": "x86-64-v4: AVX-512F/BW/CD/DQ/VL",
}
_simd_how = "chosen at run time"


def simd_available():
    """The SIMD paths this build can run on this CPU, slowest first."""
    return SIMD_PATHS[: cyl_simd_best() + 1]


def simd_current():
    """The path in force: 'baseline', 'avx2' or 'avx512'."""
    return SIMD_PATHS[cyl_simd_level]


def _set_simd(str path):
    """Switch the path (tests compare the paths' bits). Not thread-safe: no loop may run
    meanwhile. Returns the path that was in force."""
    if path not in SIMD_PATHS:
        raise ValueError(f"SIMD path must be one of {SIMD_PATHS}, got {path!r}")
    if path not in simd_available():
        raise ValueError(f"SIMD path {path!r} is not available on this CPU/build "
                         f"(available: {simd_available()})")
    old = simd_current()
    cyl_simd_set(SIMD_PATHS.index(path))
    return old


def _init_simd():
    """The path at import: CYLOSS_SIMD (baseline, avx2, avx512; empty or 'auto': the best
    the CPU has). An unknown value is an error; a path this CPU or build lacks falls back
    to the best it has, with a RuntimeWarning (so that one setting serves a mixed cluster)."""
    import os
    import warnings
    global _simd_how
    raw = os.environ.get("CYLOSS_SIMD", "")
    want = raw.strip().lower()
    best = cyl_simd_best()
    if want in ("", "auto"):
        return best
    if want not in SIMD_PATHS:
        raise ValueError(
            f"CYLOSS_SIMD must be one of 'auto', 'baseline', 'avx2', 'avx512' (or unset), "
            f"got {raw!r}")
    level = SIMD_PATHS.index(want)
    if level > best:
        why = ("this build has no run-time dispatch on this platform" if not CYL_HAVE_CLONES
               else "this CPU lacks it")
        warnings.warn(
            f"CYLOSS_SIMD={raw!r}: {why}; using {SIMD_PATHS[best]!r}",
            RuntimeWarning, stacklevel=2)
        _simd_how = f"CYLOSS_SIMD={want} unavailable, fell back"
        return best
    _simd_how = f"forced by CYLOSS_SIMD={want}"
    return level


cyl_simd_set(_init_simd())


def simd_path():
    """Which build of the fast paths runs: the path, its instruction set, how it was
    chosen (show_config's simd_path)."""
    cur = simd_current()
    if not CYL_HAVE_CLONES:
        return f"{cur} ({_SIMD_ISA[cur]}; no run-time dispatch on this platform)"
    return f"{cur} ({_SIMD_ISA[cur]}), {_simd_how}"


# --- test hook -----------------------------------------------------------------------------

def vecmath(str name, const double[:] x, double[:] out):
    """Apply cyl_exp, cyl_log, cyl_log1p, cyl_log1p_nonneg, cyl_log_f32, cyl_exp_f32, or
    cyl_expf / cyl_expf_nonpos / cyl_logf / cyl_log1pf_unit / cyl_log1pf_small / cyl_log1mf
    (on x rounded to float32) elementwise (tests measure their accuracy)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef int which = {"exp": 0, "log": 1, "log1p": 2, "expf": 3, "log1pf_unit": 4,
                      "log1p_nonneg": 5, "log_f32": 6, "exp_f32": 7, "logf": 8,
                      "log1pf_small": 9, "log1mf": 10, "expf_nonpos": 11}[name]
    _require(out.shape[0] == n, "out length differs")
    with nogil:
        for i in range(n):
            if which == 0:
                out[i] = cyl_exp(x[i])
            elif which == 1:
                out[i] = cyl_log(x[i])
            elif which == 2:
                out[i] = cyl_log1p(x[i])
            elif which == 3:
                out[i] = cyl_expf(<float>x[i])
            elif which == 5:
                out[i] = cyl_log1p_nonneg(x[i])
            elif which == 6:
                out[i] = cyl_log_f32(x[i])
            elif which == 7:
                out[i] = cyl_exp_f32(x[i])
            elif which == 8:
                out[i] = cyl_logf(<float>x[i])
            elif which == 9:
                out[i] = cyl_log1pf_small(<float>x[i])
            elif which == 10:
                out[i] = cyl_log1mf(<float>x[i])
            elif which == 11:
                out[i] = cyl_expf_nonpos(<float>x[i])
            else:
                out[i] = cyl_log1pf_unit(<float>x[i])
