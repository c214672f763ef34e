"""The β-VAE: a residual dense encoder to ``(mu, logvar)`` and a residual dense decoder.

Architecture after [DE]: ``depth`` dense layers of ``hidden`` units in the encoder and in
the decoder; every layer after the first is a residual block ``h + act(Linear(h))``. The
encoder ends in two linear heads (``mu`` and ``logvar``, each ``latent_dim`` wide), the
decoder in a linear output layer (optionally ``tanh``, as the prior art had).

Torch stays here and in :mod:`eventgen.train`; callers from other stages use
:func:`encode_numpy` and :func:`reconstruction_error_numpy`, which take and return NumPy
float32, in the preprocessed space. Decoding latent points to events is
:class:`eventgen.decode.EventDecoder` (raw scale, for generation) and
:func:`eventgen.latent.decode` (raw scale and cleaned, for users of a bundle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn

from eventgen.errors import ConfigError, InputError

R = TypeVar("R")
Activation = Literal["elu", "relu", "gelu", "silu", "tanh"]
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


@dataclass(frozen=True)
class ModelSettings:
    """Hyperparameters of :class:`BetaVAE` ([DE]'s best model by default)."""

    latent_dim: int = 20
    hidden: int = 128
    depth: int = 6
    residual: bool = True
    activation: Activation = "elu"
    beta: float = 1e-6
    output: Literal["linear", "tanh"] = "linear"

    def __post_init__(self) -> None:
        for name, low in (("latent_dim", 1), ("hidden", 1), ("depth", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"model.{name} must be an integer >= {low}, found {value!r}")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(
                f"model.activation must be one of {list(_ACTIVATIONS)}, found {self.activation!r}"
            )
        if self.output not in ("linear", "tanh"):
            raise ConfigError(f"model.output must be one of ['linear', 'tanh'], found {self.output!r}")
        if not isinstance(self.beta, (int, float)) or not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"model.beta must be a number in [0, 1], found {self.beta!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ResidualBlock(nn.Module):
    """``h + act(Linear(h))`` for a square layer."""

    def __init__(self, width: int, activation: str) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.act = _ACTIVATIONS[activation]()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.linear(h))


def _stack(n_in: int, settings: ModelSettings) -> nn.Sequential:
    """``depth`` dense layers ``n_in -> hidden -> ... -> hidden``, residual where widths match."""
    layers: list[nn.Module] = [nn.Linear(n_in, settings.hidden), _ACTIVATIONS[settings.activation]()]
    for _ in range(settings.depth - 1):
        if settings.residual:
            layers.append(ResidualBlock(settings.hidden, settings.activation))
        else:
            layers += [nn.Linear(settings.hidden, settings.hidden), _ACTIVATIONS[settings.activation]()]
    return nn.Sequential(*layers)


class BetaVAE(nn.Module):
    """β-VAE on ``(batch, n_features)`` inputs with a ``settings.latent_dim`` Gaussian latent."""

    def __init__(self, n_features: int, settings: ModelSettings | None = None) -> None:
        super().__init__()
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ConfigError(f"a BetaVAE needs n_features >= 1, found {n_features!r}")
        self.n_features = n_features
        self.settings = settings or ModelSettings()
        s = self.settings
        self.encoder = _stack(n_features, s)
        self.to_mu = nn.Linear(s.hidden, s.latent_dim)
        self.to_logvar = nn.Linear(s.hidden, s.latent_dim)
        self.decoder = _stack(s.latent_dim, s)
        self.to_output = nn.Linear(s.hidden, n_features)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, n_features)`` -> ``(mu, logvar)``, each ``(batch, latent_dim)``."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, latent_dim)`` -> ``(batch, n_features)``."""
        out = self.to_output(self.decoder(z))
        return torch.tanh(out) if self.settings.output == "tanh" else out

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised pass: ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, 1)`` from ``generator``.

        Returns ``(x_hat, mu, logvar)`` of shapes ``(batch, n_features)``, ``(batch, latent_dim)`` x 2.
        """
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-event MSE ``(batch,)`` of the deterministic reconstruction ``decode(mu)`` (anomaly score)."""
        mu, _ = self.encode(x)
        return ((self.decode(mu) - x) ** 2).mean(dim=1)


def vae_loss(
    x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seed talk's β-VAE loss ``L = (1 - β)·MSE + β·KL``; returns ``(L, MSE, KL)`` as scalars.

    ``MSE`` is the mean of ``(x_hat - x)²`` over all events and features of the batch
    ``(batch, n_features)``. ``KL`` is the batch mean of the KL divergence of the diagonal
    Gaussian ``N(mu, exp(logvar))`` from ``N(0, 1)`` summed over the latent dimensions:
    ``KL = mean_batch( -0.5 · Σ_latent (1 + logvar - mu² - exp(logvar)) )``.
    """
    mse = torch.mean((x_hat - x) ** 2)
    kl = torch.mean(-0.5 * torch.sum(1.0 + logvar - mu**2 - torch.exp(logvar), dim=1))
    return (1.0 - beta) * mse + beta * kl, mse, kl


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _chunked(
    model: BetaVAE, a: np.ndarray, width: int, batch_size: int, what: str, fn: Callable[[torch.Tensor], R]
) -> list[R]:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] != width:
        raise InputError(f"{what} expects an array of shape (n, {width}), found shape {a.shape}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, found {batch_size}")
    device = _device_of(model)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, a.shape[0], batch_size):
                chunk = torch.from_numpy(
                    np.ascontiguousarray(a[start : start + batch_size], dtype=np.float32)
                )
                out.append(fn(chunk.to(device)))
    finally:
        model.train(was_training)
    return out


def _cat(parts: list[torch.Tensor], width: int) -> np.ndarray:
    if not parts:
        return np.zeros((0, width), dtype=np.float32)
    return torch.cat(parts).cpu().numpy().astype(np.float32, copy=False)


#: the smallest log-variance turned into a sigma: exp(-40) is far below any useful latent scale
MIN_LOGVAR = -80.0


def encode_numpy(model: BetaVAE, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Encode preprocessed events ``(n_events, n_features)`` to ``(mu, sigma)``.

    Both outputs are ``(n_events, latent_dim)`` float32; ``sigma = exp(logvar / 2)``, with
    ``logvar`` floored at :data:`MIN_LOGVAR` so that an event the encoder is very sure of keeps a
    positive float32 sigma (``exp`` of a log-variance below about -200 underflows to 0). Runs in
    chunks of ``batch_size`` under ``torch.inference_mode`` on the model's device.
    """
    parts = _chunked(model, x, model.n_features, batch_size, "encode_numpy", model.encode)
    k = model.settings.latent_dim
    mu = _cat([p[0] for p in parts], k)
    sigma = _cat([torch.exp(0.5 * p[1].clamp_min(MIN_LOGVAR)) for p in parts], k)
    return mu, sigma


def reconstruction_error_numpy(model: BetaVAE, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Per-event reconstruction MSE ``(n_events,)`` float32 of events ``(n_events, n_features)``."""
    parts = _chunked(
        model, x, model.n_features, batch_size, "reconstruction_error_numpy", model.reconstruction_error
    )
    return _cat([p[:, None] for p in parts], 1)[:, 0]
