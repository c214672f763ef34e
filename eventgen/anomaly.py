"""Anomaly scores of a fitted β-VAE (seed talk, slide 7): how badly an event is reconstructed.

Functions take a fitted :class:`~eventgen.bundle.Bundle` and raw events ``(n_events, n_columns)``
in the bundle's schema order and return NumPy float32.

- :func:`anomaly_scores`: per-event reconstruction MSE and negative ELBO (outlier detection),
  :func:`score_samples` one of them for events of any form (``Bundle.score_samples``),
  :func:`write_scores` writes them; :func:`to_schema` maps events of another schema into the
  bundle's layout (Z→ℓℓ events scored by a tt̄ bundle).

Denoising, the reconstruction itself, is :func:`eventgen.latent.denoise`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from eventgen.errors import ConfigError, InputError, OutputError
from eventgen.io import EventTable, as_event_table, write_events
from eventgen.latent import check_events
from eventgen.schema import Column, Schema

if TYPE_CHECKING:
    from eventgen.bundle import Bundle
    from eventgen.io import EventsLike

ScoreName = Literal["reconstruction", "neg_elbo"]
SCORE_NAMES: tuple[ScoreName, ...] = get_args(ScoreName)
_FLOAT32_EXACT = 1 << 24  # integers up to 2**24 are exact in float32


def to_schema(table: EventTable, schema: Schema) -> EventTable:
    """Events of ``table`` in the layout of ``schema``: shared columns copied, missing ones zero.

    A column missing from ``table`` is filled with 0, which in eventgen's convention means an
    absent object (a Z→ℓℓ event in the ttbar layout has MET 0, no jets and ``n_jets`` 0).
    Shared columns must have the same kind; a column of ``table`` that ``schema`` lacks raises,
    since dropping it would lose information silently. Returns ``(n_events, len(schema))``.
    """
    source = table.schema
    extra = [n for n in source.names if n not in schema.names]
    if extra:
        raise InputError(
            f"schema {source.name!r} has columns {extra[:6]} that schema {schema.name!r} lacks; "
            "map only into a schema holding every column of the input"
        )
    out = np.zeros((len(table), len(schema)), np.float32)
    for j, column in enumerate(schema.columns):
        if column.name in source.names:
            i = source.index(column.name)
            if source.columns[i].kind != column.kind:
                raise InputError(
                    f"column {column.name!r} is of kind {source.columns[i].kind!r} in schema "
                    f"{source.name!r} but {column.kind!r} in {schema.name!r}; the schemas are incompatible"
                )
            out[:, j] = table.data[:, i]
    return EventTable(out, schema, {**table.metadata, "mapped_from": source.name})


def anomaly_scores(bundle: Bundle, events: np.ndarray) -> dict[str, np.ndarray]:
    """Per-event anomaly scores of raw ``events`` ``(n_events, n_columns)``; higher = more unusual.

    Returns ``{"reconstruction": (n_events,), "neg_elbo": (n_events,)}`` float32:

    - ``reconstruction``: MSE over the preprocessed features of ``decode(mu)`` vs the input;
    - ``neg_elbo``: the training loss of that one event, ``(1 - β)·MSE + β·KL(N(μ, σ²) || N(0, 1))``,
      made deterministic by taking ``z = μ`` for the MSE term (no sampling noise).

    Events must be valid input of the preprocessing (non-negative energies and pT).
    """
    from eventgen.model import encode_numpy, reconstruction_error_numpy

    x = bundle.preprocessor.transform(check_events(bundle.schema, events, "anomaly_scores"))
    mu, sigma = encode_numpy(bundle.model, x)
    mse = reconstruction_error_numpy(bundle.model, x).astype(np.float64)
    var = np.maximum(sigma.astype(np.float64), np.finfo(np.float32).tiny) ** 2
    kl = -0.5 * np.sum(1.0 + np.log(var) - mu.astype(np.float64) ** 2 - var, axis=1)
    beta = float(bundle.model_settings.beta)
    return {
        "reconstruction": mse.astype(np.float32),
        "neg_elbo": ((1.0 - beta) * mse + beta * kl).astype(np.float32),
    }


def score_samples(bundle: Bundle, events: EventsLike, score: ScoreName = "reconstruction") -> np.ndarray:
    """One anomaly score per event, ``(n_events,)`` float32, as ``eventgen score`` computes it.

    ``events``: an :class:`EventTable`, a pandas DataFrame, an array ``(n_events, n_columns)`` in the
    bundle's schema, or an event file. Events holding the bundle's columns are scored on those;
    events of another schema are mapped into the bundle's first (:func:`to_schema`). ``score`` is
    one of :data:`SCORE_NAMES` (see :func:`anomaly_scores`); higher is more unusual.
    """
    if score not in SCORE_NAMES:
        raise ConfigError(f"score={score!r} is unknown; choose one of {', '.join(SCORE_NAMES)}")
    is_array = isinstance(events, np.ndarray)
    table = as_event_table(events, bundle.schema if is_array else None)
    if set(bundle.schema.names) <= set(table.schema.names):
        table = as_event_table(table, bundle.schema)
    else:
        table = to_schema(table, bundle.schema)
    return anomaly_scores(bundle, table.data)[score]


def write_scores(
    path: str | Path,
    scores: dict[str, np.ndarray],
    event_ids: np.ndarray | None = None,
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write scores as a table ``event, reconstruction, neg_elbo`` (Parquet or HDF5, float32 columns).

    ``event_ids`` ``(n_events,)`` defaults to ``0..n-1``; ids must be below 2**24 to be exact.
    """
    missing = [k for k in SCORE_NAMES if k not in scores]
    if missing:
        raise InputError(f"scores lack {missing}; pass the dict returned by anomaly_scores")
    n = len(scores[SCORE_NAMES[0]])
    ids = np.arange(n) if event_ids is None else np.asarray(event_ids)
    if ids.shape != (n,) or any(np.shape(scores[k]) != (n,) for k in SCORE_NAMES):
        raise InputError(f"event ids {ids.shape} and scores must all have shape ({n},)")
    if n and (ids.min() < 0 or ids.max() >= _FLOAT32_EXACT):
        raise OutputError(f"event ids must be in [0, {_FLOAT32_EXACT}) to be stored exactly as float32")
    schema = Schema("scores", tuple(Column(name, "generic") for name in ("event", *SCORE_NAMES)))
    data = np.column_stack([ids, *(scores[k] for k in SCORE_NAMES)]).astype(np.float32)
    return write_events(path, data, schema, metadata, overwrite=overwrite)
