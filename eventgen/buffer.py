"""The density buffer: the latent Gaussians of the training events, sampled as a mixture.

After training, every training event i is encoded once to a diagonal Gaussian
``N(mu_i, sigma_i^2)`` in latent space. :class:`DensityBuffer` keeps these N components and
draws new latent points as its :class:`~eventgen.sampling.SamplingSettings` say: the mode
(buffer, kde, gmm, prior) is a latent distribution of :mod:`eventgen.components` fitted on
the buffer; the buffer itself picks the events of the modes that draw one event per sample.

Events are picked (``selection``) uniformly, stratified (every event used floor(n/N) or
ceil(n/N) times among the first n samples, in a freshly shuffled order on every pass over the
buffer, as the prior art's ``i mod N`` but never grouped by event) or in proportion to
per-event weights (``fit(..., sample_weight=w)``); the weighted draw returns a compensating
weight ``mean(w) / w_i`` per sample, so weighted histograms reproduce the unweighted mixture.

Determinism: sample n of a run depends only on (fitted buffer, settings, seed, n). Samples
are drawn in fixed blocks of :data:`BLOCK`; block b draws its events and then everything its
component needs (noise) from its own stream ``SeedSequence([seed, 0, b])`` (PCG64DXSM), and
stratified pass group g shuffles from ``SeedSequence([seed, 1, g])``. Blocks are filled by
serial numba kernels from ``n_threads`` Python threads (NumPy's generators and the kernels
release the GIL), each block writing its own rows, so the output is bit-identical for any
split of the run into calls of :meth:`DensityBuffer.sample_range` and any thread count.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from eventgen import kernels
from eventgen.components import BLOCK, COMPONENTS, Component
from eventgen.errors import BundleError, ConfigError, EventgenError, InputError
from eventgen.sampling import BUNDLE_MODES, SamplingSettings
from eventgen.validate import SavedState

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Self

STATE_VERSION = 2  # version 1 also stored the settings; its arrays are read the same way
_READABLE_STATES = (1, 2)
_BLOCK_STREAM = 0  # SeedSequence([seed, _BLOCK_STREAM, block]): events and noise of a block
_PASS_STREAM = 1  # SeedSequence([seed, _PASS_STREAM, group]): stratified shuffles
_DEFAULT_SETTINGS = SamplingSettings()


class DensityBuffer:
    """Latent Gaussian mixture of the training events, sampled to generate new events.

    Follows the scikit-learn estimator contract: ``settings`` (a
    :class:`~eventgen.sampling.SamplingSettings`) and ``seed`` (of the gmm mode's mixture fit)
    are stored as given; :meth:`fit` checks them, sets the trailing-underscore attributes and
    returns ``self``; ``get_params``/``set_params`` make ``sklearn.base.clone`` work.

    Fitted attributes: ``mu_`` and ``sigma_`` ``(n_buffer, n_latent)`` float32; ``weights_``
    ``(n_buffer,)`` float64 or None; ``component_``, the mode's fitted
    :class:`~eventgen.components.Component`.
    """

    def __init__(self, settings: SamplingSettings = _DEFAULT_SETTINGS, seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters, as passed to ``__init__``."""
        return {"settings": self.settings, "seed": self.seed}

    def set_params(self, **params: Any) -> Self:
        """Replace hyperparameters (fit again before sampling)."""
        for name, value in params.items():
            if name not in ("settings", "seed"):
                raise ConfigError(f"DensityBuffer has no parameter {name!r}; valid are ['settings', 'seed']")
            setattr(self, name, value)
        return self

    # ------------------------------------------------------------------ fitting

    def fit(self, mu: np.ndarray, sigma: np.ndarray, sample_weight: np.ndarray | None = None) -> Self:
        """Store the buffer ``mu``, ``sigma`` ``(n_buffer, n_latent)`` and fit the mode's distribution.

        ``sample_weight`` ``(n_buffer,)``: per-event weights for ``selection="weighted"`` (kept
        with any selection, so that a stored buffer can be sampled weighted later).
        """
        settings = _check_settings(self.settings)
        seed = _check_seed(self.seed)
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
        weights = None if sample_weight is None else _check_weights(sample_weight, mu.shape[0])
        _check_weighted(settings, weights)
        component = COMPONENTS[settings.mode].fit(settings, mu, sigma, seed)
        return self._set_fitted(settings, mu, sigma, weights, component)

    def _set_fitted(
        self,
        settings: SamplingSettings,
        mu: np.ndarray,
        sigma: np.ndarray,
        weights: np.ndarray | None,
        component: Component,
    ) -> Self:
        self.mu_, self.sigma_, self.weights_, self.component_ = mu, sigma, weights, component
        self._fitted_settings = settings
        self._alias: tuple[np.ndarray, np.ndarray] | None = None
        self._compensate: np.ndarray | None = None
        if settings.selection == "weighted":
            assert weights is not None
            self._alias = kernels.alias_table(weights)
            with np.errstate(divide="ignore"):
                self._compensate = (weights.mean() / weights).astype(np.float32)  # inf only where never drawn
        return self

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
        blocks = np.arange(start // BLOCK, -(-stop // BLOCK))
        n_threads = numba.get_num_threads() if n_threads is None else max(1, int(n_threads))

        def run(part: np.ndarray) -> None:
            passes: dict[int, np.ndarray] = {}
            for b in part.tolist():
                lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
                rows = slice(lo - start, hi - start)
                w_rows = None if weights is None else weights[rows]
                self._fill_block(seed, b, lo - b * BLOCK, out[rows], w_rows, passes)

        if n_threads == 1 or len(blocks) <= 1:
            run(blocks)
        else:
            parts = np.array_split(blocks, min(len(blocks), 4 * n_threads))
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(run, parts))
        return out, weights

    def weight_sum(self, n: int, seed: int) -> float:
        """Sum of the compensating weights of events ``0 .. n-1`` of the run with ``seed``.

        ``n`` for a selection without weights. With ``selection="weighted"`` it draws only the
        buffer events of the run (no latent points), as :meth:`sample_range` does, and sums
        the float32 weights that run writes, in float64.
        """
        self._check_sampling()
        n, seed = _check_index(n, "n"), _check_seed(seed)
        if self._compensate is None:
            return float(n)
        total = 0.0
        for block in range(-(-n // BLOCK)):
            events = self._block_events(_stream(seed, _BLOCK_STREAM, block), seed, block, {})
            total += float(self._compensate[events[: n - block * BLOCK]].sum(dtype=np.float64))
        return total

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
        out: np.ndarray,
        weights: np.ndarray | None,
        passes: dict[int, np.ndarray],
    ) -> None:
        """Rows ``lo .. lo + len(out) - 1`` of block ``block`` into ``out``: events first, then the draw."""
        gen = _stream(seed, _BLOCK_STREAM, block)
        events = self._block_events(gen, seed, block, passes) if self._fitted_settings.picks_events else None
        self.component_.draw(gen, events, lo, out)
        if weights is not None:
            assert events is not None and self._compensate is not None
            np.take(self._compensate, events[lo : lo + out.shape[0]], out=weights)

    def _block_events(
        self, gen: np.random.Generator, seed: int, block: int, passes: dict[int, np.ndarray]
    ) -> np.ndarray:
        """The buffer event of every sample of a block ``(BLOCK,)`` int64, by the selection."""
        if self._alias is not None:  # weighted
            idx = np.empty(BLOCK, dtype=np.int64)
            kernels.alias_draw(gen.random(BLOCK), *self._alias, idx)
            return idx
        if self._fitted_settings.selection == "uniform":
            return gen.integers(0, self.mu_.shape[0], size=BLOCK)
        return self._stratified(seed, block * BLOCK, passes)

    def _stratified(self, seed: int, first: int, passes: dict[int, np.ndarray]) -> np.ndarray:
        """Stratified buffer events of samples ``first .. first+BLOCK-1`` ``(BLOCK,)``.

        Pass p over the buffer (samples p*N .. p*N+N-1) uses a random permutation of the
        events. Passes are shuffled in groups of ``ceil(BLOCK / N)`` from one stream per
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
        return self.component_.score_samples(z)

    # ------------------------------------------------------------ state, stats

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted arrays (mu, sigma, weights, the mode's), storable in an ``.npz`` without pickle.

        The settings are not part of the state: :meth:`from_state` takes them.
        """
        self._check_fitted("get_state")
        state = {"state_version": np.asarray(STATE_VERSION), "mu": self.mu_, "sigma": self.sigma_}
        if self.weights_ is not None:
            state["weights"] = self.weights_
        for name, value in self.component_.get_state().items():
            assert name not in state
            state[name] = value
        return {name: np.array(value, copy=True) for name, value in state.items()}

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        settings: SamplingSettings,
        seed: int = 0,
        n_latent: int | None = None,
    ) -> DensityBuffer:
        """Rebuild a fitted buffer from :meth:`get_state`'s arrays (e.g. an ``.npz``), checking each.

        ``mu`` and ``sigma`` must be finite ``(n_buffer, n_latent)`` arrays (``n_latent``, the
        model's latent size, when given) with ``sigma > 0``, the weights one per event, >= 0
        with a positive sum; the mode's arrays are checked by its component.
        """
        self = cls(settings, seed)
        saved = SavedState.of(state, "buffer state")
        saved.require("state_version", "mu", "sigma")
        version = saved.scalar("state_version", "int")
        if version not in _READABLE_STATES:
            raise saved.error(
                "state_version", f"gives version {version}, this eventgen reads {list(_READABLE_STATES)}"
            )
        sized_by = "one row per buffer event, like mu"
        mu = saved.array(
            "mu", "float", (None, n_latent), dtype=np.float32, sized_by="the model's latent size"
        )
        sigma = saved.array("sigma", "float", mu.shape, dtype=np.float32, above=0.0, sized_by=sized_by)
        weights = saved.weights("weights", mu.shape[:1], sized_by=sized_by) if "weights" in saved else None
        try:
            settings = _check_settings(settings)
            _check_weighted(settings, weights)
        except ConfigError as exc:
            raise BundleError(f"buffer state is invalid ({exc}); fit the bundle again") from None
        component = COMPONENTS[settings.mode].from_state(settings, mu, sigma, saved)
        return self._set_fitted(settings, mu, sigma, weights, component)

    def with_settings(self, settings: SamplingSettings, seed: int = 0) -> DensityBuffer:
        """A fitted copy with other sampling settings, sharing ``mu_``, ``sigma_`` and ``weights_``.

        Cheap when only draw-time settings change (alpha, gamma, selection, temperature): the fitted
        mode is kept, with this buffer's seed; the mode is fitted again, with ``seed`` (of a mixture
        fit), when it or its settings change, except a mode that is fitted only with the bundle
        (flow, whose training takes minutes): that raises ConfigError. To add a flow to a fitted
        buffer, fit a new one: ``DensityBuffer(settings).fit(buffer.mu_, buffer.sigma_)``.
        """
        self._check_fitted("with_settings")
        settings = _check_settings(settings)
        _check_weighted(settings, self.weights_)
        cls = COMPONENTS[settings.mode]
        if settings.same_fit(self._fitted_settings):
            seed = self.seed
            component = cls.from_state(settings, self.mu_, self.sigma_, self.component_.get_state())
        elif settings.mode in BUNDLE_MODES:
            fitted = self._fitted_settings
            has = (
                "a flow trained with other settings"
                if fitted.mode == settings.mode
                else f"mode {fitted.mode!r}"
            )
            raise ConfigError(
                f"mode {settings.mode!r} samples a {settings.mode} trained on the buffer when the bundle is fitted, "
                f"and this one was fitted with {has}: fit it with 'buffer: {{mode: {settings.mode}}}' in the fit config"
            )
        else:
            component = cls.fit(settings, self.mu_, self.sigma_, _check_seed(seed))
        new = DensityBuffer(settings, seed)
        return new._set_fitted(settings, self.mu_, self.sigma_, self.weights_, component)

    def latent_stats(self) -> dict[str, float]:
        """The seed talk's β-table numbers: average latent variance mean(σ²) and average |μ|."""
        self._check_fitted("latent_stats")
        sigma = self.sigma_.astype(np.float64)
        return {
            "avg_variance": float(np.mean(sigma * sigma)),
            "avg_abs_mean": float(np.mean(np.abs(self.mu_.astype(np.float64)))),
        }

    # ------------------------------------------------------------------ checks

    def _check_fitted(self, what: str) -> None:
        if "mu_" not in self.__dict__:
            raise EventgenError(f"DensityBuffer.{what} needs a fitted buffer; call fit(mu, sigma) first")

    def _check_sampling(self) -> None:
        self._check_fitted("sampling")
        if self.settings != self._fitted_settings:
            raise EventgenError(
                f"the buffer was fitted with other settings than {self.settings!r}; call fit(mu, sigma) "
                "first (or with_settings(settings) to change a fitted buffer's settings)"
            )

    def __repr__(self) -> str:
        return f"DensityBuffer({self.settings!r}, seed={self.seed!r})"


def _stream(seed: int, kind: int, index: int) -> np.random.Generator:
    """The random stream keyed by ``(seed, kind, index)``; blocks and passes never share one."""
    return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence([seed, kind, index])))


def _check_settings(settings: object) -> SamplingSettings:
    if not isinstance(settings, SamplingSettings):
        raise ConfigError(
            f"settings={settings!r} is not a SamplingSettings; pass eventgen.sampling.SamplingSettings(...)"
        )
    return settings


def _check_weighted(settings: SamplingSettings, weights: np.ndarray | None) -> None:
    if settings.selection == "weighted" and weights is None:
        raise ConfigError(
            "selection='weighted' needs weights: pass fit(mu, sigma, sample_weight=<array of shape "
            "(n_events,)>), or for a bundle set buffer.weight_column in the fit config"
        )


def _check_matrix(x: ArrayLike, name: str, dtype: type = np.float32) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or not np.issubdtype(x.dtype, np.number):
        raise InputError(
            f"{name} has shape {x.shape} and dtype {x.dtype}; pass a numeric (n_events, n_latent) array"
        )
    x = np.ascontiguousarray(x, dtype=dtype)
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} contains NaN or inf; check the encoder output (a diverged training?)")
    return x


def _check_weights(weights: ArrayLike, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise InputError(f"weights has shape {w.shape}; pass one weight per buffer event, shape ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError("weights must be finite, non-negative and have a positive sum; fix the weight array")
    return w


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid; pass an integer >= 0")
    return int(seed)


def _check_index(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise InputError(f"{name}={value!r} is invalid; pass an integer >= 0")
    return int(value)
