"""SamplingSettings: validation with messages naming the choices, overrides, and what derives from it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from eventgen.components import COMPONENTS
from eventgen.errors import ConfigError
from eventgen.sampling import BANDWIDTH_RULES, EVENT_MODES, FIELDS, MODES, SELECTIONS, SamplingSettings


def test_defaults_are_the_prior_arts() -> None:
    s = SamplingSettings()
    assert (s.mode, s.alpha, s.gamma, s.selection) == ("buffer", 1.0, 0.05, "uniform")
    assert s.picks_events and not SamplingSettings(mode="prior").picks_events
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.alpha = 2.0  # type: ignore[misc]


def test_every_mode_has_a_component() -> None:
    assert list(COMPONENTS) == list(MODES)
    assert set(EVENT_MODES) <= set(MODES)
    assert MODES == ("buffer", "kde", "gmm", "prior", "flow") and BANDWIDTH_RULES == ("scott", "silverman")


def test_numbers_are_normalised_and_round_trip_through_json() -> None:
    s = SamplingSettings(alpha=1, gamma=0, bandwidth=2, n_components=3)
    assert isinstance(s.alpha, float) and isinstance(s.gamma, float) and isinstance(s.bandwidth, float)
    assert SamplingSettings(**json.loads(json.dumps(s.to_dict()))) == s
    assert hash(s) == hash(SamplingSettings(alpha=1.0, gamma=0.0, bandwidth=2.0, n_components=3))


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"mode": "vae"}, "mode='vae' is unknown; choose one of buffer, kde, gmm, prior"),
        ({"mode": ["kde"]}, r"mode=\['kde'\] is unknown; choose one of"),
        (
            {"selection": "cyclic"},
            "selection='cyclic' is unknown; choose one of uniform, stratified, weighted",
        ),
        ({"alpha": -1.0}, "alpha=-1.0 is invalid; pass a finite number >= 0"),
        ({"alpha": True}, "alpha=True is invalid"),
        ({"alpha": "1"}, "alpha='1' is invalid"),
        ({"gamma": -0.1}, "gamma=-0.1 is invalid"),
        ({"gamma": float("nan")}, "gamma=nan is invalid"),
        ({"mode": "kde", "bandwidth": "wide"}, "bandwidth='wide' is unknown; choose one of scott, silverman"),
        ({"mode": "kde", "bandwidth": 0.0}, "bandwidth=0.0 is invalid"),
        ({"mode": "gmm", "n_components": 0}, "n_components=0 is invalid"),
        ({"mode": "gmm", "n_components": 2.5}, "n_components=2.5 is invalid"),
        ({"mode": "gmm", "selection": "stratified"}, "applies to modes 'buffer' and 'kde' only"),
        ({"mode": "prior", "selection": "weighted"}, "use selection='uniform' with mode='prior'"),
        ({"mode": "flow", "temperature": 0.0}, r"temperature=0.0 is invalid; pass a number in \(0, 1\]"),
        ({"mode": "flow", "temperature": 1.5}, "temperature=1.5 is invalid"),
        ({"mode": "flow", "temperature": float("inf")}, "temperature=inf is invalid"),
        ({"mode": "flow", "temperature": "1"}, "temperature='1' is invalid"),
        (
            {"temperature": 0.5},
            "temperature=0.5 applies to mode 'flow' only; use temperature=1 with mode='buffer'",
        ),
        (
            {"mode": "flow", "flow_target": "events"},
            "flow_target='events' is unknown; choose one of mu, mixture",
        ),
        (
            {"mode": "flow", "flow_transforms": 0},
            "flow_transforms=0 is invalid; pass an integer >= 1 and <= 64",
        ),
        ({"mode": "flow", "flow_hidden": 5000}, "flow_hidden=5000 is invalid"),
        ({"mode": "flow", "flow_epochs": 1.5}, "flow_epochs=1.5 is invalid; pass an integer >= 1"),
        ({"mode": "flow", "selection": "stratified"}, "use selection='uniform' with mode='flow'"),
    ],
)
def test_invalid_settings(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SamplingSettings(**settings)


def test_updated_keeps_unset_fields() -> None:
    base = SamplingSettings(alpha=0.5, gamma=0.2, selection="stratified")
    assert base.updated(None) == base and base.updated({}) == base
    assert base.updated({"alpha": None, "gamma": 0.3}) == dataclasses.replace(base, gamma=0.3)
    assert base.updated({"mode": "kde"}) == dataclasses.replace(base, mode="kde")


def test_resolve_keeps_overrides_or_replaces() -> None:
    bundle = SamplingSettings(mode="kde", bandwidth=0.3, alpha=2.0)
    assert bundle.resolve(None) == bundle
    assert bundle.resolve({"gamma": 0.1, "mode": None}) == dataclasses.replace(bundle, gamma=0.1)
    other = SamplingSettings(mode="prior")
    assert bundle.resolve(other) is other
    with pytest.raises(ConfigError, match="^sampling: alpha=-1 is invalid"):
        bundle.resolve({"alpha": -1})


@pytest.mark.parametrize("mode", [m for m in MODES if m not in EVENT_MODES])
def test_a_mode_without_events_implies_uniform_selection(mode: str) -> None:
    weighted = SamplingSettings(selection="weighted")
    assert weighted.updated({"mode": mode}).selection == "uniform"
    with pytest.raises(ConfigError, match=f"generate: selection='weighted' applies to .* mode='{mode}'"):
        weighted.updated({"mode": mode, "selection": "weighted"}, where="generate")


def test_updated_errors_name_the_place_and_the_valid_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"^run.yaml: generate: mode='bufer' is unknown; choose one of buffer,"
    ):
        SamplingSettings().updated({"mode": "bufer"}, where="run.yaml: generate")
    with pytest.raises(
        ConfigError, match=r"unknown sampling setting 'beta'; valid keys are \['mode', 'alpha'"
    ):
        SamplingSettings().updated({"beta": 1.0})
    with pytest.raises(ConfigError, match="must be a mapping"):
        SamplingSettings().updated(["kde"])  # type: ignore[arg-type]


def test_same_fit_ignores_draw_time_fields_only() -> None:
    base = SamplingSettings(mode="kde")
    assert base.same_fit(base.updated({"alpha": 3.0, "gamma": 0.0, "selection": "weighted"}))
    for change in ({"mode": "buffer"}, {"bandwidth": 0.1}, {"n_components": 7}):
        assert not base.same_fit(base.updated(change))
    flow = SamplingSettings(mode="flow")
    assert flow.same_fit(flow.updated({"temperature": 0.5, "refine": False}))
    assert flow.same_fit(flow.updated({"refine_quantile": 0.5}))
    for change in ({"flow_epochs": 3}, {"flow_target": "mu"}, {"flow_hidden": 8}, {"flow_transforms": 2}):
        assert not flow.same_fit(flow.updated(change))
    assert FIELDS == (
        "mode",
        "alpha",
        "gamma",
        "selection",
        "bandwidth",
        "n_components",
        "temperature",
        "flow_transforms",
        "flow_hidden",
        "flow_epochs",
        "flow_target",
        "refine",
        "refine_quantile",
    )


def test_a_mode_other_than_flow_resets_the_temperature() -> None:
    cool = SamplingSettings(mode="flow", temperature=0.5)
    assert cool.updated({"mode": "buffer"}).temperature == 1.0
    assert cool.updated({"gamma": 0.1}).temperature == 0.5
    with pytest.raises(ConfigError, match="temperature=0.5 applies to mode 'flow' only"):
        cool.updated({"mode": "kde", "temperature": 0.5})


def test_cli_choices_derive_from_the_settings() -> None:
    from eventgen.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    generate = sub.choices["generate"]  # type: ignore[index]
    options = {a.dest: a for a in generate._actions}
    assert tuple(options["mode"].choices) == MODES
    assert tuple(options["selection"].choices) == SELECTIONS
