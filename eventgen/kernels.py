"""Private numba kernels of the density buffer (see :mod:`eventgen.buffer`), the refiner and the
physics features (:func:`eventgen.observables.physics_table`).

The kernels hold no Python objects and draw no random numbers: the caller draws the
component indices and the standard-normal noise from position-keyed NumPy streams, so
every kernel is a deterministic function of its inputs, whatever the thread count.

The sampling, tree and physics kernels are serial and release the GIL (``nogil=True``):
generation runs them on disjoint blocks of the output from several Python threads (the buffer's
straight after drawing its block's noise, while the block is still in cache). They must not use
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


@njit(cache=True, nogil=True)
def _four_vector(
    events: np.ndarray, r: int, cols: np.ndarray, i: int, p: np.ndarray
) -> bool:  # pragma: no cover
    """``p[:] = (E, px, py, pz)`` of object ``cols[i] = (e, pt, eta, phi)`` in row ``r`` (zero when
    absent, pT <= 0); whether it is present."""
    pt = np.float64(events[r, cols[i, 1]])
    if not pt > 0:
        p[:] = 0.0
        return False
    phi, eta = np.float64(events[r, cols[i, 3]]), np.float64(events[r, cols[i, 2]])
    p[0] = np.float64(events[r, cols[i, 0]])
    p[1] = pt * math.cos(phi)
    p[2] = pt * math.sin(phi)
    p[3] = pt * math.sinh(eta)
    return True


@njit(cache=True, nogil=True)
def _sum_mass(p: np.ndarray, q: np.ndarray, a: int, b: int, c: int, d: int) -> float:  # pragma: no cover
    """The mass of ``p[a]``, plus ``p[b]`` (b >= 0), plus ``q[c]`` (c >= 0), plus ``p[d]`` (d >= 0),
    summed in that order."""
    m2 = 0.0
    for t in range(4):
        x = p[a, t]
        if b >= 0:
            x += p[b, t]
        if c >= 0:
            x += q[c, t]
        if d >= 0:
            x += p[d, t]
        m2 += x * x if t == 0 else -x * x
    return math.sqrt(max(m2, 0.0))


@njit(cache=True, nogil=True)
def physics_rows(
    events: np.ndarray,
    objects: np.ndarray,
    pairs: np.ndarray,
    jets: np.ndarray,
    jet_pt: np.ndarray,
    leptons: np.ndarray,
    derived_at: np.ndarray,
    top_mass: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The physics features of every row of ``events`` ``(n, c)`` into ``out`` ``(n, f)`` float64.

    ``out[:, :c]`` the columns; then each object's mass, ``objects`` ``(k, 4)`` holding the
    (E, pT, η, φ) column indices of each; then the ΔR of each of ``pairs`` ``(q, 2)`` (indices
    into ``objects``); NaN where an object is absent (pT <= 0). The derived observables go to
    the columns ``derived_at`` ``(6,)`` names (-1: not asked for), in the order m_jj, m_jjj
    (the three of the leading four ``jets`` whose mass is closest to ``top_mass``), m_4j, H_T
    (over the pT columns ``jet_pt``), m_lj, m_ll; ``jets`` and ``leptons`` ``(·, 4)`` are the
    families' column indices, empty where a family lacks E, η or φ.
    """
    n, c = events.shape
    k = objects.shape[0]
    nan = math.nan
    pj = np.zeros((max(jets.shape[0], 1), 4))
    on = np.zeros(max(jets.shape[0], 1), np.bool_)
    pl = np.zeros((2, 4))
    for r in range(n):
        for j in range(c):
            out[r, j] = events[r, j]
        for i in range(k):
            e, pt = np.float64(events[r, objects[i, 0]]), np.float64(events[r, objects[i, 1]])
            if pt > 0:
                pz = pt * math.cosh(np.float64(events[r, objects[i, 2]]))
                out[r, c + i] = math.sqrt(max(e * e - pz * pz, 0.0))
            else:
                out[r, c + i] = nan
        for q in range(pairs.shape[0]):
            oa, ob = objects[pairs[q, 0]], objects[pairs[q, 1]]
            if events[r, oa[1]] > 0 and events[r, ob[1]] > 0:
                deta = np.float64(events[r, oa[2]]) - np.float64(events[r, ob[2]])
                dphi = np.float64(events[r, oa[3]]) - np.float64(events[r, ob[3]]) + math.pi
                dphi = dphi - 2 * math.pi * math.floor(dphi / (2 * math.pi)) - math.pi
                out[r, c + k + q] = math.hypot(deta, dphi)
            else:
                out[r, c + k + q] = nan
        nj = jets.shape[0]
        for i in range(nj):
            on[i] = _four_vector(events, r, jets, i, pj[i])
        nl = min(leptons.shape[0], 2)
        lep0 = lep1 = False
        if nl >= 1:
            lep0 = _four_vector(events, r, leptons, 0, pl[0])
        if nl >= 2:
            lep1 = _four_vector(events, r, leptons, 1, pl[1])
        if derived_at[0] >= 0:
            out[r, derived_at[0]] = _sum_mass(pj, pl, 0, 1, -1, -1) if on[0] and on[1] else nan
        if derived_at[1] >= 0:
            best, chosen = math.inf, nan
            m4 = min(nj, 4)
            for a in range(m4):
                for b in range(a + 1, m4):
                    for d in range(b + 1, m4):
                        if on[a] and on[b] and on[d]:
                            m = _sum_mass(pj, pl, a, b, -1, d)
                            if abs(m - top_mass) < best:
                                best, chosen = abs(m - top_mass), m
            out[r, derived_at[1]] = chosen
        if derived_at[2] >= 0:
            full = on[0] and on[1] and on[2] and on[3]
            out[r, derived_at[2]] = _sum_mass(pj, pj, 0, 1, 2, 3) if full else nan
        if derived_at[3] >= 0:
            ht = 0.0
            for i in range(jet_pt.shape[0]):
                ht += max(np.float64(events[r, jet_pt[i]]), 0.0)
            out[r, derived_at[3]] = ht
        if derived_at[4] >= 0:
            out[r, derived_at[4]] = _sum_mass(pj, pl, 0, -1, 0, -1) if on[0] and lep0 else nan
        if derived_at[5] >= 0:
            out[r, derived_at[5]] = _sum_mass(pl, pl, 0, 1, -1, -1) if lep0 and lep1 else nan
