"""Memorisation with the symmetries divided out, and the data-copying test C_T: known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eventgen.copying import canonical_frame, data_copying, symmetric_memorisation
from eventgen.errors import InputError
from eventgen.io import read_events
from eventgen.latent import add_noise
from eventgen.schema import Column, Schema

DATA = Path(__file__).parent / "data" / "ttbar_small.parquet"


@pytest.fixture(scope="module")
def ttbar() -> tuple[np.ndarray, np.ndarray, np.ndarray, Schema]:
    """Training, held-out and fresh events: three disjoint thirds of the committed sample."""
    table = read_events(DATA)
    return table.data[:1000], table.data[1000:2000], table.data[2000:], table.schema


def _rotated_and_mirrored(events: np.ndarray, schema: Schema, rng: np.random.Generator) -> np.ndarray:
    """The same events, each rotated about the beam axis by a random angle and randomly mirrored in φ and η."""
    out = events.astype(np.float64).copy()
    n = len(out)
    phi, eta = schema.indices_of_kind("phi"), schema.indices_of_kind("eta")
    present = np.ones_like(out, dtype=bool)
    for o in schema.objects():
        present[:, [o.e, o.pt, o.eta, o.phi]] = (out[:, o.pt] > 0)[:, None]
    sign_phi = rng.choice([-1.0, 1.0], n)[:, None]
    turned = np.remainder(sign_phi * out[:, phi] + rng.uniform(-np.pi, np.pi, n)[:, None] + np.pi, 2 * np.pi)
    out[:, phi] = np.where(present[:, phi], turned - np.pi, 0.0)
    out[:, eta] *= rng.choice([-1.0, 1.0], n)[:, None]
    return out.astype(np.float32)


def test_canonical_frame_divides_out_rotations_and_mirrors(ttbar, rng: np.random.Generator) -> None:
    train, _, _, schema = ttbar
    moved = _rotated_and_mirrored(train, schema, rng)
    assert np.abs(moved - train).max() > 1.0  # the raw columns moved
    np.testing.assert_allclose(canonical_frame(moved, schema), canonical_frame(train, schema), atol=2e-5)
    frame = canonical_frame(train, schema)
    lead = np.argmax(train[:, [o.pt for o in schema.objects()]], axis=1)
    lead_phi = frame[np.arange(len(frame)), np.array([o.phi for o in schema.objects()])[lead]]
    lead_eta = frame[np.arange(len(frame)), np.array([o.eta for o in schema.objects()])[lead]]
    assert np.all(lead_phi == 0) and np.all(lead_eta >= 0)
    j1_e = schema.index("j1_e")
    np.testing.assert_allclose(frame[:, j1_e], np.log1p(train[:, j1_e].astype(np.float64)), rtol=1e-12)
    for o in schema.objects():  # absent objects stay zero
        absent = train[:, o.pt] == 0
        assert np.all(frame[absent][:, [o.e, o.pt, o.eta, o.phi]] == 0)


def test_symmetric_memorisation_sees_rotated_copies(ttbar, rng: np.random.Generator) -> None:
    train, heldout, fresh, schema = ttbar
    copies = _rotated_and_mirrored(train, schema, rng)
    copied = symmetric_memorisation(copies, train, heldout, schema, seed=0)
    assert copied["ratio"][0] < 0.01 and copied["closer_to_train"][0] > 0.99
    new = symmetric_memorisation(fresh, train, heldout, schema, seed=0)
    assert abs(new["ratio"][0] - 1.0) < max(4 * new["ratio"][1], 0.06)
    assert abs(new["closer_to_train"][0] - 0.5) < 4 * new["closer_to_train"][1]


def test_c_t_of_fresh_events_is_near_zero_and_of_jittered_copies_strongly_negative(
    rng: np.random.Generator,
) -> None:
    schema = Schema("gauss", tuple(Column(f"x{i}", "generic") for i in range(5)))
    train, heldout, fresh = (rng.normal(size=(6_000, 5)) for _ in range(3))
    null = data_copying(fresh, train, heldout, schema, seed=1)
    assert null["cells_used"] == 20 and null["c_t"][1] == pytest.approx(0.224, abs=0.02)  # ≈ 1/sqrt(20)
    assert abs(null["c_t"][0]) < 4 * null["c_t"][1]
    jittered = train[:5_000] + 0.05 * rng.normal(size=(5_000, 5))
    assert data_copying(jittered, train, heldout, schema, seed=1)["c_t"][0] < -10  # 40 null sd
    blurred = 1.3 * fresh  # farther from the training events than fresh ones: under-fitting
    assert data_copying(blurred, train, heldout, schema, seed=1)["c_t"][0] > 5


def test_c_t_on_events_counts_rotated_jittered_copies(ttbar, rng: np.random.Generator) -> None:
    train, heldout, fresh, schema = ttbar
    jittered = _rotated_and_mirrored(add_noise(train, schema, rng, relative=0.02, angle=0.01), schema, rng)
    fresh_ct = data_copying(fresh, train, heldout, schema, seed=2, n_cells=5)
    copies_ct = data_copying(jittered, train, heldout, schema, seed=2, n_cells=5)
    assert abs(fresh_ct["c_t"][0]) < 4 * fresh_ct["c_t"][1]
    assert copies_ct["c_t"][0] < -10


def test_copying_input_errors(ttbar) -> None:
    train, heldout, fresh, schema = ttbar
    with pytest.raises(InputError, match="schema 'ttbar' has 28 columns"):
        canonical_frame(train[:, :5], schema)
    with pytest.raises(InputError, match="at least n_cells=20 training events"):
        data_copying(fresh, train[:10], heldout, schema, seed=0)
    with pytest.raises(InputError, match="max_generated must be positive"):
        symmetric_memorisation(fresh, train, heldout, schema, seed=0, max_generated=0)
