"""The CTC loop: the forward-backward recursion of Connectionist Temporal Classification.

One sequence per iteration of an OpenMP ``prange`` over the batch (dynamic schedule:
sequences differ in length). Each sequence is computed serially by one thread into its own
slot of ``nll`` (and its own rows of the gradient), so nothing it produces depends on the
thread count; the caller sums ``nll`` in Python in a fixed order.

Per sequence of ``Tn`` frames and ``L`` labels, on the extended sequence
``blank, l_0, blank, l_1, ..., l_{L-1}, blank`` (``S = 2 L + 1`` states), in log space:

- ``alpha[t, s] = lp(t, ext_s) + logsumexp(alpha[t-1, s], alpha[t-1, s-1],
  alpha[t-1, s-2] if skip(s))`` where ``skip(s)``: ``ext_s`` is a label that differs
  from ``ext_{s-2}`` (a repeated label needs a blank in between);
- ``nll = -logsumexp(alpha[Tn-1, S-1], alpha[Tn-1, S-2])``;
- with the gradient, ``beta[t, s]`` (the log-probability of the rest of the path after
  frame ``t``, the emission at ``t`` excluded) runs backward, and the occupancy
  ``gamma[t, c] = sum_{s: ext_s = c} exp(alpha[t, s] + beta[t, s] + nll)`` gives
  ``d nll / d x[t, c] = softmax(x[t])_c - gamma[t, c]`` for logits and
  ``-gamma[t, c]`` for log-probabilities.

Every index is proved in range by the caller (``_sequence.py``): labels in ``[0, C)``,
lengths within the arrays, workspace sized for the longest sequence.
"""

from cython.parallel cimport prange, threadid
from cython cimport floating
from libc.stdint cimport int64_t
from libc.math cimport exp, log, log1p, fabs, INFINITY


cdef inline double _lae2(double a, double b) noexcept nogil:
    # log(exp(a) + exp(b)); a NaN propagates (a + b when both are -inf is -inf, and NaN
    # when either is NaN).
    cdef double m = a if a > b else b
    if m == -INFINITY:
        return a + b
    return m + log1p(exp(-fabs(a - b)))


cdef inline double _lae3(double a, double b, double c) noexcept nogil:
    cdef double m = a if a > b else b
    if c > m:
        m = c
    if m == -INFINITY:
        return a + b + c
    return m + log(exp(a - m) + exp(b - m) + exp(c - m))


cdef inline double _x(const floating* xi, Py_ssize_t st, Py_ssize_t sc, Py_ssize_t t,
                      Py_ssize_t c) noexcept nogil:
    return (<const floating*>((<const char*>xi) + t * st + c * sc))[0]


cdef inline int64_t _ext(const int64_t* lab, Py_ssize_t s, int64_t blank) noexcept nogil:
    return lab[(s - 1) >> 1] if s & 1 else blank


cdef inline bint _skip(const int64_t* lab, Py_ssize_t s) noexcept nogil:
    # s odd and >= 3: the label at s differs from the previous label.
    return (s & 1) and s >= 3 and lab[(s - 1) >> 1] != lab[(s - 3) >> 1]


cdef inline Py_ssize_t _band_lo(Py_ssize_t S, Py_ssize_t Tn, Py_ssize_t t) noexcept nogil:
    cdef Py_ssize_t lo = S - 2 * (Tn - t)
    return lo if lo > 0 else 0


cdef inline Py_ssize_t _band_hi(Py_ssize_t S, Py_ssize_t t) noexcept nogil:
    cdef Py_ssize_t hi = 2 * t + 1
    return hi if hi < S - 1 else S - 1


cdef double _sequence(
    const floating* xi, Py_ssize_t st, Py_ssize_t sc, Py_ssize_t Tn, Py_ssize_t T,
    Py_ssize_t C, const int64_t* lab, Py_ssize_t L, int64_t blank, bint logits,
    bint zero_infinity, double gs, double* work, floating* gi, bint write_grad,
) noexcept nogil:
    cdef Py_ssize_t S = 2 * L + 1
    cdef Py_ssize_t t, s, c, lo, hi
    cdef double* lse = work                  # T
    cdef double* gam = lse + T               # C
    cdef double* bnext = gam + C             # S
    cdef double* bcur = bnext + S            # S
    cdef double* alpha = bcur + S            # Tn * S with the gradient, else 2 * S
    cdef double* prev = alpha
    cdef double* cur
    cdef double* tmp
    cdef double m, v, total, nll, lpb, lp

    if write_grad:
        for t in range(Tn, T):   # frames past the sequence's length get no gradient
            for c in range(C):
                gi[t * C + c] = 0
    if Tn == 0:   # no frames: only the empty target has an (empty) alignment
        return 0.0 if L == 0 else (0.0 if zero_infinity else INFINITY)

    if logits:
        for t in range(Tn):
            m = -INFINITY
            for c in range(C):
                v = _x(xi, st, sc, t, c)
                if v > m:
                    m = v
            if m == -INFINITY or m == INFINITY:
                lse[t] = m
                for c in range(C):    # a NaN anywhere in the frame stays visible
                    if _x(xi, st, sc, t, c) != _x(xi, st, sc, t, c):
                        lse[t] = _x(xi, st, sc, t, c)
            else:
                total = 0.0
                for c in range(C):
                    total += exp(_x(xi, st, sc, t, c) - m)
                lse[t] = m + log(total)
    else:
        for t in range(Tn):
            lse[t] = 0.0

    # Forward. Only the band of states that are reachable by frame t (s <= 2 t + 1) and
    # can still reach the end (s >= S - 2 (Tn - t)) is computed; the states outside it
    # are -inf, or never read, in the full recursion too, so the band gives the same bits
    # with fewer log-adds.
    for t in range(Tn):
        cur = alpha + (t * S if write_grad else (t & 1) * S)
        lo = _band_lo(S, Tn, t)
        hi = _band_hi(S, t)
        for s in range(lo):
            cur[s] = -INFINITY
        for s in range(hi + 1, S):
            cur[s] = -INFINITY
        lpb = _x(xi, st, sc, t, blank) - lse[t]
        if t == 0:
            for s in range(lo, hi + 1):
                cur[s] = lpb if s == 0 else _x(xi, st, sc, 0, lab[0]) - lse[0]
        else:
            for s in range(lo, hi + 1):
                if s & 1:
                    lp = _x(xi, st, sc, t, lab[(s - 1) >> 1]) - lse[t]
                    if _skip(lab, s):
                        cur[s] = _lae3(prev[s], prev[s - 1], prev[s - 2]) + lp
                    else:
                        cur[s] = _lae2(prev[s], prev[s - 1]) + lp
                elif s > 0:
                    cur[s] = _lae2(prev[s], prev[s - 1]) + lpb
                else:
                    cur[s] = prev[s] + lpb
        prev = cur
    if L > 0:
        nll = -_lae2(prev[S - 1], prev[S - 2])
    else:
        nll = -prev[0]

    if nll == INFINITY:   # no alignment fits (Tn < L + repeats): no gradient
        if write_grad:
            for t in range(Tn):
                for c in range(C):
                    gi[t * C + c] = 0
        return 0.0 if zero_infinity else INFINITY
    if not write_grad:
        return nll

    # Backward over the same band, writing the gradient of frame t once beta[t] is known.
    for s in range(S):
        bcur[s] = -INFINITY
    bcur[S - 1] = 0.0
    if L > 0:
        bcur[S - 2] = 0.0
    t = Tn - 1
    while True:
        cur = alpha + t * S
        lo = _band_lo(S, Tn, t)
        hi = _band_hi(S, t)
        for c in range(C):
            gam[c] = 0.0
        for s in range(lo, hi + 1):
            gam[_ext(lab, s, blank)] += exp(cur[s] + bcur[s] + nll)
        for c in range(C):
            if logits:
                gi[t * C + c] = <floating>(gs * (exp(_x(xi, st, sc, t, c) - lse[t]) - gam[c]))
            else:
                gi[t * C + c] = <floating>(-gs * gam[c])
        if t == 0:
            break
        # beta[t-1, s] from beta[t, s'] + lp(t, ext_s'), s' in {s, s+1, s+2 if skip}.
        lpb = _x(xi, st, sc, t, blank) - lse[t]
        for s in range(lo, hi + 1):
            if s & 1:
                bcur[s] = bcur[s] + (_x(xi, st, sc, t, lab[(s - 1) >> 1]) - lse[t])
            else:
                bcur[s] = bcur[s] + lpb
        tmp = bnext
        bnext = bcur
        bcur = tmp
        lo = _band_lo(S, Tn, t - 1)
        hi = _band_hi(S, t - 1)
        for s in range(lo):
            bcur[s] = -INFINITY
        for s in range(hi + 1, S):
            bcur[s] = -INFINITY
        for s in range(lo, hi + 1):
            if s + 2 < S and _skip(lab, s + 2):
                bcur[s] = _lae3(bnext[s], bnext[s + 1], bnext[s + 2])
            elif s + 1 < S:
                bcur[s] = _lae2(bnext[s], bnext[s + 1])
            else:
                bcur[s] = bnext[s]
        t -= 1
    return nll


# --- the same recursion in scaled probability space --------------------------------------
# Rabiner's scaling: each frame's forward variables are divided by their sum c_t (and the
# backward ones by theirs), so log P = sum_t log c_t + log(alpha[Tn-1, S-1] + alpha[Tn-1,
# S-2]) needs no exp or log per state, only per frame and per emission: about ten times
# less work than the log-space form. It holds while nothing underflows: every emission
# probability of a finite log-probability and every product of a state by an emission is
# at least _TINY (2^-1000: then all of them are normal doubles, at full relative
# precision, and an exact 0 is an exact 0 of the log-space form too). Where one is not
# (logits that differ by hundreds, alignments with probability ratios beyond 2^1000
# inside one frame), or where an input is NaN or infinite, the sequence is computed again
# in log space (_sequence). The choice depends on the sequence alone, never on the threads.

cdef double _TINY = 9.332636185032189e-302       # 2^-1000


cdef double _no_alignment(Py_ssize_t Tn, Py_ssize_t C, bint zero_infinity, floating* gi,
                          bint write_grad) noexcept nogil:
    # No alignment fits (Tn < L + repeats): the loss is inf (0 with zero_infinity) and the
    # gradient 0, as in _sequence.
    cdef Py_ssize_t t, c
    if write_grad:
        for t in range(Tn):
            for c in range(C):
                gi[t * C + c] = 0
    return 0.0 if zero_infinity else INFINITY


cdef double _sequence_scaled(
    const floating* xi, Py_ssize_t st, Py_ssize_t sc, Py_ssize_t Tn, Py_ssize_t T,
    Py_ssize_t C, const int64_t* lab, Py_ssize_t L, int64_t blank, bint logits,
    bint zero_infinity, double gs, double* work, floating* gi, bint write_grad,
    bint* fallback,
) noexcept nogil:
    # The loss (and gradient) of one sequence; fallback[0] = True (and nothing else
    # meaningful) where the scaled form does not hold. Tn >= 1.
    cdef Py_ssize_t S = 2 * L + 1
    cdef Py_ssize_t t, s, c, lo, hi
    cdef double* y = work                    # Tn * C emission probabilities
    cdef double* gam = y + T * C             # C
    cdef double* bnext = gam + C             # S
    cdef double* bcur = bnext + S            # S
    cdef double* alpha = bcur + S            # Tn * S with the gradient, else 2 * S
    cdef double* prev = alpha
    cdef double* cur
    cdef double* tmp
    cdef double* yt
    cdef double m, v, total, inv, loglik = 0.0, a, z, nll
    cdef bint bad = False

    # Emissions: softmax of the logits (or exp of the log-probabilities).
    for t in range(Tn):
        yt = y + t * C
        if logits:
            m = -INFINITY
            for c in range(C):
                v = _x(xi, st, sc, t, c)
                if v > m:
                    m = v
            if not (fabs(m) < INFINITY):       # an infinite or NaN frame (NaN: every
                fallback[0] = True             # comparison false, m stays -inf)
                return 0.0
            total = 0.0
            for c in range(C):
                v = _x(xi, st, sc, t, c)
                if v != v:
                    fallback[0] = True
                    return 0.0
                yt[c] = exp(v - m)
                total += yt[c]
            inv = 1.0 / total
            for c in range(C):
                yt[c] = yt[c] * inv
                # a log-probability below about -693: its probability is not normal
                bad |= yt[c] < _TINY
        else:
            for c in range(C):
                v = _x(xi, st, sc, t, c)
                if not (v < INFINITY):         # NaN or +inf
                    fallback[0] = True
                    return 0.0
                yt[c] = exp(v)
                bad |= (yt[c] < _TINY) & (v > -INFINITY)
    if bad:
        fallback[0] = True
        return 0.0

    # Forward over the band of _sequence, each frame divided by its sum.
    for t in range(Tn):
        cur = alpha + (t * S if write_grad else (t & 1) * S)
        yt = y + t * C
        lo = _band_lo(S, Tn, t)
        hi = _band_hi(S, t)
        for s in range(lo):
            cur[s] = 0.0
        for s in range(hi + 1, S):
            cur[s] = 0.0
        total = 0.0
        for s in range(lo, hi + 1):
            if t == 0:
                a = 1.0
            elif s & 1 and _skip(lab, s):
                a = prev[s] + prev[s - 1] + prev[s - 2]
            elif s > 0:
                a = prev[s] + prev[s - 1]
            else:
                a = prev[s]
            v = a * yt[_ext(lab, s, blank)]
            bad |= (v < _TINY) & (a > 0.0) & (yt[_ext(lab, s, blank)] > 0.0)
            cur[s] = v
            total += v
        if bad:
            fallback[0] = True
            return 0.0
        if total == 0.0:                       # no alignment fits
            return _no_alignment(Tn, C, zero_infinity, gi, write_grad)
        inv = 1.0 / total
        for s in range(lo, hi + 1):
            cur[s] = cur[s] * inv
        loglik += log(total)
        prev = cur
    z = prev[S - 1] + (prev[S - 2] if L > 0 else 0.0)
    if z == 0.0:
        return _no_alignment(Tn, C, zero_infinity, gi, write_grad)
    nll = -(loglik + log(z))
    if not write_grad:
        return nll

    # Backward: beta as in _sequence, each frame divided by its sum; the occupancy of a
    # frame is alpha beta over its own sum (every alignment passes one state per frame).
    for s in range(S):
        bcur[s] = 0.0
    bcur[S - 1] = 1.0
    if L > 0:
        bcur[S - 2] = 1.0
    t = Tn - 1
    while True:
        cur = alpha + t * S
        yt = y + t * C
        lo = _band_lo(S, Tn, t)
        hi = _band_hi(S, t)
        for c in range(C):
            gam[c] = 0.0
        z = 0.0
        for s in range(lo, hi + 1):
            v = cur[s] * bcur[s]
            gam[_ext(lab, s, blank)] += v
            z += v
        if not (z >= _TINY):
            fallback[0] = True
            return 0.0
        inv = 1.0 / z
        for c in range(C):
            if logits:
                gi[t * C + c] = <floating>(gs * (yt[c] - gam[c] * inv))
            else:
                gi[t * C + c] = <floating>(-gs * (gam[c] * inv))
        if t == 0:
            break
        # beta[t-1, s] = sum over s' in {s, s+1, s+2 if skip} of beta[t, s'] y[t, ext_s'].
        for s in range(lo, hi + 1):
            v = bcur[s] * yt[_ext(lab, s, blank)]
            bad |= (v < _TINY) & (bcur[s] > 0.0) & (yt[_ext(lab, s, blank)] > 0.0)
            bcur[s] = v
        tmp = bnext
        bnext = bcur
        bcur = tmp
        lo = _band_lo(S, Tn, t - 1)
        hi = _band_hi(S, t - 1)
        for s in range(lo):
            bcur[s] = 0.0
        for s in range(hi + 1, S):
            bcur[s] = 0.0
        total = 0.0
        for s in range(lo, hi + 1):
            if s + 2 < S and _skip(lab, s + 2):
                v = bnext[s] + bnext[s + 1] + bnext[s + 2]
            elif s + 1 < S:
                v = bnext[s] + bnext[s + 1]
            else:
                v = bnext[s]
            bcur[s] = v
            total += v
        if bad or not (total > 0.0):
            fallback[0] = True
            return 0.0
        inv = 1.0 / total
        for s in range(lo, hi + 1):
            bcur[s] = bcur[s] * inv
        t -= 1
    return nll


cdef double _sequence_any(
    const floating* xi, Py_ssize_t st, Py_ssize_t sc, Py_ssize_t Tn, Py_ssize_t T,
    Py_ssize_t C, const int64_t* lab, Py_ssize_t L, int64_t blank, bint logits,
    bint zero_infinity, double gs, double* work, floating* gi, bint write_grad,
) noexcept nogil:
    # The scaled form where it holds, else the log-space one.
    cdef bint fallback = False
    cdef double nll
    cdef Py_ssize_t t
    if Tn > 0:
        nll = _sequence_scaled(xi, st, sc, Tn, T, C, lab, L, blank, logits, zero_infinity,
                               gs, work, gi, write_grad, &fallback)
        if not fallback:
            if write_grad:
                for t in range(Tn * C, T * C):   # frames past the sequence's length
                    gi[t] = 0
            return nll
    return _sequence(xi, st, sc, Tn, T, C, lab, L, blank, logits, zero_infinity, gs, work,
                     gi, write_grad)


def workspace_size(Py_ssize_t T, Py_ssize_t C, Py_ssize_t max_label, bint write_grad):
    """Doubles of workspace one thread needs for sequences of at most T frames and
    max_label labels."""
    cdef Py_ssize_t S = 2 * max_label + 1
    # the larger of _sequence's (T lse values) and _sequence_scaled's (T * C emissions)
    return T * (C if C > 1 else 1) + C + 2 * S + (T * S if write_grad else 2 * S)


def ctc_loop(
    const floating[:, :, :] x, const int64_t[::1] labels, const int64_t[::1] offsets,
    const int64_t[::1] label_length, const int64_t[::1] logit_length, int64_t blank,
    bint logits, bint zero_infinity, const double[::1] grad_scale, double[::1] nll,
    floating[:, :, ::1] grad, bint write_grad, double[:, ::1] work, int n_threads,
):
    """Per-sequence negative log-likelihoods into ``nll`` and, with ``write_grad``,
    ``grad_scale[i] * d nll_i / d x[i]`` into ``grad``. The caller has checked every
    label, length and size (see ``_sequence.py``)."""
    cdef Py_ssize_t n = x.shape[0], T = x.shape[1], C = x.shape[2]
    cdef Py_ssize_t s0 = x.strides[0], st = x.strides[1], sc = x.strides[2]
    cdef Py_ssize_t i, wsize = work.shape[1]
    cdef int team = n_threads if n_threads > 0 else 1
    cdef const floating* xb = NULL
    cdef floating* gb = NULL
    cdef double* wb = &work[0, 0]
    # Invariants the caller establishes; checked again because the loop has no bounds
    # checks.
    if (labels.shape[0] < 1 or offsets.shape[0] != n or label_length.shape[0] != n
            or logit_length.shape[0] != n or nll.shape[0] != n
            or grad_scale.shape[0] != n or work.shape[0] < team
            or (write_grad and (grad.shape[0] != n or grad.shape[1] != T
                                or grad.shape[2] != C))):
        raise ValueError("cyloss internal error: ctc_loop arguments disagree")
    if n == 0:
        return
    cdef int64_t longest = 0
    for i in range(n):
        if label_length[i] > longest:
            longest = label_length[i]
    if wsize < workspace_size(T, C, longest, write_grad):
        raise ValueError("cyloss internal error: ctc_loop workspace too small")
    if T > 0 and C > 0:
        xb = &x[0, 0, 0]
        if write_grad:
            gb = &grad[0, 0, 0]
    for i in prange(n, nogil=True, num_threads=team, schedule="dynamic", chunksize=1):
        nll[i] = _sequence_any(
            <const floating*>((<const char*>xb) + i * s0), st, sc, logit_length[i], T, C,
            &labels[0] + offsets[i], label_length[i], blank, logits, zero_infinity,
            grad_scale[i], wb + threadid() * wsize,
            gb + i * T * C if write_grad else gb, write_grad,
        )
