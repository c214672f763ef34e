"""The density buffer: the latent Gaussians of the training events, sampled as a mixture.

After training, every training event i is encoded once to a diagonal Gaussian
``N(mu_i, sigma_i^2)`` in latent space. :class:`DensityBuffer` keeps these N components and
samples new latent points from them (``mode``):

``"buffer"``  pick a component i, ``z = mu_i + (alpha * sigma_i + gamma) * eps``, ``eps ~ N(0, I)``
``"kde"``     pick i, ``z = mu_i + h * eps`` with a per-dimension bandwidth ``h_`` (Scott / Silverman / given)
``"gmm"``     a K-component full-covariance mixture fitted on the mu_i, ``z = m_k + L_k @ eps``
``"prior"``   ``z ~ N(0, I)``, the plain VAE (a baseline)

Components are picked (``selection``, modes buffer and kde) uniformly, stratified (every
component used floor(n/N) or ceil(n/N) times among the first n events, in a freshly
shuffled order on every pass over the buffer, as the prior art's ``i mod N`` but never
grouped by component) or in proportion to per-event ``weights``; the weighted draw returns
a compensating weight ``mean(weights) / weights_i`` per event, so weighted histograms
reproduce the unweighted mixture.

Determinism: event n of a run depends only on (fitted buffer, settings, seed, n). Events
are generated in fixed blocks of :data:`BLOCK`; block b draws its component indices and its
noise from its own stream ``SeedSequence([seed, 0, b])`` (PCG64DXSM), and stratified pass
group g shuffles from ``SeedSequence([seed, 1, g])``. Blocks are filled by a serial numba
kernel from ``n_threads`` Python threads (NumPy's generators and the kernels release the
GIL), each block writing its own rows, so the output is bit-identical for any split of
the run into calls of :meth:`DensityBuffer.sample_range` and any thread count.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from typing import Any, Literal, TypeVar, get_args

import numba
import numpy as np

from eventgen import kernels
from eventgen.errors import BundleError, ConfigError, EventgenError, InputError

Mode = Literal["buffer", "kde", "gmm", "prior"]
Selection = Literal["uniform", "stratified", "weighted"]
BandwidthRule = Literal["scott", "silverman"]
MODES: tuple[str, ...] = get_args(Mode)
SELECTIONS: tuple[str, ...] = get_args(Selection)
BANDWIDTH_RULES: tuple[str, ...] = get_args(BandwidthRule)

BLOCK = 4096  # events per random stream; part of the output's definition, never change it
STATE_VERSION = 1
_BLOCK_STREAM = 0  # SeedSequence([seed, _BLOCK_STREAM, block]): indices and noise of a block
_PASS_STREAM = 1  # SeedSequence([seed, _PASS_STREAM, group]): stratified shuffles
_LOG_2PI = math.log(2.0 * math.pi)
_GMM_SCORE_VALUES = 1 << 22  # rows x components scored at once for mode="gmm"

D = TypeVar("D", bound="DensityBuffer")


class DensityBuffer:
    """Latent Gaussian mixture of the training events, sampled to generate new events.

    Follows the scikit-learn estimator contract: the arguments are hyperparameters,
    :meth:`fit` sets the trailing-underscore attributes and returns ``self``.

    Fitted attributes: ``mu_`` and ``sigma_`` ``(n_buffer, n_latent)`` float32; with
    weights, ``weights_`` ``(n_buffer,)`` float64; mode kde ``h_`` ``(n_latent,)``; mode gmm
    ``gmm_weights_`` ``(K,)``, ``gmm_means_`` ``(K, n_latent)``, ``gmm_chol_``
    ``(K, n_latent, n_latent)`` (lower Cholesky factors of the covariances), float64.
    """

    def __init__(
        self,
        mode: Mode = "buffer",
        alpha: float = 1.0,
        gamma: float = 0.05,
        bandwidth: float | BandwidthRule = "scott",
        n_components: int = 100,
        selection: Selection = "uniform",
        weights: np.ndarray | None = None,
    ) -> None:
        # ``weights`` are kept with any selection (a bundle stores them for later runs) and
        # used by selection="weighted" only.
        self.mode = mode
        self.alpha = alpha
        self.gamma = gamma
        self.bandwidth = bandwidth
        self.n_components = n_components
        self.selection = selection
        self.weights = weights
        self._check_params()

    # ------------------------------------------------------------------ fitting

    def fit(self: D, mu: np.ndarray, sigma: np.ndarray, seed: int = 0) -> D:
        """Store the buffer ``mu``, ``sigma`` of shape ``(n_buffer, n_latent)`` and fit the mode's extras.

        ``seed`` seeds the GaussianMixture of mode gmm (the only random part of fitting).
        """
        self._check_params()
        mu = _check_matrix(mu, "mu")
        sigma = _check_matrix(sigma, "sigma")
        if mu.shape != sigma.shape:
            raise InputError(
                f"mu has shape {mu.shape} but sigma has shape {sigma.shape}; pass the encoder's mean and "
                "standard deviation of the same events, both (n_events, n_latent)"
            )
        if np.any(sigma <= 0):
            raise InputError(
                "sigma has entries <= 0; pass standard deviations (exp(0.5 * log_var)), not log-variances"
            )
        n = mu.shape[0]
        weights = None if self.weights is None else _check_weights(self.weights, n)
        for name in ("h_", "gmm_weights_", "gmm_means_", "gmm_chol_", "weights_"):
            self.__dict__.pop(name, None)
        self.mu_, self.sigma_ = mu, sigma
        if weights is not None:
            self.weights_ = weights
        if self.mode == "kde":
            self.h_ = _bandwidth(mu, self.bandwidth)
        elif self.mode == "gmm":
            self._fit_gmm(mu, _check_seed(seed))
        self._prepare()
        return self

    def _fit_gmm(self, mu: np.ndarray, seed: int) -> None:
        from sklearn.mixture import GaussianMixture

        if self.n_components > mu.shape[0]:
            raise InputError(
                f"n_components={self.n_components} exceeds the {mu.shape[0]} buffer events; "
                "lower n_components or encode more events"
            )
        gm = GaussianMixture(self.n_components, covariance_type="full", random_state=seed)
        gm.fit(mu.astype(np.float64))
        self.gmm_weights_ = np.asarray(gm.weights_, dtype=np.float64)
        self.gmm_means_ = np.asarray(gm.means_, dtype=np.float64)
        self.gmm_chol_ = np.linalg.cholesky(np.asarray(gm.covariances_, dtype=np.float64))

    def _prepare(self) -> None:
        """Derived arrays for drawing components: alias table and compensating weights."""
        self._alias: tuple[np.ndarray, np.ndarray] | None = None
        self._compensate: np.ndarray | None = None
        if self.mode == "gmm":
            self._alias = kernels.alias_table(self.gmm_weights_)
        elif self.mode in ("buffer", "kde") and self.selection == "weighted":
            weights = self.weights_
            self._alias = kernels.alias_table(weights)
            with np.errstate(divide="ignore"):
                self._compensate = (weights.mean() / weights).astype(np.float32)  # inf only where never drawn
        self._prepared_for = (self.mode, self.selection)

    # ----------------------------------------------------------------- sampling

    def sample_range(
        self,
        start: int,
        stop: int,
        seed: int,
        out: np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Latent points of events ``start .. stop-1`` of the run with ``seed``.

        Returns ``z`` of shape ``(stop - start, n_latent)`` float32 (written into ``out`` when
        given) and the compensating event weights ``(stop - start,)`` float32 for
        ``selection="weighted"`` (else None). The result does not depend on how a run is split
        into calls nor on ``n_threads`` (default: ``numba.get_num_threads()``).
        """
        self._check_sampling()
        start, stop, seed = _check_index(start, "start"), _check_index(stop, "stop"), _check_seed(seed)
        if stop < start:
            raise InputError(f"stop={stop} is before start={start}; pass start <= stop")
        n, d = stop - start, self.mu_.shape[1]
        if out is None:
            out = np.empty((n, d), dtype=np.float32)
        elif out.shape != (n, d) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise InputError(
                f"out has shape {out.shape} and dtype {out.dtype}; pass a C-contiguous float32 array "
                f"of shape {(n, d)} or out=None"
            )
        weights = np.empty(n, dtype=np.float32) if self._compensate is not None else None
        if n == 0:
            return out, weights
        first, last = start // BLOCK, -(-stop // BLOCK)
        blocks = np.arange(first, last)
        n_threads = numba.get_num_threads() if n_threads is None else max(1, int(n_threads))

        def run(part: np.ndarray) -> None:
            passes: dict[int, np.ndarray] = {}
            for b in part.tolist():
                lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
                rows = slice(lo - start, hi - start)
                w_rows = None if weights is None else weights[rows]
                self._fill_block(seed, b, lo - b * BLOCK, hi - b * BLOCK, out[rows], w_rows, passes)

        if n_threads == 1 or len(blocks) <= 1:
            run(blocks)
        else:
            parts = np.array_split(blocks, min(len(blocks), 4 * n_threads))
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(run, parts))
        return out, weights

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` latent points ``(n, n_latent)`` float32, the events ``0 .. n-1`` of one run.

        An int ``rng`` is the run's seed (``sample(n, s)`` equals ``sample_range(0, n, s)[0]``);
        a Generator gives a seed drawn from it; None takes fresh entropy. For weighted
        selection use :meth:`sample_range`, which also returns the compensating weights.
        """
        if isinstance(rng, np.random.Generator):
            seed = int(rng.integers(0, 2**63))
        elif rng is None:
            seed = int(np.random.default_rng().integers(0, 2**63))
        else:
            seed = _check_seed(rng)
        return self.sample_range(0, _check_index(n, "n"), seed)[0]

    def _fill_block(
        self,
        seed: int,
        block: int,
        lo: int,
        hi: int,
        out: np.ndarray,
        weights: np.ndarray | None,
        passes: dict[int, np.ndarray],
    ) -> None:
        """Rows ``lo .. hi-1`` of block ``block`` into ``out`` ``(hi - lo, n_latent)``."""
        gen = _stream(seed, _BLOCK_STREAM, block)
        idx = self._block_indices(gen, seed, block, passes)
        if lo == 0:
            gen.standard_normal(out=out, dtype=np.float32)
        else:  # the noise stream starts at the block's first event: draw and drop the rows before lo
            noise = np.empty((hi, out.shape[1]), dtype=np.float32)
            gen.standard_normal(out=noise, dtype=np.float32)
            out[:] = noise[lo:]
        if idx is None:
            return
        idx = idx[lo:hi]
        if self.mode == "buffer":
            kernels.gather_fma(self.mu_, self.sigma_, float(self.alpha), float(self.gamma), idx, out)
        elif self.mode == "kde":
            kernels.gather_fma(self.mu_, self.h_[None, :], 1.0, 0.0, idx, out)
        else:
            kernels.gather_gaussian(self.gmm_means_, self.gmm_chol_, idx, out)
        if weights is not None:
            np.take(self._compensate, idx, out=weights)

    def _block_indices(
        self, gen: np.random.Generator, seed: int, block: int, passes: dict[int, np.ndarray]
    ) -> np.ndarray | None:
        """Component index of every event of a block ``(BLOCK,)`` int64; None for mode prior."""
        if self.mode == "prior":
            return None
        if self._alias is not None:  # weighted buffer/kde or gmm
            idx = np.empty(BLOCK, dtype=np.int64)
            kernels.alias_draw(gen.random(BLOCK), *self._alias, idx)
            return idx
        n_buffer = self.mu_.shape[0]
        if self.selection == "uniform":
            return gen.integers(0, n_buffer, size=BLOCK)
        return self._stratified(seed, block * BLOCK, passes)

    def _stratified(self, seed: int, first: int, passes: dict[int, np.ndarray]) -> np.ndarray:
        """Stratified component indices of events ``first .. first+BLOCK-1`` ``(BLOCK,)``.

        Pass p over the buffer (events p*N .. p*N+N-1) uses a random permutation of the
        components. Passes are shuffled in groups of ``ceil(BLOCK / N)`` from one stream per
        group, so small buffers do not cost one generator per pass; ``passes`` caches groups.
        """
        n_buffer = self.mu_.shape[0]
        per_group = -(-BLOCK // n_buffer)
        size = per_group * n_buffer
        idx = np.empty(BLOCK, dtype=np.int64)
        pos = first
        while pos < first + BLOCK:
            group = pos // size
            if group not in passes:
                passes.clear()
                gen = _stream(seed, _PASS_STREAM, group)
                order = np.tile(np.arange(n_buffer, dtype=np.int64), (per_group, 1))
                passes[group] = gen.permuted(order, axis=1).ravel()
            offset = pos - group * size
            take = min(size - offset, first + BLOCK - pos)
            idx[pos - first : pos - first + take] = passes[group][offset : offset + take]
            pos += take
        return idx

    # ------------------------------------------------------------------ density

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        """Log-density ``(m,)`` float64 of the mode's distribution at the rows of ``z`` ``(m, n_latent)``.

        Modes buffer and kde score the equal-weight mixture (also with weighted selection:
        that is the distribution the compensating weights reproduce). Memory is O(m + N).
        """
        self._check_sampling()
        z = _check_matrix(z, "z", dtype=np.float64)
        d = self.mu_.shape[1]
        if z.shape[1] != d:
            raise InputError(
                f"z has {z.shape[1]} columns but the buffer's latent space has {d}; pass (m, {d})"
            )
        if self.mode == "prior":
            return -0.5 * np.einsum("ij,ij->i", z, z) - 0.5 * d * _LOG_2PI
        if self.mode == "gmm":
            return self._gmm_logpdf(z)
        if self.mode == "buffer":
            scale = self.alpha * self.sigma_.astype(np.float64) + self.gamma
        else:
            scale = self.h_[None, :]
        if np.any(scale <= 0):
            raise ConfigError(
                "alpha=0 and gamma=0 make every component a point mass; use alpha > 0 or gamma > 0"
            )
        n_buffer = self.mu_.shape[0]
        log_norm = np.broadcast_to(-np.log(scale).sum(axis=1), (n_buffer,))
        log_norm = log_norm - 0.5 * d * _LOG_2PI - math.log(n_buffer)
        out = np.empty(z.shape[0], dtype=np.float64)
        kernels.diag_mixture_logpdf(z, self.mu_.astype(np.float64), 1.0 / scale, log_norm, out)
        return out

    def _gmm_logpdf(self, z: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular
        from scipy.special import logsumexp

        k_total, d = self.gmm_means_.shape
        log_const = (
            np.log(self.gmm_weights_)
            - np.log(np.diagonal(self.gmm_chol_, axis1=1, axis2=2)).sum(axis=1)
            - 0.5 * d * _LOG_2PI
        )
        out = np.empty(z.shape[0], dtype=np.float64)
        step = max(1, _GMM_SCORE_VALUES // k_total)
        for lo in range(0, z.shape[0], step):
            chunk = z[lo : lo + step]
            comp = np.empty((chunk.shape[0], k_total))
            for k in range(k_total):
                y = solve_triangular(self.gmm_chol_[k], (chunk - self.gmm_means_[k]).T, lower=True)
                comp[:, k] = log_const[k] - 0.5 * np.einsum("ij,ij->j", y, y)
            out[lo : lo + step] = logsumexp(comp, axis=1)
        return out

    # ------------------------------------------------------------ state, stats

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as plain JSON-able values (``weights``, an array, is in :meth:`get_state`)."""
        return {
            "mode": self.mode,
            "alpha": float(self.alpha),
            "gamma": float(self.gamma),
            "bandwidth": self.bandwidth if isinstance(self.bandwidth, str) else float(self.bandwidth),
            "n_components": int(self.n_components),
            "selection": self.selection,
        }

    def get_state(self) -> dict[str, np.ndarray]:
        """Hyperparameters (0-d arrays) and fitted arrays, storable in an ``.npz`` without pickle."""
        self._check_fitted("get_state")
        state = {key: np.asarray(value) for key, value in self.get_params().items()}
        state["state_version"] = np.asarray(STATE_VERSION)
        for name in ("mu_", "sigma_", "weights_", "h_", "gmm_weights_", "gmm_means_", "gmm_chol_"):
            if name in self.__dict__:
                state[name.rstrip("_")] = getattr(self, name).copy()
        return state

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> DensityBuffer:
        """Rebuild a fitted buffer from :meth:`get_state`'s dict (e.g. loaded from an ``.npz``)."""
        try:
            if int(state["state_version"]) != STATE_VERSION:
                raise BundleError(
                    f"buffer state version {int(state['state_version'])} is not {STATE_VERSION}; "
                    "fit the bundle again with this eventgen"
                )
            bandwidth = state["bandwidth"]
            self = cls(
                mode=str(state["mode"]),
                alpha=float(state["alpha"]),
                gamma=float(state["gamma"]),
                bandwidth=str(bandwidth) if bandwidth.dtype.kind == "U" else float(bandwidth),
                n_components=int(state["n_components"]),
                selection=str(state["selection"]),
                weights=state.get("weights"),
            )
            self.mu_ = _check_matrix(state["mu"], "mu")
            self.sigma_ = _check_matrix(state["sigma"], "sigma")
            if self.weights is not None:
                self.weights_ = _check_weights(self.weights, self.mu_.shape[0])
            if self.mode == "kde":
                self.h_ = np.asarray(state["h"], dtype=np.float64)
            if self.mode == "gmm":
                self.gmm_weights_ = np.asarray(state["gmm_weights"], dtype=np.float64)
                self.gmm_means_ = np.asarray(state["gmm_means"], dtype=np.float64)
                self.gmm_chol_ = np.asarray(state["gmm_chol"], dtype=np.float64)
        except KeyError as exc:
            raise BundleError(f"buffer state lacks {exc.args[0]!r}; fit the bundle again") from None
        except (ConfigError, InputError) as exc:
            raise BundleError(f"buffer state is invalid ({exc}); fit the bundle again") from None
        self._prepare()
        return self

    def with_params(self, seed: int = 0, **changes: Any) -> DensityBuffer:
        """A copy sharing ``mu_``/``sigma_`` with hyperparameters replaced (e.g. ``mode``, ``alpha``).

        Cheap when only α, γ or the selection change; a new ``kde`` bandwidth or ``gmm`` mixture
        is fitted when the mode or its settings change (``seed`` seeds the mixture fit).
        """
        self._check_fitted("with_params")
        params = {**self.get_params(), "weights": self.weights, **changes}
        unchanged = all(params[k] == v for k, v in self.get_params().items() if k not in ("alpha", "gamma"))
        if not unchanged:
            return DensityBuffer(**params).fit(self.mu_, self.sigma_, seed=seed)
        state = self.get_state()
        state.update({k: np.asarray(v) for k, v in changes.items() if k in ("alpha", "gamma")})
        return DensityBuffer.from_state(state)

    def latent_stats(self) -> dict[str, float]:
        """The seed talk's β-table numbers: average latent variance mean(σ²) and average |μ|."""
        self._check_fitted("latent_stats")
        sigma = self.sigma_.astype(np.float64)
        return {
            "avg_variance": float(np.mean(sigma * sigma)),
            "avg_abs_mean": float(np.mean(np.abs(self.mu_.astype(np.float64)))),
        }

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is unknown; choose one of {', '.join(MODES)}")
        if self.selection not in SELECTIONS:
            raise ConfigError(
                f"selection={self.selection!r} is unknown; choose one of {', '.join(SELECTIONS)}"
            )
        for name in ("alpha", "gamma"):
            value = getattr(self, name)
            if not isinstance(value, Real) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value!r} is invalid; pass a finite number >= 0")
        bw = self.bandwidth
        if isinstance(bw, str):
            if bw not in BANDWIDTH_RULES:
                raise ConfigError(
                    f"bandwidth={bw!r} is unknown; choose one of {', '.join(BANDWIDTH_RULES)} or a number > 0"
                )
        elif not isinstance(bw, Real) or not math.isfinite(bw) or bw <= 0:
            raise ConfigError(
                f"bandwidth={bw!r} is invalid; pass a number > 0 or one of {', '.join(BANDWIDTH_RULES)}"
            )
        if not isinstance(self.n_components, Integral) or self.n_components < 1:
            raise ConfigError(f"n_components={self.n_components!r} is invalid; pass an integer >= 1")
        if self.selection != "uniform" and self.mode not in ("buffer", "kde"):
            raise ConfigError(
                f"selection={self.selection!r} applies to modes 'buffer' and 'kde' only; "
                f"use selection='uniform' with mode={self.mode!r}"
            )
        if self.selection == "weighted" and self.weights is None:
            raise ConfigError("selection='weighted' needs weights: pass weights=<array of shape (n_events,)>")

    def _check_fitted(self, what: str) -> None:
        if "mu_" not in self.__dict__:
            raise EventgenError(f"DensityBuffer.{what} needs a fitted buffer; call fit(mu, sigma) first")

    def _check_sampling(self) -> None:
        self._check_fitted("sampling")
        self._check_params()
        needs = {"kde": "h_", "gmm": "gmm_means_"}.get(self.mode)
        stale = needs is not None and needs not in self.__dict__
        if stale or (self.selection == "weighted" and "weights_" not in self.__dict__):
            raise EventgenError(
                f"the buffer was fitted with other settings than mode={self.mode!r}, "
                f"selection={self.selection!r}; call fit(mu, sigma) first"
            )
        if self.__dict__.get("_prepared_for") != (self.mode, self.selection):
            self._prepare()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"DensityBuffer({args})"


def _stream(seed: int, kind: int, index: int) -> np.random.Generator:
    """The random stream keyed by ``(seed, kind, index)``; blocks and passes never share one."""
    return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence([seed, kind, index])))


def _check_matrix(x: Any, name: str, dtype: type = np.float32) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or not np.issubdtype(x.dtype, np.number):
        raise InputError(
            f"{name} has shape {x.shape} and dtype {x.dtype}; pass a numeric (n_events, n_latent) array"
        )
    x = np.ascontiguousarray(x, dtype=dtype)
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} contains NaN or inf; check the encoder output (a diverged training?)")
    return x


def _check_weights(weights: Any, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise InputError(f"weights has shape {w.shape}; pass one weight per buffer event, shape ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError("weights must be finite, non-negative and have a positive sum; fix the weight array")
    return w


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid; pass an integer >= 0")
    return int(seed)


def _check_index(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise InputError(f"{name}={value!r} is invalid; pass an integer >= 0")
    return int(value)


def _bandwidth(mu: np.ndarray, bandwidth: float | str) -> np.ndarray:
    """Per-dimension KDE bandwidth ``(n_latent,)`` float64 by rule of thumb on ``mu``, or the given number."""
    n, d = mu.shape
    if not isinstance(bandwidth, str):
        return np.full(d, float(bandwidth))
    if n < 2:
        raise InputError("a bandwidth rule needs at least 2 buffer events; pass more or a numeric bandwidth")
    spread = mu.astype(np.float64).std(axis=0, ddof=1)
    if np.any(spread <= 0):
        raise InputError(
            f"mu is constant along latent dimension(s) {np.flatnonzero(spread <= 0).tolist()}, so the "
            f"{bandwidth!r} bandwidth is 0 there; pass a numeric bandwidth"
        )
    factor = n ** (-1.0 / (d + 4))
    if bandwidth == "silverman":
        factor *= (4.0 / (d + 2)) ** (1.0 / (d + 4))
    return spread * factor
