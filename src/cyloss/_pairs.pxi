# Loops of issue #14's losses that fit neither elementwise family: the overlap losses of
# Keras (dice, tversky: three sums over a row, then a ratio) and PyTorch's three-array
# losses (margin ranking, Gaussian NLL, cosine embedding, triplet margin). Included by
# _loops.pyx, whose block machinery they share: blocks whose size depends on the shape
# only, each summed serially, combined in block order, so the result is bitwise the same
# for every n_threads. Every loop reads its arrays through
# memoryview indexing; losses.py / _pairs.py checked every shape before the call, and the
# entries below check again (_require) what an index relies on.

from libc.math cimport sqrt, fabs, pow

cdef enum:
    OVERLAP_DICE = 0
    OVERLAP_TVERSKY = 1

#: The overlap kinds by name, for _pairs.py.
OVERLAP_KINDS = {"dice": OVERLAP_DICE, "tversky": OVERLAP_TVERSKY}

# keras.backend.epsilon(): Keras's dice and tversky add it to the denominator.
cdef double KERAS_EPSILON = 1e-7


cdef inline double _overlap_row(
    int kind, double alpha, double beta, const floating[:, :] y_true,
    const floating[:, :] y_pred, Py_ssize_t i, double* den, double* num,
) noexcept nogil:
    # The loss of row i, 1 - num / den, with Keras's sums (lane pattern of _lanes_total):
    #   dice:    num = 2 sum y p,  den = sum y + sum p + eps
    #   tversky: num = sum y p,    den = num + alpha sum (1 - p) y + beta sum p (1 - y) + eps
    cdef double a0[8]
    cdef double a1[8]
    cdef double a2[8]
    cdef double y, x, s0, s1, s2
    cdef double sums[3]
    cdef Py_ssize_t k, width = y_pred.shape[1]
    cdef int j
    if width > 0 and _overlap_contiguous(y_true, y_pred):   # (no [i, 0] in an empty row)
        _overlap_sums(kind, &y_true[i, 0], &y_pred[i, 0], width, sums)
        return _overlap_ratio(kind, alpha, beta, sums[0], sums[1], sums[2], den, num)
    _lanes_clear(a0)
    _lanes_clear(a1)
    _lanes_clear(a2)
    for k in range(width):
        y = y_true[i, k]
        x = y_pred[i, k]
        j = _lane(k, width)
        a0[j] += y * x
        if kind == OVERLAP_DICE:
            a1[j] += y
            a2[j] += x
        else:
            a1[j] += (1.0 - x) * y
            a2[j] += x * (1.0 - y)
    return _overlap_ratio(kind, alpha, beta, _lanes_total(a0), _lanes_total(a1),
                          _lanes_total(a2), den, num)


cdef inline double _overlap_ratio(int kind, double alpha, double beta, double s0, double s1,
                                  double s2, double* den, double* num) noexcept nogil:
    if kind == OVERLAP_DICE:
        num[0] = 2.0 * s0
        den[0] = s1 + s2 + KERAS_EPSILON
    else:
        num[0] = s0
        den[0] = s0 + s1 * alpha + s2 * beta + KERAS_EPSILON
    return 1.0 - num[0] / den[0]


cdef inline bint _overlap_contiguous(const floating[:, :] y_true,
                                     const floating[:, :] y_pred) noexcept nogil:
    return y_true.strides[1] == sizeof(floating) and y_pred.strides[1] == sizeof(floating)


cdef inline void _overlap_sums(int kind, const floating* t, const floating* p, Py_ssize_t n,
                               double* out) noexcept nogil:
    # The C loop of the three sums over n contiguous elements (same bits as the loops here).
    if floating is float:
        cyl_overlap_sums_f32(kind == OVERLAP_DICE, t, p, n, out)
    else:
        cyl_overlap_sums_f64(kind == OVERLAP_DICE, t, p, n, out)


cdef void _overlap_block(
    int kind, double alpha, double beta,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    const double[:] weight, bint has_weight, floating[:] loss_out, bint write_out,
    floating[:, :] grad, bint write_grad, Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t i, si, k, width = y_pred.shape[1], m = end - start
    cdef double l, w, den_i, num_i, r, y, g
    cdef cyl_acc acc, den
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m):
        si = start + i
        l = _overlap_row(kind, alpha, beta, y_true, y_pred, si, &den_i, &num_i)
        w = weight[si] if has_weight else 1.0
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m, w)
        if write_out:
            loss_out[si] = <floating>l
        if write_grad:
            # d/dp_k (1 - num / den) = (r d den/dp_k - d num/dp_k) / den, r = num / den:
            # dice d num = 2 y_k, d den = 1; tversky d num = y_k,
            # d den = y_k - alpha y_k + beta (1 - y_k).
            r = num_i / den_i
            for k in range(width):
                y = y_true[si, k]
                if kind == OVERLAP_DICE:
                    g = (r - 2.0 * y) / den_i
                else:
                    g = (r * (y - alpha * y + beta * (1.0 - y)) - y) / den_i
                grad[si, k] = <floating>(w * g)
        cyl_acc_add(&acc, i, m, l)
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m, m)


# A row longer than OVERLAP_PIECE elements (Keras's default axis=None makes the whole input
# one row) is cut into pieces of that many elements, summed in parallel, and the pieces'
# sums are added in piece order: the cut depends on the width alone, so the result is
# the same for every n_threads.
cdef Py_ssize_t OVERLAP_PIECE = 65536


cdef void _overlap_piece(
    int kind, const floating[:, :] y_true, const floating[:, :] y_pred, Py_ssize_t i,
    Py_ssize_t k0, Py_ssize_t k1, double* out,
) noexcept nogil:
    # The three sums of _overlap_row over y[i, k0:k1], in the same lane pattern.
    cdef double a0[8]
    cdef double a1[8]
    cdef double a2[8]
    cdef double y, x
    cdef Py_ssize_t k, m = k1 - k0
    cdef int j
    if m > 0 and _overlap_contiguous(y_true, y_pred):
        _overlap_sums(kind, &y_true[i, k0], &y_pred[i, k0], m, out)
        return
    _lanes_clear(a0)
    _lanes_clear(a1)
    _lanes_clear(a2)
    for k in range(m):
        y = y_true[i, k0 + k]
        x = y_pred[i, k0 + k]
        j = _lane(k, m)
        a0[j] += y * x
        if kind == OVERLAP_DICE:
            a1[j] += y
            a2[j] += x
        else:
            a1[j] += (1.0 - x) * y
            a2[j] += x * (1.0 - y)
    out[0] = _lanes_total(a0)
    out[1] = _lanes_total(a1)
    out[2] = _lanes_total(a2)


cdef void _overlap_piece_grad(
    int kind, double alpha, double beta, const floating[:, :] y_true,
    floating[:, :] grad, Py_ssize_t i, Py_ssize_t k0, Py_ssize_t k1, double r, double den,
    double w,
) noexcept nogil:
    # _overlap_block's gradient over y[i, k0:k1].
    cdef Py_ssize_t k
    cdef double y, g
    for k in range(k0, k1):
        y = y_true[i, k]
        if kind == OVERLAP_DICE:
            g = (r - 2.0 * y) / den
        else:
            g = (r * (y - alpha * y + beta * (1.0 - y)) - y) / den
        grad[i, k] = <floating>(w * g)


cdef tuple _overlap_split(
    int kind, double alpha, double beta, const floating[:, :] y_true,
    const floating[:, :] y_pred, const double[:] weight, bint has_weight,
    floating[:] loss_out, bint write_out, floating[:, :] grad, bint write_grad,
    int n_threads,
):
    cdef Py_ssize_t n = y_pred.shape[0], width = y_pred.shape[1], i, c
    cdef Py_ssize_t n_pieces = (width + OVERLAP_PIECE - 1) // OVERLAP_PIECE
    cdef int team = _team(n_threads, n_pieces * (OVERLAP_PIECE // BLOCK_WORK))
    cdef double s0, s1, s2, num, den_i, l, w, r
    cdef cyl_acc acc, den
    cdef double* parts = <double*>malloc(3 * n_pieces * sizeof(double))
    if parts == NULL:
        raise MemoryError("cyloss: cannot allocate the piece table")
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    try:
        for i in range(n):
            if team == 1:
                with nogil:
                    for c in range(n_pieces):
                        _overlap_piece(kind, y_true, y_pred, i, c * OVERLAP_PIECE,
                                       min(width, (c + 1) * OVERLAP_PIECE), &parts[3 * c])
            else:
                for c in prange(n_pieces, nogil=True, schedule="guided", num_threads=team):
                    _overlap_piece(kind, y_true, y_pred, i, c * OVERLAP_PIECE,
                                   min(width, (c + 1) * OVERLAP_PIECE), &parts[3 * c])
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            for c in range(n_pieces):
                s0 += parts[3 * c]
                s1 += parts[3 * c + 1]
                s2 += parts[3 * c + 2]
            if kind == OVERLAP_DICE:
                num = 2.0 * s0
                den_i = s1 + s2 + KERAS_EPSILON
            else:
                num = s0
                den_i = s0 + s1 * alpha + s2 * beta + KERAS_EPSILON
            l = 1.0 - num / den_i
            w = weight[i] if has_weight else 1.0
            if has_weight:
                l = w * l
                cyl_acc_add(&den, i, n, w)
            if write_out:
                loss_out[i] = <floating>l
            if write_grad:
                r = num / den_i
                if team == 1:
                    with nogil:
                        for c in range(n_pieces):
                            _overlap_piece_grad(kind, alpha, beta, y_true, grad, i,
                                                c * OVERLAP_PIECE,
                                                min(width, (c + 1) * OVERLAP_PIECE),
                                                r, den_i, w)
                else:
                    for c in prange(n_pieces, nogil=True, schedule="guided",
                                    num_threads=team):
                        _overlap_piece_grad(kind, alpha, beta, y_true, grad, i,
                                            c * OVERLAP_PIECE,
                                            min(width, (c + 1) * OVERLAP_PIECE),
                                            r, den_i, w)
            cyl_acc_add(&acc, i, n, l)
    finally:
        free(parts)
    return (cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>n, n,
            ERR_NONE, -1, -1)


def overlap(
    int kind, double alpha, double beta,
    const floating[:, :] y_true, const floating[:, :] y_pred,
    weight, bint has_weight, loss_out, bint write_out, int n_threads, grad_out=None,
):
    """Keras's dice (kind OVERLAP_KINDS["dice"]) or tversky over rows: one per-sample
    loss per row of y_pred (n, K)."""
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :] g_view
    cdef bint write_grad = grad_out is not None
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    if write_grad:
        g_view = grad_out
        _require(g_view.shape[0] == y_pred.shape[0] and g_view.shape[1] == y_pred.shape[1],
                 "grad_out shape differs from y_pred")
    _require(kind == OVERLAP_DICE or kind == OVERLAP_TVERSKY, "unknown overlap kind")
    cdef Py_ssize_t n = y_pred.shape[0]
    cdef Py_ssize_t size = _block_size(n, y_pred.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    _require(y_true.shape[0] == n and y_true.shape[1] == y_pred.shape[1], "shapes differ")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    if y_pred.shape[1] > OVERLAP_PIECE:
        return _overlap_split(kind, alpha, beta, y_true, y_pred, w_view, has_weight,
                              out_view, write_out, g_view, write_grad, n_threads)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            with nogil:
                for b in range(n_blocks):
                    _overlap_block(kind, alpha, beta, y_true, y_pred, w_view, has_weight,
                                   out_view, write_out, g_view, write_grad,
                                   b * size, min(n, (b + 1) * size), &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _overlap_block(kind, alpha, beta, y_true, y_pred, w_view, has_weight,
                               out_view, write_out, g_view, write_grad,
                               b * size, min(n, (b + 1) * size), &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# --- margin ranking: l = max(0, -y (x1 - x2) + margin), mean over the last axis -----------

cdef inline double _ranking_gap(double y, double a, double b, double margin) noexcept nogil:
    return -y * (a - b) + margin


cdef inline bint _flat3(const floating[:, :] a, const floating[:, :] b,
                        const floating[:, :] c) noexcept nogil:
    # One element per sample, each array contiguous: the C fast paths' layout.
    return (a.shape[1] == 1 and a.strides[0] == sizeof(floating)
            and b.strides[0] == sizeof(floating) and c.strides[0] == sizeof(floating))


cdef void _ranking_block(
    double margin, const floating[:, :] y_true, const floating[:, :] x1,
    const floating[:, :] x2, const double[:] weight, bint has_weight,
    floating[:] loss_out, bint write_out, floating[:, :] g1, floating[:, :] g2,
    bint write_grad, Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t i, si, k, width = x1.shape[1], m = end - start
    cdef double acc8[8]
    cdef double l, w, d, g
    cdef cyl_acc acc, den
    if m > 0 and not has_weight and not write_out and not write_grad and _flat3(y_true, x1, x2):
        if floating is float:
            l = cyl_ranking_sum_f32(&y_true[start, 0], &x1[start, 0], &x2[start, 0], m,
                                    margin)
        else:
            l = cyl_ranking_sum_f64(&y_true[start, 0], &x1[start, 0], &x2[start, 0], m,
                                    margin)
        _set(blk, l, <double>m, m)
        return
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m):
        si = start + i
        _lanes_clear(acc8)
        for k in range(width):
            acc8[_lane(k, width)] += cyl_margin_ranking(y_true[si, k], x1[si, k], x2[si, k],
                                                        margin)
        l = _lanes_total(acc8) / width
        w = weight[si] if has_weight else 1.0
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m, w)
        if write_out:
            loss_out[si] = <floating>l
        if write_grad:
            # torch.clamp_min's backward passes the gradient where d >= 0.
            for k in range(width):
                d = _ranking_gap(y_true[si, k], x1[si, k], x2[si, k], margin)
                g = d if d != d else (-y_true[si, k] if d >= 0.0 else 0.0)
                g = w * g / width
                g1[si, k] = <floating>g
                g2[si, k] = <floating>(-g)
        cyl_acc_add(&acc, i, m, l)
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m, m)


def margin_ranking(
    double margin, const floating[:, :] y_true, const floating[:, :] x1,
    const floating[:, :] x2, weight, bint has_weight, loss_out, bint write_out,
    int n_threads, grad1_out=None, grad2_out=None,
):
    """PyTorch's margin ranking loss over rows of (n, K) arrays, mean over K; the
    gradients with respect to x1 and x2 (both or neither)."""
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :] g1_view, g2_view
    cdef bint write_grad = grad1_out is not None
    _require(write_grad == (grad2_out is not None), "both gradients or neither")
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    cdef Py_ssize_t n = x1.shape[0]
    if write_grad:
        g1_view = grad1_out
        g2_view = grad2_out
        _require(g1_view.shape[0] == n and g1_view.shape[1] == x1.shape[1]
                 and g2_view.shape[0] == n and g2_view.shape[1] == x1.shape[1],
                 "gradient buffers differ from the inputs' shape")
    _require(y_true.shape[0] == n and y_true.shape[1] == x1.shape[1]
             and x2.shape[0] == n and x2.shape[1] == x1.shape[1], "shapes differ")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0 or x1.shape[1] == 0:
        return _empty_rows(n, w_view, has_weight, loss_out, write_out)
    cdef Py_ssize_t size = _block_size(n, x1.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            with nogil:
                for b in range(n_blocks):
                    _ranking_block(margin, y_true, x1, x2, w_view, has_weight, out_view,
                                   write_out, g1_view, g2_view, write_grad,
                                   b * size, min(n, (b + 1) * size), &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _ranking_block(margin, y_true, x1, x2, w_view, has_weight, out_view,
                               write_out, g1_view, g2_view, write_grad,
                               b * size, min(n, (b + 1) * size), &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# --- Gaussian NLL: l = mean_k (log v + (x - y)^2 / v) / 2 [+ log(2 pi) / 2], v = max(var, eps)

# A negative variance (ValueError); err_k is the column.
cdef enum:
    ERR_VAR_NEG = 64

VAR_NEGATIVE = ERR_VAR_NEG
cdef double HALF_LOG_2PI = 0.918938533204672741780329736405617640


cdef void _gaussian_block(
    double eps, bint full, const floating[:, :] y_true, const floating[:, :] x,
    const floating[:, :] var, const double[:] weight, bint has_weight,
    floating[:] loss_out, bint write_out, floating[:, :] gx, floating[:, :] gv,
    bint write_grad, Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t i, si, k, width = x.shape[1], m = end - start
    cdef double acc8[8]
    cdef double l, w, v, e, c
    cdef cyl_acc acc, den
    cdef int bad = 0
    if m > 0 and not has_weight and not write_out and not write_grad and _flat3(y_true, x, var):
        if floating is float:
            l = cyl_gaussian_sum_f32(&y_true[start, 0], &x[start, 0], &var[start, 0], m, eps,
                                     HALF_LOG_2PI if full else 0.0, &bad)
        else:
            l = cyl_gaussian_sum_f64(&y_true[start, 0], &x[start, 0], &var[start, 0], m, eps,
                                     HALF_LOG_2PI if full else 0.0, &bad)
        if not bad:
            _set(blk, l, <double>m, m)
            return
        # else the general loop below finds the first negative variance
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m):
        si = start + i
        _lanes_clear(acc8)
        for k in range(width):
            v = var[si, k]
            if cyl_gaussian_bad(v):
                _fail(blk, ERR_VAR_NEG, si, k)
                return
            if floating is float:
                acc8[_lane(k, width)] += cyl_gaussian_nll_f32(y_true[si, k], x[si, k], v, eps)
            else:
                acc8[_lane(k, width)] += cyl_gaussian_nll(y_true[si, k], x[si, k], v, eps)
        l = _lanes_total(acc8) / width
        if full:
            l = l + HALF_LOG_2PI
        w = weight[si] if has_weight else 1.0
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m, w)
        if write_out:
            loss_out[si] = <floating>l
        if write_grad:
            # d/dx = e / v; d/dvar = (1 / v - e^2 / v^2) / 2 at the clamped v, also where
            # the clamp is active (PyTorch clamps without recording it for autograd).
            c = w / width
            for k in range(width):
                v = var[si, k]
                v = eps if v < eps else v
                e = x[si, k] - y_true[si, k]
                gx[si, k] = <floating>(c * e / v)
                gv[si, k] = <floating>(c * 0.5 * (1.0 / v - (e / v) * (e / v)))
        cyl_acc_add(&acc, i, m, l)
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m, m)


def gaussian_nll(
    double eps, bint full, const floating[:, :] y_true, const floating[:, :] x,
    const floating[:, :] var, weight, bint has_weight, loss_out, bint write_out,
    int n_threads, gx_out=None, gv_out=None,
):
    """PyTorch's Gaussian NLL over rows of (n, K) arrays (var may have stride 0), mean
    over K; the gradients with respect to x and var (both or neither, (n, K) each)."""
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :] gx_view, gv_view
    cdef bint write_grad = gx_out is not None
    _require(write_grad == (gv_out is not None), "both gradients or neither")
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    cdef Py_ssize_t n = x.shape[0]
    if write_grad:
        gx_view = gx_out
        gv_view = gv_out
        _require(gx_view.shape[0] == n and gx_view.shape[1] == x.shape[1]
                 and gv_view.shape[0] == n and gv_view.shape[1] == x.shape[1],
                 "gradient buffers differ from the inputs' shape")
    _require(y_true.shape[0] == n and y_true.shape[1] == x.shape[1]
             and var.shape[0] == n and var.shape[1] == x.shape[1], "shapes differ")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0 or x.shape[1] == 0:
        return _empty_rows(n, w_view, has_weight, loss_out, write_out)
    cdef Py_ssize_t size = _block_size(n, x.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            with nogil:
                for b in range(n_blocks):
                    _gaussian_block(eps, full, y_true, x, var, w_view, has_weight, out_view,
                                    write_out, gx_view, gv_view, write_grad,
                                    b * size, min(n, (b + 1) * size), &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _gaussian_block(eps, full, y_true, x, var, w_view, has_weight, out_view,
                                write_out, gx_view, gv_view, write_grad,
                                b * size, min(n, (b + 1) * size), &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# --- cosine embedding: one row of D per sample, torch's EPSILON in the squared norms ------

# PyTorch's EPSILON of cosine_embedding_loss: 1e-12 as a float32 constant, so exactly
# 9.999999960041972e-13 (what its float64 results show).
cdef double TORCH_COSINE_EPSILON = <double><float>1e-12


cdef void _cosine_block(
    double margin, const floating[:] y_true, const floating[:, :] x1,
    const floating[:, :] x2, const double[:] weight, bint has_weight,
    floating[:] loss_out, bint write_out, floating[:, :] g1, floating[:, :] g2,
    bint write_grad, Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t i, si, k, width = x1.shape[1], m = end - start
    cdef double l, w, y, a, b, prod, m1, m2, root, cos, dcos, t
    cdef cyl_acc acc, den
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m):
        si = start + i
        prod = 0.0
        m1 = 0.0
        m2 = 0.0
        for k in range(width):
            a = x1[si, k]
            b = x2[si, k]
            prod += a * b
            m1 += a * a
            m2 += b * b
        m1 = m1 + TORCH_COSINE_EPSILON
        m2 = m2 + TORCH_COSINE_EPSILON
        root = sqrt(m1 * m2)
        cos = prod / root
        y = y_true[si]
        # PyTorch: 1 - cos for y = 1, max(0, cos - margin) for y = -1, 0 for other labels;
        # dl/dcos: -1, [cos - margin >= 0] (clamp_min's backward), 0.
        if y == 1.0:
            l = 1.0 - cos
            dcos = -1.0
        elif y == -1.0:
            t = cos - margin
            l = 0.0 if t < 0.0 else t
            dcos = t if t != t else (1.0 if t >= 0.0 else 0.0)
        else:
            l = 0.0 if y == y else y
            dcos = l
        w = weight[si] if has_weight else 1.0
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m, w)
        if write_out:
            loss_out[si] = <floating>l
        if write_grad:
            # d cos / d x1_k = x2_k / root - cos x1_k / m1 (and symmetrically for x2)
            dcos = w * dcos
            for k in range(width):
                a = x1[si, k]
                b = x2[si, k]
                g1[si, k] = <floating>(dcos * (b / root - cos * a / m1))
                g2[si, k] = <floating>(dcos * (a / root - cos * b / m2))
        cyl_acc_add(&acc, i, m, l)
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m, m)


def cosine_embedding(
    double margin, const floating[:] y_true, const floating[:, :] x1,
    const floating[:, :] x2, weight, bint has_weight, loss_out, bint write_out,
    int n_threads, grad1_out=None, grad2_out=None,
):
    """PyTorch's cosine embedding loss: one per-sample loss per row of x1, x2 (n, D)."""
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :] g1_view, g2_view
    cdef bint write_grad = grad1_out is not None
    _require(write_grad == (grad2_out is not None), "both gradients or neither")
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    cdef Py_ssize_t n = x1.shape[0]
    if write_grad:
        g1_view = grad1_out
        g2_view = grad2_out
        _require(g1_view.shape[0] == n and g1_view.shape[1] == x1.shape[1]
                 and g2_view.shape[0] == n and g2_view.shape[1] == x1.shape[1],
                 "gradient buffers differ from the inputs' shape")
    _require(y_true.shape[0] == n and x2.shape[0] == n and x2.shape[1] == x1.shape[1],
             "shapes differ")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    cdef Py_ssize_t size = _block_size(n, x1.shape[1])
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            with nogil:
                for b in range(n_blocks):
                    _cosine_block(margin, y_true, x1, x2, w_view, has_weight, out_view,
                                  write_out, g1_view, g2_view, write_grad,
                                  b * size, min(n, (b + 1) * size), &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _cosine_block(margin, y_true, x1, x2, w_view, has_weight, out_view,
                              write_out, g1_view, g2_view, write_grad,
                              b * size, min(n, (b + 1) * size), &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)


# --- triplet margin: torch.pairwise_distance's ||x1 - x2 + eps||_p per row ---------------

cdef inline double _pdist(const floating[:, :] u, const floating[:, :] v, Py_ssize_t i,
                          double p, double eps) noexcept nogil:
    cdef Py_ssize_t k
    cdef double s = 0.0, d
    for k in range(u.shape[1]):
        d = fabs(u[i, k] - v[i, k] + eps)
        if p == 2.0:
            s += d * d
        elif p == 1.0:
            s += d
        else:
            s += pow(d, p)
    if p == 2.0:
        return sqrt(s)
    if p == 1.0:
        return s
    return pow(s, 1.0 / p)


cdef inline double _pdist_grad(double d, double norm, double p) noexcept nogil:
    # d ||d||_p / d d_k: sign(d_k) |d_k|^(p-1) / norm^(p-1); 0 for a zero norm (torch's
    # norm backward masks it).
    cdef double a = fabs(d), s = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else d * 0.0)
    if norm != norm or d != d:
        return norm + d
    if norm == 0.0:
        return 0.0
    if p == 2.0:
        return d / norm
    if p == 1.0:
        return s
    return s * pow(a / norm, p - 1.0)


cdef void _triplet_block(
    double margin, double p, double eps, bint swap, const floating[:, :] an,
    const floating[:, :] po, const floating[:, :] ne, const double[:] weight,
    bint has_weight, floating[:] loss_out, bint write_out, floating[:, :] ga,
    floating[:, :] gp, floating[:, :] gn, bint write_grad,
    Py_ssize_t start, Py_ssize_t end, Block* blk,
) noexcept nogil:
    cdef Py_ssize_t i, si, k, m = end - start
    cdef double l, w, dp, dn, ds, dneg, t, gate, cn, cs, uap, uan, upn
    cdef cyl_acc acc, den
    cyl_acc_init(&acc)
    cyl_acc_init(&den)
    for i in range(m):
        si = start + i
        dp = _pdist(an, po, si, p, eps)
        dn = _pdist(an, ne, si, p, eps)
        cn = 1.0
        cs = 0.0
        dneg = dn
        ds = 0.0
        if swap:
            ds = _pdist(po, ne, si, p, eps)
            # torch.min(dn, ds): the smaller, and its gradient split in half at a tie
            if ds < dn:
                dneg, cn, cs = ds, 0.0, 1.0
            elif ds == dn:
                cn, cs = 0.5, 0.5
            elif ds != ds:
                dneg = ds
        t = margin + dp - dneg
        l = 0.0 if t < 0.0 else t
        gate = t if t != t else (1.0 if t >= 0.0 else 0.0)
        w = weight[si] if has_weight else 1.0
        if has_weight:
            l = w * l
            cyl_acc_add(&den, i, m, w)
        if write_out:
            loss_out[si] = <floating>l
        if write_grad:
            gate = w * gate
            for k in range(an.shape[1]):
                uap = _pdist_grad(an[si, k] - po[si, k] + eps, dp, p)
                uan = _pdist_grad(an[si, k] - ne[si, k] + eps, dn, p)
                upn = _pdist_grad(po[si, k] - ne[si, k] + eps, ds, p) if swap else 0.0
                ga[si, k] = <floating>(gate * (uap - cn * uan))
                # d(p, n) = ||p - n + eps||: its derivative is +upn for p, -upn for n
                gp[si, k] = <floating>(gate * (-uap - cs * upn))
                gn[si, k] = <floating>(gate * (cn * uan + cs * upn))
        cyl_acc_add(&acc, i, m, l)
    _set(blk, cyl_acc_total(&acc), cyl_acc_total(&den) if has_weight else <double>m, m)


def triplet_margin(
    double margin, double p, double eps, bint swap, const floating[:, :] anchor,
    const floating[:, :] positive, const floating[:, :] negative, weight,
    bint has_weight, loss_out, bint write_out, int n_threads, ga_out=None, gp_out=None,
    gn_out=None,
):
    """PyTorch's triplet margin loss: one per-sample loss per row of the (n, D) inputs;
    the gradients with respect to all three (all or none)."""
    cdef const double[:] w_view
    cdef floating[:] out_view
    cdef floating[:, :] ga_view, gp_view, gn_view
    cdef bint write_grad = ga_out is not None
    _require(write_grad == (gp_out is not None) and write_grad == (gn_out is not None),
             "all gradients or none")
    _require(p > 0.0, "p must be positive")
    if has_weight:
        w_view = weight
    if write_out:
        out_view = loss_out
    cdef Py_ssize_t n = anchor.shape[0], d = anchor.shape[1]
    if write_grad:
        ga_view = ga_out
        gp_view = gp_out
        gn_view = gn_out
        _require(ga_view.shape[0] == n and ga_view.shape[1] == d
                 and gp_view.shape[0] == n and gp_view.shape[1] == d
                 and gn_view.shape[0] == n and gn_view.shape[1] == d,
                 "gradient buffers differ from the inputs' shape")
    _require(positive.shape[0] == n and positive.shape[1] == d
             and negative.shape[0] == n and negative.shape[1] == d, "shapes differ")
    _check_common(n, w_view.shape[0] if has_weight else 0, has_weight,
                  out_view.shape[0] if write_out else 0, write_out)
    if n == 0:
        return (0.0, 0.0, 0, ERR_NONE, -1, -1)
    cdef Py_ssize_t size = _block_size(n, 3 * d)
    cdef Py_ssize_t n_blocks = (n + size - 1) // size, b
    cdef int team = _team(n_threads, n_blocks)
    cdef Block* blocks = _new_blocks(n_blocks)
    try:
        if team == 1:
            with nogil:
                for b in range(n_blocks):
                    _triplet_block(margin, p, eps, swap, anchor, positive, negative, w_view,
                                   has_weight, out_view, write_out, ga_view, gp_view,
                                   gn_view, write_grad, b * size, min(n, (b + 1) * size),
                                   &blocks[b])
        else:
            for b in prange(n_blocks, nogil=True, schedule="guided", num_threads=team):
                _triplet_block(margin, p, eps, swap, anchor, positive, negative, w_view,
                               has_weight, out_view, write_out, ga_view, gp_view,
                               gn_view, write_grad, b * size, min(n, (b + 1) * size),
                               &blocks[b])
        return _combine(blocks, n_blocks)
    finally:
        free(blocks)
