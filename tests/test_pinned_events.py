"""The committed fixture bundle's events are pinned: a refactor must not change a single bit.

``tests/data/bundle`` was fitted with ``tests/data/tiny-fit.yaml`` (see tests/data/README.md) and
``tests/data/bundle_events.npz`` holds events 0, 1, 4095, 4096 and 4999 of a 5000-event run with
seed 7 for each sampling setting below, as written by ``generate``. Never regenerate the pins to
make this test pass: a change of the events is a change of the output's definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eventgen.bundle import Bundle
from eventgen.generation import generate
from eventgen.io import read_events

DATA = Path(__file__).parent / "data"
ROWS = [0, 1, 4095, 4096, 4999]
SETTINGS: dict[str, dict[str, Any]] = {
    "buffer": {},
    "stratified": {"selection": "stratified"},
    "weighted": {"selection": "weighted"},
    "kde": {"mode": "kde"},
    "gmm": {"mode": "gmm"},
    "prior": {"mode": "prior"},
    "gamma": {"alpha": 0.5, "gamma": 0.2},
}


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(DATA / "bundle")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "gmm" else n for n in SETTINGS]
)
def test_fixture_bundle_events_are_bit_identical(bundle: Bundle, tmp_path: Path, name: str) -> None:
    out = tmp_path / "events.parquet"
    generate(bundle, 5000, out, seed=7, sampling=SETTINGS[name], device="cpu")
    pinned = np.load(DATA / "bundle_events.npz")[name]
    np.testing.assert_array_equal(read_events(out).data[ROWS], pinned)
