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

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from eventgen.errors import InputError
from eventgen.schema import PhysicsObject, Schema

TOP_MASS = 172.5
"""GeV; ``m_jjj`` picks the three-jet combination closest to it."""


DERIVED = ("m_jj", "m_jjj", "m_4j", "ht", "m_lj", "m_ll")
"""The derived observables :func:`physics_table` computes, in its order (``met`` is a column)."""


@dataclass(frozen=True)
class _TablePlan:
    """What :func:`physics_table` computes for a schema: the names of its columns and the column
    indices :func:`eventgen.kernels.physics_rows` reads (read-only: plans are cached per schema)."""

    names: tuple[str, ...]
    objects: np.ndarray
    pairs: np.ndarray
    jets: np.ndarray
    jet_pt: np.ndarray
    leptons: np.ndarray
    derived_at: np.ndarray


@lru_cache(maxsize=32)
def _table_plan(schema: Schema) -> _TablePlan:
    """The plan of ``schema``, built once: generation asks for it on every chunk of candidates."""
    objects = _full_objects(schema)
    families = schema.families()
    jet_objects, lepton_objects = families.get("j", ([], -1))[0], families.get("l", ([], -1))[0]
    jets, leptons = _kinematic_columns(jet_objects), _kinematic_columns(lepton_objects)
    names = [*schema.names, *(f"m_{o.name}" for o in objects)]
    names += [f"dR_{a.name}_{b.name}" for a, b in combinations(objects, 2)]
    wanted = {
        "m_jj": len(jets) >= 2,
        "m_jjj": len(jets) >= 3,
        "m_4j": len(jets) >= 4,
        "ht": bool(jet_objects),
        "m_lj": len(jets) >= 1 and len(leptons) >= 1,
        "m_ll": len(leptons) >= 2,
    }
    derived_at = np.full(len(DERIVED), -1, np.int64)
    for i, name in enumerate(DERIVED):
        if wanted[name] and name not in schema.names:  # a column of that name is the value
            derived_at[i] = len(names)
            names.append(name)
    pairs = np.array(list(combinations(range(len(objects)), 2)), np.int64).reshape(-1, 2)
    jet_pt = np.array([o.pt for o in jet_objects], np.int64)
    arrays = (_kinematic_columns(objects), pairs, jets, jet_pt, leptons, derived_at)
    for a in arrays:
        a.setflags(write=False)
    return _TablePlan(tuple(names), *arrays)


def physics_names(schema: Schema) -> list[str]:
    """The names of :func:`physics_table`'s columns for events of ``schema``."""
    return list(_table_plan(schema).names)


def physics_table(events: np.ndarray, schema: Schema) -> tuple[np.ndarray, list[str]]:
    """Every physics quantity of ``events`` ``(n_events, n_columns)`` as ``(n_events, n_quantities)``
    float64, and their names: the columns, each object's implied mass ``m_<object>``, the ΔR of
    every pair of objects ``dR_<a>_<b>``, and those :data:`DERIVED` observables the schema has the
    columns for (a column of the same name is its own value); NaN where undefined. One compiled
    pass over the events (:func:`eventgen.kernels.physics_rows`); the functions below read their
    parts of it."""
    from eventgen.kernels import physics_rows

    events = np.asarray(events)
    if events.ndim != 2 or events.shape[1] != len(schema):
        raise InputError(
            f"events have shape {events.shape}, schema {schema.name!r} has {len(schema)} columns; "
            "pass an (n_events, n_columns) array in the schema's column order"
        )
    if events.dtype not in (np.float32, np.float64):
        events = events.astype(np.float64)
    plan = _table_plan(schema)
    out = np.empty((len(events), len(plan.names)))
    physics_rows(
        events, plan.objects, plan.pairs, plan.jets, plan.jet_pt, plan.leptons, plan.derived_at, TOP_MASS, out
    )
    return out, list(plan.names)


def derived_observables(
    events: np.ndarray, schema: Schema, *, keep_undefined: bool = False
) -> dict[str, np.ndarray]:
    """Derived observables of ``events`` ``(n_events, n_columns)`` in ``schema``'s column order.

    Returns ``{name: values}`` with float64 ``values`` of shape ``(n_defined,)`` (only the events
    where the observable is defined, in event order), or ``(n_events,)`` with NaN where
    undefined when ``keep_undefined`` is true. Names are those of the module docstring, in
    that order, each present only when the schema has the columns it needs.
    """
    table, names = physics_table(events, schema)
    out = {name: table[:, names.index(name)] for name in (*DERIVED, "met") if name in names}
    if not keep_undefined:
        out = {name: v[np.isfinite(v)] for name, v in out.items()}
    return out


def object_masses(events: np.ndarray, schema: Schema) -> dict[str, np.ndarray]:
    """Each object's implied mass ``{"m_j1": (n_events,), ...}`` float64, NaN where the object is absent.

    ``sqrt(max(E² − (pT cosh η)², 0))`` for every object with E, pT, η and φ columns, in column
    order. A decoder that models E beside pT and η gets these wrong first.
    """
    table, names = physics_table(events, schema)
    return {name: table[:, names.index(name)] for name in (f"m_{o.name}" for o in _full_objects(schema))}


def pair_delta_r(events: np.ndarray, schema: Schema) -> dict[str, np.ndarray]:
    """``ΔR = sqrt(Δη² + Δφ²)`` of every pair of objects ``{"dR_j1_j2": (n_events,), ...}`` float64.

    Δφ is wrapped into [−π, π); NaN where either object is absent. Pairs in column order.
    """
    table, names = physics_table(events, schema)
    pairs = (f"dR_{a.name}_{b.name}" for a, b in combinations(_full_objects(schema), 2))
    return {name: table[:, names.index(name)] for name in pairs}


def _is_full(o: PhysicsObject) -> bool:
    """Whether ``o`` has all four kinematic columns (E, pT, η, φ)."""
    return min(o.e, o.eta, o.phi) >= 0


def _full_objects(schema: Schema) -> list[PhysicsObject]:
    """The objects with all four kinematic columns (E, pT, η, φ)."""
    return [o for o in schema.objects() if _is_full(o)]


def _kinematic_columns(objects: list[PhysicsObject]) -> np.ndarray:
    """The (E, pT, η, φ) column indices ``(n_objects, 4)`` of ``objects``; none unless all have all four."""
    if not objects or not all(map(_is_full, objects)):
        return np.zeros((0, 4), np.int64)
    return np.array([[o.e, o.pt, o.eta, o.phi] for o in objects], np.int64)


def invariant_mass(p: np.ndarray) -> np.ndarray:
    """Masses ``(...)`` of four-vectors ``(..., 4)`` ordered ``(E, px, py, pz)``; ``E² < |p|²`` gives 0."""
    m2 = p[..., 0] ** 2 - p[..., 1] ** 2 - p[..., 2] ** 2 - p[..., 3] ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def four_vectors(e: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Four-vectors ``(..., 4)`` ``(E, px, py, pz)`` in float64 from arrays of ``(E, pT, η, φ)``."""
    e, pt, eta, phi = (np.asarray(x, dtype=np.float64) for x in (e, pt, eta, phi))
    return np.stack([e, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=-1)
