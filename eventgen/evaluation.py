"""Evaluation: generated events against held-out originals, always next to truth vs truth.

The held-out reference sample is split in two halves A and B of equal size. Every metric
is computed for *generated vs A* and for *B vs A* (two independent samples of the original
simulation), so every number comes with the scale it must be read against. With the bundle,
the **decoder ceiling** joins them: half B encoded and decoded through the bundle
(:func:`eventgen.baselines.ceiling_events`) vs A — what a perfect latent sampler would score,
so that decoder error and sampling error are told apart.

The classifier two-sample test sees what a physicist sees (:func:`eventgen.metrics.physics_features`:
columns, each object's mass, ΔR of every object pair, the derived observables); it trains on
half of each sample, so ``max_events`` = 40 000 (a reference of 80 000 events) gives it 20 000
events per class; smaller samples use what there is and the result says how many
(``n_events["classifier_train"]``). Its AUC on the columns alone is reported beside it.

With the fitting sample, memorisation and the data-copying test C_T (:mod:`eventgen.copying`)
are computed with the collision's symmetries divided out, against the whole held-out sample:
thinning the training sample would hide copies of the dropped events, so it should be at
least as large as the training sample.

A ``weight`` column (or ``weight_column``) in the generated or reference events weights the
histograms, W1 and the classifier (absent: weight 1). A reference whose columns differ from
the generated events' is refused (:class:`SchemaMismatchError`). Progress is logged per stage.

This module computes; :mod:`eventgen.report` renders the result (``metrics.json``,
``report.md``, a self-contained ``report.html``) with the figures of :mod:`eventgen.plots`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from eventgen.errors import InputError
from eventgen.io import EventTable
from eventgen.schema import Schema

if TYPE_CHECKING:
    from eventgen.bundle import Bundle

log = logging.getLogger(__name__)

#: Fewest generated events (and reference events per half) the metrics work on; the classifier
#: test trains on half of each sample and stops early on a tenth of that.
MIN_EVENTS = 100
DEFAULT_MAX_EVENTS = 40_000
"""Events per sample: the reference is drawn at twice that and halved, the classifier trains on half."""
WEIGHT_COLUMN = "weight"


class SchemaMismatchError(InputError):
    """Two event samples of an evaluation do not have the same columns."""


def evaluate(
    generated: EventTable,
    reference: EventTable,
    train: EventTable | None = None,
    *,
    bundle: Bundle | None = None,
    seed: int = 0,
    max_events: int = DEFAULT_MAX_EVENTS,
    n_boot: int = 10,
    truth_from: dict[str, Any] | None = None,
    weight_column: str = WEIGHT_COLUMN,
) -> dict[str, Any]:
    """All metrics of ``generated`` and of the truth-vs-truth baseline against held-out ``reference``.

    Samples are subsampled with ``seed`` to at most ``max_events`` events each (the reference to
    2 × that, then halved). Returns (JSON-serialisable)::

        {"schema", "seed", "weighted": {"generated": bool, "reference": bool},
         "n_events": {"generated", "reference_half", "classifier_train", ["memorisation_reference"]},
         "generated": compare(...), "truth": compare(...),       # eventgen.metrics.compare
         "ceiling": compare(...),                                # with ``bundle``
         "memorisation": {"generated": {...}, "truth": {...}}}   # with ``train``: symmetric
                                                                 # memorisation + "c_t", "c_t_cells"

    ``bundle`` (the one that generated the events) adds the decoder ceiling. The truth-vs-truth
    numbers depend only on the reference, the training sample and the settings: ``truth_from``,
    an earlier result with the same ones (for another generator), supplies them instead of
    computing them again. Raises :class:`SchemaMismatchError` when the samples' columns differ.
    """
    from eventgen.copying import data_copying, symmetric_memorisation
    from eventgen.metrics import compare

    if max_events < 10:
        raise InputError(f"max_events must be at least 10 events per sample, got {max_events}")
    schema = reference.schema
    check_same_columns(generated.schema, schema, weight_column, "generated")
    gen, gen_w = events_and_weights(generated, schema, weight_column)
    ref, ref_w = events_and_weights(reference, schema, weight_column)
    rng = np.random.default_rng(seed)
    keep = _draw(len(ref), 2 * max_events, rng)
    ref, ref_w = ref[keep], _take(ref_w, keep)
    if len(ref) < 20:
        raise InputError(f"the reference has {len(ref)} events; evaluation needs at least 20 held-out events")
    half = len(ref) // 2
    a, b = slice(0, half), slice(half, 2 * half)
    ref_a, ref_b, w_a, w_b = ref[a], ref[b], _take(ref_w, a), _take(ref_w, b)
    keep = _draw(len(gen), half, rng)
    gen, gen_w = gen[keep], _take(gen_w, keep)
    seeds = np.random.SeedSequence(seed).generate_state(4)
    if truth_from is not None and (
        truth_from["seed"] != seed
        or truth_from["n_events"]["reference_half"] != half
        or ("memorisation" in truth_from) != (train is not None)
    ):
        raise InputError("truth_from is the result of another reference, seed or training sample; drop it")

    def versus_a(what: str, events: np.ndarray, weights: np.ndarray | None) -> dict[str, Any]:
        log.info("evaluate: %s vs held-out half A (%d + %d events)", what, len(events), half)
        return compare(
            events,
            ref_a,
            schema,
            int(seeds[0]),
            max_events=max_events,
            n_boot=n_boot,
            generated_weights=weights,
            reference_weights=w_a,
        )

    result: dict[str, Any] = {
        "schema": schema.name,
        "n_events": {"generated": len(gen), "reference_half": int(half)},
        "seed": seed,
        "weighted": {"generated": gen_w is not None, "reference": ref_w is not None},
        "generated": versus_a("generated", gen, gen_w),
        "truth": truth_from["truth"] if truth_from is not None else versus_a("truth: half B", ref_b, w_b),
    }
    result["n_events"]["classifier_train"] = result["generated"]["classifier"]["n_train"]
    if bundle is not None:
        from eventgen.baselines import ceiling_events

        check_same_columns(bundle.schema, schema, weight_column, "bundle's")
        log.info("evaluate: decoder ceiling, encode -> decode of held-out half B through the bundle")
        ceiling = ceiling_events(bundle, ref_b[:, [schema.index(n) for n in bundle.schema.names]])
        ceiling = ceiling[:, [bundle.schema.index(n) for n in schema.names]]
        result["ceiling"] = versus_a("decoder ceiling", ceiling, w_b)
    if train is not None:
        check_same_columns(train.schema, schema, weight_column, "training")
        train_data = events_and_weights(train, schema, weight_column)[0]
        # Copies are only exposed if the training sample is not thinned: compare with the whole
        # held-out sample, at the size of the smaller of the two (give n_test >= n_train).
        n_mem = min(len(train_data), len(ref))

        def copying(what: str, events: np.ndarray, heldout: np.ndarray, n: int) -> dict[str, Any]:
            log.info("evaluate: memorisation and data-copying C_T of %s (symmetries divided out)", what)
            memo = symmetric_memorisation(events, train_data, heldout, schema, int(seeds[1]), max_events=n)
            ct = data_copying(events, train_data, heldout, schema, int(seeds[2]))
            return {**memo, "c_t": ct["c_t"], "c_t_cells": ct["cells_used"]}

        result["memorisation"] = {
            "generated": copying("generated", gen, ref, n_mem),
            "truth": truth_from["memorisation"]["truth"]
            if truth_from is not None
            else copying("truth: half B", ref_b, ref_a, half),
        }
        result["n_events"]["memorisation_reference"] = n_mem
    return result


def headline(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The headline rows ``(metric, generated, truth vs truth)`` of an :func:`evaluate` result."""
    g, t = result["generated"], result["truth"]
    rows = [
        ("classifier AUC (0.5 = indistinguishable)", g["classifier_auc"], t["classifier_auc"]),
        (
            "classifier AUC, columns alone (diagnostic)",
            g["classifier_auc_columns"],
            t["classifier_auc_columns"],
        ),
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
        rows.append(("data-copying C_T (0 = fresh, < 0 = copies)", m["generated"]["c_t"], m["truth"]["c_t"]))
    return rows


def check_same_columns(schema: Schema, reference: Schema, weight_column: str, what: str) -> None:
    """Raise :class:`SchemaMismatchError` (one line, naming the differences) unless ``schema`` has the
    ``reference`` schema's columns (order aside, ``weight_column`` ignored) and no other columns but
    generic ones (such as the per-event normalisation weight of generated files)."""
    mine = [n for n in schema.names if n != weight_column]
    theirs = [n for n in reference.names if n != weight_column]
    missing = [n for n in theirs if n not in mine]
    extra = [c.name for c in schema.columns if c.name not in theirs and c.name != weight_column]
    extra = [n for n in extra if schema.columns[schema.index(n)].kind != "generic"]
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"lack {_names(missing)}")
    if extra:
        parts.append(f"have {_names(extra)} that the reference lacks")
    raise SchemaMismatchError(
        f"the reference (schema {reference.name!r}) does not match the {what} events (schema "
        f"{schema.name!r}): the {what} events {' and '.join(parts)}; evaluate against held-out "
        "events of the same process and layout"
    )


def events_and_weights(
    table: EventTable, schema: Schema, weight_column: str = WEIGHT_COLUMN
) -> tuple[np.ndarray, np.ndarray | None]:
    """``table``'s events in ``schema``'s column order ``(n, len(schema))`` and its weights ``(n,)``.

    The weights are ``table``'s ``weight_column`` when it has one that is not a column of
    ``schema`` (None otherwise: every event weighs 1).
    """
    positions = schema.check_columns(table.schema.names, "the events")
    events = np.ascontiguousarray(table.data[:, positions])
    if weight_column in table.schema.names and weight_column not in schema.names:
        return events, table.data[:, table.schema.index(weight_column)].astype(np.float64)
    return events, None


def _names(names: list[str]) -> str:
    return str(names[:6])[:-1] + (", ...]" if len(names) > 6 else "]")


def _draw(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of a random draw of ``min(n, size)`` of ``n`` rows, without replacement."""
    return rng.permutation(n) if n <= size else rng.choice(n, size, replace=False)


def _take(weights: np.ndarray | None, rows: slice | np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[rows]
