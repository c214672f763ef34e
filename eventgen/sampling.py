"""Sampling settings: how new latent points are drawn from a fitted density buffer.

One frozen, validated :class:`SamplingSettings` carries them everywhere: the fit config's
``buffer:`` section, the bundle (stored once, in ``bundle.json``), ``generate``'s overrides
(command line, job config, Python) and :class:`~eventgen.buffer.DensityBuffer`. The modes,
selections and bandwidth rules are declared here once, as ``Literal`` types; the tuples
:data:`MODES`, :data:`SELECTIONS` and :data:`BANDWIDTH_RULES` are derived from them, and the
mode names map onto the latent distributions of :mod:`eventgen.components`.

This module imports nothing heavy, so configs and the command line validate it instantly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Literal, get_args

from eventgen.errors import ConfigError

Mode = Literal["buffer", "kde", "gmm", "prior", "flow"]
Selection = Literal["uniform", "stratified", "weighted"]
BandwidthRule = Literal["scott", "silverman"]
FlowTarget = Literal["mu", "mixture"]
MODES: tuple[Mode, ...] = get_args(Mode)
SELECTIONS: tuple[Selection, ...] = get_args(Selection)
BANDWIDTH_RULES: tuple[BandwidthRule, ...] = get_args(BandwidthRule)
FLOW_TARGETS: tuple[FlowTarget, ...] = get_args(FlowTarget)

#: The modes that draw one buffer event per sample, so that ``selection`` applies to them;
#: every other mode samples with ``selection="uniform"`` (and switches to it when chosen).
EVENT_MODES: tuple[Mode, ...] = ("buffer", "kde")
#: The modes whose fit takes minutes (training a network): fitted with the bundle and stored in it,
#: never on demand when another mode or other fit settings are asked of a fitted buffer.
BUNDLE_MODES: tuple[Mode, ...] = ("flow",)
#: The settings a fitted mode applies when drawing; a change of any other field fits the mode again.
_DRAW_FIELDS = frozenset({"alpha", "gamma", "selection", "temperature", "refine", "refine_quantile"})


@dataclass(frozen=True)
class SamplingSettings:
    """How latent points are drawn from the buffer of N training events (see :mod:`eventgen.buffer`).

    ``mode``          buffer: ``z = mu_i + (alpha * sigma_i + gamma) * eps``; kde: ``z = mu_i + h * eps``;
                      gmm: an ``n_components`` full-covariance mixture fitted on the mu_i; prior: N(0, I);
                      flow: a neural spline flow trained on the buffer, ``z = f(temperature * eps)``
    ``alpha, gamma``  scale of the buffer mode's components ([DE]: 1 and 0.05)
    ``selection``     how event i is picked (buffer, kde): uniform, stratified or weighted
    ``bandwidth``     kde: ``"scott"``, ``"silverman"`` or a number > 0
    ``n_components``  gmm: number of mixture components
    ``temperature``   flow: the base noise is scaled by T, ``0 < T <= 1`` (1 samples the learned density)
    ``flow_transforms, flow_hidden``  flow: spline coupling layers, and hidden units of their MLPs
    ``flow_epochs``   flow: training epochs (a fixed budget; the best validation epoch is kept)
    ``flow_target``   flow: what it learns, ``"mixture"`` (draws ``mu_i + sigma_i * eps``, fresh every
                      epoch: the buffer's Gaussian mixture) or ``"mu"`` (the buffer means)
    ``refine``        apply the bundle's refiner, if it has one (:mod:`eventgen.refine`): keep each
                      decoded event with the probability its classifier gives; false keeps every event
    ``refine_quantile``  the refiner's acceptance cap as a quantile of its log-odds, in (0, 1): higher
                      corrects more and keeps fewer candidates (slower), lower is faster; None: the
                      quantile the bundle was fitted with

    Invalid values raise :class:`~eventgen.errors.ConfigError` naming the valid choices.
    """

    mode: Mode = "buffer"
    alpha: float = 1.0
    gamma: float = 0.05
    selection: Selection = "uniform"
    bandwidth: float | BandwidthRule = "scott"
    n_components: int = 100
    temperature: float = 1.0
    flow_transforms: int = 4
    flow_hidden: int = 128
    flow_epochs: int = 100
    flow_target: FlowTarget = "mixture"
    refine: bool = True
    refine_quantile: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is unknown; choose one of {', '.join(MODES)}")
        if not isinstance(self.selection, str) or self.selection not in SELECTIONS:
            raise ConfigError(
                f"selection={self.selection!r} is unknown; choose one of {', '.join(SELECTIONS)}"
            )
        for name in ("alpha", "gamma"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value!r} is invalid; pass a finite number >= 0")
            object.__setattr__(self, name, float(value))
        bw = self.bandwidth
        if isinstance(bw, str):
            if bw not in BANDWIDTH_RULES:
                raise ConfigError(
                    f"bandwidth={bw!r} is unknown; choose one of {', '.join(BANDWIDTH_RULES)} or a number > 0"
                )
        elif not _is_number(bw) or not math.isfinite(bw) or bw <= 0:
            raise ConfigError(
                f"bandwidth={bw!r} is invalid; pass a number > 0 or one of {', '.join(BANDWIDTH_RULES)}"
            )
        else:
            object.__setattr__(self, "bandwidth", float(bw))
        for name, high in (
            ("n_components", None),
            ("flow_transforms", 64),
            ("flow_hidden", 4096),
            ("flow_epochs", None),
        ):
            n = getattr(self, name)
            if (
                isinstance(n, bool)
                or not isinstance(n, Integral)
                or int(n) < 1
                or (high is not None and int(n) > high)
            ):
                limit = f" and <= {high}" if high is not None else ""
                raise ConfigError(f"{name}={n!r} is invalid; pass an integer >= 1{limit}")
            object.__setattr__(self, name, int(n))
        if not isinstance(self.flow_target, str) or self.flow_target not in FLOW_TARGETS:
            raise ConfigError(
                f"flow_target={self.flow_target!r} is unknown; choose one of {', '.join(FLOW_TARGETS)}"
            )
        if not isinstance(self.refine, bool):
            raise ConfigError(f"refine={self.refine!r} is invalid; pass true or false")
        q = self.refine_quantile
        if q is not None:
            if not _is_number(q) or not 0 < q < 1:
                raise ConfigError(f"refine_quantile={q!r} is invalid; pass a number in (0, 1), e.g. 0.7")
            if not self.refine:
                raise ConfigError(
                    "refine_quantile applies to refined generation only; drop it, or drop --no-refine "
                    "(refine: false)"
                )
            object.__setattr__(self, "refine_quantile", float(q))
        t = self.temperature
        if not _is_number(t) or not math.isfinite(t) or not 0 < t <= 1:
            raise ConfigError(f"temperature={t!r} is invalid; pass a number in (0, 1]")
        object.__setattr__(self, "temperature", float(t))
        if self.temperature != 1.0 and self.mode != "flow":
            raise ConfigError(
                f"temperature={self.temperature!r} applies to mode 'flow' only; use temperature=1 "
                f"with mode={self.mode!r}"
            )
        if self.selection != "uniform" and self.mode not in EVENT_MODES:
            raise ConfigError(
                f"selection={self.selection!r} applies to modes {' and '.join(map(repr, EVENT_MODES))} "
                f"only; use selection='uniform' with mode={self.mode!r}"
            )

    @property
    def picks_events(self) -> bool:
        """Whether each sample draws one buffer event (picked by ``selection``)."""
        return self.mode in EVENT_MODES

    def updated(self, changes: Mapping[str, Any] | None = None, *, where: str = "") -> SamplingSettings:
        """These settings with ``changes`` applied; a ``None`` value keeps the current one.

        A new mode that picks no buffer events (gmm, prior, flow) implies ``selection="uniform"``
        unless a selection is given, and a mode other than flow ``temperature=1``. Unknown keys and invalid values raise ConfigError,
        prefixed with ``where`` (for example ``"run.yaml: generate"``) when given.
        """
        if changes is not None and not isinstance(changes, Mapping):
            raise ConfigError(
                _at(where, f"sampling settings must be a mapping of keys to values, found {changes!r}")
            )
        given = {k: v for k, v in (changes or {}).items() if v is not None}
        unknown = sorted(set(given) - set(FIELDS), key=str)
        if unknown:
            raise ConfigError(
                _at(where, f"unknown sampling setting {unknown[0]!r}; valid keys are {list(FIELDS)}")
            )
        if given.get("mode", self.mode) not in EVENT_MODES and "selection" not in given:
            given["selection"] = "uniform"
        if given.get("mode", self.mode) != "flow" and "temperature" not in given:
            given["temperature"] = 1.0
        try:
            return dataclasses.replace(self, **given)
        except ConfigError as exc:
            raise ConfigError(_at(where, str(exc))) from None

    def resolve(self, sampling: SamplingSpec, where: str = "sampling") -> SamplingSettings:
        """The settings ``sampling`` asks for, starting from these ones (a bundle's, say).

        None keeps these settings; a mapping overrides some of them (see :meth:`updated`); a
        :class:`SamplingSettings` replaces them.
        """
        return sampling if isinstance(sampling, SamplingSettings) else self.updated(sampling, where=where)

    def same_fit(self, other: SamplingSettings) -> bool:
        """Whether a mode fitted for ``other`` serves these settings: they differ in draw-time fields only."""
        return all(getattr(self, f) == getattr(other, f) for f in FIELDS if f not in _DRAW_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (``SamplingSettings(**s.to_dict()) == s``)."""
        return dataclasses.asdict(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SamplingSettings))
#: What ``generate`` takes as ``sampling``: settings, overrides of the bundle's, or None (see ``resolve``).
SamplingSpec = SamplingSettings | Mapping[str, Any] | None


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _at(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message
