"""Derived physics observables of events: invariant masses, H_T and MET.

Objects are found through :meth:`eventgen.schema.Schema.families` (family ``"j"`` = jets,
``"l"`` = leptons); an object is present when its pT is positive (absent objects are
zero-filled). Four-vectors come from ``(E, pT, η, φ)``: ``px = pT cos φ``, ``py = pT sin φ``,
``pz = pT sinh η``, and a mass is ``sqrt(max(E² − |p|², 0))``. Arithmetic is float64.

An observable that needs objects an event lacks (``m_jj`` of a one-jet event) is *undefined*
for that event. :func:`derived_observables` returns by default only the defined values of each
observable, so that histograms of a generated and a reference sample compare like with like
(the fraction of events with a value is itself compared through the count columns); with
``keep_undefined=True`` it returns one value per event with NaN where undefined (the form a
classifier that handles missing values takes as features).

Observables (each only when the schema has what it needs):

- ``m_jj``: mass of the two leading jets (events with >= 2 jets);
- ``m_jjj``: the three-jet mass closest to the top mass, 172.5 GeV, among the combinations of
  three of the present jets of the (up to four) leading jets (events with >= 3 jets);
- ``m_4j``: mass of the four leading jets (events with >= 4 jets, 4 jet slots or more);
- ``ht``: scalar sum of the pT of all jets (every event; 0 without jets);
- ``m_lj``: mass of the leading lepton and the leading jet (events with both);
- ``m_ll``: mass of the two leading leptons (events with >= 2 leptons);
- ``met``: the ``met`` column, if the schema has one (every event).

Per object, for the classifier a physicist would train (:func:`object_masses`,
:func:`pair_delta_r`): each object's implied mass ``sqrt(max(E² − (pT cosh η)², 0))`` and the
distance ``ΔR = sqrt(Δη² + Δφ²)`` of every pair of objects, NaN where an object is absent.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike

from eventgen.errors import InputError
from eventgen.schema import PhysicsObject, Schema

TOP_MASS = 172.5
"""GeV; ``m_jjj`` picks the three-jet combination closest to it."""


def derived_observables(
    events: np.ndarray, schema: Schema, *, keep_undefined: bool = False
) -> dict[str, np.ndarray]:
    """Derived observables of ``events`` ``(n_events, n_columns)`` in ``schema``'s column order.

    Returns ``{name: values}`` with float64 ``values`` of shape ``(n_defined,)`` (only the events
    where the observable is defined, in event order), or ``(n_events,)`` with NaN where
    undefined when ``keep_undefined`` is true. Names are those of the module docstring, in
    that order, each present only when the schema has the columns it needs.
    """
    events = np.asarray(events)
    if events.ndim != 2 or events.shape[1] != len(schema):
        raise InputError(
            f"events have shape {events.shape}, schema {schema.name!r} has {len(schema)} columns; "
            "pass an (n_events, n_columns) array in the schema's column order"
        )
    families = schema.families()
    jets = _four_vectors(events, families.get("j", ([], -1))[0])
    leptons = _four_vectors(events, families.get("l", ([], -1))[0])
    out: dict[str, np.ndarray] = {}
    if jets is not None:
        p, present = jets
        n_slots = p.shape[1]
        if n_slots >= 2:
            out["m_jj"] = _mass_where(p[:, :2].sum(axis=1), present[:, :2].all(axis=1))
        if n_slots >= 3:
            out["m_jjj"] = _top_candidate_mass(p[:, :4], present[:, :4])
        if n_slots >= 4:
            out["m_4j"] = _mass_where(p[:, :4].sum(axis=1), present[:, :4].all(axis=1))
    jet_objects = families.get("j", ([], -1))[0]
    if jet_objects:
        pts = np.asarray([np.maximum(events[:, o.pt], 0.0) for o in jet_objects])
        out["ht"] = pts.sum(axis=0, dtype=np.float64)
    if jets is not None and leptons is not None:
        both = jets[1][:, 0] & leptons[1][:, 0]
        out["m_lj"] = _mass_where(jets[0][:, 0] + leptons[0][:, 0], both)
    if leptons is not None and leptons[0].shape[1] >= 2:
        out["m_ll"] = _mass_where(leptons[0][:, :2].sum(axis=1), leptons[1][:, :2].all(axis=1))
    if "met" in schema.names:
        out["met"] = events[:, schema.index("met")].astype(np.float64)
    if not keep_undefined:
        out = {name: v[np.isfinite(v)] for name, v in out.items()}
    return out


def object_masses(events: np.ndarray, schema: Schema) -> dict[str, np.ndarray]:
    """Each object's implied mass ``{"m_j1": (n_events,), ...}`` float64, NaN where the object is absent.

    ``sqrt(max(E² − (pT cosh η)², 0))`` for every object with E, pT and η columns, in column order.
    A decoder that models E beside pT and η gets these wrong first.
    """
    out = {}
    for o in _full_objects(schema):
        e, pt, eta = (np.asarray(events[:, i], dtype=np.float64) for i in (o.e, o.pt, o.eta))
        m = np.sqrt(np.maximum(e**2 - (pt * np.cosh(eta)) ** 2, 0.0))
        out[f"m_{o.name}"] = np.where(pt > 0, m, np.nan)
    return out


def pair_delta_r(events: np.ndarray, schema: Schema) -> dict[str, np.ndarray]:
    """``ΔR = sqrt(Δη² + Δφ²)`` of every pair of objects ``{"dR_j1_j2": (n_events,), ...}`` float64.

    Δφ is wrapped into [−π, π); NaN where either object is absent. Pairs in column order.
    """
    out = {}
    for a, b in combinations(_full_objects(schema), 2):
        present = (events[:, a.pt] > 0) & (events[:, b.pt] > 0)
        deta = np.asarray(events[:, a.eta], dtype=np.float64) - events[:, b.eta]
        dphi = np.asarray(events[:, a.phi], dtype=np.float64) - events[:, b.phi]
        dphi = np.remainder(dphi + np.pi, 2 * np.pi) - np.pi
        out[f"dR_{a.name}_{b.name}"] = np.where(present, np.hypot(deta, dphi), np.nan)
    return out


def _full_objects(schema: Schema) -> list[PhysicsObject]:
    """The objects with all four kinematic columns (E, pT, η, φ)."""
    return [o for o in schema.objects() if min(o.e, o.eta, o.phi) >= 0]


def invariant_mass(p: np.ndarray) -> np.ndarray:
    """Masses ``(...)`` of four-vectors ``(..., 4)`` ordered ``(E, px, py, pz)``; ``E² < |p|²`` gives 0."""
    m2 = p[..., 0] ** 2 - p[..., 1] ** 2 - p[..., 2] ** 2 - p[..., 3] ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def four_vectors(e: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Four-vectors ``(..., 4)`` ``(E, px, py, pz)`` in float64 from arrays of ``(E, pT, η, φ)``."""
    e, pt, eta, phi = (np.asarray(x, dtype=np.float64) for x in (e, pt, eta, phi))
    return np.stack([e, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=-1)


def _four_vectors(events: np.ndarray, objects: list[PhysicsObject]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(p, present)``: four-vectors ``(n_events, n_objects, 4)`` (zero when absent) and presence
    ``(n_events, n_objects)``; None when the family is missing or lacks E, η or φ columns."""
    if not objects or any(min(o.e, o.eta, o.phi) < 0 for o in objects):
        return None
    cols = np.array([[o.e, o.pt, o.eta, o.phi] for o in objects])  # (n_objects, 4)
    block = events[:, cols]  # (n_events, n_objects, 4)
    present = block[:, :, 1] > 0
    p = four_vectors(block[..., 0], block[..., 1], block[..., 2], block[..., 3])
    p[~present] = 0.0
    return p, present


def _mass_where(p: np.ndarray, defined: ArrayLike) -> np.ndarray:
    """Masses of ``p`` ``(n_events, 4)``, NaN where not ``defined`` ``(n_events,)``."""
    return np.where(defined, invariant_mass(p), np.nan)


def _top_candidate_mass(p: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per event, the mass of three present jets closest to :data:`TOP_MASS` (NaN with < 3 jets).

    ``p`` is ``(n_events, n_jets, 4)`` with ``n_jets`` in 3..4, ``present`` ``(n_events, n_jets)``.
    """
    triples = list(combinations(range(p.shape[1]), 3))
    masses = np.stack([invariant_mass(p[:, list(t)].sum(axis=1)) for t in triples], axis=1)
    valid = np.stack([present[:, list(t)].all(axis=1) for t in triples], axis=1)
    distance = np.where(valid, np.abs(masses - TOP_MASS), np.inf)
    best = np.argmin(distance, axis=1)
    chosen = np.take_along_axis(masses, best[:, None], axis=1)[:, 0]
    return np.where(valid.any(axis=1), chosen, np.nan)
