"""Training of the β-VAE: seeded split, Adam with a halving learning rate, early stopping.

:func:`train` takes preprocessed float32 events ``(n_events, n_features)`` and returns the
best-validation model. It is deterministic on CPU for a fixed seed (model initialisation,
shuffling and reparameterisation noise come from ``seed`` only, through local generators;
the global torch RNG is left untouched) and resumable: with a ``checkpoint_dir`` it saves
everything needed to continue after every epoch, and a resumed run ends with the same
weights as an uninterrupted one.

:func:`check_trainable` is the check :func:`eventgen.fitting.fit` runs on the raw events before
preprocessing. NaN and inf are refused earlier, once, where events enter eventgen
(:mod:`eventgen.io`); training takes its input as it is and looks for a non-finite value
only when the loss is not finite, to say where it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from eventgen.errors import ConfigError, EventgenError, InputError
from eventgen.io import check_finite
from eventgen.model import BetaVAE, ModelSettings, vae_loss
from eventgen.schema import Schema

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "train-checkpoint.pt"
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")
_VAL_CHUNK = 8192


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings ([DE]: batch 1024, Adam, halving learning rate, best-validation model).

    The learning rate is multiplied by ``lr_factor`` when the validation loss has not improved
    for ``patience_lr`` epochs (down to ``min_lr``); training stops after ``patience`` epochs
    without improvement. ``threads=None`` uses ``torch.get_num_threads()`` capped at the core
    count; ``device`` is ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """

    epochs: int = 100
    batch_size: int = 1024
    learning_rate: float = 1e-3
    lr_factor: float = 0.5
    patience_lr: int = 5
    patience: int = 15
    min_lr: float = 1e-6
    validation_fraction: float = 0.2
    min_events: int = 100
    threads: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("patience_lr", 1),
            ("patience", 1),
            ("min_events", 2),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"train.{name} must be an integer >= {low}, found {value!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ConfigError(f"train.threads must be an integer >= 1 or null, found {self.threads!r}")
        if not _positive(self.learning_rate):
            raise ConfigError(f"train.learning_rate must be a number > 0, found {self.learning_rate!r}")
        if not _positive(self.min_lr) or self.min_lr > self.learning_rate:
            raise ConfigError(f"train.min_lr must be in (0, learning_rate], found {self.min_lr!r}")
        if not _positive(self.lr_factor) or self.lr_factor >= 1:
            raise ConfigError(f"train.lr_factor must be in (0, 1), found {self.lr_factor!r}")
        if not _positive(self.validation_fraction) or self.validation_fraction >= 1:
            raise ConfigError(
                f"train.validation_fraction must be in (0, 1), found {self.validation_fraction!r}"
            )
        if not isinstance(self.device, str) or not _DEVICE_RE.fullmatch(self.device):
            raise ConfigError(f"train.device must be one of auto, cpu, cuda, cuda:N; found {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model`` is the best-validation model, on CPU in eval mode. ``history`` has one dict per
    epoch run (keys: epoch, train_loss, train_mse, train_kl, val_loss, val_mse, val_kl, lr,
    seconds, events_per_second), indexed by epoch from 0; ``best_epoch`` is the index of the
    best model's epoch and :attr:`best` its entry. ``train_index`` and ``val_index`` (sorted
    int64 arrays) are the rows of the input used for training and validation.
    """

    model: BetaVAE
    history: list[dict[str, float]]
    best_epoch: int
    train_index: np.ndarray
    val_index: np.ndarray
    stopped_early: bool = False
    device: str = "cpu"

    @property
    def best(self) -> dict[str, float]:
        """The history entry of the best epoch (``{}`` when no epoch ran)."""
        return dict(self.history[self.best_epoch]) if self.history else {}

    @property
    def events_per_second(self) -> float:
        """Mean training throughput (training events per second of optimisation) over the epochs."""
        rates = [h["events_per_second"] for h in self.history]
        return float(np.mean(rates)) if rates else float("nan")


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"`` without CUDA raises ConfigError."""
    if not _DEVICE_RE.fullmatch(spec):
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {spec!r} was requested but torch finds no CUDA device; use device auto or cpu"
        )
    return torch.device(spec)


def resolve_threads(threads: int | None) -> int:
    """``threads`` or, for None, ``torch.get_num_threads()`` capped at the number of cores."""
    if threads is not None:
        return threads
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def split_indices(n_events: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n_events)`` into sorted ``(train_index, val_index)``; both non-empty."""
    n_val = min(max(1, round(validation_fraction * n_events)), n_events - 1)
    perm = np.random.default_rng(seed).permutation(n_events)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def check_trainable(x_raw: np.ndarray, schema: Schema, min_events: int = 100) -> None:
    """Refuse raw events ``(n_events, len(schema))`` that cannot be trained on, saying why.

    Raises InputError for a shape that does not match the schema, too few events and
    constant columns (zero variance: nothing to learn, drop them). The events are finite
    already (an :class:`~eventgen.io.EventTable` holds finite events).
    """
    x_raw = np.asarray(x_raw)
    if x_raw.ndim != 2 or x_raw.shape[1] != len(schema):
        raise InputError(
            f"events have shape {x_raw.shape} but schema {schema.name!r} has {len(schema)} columns; "
            "pass events of shape (n_events, n_columns) in schema order or the schema that matches them"
        )
    if x_raw.shape[0] < min_events:
        raise InputError(
            f"{x_raw.shape[0]} events are too few to train on (at least {min_events} needed); "
            "give more events or lower train.min_events"
        )
    constant = [schema.names[j] for j in np.flatnonzero(np.ptp(x_raw, axis=0) == 0)]
    if constant:
        raise InputError(
            f"columns {constant} are constant (every event has the same value), so there is nothing to "
            "learn from them; drop them from the data and the schema"
        )


def _check_events(x: np.ndarray, min_events: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] < 1 or not np.issubdtype(x.dtype, np.number):
        raise InputError(
            f"train expects a numeric array of shape (n_events, n_features), found {x.shape} {x.dtype}"
        )
    if x.shape[0] < min_events:
        raise InputError(
            f"{x.shape[0]} events are too few to train on (at least {min_events} needed); "
            "give more events or lower train.min_events"
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def train(
    x: np.ndarray,
    model_settings: ModelSettings,
    train_settings: TrainSettings,
    seed: int,
    checkpoint_dir: Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a :class:`BetaVAE` on preprocessed events ``x`` of shape ``(n_events, n_features)``.

    The split (``validation_fraction``) comes from ``np.random.default_rng(seed)``; model
    initialisation, shuffling and noise from ``seed`` through local torch generators, so two
    CPU runs with the same arguments give bit-identical weights. With ``checkpoint_dir`` the
    state is saved after every epoch (atomically) and an existing checkpoint there is resumed.
    Torch's thread count is set to ``train_settings.threads`` for the call and restored after.
    """
    x = _check_events(x, train_settings.min_events)
    device = resolve_device(train_settings.device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(resolve_threads(train_settings.threads))
    try:
        return _Trainer(x, model_settings, train_settings, seed, device).run(checkpoint_dir, progress)
    finally:
        torch.set_num_threads(old_threads)


class _Trainer:
    """The state of one training run; :meth:`run` loops over epochs and checkpoints."""

    def __init__(self, x: np.ndarray, ms: ModelSettings, ts: TrainSettings, seed: int, device: torch.device):
        self.x, self.ms, self.ts, self.seed, self.device = x, ms, ts, seed, device
        self.train_index, self.val_index = split_indices(x.shape[0], ts.validation_fraction, seed)
        self.x_train = torch.from_numpy(x[self.train_index]).to(device)
        self.x_val = torch.from_numpy(x[self.val_index]).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = BetaVAE(x.shape[1], ms)
        self.model.to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=ts.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="min",
            factor=ts.lr_factor,
            patience=ts.patience_lr,
            min_lr=ts.min_lr,
            eps=0.0,
        )
        shuffle_seed, noise_seed, self.val_seed = (
            int(s) for s in np.random.SeedSequence(seed).generate_state(3)
        )
        self.shuffle_gen = torch.Generator().manual_seed(shuffle_seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(noise_seed)
        self.history: list[dict[str, float]] = []
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.best_val, self.best_epoch, self.bad_epochs, self.stopped = math.inf, -1, 0, False
        self.fingerprint = json.dumps(
            {
                "model": ms.to_dict(),
                "train": {k: v for k, v in ts.to_dict().items() if k not in ("epochs", "threads", "device")},
                "seed": seed,
                "shape": list(x.shape),
                "data": hashlib.blake2b(x.tobytes(), digest_size=16).hexdigest(),
                "device": device.type,
            },
            sort_keys=True,
        )

    def run(self, checkpoint_dir: Path | None, progress: bool) -> TrainResult:
        path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
        if path is not None and path.exists():
            self._load(path)
        start = len(self.history)
        bar = tqdm(
            range(start, self.ts.epochs),
            initial=start,
            total=self.ts.epochs,
            disable=not progress,
            desc="train",
            unit="epoch",
        )
        for epoch in bar:
            if self.stopped:
                break
            record = self._epoch(epoch)
            bar.set_postfix(train=f"{record['train_loss']:.4g}", val=f"{record['val_loss']:.4g}")
            log.debug("epoch %d: %s", epoch, record)
            if path is not None:
                self._save(path)
        bar.close()
        if self.stopped:
            log.info("early stop after epoch %d; best epoch %d", len(self.history) - 1, self.best_epoch)
        self.model.load_state_dict(self.best_state)
        return TrainResult(
            self.model.cpu().eval(),
            self.history,
            self.best_epoch,
            self.train_index,
            self.val_index,
            self.stopped,
            self.device.type,
        )

    def _epoch(self, epoch: int) -> dict[str, float]:
        lr = float(self.optimizer.param_groups[0]["lr"])
        t0 = time.perf_counter()
        train = self._train_pass()
        t_train = time.perf_counter() - t0
        val = self._val_pass()
        if not all(math.isfinite(v) for v in (*train, *val)):
            check_finite(self.x, None, "train's input")  # NaN/inf input: say where, not "diverged"
            raise EventgenError(
                f"training diverged at epoch {epoch} (loss is not finite); lower train.learning_rate "
                "or check the preprocessing"
            )
        self.scheduler.step(val[0])
        if val[0] < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val[0], epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
            self.stopped = self.bad_epochs >= self.ts.patience
        record = {
            "epoch": epoch,
            "train_loss": train[0],
            "train_mse": train[1],
            "train_kl": train[2],
            "val_loss": val[0],
            "val_mse": val[1],
            "val_kl": val[2],
            "lr": lr,
            "seconds": time.perf_counter() - t0,
            "events_per_second": self.x_train.shape[0] / t_train,
        }
        self.history.append(record)
        return record

    def _train_pass(self) -> tuple[float, float, float]:
        """One pass over the shuffled training events; returns event-weighted mean (loss, mse, kl)."""
        self.model.train()
        n, bs, beta = self.x_train.shape[0], self.ts.batch_size, self.ms.beta
        perm = torch.randperm(n, generator=self.shuffle_gen).to(self.device)
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        for start in range(0, n, bs):
            xb = self.x_train.index_select(0, perm[start : start + bs])
            x_hat, mu, logvar = self.model(xb, generator=self.noise_gen)
            loss, mse, kl = vae_loss(xb, x_hat, mu, logvar, beta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                sums += torch.stack((loss, mse, kl)).double() * xb.shape[0]
        loss, mse, kl = (sums / n).tolist()
        return loss, mse, kl

    def _val_pass(self) -> tuple[float, float, float]:
        """The validation loss with the same noise every epoch (so epochs compare fairly)."""
        self.model.eval()
        gen = torch.Generator(device=self.device).manual_seed(self.val_seed)
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        with torch.inference_mode():
            for start in range(0, self.x_val.shape[0], _VAL_CHUNK):
                xb = self.x_val[start : start + _VAL_CHUNK]
                x_hat, mu, logvar = self.model(xb, generator=gen)
                loss, mse, kl = vae_loss(xb, x_hat, mu, logvar, self.ms.beta)
                sums += torch.stack((loss, mse, kl)).double() * xb.shape[0]
        loss, mse, kl = (sums / self.x_val.shape[0]).tolist()
        return loss, mse, kl

    def _save(self, path: Path) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": self.history,
            "best_state": self.best_state,
            "best": {
                "val": self.best_val,
                "epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs,
                "stopped": self.stopped,
            },
            "shuffle_gen": self.shuffle_gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # a truncated, foreign or unsafe file: never retry without weights_only
            raise InputError(
                f"cannot read training checkpoint {str(path)!r} ({type(exc).__name__}: it is truncated, "
                "corrupt or not an eventgen checkpoint); delete it to start over"
            ) from None
        if state.get("fingerprint") != self.fingerprint:
            raise InputError(
                f"training checkpoint {str(path)!r} belongs to a run with other data, seed or settings; "
                "use another checkpoint directory or delete it to start over"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self.best_state = state["best_state"]
        best = state["best"]
        self.best_val, self.best_epoch = float(best["val"]), int(best["epoch"])
        self.bad_epochs, self.stopped = int(best["bad_epochs"]), bool(best["stopped"])
        self.shuffle_gen.set_state(state["shuffle_gen"].cpu())
        self.noise_gen.set_state(state["noise_gen"].cpu())
        log.info("resuming training from %s after epoch %d", path, len(self.history) - 1)
