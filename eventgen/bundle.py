"""The fitted bundle: everything needed to generate, in one directory.

Layout (no pickle anywhere; arrays are loaded with ``allow_pickle=False``)::

    bundle/
      bundle.json      format marker, schema, model and sampling settings, training history, provenance
      model.npz        the VAE's state dict as float32 arrays
      preprocess.npz   the fitted preprocessing parameters
      buffer.npz       the density buffer: mu_i, sigma_i, event weights, its mode's fitted arrays
      cleanup.npz      the physics clean-up thresholds learnt from the training events
      refine.npz       the refiner's trees, its acceptance caps and the log-odds they were set on
                       (optional; :mod:`eventgen.refine`)

``Bundle.hash`` (sha256 over the files) identifies a bundle in generated files.

A bundle is untrusted input: :meth:`Bundle.load` reads each npy header before its array
and refuses a declared size the file does not hold, and every part rebuilds itself from a
:class:`~eventgen.validate.SavedState` that checks each array's dtype, shape and values
before torch or a compiled kernel sees it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from eventgen import __version__
from eventgen.errors import BundleError, ConfigError, OutputError
from eventgen.io import first_line, json_default, refuse_existing
from eventgen.schema import Schema
from eventgen.validate import REFIT, SavedState, array_error

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from eventgen.anomaly import ScoreName
    from eventgen.buffer import DensityBuffer
    from eventgen.cleanup import PhysicsCleanup
    from eventgen.io import EventsLike, EventTable
    from eventgen.model import BetaVAE, ModelSettings
    from eventgen.preprocess import Preprocessor
    from eventgen.refine import Refiner

FORMAT = "eventgen-bundle"
FORMAT_VERSION = 4
# version 1 kept the sampling settings under "buffer_params"; version 2 had neither the
# preprocessing's representation nor its frame (it is the energy representation in the lab frame);
# version 3 had no refiner
_READABLE_VERSIONS = (1, 2, 3, 4)
_FILES = ("bundle.json", "model.npz", "preprocess.npz", "buffer.npz", "cleanup.npz")
_REFINER = "refine.npz"  # optional: bundles fitted without a refiner have none
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass
class Bundle:
    """A fitted generator: schema, preprocessing, β-VAE, density buffer and clean-up."""

    schema: Schema
    preprocessor: Preprocessor
    model: BetaVAE  # on CPU, eval mode
    model_settings: ModelSettings
    buffer: DensityBuffer
    cleanup: PhysicsCleanup
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    refiner: Refiner | None = None

    @property
    def hash(self) -> str:
        """sha256 of the saved files (empty for a bundle that was never saved)."""
        return _hash_files(self.path) if self.path is not None else ""

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the bundle directory atomically (temporary folder, then rename)."""
        import dataclasses

        path = Path(path)
        refuse_existing(path, overwrite, "bundle")
        if not path.parent.exists():
            raise OutputError(f"folder {str(path.parent)!r} does not exist; create it first")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "eventgen_version": __version__,
            "schema": self.schema.to_dict(),
            "model_settings": dataclasses.asdict(self.model_settings),
            "n_features": len(self.schema),
            "sampling": self.buffer.settings.to_dict(),
            **self.metadata,
        }
        (tmp / "bundle.json").write_text(json.dumps(meta, indent=1, default=json_default))
        weights = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        _save_npz(tmp / "model.npz", weights)
        _save_npz(tmp / "preprocess.npz", self.preprocessor.get_state())
        _save_npz(tmp / "buffer.npz", self.buffer.get_state())
        _save_npz(tmp / "cleanup.npz", self.cleanup.get_state())
        if self.refiner is not None:
            _save_npz(tmp / _REFINER, self.refiner.get_state())
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        """Load a bundle; a missing, corrupt, foreign, pickled or altered bundle raises BundleError.

        Every array is checked (dtype, shape against the schema and the model settings, value
        ranges, declared size against the file size) before torch or a compiled kernel sees it.
        """
        from eventgen.buffer import DensityBuffer
        from eventgen.cleanup import PhysicsCleanup
        from eventgen.model import ModelSettings
        from eventgen.preprocess import Preprocessor
        from eventgen.sampling import SamplingSettings

        path = Path(path)
        meta = read_bundle_metadata(path)
        try:
            schema = Schema.from_dict(meta["schema"])
            settings = ModelSettings(**meta["model_settings"])
            if meta["n_features"] != len(schema) or isinstance(meta["n_features"], bool):
                raise ValueError(
                    f"n_features {meta['n_features']!r} is not the schema's {len(schema)} columns"
                )
            try:
                sampling = SamplingSettings(**stored_sampling(meta))
            except ConfigError as exc:
                raise BundleError(
                    f"bundle {str(path)!r} has invalid sampling settings ({exc}); fit it again"
                ) from None
            saved = {name: _load_npz(path / name) for name in _FILES if name.endswith(".npz")}
            model = _load_model(saved["model.npz"], len(schema), settings)
            preprocessor = Preprocessor.from_state(saved["preprocess.npz"], schema)
            buffer = DensityBuffer.from_state(saved["buffer.npz"], sampling, n_latent=settings.latent_dim)
            cleanup = PhysicsCleanup.from_state(saved["cleanup.npz"], schema)
            refiner = None
            if (path / _REFINER).exists():
                from eventgen.refine import Refiner

                refiner = Refiner.from_state(_load_npz(path / _REFINER), schema)
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BundleError(
                f"bundle {str(path)!r} is corrupt or from an incompatible eventgen ({first_line(exc)}); "
                "fit it again with 'eventgen fit'"
            ) from None
        reserved = {"format", "format_version", "eventgen_version", "schema", "model_settings", "n_features"}
        extra = {k: v for k, v in meta.items() if k not in reserved | {"sampling", "buffer_params"}}
        return cls(schema, preprocessor, model, settings, buffer, cleanup, extra, path, refiner)

    def sample(
        self,
        n_events: int,
        seed: int = 0,
        *,
        device: str = "auto",
        threads: int | None = None,
        weight_column: str | None = None,
        **sampling: Any,
    ) -> EventTable:
        """``n_events`` new events in memory: those ``eventgen generate`` writes with these options.

        ``sampling`` overrides the bundle's sampling settings by keyword (``mode``, ``alpha``,
        ``gamma``, ``selection``, ``bandwidth``, ``n_components``, ``refine``; see
        :class:`~eventgen.sampling.SamplingSettings`). Returns an :class:`EventTable`
        ``(n_events, n_columns)`` (plus ``weight`` for ``selection="weighted"``, and the normalised
        event weight in pb as ``weight_column``), its metadata that of a generated file.
        """
        from eventgen.generation import generate_table

        return generate_table(
            self,
            n_events,
            seed=seed,
            sampling=sampling,
            device=device,
            threads=threads,
            weight_column=weight_column,
        )

    def score_samples(self, events: EventsLike, score: ScoreName = "reconstruction") -> np.ndarray:
        """Per-event anomaly score ``(n_events,)`` float32 of ``events``; higher is more unusual.

        The score of ``eventgen score`` (:func:`eventgen.anomaly.score_samples`): ``"reconstruction"``
        (MSE of the reconstruction) or ``"neg_elbo"``. ``events``: a table, a DataFrame, an array in
        the bundle's schema or an event file.
        """
        from eventgen.anomaly import score_samples

        return score_samples(self, events, score)


def read_bundle_metadata(path: str | Path) -> dict[str, Any]:
    """The ``bundle.json`` of a bundle directory, checked to be an eventgen bundle."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(
            f"bundle {str(path)!r} is not a directory; pass the folder written by 'eventgen fit'"
        )
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise BundleError(f"bundle {str(path)!r} lacks {missing}; it is incomplete, fit it again")
    try:
        meta = json.loads((path / "bundle.json").read_text())
    except (ValueError, UnicodeDecodeError):
        raise BundleError(f"bundle {str(path)!r} has an unreadable bundle.json; fit it again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{str(path)!r} is not an eventgen bundle (no format marker); pass a bundle folder")
    if meta.get("format_version") not in _READABLE_VERSIONS:
        raise BundleError(
            f"bundle {str(path)!r} has format version {meta.get('format_version')}, this eventgen reads "
            f"{', '.join(map(str, _READABLE_VERSIONS[:-1]))} and {_READABLE_VERSIONS[-1]}; "
            "fit it again with this version"
        )
    return meta


def stored_sampling(meta: dict[str, Any]) -> Any:
    """The sampling settings recorded in a bundle's ``bundle.json`` (of any readable version)."""
    return meta.get("sampling") if meta.get("format_version") != 1 else meta.get("buffer_params")


def describe_bundle(path: Path, meta: dict[str, Any]) -> str:
    """A readable summary of a bundle's ``bundle.json``: schema, sizes, losses, provenance."""
    schema = Schema.from_dict(meta["schema"])
    ms, training, data = meta.get("model_settings", {}), meta.get("training", {}), meta.get("data", {})
    size = sum(file.stat().st_size for file in _bundle_files(path))
    best = training.get("best", {})
    versions = dict(meta.get("provenance", {}))
    sim = versions.pop("data_provenance", None)
    lines = [
        f"bundle      {path}  ({size / 1e6:.2f} MB, eventgen {meta.get('eventgen_version')})",
        f"sha256      {_hash_files(path)}",
        f"schema      {schema.name}: {len(schema)} columns",
        "            " + ", ".join(f"{c.name}[{c.kind}]" for c in schema.columns),
        f"model       latent {ms.get('latent_dim')}, {ms.get('depth')} x {ms.get('hidden')} {ms.get('activation')}"
        f"{' residual' if ms.get('residual') else ''}, beta {ms.get('beta')}, output {ms.get('output')}",
        f"buffer      {data.get('n_events', '?')} components; sampling {stored_sampling(meta)}",
        f"latent      {meta.get('latent', {})}",
        f"refiner     {meta.get('refine', 'none')}",
        f"training    {len(training.get('history', []))} epochs, best {training.get('best_epoch')}: "
        f"val loss {best.get('val_loss', float('nan')):.5g} (mse {best.get('val_mse', float('nan')):.5g}, "
        f"kl {best.get('val_kl', float('nan')):.5g}); "
        f"{training.get('events_per_second', float('nan')):.0f} events/s on {training.get('device')}, "
        f"{training.get('seconds', float('nan')):.1f} s",
        f"preprocess  {training.get('preprocess')}, {training.get('representation', 'energy')} "
        f"representation, {training.get('frame', 'lab')} frame; seed {training.get('seed')}",
        f"data        {data.get('path', '?')} ({data.get('n_events', '?')} events, sha256 {data.get('sha256', '?')[:16]})",
        f"versions    {', '.join(f'{k} {v}' for k, v in versions.items() if k != 'created')}",
        f"created     {versions.get('created', '?')}",
    ]
    sim = sim or {}
    if "settings" in sim and "cross_section" in sim:
        xs = sim["cross_section"]
        lines.append(
            f"simulated   {sim['settings'].get('process')} with {sim.get('generator')}, seed {sim.get('seed')}, "
            f"sigma = {xs.get('pb', float('nan')):.4g} +- {xs.get('pb_err', float('nan')):.2g} pb"
        )
    return "\n".join(lines)


def _load_npz(path: Path) -> SavedState:
    """The arrays of an ``.npz`` written by :meth:`Bundle.save`, read without pickle.

    Each member's npy header is read first and its declared size compared with the bytes
    the member holds, so a header declaring a huge shape is refused before anything is
    allocated; members must be stored uncompressed (as ``np.savez`` writes them), so that
    no member, and no sum of members, holds more than the file's size.
    """
    source = repr(str(path))
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            magic = fh.read(4)
            if magic.startswith(b"\x93NUM"):
                raise BundleError(f"{source} is a bare array, not an .npz archive; fit the bundle again")
            if magic[:1] == b"\x80":
                raise _pickled(f"{source} is a pickle")
            if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
                raise BundleError(
                    f"{source} is corrupt (not an .npz archive): it is {_what_file(path, fh)}; fit the bundle again"
                )
            fh.seek(0)
            with zipfile.ZipFile(fh) as archive:
                members = archive.infolist()
                stored = sum(info.compress_size for info in members)
                if stored > size:
                    raise BundleError(
                        f"{source} is corrupt (its members declare {stored} bytes, the file has {size}); "
                        "fit the bundle again"
                    )
                arrays = {
                    info.filename.removesuffix(".npy"): _read_member(archive, info, source)
                    for info in members
                }
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{source} is corrupt ({first_line(exc)}); fit the bundle again") from None
    return SavedState(arrays, source)


def _what_file(path: Path, fh: BinaryIO) -> str:
    """What a file that is not an archive holds, for a message: ``"a link to 'x', a text file"``."""
    fh.seek(0)
    head = fh.read(4096)
    try:
        text = head.decode() if head else None
    except UnicodeDecodeError:
        text = None
    what = "an empty file" if not head else "a text file" if text is not None else "a corrupt file"
    return f"a link to {os.readlink(path)!r}, {what}" if path.is_symlink() else what


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    """One npy member of an archive, its declared shape checked against its size before reading."""
    key = info.filename.removesuffix(".npy")
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise array_error(source, key, "is compressed (np.savez stores arrays uncompressed)")
    with archive.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version not in _NPY_HEADERS:
            raise array_error(source, key, f"has npy format version {version}, expected 1.0 or 2.0")
        shape, _, dtype = _NPY_HEADERS[version](fp)
        if dtype.hasobject:
            raise _pickled(f"{source} is invalid: array {key!r} is a pickled object")
        declared = math.prod(shape) * dtype.itemsize
        held = info.file_size - fp.tell()
        if min(shape, default=0) < 0 or declared > held:
            raise array_error(
                source, key, f"declares shape {shape} of {dtype} ({declared} bytes) but holds {held} bytes"
            )
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)


def _pickled(what: str) -> BundleError:
    return BundleError(
        f"{what}, which eventgen refuses to load because it can execute code; "
        "use bundles written by 'eventgen fit'"
    )


def _load_model(saved: SavedState, n_features: int, settings: ModelSettings) -> BetaVAE:
    """The β-VAE of ``settings`` with the weights of ``saved``, each checked before torch sees it.

    The expected shapes come from the model built on torch's meta device, which allocates
    nothing, so settings that declare huge layers cost no memory before they are refused.
    """
    import torch

    from eventgen.model import BetaVAE

    if settings.depth > len(saved):
        raise BundleError(
            f"{saved.source} holds {len(saved)} arrays, too few for a model of depth {settings.depth}; {REFIT}"
        )
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in BetaVAE(n_features, settings).state_dict().items()}
    saved.require(*shapes)
    unexpected = sorted(set(saved) - set(shapes))
    if unexpected:
        raise BundleError(f"{saved.source} has arrays {unexpected[:4]} that the model does not have; {REFIT}")
    sized_by = f"{n_features} features, latent {settings.latent_dim}, hidden {settings.hidden}"
    weights = {
        k: torch.from_numpy(saved.array(k, "float", shape, dtype=np.float32, sized_by=sized_by))
        for k, shape in shapes.items()
    }
    model = BetaVAE(n_features, settings)
    model.load_state_dict(weights)
    return model.eval()


def _save_npz(path: Path, state: Mapping[str, ArrayLike]) -> None:
    arrays = {k: np.asarray(v) for k, v in state.items()}
    np.savez(path, **arrays)  # type: ignore[arg-type]  # mypy lets **arrays fill the bool allow_pickle


def _bundle_files(path: Path) -> list[Path]:
    """The files of the bundle at ``path``: the required ones, then the refiner where there is one."""
    files = [path / name for name in _FILES]
    return [*files, path / _REFINER] if (path / _REFINER).exists() else files


def _hash_files(path: Path) -> str:
    return _sha256(_bundle_files(path))


def file_sha256(path: str | Path) -> str:
    """sha256 of one file, for provenance."""
    return _sha256([Path(path)])


def _sha256(paths: Iterable[Path]) -> str:
    """sha256 of the files' contents, one after another."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
