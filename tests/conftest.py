"""Shared fixtures: a seeded rng, paths of the committed event samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


@pytest.fixture(scope="session")
def ttbar_path() -> Path:
    """A small ttbar sample made by ``eventgen simulate ttbar`` (see tests/data/README.md)."""
    return DATA / "ttbar_small.parquet"


@pytest.fixture(scope="session")
def zll_path() -> Path:
    return DATA / "zll_small.parquet"
