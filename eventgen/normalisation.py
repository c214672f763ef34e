"""Normalised samples: the cross-section a generated sample stands for, and each event's weight.

A bundle keeps the provenance of the events it was fitted on, and a sample simulated by
:mod:`eventgen.simulate` records its cross-section σ with its uncertainty. Generated events
are normalised like any Monte Carlo sample of that process: each of the N events of a run
carries the weight σ/N (pb), so that the weights sum to σ and an integrated luminosity L
expects L·σ/N events per generated event. A run with weighted selection (the buffer sampled
by per-event weights, the compensating weight w_i written as the column ``weight``) gives
event i the weight σ·w_i/Σw, Σw being the sum of the compensating weights of the whole run.

Both N and Σw are those of the whole run, never of one shard: every shard of a dataset
carries the run's normalisation, which depends only on the bundle, the seed, the sampling
settings and N (Σw is recomputed from the run's random streams without decoding anything),
so a resumed run writes the same numbers, and a run of another N cannot resume it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

from eventgen.errors import ConfigError

UNIT = "pb"
WEIGHTS = "weight"  # the compensating-weight column of weighted selection


@dataclass(frozen=True)
class Normalisation:
    """How the events of a run are normalised: ``event_weight * (w_i or 1)`` pb per event.

    ``cross_section`` and ``cross_section_error`` in pb (None when the training sample has
    none), ``n_events`` and ``sum_of_weights`` (Σw; ``n_events`` without sampling weights) of
    the whole run, ``weighted`` whether events carry compensating weights, and
    ``weight_column`` the column that holds each event's normalised weight (None: not written).
    """

    cross_section: float | None
    cross_section_error: float | None
    n_events: int
    sum_of_weights: float
    weighted: bool = False
    weight_column: str | None = None

    @property
    def event_weight(self) -> float | None:
        """σ/Σw in pb (σ/N without sampling weights); None without a cross-section."""
        if self.cross_section is None or self.sum_of_weights <= 0:
            return None
        return self.cross_section / self.sum_of_weights

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalisation:
        """The normalisation that :meth:`to_dict` recorded."""
        return cls(
            data["cross_section"],
            data["cross_section_error"],
            data["n_events"],
            data["sum_of_weights"],
            data["event_weight_times"] is not None,
            data["weight_column"],
        )

    def to_dict(self) -> dict[str, Any]:
        """As the files' metadata records it (key ``normalisation`` of the provenance)."""
        return {
            "cross_section": self.cross_section,
            "cross_section_error": self.cross_section_error,
            "unit": UNIT,
            "n_events": self.n_events,
            "sum_of_weights": self.sum_of_weights,
            "event_weight": self.event_weight,
            "event_weight_times": WEIGHTS if self.weighted else None,
            "weight_column": self.weight_column,
        }


def training_cross_section(bundle_metadata: dict[str, Any]) -> tuple[float, float | None] | None:
    """The cross-section (pb) and its uncertainty (pb, or None) of a bundle's training sample.

    From the provenance of the file the bundle was fitted on (as :mod:`eventgen.simulate` writes
    it); None when that file recorded no finite, positive cross-section.
    """
    provenance = bundle_metadata.get("provenance")
    data = provenance.get("data_provenance") if isinstance(provenance, dict) else None
    xs = data.get("cross_section") if isinstance(data, dict) else None
    sigma, error = (xs.get("pb"), xs.get("pb_err")) if isinstance(xs, dict) else (None, None)
    if not _positive(sigma):
        return None
    return float(sigma), (float(error) if _positive(error) or _zero(error) else None)


def normalisation(
    bundle_metadata: dict[str, Any],
    n_events: int,
    sum_of_weights: float,
    weighted: bool,
    weight_column: str | None,
    columns: list[str],
) -> Normalisation:
    """The normalisation of a run of ``n_events`` whose compensating weights sum to ``sum_of_weights``.

    ``columns`` are the run's event columns; ``weight_column`` must be a new name, and needs a
    cross-section (ConfigError otherwise).
    """
    xs = training_cross_section(bundle_metadata)
    if weight_column is not None:
        if weight_column in columns:
            raise ConfigError(
                f"--weight-column {weight_column!r} names a column the events have already; choose another name"
            )
        if xs is None:
            raise ConfigError(
                f"--weight-column {weight_column!r} needs the training sample's cross-section, and the bundle "
                "has none (it was fitted on events that record none, as eventgen simulate writes them); "
                "leave out --weight-column and normalise by hand"
            )
    sigma, error = xs if xs is not None else (None, None)
    return Normalisation(sigma, error, n_events, sum_of_weights, weighted, weight_column)


def _positive(value: Any) -> TypeGuard[float]:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _zero(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0
