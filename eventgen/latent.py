"""The latent space of a fitted β-VAE: compression, exploration and the β scan (seed talk, slides 19-23).

Functions take a fitted :class:`~eventgen.bundle.Bundle` and raw events ``(n_events, n_columns)``
in the bundle's schema order and return NumPy float32.

- :func:`encode` / :func:`decode`, :func:`write_latent` / :func:`read_latent`: compression to μ
  (latent files name the bundle that wrote them).
- :func:`denoise`: ``decode(encode(x))``, the reconstruction through μ (noise reduction);
  :func:`add_noise` makes a smeared test set with known noise.
- :func:`latent_pca`, :func:`traverse`, :func:`plot_latent`: PCA of the buffer's μ, decoding
  along its principal axes, plots coloured by physics observables.
- :func:`beta_scan`, :func:`format_beta_table`: the seed talk's table of β vs latent variance.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eventgen.errors import ConfigError, InputError, OutputError
from eventgen.io import EventTable, read_events, write_events
from eventgen.schema import Column, Schema

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from sklearn.decomposition import PCA

    from eventgen.bundle import Bundle
    from eventgen.fitting import BufferSettings
    from eventgen.model import ModelSettings
    from eventgen.preprocess import PreprocessMethod
    from eventgen.representation import Frame, Representation
    from eventgen.train import TrainSettings

LATENT_FORMAT = "eventgen-latent"
TRAVERSAL_STEPS = tuple(0.5 * k for k in range(-6, 7))  # -3σ .. 3σ along an axis


def check_events(schema: Schema, events: np.ndarray, what: str) -> np.ndarray:
    """``events`` as float32 ``(n, n_columns)`` of ``schema``, or a clear InputError."""
    events = np.asarray(events)
    n_columns = len(schema)
    if events.ndim != 2 or events.shape[1] != n_columns:
        raise InputError(
            f"{what} needs events of shape (n, {n_columns}) in the columns of schema {schema.name!r}, "
            f"found shape {events.shape}; map other layouts first with eventgen.anomaly.to_schema"
        )
    return np.ascontiguousarray(events, dtype=np.float32)


# ----------------------------------------------------------------------------- compression and denoising


def encode(bundle: Bundle, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw events ``(n_events, n_columns)`` -> ``(mu, sigma)``, each ``(n_events, latent_dim)`` float32."""
    from eventgen.model import encode_numpy

    x = bundle.preprocessor.transform(check_events(bundle.schema, events, "encode"))
    return encode_numpy(bundle.model, x)


def decode(bundle: Bundle, mu: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
    """Latent points ``(n, latent_dim)`` -> cleaned raw events ``(n, n_columns)`` float32.

    Decodes with the inverse preprocessing fused in (as generation does) and applies the
    bundle's physics clean-up. A bundle that models events in the canonical frame decodes them
    in it, unless ``frames`` ``(n, 3)`` float64 (``bundle.preprocessor.event_frames(events)``,
    or :func:`eventgen.representation.symmetry_draws`) gives each event its frame.
    """
    from eventgen.decode import EventDecoder

    k = bundle.model_settings.latent_dim
    mu = np.asarray(mu)
    if mu.ndim != 2 or mu.shape[1] != k:
        raise InputError(f"decode needs latent points of shape (n, {k}) for this bundle, found {mu.shape}")
    if frames is not None:
        frames = np.ascontiguousarray(frames, dtype=np.float64)
    events = EventDecoder(bundle.model, bundle.preprocessor)(mu)
    return bundle.cleanup.apply(events, representation=bundle.preprocessor.representation, frames=frames)


def denoise(bundle: Bundle, events: np.ndarray) -> np.ndarray:
    """``decode(encode(events))``: the reconstruction of ``(n_events, n_columns)`` through μ, cleaned.

    Each event comes back in its own frame (its azimuth and mirrors), whatever frame the bundle models.
    """
    events = check_events(bundle.schema, events, "denoise")
    frames = bundle.preprocessor.event_frames(events)
    return decode(bundle, encode(bundle, events)[0], frames)


def add_noise(
    events: np.ndarray, schema: Schema, rng: np.random.Generator, relative: float = 0.1, angle: float = 0.05
) -> np.ndarray:
    """A smeared copy of ``events`` ``(n_events, n_columns)``: known Gaussian noise for denoising tests.

    Energy and pT columns of present objects (pT > 0) and a standalone MET are multiplied by
    ``1 + relative·N(0, 1)`` (floored at 0), η and φ of present objects shifted by
    ``angle·N(0, 1)`` (φ wrapped); absent objects and count columns are untouched.
    """
    from eventgen.cleanup import wrap_phi

    out = np.array(events, dtype=np.float32, copy=True)
    pts = {o.name: o.pt for o in schema.objects()}
    for j, column in enumerate(schema.columns):
        if column.kind == "count" or column.kind == "generic":
            continue
        pt_col = pts.get(column.obj) if column.obj is not None else j
        present = out[:, pt_col] > 0 if pt_col is not None else np.ones(len(out), bool)
        noise = rng.standard_normal(len(out)).astype(np.float32)
        if column.kind in ("energy", "pt"):
            out[:, j] = np.where(present, np.maximum(out[:, j] * (1 + relative * noise), 0), out[:, j])
        else:
            out[:, j] = np.where(present, out[:, j] + angle * noise, out[:, j])
            if column.kind == "phi":
                out[:, j] = wrap_phi(out[:, j])
    return out


def latent_schema(latent_dim: int, with_sigma: bool) -> Schema:
    """Columns ``z0..z{d-1}`` (μ) and, with ``with_sigma``, ``s0..s{d-1}`` (σ), all of kind generic."""
    names = [f"z{i}" for i in range(latent_dim)] + (
        [f"s{i}" for i in range(latent_dim)] if with_sigma else []
    )
    return Schema("latent", tuple(Column(n, "generic") for n in names))


def write_latent(
    path: str | Path,
    bundle: Bundle,
    mu: np.ndarray,
    sigma: np.ndarray | None = None,
    *,
    overwrite: bool = False,
    compression: str | None = "zstd",
) -> Path:
    """Write ``mu`` (and ``sigma``), each ``(n_events, latent_dim)``, to a latent file naming the bundle.

    The file's metadata holds ``{"format": "eventgen-latent", "bundle_hash": ..., "latent_dim": d}``;
    :func:`read_latent` refuses it for any other bundle. The bundle must have been saved.
    """
    k = bundle.model_settings.latent_dim
    arrays = [np.asarray(mu)] + ([np.asarray(sigma)] if sigma is not None else [])
    if any(a.ndim != 2 or a.shape != (arrays[0].shape[0], k) for a in arrays):
        raise InputError(f"mu and sigma must have shape (n, {k}), found {[a.shape for a in arrays]}")
    if not bundle.hash:
        raise OutputError("the bundle was never saved, so a latent file could not name it; save it first")
    meta = {"format": LATENT_FORMAT, "bundle_hash": bundle.hash, "latent_dim": k}
    data = np.hstack(arrays).astype(np.float32)
    schema = latent_schema(k, sigma is not None)
    return write_events(path, data, schema, meta, overwrite=overwrite, compression=compression)


def read_latent(path: str | Path, bundle: Bundle) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mu, sigma)`` ``(n_events, latent_dim)`` float32 of a latent file written for ``bundle``.

    ``sigma`` is None when the file holds μ only. Raises InputError for a file of another
    bundle (hash mismatch) or of another latent dimension.
    """
    table = read_events(path)
    meta = table.metadata
    if meta.get("format") != LATENT_FORMAT:
        raise InputError(f"{str(path)!r} is not an eventgen latent file; write one with 'eventgen encode'")
    k = bundle.model_settings.latent_dim
    names = table.schema.names
    n_z = sum(1 for n in names if n.startswith("z"))
    if n_z != k or meta.get("latent_dim") != k:
        raise InputError(
            f"latent file {str(path)!r} has latent dimension {n_z}, the bundle has {k}; "
            "decode it with the bundle that encoded it"
        )
    if meta.get("bundle_hash") != bundle.hash:
        raise InputError(
            f"latent file {str(path)!r} was written by bundle {str(meta.get('bundle_hash'))[:12]}, not by "
            f"this bundle ({bundle.hash[:12]}); decode it with the bundle that encoded it"
        )
    mu = np.ascontiguousarray(table.data[:, [names.index(f"z{i}") for i in range(k)]])
    if f"s{k - 1}" not in names:
        return mu, None
    return mu, np.ascontiguousarray(table.data[:, [names.index(f"s{i}") for i in range(k)]])


# ----------------------------------------------------------------------------- latent exploration


def _pca(bundle: Bundle, n_components: int) -> PCA:
    from sklearn.decomposition import PCA

    mu = bundle.buffer.mu_
    if not 1 <= n_components <= min(mu.shape):
        raise ConfigError(
            f"n_components must be in [1, {min(mu.shape)}] for this bundle, found {n_components}"
        )
    return PCA(n_components=n_components, svd_solver="full").fit(mu.astype(np.float64))


def latent_pca(bundle: Bundle, n_components: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the buffer's μ ``(n_buffer, latent_dim)``.

    Returns ``components`` ``(n_components, latent_dim)`` (unit principal axes),
    ``explained_variance_ratio`` ``(n_components,)`` (descending, sum <= 1) and the buffer's
    μ projected on them, ``(n_buffer, n_components)``.
    """
    pca = _pca(bundle, n_components)
    projected = pca.transform(bundle.buffer.mu_.astype(np.float64))
    return (
        pca.components_.astype(np.float32),
        pca.explained_variance_ratio_.astype(np.float32),
        projected.astype(np.float32),
    )


def traverse(bundle: Bundle, component: int, steps: Sequence[float] | np.ndarray) -> np.ndarray:
    """Events decoded along principal axis ``component`` of the buffer's μ.

    Point k is ``mean(μ) + steps[k]·sqrt(variance_c)·axis_c``, so steps are in standard
    deviations along the axis. Returns cleaned events ``(len(steps), n_columns)``.
    """
    k = bundle.model_settings.latent_dim
    if isinstance(component, bool) or not isinstance(component, int) or not 0 <= component < k:
        raise ConfigError(f"component must be an integer in [0, {k}) for this bundle, found {component!r}")
    pca = _pca(bundle, component + 1)
    steps = np.asarray(steps, dtype=np.float64).reshape(-1)
    axis = pca.components_[component] * math.sqrt(pca.explained_variance_[component])
    return decode(bundle, (pca.mean_[None, :] + steps[:, None] * axis[None, :]).astype(np.float32))


def _observables(events: np.ndarray, schema: Schema) -> dict[str, np.ndarray]:
    """Observables to colour plots by: MET, H_T, object counts and leading pT per family, when present."""
    out: dict[str, np.ndarray] = {}
    if "met" in schema.names:
        out["MET [GeV]"] = events[:, schema.index("met")]
    for family, (objects, count) in schema.families().items():
        if family == "j":
            out["H_T [GeV]"] = events[:, [o.pt for o in objects]].sum(axis=1)
        out[f"{objects[0].name} pT [GeV]"] = events[:, objects[0].pt]
        if count >= 0:
            out[schema.columns[count].name] = events[:, count]
    return out


def plot_latent(
    bundle: Bundle,
    events_of_buffer: np.ndarray | None,
    out_dir: str | Path,
    *,
    steps: Sequence[float] | np.ndarray = TRAVERSAL_STEPS,
    max_points: int = 5000,
    seed: int = 0,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``latent_pca.png`` and ``latent_traversal.png`` into ``out_dir``; returns their paths.

    ``latent_pca.png``: the buffer's μ on its two leading principal components (a seeded subsample
    of ``max_points``), one panel per observable as colour. The observables come from
    ``events_of_buffer`` ``(n_buffer, n_columns)``, the training events in buffer order, or from
    the decoded μ when None. ``latent_traversal.png``: the observables of events decoded at
    ``steps`` standard deviations along each of the two leading axes.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib; install it with pip install 'eventgen[plots]'"
        ) from None
    out_dir = Path(out_dir)
    targets = [out_dir / "latent_pca.png", out_dir / "latent_traversal.png"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"plots {existing} exist already; choose another folder or pass --overwrite")
    n_buffer = bundle.buffer.mu_.shape[0]
    if events_of_buffer is None:
        events_of_buffer = decode(bundle, bundle.buffer.mu_)
    elif np.shape(events_of_buffer)[0] != n_buffer:
        raise InputError(
            f"events_of_buffer has {np.shape(events_of_buffer)[0]} events, the buffer {n_buffer}; pass the "
            "training events in their original order, or None to use the decoded μ"
        )
    events = check_events(bundle.schema, events_of_buffer, "plot_latent")
    out_dir.mkdir(parents=True, exist_ok=True)
    _, ratio, projected = latent_pca(bundle, 2)
    pick = np.sort(np.random.default_rng(seed).permutation(n_buffer)[:max_points])
    obs = _observables(events[pick], bundle.schema)
    fig, axes = plt.subplots(1, len(obs), figsize=(4.2 * len(obs), 3.6), squeeze=False)
    for ax, (name, values) in zip(axes[0], obs.items(), strict=True):
        art = ax.scatter(
            projected[pick, 0], projected[pick, 1], c=values, s=2, cmap="viridis", rasterized=True
        )
        fig.colorbar(art, ax=ax, label=name)
        ax.set(xlabel=f"PC1 ({ratio[0]:.0%})", ylabel=f"PC2 ({ratio[1]:.0%})")
    fig.suptitle(f"buffer μ of bundle {bundle.hash[:12] or '(unsaved)'}")
    _save(fig, targets[0])
    steps = np.asarray(steps, dtype=np.float64)
    walks = [_observables(traverse(bundle, c, steps), bundle.schema) for c in (0, 1)]
    fig, axes = plt.subplots(1, len(walks[0]), figsize=(4.2 * len(walks[0]), 3.6), squeeze=False)
    for ax, name in zip(axes[0], walks[0], strict=True):
        for c, walk in enumerate(walks):
            ax.plot(steps, walk[name], marker="o", ms=3, label=f"along PC{c + 1}")
        ax.set(xlabel="step [σ along the axis]", ylabel=name)
        ax.legend()
    _save(fig, targets[1])
    return targets


def _save(fig: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- β scan


def check_betas(betas: Sequence[float]) -> list[float]:
    """The β values as floats; raises ConfigError for an empty list or a β outside [0, 1]."""
    betas = list(betas)
    if not betas:
        raise ConfigError("the β scan needs at least one β; pass e.g. --betas 1 0.05 0.005 0")
    bad = [b for b in betas if not isinstance(b, (int, float)) or not 0.0 <= b <= 1.0]
    if bad:
        raise ConfigError(f"every β must be a number in [0, 1], found {bad}")
    return [float(b) for b in betas]


def beta_scan(
    table: EventTable,
    betas: Sequence[float],
    *,
    model_settings: ModelSettings | None = None,
    train_settings: TrainSettings | None = None,
    preprocess: PreprocessMethod = "physics",
    representation: Representation = "mass",
    frame: Frame = "canonical",
    buffer_settings: BufferSettings | None = None,
    seed: int = 0,
    reference: EventTable | np.ndarray | None = None,
    n_generate: int = 20_000,
) -> list[dict[str, float]]:
    """Fit one bundle per β on ``table`` (same seed and settings otherwise) and report each.

    Each row: ``beta``, ``avg_variance`` (mean σ² of the buffer), ``avg_abs_mean`` (mean |μ|),
    ``val_loss``, ``val_mse``, ``val_kl`` (best epoch), ``epochs``, ``seconds``; with a held-out
    ``reference`` ``(n_ref, n_columns)`` also ``mean_w1`` (mean per-column W1/σ) and
    ``auc``/``auc_error`` (classifier two-sample test) of ``min(n_generate, n_ref)`` generated events.
    """
    import time

    from eventgen.fitting import fit
    from eventgen.generation import EventSource
    from eventgen.metrics import classifier_auc, wasserstein
    from eventgen.model import ModelSettings

    betas = check_betas(betas)
    ref = None
    if reference is not None:
        ref = reference.data if isinstance(reference, EventTable) else np.asarray(reference)
        ref = check_events(table.schema, ref, "beta_scan's reference")
    rows = []
    for beta in betas:
        settings = dataclasses.replace(model_settings or ModelSettings(), beta=beta)
        t0 = time.perf_counter()
        bundle = fit(
            table,
            preprocess=preprocess,
            representation=representation,
            frame=frame,
            model_settings=settings,
            train_settings=train_settings,
            buffer_settings=buffer_settings,
            seed=seed,
        )
        training = bundle.metadata["training"]
        best = training["best"]
        row: dict[str, float] = {"beta": beta, **bundle.buffer.latent_stats()}
        row.update({k: float(best[k]) for k in ("val_loss", "val_mse", "val_kl")})
        row.update(epochs=len(training["history"]), seconds=time.perf_counter() - t0)
        if ref is not None:
            n = min(n_generate, len(ref))
            source = EventSource(bundle, None, seed, device="cpu")
            gen = np.concatenate(list(source.events(0, n, n)))
            w1 = [wasserstein(gen[:, j], ref[:, j], seed + j)[0] for j in range(ref.shape[1])]
            auc, err = classifier_auc(gen, ref, seed)
            row.update(mean_w1=float(np.mean(w1)), auc=auc, auc_error=err)
        rows.append(row)
    return rows


_BETA_COLUMNS = (
    ("beta", "β"),
    ("avg_variance", "avg var"),
    ("avg_abs_mean", "avg mean"),
    ("val_loss", "val loss"),
    ("val_mse", "val MSE"),
    ("val_kl", "val KL"),
    ("mean_w1", "mean W1/σ"),
    ("auc", "AUC"),
)


def format_beta_table(rows: Sequence[dict[str, float]]) -> str:
    """The β scan as a Markdown table in the seed talk's layout (β, avg var, avg mean, then losses)."""
    keys = [(k, title) for k, title in _BETA_COLUMNS if any(k in r for r in rows)]
    lines = ["| " + " | ".join(t for _, t in keys) + " |", "|" + "---:|" * len(keys)]
    for r in rows:
        cells = [f"{r[k]:.3g}" if isinstance(r.get(k), (int, float)) else "" for k, _ in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
