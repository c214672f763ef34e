"""Shared fixtures (a seeded rng, paths of the committed event samples) and the ``--device`` option.

Tests marked ``gpu`` run on a CUDA device: with ``--device auto`` (the default) where one is
present and are skipped otherwise, with ``--device cpu`` never, and with ``--device cuda`` or
``cuda:N`` always (they fail without CUDA, so that a GPU machine cannot skip them silently).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="auto",
        help="where tests marked gpu run: auto (CUDA if present, else skip them), cpu (skip them), cuda or cuda:N",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", config.getoption("--device")):
        raise pytest.UsageError(
            f"--device must be auto, cpu, cuda or cuda:N, not {config.getoption('--device')!r}"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    device = config.getoption("--device")
    if not gpu_items or device.startswith("cuda"):
        return
    if device == "cpu":
        reason = "a gpu test, and --device cpu"
    else:
        import torch

        if torch.cuda.is_available():
            return
        reason = "needs a CUDA device (none is available)"
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def cuda_device(pytestconfig: pytest.Config) -> str:
    """The CUDA device that tests marked ``gpu`` run on (``--device cuda:N``, else ``cuda``)."""
    device = pytestconfig.getoption("--device")
    return device if device.startswith("cuda") else "cuda"


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


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one intra-op thread, as in a generation run: small networks (the flow mode's) run
    fastest so, and do not fight other processes for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _lepton_flavours(events: np.ndarray, schema: Any, obj: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which rows' lepton ``obj`` has an electron's and a muon's energy, and where the two differ.

    The clean-up rebuilds E from pT and η each moved by up to half a float32 step (and rounds E
    to float32), so E matches a flavour within that spread rather than bit for bit.
    """
    from eventgen.schema import LEPTON_MASSES

    e32, pt32, eta32 = (events[:, schema.index(f"{obj}_{q}")] for q in ("e", "pt", "eta"))
    e, pt, eta = (v.astype(np.float64) for v in (e32, pt32, eta32))
    p = pt * np.cosh(eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = [np.abs(np.spacing(v)).astype(np.float64) for v in (e32, pt32, eta32)]
        spread = 0.5 * p * (steps[1] / pt + np.abs(np.tanh(eta)) * steps[2]) + steps[0]
    as_e, as_mu = (np.sqrt(m**2 + p**2) for m in LEPTON_MASSES)
    return np.abs(e - as_e) <= spread, np.abs(e - as_mu) <= spread, np.abs(as_mu - as_e) > 2 * spread


@pytest.fixture
def lepton_flavours() -> Any:
    """:func:`_lepton_flavours`: ``(electron, muon, resolved)`` masks of a lepton's rows."""
    return _lepton_flavours
