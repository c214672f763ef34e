"""Physics clean-up of decoded events: make every generated event a physical one.

A decoder outputs continuous numbers; a detector-level event obeys rules that it does
not learn exactly. :class:`PhysicsCleanup` learns the acceptance of the training sample
(the smallest pT of a present object of each family, the |η| range, the largest count)
and applies, in order:

1. an object is present iff its pT reaches its family's threshold; absent objects are
   exactly zero in all their columns;
2. present objects of a family are sorted by pT, leading first;
3. the family's count is a non-negative integer consistent with the present objects
   (equal to it below the number of slots, at least it when all slots are filled);
4. azimuths are wrapped to (-π, π], pseudorapidities clipped to the training range,
   energy-like and pT columns are non-negative and E ≥ pT·cosh η (the massless limit).
"""

from __future__ import annotations

import numpy as np

from eventgen.errors import InputError
from eventgen.schema import Schema


class PhysicsCleanup:
    """Estimator-style clean-up: ``fit(events, schema)`` then ``apply(events)`` in place."""

    def fit(self, events: np.ndarray, schema: Schema) -> PhysicsCleanup:
        """Learn thresholds from training events ``(n_events, n_columns)``."""
        if events.ndim != 2 or events.shape[1] != len(schema):
            raise InputError(
                f"events have shape {events.shape}, schema {schema.name!r} has {len(schema)} columns"
            )
        self.schema_ = schema
        self.pt_min_: dict[str, float] = {}
        for family, (objects, _) in schema.families().items():
            pts = np.concatenate([events[:, o.pt] for o in objects])
            present = pts[pts > 0]
            self.pt_min_[family] = float(present.min()) if present.size else 0.0
        self.eta_max_ = {
            i: float(np.abs(events[:, i]).max()) if len(events) else np.inf
            for i in schema.indices_of_kind("eta").tolist()
        }
        self.count_max_ = {
            i: float(events[:, i].max()) if len(events) else np.inf
            for i in schema.indices_of_kind("count").tolist()
        }
        return self

    def apply(self, events: np.ndarray) -> np.ndarray:
        """Clean ``events`` ``(n_events, n_columns)`` float32 in place and return it."""
        schema = self.schema_
        for i in schema.indices_of_kind("phi").tolist():
            events[:, i] = wrap_phi(events[:, i])
        for i, limit in self.eta_max_.items():
            np.clip(events[:, i], -limit, limit, out=events[:, i])
        for kind in ("energy", "pt"):
            for i in schema.indices_of_kind(kind).tolist():
                np.maximum(events[:, i], 0.0, out=events[:, i])
        for i, limit in self.count_max_.items():
            np.clip(np.rint(events[:, i]), 0.0, limit, out=events[:, i])
        for family, (objects, count_col) in schema.families().items():
            self._clean_family(events, objects, count_col, self.pt_min_[family])
        return events

    def get_state(self) -> dict[str, np.ndarray]:
        fams = sorted(self.pt_min_)
        return {
            "families": np.array(fams),
            "pt_min": np.array([self.pt_min_[f] for f in fams], dtype=np.float64),
            "eta_cols": np.array(list(self.eta_max_), dtype=np.int64),
            "eta_max": np.array(list(self.eta_max_.values()), dtype=np.float64),
            "count_cols": np.array(list(self.count_max_), dtype=np.int64),
            "count_max": np.array(list(self.count_max_.values()), dtype=np.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], schema: Schema) -> PhysicsCleanup:
        self = cls()
        self.schema_ = schema
        self.pt_min_ = {str(f): float(v) for f, v in zip(state["families"], state["pt_min"], strict=True)}
        self.eta_max_ = {int(i): float(v) for i, v in zip(state["eta_cols"], state["eta_max"], strict=True)}
        self.count_max_ = {
            int(i): float(v) for i, v in zip(state["count_cols"], state["count_max"], strict=True)
        }
        return self

    @staticmethod
    def _clean_family(events: np.ndarray, objects: list, count_col: int, pt_min: float) -> None:
        cols = np.array([[o.e, o.pt, o.eta, o.phi] for o in objects])  # (n_slots, 4), -1 if absent
        has = cols >= 0
        block = np.zeros((events.shape[0], len(objects), 4), dtype=events.dtype)
        for k in range(len(objects)):
            for f in range(4):
                if has[k, f]:
                    block[:, k, f] = events[:, cols[k, f]]
        present = block[:, :, 1] >= pt_min
        block[~present] = 0.0
        if has[:, 0].all() and has[:, 2].all():  # E >= pT cosh(eta)
            block[:, :, 0] = np.maximum(block[:, :, 0], block[:, :, 1] * np.cosh(block[:, :, 2]))
        order = np.argsort(-block[:, :, 1], axis=1, kind="stable")
        block = np.take_along_axis(block, order[:, :, None], axis=1)
        for k in range(len(objects)):
            for f in range(4):
                if has[k, f]:
                    events[:, cols[k, f]] = block[:, k, f]
        if count_col >= 0:
            n_present = present.sum(axis=1).astype(events.dtype)
            full = n_present == len(objects)
            count = events[:, count_col]
            events[:, count_col] = np.where(full, np.maximum(count, n_present), n_present)


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Azimuths wrapped to (-π, π] (π rounded to the array's precision); values inside stay as they are."""
    pi = phi.dtype.type(np.pi)
    wrapped = (np.mod(phi + np.pi, 2 * np.pi) - np.pi).astype(phi.dtype, copy=False)
    wrapped = np.where(wrapped <= -pi, pi, wrapped)
    return np.where((phi > -pi) & (phi <= pi), phi, wrapped)


def physicality(
    events: np.ndarray, schema: Schema, pt_min: dict[str, float] | None = None
) -> dict[str, float]:
    """Fractions of events passing the prior art's physicality checks.

    Returns ``{"energy": ..., "ordering": ..., "zero_fill": ..., "all": ...}``: E ≥ pT·cosh η
    for present objects (relative tolerance 1e-4), pT ordering within each family, and
    absent objects exactly zero in every column (with ``pt_min`` per family, a present
    object below its family's threshold counts as a failed zero fill).
    """
    ok_energy = np.ones(len(events), bool)
    ok_order = np.ones(len(events), bool)
    ok_zero = np.ones(len(events), bool)
    for family, (objects, _count) in schema.families().items():
        prev = None
        threshold = (pt_min or {}).get(family, 0.0)
        for o in objects:
            pt = events[:, o.pt]
            present = pt > 0
            ok_zero &= ~present | (pt >= threshold)
            if o.e >= 0 and o.eta >= 0:
                need = pt * np.cosh(events[:, o.eta])
                ok_energy &= ~present | (events[:, o.e] >= need * (1 - 1e-4))
            cols = [c for c in (o.e, o.pt, o.eta, o.phi) if c >= 0]
            ok_zero &= present | np.all(events[:, cols] == 0, axis=1)
            if prev is not None:
                ok_order &= prev >= pt
            prev = pt
    return {
        "energy": float(ok_energy.mean()),
        "ordering": float(ok_order.mean()),
        "zero_fill": float(ok_zero.mean()),
        "all": float((ok_energy & ok_order & ok_zero).mean()),
    }
