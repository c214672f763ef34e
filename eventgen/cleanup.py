"""Physics clean-up of decoded events: make every generated event a physical one.

A decoder outputs continuous numbers; a detector-level event obeys rules that it does
not learn exactly. :class:`PhysicsCleanup` learns the acceptance of the training sample
(the smallest pT and the largest energy of a present object of each family, the |η| range,
the largest count) and applies, in order, row by row in one compiled pass:

1. non-finite values (an overflowing decoder output) become 0;
2. with per-event frames ``(ψ, s_φ, s_η)`` (rows decoded in the canonical frame,
   :mod:`eventgen.representation`), every azimuth becomes ``s_φ φ + ψ`` and every
   pseudorapidity ``s_η η``;
3. azimuths are wrapped to (-π, π], pseudorapidities clipped to the training range,
   energy-like and pT columns made non-negative (not the mass codes), counts rounded and
   clipped to [0, max];
4. an object is present iff its pT reaches its family's threshold; absent objects are
   exactly zero in all their columns; present ones get E ≥ pT·cosh η (the massless limit),
   or, for rows in the mass representation, ``E = sqrt(m² + (pT cosh η)²)`` from the mass in
   the E column (a code snapped to the nearest declared mass for families that declare them),
   after the clip and the threshold. There pT and η are each moved by a uniform fraction in
   [-1/2, 1/2) of their float32 spacing, drawn from a hash of their bits (so the same row always
   gets the same E): the float64 event that rounds to the stored pT and η is not known, and a
   simulated event's float32 columns are each rounded from float64. Without it the rounding
   noise of E − pT cosh η differs from the simulation's, and a classifier on the leptons'
   implied masses (noise at their scale) separates the two with AUC 0.64 (zll). An object
   more energetic than every one of its family in training is brought down to that energy
   (its pT lowered at fixed η and mass; where that would take it below the threshold, pT
   stays at the threshold and |η| is lowered instead; in the energy representation pT is
   scaled with E): in
   e+e- collisions that energy is the beam's, a kinematic limit that most events without
   radiation sit on exactly, and which a decoded lepton would otherwise overshoot by a few MeV
   (AUC 0.58 on the leading lepton's energy alone, zll);
5. present objects of a family are sorted by pT, leading first;
6. the family's count is consistent with the present objects (equal to it below the
   number of slots, at least it when all slots are filled).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import njit

from eventgen.errors import InputError
from eventgen.representation import (
    REPRESENTATIONS,
    Representation,
    cleanup_mass_tables,
    coded_columns,
    has_masses,
)
from eventgen.schema import ColumnKind, Schema
from eventgen.validate import SavedState

_STATE_KEYS = ("families", "pt_min", "eta_cols", "eta_max", "count_cols", "count_max")
#: Bundles written before the clean-up learned the largest energies (format 4 and older) lack
#: ``e_max``: their objects are not limited.
_NO_LIMIT = float(np.finfo(np.float32).max)


class PhysicsCleanup:
    """Estimator-style clean-up: ``fit(events, schema)`` then ``apply(events)`` in place."""

    def fit(self, events: np.ndarray, schema: Schema) -> PhysicsCleanup:
        """Learn thresholds from training events ``(n_events, n_columns)``."""
        if events.ndim != 2 or events.shape[1] != len(schema):
            raise InputError(
                f"events have shape {events.shape}, schema {schema.name!r} has {len(schema)} columns"
            )
        self.schema_ = schema
        self._cached: tuple[np.ndarray, ...] | None = None
        self._tables_of: dict[str, tuple[Any, ...]] = {}
        self.pt_min_: dict[str, float] = {}
        self.e_max_: dict[str, float] = {}
        for family, (objects, _) in schema.families().items():
            pts = np.concatenate([events[:, o.pt] for o in objects])
            present = pts[pts > 0]
            self.pt_min_[family] = float(present.min()) if present.size else 0.0
            energies = [events[events[:, o.pt] > 0, o.e] for o in objects if o.e >= 0]
            self.e_max_[family] = max((float(e.max()) for e in energies if e.size), default=_NO_LIMIT)
        self.eta_max_ = {
            i: float(np.abs(events[:, i]).max()) if len(events) else np.inf
            for i in schema.indices_of_kind("eta").tolist()
        }
        self.count_max_ = {
            i: float(events[:, i].max()) if len(events) else np.inf
            for i in schema.indices_of_kind("count").tolist()
        }
        return self

    def apply(
        self,
        events: np.ndarray,
        *,
        representation: Representation = "energy",
        frames: np.ndarray | None = None,
    ) -> np.ndarray:
        """Clean ``events`` ``(n_events, n_columns)`` float32 in place (a compiled pass per row); returns it.

        ``representation="mass"``: the rows' E columns hold masses or mass codes (decoded rows of
        a preprocessing in that representation) and become energies. ``frames`` ``(n_events, 3)``
        float64: each row's frame ``(ψ, s_φ, s_η)``, applied first (rows in the canonical frame).
        """
        if representation not in REPRESENTATIONS:
            raise InputError(
                f"unknown representation {representation!r}; choose one of {list(REPRESENTATIONS)}"
            )
        if frames is None:
            frames = np.empty((0, 3))
        elif frames.shape != (len(events), 3) or frames.dtype != np.float64 or not frames.flags.c_contiguous:
            raise InputError(
                f"frames must be a C-contiguous float64 array of shape ({len(events)}, 3), one (psi, s_phi, "
                f"s_eta) per event, found {frames.dtype} {frames.shape}"
            )
        if events.dtype != np.float32 or not events.flags.c_contiguous:
            raise InputError(
                "PhysicsCleanup.apply needs a C-contiguous float32 array; use np.ascontiguousarray"
            )
        if events.ndim != 2 or events.shape[1] != len(self.schema_):
            raise InputError(
                f"events have shape {events.shape}, schema {self.schema_.name!r} has {len(self.schema_)} "
                "columns; pass (n_events, n_columns) in schema order"
            )
        _clean_rows(events, events.view(np.uint32), frames, *self._tables(representation))
        return events

    def _tables(self, representation: Representation) -> tuple[Any, ...]:
        """The compiled pass's arguments after the events and the frames, for rows in ``representation``."""
        tables = self._tables_of
        if representation not in tables:
            phi, eta_cols, eta_max, nonneg, *counts_and_families = self._base_tables()
            n_levels, levels = cleanup_mass_tables(self.schema_)
            mass = has_masses(representation)
            if mass:
                nonneg = nonneg[~np.isin(nonneg, coded_columns(self.schema_))]
            tables[representation] = (
                phi,
                eta_cols,
                eta_max,
                nonneg,
                *counts_and_families,
                mass,
                n_levels,
                levels,
            )
        return tables[representation]

    def _base_tables(self) -> tuple[np.ndarray, ...]:
        cached = getattr(self, "_cached", None)
        if cached is None:
            schema = self.schema_
            families = schema.families()
            slots = max((len(objs) for objs, _ in families.values()), default=0)
            fam_cols = np.full((len(families), slots, 4), -1, np.int64)
            fam_slots = np.zeros(len(families), np.int64)
            fam_count = np.full(len(families), -1, np.int64)
            fam_pt_min = np.zeros(len(families), np.float64)
            fam_e_max = np.zeros(len(families), np.float64)
            for f, (name, (objects, count_col)) in enumerate(families.items()):
                fam_slots[f], fam_count[f], fam_pt_min[f] = len(objects), count_col, self.pt_min_[name]
                fam_e_max[f] = self.e_max_[name]
                for k, o in enumerate(objects):
                    fam_cols[f, k] = (o.e, o.pt, o.eta, o.phi)
            nonneg = np.concatenate([schema.indices_of_kind("energy"), schema.indices_of_kind("pt")])
            cached = self._cached = (
                schema.indices_of_kind("phi"),
                np.array(list(self.eta_max_), np.int64),
                np.array(list(self.eta_max_.values()), np.float64),
                nonneg.astype(np.int64),
                np.array(list(self.count_max_), np.int64),
                np.array(list(self.count_max_.values()), np.float64),
                fam_cols,
                fam_slots,
                fam_count,
                fam_pt_min,
                fam_e_max,
            )
        return cached

    def get_state(self) -> dict[str, np.ndarray]:
        fams = sorted(self.pt_min_)
        return {
            "families": np.array(fams),
            "pt_min": np.array([self.pt_min_[f] for f in fams], dtype=np.float64),
            "eta_cols": np.array(list(self.eta_max_), dtype=np.int64),
            "eta_max": np.array(list(self.eta_max_.values()), dtype=np.float64),
            "count_cols": np.array(list(self.count_max_), dtype=np.int64),
            "count_max": np.array(list(self.count_max_.values()), dtype=np.float64),
            "e_max": np.array([self.e_max_[f] for f in fams], dtype=np.float64),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], schema: Schema) -> PhysicsCleanup:
        """Rebuild a fitted clean-up from :meth:`get_state`'s mapping for ``schema``, checking every array.

        The families and the eta and count columns must be those of ``schema``, so that the
        compiled pass never indexes a column the events do not have.
        """
        saved = SavedState.of(state, "clean-up state")
        saved.require(*_STATE_KEYS)
        families = sorted(schema.families())
        named = saved.matching("families", "str", families, f"the object families of schema {schema.name!r}")
        pt_min = saved.array("pt_min", "float", named.shape, low=0.0, sized_by="one per family")
        thresholds = {}
        kinds: tuple[tuple[ColumnKind, str, float | None], ...] = (
            ("eta", "eta_max", 0.0),
            ("count", "count_max", None),
        )
        for kind, high, low in kinds:
            cols = saved.matching(
                f"{kind}_cols",
                "int",
                schema.indices_of_kind(kind),
                f"the {kind} columns of schema {schema.name!r}",
            )
            values = saved.array(high, "float", cols.shape, low=low, sized_by=f"one per {kind} column")
            thresholds[kind] = dict(zip(cols.tolist(), values.tolist(), strict=True))
        self = cls()
        self.schema_ = schema
        self._cached = None
        self._tables_of = {}
        self.pt_min_ = dict(zip(named.tolist(), pt_min.tolist(), strict=True))
        e_max = (
            saved.array("e_max", "float", named.shape, above=0.0, sized_by="one per family")
            if "e_max" in saved
            else np.full(named.shape, _NO_LIMIT)
        )
        self.e_max_ = dict(zip(named.tolist(), e_max.tolist(), strict=True))
        self.eta_max_, self.count_max_ = thresholds["eta"], thresholds["count"]
        return self


#: The spacing of float32 numbers at each of the 256 values of a float32's exponent bits.
_FLOAT32_SPACING = np.array([2.0 ** (max(e, 1) - 150) for e in range(256)])


@njit(cache=True, nogil=True)
def _float32_spacing(bits: np.uint32) -> float:  # pragma: no cover - compiled
    """The spacing of float32 numbers at the finite float32 whose bits are ``bits``."""
    return _FLOAT32_SPACING[(bits >> np.uint32(23)) & np.uint32(0xFF)]


@njit(cache=True, nogil=True)
def _bit_hash(a: np.uint32, b: np.uint32) -> tuple[float, float]:  # pragma: no cover - compiled
    """Two numbers in [-1/2, 1/2) from a 64-bit mix (splitmix64's finaliser) of two float32 bit patterns."""
    z = (np.uint64(a) << np.uint64(32)) | np.uint64(b)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    low = float(z & np.uint64(0xFFFFFFFF))
    high = float(z >> np.uint64(32))
    return low / 4294967296.0 - 0.5, high / 4294967296.0 - 0.5


@njit(cache=True, nogil=True)
def _clean_rows(
    x: np.ndarray,
    bits: np.ndarray,
    frames: np.ndarray,
    phi_cols: np.ndarray,
    eta_cols: np.ndarray,
    eta_max: np.ndarray,
    nonneg_cols: np.ndarray,
    count_cols: np.ndarray,
    count_max: np.ndarray,
    fam_cols: np.ndarray,
    fam_slots: np.ndarray,
    fam_count: np.ndarray,
    fam_pt_min: np.ndarray,
    fam_e_max: np.ndarray,
    mass: bool,
    fam_n_levels: np.ndarray,
    fam_levels: np.ndarray,
) -> None:  # pragma: no cover - compiled
    pi32 = np.float32(np.pi)
    block = np.zeros((fam_cols.shape[1], 4), np.float64)
    turn = frames.shape[0] > 0
    for i in range(x.shape[0]):
        row = x[i]
        for c in range(row.size):
            if not np.isfinite(row[c]):
                row[c] = 0.0
        if turn:
            for c in phi_cols:
                v = frames[i, 1] * row[c] + frames[i, 0]
                if v > np.pi:
                    v -= 2.0 * np.pi
                elif v <= -np.pi:
                    v += 2.0 * np.pi
                if not (-np.pi < v <= np.pi):
                    v = np.mod(v + np.pi, 2.0 * np.pi) - np.pi
                row[c] = pi32 if np.float32(v) <= -pi32 else np.float32(v)
            for c in eta_cols:
                row[c] = frames[i, 2] * row[c]
        for c in phi_cols:
            if not (-pi32 < row[c] <= pi32):
                w = np.float32(np.mod(np.float64(row[c]) + np.pi, 2.0 * np.pi) - np.pi)
                row[c] = pi32 if w <= -pi32 else w
        for j in range(eta_cols.size):
            row[eta_cols[j]] = min(max(row[eta_cols[j]], -eta_max[j]), eta_max[j])
        for c in nonneg_cols:
            row[c] = max(row[c], np.float32(0.0))
        for j in range(count_cols.size):
            row[count_cols[j]] = min(max(np.rint(row[count_cols[j]]), 0.0), count_max[j])
        for f in range(fam_slots.size):
            n_slots = fam_slots[f]
            n_present = 0
            n_levels = fam_n_levels[f]
            for k in range(n_slots):  # gather, zero the absent, E >= pT cosh(eta) or E from the mass
                mass_k = 0.0
                for q in range(4):
                    c = fam_cols[f, k, q]
                    block[k, q] = row[c] if c >= 0 else 0.0
                if block[k, 1] >= fam_pt_min[f]:
                    n_present += 1
                    if fam_cols[f, k, 0] >= 0 and fam_cols[f, k, 2] >= 0:
                        if not mass:
                            block[k, 0] = max(block[k, 0], block[k, 1] * np.cosh(block[k, 2]))
                        else:
                            b_pt, b_eta = bits[i, fam_cols[f, k, 1]], bits[i, fam_cols[f, k, 2]]
                            d_pt, d_eta = _bit_hash(b_pt, b_eta)
                            pt = block[k, 1] + d_pt * _float32_spacing(b_pt)
                            p = pt * np.cosh(block[k, 2] + d_eta * _float32_spacing(b_eta))
                            mass_k = block[k, 0]
                            if n_levels == 1:
                                mass_k = fam_levels[f, 0]
                            elif n_levels > 1:
                                level = np.rint((mass_k + 1.0) * (n_levels - 1) / 2.0)
                                mass_k = fam_levels[f, int(min(max(level, 0.0), n_levels - 1.0))]
                            block[k, 0] = np.sqrt(mass_k * mass_k + p * p)
                        e = fam_e_max[f]
                        if np.float32(block[k, 0]) > np.float32(e):  # down to the training maximum
                            if mass:  # at fixed eta and mass
                                momentum = np.sqrt(max(e * e - mass_k * mass_k, 0.0))
                                pt = momentum / np.cosh(block[k, 2])
                            else:  # at fixed eta and E / pT
                                momentum = e
                                pt = block[k, 1] * e / block[k, 0]
                            if pt < fam_pt_min[f]:  # or at the threshold, eta towards 0
                                pt = fam_pt_min[f]
                                eta = np.arccosh(max(momentum / pt, 1.0))
                                block[k, 2] = eta if block[k, 2] >= 0 else -eta
                            block[k, 0], block[k, 1] = e, pt
                else:
                    block[k, :] = 0.0
            for k in range(1, n_slots):  # stable insertion sort by pT, leading first
                m = k
                while m > 0 and block[m - 1, 1] < block[m, 1]:
                    for q in range(4):
                        block[m - 1, q], block[m, q] = block[m, q], block[m - 1, q]
                    m -= 1
            for k in range(n_slots):
                for q in range(4):
                    c = fam_cols[f, k, q]
                    if c >= 0:
                        row[c] = block[k, q]
            if fam_count[f] >= 0:
                c = fam_count[f]
                row[c] = max(row[c], n_present) if n_present == n_slots else n_present


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Azimuths wrapped to (-π, π] (π rounded to the array's precision); values inside stay as they are."""
    pi = phi.dtype.type(np.pi)
    wrapped = (np.mod(phi + np.pi, 2 * np.pi) - np.pi).astype(phi.dtype, copy=False)
    wrapped = np.where(wrapped <= -pi, pi, wrapped)
    return np.where((phi > -pi) & (phi <= pi), phi, wrapped)
