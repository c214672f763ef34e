"""Event tables as pandas DataFrames and Awkward Arrays, the forms an analysis notebook works in.

:func:`to_pandas` gives the flat table: one float32 column per schema column, in schema order.
:func:`from_pandas` reads one back, by column name.

:func:`to_awkward` regroups the flat columns into physics objects. Each family of objects of the
schema (``j1..j4`` -> ``jets``, ``l1, l2`` -> ``leptons``, see :meth:`Schema.families`) becomes a
jagged collection that holds, per event, only the objects that are present (pT > 0: absent
objects are zero-filled in the flat table), in rank order. Objects are records named
``Momentum4D`` whose fields carry the names the Scikit-HEP ``vector`` package reads: ``pt``,
``eta``, ``phi`` and ``energy`` (an object column of another kind keeps its name without the
object prefix, so ``j1_m`` is the field ``m``, which vector reads as the mass; objects without
these coordinates are plain records). After
``vector.register_awkward()`` the objects add up, boost and give their masses:
``(events.jets[:, 0] + events.jets[:, 1]).mass`` is the dijet mass. ``met`` and ``met_phi``
become the record ``met`` (``pt``, ``phi``, named ``Momentum2D``); every other column (object
counts, a sampling ``weight``) is a flat field of its own name.

pandas and awkward are optional extras; without them these functions raise one line naming
the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from eventgen.errors import ConfigError, InputError
from eventgen.schema import Column, Schema, detect_schema

if TYPE_CHECKING:
    import awkward as ak
    import pandas as pd

    from eventgen.io import EventTable

#: Collection names of the object families (a family not listed keeps its own name).
FAMILY_NAMES = {"j": "jets", "b": "bjets", "l": "leptons", "e": "electrons", "mu": "muons", "ph": "photons"}
#: The vector field name of each kinematic column kind.
VECTOR_FIELDS = {"energy": "energy", "pt": "pt", "eta": "eta", "phi": "phi"}
#: The field names vector reads as a four-vector's time or mass coordinate.
TEMPORAL_FIELDS = frozenset({"energy", "e", "E", "t", "mass", "m", "M", "tau"})
EXTRAS = {"pandas": "pandas", "awkward": "awkward"}


def optional(module: str, needed_for: str) -> ModuleType:
    """Import an optional dependency, or raise one line naming the eventgen extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise ConfigError(
            f"{needed_for} needs {module}, which is not installed; install it with pip install 'eventgen[{extra}]'"
        ) from None


def to_pandas(table: EventTable) -> pd.DataFrame:
    """The events as a DataFrame ``(n_events, n_columns)``: float32 columns named as in the schema."""
    pandas = optional("pandas", "EventTable.to_pandas")
    return pandas.DataFrame(np.array(table.data, copy=True), columns=table.schema.names)


def from_pandas(frame: pd.DataFrame, schema: Schema | None = None) -> tuple[np.ndarray, Schema]:
    """Events ``(n_events, n_columns)`` float32 and their schema, from a DataFrame's columns by name.

    With ``schema`` the frame must hold its columns (others are ignored); without, the schema is
    the built-in one of exactly the frame's columns, else generic columns named as the frame's
    (see :func:`eventgen.schema.detect_schema`).
    """
    names = [str(name) for name in frame.columns]
    if schema is None:
        inferred = Schema("inferred", tuple(Column(name, "generic") for name in names))
        schema = detect_schema(names, "the DataFrame") or inferred
    schema.check_columns(names, "the DataFrame")
    columns = [frame[name] for name in schema.names]
    bad = [c.name for c in columns if c.dtype.kind not in "fiub"]
    if bad:
        raise InputError(f"the DataFrame's columns {bad[:6]} are not numeric; convert them or drop them")
    return np.column_stack([c.to_numpy(dtype=np.float32) for c in columns]), schema


def to_awkward(table: EventTable) -> ak.Array:
    """The events as an Awkward Array of records, objects grouped in jagged collections (module doc)."""
    ak = optional("awkward", "EventTable.to_awkward")
    schema, data = table.schema, table.data
    fields: dict[str, Any] = {}
    grouped: set[int] = set()
    for family, (objects, _) in schema.families().items():
        columns = [_object_columns(schema, o.name) for o in objects]
        common = [f for f in columns[0] if all(f in c for c in columns)]
        present = data[:, [o.pt for o in objects]] > 0  # (n_events, n_objects)
        counts = present.sum(axis=1)
        flat = {f: data[:, [c[f] for c in columns]][present] for f in common}  # event-major, rank order
        four_vector = {"pt", "eta", "phi"} <= set(common) and bool(TEMPORAL_FIELDS & set(common))
        collection = ak.zip(flat, with_name="Momentum4D" if four_vector else None)
        fields[FAMILY_NAMES.get(family, family)] = ak.unflatten(collection, counts)
        grouped.update(c[f] for c in columns for f in common)
    if {"met", "met_phi"} <= set(schema.names):
        met, phi = schema.index("met"), schema.index("met_phi")
        fields["met"] = ak.zip({"pt": data[:, met], "phi": data[:, phi]}, with_name="Momentum2D")
        grouped.update((met, phi))
    for i, column in enumerate(schema.columns):
        if i not in grouped:
            fields.setdefault(column.name, data[:, i])
    return ak.zip(fields, depth_limit=1)


def _object_columns(schema: Schema, obj: str) -> dict[str, int]:
    """Field name -> column index of the columns of object ``obj`` (``"j1"``)."""
    return {_field(c, obj): i for i, c in enumerate(schema.columns) if c.obj == obj and c.kind != "count"}


def _field(column: Column, obj: str) -> str:
    return VECTOR_FIELDS.get(column.kind) or column.name.removeprefix(f"{obj}_")
