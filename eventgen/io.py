"""Event tables and event files: read, sample and count events, and stream them to files.

The file formats (Parquet, HDF5, CSV; their layout on disk is described in
:mod:`eventgen.formats`) are objects in a registry: every function here resolves a path's
format once and then works through that object.

Events are checked once, where they enter: a file's events chunk by chunk as they are
read, and events from Python when they are put into an :class:`EventTable`. A NaN or inf
is reported with its column and event number. The stages that take a table (fit with its
preprocessing and training, evaluate) use its events as they are.

Writers write to a temporary name beside the target and rename it when closed without
error; an existing target is never replaced unless ``overwrite=True``. A writer claims its
target for as long as it writes (:class:`eventgen.outputs.OutputClaim`), so a second writer
of the same path is refused, and it removes the temporary files that killed writers left.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from eventgen.errors import ConfigError, EventgenError, InputError, OutputError
from eventgen.formats import EventFormat, input_format, is_positional, output_format, suffix_format
from eventgen.outputs import OutputClaim
from eventgen.schema import BUILTIN_SCHEMAS, Column, Schema, detect_schema, with_builtin_masses

if TYPE_CHECKING:
    import awkward as ak
    import pandas as pd

CHUNK_EVENTS = 262_144  # events per chunk when reading


def check_finite(x: np.ndarray, names: list[str] | None, source: str, offset: int = 0) -> None:
    """Refuse NaN and inf in events ``(n_events, n_columns)``, naming the first one's column and event.

    ``names`` are the column names (None: columns are numbered) and ``offset`` is the event
    number of the first row within ``source``.
    """
    finite = np.isfinite(x)
    if finite.all():
        return
    rows, cols = np.nonzero(~finite)
    column = repr(names[cols[0]]) if names else str(cols[0])
    raise InputError(
        f"{source} has {rows.size} NaN/inf values, first in column {column} "
        f"of event {offset + int(rows[0])}; remove or fix those events"
    )


@dataclass
class EventTable:
    """Events as one array ``(n_events, n_columns)`` in schema order, with metadata.

    A table holds finite numbers in the schema's columns. Building one checks that, once;
    the readers build theirs from chunks they checked while reading.
    """

    data: np.ndarray
    schema: Schema
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        if self.data.ndim != 2 or self.data.shape[1] != len(self.schema) or self.data.dtype.kind not in "fiu":
            raise InputError(
                f"an event table needs numbers of shape (n_events, {len(self.schema)}) in the columns of "
                f"schema {self.schema.name!r}, found shape {self.data.shape} of {self.data.dtype}; pass "
                "the events in schema order or the schema that matches them"
            )
        check_finite(self.data, self.schema.names, "the event table")

    @classmethod
    def _checked(cls, data: np.ndarray, schema: Schema, metadata: dict[str, Any]) -> EventTable:
        """A table of float32 events that were checked on their way in (no second pass over them)."""
        table = cls.__new__(cls)
        table.data, table.schema, table.metadata = data, schema, metadata
        return table

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def column(self, name: str) -> np.ndarray:
        return self.data[:, self.schema.index(name)]

    def to_pandas(self) -> pd.DataFrame:
        """The events as a pandas DataFrame ``(n_events, n_columns)``, float32 columns named as in the schema."""
        from eventgen.frames import to_pandas

        return to_pandas(self)

    def to_awkward(self) -> ak.Array:
        """The events as an Awkward Array: objects in jagged, vector-ready collections (:mod:`eventgen.frames`)."""
        from eventgen.frames import to_awkward

        return to_awkward(self)


#: What :func:`as_event_table` takes: a table, a pandas DataFrame, an array with a schema, a file path.
EventsLike: TypeAlias = "EventTable | pd.DataFrame | np.ndarray | str | os.PathLike[str]"


def as_event_table(data: EventsLike, schema: Schema | str | None = None) -> EventTable:
    """Events from what a notebook holds, as an :class:`EventTable`.

    ``data`` is an :class:`EventTable`, a pandas DataFrame (columns by name), a NumPy array
    ``(n_events, n_columns)`` in schema order, or the path of an event file. ``schema`` (a
    :class:`Schema`, a built-in name such as ``"ttbar"`` or a schema file) is required for an
    array; for the others it selects and orders the columns, else the table's, the file's or
    the DataFrame's own schema is used (see :func:`read_events`).
    """
    from eventgen.schema import get_schema

    schema = get_schema(schema) if schema is not None else None
    if isinstance(data, EventTable):
        if schema is None or schema == data.schema:
            return data
        positions = schema.check_columns(data.schema.names, "the event table")
        return EventTable._checked(np.ascontiguousarray(data.data[:, positions]), schema, data.metadata)
    if isinstance(data, str | os.PathLike):
        return read_events(os.fspath(data), schema)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        from eventgen.frames import from_pandas

        events, schema = from_pandas(data, schema)
        return EventTable(events, schema)
    if isinstance(data, np.ndarray):
        if schema is None:
            raise InputError(
                "a NumPy array of events needs its schema; pass schema='ttbar' (a built-in name), "
                "a Schema or a schema file"
            )
        return EventTable(data.astype(np.float32) if data.dtype.kind in "fiu" else data, schema)
    raise InputError(
        f"cannot take events from a {type(data).__name__}; pass an EventTable, a pandas DataFrame, "
        "a NumPy array (n_events, n_columns) with its schema, or the path of an event file"
    )


# ----------------------------------------------------------------------------- reading


def read_events(path: str | Path, schema: Schema | None = None) -> EventTable:
    """Read a whole event file into memory.

    The schema comes from ``schema`` when given (the file must hold its columns, extra
    columns are ignored), else from the file's eventgen metadata, else it is inferred
    from the column names. Raises :class:`InputError` for missing, truncated or
    malformed files and for NaN/inf values.
    """
    source = _open(path, schema)
    chunks = list(source.chunks(CHUNK_EVENTS))
    data = np.concatenate(chunks) if chunks else np.empty((0, len(source.schema)), np.float32)
    return EventTable._checked(data, source.schema, source.provenance)


def iter_events(
    path: str | Path, chunk_size: int = CHUNK_EVENTS, schema: Schema | None = None
) -> Iterator[np.ndarray]:
    """Yield float32 chunks ``(<= chunk_size, n_columns)`` of an event file, in schema order."""
    yield from _open(path, schema).chunks(chunk_size)


def sample_events(path: str | Path, n: int, seed: int, schema: Schema | None = None) -> EventTable:
    """``n`` events drawn without replacement (all if fewer) from a file or dataset, reading in chunks.

    Memory stays at ``n`` events however large the input; the draw depends only on ``seed``.
    Every file is read with the schema of the first.
    """
    files = dataset_files(path)
    first = _open(files[0], schema)
    inputs = [first, *(_open(f, first.schema) for f in files[1:])]
    total = sum(source.count() for source in inputs)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(total, n, replace=False)) if n < total else np.arange(total)
    parts, offset = [], 0
    for source in inputs:
        for chunk in source.chunks(CHUNK_EVENTS):
            lo, hi = np.searchsorted(keep, [offset, offset + len(chunk)])
            parts.append(chunk[keep[lo:hi] - offset])
            offset += len(chunk)
    data = np.concatenate(parts) if parts else np.empty((0, len(first.schema)), np.float32)
    data = data[rng.permutation(len(data))]
    return EventTable._checked(data, first.schema, first.provenance)


def count_events(path: str | Path) -> int:
    """Number of events in an event file (from the metadata of Parquet and HDF5 files)."""
    path, fmt = _existing(path)
    with _reading(path, fmt):
        return fmt.count(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The eventgen metadata ``{"schema": ..., "provenance": ...}`` of a file ({} if none)."""
    path, fmt = _existing(path)
    with _reading(path, fmt):
        text = fmt.metadata(path)
    return _parse_metadata(text, path)


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
            p for p in path.iterdir() if suffix_format(p) is not None and not p.name.startswith((".", "_"))
        )
    if not files:
        raise InputError(f"dataset directory {str(path)!r} holds no event files; check the path")
    return files


@dataclass(frozen=True)
class _Input:
    """An event file opened for reading: its format (resolved once), schema and metadata."""

    path: Path
    format: EventFormat
    schema: Schema
    columns: list[str]  # the file's columns that hold the schema's, in schema order
    metadata: dict[str, Any]

    @property
    def provenance(self) -> dict[str, Any]:
        return self.metadata.get("provenance", {})

    def count(self) -> int:
        with _reading(self.path, self.format):
            return self.format.count(self.path)

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        """Float32 chunks ``(<= chunk_size, n_columns)`` in schema order, each checked for NaN/inf."""
        source = f"input file {str(self.path)!r}"
        start = 0
        with _reading(self.path, self.format):
            for chunk in self.format.chunks(self.path, self.columns, chunk_size):
                check_finite(chunk, self.schema.names, source, start)
                start += chunk.shape[0]
                yield chunk


def _existing(path: str | Path) -> tuple[Path, EventFormat]:
    """An input path and its format, once the file is known to exist."""
    path = Path(path)
    fmt = input_format(path)
    if not path.exists():
        raise InputError(f"input file {str(path)!r} does not exist; check the path")
    if not path.is_file():  # a device or a pipe could be read forever
        raise InputError(f"input {str(path)!r} is {file_kind(path)}, not an event file; check the path")
    return path, fmt


def file_kind(path: Path) -> str:
    """What a path that is not a regular file is, for messages: ``"a folder"``, ``"a character device"``."""
    mode = path.stat().st_mode
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISFIFO: "a pipe",
        stat.S_ISSOCK: "a socket",
    }
    what = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    return f"a link to {what}" if path.is_symlink() else what


def _open(path: str | Path, schema: Schema | None) -> _Input:
    path, fmt = _existing(path)
    with _reading(path, fmt):
        names = fmt.columns(path)
        text = fmt.metadata(path)
    meta = _parse_metadata(text, path)
    schema, columns = _resolve_schema(schema, meta, names, path)
    return _Input(path, fmt, schema, columns, meta)


def _parse_metadata(text: str | bytes | None, path: Path) -> dict[str, Any]:
    """The eventgen metadata of a file: a JSON object whose ``schema`` and ``provenance`` are objects."""
    if text is None:
        return {}
    try:
        meta = json.loads(text)
    except (ValueError, TypeError):
        raise InputError(f"file {str(path)!r} has unreadable eventgen metadata; rewrite the file") from None
    found = (
        meta
        if not isinstance(meta, dict)
        else next((meta[k] for k in ("schema", "provenance") if not isinstance(meta.get(k, {}), dict)), None)
    )
    if found is not None:
        raise InputError(
            f"file {str(path)!r} has eventgen metadata holding a JSON {type(found).__name__} where an object "
            "is expected; rewrite the file with eventgen, or remove its 'eventgen' metadata"
        )
    return meta


def _resolve_schema(
    schema: Schema | None, meta: dict[str, Any], names: list[str], path: Path
) -> tuple[Schema, list[str]]:
    """The schema of a file (as :func:`read_events` says) and the file's columns holding it, in order."""
    positional = is_positional(names)  # a file that does not name its columns (CSV without header)
    if schema is None:
        schema = _file_schema(meta, names, positional, str(path))
    if positional:
        if len(names) != len(schema):
            raise InputError(
                f"{path} has {len(names)} columns and no header, schema {schema.name!r} has "
                f"{len(schema)}; add a header line naming the columns"
            )
        return schema, names
    schema.check_columns(names, f"input file {str(path)!r}")
    return schema, schema.names


def _file_schema(meta: dict[str, Any], names: list[str], positional: bool, source: str) -> Schema:
    """The schema of the file's metadata, else the built-in schema of exactly its columns, else its own.

    See :func:`eventgen.schema.detect_schema`: a file that resembles a built-in schema without
    matching it is refused, listing the differences.
    """
    if "schema" in meta:
        try:
            return with_builtin_masses(Schema.from_dict(meta["schema"]))
        except ConfigError as exc:
            raise InputError(f"input file {source!r} has an invalid schema in its metadata ({exc})") from None
    if positional:
        matching = [s for s in BUILTIN_SCHEMAS.values() if len(s) == len(names)]
        if len(matching) == 1:
            return matching[0]
        raise InputError(f"{source} has no header line; add one naming the columns or pass a schema")
    builtin = detect_schema(names, f"input file {source!r}")
    return builtin or Schema("inferred", tuple(Column(n, "generic") for n in names))


@contextmanager
def _reading(path: Path, fmt: EventFormat) -> Iterator[None]:
    """Turn a low-level failure while reading ``path`` into one clear InputError."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        if (
            not isinstance(exc, (OSError, ValueError, KeyError, TypeError))
            and "arrow" not in type(exc).__module__
        ):
            raise
        raise InputError(
            f"cannot read {fmt.name} file {str(path)!r} ({first_line(exc)}); "
            f"it may be truncated or not a {fmt.name} file, so regenerate it"
        ) from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (for one-line errors)."""
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


# ----------------------------------------------------------------------------- writing


def check_output(path: str | Path, overwrite: bool, fmt: str | None = None) -> Path:
    """Check an output file before any work: a writable format, not there yet (unless ``overwrite``)."""
    return _output(path, overwrite, fmt)[0]


def refuse_existing(path: Path, overwrite: bool, what: str = "output") -> None:
    """Raise OutputError when ``path`` exists and may not be replaced; ``what`` names it in the message."""
    if path.exists() and not overwrite:
        raise OutputError(f"{what} {str(path)!r} exists already; choose another name or pass --overwrite")


def check_writable(path: str | Path, *, directory: bool = False, parents: bool = False) -> Path:
    """Refuse, before any work, an output ``path`` that could not be written.

    The folder it goes into must exist (with ``parents``, its nearest existing ancestor, since
    the missing folders are created) and be writable. With ``directory`` the output is a folder:
    an existing one must be a writable folder, not a file. Returns ``path``.
    """
    path = Path(path)
    if directory and path.exists():
        if not path.is_dir():
            raise OutputError(f"output {str(path)!r} is a file, not a folder; choose another name")
        folder = path
    else:
        folder = path.parent
        while parents and not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.exists():
        raise OutputError(f"output folder {str(folder)!r} does not exist; create it first")
    if not folder.is_dir():
        raise OutputError(f"output folder {str(folder)!r} is a file, not a folder; choose another output")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"output folder {str(folder)!r} is not writable; choose another folder or make it writable"
        )
    return path


def _output(path: str | Path, overwrite: bool, fmt: str | None) -> tuple[Path, EventFormat]:
    path = Path(path)
    file_format = output_format(path, fmt)
    refuse_existing(path, overwrite)
    check_writable(path)
    return path, file_format


class EventWriter:
    """Streaming writer: ``write(batch)`` appends events, ``close()`` commits the file.

    The format (``fmt`` by name, else the path's suffix) decides how events are stored:
    Parquet buffers up to ``row_group_size`` rows, HDF5 appends every batch straight to
    chunked datasets. Used as a context manager, the file is committed (renamed from its
    temporary name) only when the block exits without error.

    The target is claimed (:class:`eventgen.outputs.OutputClaim`) from here until the file is
    closed or aborted: a second writer of the same path is refused. ``claim=False`` leaves that to
    the caller, as for the shards of a dataset, which the run claims as a whole.
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
        claim: bool = True,
    ) -> None:
        self.path, self.format = _output(path, overwrite, fmt)
        self.schema = schema
        self.tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.n_written = 0
        self._claim = OutputClaim(self.path) if claim else None
        if self._claim is not None:
            self._claim.acquire()
        try:
            if self._claim is not None:
                refuse_existing(self.path, overwrite)  # a writer may have finished since the check above
                self._claim.remove_stale_temporary_files()
            text = json.dumps(
                {"schema": schema.to_dict(), "provenance": metadata or {}}, default=json_default
            )
            try:
                self._file = self.format.writer(self.tmp_path, schema, text, compression, row_group_size)
            except EventgenError:
                raise
            except Exception as exc:  # OSError, or the library's own (pyarrow: "Unsupported compression")
                raise OutputError(f"cannot write {str(self.path)!r}: {first_line(exc)}") from None
        except BaseException:
            self._release()
            raise

    def write(self, batch: np.ndarray) -> None:
        """Append events ``(n, n_columns)``; the array may be reused by the caller afterwards."""
        if batch.ndim != 2 or batch.shape[1] != len(self.schema):
            raise OutputError(
                f"batch has shape {batch.shape}, expected (n, {len(self.schema)}) for schema {self.schema.name!r}"
            )
        try:
            self._file.write(np.ascontiguousarray(batch.T, dtype=np.float32))  # one copy, then zero-copy
        except OSError as exc:  # a full disk, a quota
            raise OutputError(f"cannot write {str(self.path)!r}: {exc.strerror or first_line(exc)}") from None
        self.n_written += batch.shape[0]

    def close(self) -> Path:
        """Finish the file and rename it to its final name; returns the final path."""
        try:
            self._file.close()
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self._release()
            raise
        self._release(keep_file=True)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target path is left untouched."""
        try:
            self._file.abort()
        finally:
            self._release()

    def _release(self, keep_file: bool = False) -> None:
        """Remove the temporary file (unless ``keep_file``) and give the claim back."""
        try:
            if not keep_file:
                self.tmp_path.unlink(missing_ok=True)
        finally:
            if self._claim is not None:
                self._claim.release()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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
    """Write a whole ``(n_events, n_columns)`` array to a file of a writable format in one call."""
    with EventWriter(path, schema, metadata, fmt=fmt, overwrite=overwrite, compression=compression) as w:
        for start in range(0, data.shape[0], 131_072):
            w.write(data[start : start + 131_072])
    return Path(path)


def json_default(obj: object) -> object:
    """``json.dumps`` default for NumPy scalars and arrays and paths in metadata."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in file metadata")
