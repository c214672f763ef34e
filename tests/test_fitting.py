"""Tests of eventgen.fitting's Python entry point: its inputs, its keyword options and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from eventgen import fit
from eventgen.bundle import Bundle
from eventgen.config import load_yaml
from eventgen.errors import ConfigError, EventgenError, InputError
from eventgen.fitting import BufferSettings, fit_settings
from eventgen.io import EventTable, read_events, write_events
from eventgen.model import ModelSettings
from eventgen.sampling import SamplingSettings
from eventgen.schema import get_schema
from eventgen.train import TrainSettings

DATA = Path(__file__).parent / "data"
TTBAR_NAMES = get_schema("ttbar").names
TINY = {
    "latent_dim": 2,
    "hidden": 8,
    "depth": 1,
    "epochs": 1,
    "batch_size": 64,
    "device": "cpu",
    "threads": 1,
}


@pytest.fixture(scope="module")
def small() -> EventTable:
    table = read_events(DATA / "ttbar_small.parquet")
    return EventTable(table.data[:300], table.schema, table.metadata)


def _assert_same_fit(a: Bundle, b: Bundle, skip: tuple[str, ...] = ()) -> None:
    """Bit-for-bit the same model and states, but for the clean-up state's keys in ``skip``."""
    assert a.schema.columns == b.schema.columns and a.model_settings == b.model_settings
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key].numpy(), wb[key].numpy(), err_msg=key)
    for part in ("preprocessor", "buffer", "cleanup"):
        sa, sb = getattr(a, part).get_state(), getattr(b, part).get_state()
        assert sa.keys() == sb.keys()
        for key in sa:
            if not (part == "cleanup" and key in skip):
                np.testing.assert_array_equal(sa[key], sb[key], err_msg=f"{part}: {key}")


@pytest.mark.slow
def test_keyword_options_reproduce_the_fixture_bundle() -> None:
    """The settings of tests/data/tiny-fit.yaml given as keywords give the committed bundle, bit for bit."""
    config = load_yaml(DATA / "tiny-fit.yaml")
    options = {**config["model"], **config["train"], **config["buffer"]}
    path = str(DATA / "ttbar_small.parquet")
    plain = {key: config[key] for key in ("seed", "preprocess", "representation", "frame")}
    bundle = fit(path, **plain, **options)
    committed = Bundle.load(DATA / "bundle")
    _assert_same_fit(bundle, committed, skip=("e_max",))  # the committed bundle predates the energy limit
    assert "e_max" not in np.load(DATA / "bundle" / "cleanup.npz").files
    assert bundle.buffer.settings == committed.buffer.settings
    saved = json.loads((DATA / "bundle" / "bundle.json").read_text())
    assert bundle.metadata["training"]["settings"] == saved["training"]["settings"]
    assert bundle.metadata["data"] == {**saved["data"], "path": path}  # the file's sha256 and size


def test_every_form_of_input_gives_the_same_fit(small: EventTable, tmp_path: Path) -> None:
    """A table, a DataFrame, an array with its schema (by name or object) and a file fit alike."""
    reference = fit(small, seed=3, **TINY)
    path = write_events(tmp_path / "small.parquet", small.data, small.schema)
    frame = pd.DataFrame(small.data, columns=small.schema.names)
    shuffled = frame[list(reversed(frame.columns))]  # columns are taken by name
    for data, schema in [
        (frame, None),
        (shuffled, None),
        (shuffled.assign(extra=1.0), "ttbar"),  # the schema's columns only
        (small.data, "ttbar"),
        (small.data.astype(np.float64), small.schema),
        (path, None),
        (str(path), "ttbar"),
    ]:
        bundle = fit(data, schema, seed=3, **TINY)
        _assert_same_fit(bundle, reference)
        assert bundle.schema == get_schema("ttbar")
    assert fit(path, seed=3, **TINY).metadata["data"]["path"] == str(path)


def test_keywords_override_the_given_settings() -> None:
    model, train, buffer = fit_settings(
        {"latent_dim": 4, "epochs": 7, "gamma": 0.2, "weight_column": "met"},
        model_settings=ModelSettings(hidden=32),
        buffer_settings=BufferSettings(SamplingSettings(mode="kde")),
    )
    assert (model.latent_dim, model.hidden, model.depth) == (4, 32, ModelSettings().depth)
    assert train.epochs == 7
    assert buffer.sampling == SamplingSettings(mode="kde", gamma=0.2)
    assert buffer.weight_column == "met"
    assert fit_settings({}) == (ModelSettings(), TrainSettings(), BufferSettings())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"epoch": 3},
            ConfigError,
            r"fit\(\) has no option 'epoch'; did you mean 'epochs'\? valid options are",
        ),
        ({"lr": 0.1}, ConfigError, r"no option 'lr'; valid options are \[.*'learning_rate'"),
        ({"epochs": 0}, ConfigError, r"train.epochs must be an integer >= 1, found 0"),
        ({"epochs": 2.5}, ConfigError, r"fit.epochs must be an integer, found 2.5"),
        ({"latent_dim": "8"}, ConfigError, r"fit.latent_dim must be an integer, found '8'"),
        ({"beta": 2.0}, ConfigError, r"model.beta must be a number in \[0, 1\], found 2.0"),
        ({"gamma": -1.0}, ConfigError, r"fit: gamma=-1.0 is invalid; pass a finite number >= 0"),
        ({"mode": "kdee"}, ConfigError, r"mode='kdee' is unknown; choose one of buffer, kde, gmm, prior"),
        ({"selection": "weighted"}, ConfigError, r"selection 'weighted' needs buffer.weight_column"),
        ({"device": "tpu"}, ConfigError, r"train.device must be one of auto, cpu, cuda, cuda:N"),
        ({"seed": -1}, ConfigError, r"seed must be a non-negative integer, found -1"),
        ({"preprocess": "log"}, ConfigError, r"preprocess='log' is unknown; choose one of physics, maxabs"),
        ({"representation": "pxpypz"}, ConfigError, r"representation='pxpypz' is unknown; choose one of "),
        ({"frame": "cms"}, ConfigError, r"frame='cms' is unknown; choose one of "),
        ({"weight_column": "mett"}, InputError, r"schema 'ttbar' has no column 'mett'"),
    ],
)
def test_invalid_options_are_one_line_errors(
    small: EventTable, kwargs: dict[str, Any], error: type[EventgenError], match: str
) -> None:
    with pytest.raises(error, match=match) as raised:
        fit(small, **{**TINY, **kwargs})
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("data", "schema", "match"),
    [
        (
            np.zeros((200, 28), np.float32),
            None,
            r"a NumPy array of events needs its schema; pass schema='ttbar'",
        ),
        (np.zeros((200, 5), np.float32), "ttbar", r"needs numbers of shape \(n_events, 28\)"),
        (np.zeros((200, 28), np.float32), "higgs", r"unknown schema 'higgs'"),
        (
            [[1.0] * 28] * 200,
            "ttbar",
            r"cannot take events from a list; pass an EventTable, a pandas DataFrame",
        ),
        (pd.DataFrame({"met": [1.0] * 200}), "ttbar", r"the DataFrame lacks columns \['met_phi'"),
        (pd.DataFrame({"met": ["a"] * 200}), None, r"the DataFrame's columns \['met'\] are not numeric"),
        (
            pd.DataFrame({n: [1.0] * 200 for n in ["x", *TTBAR_NAMES]}),
            None,
            r"the DataFrame matches no schema",
        ),
        (pd.DataFrame({"met": [np.nan] * 200}), None, r"NaN/inf values, first in column 'met' of event 0"),
        ("no-such-file.parquet", None, r"'no-such-file.parquet' does not exist"),
    ],
)
def test_invalid_inputs_are_one_line_errors(data: Any, schema: str | None, match: str) -> None:
    with pytest.raises(EventgenError, match=match) as raised:
        fit(data, schema, **TINY)
    assert "\n" not in str(raised.value)
