"""eventgen: learn simulated collision events with a beta-VAE and generate millions more.

Public names are imported lazily so that ``import eventgen`` (and the CLI) stays fast and
does not load torch, numba or Pythia until a stage needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "EventgenError": "eventgen.errors",
    "ConfigError": "eventgen.errors",
    "InputError": "eventgen.errors",
    "OutputError": "eventgen.errors",
    "BundleError": "eventgen.errors",
    "Schema": "eventgen.schema",
    "get_schema": "eventgen.schema",
    "EventTable": "eventgen.io",
    "EventWriter": "eventgen.io",
    "read_events": "eventgen.io",
    "write_events": "eventgen.io",
    "simulate": "eventgen.simulation",
    "SimulationSettings": "eventgen.simulation",
    "fit": "eventgen.fitting",
    "Bundle": "eventgen.bundle",
    "DensityBuffer": "eventgen.buffer",
    "generate": "eventgen.generation",
    "GenerateOptions": "eventgen.generation",
    "SamplingSettings": "eventgen.sampling",
    "evaluate": "eventgen.evaluation",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'eventgen' has no attribute {name!r}")
