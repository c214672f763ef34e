"""Every sampling component: partial blocks, state round trip, its own stream only, density normalised.

A new mode's class is checked here by adding its settings to ``CASES``; its known-answer
log-density belongs in ``tests/test_buffer.py::test_score_samples_against_scipy``.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventgen.components import BLOCK, COMPONENTS, Component, block_noise
from eventgen.sampling import MODES, SamplingSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CASES = {
    "buffer": SamplingSettings(mode="buffer", alpha=0.7, gamma=0.1),
    "kde": SamplingSettings(mode="kde"),
    "gmm": SamplingSettings(mode="gmm", n_components=2),
    "prior": SamplingSettings(mode="prior"),
    "flow": SamplingSettings(mode="flow", temperature=0.9, flow_transforms=2, flow_hidden=16, flow_epochs=3),
}


def test_every_mode_is_checked_here() -> None:
    assert set(CASES) == set(MODES)


def _fitted(mode: str) -> tuple[Component, np.ndarray | None, np.ndarray, np.ndarray]:
    """The mode's component on a small buffer, the events of one block (if it picks events), mu, sigma."""
    rng = np.random.default_rng(3)
    mu = rng.normal(0.0, 1.0, (50, 2)).astype(np.float32)
    sigma = rng.uniform(0.1, 0.3, (50, 2)).astype(np.float32)
    settings = CASES[mode]
    events = rng.integers(0, 50, BLOCK) if settings.picks_events else None
    return COMPONENTS[settings.mode].fit(settings, mu, sigma, seed=1), events, mu, sigma


def _draw(component: Component, events: np.ndarray | None, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    out = np.empty((hi - lo, 2), dtype=np.float32)
    component.draw(np.random.default_rng(seed), events, lo, out)
    return out


@pytest.mark.parametrize("mode", MODES)
def test_a_partial_block_equals_the_rows_of_the_whole_block(mode: str) -> None:
    component, events, _, _ = _fitted(mode)
    whole = _draw(component, events, 0, BLOCK)
    assert np.all(np.isfinite(whole))
    for lo, hi in [(0, 1), (1, 2), (100, 2000), (BLOCK - 1, BLOCK)]:
        np.testing.assert_array_equal(_draw(component, events, lo, hi), whole[lo:hi])
    assert not np.array_equal(_draw(component, events, 0, BLOCK, seed=1), whole)  # the stream matters


@pytest.mark.parametrize("mode", MODES)
def test_state_round_trip(mode: str) -> None:
    component, events, mu, sigma = _fitted(mode)
    state = {k: np.array(v) for k, v in component.get_state().items()}
    assert set(state) == set(type(component).state_names)
    loaded = COMPONENTS[mode].from_state(CASES[mode], mu, sigma, state)
    np.testing.assert_array_equal(_draw(loaded, events, 0, BLOCK), _draw(component, events, 0, BLOCK))
    z = np.random.default_rng(2).normal(size=(20, 2))
    np.testing.assert_array_equal(loaded.score_samples(z), component.score_samples(z))


@pytest.mark.parametrize("mode", MODES)
def test_density_integrates_to_one(mode: str) -> None:
    """Importance sampling of ∫ p(z) dz with a wide Gaussian proposal, at a fixed seed."""
    component, _, _, _ = _fitted(mode)
    rng = np.random.default_rng(7)
    z = rng.normal(0.0, 3.0, (200_000, 2))
    log_q = -0.5 * np.sum((z / 3.0) ** 2, axis=1) - 2 * np.log(3.0) - np.log(2 * np.pi)
    ratio = np.exp(component.score_samples(z) - log_q)
    assert abs(ratio.mean() - 1.0) < 5 * ratio.std() / np.sqrt(len(z)) + 1e-3


def test_block_noise_is_a_prefix_of_the_stream() -> None:
    out = np.empty((10, 3), dtype=np.float32)
    block_noise(np.random.default_rng(1), 4, out)
    full = np.random.default_rng(1).standard_normal((14, 3), dtype=np.float32)
    np.testing.assert_array_equal(out, full[4:])


def test_flow_stores_the_flows_state_in_whole_chunks() -> None:
    from eventgen.flow import CHUNK, STATE_NAMES

    assert COMPONENTS["flow"].state_names == tuple(f"flow_{name}" for name in STATE_NAMES)
    assert BLOCK % CHUNK == 0  # a block's rows are pushed through the flow in chunks at fixed positions
