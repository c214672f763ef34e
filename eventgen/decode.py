"""Decoding for generation: latent points to raw-scale events, fused for inference speed.

:class:`EventDecoder` runs the β-VAE's decoder layer by layer with preallocated buffers
(``addmm`` into a scratch tensor, in-place activation, in-place residual add) and applies
the inverse preprocessing (``y * std + mean``, then ``scale * expm1`` for log columns) in
torch on the same cache-hot chunk; the quantile transform's and the dilepton pair's inverses
follow in NumPy (:meth:`~eventgen.preprocess.Preprocessor.finish_features`). On 2 CPU cores
this is ~1.5x faster than calling ``model.decode`` and then ``Preprocessor.inverse_transform``
in NumPy.

Rows are decoded in fixed chunks of :data:`CHUNK`; callers that need results independent
of their batch size (generation does) pass arrays aligned to whole chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eventgen.model import BetaVAE, ResidualBlock

if TYPE_CHECKING:
    from eventgen.preprocess import Preprocessor

CHUNK = 2048


def _elu_(x: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """ELU in place as ``max(x, 0) + exp(min(x, 0)) - 1``: 1.7x faster than ``F.elu_`` on CPU (abs. error < 1e-7)."""
    torch.clamp_max(x, 0.0, out=scratch).exp_().sub_(1.0)
    return x.clamp_min_(0.0).add_(scratch)


#: An activation applied in place to its first argument, with the second as scratch space.
InPlace = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_INPLACE: dict[type[nn.Module], InPlace] = {
    nn.ELU: _elu_,
    nn.ReLU: lambda t, _: F.relu_(t),
    nn.SiLU: lambda t, _: F.silu(t, inplace=True),
    nn.Tanh: lambda t, _: t.tanh_(),
    nn.GELU: lambda t, _: t.copy_(F.gelu(t)),
}


class EventDecoder:
    """Callable ``(n, latent_dim) float32 -> (n, n_features) float32`` raw-scale events (before clean-up)."""

    def __init__(
        self, model: BetaVAE, preprocessor: Preprocessor, device: torch.device | str = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.n_features = int(model.n_features)
        self.tanh_output = model.settings.output == "tanh"
        self._layers = [self._layer(m) for m in _decoder_layers(model)]
        self._width = int(model.settings.hidden)
        out = model.to_output
        self._w_out = out.weight.detach().t().contiguous().to(self.device)
        self._b_out = out.bias.detach().clone().to(self.device)
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.device)  # noqa: E731
        self._std, self._mean = as_tensor(preprocessor.std_), as_tensor(preprocessor.mean_)
        self._log_mask = torch.as_tensor(np.asarray(preprocessor.log_mask_), device=self.device)
        self._log_scale = as_tensor(preprocessor.log_scale_)
        self._any_log = bool(self._log_mask.any())
        self._finish = preprocessor.finish_features

    def _layer(
        self, item: tuple[str, nn.Linear, nn.Module]
    ) -> tuple[bool, torch.Tensor, torch.Tensor, InPlace]:
        kind, linear, act = item
        weight = linear.weight.detach().t().contiguous().to(self.device)
        act_fn = _INPLACE.get(type(act))
        if act_fn is None:
            raise TypeError(f"no in-place version of activation {type(act).__name__}")
        return kind == "residual", weight, linear.bias.detach().clone().to(self.device), act_fn

    @torch.inference_mode()
    def _decode_chunk(self, z: torch.Tensor) -> torch.Tensor:
        """One chunk ``(m, latent_dim)`` on the device -> events ``(m, n_features)`` on the device."""
        h: torch.Tensor | None = None
        scratch = torch.empty((z.shape[0], self._width), dtype=z.dtype, device=z.device)
        spare = torch.empty_like(scratch)
        for residual, weight, bias, act in self._layers:
            if h is None:
                h = torch.addmm(bias, z, weight)
                act(h, spare)
            elif residual:
                torch.addmm(bias, h, weight, out=scratch)
                act(scratch, spare)
                h.add_(scratch)
            else:
                torch.addmm(bias, h, weight, out=scratch)
                act(scratch, spare)
                h, scratch = scratch, h
        assert h is not None  # a decoder has at least one layer
        y = torch.addmm(self._b_out, h, self._w_out)
        if self.tanh_output:
            y.tanh_()
        y.mul_(self._std).add_(self._mean)
        if self._any_log:
            y = torch.where(self._log_mask, torch.expm1(y).mul_(self._log_scale), y)
        return y

    def __call__(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Decode ``z`` ``(n, latent_dim)`` float32 into ``out`` ``(n, n_features)`` float32, chunk by chunk."""
        n = z.shape[0]
        if out is None:
            out = np.empty((n, self.n_features), np.float32)
        zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
        if self.device.type == "cpu":
            with torch.inference_mode():
                for start in range(0, n, CHUNK):
                    out[start : start + CHUNK] = self._decode_chunk(zt[start : start + CHUNK]).numpy()
            self._finish(out)
            return out
        # GPU: pinned host buffers and non-blocking copies both ways, one synchronisation per call
        zt = zt.pin_memory()
        host = torch.empty((n, self.n_features), dtype=torch.float32, pin_memory=True)
        with torch.inference_mode():
            for start in range(0, n, CHUNK):
                chunk = zt[start : start + CHUNK].to(self.device, non_blocking=True)
                host[start : start + CHUNK].copy_(self._decode_chunk(chunk), non_blocking=True)
            torch.cuda.synchronize(self.device)
        out[:] = host.numpy()
        self._finish(out)
        return out


def _decoder_layers(model: BetaVAE) -> list[tuple[str, nn.Linear, nn.Module]]:
    """The decoder as ``(kind, linear, activation)`` steps, kind ``"plain"`` or ``"residual"``."""
    steps: list[tuple[str, nn.Linear, nn.Module]] = []
    pending: nn.Linear | None = None
    for module in model.decoder:
        if isinstance(module, nn.Linear):
            pending = module
        elif isinstance(module, ResidualBlock):
            steps.append(("residual", module.linear, module.act))
        elif pending is not None:
            steps.append(("plain", pending, module))
            pending = None
    return steps
