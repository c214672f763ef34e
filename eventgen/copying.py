"""Does a generator copy its training events? Memorisation with the collision's symmetries divided out.

A collision at a hadron (or lepton) collider looks the same rotated about the beam axis and
mirrored in φ or in η. A generator that returns a rotated or mirrored training event has copied
it, but in the raw columns such a copy sits far from its original. Both checks here therefore
work in a *canonical frame* (:func:`canonical_frame`): every azimuth relative to the leading
object's (the highest-pT object with a φ column), mirrored so that the second object's Δφ ≥ 0,
every η mirrored so that the leading object's η ≥ 0, and energy-like columns (energies, pT, MET)
as ``log1p`` (GeV), standardised on the training sample.

- :func:`symmetric_memorisation`: the median distance of a generated event to its nearest
  training event over that to its nearest held-out event (:func:`eventgen.metrics.memorisation`
  in the canonical frame): ≈ 1 for fresh events, 0 for copies.
- :func:`data_copying`: the test statistic C_T of Meehan, Chaudhuri and Dasgupta, "A
  non-parametric test to detect data-copying in generative models" (arXiv:2004.05675). The
  training sample is cut into k-means cells; in each cell the Mann–Whitney U statistic compares
  the generated events' distances to the training sample with the held-out events' distances,
  as a Z-score; C_T is their average weighted by the fraction of held-out events per cell.
  C_T ≈ 0 for fresh events, ≪ 0 when generated events sit closer to the training events than
  fresh ones do (copying), ≫ 0 when they sit farther (under-fitting, blur). Under the null each
  Z is ~N(0, 1), so the error given is the spread of C_T for a fresh sample.

Both are unweighted: copying is a property of events, not of a weighted distribution.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from eventgen.errors import InputError
from eventgen.schema import Schema

_OBJECTS_FIRST = 1e12
"""Added to a present object's pT when ranking the frame's candidates: objects before MET."""


def canonical_frame(events: np.ndarray, schema: Schema) -> np.ndarray:
    """``events`` ``(n_events, n_columns)`` in the canonical frame, float64 of the same shape.

    Azimuths (every ``phi`` column) are taken relative to the leading object's φ and wrapped into
    [−π, π), then mirrored so that the second-leading object's Δφ ≥ 0; pseudorapidities (every
    ``eta`` column) are mirrored so that the leading object's η ≥ 0. In an event with fewer than
    two objects, a standalone vector (a ``pt`` column ``X`` with an ``X_phi`` column: MET) takes
    the missing place. Columns of absent objects (pT = 0) stay zero. ``energy`` and ``pt``
    columns become ``log1p(max(x, 0))``. A schema with nothing that has a φ column is only
    log-transformed.
    """
    events = np.asarray(events)
    if events.ndim != 2 or events.shape[1] != len(schema):
        raise InputError(
            f"events have shape {events.shape}, schema {schema.name!r} has {len(schema)} columns; "
            "pass an (n_events, n_columns) array in the schema's column order"
        )
    x = events.astype(np.float64)
    objects = [o for o in schema.objects() if o.phi >= 0]
    # (pt, phi, eta) columns of the frame's candidates: the objects, then standalone vectors (MET)
    # that set the frame only in events with fewer than two objects
    vectors = [(o.pt, o.phi, o.eta) for o in objects]
    vectors += [
        (i, schema.index(f"{c.name}_phi"), -1)
        for i, c in enumerate(schema.columns)
        if c.kind == "pt" and c.obj is None and f"{c.name}_phi" in schema.names
    ]
    phi_cols = schema.indices_of_kind("phi")
    eta_cols = schema.indices_of_kind("eta")
    if vectors and len(x):
        rows = np.arange(len(x))
        pt, phi, eta = (np.array(v) for v in zip(*vectors, strict=True))
        pts = x[:, pt]
        rank = np.where(
            pts > 0, pts + np.where(np.arange(len(vectors)) < len(objects), _OBJECTS_FIRST, 0.0), 0.0
        )
        order = np.argsort(-rank, axis=1, kind="stable")
        has = rank[rows[:, None], order[:, :2]] > 0  # (n, 2): a leading and a second vector
        absent = np.zeros_like(x, dtype=bool)
        for o in objects:
            cols = [c for c in (o.e, o.pt, o.eta, o.phi) if c >= 0]
            absent[:, cols] = (x[:, o.pt] <= 0)[:, None]
        lead_phi = np.where(has[:, 0], x[rows, phi[order[:, 0]]], 0.0)
        rotated = np.remainder(x[:, phi_cols] - lead_phi[:, None] + np.pi, 2 * np.pi) - np.pi
        x[:, phi_cols] = np.where(absent[:, phi_cols], 0.0, rotated)
        if len(vectors) > 1:
            second = np.where(has[:, 1], x[rows, phi[order[:, 1]]], 0.0)
            x[:, phi_cols] *= np.where(second < 0, -1.0, 1.0)[:, None]
        lead_eta_col = eta[order[:, 0]]  # -1: the leading vector has no η
        lead_eta = np.where(has[:, 0] & (lead_eta_col >= 0), x[rows, np.maximum(lead_eta_col, 0)], 0.0)
        x[:, eta_cols] *= np.where(lead_eta < 0, -1.0, 1.0)[:, None]
    energy = np.r_[schema.indices_of_kind("energy"), schema.indices_of_kind("pt")]
    x[:, energy] = np.log1p(np.maximum(x[:, energy], 0.0))
    return x


def symmetric_memorisation(
    generated: np.ndarray,
    train: np.ndarray,
    heldout: np.ndarray,
    schema: Schema,
    seed: int,
    *,
    max_generated: int = 5_000,
    max_events: int = 50_000,
    n_boot: int = 30,
) -> dict[str, Any]:
    """:func:`eventgen.metrics.memorisation` of ``(n, n_columns)`` samples in the canonical frame.

    ``generated`` is subsampled to ``max_generated`` events, the training and held-out samples to
    the same size (the smaller, at most ``max_events``). Returns the same dict (``ratio``,
    ``closer_to_train``, ...): a rotated or mirrored copy of a training event counts as a copy.
    """
    from eventgen.metrics import memorisation

    rng = np.random.default_rng(seed)
    g = np.asarray(generated)
    if max_generated < 1:
        raise InputError(f"max_generated must be positive, got {max_generated}")
    if len(g) > max_generated:
        g = g[rng.choice(len(g), max_generated, replace=False)]
    t, h = (canonical_frame(x, schema) for x in (train, heldout))
    return memorisation(
        canonical_frame(g, schema), t, h, int(rng.integers(2**31)), n_boot=n_boot, max_events=max_events
    )


def data_copying(
    generated: np.ndarray,
    train: np.ndarray,
    heldout: np.ndarray,
    schema: Schema,
    seed: int,
    *,
    n_cells: int = 20,
    max_generated: int = 5_000,
    min_per_cell: int = 20,
) -> dict[str, Any]:
    """The data-copying statistic C_T (arXiv:2004.05675) of ``generated`` against ``train``.

    All samples are ``(n, n_columns)`` in the schema's order, taken to the canonical frame and
    standardised on the training sample. ``n_cells`` k-means cells are fitted on the training
    sample; generated and held-out events (each subsampled to ``max_generated``) are assigned to
    cells; a cell with fewer than ``min_per_cell`` of either is skipped. Per cell, Z is the
    Mann–Whitney U of the generated vs held-out distances to the nearest training event,
    standardised; ``C_T = Σ π_k Z_k / Σ π_k`` with ``π_k`` the cell's held-out fraction.

    Returns ``{"c_t": [value, error], "cells_used": k, "n_cells": n_cells}`` (error: the spread
    ``sqrt(Σπ²) / Σπ`` of C_T for a fresh sample; value None when no cell is usable).
    """
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from eventgen.metrics import _nearest_distances

    if n_cells < 1 or min_per_cell < 1 or max_generated < 1:
        raise InputError("n_cells, min_per_cell and max_generated must be positive")
    rng = np.random.default_rng(seed)
    t = canonical_frame(train, schema)
    if len(t) < n_cells:
        raise InputError(f"data_copying needs at least n_cells={n_cells} training events, got {len(t)}")
    mean, std = t.mean(axis=0), t.std(axis=0)
    std[std == 0] = 1.0
    t = (t - mean) / std

    def query(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if len(x) > max_generated:
            x = x[rng.choice(len(x), max_generated, replace=False)]
        return (canonical_frame(x, schema) - mean) / std

    q, p = query(generated), query(heldout)
    if len(q) == 0 or len(p) == 0:
        raise InputError("data_copying needs generated and held-out events; one of them is empty")
    with threadpool_limits(1, user_api="openmp"):
        km = KMeans(n_cells, n_init=1, random_state=int(rng.integers(2**31))).fit(t)
        cell_q, cell_p = km.predict(q), km.predict(p)
    d_q, d_p = _nearest_distances(q, t), _nearest_distances(p, t)
    num = den = den2 = 0.0
    used = 0
    for k in range(n_cells):
        a, b = d_q[cell_q == k], d_p[cell_p == k]
        if len(a) < min_per_cell or len(b) < min_per_cell:
            continue
        u = mannwhitneyu(a, b, alternative="two-sided").statistic
        m, n = len(a), len(b)
        z = (u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12)
        w = n / len(p)
        num, den, den2, used = num + w * z, den + w, den2 + w * w, used + 1
    value = num / den if den > 0 else None
    error = math.sqrt(den2) / den if den > 0 else None
    return {"c_t": [value, error], "cells_used": used, "n_cells": n_cells}
