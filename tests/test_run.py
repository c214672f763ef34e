"""The main job end to end on a tiny configuration (real Pythia), and its config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventgen.errors import ConfigError
from eventgen.run import load_run_job, run

TINY = """
workdir: {workdir}
seed: 3
simulate: {{process: ttbar, n_train: 400, n_test: 400}}
fit:
  model: {{latent_dim: 6, hidden: 32, depth: 2}}
  train: {{epochs: 2, batch_size: 128, threads: 1}}
generate: {{n_events: 5000}}
evaluate: {{max_events: 200, baselines: [smear, kde, gmm, prior], gmm_components: 4}}
"""


@pytest.mark.slow
@pytest.mark.pythia
def test_main_job_runs_and_skips_finished_stages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("pythia8mc")
    config = tmp_path / "run.yaml"
    config.write_text(TINY.format(workdir=tmp_path / "work"))
    report = run(load_run_job(str(config)), workers=1)
    text = report.read_text()
    for label in (
        "eventgen",
        "±5% smearing",
        "Gaussian KDE",
        "GMM (4 comp.)",
        "plain VAE (prior)",
        "truth vs truth",
    ):
        assert label in text.splitlines()[4]
    assert (tmp_path / "work" / "bundle" / "bundle.json").exists()
    caplog.set_level("INFO", logger="eventgen")
    run(load_run_job(str(config)), workers=1)
    skipped = [r.getMessage() for r in caplog.records if "up to date" in r.getMessage()]
    assert len(skipped) == 4


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("simulate: {process: higgs}\n", "simulate.process must be one of"),
        ("simulate: {jet_radius: 0.4}\n", "jet_radius"),
        ("fit: {model: {width: 3}}\n", "model.width"),
        ("generate: {n_events: many}\n", "generate.n_events must be an integer"),
        ("fit: {model: 3}\n", "model must be a mapping of keys to values, found 3"),
        ("simulate: ttbar\n", "simulate must be a mapping"),
        ("stages: all\n", "unknown key run.yaml: stages"),
    ],
)
def test_run_config_errors(tmp_path: Path, text: str, match: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_run_job(str(config))


def test_default_config_loads() -> None:
    assert (
        load_run_job(str(Path(__file__).parents[1] / "configs" / "default.yaml")).simulate.n_train == 20_000
    )
