"""Neural spline flows: a learned density that samples fresh points, trained to a fixed budget.

A normalizing flow maps a standard-normal base point ``u`` through a chain of invertible
transforms to a data point ``x``, and gives the exact log-density ``log p(x)``. Here each
transform is a rational-quadratic spline coupling layer (zuko's ``NSF`` with ``passes=2``):
half of the features are splined with parameters computed from the other half by a small
MLP, and consecutive layers swap the halves. Sampling costs one MLP pass per transform (the
first half's spline parameters depend on nothing, so they are computed once, from a single
row), against one pass per *feature* for an autoregressive flow.

:class:`SplineFlow` wraps it for eventgen:

- ``fit`` standardises the data, trains with Adam and a cosine learning-rate schedule for a
  fixed number of epochs (flows keep improving with epochs, so training is never cut by a
  clock), keeps the parameters of the epoch with the best validation log-likelihood, and is
  seeded: the same data, seed and thread count give the same weights on CPU;
- ``sample`` pushes base noise *given by the caller* through the flow, so the caller owns the
  random stream, and ``log_prob`` scores rows; both work in fixed chunks of :data:`CHUNK` rows
  (the last one padded), so a row's result depends only on the row and its position modulo
  :data:`CHUNK`, never on how many rows are pushed at once;
- ``get_state`` returns plain arrays (no pickle) and ``from_state`` checks every array's name,
  dtype and shape against the hyperparameters before torch sees it: a state read from a bundle
  is untrusted input (see :mod:`eventgen.validate`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from eventgen import kernels
from eventgen.errors import ConfigError, EventgenError, InputError
from eventgen.validate import SavedState

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Self

log = logging.getLogger(__name__)

#: Rows per pass through the flow; part of the output's definition, never change it.
CHUNK = 2048
#: Bounds on the hyperparameters (a state declaring more is refused before anything is built).
LIMITS = {"features": 4096, "transforms": 64, "hidden": 4096, "bins": 64}
#: The names of :meth:`SplineFlow.get_state`'s arrays: hyperparameters, standardisation, parameters.
STATE_NAMES = ("features", "transforms", "hidden", "bins", "shift", "scale", "params")
_BOUND = 5.0  # zuko's spline bound: the flow is the identity outside [-5, 5] in standardised units


class SplineFlow:
    """A coupling-layer neural spline flow on ``features``-dimensional rows.

    Hyperparameters (stored as given): ``transforms`` spline coupling layers, each with an MLP
    of two hidden layers of ``hidden`` units, splines of ``bins`` bins. Fitted attributes:
    ``shift_`` and ``scale_`` ``(features,)`` float32 (the standardisation), ``history_`` (one
    ``{"epoch", "train_nll", "val_nll"}`` per epoch, nats per row in standardised units) and
    ``best_epoch_``.
    """

    def __init__(self, features: int, transforms: int = 4, hidden: int = 128, bins: int = 8) -> None:
        self.features, self.transforms, self.hidden, self.bins = features, transforms, hidden, bins

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        x: ArrayLike,
        epochs: int,
        *,
        noise: ArrayLike | float | None = None,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        validation: float = 0.1,
        seed: int = 0,
        device: str | torch.device = "cpu",
        threads: int = 1,
    ) -> Self:
        """Train on the rows of ``x`` ``(n, features)`` for ``epochs`` epochs; returns ``self``.

        ``noise`` (data units; a number, ``(features,)`` or ``(n, features)``) is the standard
        deviation of Gaussian noise added afresh to every training row in every epoch: a small
        constant dequantises discrete columns, per-row widths make the flow learn a mixture of
        Gaussians around the rows. The validation rows (a ``validation`` fraction, at least one)
        get one fixed noise draw. Training runs on ``device``; the result lives on the CPU. On
        the CPU it uses ``threads`` torch threads (1 by default: networks this small gain little
        from more, lose much when another process holds a core, and the weights then do not
        depend on the caller's thread setting).
        """
        _check_hyper(self.features, self.transforms, self.hidden, self.bins, ConfigError)
        data = _check_rows(x, "x", self.features).astype(np.float64)
        epochs = _check_int(epochs, "epochs", 1)
        batch_size = _check_int(batch_size, "batch_size", 1)
        seed = _check_int(seed, "seed", 0)
        threads = _check_int(threads, "threads", 1)
        if not (isinstance(validation, float | int) and 0.0 < validation < 1.0):
            raise ConfigError(f"validation={validation!r} is invalid; pass a fraction in (0, 1)")
        if not (isinstance(learning_rate, float | int) and 0.0 < learning_rate < math.inf):
            raise ConfigError(f"learning_rate={learning_rate!r} is invalid; pass a number > 0")
        n = data.shape[0]
        n_val = max(1, round(validation * n))
        if n - n_val < 1:
            raise InputError(f"x has {n} rows; a flow needs at least 2 (one to train, one to validate)")
        shift = data.mean(axis=0)
        spread = data.std(axis=0)
        scale = np.where(spread > 0, spread, 1.0)
        y = (data - shift) / scale
        width = None if noise is None else _check_noise(noise, data.shape) / scale

        perm = np.random.default_rng(seed).permutation(n)
        device = torch.device(device)
        gen = torch.Generator().manual_seed(seed)
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
        train_x, val_x = as_t(y[perm[n_val:]]), as_t(y[perm[:n_val]])
        train_w = None
        if width is not None:
            per_row = width.shape[0] == n
            train_w = as_t(width[perm[n_val:]] if per_row else width)
            val_w = as_t(width[perm[:n_val]] if per_row else width)
            val_x = val_x + val_w * torch.randn(val_x.shape, generator=gen)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            cpu = self._train(train_x, val_x, train_w, gen, device, epochs, batch_size, learning_rate, seed)
        finally:
            torch.set_num_threads(before)
        self._set_fitted(cpu, shift.astype(np.float32), scale.astype(np.float32))
        return self

    def _train(
        self,
        train_x: torch.Tensor,
        val_x: torch.Tensor,
        train_w: torch.Tensor | None,
        gen: torch.Generator,
        device: torch.device,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
    ) -> torch.nn.Module:
        """The training loop; returns the flow of the best validation epoch, on the CPU, in eval mode."""
        flow = _build(self.features, self.transforms, self.hidden, self.bins, seed).to(device)
        optimiser = torch.optim.Adam(flow.parameters(), lr=float(learning_rate))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
        best, best_params, history = math.inf, None, []
        for epoch in range(epochs):
            flow.train()
            order = torch.randperm(train_x.shape[0], generator=gen)
            total = 0.0
            for lo in range(0, len(order), batch_size):
                idx = order[lo : lo + batch_size]
                batch = train_x[idx]
                if train_w is not None:
                    w = train_w[idx] if train_w.shape[0] == train_x.shape[0] else train_w
                    batch = batch + w * torch.randn(batch.shape, generator=gen)
                loss = -flow().log_prob(batch.to(device)).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
            schedule.step()
            val = -float(_log_prob_std(flow, val_x, device).mean())
            history.append({"epoch": epoch, "train_nll": total / train_x.shape[0], "val_nll": val})
            if val < best:  # NaN never wins
                best, self.best_epoch_ = val, epoch
                best_params = torch.nn.utils.parameters_to_vector(flow.parameters()).detach().cpu().clone()
            if epoch % 10 == 9 or epoch == epochs - 1:
                log.info("flow epoch %d/%d: validation nll %.4f (best %.4f)", epoch + 1, epochs, val, best)
        if best_params is None:
            raise EventgenError("the flow's validation loss was never finite; lower learning_rate")
        cpu = flow.cpu().eval()
        torch.nn.utils.vector_to_parameters(best_params, cpu.parameters())
        self.history_ = history
        return cpu

    def _set_fitted(self, flow: Any, shift: np.ndarray, scale: np.ndarray) -> None:  # a zuko flow
        for p in flow.parameters():
            p.requires_grad_(False)
        self.flow_ = flow
        self.shift_, self.scale_ = shift, scale
        self._shift = torch.as_tensor(shift, dtype=torch.float32)
        self._scale = torch.as_tensor(scale, dtype=torch.float32)
        self._log_det = float(np.log(scale.astype(np.float64)).sum())
        self._layers = [_CouplingInverse(t) for t in flow.transform.transforms]

    # ---------------------------------------------------------------- sampling

    def sample(self, noise: ArrayLike) -> np.ndarray:
        """Rows ``(n, features)`` float32 of the flow, one per row of base noise ``noise`` ``(n, features)``.

        ``noise`` is standard normal (scale it by a temperature ``T < 1`` to sample the flow's
        core); row r of the result depends only on row r of ``noise`` and on ``r % CHUNK``.
        """
        self._check_fitted("sample")
        u = torch.as_tensor(_check_rows(noise, "noise", self.features))
        out = torch.empty_like(u)
        with torch.inference_mode():
            for lo in range(0, u.shape[0], CHUNK):
                part = u[lo : lo + CHUNK]
                out[lo : lo + CHUNK] = self._inverse(_padded(part))[: part.shape[0]]
            out.mul_(self._scale).add_(self._shift)
        return out.numpy()

    def log_prob(self, x: ArrayLike, temperature: float = 1.0) -> np.ndarray:
        """Log-density ``(n,)`` float64 of the rows of ``x`` ``(n, features)`` (data units).

        With ``temperature`` T: the density of :meth:`sample` fed noise scaled by T (base N(0, T²)).
        """
        self._check_fitted("log_prob")
        y = (torch.as_tensor(_check_rows(x, "x", self.features)) - self._shift) / self._scale
        out = np.empty(y.shape[0], dtype=np.float64)
        transform = self.flow_().transform
        with torch.inference_mode():
            for lo in range(0, y.shape[0], CHUNK):
                part = y[lo : lo + CHUNK]
                u, ladj = transform.call_and_ladj(_padded(part))
                u, ladj = u[: part.shape[0]].double(), ladj[: part.shape[0]].double()
                out[lo : lo + CHUNK] = (ladj - 0.5 * (u * u).sum(dim=1) / temperature**2).numpy()
        return out - 0.5 * self.features * math.log(2.0 * math.pi * temperature**2) - self._log_det

    def _inverse(self, u: torch.Tensor) -> torch.Tensor:
        """Base points ``(CHUNK, features)`` to standardised rows, the layers in reverse order."""
        y = u
        for layer in reversed(self._layers):
            y = layer(y)
        return y

    # ------------------------------------------------------------------- state

    def get_state(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain arrays named ``prefix`` + :data:`STATE_NAMES`: int64 hyperparameters, float32 arrays."""
        self._check_fitted("get_state")
        params = torch.nn.utils.parameters_to_vector(self.flow_.parameters()).numpy()
        state = {k: np.asarray(v, dtype=np.int64) for k, v in self._hyper().items()}
        state |= {"shift": self.shift_.copy(), "scale": self.scale_.copy(), "params": params.copy()}
        return {prefix + k: state[k] for k in STATE_NAMES}

    def _hyper(self) -> dict[str, int]:
        return {
            "features": self.features,
            "transforms": self.transforms,
            "hidden": self.hidden,
            "bins": self.bins,
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        source: str = "flow state",
        expected: Mapping[str, int] | None = None,
        prefix: str = "",
    ) -> SplineFlow:
        """A fitted flow from :meth:`get_state`'s arrays (named ``prefix`` + name), every one checked first.

        ``state`` is a mapping or a :class:`~eventgen.validate.SavedState` (which names its file);
        its arrays whose names start with ``prefix`` must be exactly the flow's. ``expected`` maps
        hyperparameter names to the values the caller's settings give; the state must match them.
        The parameter vector's length must be the one the hyperparameters imply, so nothing larger
        than the state itself is ever built.
        """
        saved = SavedState.of(state, source)
        saved.require(*(prefix + k for k in STATE_NAMES))
        unexpected = sorted(k for k in saved if k.startswith(prefix) and k[len(prefix) :] not in STATE_NAMES)
        if unexpected:
            holds = [prefix + k for k in STATE_NAMES]
            raise saved.error(unexpected[0], f"is not part of a flow state, which holds {holds}")
        hyper = {k: saved.scalar(prefix + k, "int", low=1, high=LIMITS[k]) for k in LIMITS}
        for k in ("features", "bins"):  # a coupling layer splits the features; a spline needs 2 bins
            if hyper[k] < 2:
                raise saved.error(prefix + k, f"is {hyper[k]}, expected >= 2")
        for k, want in (expected or {}).items():
            if hyper[k] != want:
                raise saved.error(prefix + k, f"is {hyper[k]}, but the settings give {want}")
        d, n_params = hyper["features"], parameter_count(**hyper)
        shift = saved.array(prefix + "shift", "float", (d,), dtype=np.float32, sized_by="features")
        scale = saved.array(prefix + "scale", "float", (d,), dtype=np.float32, above=0.0, sized_by="features")
        params = saved.array(
            prefix + "params", "float", (n_params,), dtype=np.float32, sized_by="the hyperparameters"
        )
        self = cls(**hyper)
        flow = _build(d, hyper["transforms"], hyper["hidden"], hyper["bins"], 0).eval()
        torch.nn.utils.vector_to_parameters(torch.from_numpy(params), flow.parameters())
        self._set_fitted(flow, shift, scale)
        return self

    def _check_fitted(self, what: str) -> None:
        if "flow_" not in self.__dict__:
            raise EventgenError(f"SplineFlow.{what} needs a fitted flow; call fit(x, epochs) first")

    def __repr__(self) -> str:
        return (
            f"SplineFlow(features={self.features}, transforms={self.transforms}, "
            f"hidden={self.hidden}, bins={self.bins})"
        )


class _CouplingInverse:
    """The inverse of one of zuko's coupling spline layers, in one MLP pass and a compiled spline.

    zuko inverts a layer generically: two passes of its MLP, the first from zero inputs, and
    its splines as a few dozen small torch operations. In a coupling layer the first half of
    the features (``order == 0``) is splined with parameters that depend on nothing, computed
    here once, from one row; the second half's parameters depend on the first half only, so only
    their rows of the MLP's last layer are evaluated; both splines are inverted by
    :func:`eventgen.kernels.spline_inverse`.
    """

    def __init__(self, layer: Any) -> None:  # a zuko coupling transform
        spline = layer.univariate  # functools.partial(MonotonicRQSTransform, slope=...)
        self.bound = float(spline.keywords.get("bound", _BOUND))
        self.slope = float(spline.keywords["slope"])
        self.total = int(layer.total)
        k_bins = (self.total + 1) // 3
        squash = torch.full((self.total,), 2.0 / abs(math.log(self.slope)))
        squash[2 * k_bins :] = 1.0 / abs(math.log(self.slope))
        self._squash = squash
        order = layer.order
        assert order is not None and int(order.max()) == 1  # a coupling layer: two groups
        self.first = torch.nonzero(order == 0).squeeze(1)
        self.second = torch.nonzero(order == 1).squeeze(1)
        modules = list(layer.hyper)
        self.hidden = torch.nn.Sequential(*modules[:-1])
        last = modules[-1]
        rows = (self.second[:, None] * self.total + torch.arange(self.total)).reshape(-1)
        with torch.inference_mode():
            self.weight = (last.mask * last.weight)[rows].contiguous()
            self.bias = last.bias[rows].contiguous()
            n = int(order.shape[0])
            const = layer.hyper(torch.zeros(1, n)).unflatten(-1, (n, self.total))[:, self.first]
            self.first_phi = const.contiguous()

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(y)
        x[:, self.first] = self._inv(self.first_phi, y[:, self.first])
        h = self.hidden(x)  # the second half of x is zero: masked out of the hidden layers
        phi = torch.nn.functional.linear(h, self.weight, self.bias).unflatten(-1, (-1, self.total))
        x[:, self.second] = self._inv(phi, y[:, self.second])
        return x

    def _inv(self, phi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Invert the splines of raw parameters ``phi`` ``(m, half, 3K - 1)`` at ``y`` ``(rows, half)``.

        As zuko's ``MonotonicRQSTransform``: each raw value v is squashed to ``v / (1 + |c v|)``
        (``c = 2 / |log slope|`` for widths and heights, ``1 / |log slope|`` for derivatives),
        which bounds it by ``|log slope|``, so its exponential cannot overflow.
        """
        e = phi.mul(self._squash).abs_().add_(1.0)
        e = torch.div(phi, e).exp_()
        out = np.empty(tuple(y.shape), dtype=np.float32)
        kernels.spline_inverse(e.numpy(), np.ascontiguousarray(y.numpy()), self.bound, out)
        return torch.from_numpy(out)


def parameter_count(features: int, transforms: int, hidden: int, bins: int) -> int:
    """Number of trained parameters of a flow with these hyperparameters (no module is built).

    Each layer's MLP maps the ``features`` inputs through two hidden layers of ``hidden`` units
    to ``3 * bins - 1`` spline parameters per feature (widths, heights, inner derivatives).
    """
    out = features * (3 * bins - 1)
    per_layer = (features + 1) * hidden + (hidden + 1) * hidden + (hidden + 1) * out
    return transforms * per_layer


def _build(features: int, transforms: int, hidden: int, bins: int, seed: int) -> torch.nn.Module:
    """zuko's coupling NSF, its initial weights drawn from ``seed`` (the global torch stream is untouched)."""
    import zuko

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return zuko.flows.NSF(
            features, transforms=transforms, hidden_features=[hidden] * 2, bins=bins, passes=2
        )


def _log_prob_std(flow: torch.nn.Module, y: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """Log-density ``(m,)`` float64 on the CPU of standardised rows ``y``, in one pass."""
    flow.eval()
    with torch.inference_mode():
        return flow().log_prob(y.to(device)).to("cpu", torch.float64)


def _padded(part: torch.Tensor) -> torch.Tensor:
    """``part`` ``(m, features)`` padded with zero rows to ``(CHUNK, features)``."""
    if part.shape[0] == CHUNK:
        return part
    return torch.cat([part, part.new_zeros((CHUNK - part.shape[0], part.shape[1]))])


def _check_rows(x: ArrayLike, name: str, features: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != features or not np.issubdtype(a.dtype, np.number):
        raise InputError(
            f"{name} has shape {a.shape} and dtype {a.dtype}; pass a numeric (n, {features}) array"
        )
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains NaN or inf; pass finite values")
    return a


def _check_noise(noise: ArrayLike | float, shape: tuple[int, int]) -> np.ndarray:
    w = np.asarray(noise, dtype=np.float64)
    if w.ndim == 0:
        w = np.full((1, shape[1]), float(w))
    elif w.shape == (shape[1],):
        w = w[None, :]
    if w.shape not in ((1, shape[1]), shape):
        raise InputError(f"noise has shape {w.shape}; pass a number, ({shape[1]},) or {shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError("noise has negative or non-finite widths; pass standard deviations >= 0")
    return w


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name}={value!r} is invalid; pass an integer >= {low}")
    return int(value)


def _check_hyper(features: int, transforms: int, hidden: int, bins: int, error: type[EventgenError]) -> None:
    for name, value, low in (
        ("features", features, 2),
        ("transforms", transforms, 1),
        ("hidden", hidden, 1),
        ("bins", bins, 2),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or not low <= value <= LIMITS[name]
        ):
            raise error(f"{name}={value!r} is invalid; pass an integer in [{low}, {LIMITS[name]}]")
