"""The latent distributions a density buffer samples, one class per sampling mode.

Each :class:`Component` owns its fit, its draw, its log-density and its state:

=========  ==========================  ==================================================
mode       class                       draw of one sample
=========  ==========================  ==================================================
buffer     :class:`BufferMixture`      event i, ``z = mu_i + (alpha * sigma_i + gamma) * eps``
kde        :class:`KernelDensity`      event i, ``z = mu_i + h * eps`` (Scott / Silverman / given h)
gmm        :class:`FullMixture`        component k ~ weights, ``z = m_k + L_k @ eps``
prior      :class:`StandardNormal`     ``z = eps``
flow       :class:`LatentFlow`         ``z = f(T * eps)``, f a spline flow trained on the buffer
=========  ==========================  ==================================================

:data:`COMPONENTS` maps each mode of :mod:`eventgen.sampling` to the class that names it as
its ``mode``. The buffer draws events in blocks of :data:`BLOCK`, each from its own random
stream; a component fills the rows of one block from that stream (after the buffer has drawn
the block's events, for the modes that pick events), so its output depends only on the stream
and the block's events. A new mode is one subclass with its ``mode`` (and that name in
``sampling.Mode``, which the command line and the configs read without importing this module);
it may draw from the stream anything it needs, e.g. the noise of a flow it pushes through a network.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from eventgen import kernels
from eventgen.errors import ConfigError, InputError
from eventgen.sampling import MODES
from eventgen.validate import SavedState

if TYPE_CHECKING:
    from typing_extensions import Self

    from eventgen.flow import SplineFlow
    from eventgen.sampling import Mode, SamplingSettings

log = logging.getLogger(__name__)
_BY_MODE: dict[str, type[Component]] = {}  # filled as the components are defined
BLOCK = 4096  # events per random stream; part of the output's definition, never change it
_LOG_2PI = math.log(2.0 * math.pi)
_GMM_SCORE_VALUES = 1 << 22  # rows x components scored at once by FullMixture


class Component(ABC):
    """A latent distribution fitted on the buffer ``mu``, ``sigma`` ``(n_buffer, n_latent)``."""

    #: the sampling mode of a concrete component (each mode has exactly one)
    mode: ClassVar[Mode]
    #: names of the fitted arrays in :meth:`get_state` (stored beside mu and sigma)
    state_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "mode" in cls.__dict__:
            assert cls.mode not in _BY_MODE, f"mode {cls.mode!r} has two components"
            _BY_MODE[cls.mode] = cls

    @classmethod
    @abstractmethod
    def fit(cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, seed: int) -> Self:
        """Fit on the buffer; ``seed`` seeds whatever is random in fitting."""

    @classmethod
    @abstractmethod
    def from_state(
        cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, state: Mapping[str, Any]
    ) -> Self:
        """Rebuild from :meth:`get_state`'s arrays (``settings`` may differ in draw-time fields).

        ``mu`` and ``sigma`` are checked already; ``state`` (a mapping or an
        :class:`~eventgen.validate.SavedState` that names its file) is untrusted: every array
        read from it goes through :class:`~eventgen.validate.SavedState`.
        """

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted arrays, named by :attr:`state_names` (none for a mode with nothing to fit)."""
        return {name: getattr(self, name) for name in self.state_names}

    @abstractmethod
    def draw(self, gen: np.random.Generator, events: np.ndarray | None, lo: int, out: np.ndarray) -> None:
        """Rows ``lo .. lo + len(out) - 1`` of one block into ``out`` ``(rows, n_latent)`` float32.

        ``gen`` is the block's own stream; ``events`` ``(BLOCK,)`` are the buffer events of the
        block's rows for modes that pick events (already drawn from ``gen``), else None.
        Whatever ``lo`` is, the draw must equal rows ``lo..`` of the whole block's draw.
        """

    @abstractmethod
    def score_samples(self, z: np.ndarray) -> np.ndarray:
        """Log-density ``(m,)`` float64 at the rows of ``z`` ``(m, n_latent)`` float64."""


def block_noise(gen: np.random.Generator, lo: int, out: np.ndarray) -> None:
    """Standard-normal noise of rows ``lo..`` of a block into ``out``; the stream starts at row 0."""
    if lo == 0:
        gen.standard_normal(out=out, dtype=np.float32)
    else:  # draw and drop the rows before lo
        noise = np.empty((lo + out.shape[0], out.shape[1]), dtype=np.float32)
        gen.standard_normal(out=noise, dtype=np.float32)
        out[:] = noise[lo:]


class DiagonalMixture(Component):
    """Equal-weight mixture of the buffer's diagonal Gaussians ``N(mu_i, (alpha * scale_i + gamma)^2)``.

    ``scale`` is ``(n_buffer, n_latent)`` (one row per event) or ``(1, n_latent)`` (shared).
    """

    def __init__(self, mu: np.ndarray, scale: np.ndarray, alpha: float, gamma: float) -> None:
        self.mu, self.scale, self.alpha, self.gamma = mu, scale, alpha, gamma

    def draw(self, gen: np.random.Generator, events: np.ndarray | None, lo: int, out: np.ndarray) -> None:
        assert events is not None
        block_noise(gen, lo, out)
        kernels.gather_fma(self.mu, self.scale, self.alpha, self.gamma, events[lo : lo + out.shape[0]], out)

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        scale = self.alpha * self.scale.astype(np.float64) + self.gamma
        if np.any(scale <= 0):
            raise ConfigError(
                "alpha=0 and gamma=0 make every component a point mass; use alpha > 0 or gamma > 0"
            )
        n_buffer, d = self.mu.shape
        log_norm = np.broadcast_to(-np.log(scale).sum(axis=1), (n_buffer,))
        log_norm = log_norm - 0.5 * d * _LOG_2PI - math.log(n_buffer)
        out = np.empty(z.shape[0], dtype=np.float64)
        kernels.diag_mixture_logpdf(z, self.mu.astype(np.float64), 1.0 / scale, log_norm, out)
        return out


class BufferMixture(DiagonalMixture):
    """Mode ``buffer``: each event's own Gaussian, widened: scale ``alpha * sigma_i + gamma``."""

    mode = "buffer"

    @classmethod
    def fit(cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, seed: int) -> Self:
        return cls(mu, sigma, settings.alpha, settings.gamma)

    @classmethod
    def from_state(
        cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, state: Mapping[str, Any]
    ) -> Self:
        return cls.fit(settings, mu, sigma, 0)


class KernelDensity(DiagonalMixture):
    """Mode ``kde``: a Gaussian kernel density estimate on the mu_i with bandwidth ``h`` ``(n_latent,)``."""

    mode = "kde"
    state_names = ("h",)

    def __init__(self, mu: np.ndarray, h: np.ndarray) -> None:
        super().__init__(mu, h[None, :], 1.0, 0.0)
        self.h = h

    @classmethod
    def fit(cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, seed: int) -> Self:
        return cls(mu, bandwidth(mu, settings.bandwidth))

    @classmethod
    def from_state(
        cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, state: Mapping[str, Any]
    ) -> Self:
        saved = SavedState.of(state, "kde state")
        return cls(
            mu, saved.array("h", "float", mu.shape[1:], above=0.0, sized_by="one per latent dimension")
        )


class FullMixture(Component):
    """Mode ``gmm``: a full-covariance Gaussian mixture fitted on the mu_i (scikit-learn).

    ``gmm_weights`` ``(K,)``, ``gmm_means`` ``(K, n_latent)``, ``gmm_chol`` ``(K, n_latent, n_latent)``
    (lower Cholesky factors of the covariances), float64.
    """

    mode = "gmm"
    state_names = ("gmm_weights", "gmm_means", "gmm_chol")

    def __init__(self, gmm_weights: np.ndarray, gmm_means: np.ndarray, gmm_chol: np.ndarray) -> None:
        self.gmm_weights, self.gmm_means, self.gmm_chol = gmm_weights, gmm_means, gmm_chol
        self._alias = kernels.alias_table(gmm_weights)

    @classmethod
    def fit(cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, seed: int) -> Self:
        from sklearn.mixture import GaussianMixture

        if settings.n_components > mu.shape[0]:
            raise InputError(
                f"n_components={settings.n_components} exceeds the {mu.shape[0]} buffer events; "
                "lower n_components or encode more events"
            )
        gm = GaussianMixture(settings.n_components, covariance_type="full", random_state=seed)
        gm.fit(mu.astype(np.float64))
        return cls(
            np.asarray(gm.weights_, dtype=np.float64),
            np.asarray(gm.means_, dtype=np.float64),
            np.linalg.cholesky(np.asarray(gm.covariances_, dtype=np.float64)),
        )

    @classmethod
    def from_state(
        cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, state: Mapping[str, Any]
    ) -> Self:
        saved = SavedState.of(state, "gmm state")
        k, d = settings.n_components, mu.shape[1]
        if k > mu.shape[0]:
            raise saved.error(
                "gmm_weights", f"is for n_components={k}, more than the {mu.shape[0]} buffer events"
            )
        weights = saved.weights("gmm_weights", (k,), sized_by="n_components")
        means = saved.array("gmm_means", "float", (k, d), sized_by="n_components, latent size")
        chol = saved.array("gmm_chol", "float", (k, d, d), sized_by="n_components, latent size, latent size")
        if not np.all(np.diagonal(chol, axis1=1, axis2=2) > 0):
            raise saved.error("gmm_chol", "has diagonal entries <= 0, expected Cholesky factors")
        return cls(weights, means, chol)

    def draw(self, gen: np.random.Generator, events: np.ndarray | None, lo: int, out: np.ndarray) -> None:
        picks = np.empty(BLOCK, dtype=np.int64)
        kernels.alias_draw(gen.random(BLOCK), *self._alias, picks)
        block_noise(gen, lo, out)
        kernels.gather_gaussian(self.gmm_means, self.gmm_chol, picks[lo : lo + out.shape[0]], out)

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular
        from scipy.special import logsumexp

        k_total, d = self.gmm_means.shape
        log_const = (
            np.log(self.gmm_weights)
            - np.log(np.diagonal(self.gmm_chol, axis1=1, axis2=2)).sum(axis=1)
            - 0.5 * d * _LOG_2PI
        )
        out = np.empty(z.shape[0], dtype=np.float64)
        step = max(1, _GMM_SCORE_VALUES // k_total)
        for lo in range(0, z.shape[0], step):
            chunk = z[lo : lo + step]
            comp = np.empty((chunk.shape[0], k_total))
            for k in range(k_total):
                y = solve_triangular(self.gmm_chol[k], (chunk - self.gmm_means[k]).T, lower=True)
                comp[:, k] = log_const[k] - 0.5 * np.einsum("ij,ij->j", y, y)
            out[lo : lo + step] = logsumexp(comp, axis=1)
        return out


class StandardNormal(Component):
    """Mode ``prior``: ``z ~ N(0, I)``, the plain VAE (a baseline); nothing to fit."""

    mode = "prior"

    def __init__(self, n_latent: int) -> None:
        self.n_latent = n_latent

    @classmethod
    def fit(cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, seed: int) -> Self:
        return cls(mu.shape[1])

    @classmethod
    def from_state(
        cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, state: Mapping[str, Any]
    ) -> Self:
        return cls(mu.shape[1])

    def draw(self, gen: np.random.Generator, events: np.ndarray | None, lo: int, out: np.ndarray) -> None:
        block_noise(gen, lo, out)

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        return -0.5 * np.einsum("ij,ij->i", z, z) - 0.5 * self.n_latent * _LOG_2PI


class LatentFlow(Component):
    """Mode ``flow``: a neural spline flow trained on the buffer, ``z = f(temperature * eps)``.

    The flow (:class:`eventgen.flow.SplineFlow`, coupling layers) learns the buffer's density:
    with ``flow_target="mixture"`` draws ``mu_i + sigma_i * eps``, fresh in every epoch (the
    buffer's Gaussian mixture, which the buffer mode samples with alpha = 1, gamma = 0), with
    ``"mu"`` the means alone. It samples points near, not on, the training events, with no
    per-event smoothing to tune; ``temperature`` < 1 samples its core. Training takes minutes,
    so it happens when a bundle is fitted with this mode, and the weights are stored in the
    bundle's buffer state (the arrays ``flow_*``). The base noise of a block's rows comes from
    the block's stream and is pushed through the flow in chunks at fixed positions of the block,
    so a row's latent point does not depend on how the run is split.
    """

    mode = "flow"
    state_names = (
        "flow_features",
        "flow_transforms",
        "flow_hidden",
        "flow_bins",
        "flow_shift",
        "flow_scale",
        "flow_params",
    )

    def __init__(self, flow: SplineFlow, temperature: float) -> None:
        self.flow, self.temperature = flow, temperature

    @classmethod
    def fit(cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, seed: int) -> Self:
        from eventgen.flow import SplineFlow

        if mu.shape[1] < 2:
            raise InputError("mode 'flow' needs a latent space of at least 2 dimensions; use another mode")
        t0 = time.perf_counter()
        log.info(
            "training the latent flow (mode 'flow') on %d buffer events: %d epochs, %d transforms of %d units",
            mu.shape[0],
            settings.flow_epochs,
            settings.flow_transforms,
            settings.flow_hidden,
        )
        flow = SplineFlow(mu.shape[1], settings.flow_transforms, settings.flow_hidden, _FLOW_BINS).fit(
            mu,
            settings.flow_epochs,
            noise=sigma if settings.flow_target == "mixture" else None,
            seed=seed,
        )
        best = flow.history_[flow.best_epoch_]["val_nll"]
        log.info(
            "trained the latent flow in %.1f s (best epoch %d, validation nll %.4f)",
            time.perf_counter() - t0,
            flow.best_epoch_ + 1,
            best,
        )
        return cls(flow, settings.temperature)

    @classmethod
    def from_state(
        cls, settings: SamplingSettings, mu: np.ndarray, sigma: np.ndarray, state: Mapping[str, Any]
    ) -> Self:
        from eventgen.flow import SplineFlow

        expected = {
            "features": mu.shape[1],
            "transforms": settings.flow_transforms,
            "hidden": settings.flow_hidden,
            "bins": _FLOW_BINS,
        }
        saved = SavedState.of(state, "flow state")
        return cls(SplineFlow.from_state(saved, expected=expected, prefix=_FLOW_PREFIX), settings.temperature)

    def get_state(self) -> dict[str, np.ndarray]:
        return self.flow.get_state(prefix=_FLOW_PREFIX)

    def draw(self, gen: np.random.Generator, events: np.ndarray | None, lo: int, out: np.ndarray) -> None:
        from eventgen.flow import CHUNK

        hi = lo + out.shape[0]
        noise = np.empty((hi, out.shape[1]), dtype=np.float32)  # rows 0..hi-1 of the block's noise
        gen.standard_normal(out=noise, dtype=np.float32)
        first = lo // CHUNK * CHUNK  # chunks stay at their positions in the block
        base = noise[first:]
        if self.temperature != 1.0:
            base *= np.float32(self.temperature)
        out[:] = self.flow.sample(base)[lo - first :]

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        return self.flow.log_prob(z, self.temperature)


_FLOW_PREFIX = "flow_"
_FLOW_BINS = 8  # spline bins of the latent flow
COMPONENTS: dict[Mode, type[Component]] = {mode: _BY_MODE[mode] for mode in MODES}
assert len(_BY_MODE) == len(MODES), f"components of unknown modes: {sorted(set(_BY_MODE) - set(MODES))}"


def bandwidth(mu: np.ndarray, rule: float | str) -> np.ndarray:
    """Per-dimension KDE bandwidth ``(n_latent,)`` float64 by rule of thumb on ``mu``, or the given number."""
    n, d = mu.shape
    if not isinstance(rule, str):
        return np.full(d, float(rule))
    if n < 2:
        raise InputError("a bandwidth rule needs at least 2 buffer events; pass more or a numeric bandwidth")
    spread = mu.astype(np.float64).std(axis=0, ddof=1)
    if np.any(spread <= 0):
        raise InputError(
            f"mu is constant along latent dimension(s) {np.flatnonzero(spread <= 0).tolist()}, so the "
            f"{rule!r} bandwidth is 0 there; pass a numeric bandwidth"
        )
    factor = n ** (-1.0 / (d + 4))
    if rule == "silverman":
        factor *= (4.0 / (d + 2)) ** (1.0 / (d + 4))
    return spread * factor
