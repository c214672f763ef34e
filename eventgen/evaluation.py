"""Evaluation: generated events against held-out originals, always next to truth vs truth.

The held-out reference sample is split in two halves A and B of equal size. Every metric
is computed for *generated vs A* and for *B vs A* (two independent samples of the original
simulation), so every number comes with the scale it must be read against. With the
fitting sample the memorisation check compares each generated event's distance to its
nearest training event with that to its nearest held-out event, on equal-size samples:
thinning the training sample would hide copies of the dropped events, so the whole
held-out sample is used and it should be at least as large as the training sample.

This module computes; :mod:`eventgen.report` renders the result (``metrics.json``,
``report.md``, a self-contained ``report.html``) with the figures of :mod:`eventgen.plots`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from eventgen.errors import InputError
from eventgen.io import EventTable
from eventgen.schema import Schema

log = logging.getLogger(__name__)

#: Fewest generated events (and reference events per half) the metrics work on; the classifier
#: test trains on half of each sample and stops early on a tenth of that.
MIN_EVENTS = 100


def evaluate(
    generated: EventTable,
    reference: EventTable,
    train: EventTable | None = None,
    *,
    seed: int = 0,
    max_events: int = 50_000,
    n_boot: int = 10,
    truth_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All metrics of ``generated`` and of the truth-vs-truth baseline against held-out ``reference``.

    Samples are subsampled with ``seed`` to at most ``max_events`` events each (the reference to
    2 × that, then halved). Returns ``{"generated": compare(...), "truth": compare(...),
    "memorisation": {...}, ...}`` (JSON-serialisable). The truth-vs-truth numbers depend only on
    the reference, the training sample and the settings: ``truth_from``, an earlier result with
    the same ones (for another generator), supplies them instead of computing them again.
    """
    from eventgen.metrics import compare, memorisation

    schema = reference.schema
    gen = _in_schema(generated, schema, "generated")
    rng = np.random.default_rng(seed)
    ref = _subsample(reference.data, 2 * max_events, rng)
    if len(ref) < 20:
        raise InputError(f"the reference has {len(ref)} events; evaluation needs at least 20 held-out events")
    half = len(ref) // 2
    ref_a, ref_b = ref[:half], ref[half : 2 * half]
    gen = _subsample(gen, half, rng)
    seeds = np.random.SeedSequence(seed).generate_state(4)
    if truth_from is not None and (
        truth_from["seed"] != seed
        or truth_from["n_events"]["reference_half"] != half
        or ("memorisation" in truth_from) != (train is not None)
    ):
        raise InputError("truth_from is the result of another reference, seed or training sample; drop it")
    result: dict[str, Any] = {
        "schema": schema.name,
        "n_events": {"generated": len(gen), "reference_half": int(half)},
        "seed": seed,
        "generated": compare(gen, ref_a, schema, int(seeds[0]), max_events=max_events, n_boot=n_boot),
        "truth": truth_from["truth"]
        if truth_from is not None
        else compare(ref_b, ref_a, schema, int(seeds[0]), max_events=max_events, n_boot=n_boot),
    }
    if train is not None:
        # Copies are only exposed if the training sample is not thinned: compare with the whole
        # held-out sample, at the size of the smaller of the two (give n_test >= n_train).
        train_data = _in_schema(train, schema, "training")
        n_mem = min(len(train_data), len(ref))
        result["memorisation"] = {
            "generated": memorisation(gen, train_data, ref, int(seeds[1]), max_events=n_mem),
            "truth": truth_from["memorisation"]["truth"]
            if truth_from is not None
            else memorisation(ref_b, train_data, ref_a, int(seeds[1]), max_events=half),
        }
        result["n_events"]["memorisation_reference"] = n_mem
    return result


def headline(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The headline rows ``(metric, generated, truth vs truth)`` of an :func:`evaluate` result."""
    g, t = result["generated"], result["truth"]
    rows = [
        ("classifier AUC (0.5 = indistinguishable)", g["classifier_auc"], t["classifier_auc"]),
        ("mean per-column W1 / sigma", g["mean_column_w1"], t["mean_column_w1"]),
        ("MMD^2 (RBF)", g["mmd"], t["mmd"]),
        ("Frechet distance (not ranked)", g["frechet"], t["frechet"]),
        ("holes fraction phi_j1 vs phi_j2", g["holes"], t["holes"]),
        ("physicality (all checks)", g["physicality"]["all"], t["physicality"]["all"]),
    ]
    for name in ("m_jj", "m_jjj", "m_4j", "ht", "m_lj", "met", "m_ll"):
        if name in g.get("observables", {}):
            rows.append((f"{name}: W1 / sigma", g["observables"][name]["w1"], t["observables"][name]["w1"]))
    if "memorisation" in result:
        m = result["memorisation"]
        rows.append(
            ("memorisation ratio (1 = fresh, 0 = copies)", m["generated"]["ratio"], m["truth"]["ratio"])
        )
    return rows


def _in_schema(table: EventTable, schema: Schema, what: str) -> np.ndarray:
    """``table``'s events in ``schema``'s column order (extra columns such as ``weight`` dropped)."""
    positions = schema.check_columns(table.schema.names, f"the {what} events")
    return np.ascontiguousarray(table.data[:, positions])


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= n:
        return x[rng.permutation(len(x))]
    return x[rng.choice(len(x), n, replace=False)]
