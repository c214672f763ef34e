"""Event schemas: the names, kinds and units of the columns of a flat per-event table.

A schema is what makes the engine schema-agnostic: preprocessing picks its transform per
column kind and the physics clean-up finds each object's ``(e, pt, eta, phi)`` columns
through the ``obj`` field. Built-in schemas: ``ttbar`` (the prior art's 26 columns plus
object counts) and ``zll``. A user schema is a YAML/JSON mapping, see :meth:`Schema.from_dict`.

A schema may declare the known discrete masses of an object family (``masses``, in the unit
of its energy columns): the leptons of the built-in schemas are electrons or muons, so their
mass is 0.000511 or 0.105658 GeV. The mass representation (:mod:`eventgen.representation`)
models such a family's mass as a discrete level instead of a continuous column.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from eventgen.errors import ConfigError, InputError

ColumnKind = Literal["energy", "pt", "eta", "phi", "count", "generic"]
COLUMN_KINDS: tuple[str, ...] = get_args(ColumnKind)
LEPTON_MASSES = (0.000511, 0.105658)  # GeV: electron, muon
_DEFAULT_UNITS = {"energy": "GeV", "pt": "GeV", "eta": "", "phi": "rad", "count": "", "generic": ""}


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` drives preprocessing and clean-up; ``obj`` groups an object's columns.

    For a kinematic column ``obj`` names its object (``"j1"``); for a ``count`` column it
    names the object family it counts (``"j"`` counts ``j1, j2, ...``).
    """

    name: str
    kind: ColumnKind
    unit: str = ""
    obj: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "unit": self.unit, "obj": self.obj}


@dataclass(frozen=True)
class PhysicsObject:
    """Column indices of one reconstructed object (a jet or a lepton); -1 where absent."""

    name: str
    e: int
    pt: int
    eta: int
    phi: int

    @property
    def family(self) -> str:
        """The object family: the name without its trailing rank (``"j"`` for ``"j3"``)."""
        return self.name.rstrip("0123456789")


@dataclass(frozen=True)
class Schema:
    """An ordered set of columns. ``columns[i]`` describes column ``i`` of an event array.

    ``masses`` holds ``(family, levels)`` pairs: the discrete masses (increasing, >= 0) that the
    objects of a family can have, e.g. ``(("l", (0.000511, 0.105658)),)`` for electrons and muons.
    """

    name: str
    columns: tuple[Column, ...]
    masses: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if not names:
            raise ConfigError(f"schema {self.name!r} has no columns; declare at least one column")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"schema {self.name!r} repeats columns {dupes}; give each column a unique name")
        for c in self.columns:
            if c.kind not in COLUMN_KINDS:
                raise ConfigError(
                    f"column {c.name!r} has unknown kind {c.kind!r}; choose one of {list(COLUMN_KINDS)}"
                )
        self._check_masses()

    def _check_masses(self) -> None:
        families = {o.family for o in self.objects() if o.e >= 0 and o.eta >= 0}
        seen: set[str] = set()
        for family, levels in self.masses:
            if family not in families or family in seen:
                raise ConfigError(
                    f"schema {self.name!r} declares masses of {family!r}, which is "
                    f"{'declared twice' if family in seen else 'not an object family with e, pt and eta columns'}"
                    f"; declare masses once per family of {sorted(families)}"
                )
            seen.add(family)
            ok = all(
                isinstance(m, int | float) and not isinstance(m, bool) and math.isfinite(m) and m >= 0
                for m in levels
            )
            if not levels or not ok or any(a >= b for a, b in itertools.pairwise(levels)):
                raise ConfigError(
                    f"schema {self.name!r}: the masses of {family!r} must be a non-empty, increasing list "
                    f"of finite numbers >= 0, found {list(levels)}"
                )

    @property
    def family_masses(self) -> dict[str, tuple[float, ...]]:
        """The declared discrete masses of each family that has them."""
        return dict(self.masses)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def kinds(self) -> list[str]:
        return [c.kind for c in self.columns]

    def __len__(self) -> int:
        return len(self.columns)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(
                f"schema {self.name!r} has no column {name!r}; columns are {self.names}"
            ) from None

    def indices_of_kind(self, kind: ColumnKind) -> np.ndarray:
        return np.array([i for i, c in enumerate(self.columns) if c.kind == kind], dtype=np.int64)

    def objects(self) -> list[PhysicsObject]:
        """The objects declared through ``obj`` that have at least a ``pt`` column, in column order."""
        found: dict[str, dict[str, int]] = {}
        for i, c in enumerate(self.columns):
            if c.obj is None:
                continue
            field = _field_of(c)
            if field is not None:
                found.setdefault(c.obj, {})[field] = i
        return [
            PhysicsObject(name, f.get("e", -1), f["pt"], f.get("eta", -1), f.get("phi", -1))
            for name, f in found.items()
            if "pt" in f
        ]

    def families(self) -> dict[str, tuple[list[PhysicsObject], int]]:
        """Objects grouped by family, in rank order, with the family's count column (-1 if none)."""
        counts = {c.obj: i for i, c in enumerate(self.columns) if c.kind == "count" and c.obj}
        grouped: dict[str, list[PhysicsObject]] = {}
        for o in self.objects():
            grouped.setdefault(o.family, []).append(o)
        return {fam: (objs, counts.get(fam, -1)) for fam, objs in grouped.items()}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "columns": [c.to_dict() for c in self.columns]}
        if self.masses:
            out["masses"] = {family: list(levels) for family, levels in self.masses}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Build a schema from ``{"name": str, "columns": [{"name", "kind", "unit"?, "obj"?}, ...]}``.

        An optional ``"masses": {family: [mass, ...]}`` declares a family's discrete masses.
        """
        if not isinstance(data, dict) or "columns" not in data:
            raise ConfigError("a schema needs a 'columns' list of {name, kind[, unit, obj]} entries")
        if not isinstance(data["columns"], list):
            raise ConfigError(f"a schema's 'columns' must be a list, found {data['columns']!r}")
        columns = []
        for entry in data["columns"]:
            if isinstance(entry, str):
                raise ConfigError(
                    f"schema column {entry!r} needs a kind; write {{name: {entry}, kind: generic}}"
                )
            unknown = set(entry) - {"name", "kind", "unit", "obj"} if isinstance(entry, dict) else {None}
            if (
                unknown
                or "name" not in entry
                or "kind" not in entry
                or not isinstance(entry.get("obj"), str | None)
            ):
                raise ConfigError(
                    f"schema column {entry!r} must be a mapping with keys name, kind and optionally unit, obj"
                )
            kind = entry["kind"]
            columns.append(
                Column(
                    str(entry["name"]),
                    kind,
                    entry.get("unit", _DEFAULT_UNITS.get(kind, "")),
                    entry.get("obj"),
                )
            )
        return cls(str(data.get("name", "custom")), tuple(columns), _masses_of(data.get("masses")))

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls.from_dict(json.loads(text))

    def check_columns(self, found: list[str], source: str) -> list[int]:
        """Positions of this schema's columns in ``found``; raises naming the missing ones.

        Columns of ``found`` that the schema does not name are ignored (the caller chose the schema).
        """
        missing, unexpected = self.difference(found)
        if missing:
            others = f" (its other columns: {_some(unexpected)})" if unexpected else ""
            raise InputError(
                f"{source} lacks columns {_some(missing)} of schema {self.name!r}{others}; "
                "give a file with these columns or pass the schema that matches it"
            )
        return [found.index(n) for n in self.names]

    def difference(self, found: list[str]) -> tuple[list[str], list[str]]:
        """``(missing, unexpected)``: this schema's columns absent from ``found``, and the reverse."""
        return [n for n in self.names if n not in found], [n for n in found if n not in self.names]


def _masses_of(data: Any) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """The ``masses`` entry of a schema mapping as ``(family, levels)`` pairs."""
    if data is None:
        return ()
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(m, int | float) and not isinstance(m, bool) for m in v)
        for v in data.values()
    ):
        raise ConfigError(
            f"a schema's 'masses' must map families to lists of masses, e.g. {{l: [0.000511, 0.105658]}}, found {data!r}"
        )
    return tuple((str(family), tuple(float(m) for m in levels)) for family, levels in data.items())


def _field_of(column: Column) -> str | None:
    if column.kind in ("energy", "pt", "eta", "phi"):
        return {"energy": "e"}.get(column.kind, column.kind)
    return None


def _object_columns(obj: str) -> list[Column]:
    return [
        Column(f"{obj}_e", "energy", "GeV", obj),
        Column(f"{obj}_pt", "pt", "GeV", obj),
        Column(f"{obj}_eta", "eta", "", obj),
        Column(f"{obj}_phi", "phi", "rad", obj),
    ]


def _deepevents() -> list[Column]:
    cols = [Column("met", "pt", "GeV"), Column("met_phi", "phi", "rad")]
    for obj in ("j1", "j2", "j3", "j4", "l1", "l2"):
        cols += _object_columns(obj)
    return cols


def _ttbar() -> Schema:
    return Schema(
        "ttbar",
        (*_deepevents(), Column("n_jets", "count", "", "j"), Column("n_leptons", "count", "", "l")),
        (("l", LEPTON_MASSES),),
    )


def _zll() -> Schema:
    cols = _object_columns("l1") + _object_columns("l2") + [Column("n_leptons", "count", "", "l")]
    return Schema("zll", tuple(cols), (("l", LEPTON_MASSES),))


BUILTIN_SCHEMAS: dict[str, Schema] = {
    "ttbar": _ttbar(),
    "zll": _zll(),
    "deepevents": Schema("deepevents", tuple(_deepevents())),  # the prior art's 26 columns
}


def detect_schema(found: list[str], source: str) -> Schema | None:
    """The built-in schema whose columns are exactly ``found`` (in any order), for a file without metadata.

    None when ``found`` resembles no built-in schema (it shares fewer than half of each one's
    columns): such a table is read with its own columns. A table that resembles a built-in schema
    without matching it (a renamed, missing or extra column) raises an InputError that lists the
    differences from the closest one, rather than being read as a schema it merely contains.
    """
    for schema in BUILTIN_SCHEMAS.values():
        if set(schema.names) == set(found):
            return schema
    shared = {name: len(set(s.names) & set(found)) for name, s in BUILTIN_SCHEMAS.items()}
    close = [name for name, n in shared.items() if 2 * n >= len(BUILTIN_SCHEMAS[name])]
    if not close:
        return None
    closest = BUILTIN_SCHEMAS[max(close, key=lambda name: (shared[name], -len(BUILTIN_SCHEMAS[name])))]
    missing, unexpected = closest.difference(found)
    diffs = [f"lacks {_some(missing)}"] * bool(missing) + [f"has {_some(unexpected)} besides"] * bool(
        unexpected
    )
    raise InputError(
        f"{source} matches no schema; closest is {closest.name!r}, but it {' and '.join(diffs)}; rename the "
        "columns, or pass the schema: --schema NAME (reads only its columns) or --schema FILE.yaml"
    )


def _some(names: list[str], limit: int = 6) -> str:
    """A list of names for a message, cut after ``limit``."""
    return f"{names[:limit]}{'...' if len(names) > limit else ''}"


def with_builtin_masses(schema: Schema) -> Schema:
    """``schema``, or the built-in schema of its name when it has that schema's columns but no masses.

    Files written before schemas declared masses store the built-in schemas without them.
    """
    builtin = BUILTIN_SCHEMAS.get(schema.name)
    if schema.masses or builtin is None or builtin.columns != schema.columns:
        return schema
    return builtin


def get_schema(spec: str | dict[str, Any] | Schema) -> Schema:
    """A built-in schema by name, a schema from a mapping, or a YAML/JSON schema file path."""
    if isinstance(spec, Schema):
        return spec
    if isinstance(spec, dict):
        return Schema.from_dict(spec)
    if spec in BUILTIN_SCHEMAS:
        return BUILTIN_SCHEMAS[spec]
    if spec.endswith((".yaml", ".yml", ".json")):
        from eventgen.config import load_yaml

        return Schema.from_dict(load_yaml(spec))
    raise ConfigError(
        f"unknown schema {spec!r}; use one of {sorted(BUILTIN_SCHEMAS)} or a YAML file declaring the columns"
    )
