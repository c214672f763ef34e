"""Tests of the package's Python API: its public names, the notebook methods and the README session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eventgen.bundle import Bundle
from eventgen.cli import main
from eventgen.errors import ConfigError
from eventgen.io import EventTable, read_events
from eventgen.observables import derived_observables

ROOT = Path(__file__).parents[1]
STAGES = ("simulate", "fit", "generate", "evaluate")


def _run(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return done.stdout.split()


def test_import_is_light() -> None:
    """``import eventgen`` loads neither torch nor numba (the CLI starts fast)."""
    out = _run("import sys, eventgen\nprint('torch' in sys.modules, 'numba' in sys.modules)")
    assert out == ["False", "False"]


def test_stage_names_are_functions_before_and_after_every_submodule_import() -> None:
    """No submodule shadows a public function, whichever is imported first."""
    code = (
        "import importlib, inspect, pkgutil\n"
        "import eventgen\n"
        "from eventgen import simulate, fit, generate, evaluate\n"
        "before = [inspect.isfunction(f) for f in (simulate, fit, generate, evaluate)]\n"
        "for info in pkgutil.iter_modules(eventgen.__path__):\n"
        "    importlib.import_module('eventgen.' + info.name)\n"
        "from eventgen import simulate as s2, fit as f2, generate as g2, evaluate as e2\n"
        "after = [inspect.isfunction(f) for f in (s2, f2, g2, e2)]\n"
        f"again = [inspect.isfunction(getattr(eventgen, n)) for n in {STAGES!r}]\n"
        "same = [a is b for a, b in zip((simulate, fit, generate, evaluate), (s2, f2, g2, e2))]\n"
        "print(*before, *after, *again, *same)\n"
    )
    assert _run(code) == ["True"] * 16


def test_submodule_names_are_not_public_names() -> None:
    import pkgutil

    import eventgen

    submodules = {info.name for info in pkgutil.iter_modules(eventgen.__path__)}
    assert not submodules & set(eventgen.__all__)


def test_print_fit_shows_a_function() -> None:
    """The issue's acceptance line: ``python -c "from eventgen import fit; print(fit)"``."""
    (first, *_) = _run("from eventgen import fit; print(fit)")
    assert first == "<function"


# ----------------------------------------------------------------------------- the notebook API

DATA = ROOT / "tests" / "data"
PINNED_ROWS = [0, 1, 4095, 4096, 4999]  # the rows of tests/data/bundle_events.npz (test_pinned_events.py)


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(DATA / "bundle")


@pytest.mark.parametrize(
    ("sampling", "flags"),
    [
        ({}, []),
        ({"alpha": 0.5, "gamma": 0.2}, ["--alpha", "0.5", "--gamma", "0.2"]),
        ({"mode": "kde"}, ["--mode", "kde"]),
        ({"selection": "weighted"}, ["--selection", "weighted"]),
        (
            {"selection": "weighted", "weight_column": "w_pb"},
            ["--selection", "weighted", "--weight-column", "w_pb"],
        ),
    ],
)
def test_sample_gives_the_events_generate_writes(
    bundle: Bundle, tmp_path: Path, sampling: dict[str, Any], flags: list[str]
) -> None:
    out = tmp_path / "events.parquet"
    assert (
        main(["generate", str(DATA / "bundle"), "-n", "5000", "--seed", "9", "-o", str(out), "-q", *flags])
        == 0
    )
    written = read_events(out)
    events = bundle.sample(5000, seed=9, **sampling)
    assert isinstance(events, EventTable) and events.schema.columns == written.schema.columns
    np.testing.assert_array_equal(events.data, written.data)
    assert {"bundle_hash", "seed", "n_events", "sampling", "normalisation"} <= set(events.metadata)
    assert events.metadata == {key: written.metadata[key] for key in events.metadata}


@pytest.mark.parametrize("name", ["buffer", "weighted", "kde", "prior"])
def test_sample_gives_the_pinned_events(bundle: Bundle, name: str) -> None:
    sampling = {
        "buffer": {},
        "weighted": {"selection": "weighted"},
        "kde": {"mode": "kde"},
        "prior": {"mode": "prior"},
    }
    pinned = np.load(DATA / "bundle_events.npz")[name]
    np.testing.assert_array_equal(bundle.sample(5000, seed=7, **sampling[name]).data[PINNED_ROWS], pinned)


def test_sample_does_not_depend_on_threads(bundle: Bundle) -> None:
    one = bundle.sample(9000, seed=2, threads=1, gamma=0.1)
    two = bundle.sample(9000, seed=2, threads=2, gamma=0.1)
    np.testing.assert_array_equal(one.data, two.data)
    assert bundle.sample(100, seed=2, threads=2, gamma=0.1).data.tobytes() == one.data[:100].tobytes()


@pytest.mark.parametrize(
    ("n", "kwargs", "match"),
    [
        (0, {}, r"the number of events must be an integer >= 1, found 0"),
        (2.5, {}, r"the number of events must be an integer >= 1, found 2.5"),
        (10, {"seed": -1}, r"the seed must be a non-negative integer, found -1"),
        (10, {"mdoe": "kde"}, r"unknown sampling setting 'mdoe'; valid keys are \['mode'"),
        (10, {"gamma": -1.0}, r"gamma=-1.0 is invalid"),
        (10, {"threads": 0}, r"the number of threads must be at least 1"),
    ],
)
def test_sample_errors_are_one_line(bundle: Bundle, n: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as raised:
        bundle.sample(n, **kwargs)
    assert "\n" not in str(raised.value)


def test_generate_refuses_an_unknown_option(bundle: Bundle, tmp_path: Path) -> None:
    from eventgen import generate

    with pytest.raises(ConfigError, match=r"generate\(\) has no option 'sed'; valid options are \['seed', "):
        generate(bundle, 10, tmp_path / "x.parquet", sed=1)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sample", ["ttbar_small", "zll_small"])
def test_score_samples_is_the_score_command(bundle: Bundle, tmp_path: Path, sample: str) -> None:
    """Scores of a file, a table, a DataFrame and an array equal ``eventgen score``'s (zll: mapped)."""
    path = DATA / f"{sample}.parquet"
    out = tmp_path / "scores.parquet"
    assert main(["score", str(DATA / "bundle"), str(path), "-o", str(out), "-q"]) == 0
    written = read_events(out)
    table = read_events(path)
    for score in ("reconstruction", "neg_elbo"):
        expected = written.column(score)
        np.testing.assert_array_equal(bundle.score_samples(path, score), expected)
        np.testing.assert_array_equal(bundle.score_samples(table, score), expected)
        np.testing.assert_array_equal(bundle.score_samples(table.to_pandas(), score), expected)
    if sample == "ttbar_small":
        np.testing.assert_array_equal(bundle.score_samples(table.data), written.column("reconstruction"))
    with pytest.raises(ConfigError, match=r"score='mse' is unknown; choose one of reconstruction, neg_elbo"):
        bundle.score_samples(table, "mse")  # type: ignore[arg-type]


def test_score_samples_of_weighted_events_use_the_event_columns(bundle: Bundle) -> None:
    weighted = bundle.sample(500, seed=1, selection="weighted")
    assert weighted.schema.names[-1] == "weight"
    np.testing.assert_array_equal(bundle.score_samples(weighted), bundle.score_samples(weighted.data[:, :-1]))


def _readme_session() -> str:
    """The Python block after the README's notebook-session marker."""
    text = (ROOT / "README.md").read_text()
    marker = "<!-- notebook-session: tests/test_package.py runs this block as written -->\n```python\n"
    assert text.count(marker) == 1, "the README lost its notebook-session marker"
    start = text.index(marker) + len(marker)
    return text[start : text.index("```\n", start)]


def test_readme_notebook_session_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's notebook session, run as written in a fresh folder holding the shipped sample."""
    pytest.importorskip("awkward")
    pytest.importorskip("vector")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    code = _readme_session()
    assert 8 <= len(code.strip().splitlines()) <= 12
    (tmp_path / "tests" / "data").mkdir(parents=True)
    (tmp_path / "tests" / "data" / "ttbar_small.parquet").symlink_to(DATA / "ttbar_small.parquet")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        plt.close("all")
    events, train, saved = namespace["events"], namespace["train"], Bundle.load(tmp_path / "demo-bundle")
    assert len(events) == 5000 and namespace["scores"].shape == (len(train),)
    np.testing.assert_array_equal(saved.sample(5000, seed=7).data, events.data)
    m_jj = derived_observables(events.data, events.schema)["m_jj"]
    np.testing.assert_allclose(np.asarray(namespace["m_jj"]), m_jj, rtol=2e-3, atol=0.05)
