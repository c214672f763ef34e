"""Hostile and careless command lines: each is refused before any work, in one line, with nothing left behind.

Every case runs the real ``eventgen`` command in a fresh process (so that a crash shows as a
signal) in an empty working directory, and checks: exit code 2, exactly one line on stderr
naming the problem and no traceback, and no new file or folder in the working directory or
beside the inputs. The inputs are the committed fixtures (``tests/data``) and files derived
from them: a tt̄ file without metadata with one column renamed, a ragged HDF5 file, a file
without events, a file whose metadata is a JSON list, a bundle without event weights, a
bundle whose ``model.npz`` is a link to a text file.

Schema matching (see :func:`eventgen.schema.detect_schema`): a file without eventgen metadata
is read in the built-in schema whose columns it holds exactly; one that resembles a built-in
schema without matching it is refused with the differences, and ``--schema`` overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventgen.cli import build_parser
from eventgen.io import read_events, write_events

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BUNDLE = DATA / "bundle"
TTBAR = DATA / "ttbar_small.parquet"
FIT_CONFIG = DATA / "tiny-fit.yaml"
RUN_CONFIG = ROOT / "configs" / "default.yaml"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Derived input files, made once (the cases only read them)."""
    folder = tmp_path_factory.mktemp("inputs")
    table = pq.read_table(TTBAR).replace_schema_metadata(None)  # a user's file: no eventgen metadata
    pq.write_table(table, folder / "plain.parquet")
    renamed = ["jet1_pt" if name == "j1_pt" else name for name in table.column_names]
    pq.write_table(table.rename_columns(renamed), folder / "renamed.parquet")
    pq.write_table(table.slice(0, 0), folder / "empty.parquet")
    pq.write_table(table.slice(0, 10), folder / "ten.parquet")
    pq.write_table(table.slice(0, 5), folder / "five.parquet")
    listed = table.replace_schema_metadata({"eventgen": json.dumps([{"schema": "ttbar"}])})
    pq.write_table(listed, folder / "listed.parquet")
    events = read_events(TTBAR)
    write_events(folder / "ragged.h5", events.data, events.schema)
    import h5py

    with h5py.File(folder / "ragged.h5", "a") as f:
        f["events/met_phi"].resize((len(events) - 1,))  # one column one event shorter
    shutil.copytree(BUNDLE, folder / "bundle")
    unweighted = shutil.copytree(BUNDLE, folder / "unweighted")
    with np.load(BUNDLE / "buffer.npz") as saved:
        np.savez(unweighted / "buffer.npz", **{k: saved[k] for k in saved.files if k != "weights"})
    linked = shutil.copytree(BUNDLE, folder / "linked")
    (folder / "notes.txt").write_text("these are notes, not weights\n")
    (linked / "model.npz").unlink()
    (linked / "model.npz").symlink_to(folder / "notes.txt")
    (folder / "run.yaml").write_text("workdir: ro/work\n")
    fit_config = FIT_CONFIG.read_text()
    for name, refine in (
        ("refine-quantile", "refine: {quantile: 2}"),
        ("refine-key", "refine: {quant: 0.5}"),
        ("refine-weighted", "refine: true\nbuffer: {selection: weighted, weight_column: met}"),
    ):
        text = fit_config.replace("refine: false", refine)
        if "buffer: {selection" in refine:
            text = "\n".join(line for line in text.splitlines() if not line.startswith("buffer:")) + "\n"
            text = text.replace("refine: true", refine)
        (folder / f"{name}.yaml").write_text(text)
    forged = shutil.copytree(BUNDLE, folder / "forged-refine")
    np.savez(forged / "refine.npz", scalars=np.array([1.0, 0.0, 0.0]))
    (folder / "zero.csv").symlink_to("/dev/zero")  # endless: reading it would never end
    shutil.copy(TTBAR, folder / "binary.yaml")
    return folder


def _cases() -> dict[str, tuple[list[str], str]]:
    """``id: (argv, part of the error line)``; ``{in}`` is the inputs folder, paths are relative to the
    empty working directory, which holds a read-only folder ``ro`` and a file ``afile``."""
    b, t, cfg = str(BUNDLE), str(TTBAR), str(FIT_CONFIG)
    ro = "is not writable"
    cases: dict[str, tuple[list[str], str]] = {
        # schema matching and the events of an input
        "score-renamed-column": (
            ["score", b, "{in}/renamed.parquet", "-o", "s.parquet"],
            "matches no schema; closest is 'ttbar', but it lacks ['j1_pt'] and has ['jet1_pt'] besides",
        ),
        "encode-renamed-column": (
            ["encode", b, "{in}/renamed.parquet", "-o", "z.parquet"],
            "closest is 'ttbar'",
        ),
        "denoise-renamed-column": (
            ["denoise", b, "{in}/renamed.parquet", "-o", "d.h5"],
            "closest is 'ttbar'",
        ),
        "fit-renamed-column": (
            ["fit", cfg, "--data", "{in}/renamed.parquet", "-o", "b"],
            "closest is 'ttbar'",
        ),
        "score-schema-lacks": (
            ["score", b, "{in}/renamed.parquet", "--schema", "ttbar", "-o", "s.parquet"],
            "lacks columns ['j1_pt'] of schema 'ttbar' (its other columns: ['jet1_pt'])",
        ),
        "score-ragged-hdf5": (
            ["score", b, "{in}/ragged.h5", "-o", "s.parquet"],
            "is ragged: column 'met_phi'",
        ),
        "denoise-ragged-hdf5": (
            ["denoise", b, "{in}/ragged.h5", "-o", "d.parquet"],
            "has 2999 events, 'met' 3000",
        ),
        "fit-refine-quantile": (["fit", "{in}/refine-quantile.yaml", "--data", t, "-o", "b"], "quantile=2"),
        "fit-refine-unknown-key": (
            ["fit", "{in}/refine-key.yaml", "--data", t, "-o", "b"],
            "valid keys are ['enabled', 'quantile', 'max_trees', 'generated']",
        ),
        "fit-refine-weighted": (
            ["fit", "{in}/refine-weighted.yaml", "--data", t, "-o", "b"],
            "cannot refine the selection 'weighted'",
        ),
        "generate-forged-refiner": (
            ["generate", "{in}/forged-refine", "-n", "10", "-o", "g.parquet"],
            "refine.npz",
        ),
        "score-no-events": (["score", b, "{in}/empty.parquet", "-o", "s.parquet"], "holds no events"),
        "encode-no-events": (["encode", b, "{in}/empty.parquet", "-o", "z.parquet"], "holds no events"),
        "denoise-no-events": (["denoise", b, "{in}/empty.parquet", "-o", "d.parquet"], "holds no events"),
        "decode-no-events": (["decode", b, "{in}/empty.parquet", "-o", "d.parquet"], "holds no events"),
        "score-metadata-list": (
            ["score", b, "{in}/listed.parquet", "-o", "s.parquet"],
            "holding a JSON list",
        ),
        "evaluate-metadata-list": (
            ["evaluate", "--generated", t, "--reference", "{in}/listed.parquet", "-o", "r"],
            "holding a JSON list",
        ),
        "score-input-is-a-device": (
            ["score", b, "{in}/zero.csv", "-o", "s.parquet"],
            "is a link to a character device, not an event file",
        ),
        "fit-config-is-binary": (["fit", "{in}/binary.yaml", "--data", t], "is not a text file"),
        "score-schema-is-binary": (
            ["score", b, t, "--schema", "{in}/binary.yaml", "-o", "s.parquet"],
            "is not a text file",
        ),
        # a read-only output folder, in every subcommand that writes
        "simulate-read-only": (["simulate", "zll", "-n", "10", "-o", "ro/z.parquet"], ro),
        "fit-read-only": (["fit", cfg, "--data", t, "-o", "ro/b"], ro),
        "generate-read-only": (["generate", b, "-n", "10", "-o", "ro/g.parquet"], ro),
        "generate-shards-read-only": (["generate", b, "-n", "10", "-o", "ro/ds"], ro),
        "evaluate-read-only": (["evaluate", "--generated", t, "--reference", t, "-o", "ro/report"], ro),
        "run-read-only": (["run", "{in}/run.yaml"], ro),
        "score-read-only": (["score", b, t, "-o", "ro/s.parquet"], ro),
        "encode-read-only": (["encode", b, t, "-o", "ro/z.parquet"], ro),
        "denoise-read-only": (["denoise", b, t, "-o", "ro/d.parquet"], ro),
        "decode-read-only": (["decode", b, t, "-o", "ro/d.parquet"], ro),
        "explore-read-only": (["explore", b, "-o", "ro/plots"], ro),
        "beta-scan-read-only": (["beta-scan", cfg, "--betas", "0.1", "--data", t, "-o", "ro/b.md"], ro),
        # options and paths checked before work
        "fit-negative-seed": (
            ["fit", cfg, "--data", t, "--seed", "-1", "-o", "b"],
            "non-negative integer, found -1",
        ),
        "fit-missing-folder": (["fit", cfg, "--data", t, "-o", "no/b"], "folder 'no' does not exist"),
        "fit-onto-a-file": (
            ["fit", cfg, "--data", t, "-o", "afile"],
            "exists already; choose another name or pass",
        ),
        "fit-overwrite-a-file": (
            ["fit", cfg, "--data", t, "-o", "afile", "--overwrite"],
            "is a file but not an eventgen bundle, and --overwrite replaces only a bundle",
        ),
        "beta-scan-missing-folder": (
            ["beta-scan", cfg, "--betas", "0.1", "--data", t, "-o", "no/b.md"],
            "folder 'no' does not exist",
        ),
        "evaluate-negative-max-events": (
            ["evaluate", "--generated", t, "--reference", t, "--max-events", "-5", "-o", "r"],
            "--max-events must be at least 100, found -5",
        ),
        "evaluate-ten-events": (
            ["evaluate", "--generated", "{in}/ten.parquet", "--reference", t, "-o", "r"],
            "has 10 events; evaluation needs at least 100",
        ),
        "evaluate-negative-seed": (
            ["evaluate", "--generated", t, "--reference", t, "--seed", "-1", "-o", "r"],
            "seed must be a non-negative integer, found -1",
        ),
        "run-no-workers": (
            ["run", str(RUN_CONFIG), "--workdir", "w", "--workers", "0"],
            "workers must be >= 1",
        ),
        "generate-unknown-compression": (
            ["generate", b, "-n", "10", "-o", "g.parquet", "--compression", "lzma9"],
            "Parquet output takes compression zstd, snappy, gzip, brotli, lz4 or none, not 'lzma9'",
        ),
        "generate-hdf5-compression": (
            ["generate", b, "-n", "10", "-o", "g.h5", "--compression", "zstd"],
            "HDF5 output takes compression gzip, lzf or none, not 'zstd'",
        ),
        "generate-format-against-suffix": (
            ["generate", b, "-n", "10", "-o", "x.h5", "--format", "parquet"],
            "has the suffix of HDF5 files but the format is parquet; name it x.parquet",
        ),
        "run-workdir-is-a-file": (
            ["run", str(RUN_CONFIG), "--workdir", "afile"],
            "'afile' is a file, not a folder",
        ),
        "generate-gamma-nan": (
            ["generate", b, "-n", "10", "-o", "g.parquet", "--gamma", "nan"],
            "gamma=nan is invalid",
        ),
        "generate-refine-quantile-without-refiner": (
            ["generate", b, "-n", "10", "-o", "g.parquet", "--refine-quantile", "0.5"],
            "the bundle has no refiner, so refine_quantile does not apply; drop it",
        ),
        "generate-refine-quantile-out-of-range": (
            ["generate", b, "-n", "10", "-o", "g.parquet", "--refine-quantile", "1.5"],
            "refine_quantile=1.5 is invalid",
        ),
        "generate-weighted-without-weights": (
            ["generate", "{in}/unweighted", "-n", "10", "-o", "g.parquet", "--selection", "weighted"],
            "has no event weights, so --selection weighted has nothing to draw by; fit it with a weight column",
        ),
        "generate-model-links-to-text": (
            ["generate", "{in}/linked", "-n", "10", "-o", "g.parquet"],
            "model.npz' is corrupt (not an .npz archive): it is a link to",
        ),
        "fit-too-few-events": (["fit", cfg, "--data", "{in}/five.parquet", "-o", "b"], "too few to train on"),
    }
    inside = "{in}/bundle"
    for name, out in (("generate", "x.parquet"), ("score", "s.parquet"), ("encode", "z.parquet")):
        extra = ["-n", "10"] if name == "generate" else [t]
        cases[f"{name}-into-the-bundle"] = (
            [name, inside, *extra, "-o", f"{inside}/{out}"],
            "is inside the bundle",
        )
    cases["denoise-into-the-bundle"] = (
        ["denoise", inside, t, "-o", f"{inside}/d.h5"],
        "is inside the bundle",
    )
    cases["decode-into-the-bundle"] = (["decode", inside, t, "-o", f"{inside}/d.h5"], "is inside the bundle")
    cases["fit-into-a-bundle"] = (["fit", cfg, "--data", t, "-o", f"{inside}/b"], "is inside the bundle")
    cases["explore-into-the-bundle"] = (["explore", inside, "-o", inside], "is inside the bundle")
    return cases


CASES = _cases()
# Cases that import torch (a fit or run config read, a bundle loaded): seconds each on a busy machine.
SLOW = {key for key, (argv, _) in CASES.items() if argv[0] in ("fit", "run")} | {
    "generate-gamma-nan",
    "generate-weighted-without-weights",
    "generate-model-links-to-text",
}


def _writing_subcommands() -> set[str]:
    """The subcommands with an output (``-o`` or a work directory): each needs a read-only case above."""
    parser = build_parser()
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name
        for name, sub in action.choices.items()
        if any(set(a.option_strings) & {"-o", "--workdir"} for a in sub._actions)
    }


def test_every_writing_subcommand_has_a_read_only_case() -> None:
    covered = {argv[0] for key, (argv, _) in CASES.items() if key.endswith("-read-only")}
    assert _writing_subcommands() <= covered


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _without_dac_override() -> list[str]:
    """A prefix that runs a command without root's power to write into read-only folders."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("as root, a read-only folder needs setpriv to drop CAP_DAC_OVERRIDE")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.parametrize(
    "case", [pytest.param(key, marks=pytest.mark.slow) if key in SLOW else key for key in CASES]
)
def test_refused_in_one_line_leaving_nothing(case: str, inputs: Path, tmp_path: Path) -> None:
    argv, expected = CASES[case]
    argv = [arg.replace("{in}", str(inputs)) for arg in argv]
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    (tmp_path / "afile").write_text("not a bundle\n")
    before, inputs_before = _tree(tmp_path), _tree(inputs)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [*_without_dac_override(), sys.executable, "-m", "eventgen.cli", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 2, done.stderr  # a negative code would be a signal (a crash)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"eventgen {argv[0]}: error: ") and expected in lines[0], lines[0]
    assert _tree(tmp_path) == before and _tree(inputs) == inputs_before  # nothing new, nothing left behind
    assert (tmp_path / "afile").read_text() == "not a bundle\n"


@pytest.mark.slow
def test_schema_option_overrides_detection(inputs: Path, tmp_path: Path) -> None:
    """``--schema zll`` reads only the zll columns of the renamed file, which the tt̄ bundle then scores."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["score", str(BUNDLE), str(inputs / "renamed.parquet"), "--schema", "zll", "-o", "s.parquet", "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "eventgen.cli", *argv], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert len(read_events(tmp_path / "s.parquet")) == 3000


def test_detection_is_exact(inputs: Path, tmp_path: Path) -> None:
    """A file without metadata is read in the built-in schema of exactly its columns, in any order;
    a table that resembles no built-in schema keeps its own columns."""
    table = read_events(inputs / "plain.parquet")
    assert table.schema.name == "ttbar" and len(table) == 3000
    reordered = pq.read_table(inputs / "plain.parquet")
    reordered = reordered.select(reordered.column_names[::-1])
    pq.write_table(reordered, tmp_path / "reordered.parquet")
    np.testing.assert_array_equal(read_events(tmp_path / "reordered.parquet").data, table.data)
    own = pa.table({"met": np.ones(3, np.float32), "x": np.zeros(3, np.float32)})
    pq.write_table(own, tmp_path / "own.parquet")
    assert read_events(tmp_path / "own.parquet").schema.names == ["met", "x"]
