"""Baseline generators a physicist could use instead of eventgen, for honest comparisons.

All are fitted on the same training events and post-processed like eventgen (the bundle's
preprocessing space where they model a density, and the same physics clean-up), so the
comparison measures the density model alone:

- ``smear``: replay training events with every continuous column multiplied by
  ``1 + 0.05 ε`` (±5% smearing; counts untouched) — a generator that copies;
- ``kde``: a Gaussian kernel density estimate in the preprocessed space (Scott's bandwidth);
- ``gmm``: the prior art's Gaussian mixture in data space (scikit-learn, full covariances;
  the prior art used 1000 components), fitted in the preprocessed space;
- ``flow``: a neural spline flow (zuko, coupling layers; :class:`eventgen.flow.SplineFlow`)
  trained in the preprocessed space for a fixed number of epochs, with 0.01 Gaussian noise on
  its (standardised) inputs to dequantise discrete columns — the strongest off-the-shelf
  density estimator measured here, and the generator to beat without copying;
- the plain VAE is ``eventgen generate --mode prior`` and needs no code here.

Beside them, the **decoder ceiling** (:func:`ceiling_events`) is not a generator but the best
any latent sampler of the bundle can do: held-out events encoded to their latent means and
decoded again (the bundle's own reconstruction, :func:`eventgen.latent.denoise`, with its
inverse preprocessing and clean-up). Compared with an independent held-out sample exactly like
truth vs truth, it tells decoder error from sampling error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from eventgen.errors import ConfigError

if TYPE_CHECKING:
    from eventgen.bundle import Bundle

BaselineName = Literal["smear", "kde", "gmm", "flow"]
BASELINES: tuple[BaselineName, ...] = get_args(BaselineName)


def baseline_events(
    name: BaselineName,
    train: np.ndarray,
    bundle: Bundle,
    n_events: int,
    seed: int,
    *,
    smear: float = 0.05,
    n_components: int = 1000,
    flow_epochs: int = 100,
) -> np.ndarray:
    """``n_events`` events ``(n_events, n_columns)`` float32 from baseline ``name`` fitted on ``train``.

    ``bundle`` supplies the preprocessing and the physics clean-up (its schema must match ``train``).
    """
    rng = np.random.default_rng(seed)
    if name == "smear":
        kinds = np.array(bundle.schema.kinds)
        factor = 1.0 + smear * rng.standard_normal((n_events, train.shape[1]))
        factor[:, kinds == "count"] = 1.0
        events = (train[rng.integers(0, len(train), n_events)] * factor).astype(np.float32)
        return bundle.cleanup.apply(np.ascontiguousarray(events, dtype=np.float32))
    if name == "kde":
        y = bundle.preprocessor.transform(train).astype(np.float64)
        h = y.std(axis=0) * len(y) ** (-1.0 / (y.shape[1] + 4))  # Scott's rule
        centres = y[rng.integers(0, len(y), n_events)]
        return _inverse(bundle, y, centres + h * rng.standard_normal(centres.shape), rng)
    if name == "gmm":
        from sklearn.mixture import GaussianMixture

        y = bundle.preprocessor.transform(train).astype(np.float64)
        k = min(n_components, len(y) // 10)
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=seed, max_iter=200).fit(
            y
        )
        component = rng.choice(k, n_events, p=gmm.weights_)
        chol = np.linalg.cholesky(gmm.covariances_)
        eps = rng.standard_normal((n_events, y.shape[1]))
        sample = gmm.means_[component] + np.einsum("nij,nj->ni", chol[component], eps)
        return _inverse(bundle, y, sample[rng.permutation(n_events)], rng)
    if name == "flow":
        from eventgen.flow import SplineFlow

        y = bundle.preprocessor.transform(train).astype(np.float32)
        flow = SplineFlow(y.shape[1], transforms=4, hidden=128).fit(y, flow_epochs, noise=0.01, seed=seed)
        sample = flow.sample(rng.standard_normal((n_events, y.shape[1]), dtype=np.float32))
        return _inverse(bundle, y, sample, rng)
    raise ConfigError(f"unknown baseline {name!r}; choose one of {list(BASELINES)}")


def ceiling_events(bundle: Bundle, heldout: np.ndarray) -> np.ndarray:
    """The decoder ceiling: ``heldout`` ``(n_events, n_columns)`` reconstructed through the bundle.

    Encode → decode of the latent means μ with the bundle's inverse preprocessing and clean-up
    (:func:`eventgen.latent.denoise`); returns cleaned events of the same shape, float32. Pass
    events the bundle was not fitted on (the held-out half that is *not* the comparison sample).
    """
    from eventgen.latent import denoise

    return denoise(bundle, heldout)


def _inverse(bundle: Bundle, fitted: np.ndarray, sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Back to cleaned events, after clipping to the fitted range (Gaussian tails overflow ``expm1``).

    Cleaned like eventgen's decoded rows: energies rebuilt from masses after the clean-up's clips,
    and events modelled in the canonical frame turned into a random frame each.
    """
    from eventgen.representation import symmetry_draws

    pre = bundle.preprocessor
    clipped = np.clip(sample, fitted.min(axis=0), fitted.max(axis=0)).astype(np.float32)
    rows = np.ascontiguousarray(pre.inverse_features(clipped))
    frames = None
    if pre.frame == "canonical":
        frames = symmetry_draws(int(rng.integers(2**32)), 0, len(rows))
    return bundle.cleanup.apply(rows, representation=pre.representation, frames=frames)
