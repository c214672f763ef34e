"""Event files: Parquet, HDF5 and CSV readers, and streaming Parquet/HDF5 writers.

Layout on disk, readable without eventgen:

- Parquet: one float32 column per schema column; the key ``eventgen`` of the file's
  key-value metadata holds JSON ``{"schema": ..., "provenance": ...}``.
- HDF5: group ``/events`` with one chunked, resizable 1-D float32 dataset per column,
  in schema order; the group's attributes ``eventgen`` (same JSON) and ``columns``.
- CSV (import only): a header line naming the columns, or no header and exactly the
  schema's columns in order (as the prior art's ``ttb.csv``).

Writers write to a temporary name beside the target and rename it when closed without
error; an existing target is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from eventgen.errors import InputError, OutputError
from eventgen.schema import BUILTIN_SCHEMAS, Column, Schema

FileFormat = Literal["parquet", "hdf5", "csv"]
_SUFFIXES: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".csv": "csv",
}
METADATA_KEY = "eventgen"
HDF5_GROUP = "events"
CHUNK_EVENTS = 262_144  # events per chunk when reading


@dataclass
class EventTable:
    """Events as one float32 array ``(n_events, n_columns)`` in schema order, with metadata."""

    data: np.ndarray
    schema: Schema
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def column(self, name: str) -> np.ndarray:
        return self.data[:, self.schema.index(name)]


def format_of(path: str | Path, fmt: str | None = None) -> FileFormat:
    """The file format named by ``fmt`` or, when None, by the path's suffix."""
    if fmt is not None:
        if fmt not in ("parquet", "hdf5", "csv"):
            raise OutputError(f"unknown format {fmt!r}; use parquet or hdf5")
        return fmt  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise OutputError(
            f"cannot tell the format of {str(path)!r} from its suffix; use .parquet, .h5 or .csv"
        )
    return _SUFFIXES[suffix]


# ----------------------------------------------------------------------------- reading


def read_events(path: str | Path, schema: Schema | None = None, *, check_finite: bool = True) -> EventTable:
    """Read a whole event file into memory.

    The schema comes from ``schema`` when given (the file must hold its columns, extra
    columns are ignored), else from the file's eventgen metadata, else it is inferred
    from the column names. Raises :class:`InputError` for missing, truncated or
    malformed files and for NaN/inf values.
    """
    path, file_schema, names, meta = _open(path, schema)
    chunks = list(_chunks(path, file_schema, names, CHUNK_EVENTS, check_finite))
    data = np.concatenate(chunks) if chunks else np.empty((0, len(file_schema)), np.float32)
    return EventTable(data, file_schema, meta.get("provenance", {}))


def iter_events(
    path: str | Path,
    chunk_size: int = CHUNK_EVENTS,
    schema: Schema | None = None,
    *,
    check_finite: bool = True,
) -> Iterator[np.ndarray]:
    """Yield float32 chunks ``(<= chunk_size, n_columns)`` of an event file, in schema order."""
    path, table_schema, names, _ = _open(path, schema)
    yield from _chunks(path, table_schema, names, chunk_size, check_finite)


def _open(path: str | Path, schema: Schema | None) -> tuple[Path, Schema, list[str], dict[str, Any]]:
    """An event file's path, schema (resolved as :func:`read_events` says), column names and metadata."""
    path = Path(path)
    format_of(path)
    if not path.exists():
        raise InputError(f"input file {str(path)!r} does not exist; check the path")
    names = _column_names(path)
    meta = read_metadata(path)
    return path, _resolve_schema(schema, meta, names, str(path)), names, meta


def _chunks(
    path: Path, schema: Schema, names: list[str], chunk_size: int, check_finite: bool
) -> Iterator[np.ndarray]:
    fmt = format_of(path)
    positions = schema.check_columns(names, f"input file {str(path)!r}")
    start = 0
    for chunk in _raw_chunks(path, fmt, chunk_size, schema.names):
        if fmt == "csv":
            chunk = chunk[:, positions]
        if check_finite:
            _check_finite(chunk, schema, str(path), start)
        start += chunk.shape[0]
        yield chunk


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The eventgen metadata ``{"schema": ..., "provenance": ...}`` of a file ({} if none)."""
    path = Path(path)
    fmt = format_of(path)
    if fmt == "csv":
        return {}
    with _reading(path, fmt):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            raw = pq.read_schema(path).metadata or {}
            text = raw.get(METADATA_KEY.encode())
        else:
            import h5py

            with h5py.File(path, "r") as f:
                group = f.get(HDF5_GROUP)
                if group is None:
                    raise InputError(
                        f"HDF5 file {str(path)!r} has no '/{HDF5_GROUP}' group; write it with eventgen "
                        f"or put one dataset per column under /{HDF5_GROUP}"
                    )
                text = group.attrs.get(METADATA_KEY)
    if text is None:
        return {}
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        raise InputError(f"file {str(path)!r} has unreadable eventgen metadata; rewrite the file") from None


def dataset_files(path: str | Path) -> list[Path]:
    """The files of an event file or of a dataset directory (shards in manifest order, else by name)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    manifest = path / "_manifest.json"
    if manifest.is_file():
        try:
            files = [path / s["file"] for s in json.loads(manifest.read_text())["shards"]]
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"dataset {str(path)!r} has an unreadable _manifest.json; regenerate it"
            ) from None
    else:
        files = sorted(
            p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES and not p.name.startswith((".", "_"))
        )
    if not files:
        raise InputError(f"dataset directory {str(path)!r} holds no event files; check the path")
    return files


def sample_events(path: str | Path, n: int, seed: int, schema: Schema | None = None) -> EventTable:
    """``n`` events drawn without replacement (all if fewer) from a file or dataset, reading in chunks.

    Memory stays at ``n`` events however large the input; the draw depends only on ``seed``.
    """
    files = dataset_files(path)
    total = sum(count_events(f) for f in files)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(total, n, replace=False)) if n < total else np.arange(total)
    parts, offset = [], 0
    table_schema, provenance = schema, None
    for f in files:
        f, table_schema, names, meta = _open(f, table_schema)
        provenance = meta.get("provenance", {}) if provenance is None else provenance
        for chunk in _chunks(f, table_schema, names, CHUNK_EVENTS, True):
            lo, hi = np.searchsorted(keep, [offset, offset + len(chunk)])
            parts.append(chunk[keep[lo:hi] - offset])
            offset += len(chunk)
    assert table_schema is not None
    data = np.concatenate(parts) if parts else np.empty((0, len(table_schema)), np.float32)
    data = data[rng.permutation(len(data))]
    return EventTable(data, table_schema, provenance or {})


def count_events(path: str | Path) -> int:
    """Number of events in a Parquet or HDF5 file, read from its metadata."""
    path = Path(path)
    fmt = format_of(path)
    with _reading(path, fmt):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if fmt == "hdf5":
            import h5py

            with h5py.File(path, "r") as f:
                group = f[HDF5_GROUP]
                return int(group[next(iter(group))].shape[0]) if len(group) else 0
    return sum(chunk.shape[0] for chunk in iter_events(path, check_finite=False))


def _column_names(path: Path | str) -> list[str]:
    path = Path(path)
    fmt = format_of(path)
    if not path.exists():
        raise InputError(f"input file {str(path)!r} does not exist; check the path")
    with _reading(path, fmt):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if fmt == "hdf5":
            import h5py

            with h5py.File(path, "r") as f:
                if HDF5_GROUP not in f:
                    raise InputError(
                        f"HDF5 file {str(path)!r} has no '/{HDF5_GROUP}' group; write it with eventgen "
                        f"or put one dataset per column under /{HDF5_GROUP}"
                    )
                group = f[HDF5_GROUP]
                order = group.attrs.get("columns")
                return [str(n) for n in order] if order is not None else list(group.keys())
        with open(path) as fh:
            first = fh.readline().strip()
        if not first:
            raise InputError(f"CSV file {str(path)!r} is empty; give a file with one event per line")
        cells = [c.strip() for c in first.split(",")]
        if all(_is_number(c) for c in cells):
            return [f"_{i}" for i in range(len(cells))]
        return cells


def _resolve_schema(schema: Schema | None, meta: dict[str, Any], names: list[str], source: str) -> Schema:
    if schema is not None:
        if names and names[0] == "_0":  # headerless CSV: columns are the schema's, in order
            if len(names) != len(schema):
                raise InputError(
                    f"{source} has {len(names)} columns and no header, schema {schema.name!r} has "
                    f"{len(schema)}; add a header line naming the columns"
                )
            names[:] = schema.names
        return schema
    if "schema" in meta:
        return Schema.from_dict(meta["schema"])
    if names and names[0] == "_0":
        matching = [s for s in BUILTIN_SCHEMAS.values() if len(s) == len(names)]
        if len(matching) == 1:
            names[:] = matching[0].names
            return matching[0]
        raise InputError(f"{source} has no header line; add one naming the columns or pass a schema")
    for builtin in BUILTIN_SCHEMAS.values():
        if set(builtin.names) <= set(names):
            return builtin
    return Schema("inferred", tuple(Column(n, "generic") for n in names))


def _raw_chunks(path: Path, fmt: FileFormat, chunk_size: int, names: list[str]) -> Iterator[np.ndarray]:
    with _reading(path, fmt):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=chunk_size, columns=names):
                yield _to_float32(
                    np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns]), path
                )
        elif fmt == "hdf5":
            import h5py

            with h5py.File(path, "r") as f:
                group = f[HDF5_GROUP]
                n = group[names[0]].shape[0]
                for start in range(0, n, chunk_size):
                    stop = min(start + chunk_size, n)
                    out = np.empty((stop - start, len(names)), np.float32)
                    for j, name in enumerate(names):
                        out[:, j] = group[name][start:stop]
                    yield out
        else:
            import pyarrow.csv as pacsv

            with open(path) as fh:
                has_header = not all(_is_number(c.strip()) for c in fh.readline().split(","))
            read_opts = pacsv.ReadOptions(block_size=1 << 24, autogenerate_column_names=not has_header)
            reader = pacsv.open_csv(path, read_options=read_opts)
            for batch in reader:
                arr = np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns])
                for start in range(0, arr.shape[0], chunk_size):
                    yield _to_float32(arr[start : start + chunk_size], path)


class _reading:
    """Context manager turning low-level read failures into one clear InputError."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (InputError, GeneratorExit)):
            return False
        if isinstance(exc, (OSError, ValueError, KeyError, TypeError)) or "arrow" in type(exc).__module__:
            raise InputError(
                f"cannot read {self.fmt} file {str(self.path)!r} ({first_line(exc)}); "
                f"it may be truncated or not a {self.fmt} file, so regenerate it"
            ) from None
        return False


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (for one-line errors)."""
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _to_float32(arr: np.ndarray, path: Path) -> np.ndarray:
    try:
        return np.ascontiguousarray(arr, dtype=np.float32)
    except (ValueError, TypeError):
        raise InputError(f"{str(path)!r} holds non-numeric values; every column must be a number") from None


def _check_finite(chunk: np.ndarray, schema: Schema, source: str, offset: int) -> None:
    bad = ~np.isfinite(chunk)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise InputError(
            f"{source} has {int(bad.sum())} NaN/inf values, first in column {schema.names[cols[0]]!r} "
            f"of event {offset + int(rows[0])}; remove or fix those events"
        )


# ----------------------------------------------------------------------------- writing


def check_output(path: str | Path, overwrite: bool, fmt: str | None = None) -> Path:
    """Check an output file before any work: a writable format, not there yet (unless ``overwrite``)."""
    path = Path(path)
    if format_of(path, fmt) == "csv":
        raise OutputError("eventgen writes Parquet or HDF5, not CSV; use a .parquet or .h5 name")
    if path.exists() and not overwrite:
        raise OutputError(f"output {str(path)!r} exists already; choose another name or pass --overwrite")
    if not path.parent.exists():
        raise OutputError(f"output folder {str(path.parent)!r} does not exist; create it first")
    return path


class EventWriter:
    """Streaming writer: ``write(batch)`` appends events, ``close()`` commits the file.

    Memory is bounded by ``row_group_size`` rows buffered for Parquet; HDF5 appends
    every batch straight to chunked datasets. Used as a context manager, the file is
    committed (renamed from its temporary name) only when the block exits without error.
    """

    def __init__(
        self,
        path: str | Path,
        schema: Schema,
        metadata: dict[str, Any] | None = None,
        *,
        fmt: str | None = None,
        overwrite: bool = False,
        compression: str | None = "zstd",
        row_group_size: int = 131_072,
    ) -> None:
        self.path = check_output(path, overwrite, fmt)
        self.format = format_of(self.path, fmt)
        self.schema = schema
        self.tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.n_written = 0
        text = json.dumps({"schema": schema.to_dict(), "provenance": metadata or {}}, default=json_default)
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._row_group_size = row_group_size
        if self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            fields = [
                pa.field(c.name, pa.float32(), nullable=False, metadata={"kind": c.kind, "unit": c.unit})
                for c in schema.columns
            ]
            self._arrow_schema = pa.schema(fields, metadata={METADATA_KEY: text})
            self._pq = pq.ParquetWriter(
                self.tmp_path,
                self._arrow_schema,
                compression=compression or "none",
                use_dictionary=False,
                use_byte_stream_split=compression is not None,
                write_statistics=False,
            )
        else:
            import h5py

            self._h5 = h5py.File(self.tmp_path, "w", track_order=True)
            group = self._h5.create_group(HDF5_GROUP, track_order=True)
            group.attrs[METADATA_KEY] = text
            group.attrs["columns"] = schema.names
            chunk = min(row_group_size, 16_384)
            h5_compression = None if compression in (None, "zstd", "none") else compression
            self._datasets = [
                group.create_dataset(
                    name,
                    shape=(0,),
                    maxshape=(None,),
                    dtype=np.float32,
                    chunks=(chunk,),
                    compression=h5_compression,
                )
                for name in schema.names
            ]

    def write(self, batch: np.ndarray) -> None:
        """Append events ``(n, n_columns)``; the array may be reused by the caller afterwards."""
        if batch.ndim != 2 or batch.shape[1] != len(self.schema):
            raise OutputError(
                f"batch has shape {batch.shape}, expected (n, {len(self.schema)}) for schema {self.schema.name!r}"
            )
        columns = np.ascontiguousarray(batch.T, dtype=np.float32)  # (n_columns, n): one copy, then zero-copy
        if self.format == "parquet":
            self._pending.append(columns)
            self._n_pending += batch.shape[0]
            if self._n_pending >= self._row_group_size:
                self._flush()
        else:
            n0, n1 = self.n_written, self.n_written + batch.shape[0]
            for j, ds in enumerate(self._datasets):
                ds.resize((n1,))
                ds.write_direct(columns[j], dest_sel=np.s_[n0:n1])
        self.n_written += batch.shape[0]

    def _flush(self) -> None:
        if not self._pending:
            return
        import pyarrow as pa

        data = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        arrays = [pa.array(data[j]) for j in range(data.shape[0])]
        self._pq.write_table(pa.Table.from_arrays(arrays, schema=self._arrow_schema))
        self._pending, self._n_pending = [], 0

    def close(self) -> Path:
        """Finish the file and rename it to its final name; returns the final path."""
        if self.format == "parquet":
            self._flush()
            self._pq.close()
        else:
            self._h5.close()
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target path is left untouched."""
        try:
            if self.format == "parquet":
                self._pq.close()
            else:
                self._h5.close()
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()


def write_events(
    path: str | Path,
    data: np.ndarray,
    schema: Schema,
    metadata: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
    fmt: str | None = None,
    compression: str | None = "zstd",
) -> Path:
    """Write a whole ``(n_events, n_columns)`` array to Parquet or HDF5 in one call."""
    with EventWriter(path, schema, metadata, fmt=fmt, overwrite=overwrite, compression=compression) as w:
        for start in range(0, data.shape[0], 131_072):
            w.write(data[start : start + 131_072])
    return Path(path)


def json_default(obj: Any) -> Any:
    """``json.dumps`` default for NumPy scalars and arrays and paths in metadata."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in file metadata")
