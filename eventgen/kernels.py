"""Private numba kernels of the density buffer (see :mod:`eventgen.buffer`) and the refiner.

The kernels hold no Python objects and draw no random numbers: the caller draws the
component indices and the standard-normal noise from position-keyed NumPy streams, so
every kernel is a deterministic function of its inputs, whatever the thread count.

The sampling kernels are serial and release the GIL (``nogil=True``): the buffer runs
them on disjoint blocks of the output from several Python threads, each straight after
drawing its block's noise, while the block is still in cache. They must not use
``prange``: numba's default workqueue threading layer refuses concurrent parallel calls.
The scoring kernel is called from one thread and is parallel over query points.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_LOG_2PI = float(np.log(2.0 * np.pi))


@njit(cache=True, nogil=True)
def gather_fma(
    mu: np.ndarray, scale: np.ndarray, alpha: float, gamma: float, idx: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """In place ``out[j] = mu[idx[j]] + (alpha * scale[idx[j]] + gamma) * out[j]``.

    ``mu`` is ``(n_components, d)``, ``scale`` is ``(n_components, d)`` or ``(1, d)`` (one
    shared row, as for a KDE bandwidth), ``idx`` is ``(n_rows,)`` and ``out`` is
    ``(n_rows, d)`` holding standard-normal noise on entry and the samples on exit.
    """
    n, d = out.shape
    shared = scale.shape[0] == 1
    for j in range(n):
        i = idx[j]
        si = 0 if shared else i
        for k in range(d):
            out[j, k] = mu[i, k] + (alpha * scale[si, k] + gamma) * out[j, k]


@njit(cache=True, nogil=True)
def gather_gaussian(
    means: np.ndarray, chol: np.ndarray, idx: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """In place ``out[j] = means[idx[j]] + chol[idx[j]] @ out[j]`` (full-covariance mixture).

    ``means`` is ``(K, d)``, ``chol`` is ``(K, d, d)`` lower-triangular Cholesky factors of
    the covariances, ``idx`` is ``(n_rows,)``, ``out`` is ``(n_rows, d)`` (noise on entry).
    """
    n, d = out.shape
    eps = np.empty(d, dtype=np.float64)
    for j in range(n):
        c = idx[j]
        for k in range(d):
            eps[k] = out[j, k]
        for a in range(d):
            acc = means[c, a]
            for b in range(a + 1):
                acc += chol[c, a, b] * eps[b]
            out[j, a] = acc


@njit(cache=True, parallel=True)
def diag_mixture_logpdf(
    z: np.ndarray, mu: np.ndarray, inv_scale: np.ndarray, log_norm: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Log-density of an equal-weight diagonal Gaussian mixture at each row of ``z``.

    ``z`` is ``(m, d)``, ``mu`` is ``(N, d)``, ``inv_scale`` is ``(N, d)`` or ``(1, d)`` (one
    shared row) holding 1/std, ``log_norm`` is ``(N,)`` holding each component's
    ``log(weight) - sum(log std) - d/2 log(2 pi)``; writes ``out`` of shape ``(m,)``.
    The log-sum-exp over components is streamed (running maximum), so memory is O(m)
    whatever N is.
    """
    m, d = z.shape
    n = mu.shape[0]
    shared = inv_scale.shape[0] == 1
    for r in prange(m):
        best = -np.inf
        total = 0.0
        for i in range(n):
            si = 0 if shared else i
            q = 0.0
            for k in range(d):
                t = (z[r, k] - mu[i, k]) * inv_scale[si, k]
                q += t * t
            v = log_norm[i] - 0.5 * q
            if v == -np.inf:
                continue
            if v <= best:
                total += np.exp(v - best)
            else:
                total = total * np.exp(best - v) + 1.0
                best = v
        out[r] = best + np.log(total) if total > 0.0 else -np.inf


@njit(cache=True)
def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Walker/Vose alias table ``(prob, alias)``, both ``(n,)``, for drawing i with P(i) ∝ ``weights[i]``.

    Draw with :func:`alias_draw`. A zero weight gets ``prob = 0`` and a positive alias, so it
    is never drawn, also when rounding leaves entries over at the end.
    """
    n = weights.shape[0]
    scaled = weights * (n / weights.sum())
    prob = np.zeros(n, dtype=np.float64)
    alias = np.arange(n)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    n_small = 0
    n_large = 0
    fallback = 0
    for i in range(n):
        if weights[i] > 0:
            fallback = i
        if scaled[i] < 1.0:
            small[n_small] = i
            n_small += 1
        else:
            large[n_large] = i
            n_large += 1
    while n_small > 0 and n_large > 0:
        n_small -= 1
        s = small[n_small]
        g = large[n_large - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            n_large -= 1
            small[n_small] = g
            n_small += 1
    for k in range(n_large):
        prob[large[k]] = 1.0
    for k in range(n_small):  # left over by rounding: their true probability is ~1
        s = small[k]
        if weights[s] > 0:
            prob[s] = 1.0
        else:
            prob[s] = 0.0
            alias[s] = fallback
    return prob, alias


@njit(cache=True, nogil=True)
def alias_draw(
    u: np.ndarray, prob: np.ndarray, alias: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    """Categorical draws ``out`` ``(m,)`` from uniforms ``u`` ``(m,)`` in [0, 1) and an alias table."""
    n = prob.shape[0]
    for j in range(u.shape[0]):
        x = u[j] * n
        i = min(int(x), n - 1)
        out[j] = i if x - i < prob[i] else alias[i]


@njit(cache=True, nogil=True)
def spline_inverse(e: np.ndarray, y: np.ndarray, bound: float, out: np.ndarray) -> None:  # pragma: no cover
    """Inverse of monotonic rational-quadratic splines (Durkan et al. 2019): ``out[j, f] = s_jf^-1(y[j, f])``.

    Spline ``s_jf`` has K bins; ``e[j, f]`` ``(3K - 1,)`` holds its K unnormalised bin widths, K
    unnormalised bin heights and its K - 1 inner knot derivatives, all > 0 (zuko's
    ``MonotonicRQSTransform`` stores the exponentials of its squashed raw parameters: the
    widths and heights are their softmax, the derivatives at both ends are 1). ``e`` is
    ``(n_rows, n_features, 3K - 1)``, or ``(1, n_features, 3K - 1)`` for one spline per feature
    shared by every row; ``y`` and ``out`` are ``(n_rows, n_features)``. The spline maps
    ``[-bound, bound]`` onto itself and is the identity outside.
    """
    n, d = y.shape
    k_bins = (e.shape[2] + 1) // 3
    shared = e.shape[0] == 1
    for j in range(n):
        p = 0 if shared else j
        for f in range(d):
            yv = y[j, f]
            if not -bound < yv <= bound:
                out[j, f] = yv
                continue
            w_total = 0.0
            h_total = 0.0
            for b in range(k_bins):
                w_total += e[p, f, b]
                h_total += e[p, f, k_bins + b]
            # the bin k whose vertical knots (cumulative heights) hold y0 < yv <= y1
            k = 0
            w_acc = 0.0
            h_acc = 0.0
            y0 = -bound
            y1 = bound * (2.0 * e[p, f, k_bins] / h_total - 1.0)
            while yv > y1 and k < k_bins - 1:
                w_acc += e[p, f, k]
                h_acc += e[p, f, k_bins + k]
                k += 1
                y0 = y1
                y1 = bound * (2.0 * (h_acc + e[p, f, k_bins + k]) / h_total - 1.0)
            if k == k_bins - 1:
                y1 = bound
            x0 = bound * (2.0 * w_acc / w_total - 1.0)
            x1 = bound if k == k_bins - 1 else bound * (2.0 * (w_acc + e[p, f, k]) / w_total - 1.0)
            d0 = 1.0 if k == 0 else e[p, f, 2 * k_bins + k - 1]
            d1 = 1.0 if k == k_bins - 1 else e[p, f, 2 * k_bins + k]
            s = (y1 - y0) / (x1 - x0)
            dy = yv - y0
            a = (y1 - y0) * (s - d0) + dy * (d0 + d1 - 2.0 * s)
            b2 = (y1 - y0) * d0 - dy * (d0 + d1 - 2.0 * s)
            c = -s * dy
            z = 2.0 * c / (-b2 - np.sqrt(b2 * b2 - 4.0 * a * c))
            out[j, f] = x0 + z * (x1 - x0)


@njit(cache=True, nogil=True)
def tree_sum(
    x: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    value: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out[r] +=`` the leaf value of every tree at row ``r`` of ``x`` ``(m, k)`` (NaN = missing)."""
    for r in range(x.shape[0]):
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] >= 0:
                v = x[r, feature[node]]
                if math.isnan(v):
                    node = left[node] if missing_left[node] else right[node]
                elif v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            total += value[node]
        out[r] += total
