"""The main job end to end on a tiny configuration (real Pythia), and its config errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventgen.errors import ConfigError
from eventgen.run import load_run_job, run
from eventgen.sampling import SamplingSettings

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
        "decoder ceiling",
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
        (
            "generate: {mode: bufer}\n",
            "^run.yaml: generate: mode='bufer' is unknown; choose one of buffer, kde, gmm",
        ),
        ("generate: {alpha: -1}\n", "generate: alpha=-1 is invalid; pass a finite number >= 0"),
        (
            "generate: {sampling: {mode: kde}}\n",
            r"unknown key run.yaml: generate.sampling; valid keys are \['n_e",
        ),
        ("generate: {n_events: 0}\n", "generate.n_events must be at least 1"),
        (
            "generate: {selection: weighted}\n",
            "generate: selection 'weighted' needs fit.buffer.weight_column",
        ),
        (
            "fit: {buffer: {mode: gmm}}\ngenerate: {selection: stratified}\n",
            "applies to modes 'buffer' and 'kde'",
        ),
        ("fit: {buffer: {gamma: -1}}\n", "^run.yaml: fit: buffer: gamma=-1 is invalid"),
        ("fit: {buffer: {modes: kde}}\n", "unknown key run.yaml: fit: buffer.modes"),
        (
            "evaluate: {baselines: [smaer]}\n",
            r"evaluate.baselines must be one of \['smear', 'kde', 'gmm', 'flow', 'prior'\]",
        ),
        ("evaluate: {max_events: 5}\n", "evaluate.max_events must be at least 10"),
        ("evaluate: {gmm_components: 0}\n", "evaluate.gmm_components must be at least 1"),
        ("evaluate: {flow_epochs: 0}\n", "evaluate.flow_epochs must be at least 1"),
        ("generate: {mode: flow}\n", r"generate: mode 'flow' is trained when the bundle is fitted; set it"),
        (
            "fit: {buffer: {mode: flow}}\ngenerate: {flow_epochs: 7}\n",
            r"e.g. fit: \{buffer: \{mode: flow\}\}",
        ),
        ("seed: true\n", "seed must be a non-negative integer"),
        (
            "fit: {representation: momentum}\n",
            r"^run.yaml: fit: representation must be one of \['energy', 'mass', 'dilepton', 'ee_dilepton'\], found 'momentum'$",
        ),
        (
            "fit: {frame: rest}\n",
            r"^run.yaml: fit: frame must be one of \['lab', 'canonical'\], found 'rest'$",
        ),
    ],
)
def test_run_config_errors(tmp_path: Path, text: str, match: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_run_job(str(config))


def test_default_config_loads() -> None:
    job = load_run_job(str(Path(__file__).parents[1] / "configs" / "default.yaml"))
    assert job.simulate.n_train == 20_000
    assert job.fit.buffer.sampling == SamplingSettings(mode="buffer", alpha=1.0, gamma=0.2)
    assert job.generate.sampling == SamplingSettings(alpha=1.0, gamma=0.2)
    assert (job.fit.model.latent_dim, job.fit.model.beta) == (28, 1e-4)
    assert job.evaluate.baselines == ("smear", "kde", "gmm", "flow", "prior")
    assert job.evaluate.flow_epochs == 60
    assert (job.fit.representation, job.fit.frame) == ("mass", "canonical")  # the defaults of new fits


def test_a_flow_fitted_with_the_bundle_takes_draw_time_overrides(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("fit: {buffer: {mode: flow, flow_epochs: 20}}\ngenerate: {temperature: 0.8}\n")
    job = load_run_job(str(config))
    assert job.generate.sampling == SamplingSettings(mode="flow", flow_epochs=20, temperature=0.8)


def test_generate_overrides_apply_to_the_fit_sampling(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "fit: {buffer: {mode: kde, bandwidth: 0.5, selection: weighted, weight_column: met}, refine: false}\n"
        "generate: {mode: gmm, n_components: 7}\n"
    )
    job = load_run_job(str(config))
    assert job.fit.buffer.sampling == SamplingSettings(mode="kde", bandwidth=0.5, selection="weighted")
    assert job.generate.sampling == SamplingSettings(mode="gmm", bandwidth=0.5, n_components=7)


@pytest.mark.parametrize(
    ("section", "choices"),
    [
        ("generate: {mode: bufer}", "choose one of buffer, kde, gmm, prior"),
        ("evaluate: {baselines: [smaer]}", "must be one of ['smear', 'kde', 'gmm', 'flow', 'prior']"),
    ],
)
def test_a_typo_fails_before_any_stage_and_without_heavy_imports(
    tmp_path: Path, section: str, choices: str
) -> None:
    """The CLI prints one line and exits 2; loading got there without importing torch or numba."""
    config = tmp_path / "run.yaml"
    config.write_text(f"workdir: {tmp_path / 'work'}\n{section}\n")
    code = (
        "import sys\n"
        "from eventgen.cli import main\n"
        f"rc = main(['run', {str(config)!r}])\n"
        "print(rc, 'torch' in sys.modules, 'numba' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["2", "False", "False"]
    (line,) = done.stderr.splitlines()
    assert line.startswith("eventgen run: error: run.yaml: ") and choices in line
    assert not (tmp_path / "work").exists()


def test_zll_config_loads() -> None:
    job = load_run_job(str(Path(__file__).parents[1] / "configs" / "zll.yaml"))
    assert job.simulate.settings["process"] == "zll"
    assert (job.fit.preprocess, job.fit.representation) == ("quantile", "ee_dilepton")
    assert not job.fit.refine.enabled and job.fit.model.beta == 1e-6
    assert job.generate.sampling == SamplingSettings(alpha=1.0, gamma=0.05)
