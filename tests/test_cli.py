"""The command line: every stage listed, and bad input gives one line and exit code 2."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eventgen.cli import build_parser, main
from eventgen.io import read_events, write_events

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
FIT_CONFIG = ROOT / "configs" / "deepevents.yaml"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``eventgen`` console entry point in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "import sys; from eventgen.cli import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def _subcommands() -> list[str]:
    """The subcommands the parser declares (so a new one is covered by the tests below)."""
    parser = build_parser()
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


SUBCOMMANDS = _subcommands()


def test_help_lists_every_stage() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for stage in SUBCOMMANDS:
        assert stage in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: eventgen {name} ") and "--quiet" in out


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()  # drop what came before
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def _bad_input(name: str, tmp: Path) -> tuple[list[str], str]:
    """``(argv, part of the error line)``: one bad input of subcommand ``name``, cheap to reject."""
    bundle, events, config = str(DATA / "bundle"), str(DATA / "ttbar_small.parquet"), str(FIT_CONFIG)
    (tmp / "report").mkdir()
    (tmp / "report" / "metrics.json").write_text("{}")
    (tmp / "old.parquet").write_bytes(b"keep me")
    missing = str(tmp / "missing")
    cases = {
        "simulate": (["higgs", "-o", str(tmp / "a.h5")], "unknown process 'higgs'"),
        "fit": ([config, "--data", str(tmp / "no.parquet"), "-o", missing], "no.parquet' does not exist"),
        "generate": ([missing, "-n", "10", "-o", str(tmp / "g.parquet")], "is not a directory"),
        "evaluate": (
            ["--generated", events, "--reference", events, "-o", str(tmp / "report")],
            "is not empty",
        ),
        "run": ([str(tmp / "job.yaml")], "job.yaml' does not exist"),
        "score": (
            [bundle, str(tmp / "in.parquet"), "-o", str(tmp / "s.parquet")],
            "in.parquet' does not exist",
        ),
        "encode": ([missing, events, "-o", str(tmp / "z.parquet")], "is not a directory"),
        "denoise": ([bundle, events, "-o", str(tmp / "old.parquet")], "exists already"),
        "decode": ([bundle, events, "-o", str(tmp / "d.h5")], "not an eventgen latent file"),
        "explore": ([missing, "-o", str(tmp / "plots")], "is not a directory"),
        "beta-scan": ([config, "--betas", "2", "-o", str(tmp / "b.md")], "must be a number in [0, 1]"),
        "info": ([missing], "is not a directory"),
    }
    assert name in cases, f"give the new subcommand {name!r} a bad input here"
    args, expected = cases[name]
    return [name, *args], expected


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_rejects_bad_input_in_one_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected = _bad_input(name, tmp_path)
    line = _error_line(capsys, argv)
    assert line.startswith(f"eventgen {name}: error: ") and expected in line
    assert (tmp_path / "old.parquet").read_bytes() == b"keep me"


def test_simulate_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown process 'higgs'" in _error_line(
        capsys, ["simulate", "higgs", "-o", str(tmp_path / "a.h5")]
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("process: ttbar\njet_radius: 0.4\n")
    line = _error_line(capsys, ["simulate", str(bad)])
    assert "unknown key bad.yaml.jet_radius; valid keys are" in line
    bad.write_text("process: [ttbar\n")
    assert "not valid YAML at line" in _error_line(capsys, ["simulate", str(bad)])
    assert "does not exist" in _error_line(capsys, ["simulate", str(tmp_path / "missing.yaml")])
    (tmp_path / "old.parquet").write_bytes(b"keep me")
    line = _error_line(capsys, ["simulate", "zll", "-n", "10", "-o", str(tmp_path / "old.parquet")])
    assert "exists already" in line and "--overwrite" in line
    assert (tmp_path / "old.parquet").read_bytes() == b"keep me"
    assert "at least 1" in _error_line(capsys, ["simulate", "zll", "-n", "0", "-o", str(tmp_path / "z.h5")])
    assert "cannot tell the format" in _error_line(capsys, ["simulate", "zll", "-o", str(tmp_path / "z.txt")])


def test_fit_input_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], rng) -> None:
    from eventgen.schema import get_schema

    config = str(ROOT / "configs" / "deepevents.yaml")
    out = str(tmp_path / "bundle")
    assert "does not exist" in _error_line(
        capsys, ["fit", config, "--data", str(tmp_path / "no.parquet"), "-o", out]
    )
    events = rng.normal(size=(500, 28)).astype(np.float32)
    write_events(tmp_path / "e.h5", events, get_schema("ttbar"))
    data = (tmp_path / "e.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    assert "truncated" in _error_line(capsys, ["fit", config, "--data", str(tmp_path / "cut.h5"), "-o", out])
    events[3, 5] = np.nan
    write_events(tmp_path / "nan.parquet", events, get_schema("ttbar"))
    line = _error_line(capsys, ["fit", config, "--data", str(tmp_path / "nan.parquet"), "-o", out])
    assert "NaN/inf values, first in column 'j1_phi' of event 3" in line
    write_events(tmp_path / "zll.parquet", events[:, :9], get_schema("zll"))
    line = _error_line(
        capsys, ["fit", config, "--data", str(tmp_path / "zll.parquet"), "--schema", "ttbar", "-o", out]
    )
    assert "lacks columns ['met', 'met_phi'" in line
    assert "unknown schema" in _error_line(capsys, ["fit", config, "--data", "x.parquet", "--schema", "tt"])
    bad = tmp_path / "fit.yaml"
    bad.write_text("model: {latent: 3}\n")
    assert "unknown key fit.yaml: model.latent" in _error_line(
        capsys, ["fit", str(bad), "--data", "x.parquet"]
    )
    assert not (tmp_path / "bundle").exists()


def test_info_rejects_what_is_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a directory" in _error_line(capsys, ["info", str(tmp_path / "nothing")])
    (tmp_path / "b").mkdir()
    assert "lacks" in _error_line(capsys, ["info", str(tmp_path / "b")])


@pytest.mark.pythia
def test_simulate_writes_reproducible_files(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    for name in ("a.parquet", "b.parquet", "c.h5"):
        result = run_cli(
            "simulate", "zll", "-n", "300", "--seed", "5", "-o", name, "--workers", "1", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""  # nothing from Pythia or FastJet on stdout
    a, b, c = (read_events(tmp_path / n) for n in ("a.parquet", "b.parquet", "c.h5"))
    assert a.data.shape == (300, 9) and a.schema.name == "zll"
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.data, c.data)
    assert a.metadata["seed"] == 5 and a.metadata["cross_section"]["pb"] > 0
    result = run_cli("simulate", "zll", "-n", "300", "--seed", "6", "-o", "d.parquet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not np.array_equal(read_events(tmp_path / "d.parquet").data, a.data)


@pytest.mark.slow
def test_fit_and_info_on_the_committed_sample(tmp_path: Path) -> None:
    data = ROOT / "tests" / "data" / "ttbar_small.parquet"
    config = ROOT / "configs" / "deepevents.yaml"
    args = ["fit", str(config), "--data", str(data), "--epochs", "1", "--seed", "3", "-o", "bundle"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # checkpoints cleaned up
    info = run_cli("info", "bundle", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    for expected in (
        "schema      ttbar: 28 columns",
        "latent 20, 6 x 128 elu residual",
        "1 epochs",
        "3000 events",
        "physics, mass representation, canonical frame",  # the defaults of new fits
    ):
        assert expected in info.stdout
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 2 and "exists already" in again.stderr


def test_distributed_flags_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from eventgen.fitting import fit
    from eventgen.model import ModelSettings
    from eventgen.train import TrainSettings

    table = read_events(ROOT / "tests" / "data" / "zll_small.parquet")
    bundle = fit(
        table,
        model_settings=ModelSettings(latent_dim=2, hidden=8, depth=1),
        train_settings=TrainSettings(epochs=1, device="cpu", threads=1),
    )
    bundle.save(tmp_path / "b")
    line = _error_line(
        capsys,
        ["generate", str(tmp_path / "b"), "-n", "10", "-o", str(tmp_path / "g.parquet"), "--workers", "2"],
    )
    assert "give -o a name without a suffix" in line
    monkeypatch.setitem(sys.modules, "distributed", None)
    line = _error_line(
        capsys, ["generate", str(tmp_path / "b"), "-n", "10", "-o", str(tmp_path / "ds"), "--workers", "2"]
    )
    assert "pip install 'eventgen[distributed]'" in line


def test_toolkit_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eventgen.fitting import fit
    from eventgen.model import ModelSettings
    from eventgen.train import TrainSettings

    data = ROOT / "tests" / "data"
    bundle = fit(
        read_events(data / "ttbar_small.parquet"),
        model_settings=ModelSettings(latent_dim=4, hidden=16, depth=2),
        train_settings=TrainSettings(epochs=2, device="cpu", threads=1),
    )
    bundle.save(tmp_path / "b")
    b = str(tmp_path / "b")
    assert main(["score", b, str(data / "zll_small.parquet"), "-o", str(tmp_path / "s.parquet"), "-q"]) == 0
    scores = read_events(tmp_path / "s.parquet")
    assert scores.schema.names == ["event", "reconstruction", "neg_elbo"] and len(scores) == 2000
    assert (
        main(["encode", b, str(data / "ttbar_small.parquet"), "-o", str(tmp_path / "z.parquet"), "-q"]) == 0
    )
    assert main(["decode", b, str(tmp_path / "z.parquet"), "-o", str(tmp_path / "d.h5"), "-q"]) == 0
    assert read_events(tmp_path / "d.h5").data.shape == (3000, 28)
    assert (
        main(["denoise", b, str(data / "ttbar_small.parquet"), "-o", str(tmp_path / "n.parquet"), "-q"]) == 0
    )
    config = tmp_path / "fit.yaml"
    config.write_text(
        f"data: {data / 'zll_small.parquet'}\nmodel: {{latent_dim: 2, hidden: 8, depth: 1}}\n"
        "train: {epochs: 2, threads: 1}\n"
    )
    assert (
        main(["beta-scan", str(config), "--betas", "0.5", "1e-6", "-o", str(tmp_path / "beta.md"), "-q"]) == 0
    )
    table = (tmp_path / "beta.md").read_text()
    assert "0.5" in table and "1e-06" in table
    assert "must be a number in [0, 1]" in _error_line(
        capsys, ["beta-scan", str(config), "--betas", "2", "-o", "x.md"]
    )
    line = _error_line(capsys, ["decode", b, str(data / "ttbar_small.parquet"), "-o", str(tmp_path / "e.h5")])
    assert "latent" in line


def test_explore_writes_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert main(["explore", str(DATA / "bundle"), "-o", str(tmp_path / "plots"), "-q"]) == 0
    assert sorted(p.suffix for p in (tmp_path / "plots").iterdir()) == [".png", ".png"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--threads", "0"], "the number of threads must be at least 1, found 0"),
        (["--threads", "-1"], "the number of threads must be at least 1, found -1"),
        (["--shard-size", "0"], "the shard size must be at least 1, found 0"),
        (["--seed", "-1"], "the seed must be a non-negative integer, found -1"),
    ],
)
def test_generate_refuses_out_of_range_options(tmp_path: Path, option: list[str], message: str) -> None:
    result = run_cli(
        "generate", str(DATA / "bundle"), "-n", "100", "-o", str(tmp_path / "g.parquet"), *option
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"eventgen generate: error: {message}"]
    assert list(tmp_path.iterdir()) == []
