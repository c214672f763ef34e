"""Invertible per-column preprocessing of event arrays before the β-VAE sees them.

Three methods, all of the form ``y = (f(x) - mean_) / std_`` computed in float64:

``"physics"`` (default)
    ``f`` depends on the column kind. Energy-like columns (``energy``, ``pt``) are
    ``f(x) = log1p(x / scale_)`` with a per-column ``scale_`` equal to 5% of the 1% quantile
    of the column's positive values (1.0 when it has none). The logarithm turns the
    steeply falling, many-decade spectra into near-Gaussian bumps (the measured AUC gain
    in DESIGN.md), ``log1p`` keeps an exact zero at ``f(0) = 0``, and the small scale
    puts the smallest present value about ``log(21) ≈ 3`` above that zero, so zero-filled
    absent objects form a separate, well-separated peak the decoder can reproduce and the
    clean-up can cut on. The scale makes the transform independent of the unit (GeV or MeV).
    All other kinds (``eta``, ``phi``, ``count``, ``generic``) use ``f(x) = x``: angles are
    bounded and already well-behaved and the physics clean-up after decoding wraps φ, so
    a periodic embedding is not needed to stay exactly invertible. Every column is then
    standardised with the mean and standard deviation of ``f(x)`` on the fitted data.

``"maxabs"``
    The prior art's scaling: ``f(x) = x``, ``mean_ = 0``, ``std_ = max|x|``.

``"quantile"``
    ``f(x) = Φ⁻¹(F(x))``: each column through its training distribution function ``F``
    (``quantiles_``, 1000 evenly spaced quantiles, linear in between; values tied with a
    quantile map to the middle of the tie) onto a standard normal, for every kind alike.
    A value that many events share exactly (the Z mass of events without radiation, the
    kinematic edge at the beam energy) covers a whole interval of the normal, and every
    decoded value inside that interval comes back as exactly that value: a narrow resonance
    stays narrow (README, zll). Before the transform, an absent object's columns other than
    pT are set to :data:`ABSENT` (their exact zero would be a spike in the middle of η and φ,
    onto which present objects would snap); the inverse sets them to 0 again.

Before that transform, ``representation`` and ``frame`` choose what the model sees
(:mod:`eventgen.representation`): ``"energy"`` (the columns as they are), ``"mass"`` (each
object's mass, or a discrete mass code, in place of its energy), ``"dilepton"`` (``"mass"``,
with two leptons as a decaying pair: mass, pT, rapidity, azimuth, decay angles) or
``"ee_dilepton"`` (``"mass"``, with two leptons as their energies below the beam energy, the
first's direction and their acollinearity; the beam energy, ``beam_energy_``, is the largest
lepton energy in the fitted events), in the ``"lab"`` frame or
the ``"canonical"`` one (events turned and mirrored so that the leading object has φ = 0 and
η ≥ 0 and the second φ ≥ 0). In the mass representation a mass column is energy-like (log
scaled like an energy), a code column is not. :meth:`Preprocessor.event_frames` gives each
event's frame, which :meth:`Preprocessor.inverse_transform` takes to put events back.

A standard deviation (or max|x|) that is zero or negligible is replaced by 1, so constant
columns pass through unchanged; :func:`eventgen.train.check_trainable` is where they are
refused for training. ``inverse_transform(transform(x), event_frames(x))`` equals ``x`` to
float32 precision for every kind, including exact zeros and large values (in the mass
representation: to the precision the float32 E column holds a mass with, and leptons at the
declared mass nearest to theirs; a dilepton's leptons to a few float32 steps; the quantile
transform to a few float32 steps of its normal).

Events must be finite. ``fit`` and ``fit_transform`` take training events, which were
checked where they entered (:mod:`eventgen.io`), so they do not scan them again: a NaN or
inf would still show in the fitted statistics, and is then located and reported.
``transform`` (new events into a fitted bundle) and ``inverse_transform`` check their input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args

import numpy as np

from eventgen import representation as rep
from eventgen.errors import ConfigError, InputError
from eventgen.io import check_finite
from eventgen.representation import FRAMES, REPRESENTATIONS, Frame, Representation
from eventgen.schema import Schema
from eventgen.validate import FLOAT32_MAX, SavedState

PreprocessMethod = Literal["physics", "maxabs", "quantile"]
PREPROCESS_METHODS: tuple[str, ...] = get_args(PreprocessMethod)
LOG_KINDS: tuple[str, ...] = ("energy", "pt")
_SCALE_QUANTILE = 0.01  # quantile of the positive values that sets the log scale
_SCALE_FRACTION = 0.05  # the scale as a fraction of that quantile
_STATE_KEYS = ("method", "columns", "log_mask", "log_scale", "mean", "std")
_LEGACY = ("energy", "lab")  # what a state without "representation" and "frame" was fitted in
N_QUANTILES = 1000
#: The value an absent object's η, φ and mass columns take before the quantile transform:
#: below every present value, so that they form a spike of their own.
ABSENT = -10.0
_U_BOUND = 1e-7  # the quantile transform's levels [0, 1] become probabilities [_U_BOUND, 1 - _U_BOUND]

P = TypeVar("P", bound="Preprocessor")


class Preprocessor:
    """Invertible per-column transform ``(n_events, n_features) -> (n_events, n_features)``.

    Follows the scikit-learn estimator contract: ``method``, ``representation`` and ``frame``
    are the hyperparameters, :meth:`fit` checks them, sets the trailing-underscore attributes and
    returns ``self``.

    Fitted attributes (all of shape ``(n_features,)``): ``columns_`` (names), ``log_mask_``
    (columns transformed by ``log1p(x / log_scale_)``), ``log_scale_`` (1 where unused),
    ``mean_`` and ``std_`` (float64); ``schema_``, the schema fitted on; for ``"quantile"``,
    ``quantiles_`` ``(n_quantiles, n_features)``, each column's quantiles, non-decreasing; for
    ``"ee_dilepton"``, ``beam_energy_`` (float).
    """

    def __init__(
        self,
        method: PreprocessMethod = "physics",
        representation: Representation = "energy",
        frame: Frame = "lab",
    ) -> None:
        self.method = method
        self.representation = representation
        self.frame = frame

    def fit(self: P, x: np.ndarray, schema: Schema) -> P:
        """Fit on raw events ``x`` of shape ``(n_events, len(schema))`` in schema order."""
        for name, value, choices in (
            ("preprocessing method", self.method, PREPROCESS_METHODS),
            ("representation", self.representation, REPRESENTATIONS),
            ("frame", self.frame, FRAMES),
        ):
            if value not in choices:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {list(choices)}")
        columns = schema.names
        x = _check_array(x, columns, "fit")
        if x.shape[0] == 0:
            raise InputError("cannot fit the preprocessing on 0 events; give at least one event")
        n = x.shape[1]
        self.schema_ = schema
        self.columns_ = np.array(columns, dtype=str)
        self.log_scale_ = np.ones(n)
        if self.representation == "ee_dilepton":
            masses = x.astype(np.float64)
            rep.to_masses(masses, schema)
            self.beam_energy_ = rep.beam_energy(masses, schema)
        if self.method == "maxabs":
            self.log_mask_ = np.zeros(n, dtype=bool)
            self.mean_ = np.zeros(n)
            max_abs = np.abs(self._features(x)).max(axis=0)
            _check_statistic(max_abs, x, columns)
            self.std_ = _guard(max_abs, self.mean_)
            return self
        self.log_mask_ = _log_mask(schema, self.method, self.representation)
        _check_non_negative(x, np.isin(np.array(schema.kinds), LOG_KINDS), columns)
        features = self._features(x)
        if self.method == "quantile":
            levels = np.linspace(0.0, 1.0, max(2, min(N_QUANTILES, len(x))))
            self.quantiles_ = np.maximum.accumulate(np.quantile(features, levels, axis=0), axis=0)
            _check_statistic(self.quantiles_[-1], x, columns)
            self.mean_, spread = _column_moments(self._forward(features), None)
            self.std_ = _guard(spread, self.mean_)
            return self
        for j in np.flatnonzero(self.log_mask_):
            positive = features[:, j][features[:, j] > 0]
            if positive.size:
                self.log_scale_[j] = _SCALE_FRACTION * float(np.quantile(positive, _SCALE_QUANTILE))
        f = self._forward(features)
        self.mean_, spread = _column_moments(f, self._statistics_rows(x))
        _check_statistic(self.mean_, x, columns)
        self.std_ = _guard(spread, self.mean_)
        return self

    def _statistics_rows(self, x: np.ndarray) -> np.ndarray | None:
        """Which events set each column's mean and spread: ``(n_events, n_columns)`` bool, or None for all.

        In the mass representation an object's columns are standardised over the events where
        the object is present (at least two of them). Over all events, a rarely present object
        (a second lepton in W+jets) has a spread set by its zeros, which puts its few present
        values hundreds of standard deviations out: they dominate the loss and the validation
        that picks the best epoch. Absent objects then sit at their own value, apart from
        the present ones, as before.
        """
        if not rep.has_masses(self.representation):
            return None
        rows = np.ones(x.shape, dtype=bool)
        for o in self.schema_.objects():
            present = x[:, o.pt] > 0
            if np.count_nonzero(present) >= 2:
                for c in (o.e, o.pt, o.eta, o.phi):
                    if c >= 0:
                        rows[:, c] = present
        return rows

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw events ``(n_events, n_features)`` -> preprocessed float32 of the same shape."""
        self._check_fitted("transform")
        x = _check_array(x, list(self.columns_), "transform")
        check_finite(x, list(self.columns_), "Preprocessor.transform's input")
        energy_like = self.log_mask_.copy()
        if self.method == "quantile":
            energy_like = np.isin(np.array(self.schema_.kinds), LOG_KINDS)
        elif rep.has_masses(self.representation) and self.method == "physics":
            energy_like[rep.coded_columns(self.schema_)] = True
        _check_non_negative(x, energy_like, list(self.columns_))
        return self._apply(x)

    def inverse_transform(self, y: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
        """Preprocessed ``(n_events, n_features)`` -> raw-scale float32 events (no clean-up).

        In the mass representation energies are rebuilt from the masses (codes snapped to the
        nearest declared mass). ``frames`` ``(n_events, 3)`` (:meth:`event_frames` of the original
        events, or random ones) puts each event into its frame; without it, events of the
        canonical frame stay in it.
        """
        rows = self.inverse_features(y).astype(np.float64)
        if rep.has_masses(self.representation):
            rep.from_masses(rows, self.schema_)
        if frames is not None:
            frames = np.asarray(frames, dtype=np.float64)
            if frames.shape != (len(rows), 3):
                raise InputError(
                    f"frames must have shape ({len(rows)}, 3), one (psi, s_phi, s_eta) per event, found "
                    f"{frames.shape}; pass event_frames of the original events"
                )
            rep.from_frame(rows, frames, self.schema_)
        return rows.astype(np.float32)

    def inverse_features(self, y: np.ndarray) -> np.ndarray:
        """Preprocessed ``(n_events, n_features)`` -> float32 rows of the representation and frame.

        What the decoder hands the clean-up (:meth:`eventgen.cleanup.PhysicsCleanup.apply` with
        this ``representation``): raw scale, but masses or mass codes in the E columns of the mass
        and dilepton representations (the dilepton pair already turned back into two leptons),
        and events in the canonical frame if that is the frame.
        """
        self._check_fitted("inverse_transform")
        y = _check_array(y, list(self.columns_), "inverse_transform")
        check_finite(y, list(self.columns_), "Preprocessor.inverse_transform's input")
        f = y.astype(np.float64) * self.std_ + self.mean_
        if self.method != "quantile":
            f[y == self._apply_zero()] = 0.0  # exactly what a 0 (an absent object) is mapped to
        if self.log_mask_.any():
            with np.errstate(over="ignore"):
                f[:, self.log_mask_] = np.expm1(f[:, self.log_mask_]) * self.log_scale_[self.log_mask_]
        self.finish_features(f)
        return np.clip(f, -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32)  # an overflowing decoder output

    def finish_features(self, f: np.ndarray) -> None:
        """The inverse's steps after the per-column affine map and ``expm1``, in place on rows ``f``
        ``(n, n_features)`` (float32 or float64): the quantile transform's inverse, the dilepton
        pair's, absent objects' columns back to 0. Nothing for the other methods and representations.

        :class:`eventgen.decode.EventDecoder` does the steps before in torch, then calls this.
        """
        if self.method == "quantile":
            from scipy.special import ndtr

            u = np.clip((ndtr(f.astype(np.float64)) - _U_BOUND) / (1.0 - 2.0 * _U_BOUND), 0.0, 1.0)
            levels = np.linspace(0.0, 1.0, len(self.quantiles_))
            for j in range(f.shape[1]):
                f[:, j] = np.interp(u[:, j], levels, self.quantiles_[:, j])
        if self.representation == "dilepton":
            rep.from_pair(f, self.schema_)
        elif self.representation == "ee_dilepton":
            rep.from_beam(f, self.schema_, self.beam_energy_)
        if self.method == "quantile":  # absent objects back from ABSENT to 0
            _fill_absent(f, f, self.schema_, 0.0)

    def _apply_zero(self) -> np.ndarray:
        """The float32 value ``(n_features,)`` each column maps 0 to."""
        return (-self.mean_ / self.std_).astype(np.float32)

    def event_frames(self, x: np.ndarray) -> np.ndarray:
        """The frame ``(n_events, 3)`` float64 ``(ψ, s_φ, s_η)`` of each raw event (identity in the lab frame)."""
        self._check_fitted("event_frames")
        x = _check_array(x, list(self.columns_), "event_frames")
        if self.frame == "lab":
            return rep.identity_frames(len(x))
        return rep.event_frames(x, self.schema_)

    def fit_transform(self, x: np.ndarray, schema: Schema) -> np.ndarray:
        """``fit(x, schema).transform(x)``, without checking ``x`` a second time."""
        return self.fit(x, schema)._apply(np.asarray(x))

    def get_state(self) -> dict[str, np.ndarray | str]:
        """The fitted state as plain arrays and strings (storable without pickle).

        Beyond the energy representation in the lab frame it holds the schema as JSON, whose
        objects and declared masses the transform needs.
        """
        self._check_fitted("get_state")
        state: dict[str, np.ndarray | str] = {
            "method": self.method,
            "columns": self.columns_.copy(),
            "log_mask": self.log_mask_.copy(),
            "log_scale": self.log_scale_.copy(),
            "mean": self.mean_.copy(),
            "std": self.std_.copy(),
        }
        if self.method == "quantile":
            state["quantiles"] = self.quantiles_.copy()
        if self.representation == "ee_dilepton":
            state["beam_energy"] = np.array(self.beam_energy_)
        if (self.representation, self.frame) != _LEGACY or self.method == "quantile":
            state.update(representation=self.representation, frame=self.frame, schema=self.schema_.to_json())
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any], schema: Schema | None = None) -> Preprocessor:
        """Rebuild a fitted preprocessor from :meth:`get_state`'s mapping, checking every array.

        With ``schema`` the columns and the log mask must be the ones :meth:`fit` gives for it (and
        a stored schema must be it). A state without a representation and a frame (written before
        they existed) is the energy representation in the lab frame.
        """
        saved = SavedState.of(state, "preprocessing state")
        saved.require(*_STATE_KEYS)
        method = saved.choice("method", PREPROCESS_METHODS)
        representation, frame = _LEGACY
        if "representation" in saved or "frame" in saved:
            saved.require("representation", "frame", "schema")
            representation = saved.choice("representation", REPRESENTATIONS)
            frame = saved.choice("frame", FRAMES)
        new = cls(method, representation, frame)  # type: ignore[arg-type]
        if (representation, frame) != _LEGACY or method == "quantile":
            schema = _stored_schema(saved, schema)
        if schema is None:
            sized_by = "one entry per column: the arrays differ in length"
            new.columns_ = saved.array("columns", "str", (None,))
            new.log_mask_ = saved.array("log_mask", "bool", new.columns_.shape, sized_by=sized_by)
        else:
            new.schema_ = schema
            sized_by = f"one entry per column of schema {schema.name!r}"
            new.columns_ = saved.matching("columns", "str", schema.names, f"schema {schema.name!r}")
            new.log_mask_ = saved.matching(
                "log_mask",
                "bool",
                _log_mask(schema, method, representation),
                f"{method!r}{f' ({representation} representation)' if rep.has_masses(representation) else ''} on schema "
                f"{schema.name!r}",
            )
        n = new.columns_.shape
        new.log_scale_ = saved.array("log_scale", "float", n, above=0.0, sized_by=sized_by)
        new.mean_ = saved.array("mean", "float", n, sized_by=sized_by)
        new.std_ = saved.array("std", "float", n, above=0.0, sized_by=sized_by)
        if method == "quantile":
            new.quantiles_ = saved.array("quantiles", "float", (None, *n), sized_by=sized_by)
            if len(new.quantiles_) < 2 or np.any(np.diff(new.quantiles_, axis=0) < 0):
                raise saved.error("quantiles", "must hold at least 2 non-decreasing quantiles per column")
        if representation in rep.PAIR_REPRESENTATIONS:
            rep.pair_columns(new.schema_)
        if representation == "ee_dilepton":
            new.beam_energy_ = saved.scalar("beam_energy", "float", above=0.0)
        return new

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return ((self._forward(self._features(x)) - self.mean_) / self.std_).astype(np.float32)

    def _features(self, x: np.ndarray) -> np.ndarray:
        """Raw events -> float64 events of the representation and frame (before the per-column transform)."""
        f = x.astype(np.float64)
        if self.frame == "canonical":
            rep.to_frame(f, rep.event_frames(f, self.schema_), self.schema_)
        if rep.has_masses(self.representation):
            rep.to_masses(f, self.schema_)
        if self.representation == "dilepton":
            rep.to_pair(f, self.schema_)
        elif self.representation == "ee_dilepton":
            rep.to_beam(f, self.schema_, self.beam_energy_)
        if self.method == "quantile":
            _fill_absent(f, x, self.schema_, ABSENT)
        return f

    def _forward(self, f: np.ndarray) -> np.ndarray:
        """The per-column transform of float64 features, in place."""
        if self.method == "quantile":
            from scipy.special import ndtri

            levels = np.linspace(0.0, 1.0, len(self.quantiles_))
            for j in range(f.shape[1]):
                q = self.quantiles_[:, j]
                # ties: the middle of the interval of levels whose quantile equals the value
                u = 0.5 * (np.interp(f[:, j], q, levels) - np.interp(-f[:, j], -q[::-1], -levels[::-1]))
                f[:, j] = ndtri(_U_BOUND + (1.0 - 2.0 * _U_BOUND) * u)
            return f
        if self.log_mask_.any():
            f[:, self.log_mask_] = np.log1p(f[:, self.log_mask_] / self.log_scale_[self.log_mask_])
        return f

    def _check_fitted(self, what: str) -> None:
        if not hasattr(self, "mean_"):
            raise InputError(f"Preprocessor.{what} called before fit; call fit(x, schema) first")

    def __repr__(self) -> str:
        return (
            f"Preprocessor(method={self.method!r}, representation={self.representation!r}, "
            f"frame={self.frame!r})"
        )


def _fill_absent(f: np.ndarray, x: np.ndarray, schema: Schema, value: float) -> None:
    """Set the columns other than pT of every object absent from ``x`` (pT <= 0) to ``value`` in ``f``."""
    for o in schema.objects():
        absent = x[:, o.pt] <= 0
        for c in (o.e, o.eta, o.phi):
            if c >= 0:
                f[absent, c] = value


def _log_mask(schema: Schema, method: str, representation: str) -> np.ndarray:
    """The columns ``method`` log-scales in ``representation``: energy-like ones, not mass codes."""
    mask = np.isin(np.array(schema.kinds), LOG_KINDS) & (method == "physics")
    if rep.has_masses(representation):
        mask[rep.coded_columns(schema)] = False
    return mask


def _stored_schema(saved: SavedState, schema: Schema | None) -> Schema:
    """The schema a state stores as JSON; it must be ``schema`` when that is given."""
    from eventgen.errors import EventgenError

    text = str(saved.scalar("schema", "str"))
    try:
        stored = Schema.from_json(text)
    except (EventgenError, ValueError, TypeError, KeyError, AttributeError):
        raise saved.error("schema", "is not a schema written by eventgen") from None
    if schema is not None and stored != schema:
        raise saved.error("schema", f"is not the bundle's schema {schema.name!r} (columns or masses differ)")
    return stored


def _column_moments(f: np.ndarray, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of ``f``, over the events ``rows`` selects (all if None)."""
    if rows is None:
        return f.mean(axis=0), f.std(axis=0)
    count = rows.sum(axis=0)
    mean = np.where(rows, f, 0.0).sum(axis=0) / count
    var = np.where(rows, (f - mean) ** 2, 0.0).sum(axis=0) / count
    return mean, np.sqrt(var)


def _guard(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Replace zero or negligible (below float32 resolution) spreads by 1."""
    tiny = 1e-6 * np.maximum(np.abs(mean), 1.0)
    return np.where(np.isfinite(std) & (std > tiny), std, 1.0)


def _check_array(x: np.ndarray, columns: list[str], what: str) -> np.ndarray:
    """Check ``x`` is a numeric ``(n_events, len(columns))`` array."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != len(columns):
        raise InputError(
            f"{what} expects events of shape (n_events, {len(columns)}) in schema order, found shape "
            f"{x.shape}; pass the columns of the schema used to fit"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{what} expects a numeric array, found dtype {x.dtype}")
    return x


def _check_statistic(stat: np.ndarray, x: np.ndarray, columns: list[str]) -> None:
    """A non-finite per-column statistic of ``x`` means NaN/inf in ``x``: find and report it."""
    if not np.isfinite(stat).all():
        check_finite(x, columns, "Preprocessor.fit's input")


def _check_non_negative(x: np.ndarray, log_mask: np.ndarray, columns: list[str]) -> None:
    for j in np.flatnonzero(log_mask):
        low = float(x[:, j].min()) if x.shape[0] else 0.0
        if low < 0:
            raise InputError(
                f"energy-like column {columns[j]!r} has negative values (min {low:g}); energy and pt columns "
                "must be >= 0: fix the data or declare the column with kind 'generic' in the schema"
            )
