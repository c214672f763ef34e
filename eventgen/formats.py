"""Event file formats: one class per format, registered once by name and suffixes.

A format reads a file's column names, its eventgen metadata, its number of events and
float32 chunks of chosen columns, and, when eventgen writes it, streams events into a new
file. Everything that lists formats or suffixes (the CLI's choices, error messages, shard
names, the files of a dataset directory) derives from :data:`FORMATS`, so a new format is
one class with the :func:`register` decorator and nothing else.

Layout on disk, readable without eventgen:

- Parquet: one float32 column per schema column (with its kind and unit as field
  metadata, min/max statistics per row group); the key ``eventgen`` of the file's
  key-value metadata holds JSON ``{"schema": ..., "provenance": ...}``.
- HDF5: group ``/events`` with one chunked, resizable 1-D float32 dataset per column,
  in schema order, with its kind and unit as attributes ``kind`` and ``unit``; the group's
  attributes ``eventgen`` (same JSON) and ``columns``.
- ROOT (through uproot, the ``root`` extra): a TTree ``Events`` with one float32 branch per
  column, named as the schema's columns and nothing else, and the same JSON as the TObjString
  ``eventgen_metadata`` beside it. Other ROOT files are read from their tree ``Events`` (else
  their only TTree) when its branches hold one number per event.
- CSV (import only): a header line naming the columns, or no header and exactly the
  schema's columns in order (as the prior art's ``ttb.csv``).

Formats import their libraries (pyarrow, h5py, uproot) only when a file is read or written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import numpy as np

from eventgen.errors import ConfigError, EventgenError, InputError, OutputError

if TYPE_CHECKING:
    import h5py
    import pyarrow as pa

    from eventgen.schema import Schema

METADATA_KEY = "eventgen"
HDF5_GROUP = "events"
ROOT_TREE = "Events"
ROOT_METADATA = "eventgen_metadata"


class FormatWriter(Protocol):
    """A new file being written; :class:`eventgen.io.EventWriter` drives it."""

    def write(self, columns: np.ndarray) -> None:
        """Append events given column-major: float32 ``(n_columns, n)``, C-contiguous."""

    def close(self) -> None:
        """Finish the file (everything buffered is written)."""

    def abort(self) -> None:
        """Release the file without finishing it (it is deleted next)."""


class EventFormat(ABC):
    """A file format: its name, suffixes, and how to read (and maybe write) its files.

    Reading methods may raise anything the underlying library raises (the callers in
    :mod:`eventgen.io` turn that into one clear :class:`~eventgen.errors.InputError`), and
    raise InputError themselves for files that are readable but not event files.
    """

    name: ClassVar[str]
    label: ClassVar[str]  # as written in prose: "Parquet"
    suffixes: ClassVar[tuple[str, ...]]  # lower case; new files (shards) get the first
    compressions: ClassVar[tuple[str, ...]] = ("none",)  # the values of --compression it writes with

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    @property
    def writable(self) -> bool:
        """Whether eventgen writes this format (it implements :meth:`writer`)."""
        return type(self).writer is not EventFormat.writer

    def require(self) -> None:
        """Raise OutputError naming what to install when a library this format writes with is missing."""
        return None

    @abstractmethod
    def columns(self, path: Path) -> list[str]:
        """The names of the file's columns, in file order."""

    def metadata(self, path: Path) -> str | bytes | None:
        """The JSON text of the file's eventgen metadata, None if it has none."""
        return None

    @abstractmethod
    def count(self, path: Path) -> int:
        """The number of events in the file."""

    @abstractmethod
    def chunks(self, path: Path, columns: list[str], chunk_size: int) -> Iterator[np.ndarray]:
        """Float32 chunks ``(<= chunk_size, len(columns))`` of the named columns, in that order."""

    def writer(
        self, path: Path, schema: Schema, metadata: str, compression: str | None, row_group_size: int
    ) -> FormatWriter:
        """A new file at ``path`` for events of ``schema``, with ``metadata`` (JSON text) stored.

        ``compression`` is the user's choice as given (None for none); each format maps it
        onto what it supports. Formats that eventgen only reads do not implement this.
        """
        raise OutputError(f"eventgen does not write {self.label} files; use a {describe_suffixes(True)} name")


F = TypeVar("F", bound=type[EventFormat])
FORMATS: dict[str, EventFormat] = {}
"""Every known format by name, in the order they were registered."""


def register(cls: F) -> F:
    """Class decorator: make a format known by its name and suffixes."""
    fmt = cls()
    taken = {s for other in FORMATS.values() for s in other.suffixes} & set(fmt.suffixes)
    assert fmt.name not in FORMATS and not taken, f"format {fmt.name!r} clashes with a registered one"
    FORMATS[fmt.name] = fmt
    return cls


def format_names(writable: bool = False) -> list[str]:
    """Names of the known formats (only those eventgen writes, with ``writable``)."""
    return [name for name, fmt in FORMATS.items() if fmt.writable or not writable]


def describe_formats(writable: bool = False) -> str:
    """Every (writable) format as written in prose, for messages: ``"Parquet, HDF5 or CSV"``."""
    return _either([FORMATS[name].label for name in format_names(writable)])


def describe_suffixes(writable: bool = False) -> str:
    """The main suffix of every (writable) format, for messages: ``".parquet, .h5 or .csv"``."""
    return _either([FORMATS[name].suffix for name in format_names(writable)])


def suffix_format(path: str | Path) -> EventFormat | None:
    """The format a path's suffix names, None for an unknown suffix."""
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt in FORMATS.values() if suffix in fmt.suffixes), None)


def writer_format(name: str) -> EventFormat:
    """The writable format called ``name``; raises ConfigError naming the choices."""
    fmt = FORMATS.get(name)
    if fmt is None or not fmt.writable:
        raise ConfigError(f"unknown format {name!r}; use {_either(format_names(writable=True))}")
    fmt.require()
    return fmt


def input_format(path: str | Path) -> EventFormat:
    """The format of an input file, from its suffix."""
    fmt = suffix_format(path)
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {str(path)!r} from its suffix; use {describe_suffixes()}"
        )
    return fmt


def output_format(path: str | Path, name: str | None = None) -> EventFormat:
    """The format of an output file: ``name`` when given, else from the path's suffix.

    A ``name`` that differs from the format the suffix names is refused (``-o x.h5`` in Parquet).
    """
    fmt = suffix_format(path)
    if name is not None:
        chosen = writer_format(name)
        if fmt is not None and fmt is not chosen:
            raise OutputError(
                f"output {str(path)!r} has the suffix of {fmt.label} files but the format is {chosen.name}; "
                f"name it {Path(path).stem}{chosen.suffix}, or drop --format to write {fmt.label}"
            )
        return chosen
    if fmt is None:
        raise OutputError(
            f"cannot tell the format of {str(path)!r} from its suffix; use {describe_suffixes()}"
        )
    if not fmt.writable:
        raise OutputError(
            f"eventgen writes {describe_formats(writable=True)}, not {fmt.label}; "
            f"use a {describe_suffixes(writable=True)} name"
        )
    fmt.require()
    return fmt


def check_compression(fmt: EventFormat, compression: str) -> None:
    """Refuse a compression that ``fmt`` does not write with, naming the ones it does."""
    if compression not in fmt.compressions:
        raise ConfigError(
            f"{fmt.label} output takes compression {_either(list(fmt.compressions))}, not {compression!r}; "
            "choose one of those, or drop --compression for the default"
        )


def positional_names(n_columns: int) -> list[str]:
    """Stand-in names ``_0, _1, ...`` of the columns of a file that does not name them."""
    return [f"_{i}" for i in range(n_columns)]


def is_positional(names: list[str]) -> bool:
    """Whether ``names`` are :func:`positional_names` (the file's columns are known by position only)."""
    return bool(names) and names == positional_names(len(names))


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _to_float32(arr: np.ndarray, path: Path) -> np.ndarray:
    try:
        return np.ascontiguousarray(arr, dtype=np.float32)
    except (ValueError, TypeError):
        raise InputError(f"{str(path)!r} holds non-numeric values; every column must be a number") from None


def _stack(batch: pa.RecordBatch, path: Path) -> np.ndarray:
    """An Arrow record batch as a float32 array ``(n, n_columns)``."""
    return _to_float32(np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns]), path)


# ----------------------------------------------------------------------------- Parquet


@register
class Parquet(EventFormat):
    name = "parquet"
    label = "Parquet"
    suffixes = (".parquet", ".pq")
    compressions = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")

    def columns(self, path: Path) -> list[str]:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)

    def metadata(self, path: Path) -> str | bytes | None:
        import pyarrow.parquet as pq

        return (pq.read_schema(path).metadata or {}).get(METADATA_KEY.encode())

    def count(self, path: Path) -> int:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)

    def chunks(self, path: Path, columns: list[str], chunk_size: int) -> Iterator[np.ndarray]:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size, columns=columns):
            yield _stack(batch, path)

    def writer(
        self, path: Path, schema: Schema, metadata: str, compression: str | None, row_group_size: int
    ) -> FormatWriter:
        return _ParquetWriter(path, schema, metadata, compression, row_group_size)


class _FileWriter:
    """A :class:`FormatWriter` around one open file of a library (pyarrow, h5py), closed to finish or abort."""

    _file: Any

    def close(self) -> None:
        self._file.close()

    def abort(self) -> None:
        self._file.close()


class _GroupedWriter(_FileWriter):
    """A :class:`_FileWriter` that buffers ``(n_columns, n)`` blocks and hands them on in groups of
    at least ``row_group_size`` events (:meth:`_write_group`), the last group on close: memory is
    bounded by one group."""

    def __init__(self, row_group_size: int) -> None:
        self._row_group_size = row_group_size
        self._pending: list[np.ndarray] = []
        self._n_pending = 0

    def write(self, columns: np.ndarray) -> None:
        self._pending.append(columns)
        self._n_pending += columns.shape[1]
        if self._n_pending >= self._row_group_size:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        self._write_group(data)
        self._pending, self._n_pending = [], 0

    def _write_group(self, data: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._flush()
        super().close()


class _ParquetWriter(_GroupedWriter):
    """Float32 columns, zstd with BYTE_STREAM_SPLIT, no dictionary, min/max statistics; one row
    group per ``row_group_size`` events (memory is bounded by what is buffered for one group)."""

    def __init__(
        self, path: Path, schema: Schema, metadata: str, compression: str | None, row_group_size: int
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [
            pa.field(c.name, pa.float32(), nullable=False, metadata={"kind": c.kind, "unit": c.unit})
            for c in schema.columns
        ]
        self._schema = pa.schema(fields, metadata={METADATA_KEY: metadata})
        self._file = pq.ParquetWriter(
            path,
            self._schema,
            compression=compression or "none",
            use_dictionary=False,
            use_byte_stream_split=compression is not None,
            write_statistics=True,  # min/max per row group: dataset filters skip row groups
        )
        super().__init__(row_group_size)

    def _write_group(self, data: np.ndarray) -> None:
        import pyarrow as pa

        arrays = [pa.array(data[j]) for j in range(data.shape[0])]
        self._file.write_table(pa.Table.from_arrays(arrays, schema=self._schema))


# ----------------------------------------------------------------------------- HDF5


@register
class HDF5(EventFormat):
    name = "hdf5"
    label = "HDF5"
    suffixes = (".h5", ".hdf5", ".hdf")
    compressions = ("gzip", "lzf", "none")

    def columns(self, path: Path) -> list[str]:
        import h5py

        with h5py.File(path, "r") as f:
            return _names(_group(f, path))

    def metadata(self, path: Path) -> str | bytes | None:
        import h5py

        with h5py.File(path, "r") as f:
            return _group(f, path).attrs.get(METADATA_KEY)

    def count(self, path: Path) -> int:
        import h5py

        with h5py.File(path, "r") as f:
            group = _group(f, path)
            names = _names(group)
            return _length(group, names, path) if names else 0

    def chunks(self, path: Path, columns: list[str], chunk_size: int) -> Iterator[np.ndarray]:
        import h5py

        with h5py.File(path, "r") as f:
            group = _group(f, path)
            n = _length(group, columns, path)
            for start in range(0, n, chunk_size):
                stop = min(start + chunk_size, n)
                out = np.empty((stop - start, len(columns)), np.float32)
                for j, name in enumerate(columns):
                    out[:, j] = group[name][start:stop]
                yield out

    def writer(
        self, path: Path, schema: Schema, metadata: str, compression: str | None, row_group_size: int
    ) -> FormatWriter:
        return _HDF5Writer(path, schema, metadata, compression, row_group_size)


def _group(f: h5py.File, path: Path) -> h5py.Group:
    if HDF5_GROUP not in f:
        raise InputError(
            f"HDF5 file {str(path)!r} has no '/{HDF5_GROUP}' group; write it with eventgen "
            f"or put one dataset per column under /{HDF5_GROUP}"
        )
    return f[HDF5_GROUP]


def _names(group: h5py.Group) -> list[str]:
    order = group.attrs.get("columns")
    return [str(n) for n in order] if order is not None else list(group.keys())


def _length(group: h5py.Group, columns: list[str], path: Path) -> int:
    """The number of events of the named datasets, which must all be 1-D and of one length."""
    shapes = {name: getattr(group.get(name), "shape", None) for name in columns}
    lengths = {name: shape[0] for name, shape in shapes.items() if shape is not None and len(shape) == 1}
    bad = [name for name in columns if name not in lengths]
    if bad:
        raise InputError(
            f"HDF5 file {str(path)!r}: '/{HDF5_GROUP}/{bad[0]}' is not a 1-D dataset; "
            "give one value per event in every column"
        )
    if len(set(lengths.values())) > 1:
        short, long = min(lengths, key=lengths.__getitem__), max(lengths, key=lengths.__getitem__)
        raise InputError(
            f"HDF5 file {str(path)!r} is ragged: column {short!r} has {lengths[short]} events, {long!r} "
            f"{lengths[long]}; every column needs one value per event, so regenerate the file"
        )
    return next(iter(lengths.values()))


class _HDF5Writer(_FileWriter):
    """One chunked, resizable float32 dataset per column; every batch is appended at once.

    ``compression`` names an h5py filter (gzip); None, "none" and Parquet's zstd mean none.
    """

    def __init__(
        self, path: Path, schema: Schema, metadata: str, compression: str | None, row_group_size: int
    ) -> None:
        import h5py

        self._file = h5py.File(path, "w", track_order=True)
        group = self._file.create_group(HDF5_GROUP, track_order=True)
        group.attrs[METADATA_KEY] = metadata
        group.attrs["columns"] = schema.names
        chunk = min(row_group_size, 16_384)
        h5_compression = None if compression in (None, "zstd", "none") else compression
        self._datasets = [
            group.create_dataset(
                column.name,
                shape=(0,),
                maxshape=(None,),
                dtype=np.float32,
                chunks=(chunk,),
                compression=h5_compression,
            )
            for column in schema.columns
        ]
        for ds, column in zip(self._datasets, schema.columns, strict=True):
            ds.attrs["kind"], ds.attrs["unit"] = column.kind, column.unit
        self._n = 0

    def write(self, columns: np.ndarray) -> None:
        n0, n1 = self._n, self._n + columns.shape[1]
        for j, ds in enumerate(self._datasets):
            ds.resize((n1,))
            ds.write_direct(columns[j], dest_sel=np.s_[n0:n1])
        self._n = n1


# ----------------------------------------------------------------------------- ROOT


@register
class ROOT(EventFormat):
    """ROOT files through uproot: a flat TTree and the metadata as a TObjString beside it.

    Reads the tree :data:`ROOT_TREE` (else a file's only TTree) with one number per event in
    every branch it reads; jagged branches (objects per event) are refused.
    """

    name = "root"
    label = "ROOT"
    suffixes = (".root",)
    compressions = ("zstd", "lz4", "zlib", "lzma", "none")

    def require(self) -> None:
        _uproot(OutputError, "writing")

    def columns(self, path: Path) -> list[str]:
        with _uproot(InputError, "reading").open(path) as f:
            return [str(name) for name in _tree(f, path).keys(recursive=False)]

    def metadata(self, path: Path) -> str | bytes | None:
        with _uproot(InputError, "reading").open(path) as f:
            return str(f[ROOT_METADATA]) if ROOT_METADATA in f else None

    def count(self, path: Path) -> int:
        with _uproot(InputError, "reading").open(path) as f:
            return int(_tree(f, path).num_entries)

    def chunks(self, path: Path, columns: list[str], chunk_size: int) -> Iterator[np.ndarray]:
        uproot = _uproot(InputError, "reading")
        with uproot.open(path) as f:
            tree = _tree(f, path)
            for name in columns:
                interpretation = tree[name].interpretation
                if not isinstance(interpretation, uproot.AsDtype) or interpretation.inner_shape:
                    raise InputError(
                        f"branch {name!r} of ROOT file {str(path)!r} does not hold one number per event "
                        f"({interpretation}); eventgen reads flat trees, one number per event in each branch"
                    )
            if not tree.num_entries:
                return
            for arrays in tree.iterate(columns, step_size=chunk_size, library="np"):
                yield _to_float32(np.column_stack([arrays[name] for name in columns]), path)

    def writer(
        self, path: Path, schema: Schema, metadata: str, compression: str | None, row_group_size: int
    ) -> FormatWriter:
        return _ROOTWriter(path, schema, metadata, compression, row_group_size)


def _uproot(error: type[EventgenError], doing: str) -> Any:
    """The uproot module, or ``error`` naming the extra that installs it."""
    try:
        import uproot
    except ImportError:
        raise error(
            f"{doing} ROOT files needs uproot; install it with pip install 'eventgen[root]'"
        ) from None
    return uproot


def _tree(f: Any, path: Path) -> Any:
    """The event tree of an open ROOT file: :data:`ROOT_TREE`, else the file's only TTree."""
    if ROOT_TREE in f:
        return f[ROOT_TREE]
    trees = f.keys(filter_classname="TTree", cycle=False)
    if len(trees) != 1:
        raise InputError(
            f"ROOT file {str(path)!r} has no TTree {ROOT_TREE!r} and {len(trees)} other TTrees "
            f"({', '.join(trees) or 'none'}); name the event tree {ROOT_TREE!r}"
        )
    return f[trees[0]]


class _ROOTWriter(_GroupedWriter):
    """A TTree :data:`ROOT_TREE` of one float32 branch per column, named as the schema's columns.

    Events are buffered and appended with one ``extend`` per ``row_group_size`` events, so each
    branch gets one basket (one ROOT cluster) per ``row_group_size`` events and memory stays
    bounded by one such block. ``compression``: zstd (level 1), lz4, zlib, lzma or None/"none";
    the metadata is the TObjString :data:`ROOT_METADATA`.
    """

    def __init__(
        self, path: Path, schema: Schema, metadata: str, compression: str | None, row_group_size: int
    ) -> None:
        uproot = _uproot(OutputError, "writing")
        codecs = {
            "zstd": uproot.ZSTD(1),
            "lz4": uproot.LZ4(1),
            "zlib": uproot.ZLIB(1),
            "lzma": uproot.LZMA(1),
        }
        if compression not in (None, "none") and compression not in codecs:
            raise OutputError(
                f"ROOT files take compression {_either(list(ROOT.compressions))}, not {compression!r}"
            )
        self._file = uproot.recreate(path, compression=codecs.get(compression or "none"))
        self._file[ROOT_METADATA] = metadata
        self._names = schema.names
        self._tree = self._file.mktree(
            ROOT_TREE, {name: np.float32 for name in self._names}, title="eventgen"
        )
        super().__init__(row_group_size)

    def _write_group(self, data: np.ndarray) -> None:
        self._tree.extend({name: data[j] for j, name in enumerate(self._names)})


# ----------------------------------------------------------------------------- CSV


@register
class CSV(EventFormat):
    name = "csv"
    label = "CSV"
    suffixes = (".csv",)

    def columns(self, path: Path) -> list[str]:
        header, n_columns = _csv_header(path)
        return header if header is not None else positional_names(n_columns)

    def count(self, path: Path) -> int:
        return sum(batch.num_rows for batch in _csv_batches(path, self.columns(path)[:1]))

    def chunks(self, path: Path, columns: list[str], chunk_size: int) -> Iterator[np.ndarray]:
        for batch in _csv_batches(path, columns):
            arr = _stack(batch, path)
            for start in range(0, arr.shape[0], chunk_size):
                yield arr[start : start + chunk_size]


def _csv_header(path: Path) -> tuple[list[str] | None, int]:
    """The header's column names (None for a file without header) and the number of columns."""
    with open(path) as fh:
        first = fh.readline().strip()
    if not first:
        raise InputError(f"CSV file {str(path)!r} is empty; give a file with one event per line")
    cells = [c.strip() for c in first.split(",")]
    return (None if all(_is_number(c) for c in cells) else cells), len(cells)


def _csv_batches(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of the named columns (:func:`positional_names` in a file without header)."""
    import pyarrow.csv as pacsv

    header, n_columns = _csv_header(path)
    names = header if header is not None else positional_names(n_columns)
    read_options = pacsv.ReadOptions(
        block_size=1 << 24, column_names=names, skip_rows=int(header is not None)
    )
    convert_options = pacsv.ConvertOptions(include_columns=columns)
    yield from pacsv.open_csv(path, read_options=read_options, convert_options=convert_options)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
