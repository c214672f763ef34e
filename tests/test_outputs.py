"""Outputs under hostile conditions: runs that cannot fit, damaged and forged datasets, two writers
of one path, killed writers. Real processes on the committed fixture bundle, real files.

Every refusal is one line on stderr, exit code 2, no signal, no traceback, and leaves the
folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from eventgen.bundle import Bundle
from eventgen.cli import main
from eventgen.dataset import MANIFEST
from eventgen.errors import OutputError
from eventgen.generation import EventSource
from eventgen.io import EventWriter, read_events
from eventgen.outputs import OutputClaim, lock_path
from eventgen.schema import get_schema

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "tests" / "data" / "bundle"
CODE = "import sys; from eventgen.cli import main; sys.exit(main())"
HUGE = str(10**15)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-c", CODE, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(*args), capture_output=True, text=True, cwd=cwd, env=_env(), timeout=300)


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(*args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for ``proc``; its exit code and stderr."""
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def main_cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI's ``main`` in this process (as a result like :func:`run_cli`'s)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` (hidden ones too), with the sha256 of each file."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def assert_refused(result: subprocess.CompletedProcess[str], command: str, match: str) -> None:
    """Exit code 2 (no signal), and one line on stderr naming the command, without a traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"eventgen {command}: error: "), result.stderr
    assert match in lines[0], lines[0]


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 240
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: {finish(proc)}"
        assert time.monotonic() < deadline, f"no {what} within 240 s"
        time.sleep(0.01)


# ----------------------------------------------------------------------------- runs that cannot fit


FIT_CASES: list[tuple[list[str], str]] = [
    (
        ["generate", str(BUNDLE), "-n", HUGE, "-o", "x.parquet"],
        "cannot fit: the output would take at least",
    ),
    (["generate", str(BUNDLE), "-n", HUGE, "-o", "x.h5", "--compression", "none"], "cannot fit"),
    (["generate", str(BUNDLE), "-n", HUGE, "-o", "ds"], "shards, more than the 100000 a run may have"),
    (
        ["generate", str(BUNDLE), "-n", HUGE, "--shard-size", "1000", "-o", "ds"],
        "make 1000000000000 shards, more than the 100000",
    ),
    (["generate", str(BUNDLE), "-n", HUGE, "--shard-size", str(10**11), "-o", "ds"], "cannot fit"),
    (["generate", str(BUNDLE), "-n", HUGE, "-o", "ds", "--resume"], "shards, more than the 100000"),
    (["simulate", "zll", "-n", HUGE, "-o", "z.parquet"], "do not fit in memory"),
    (["simulate", "ttbar", "-n", HUGE, "-o", "t.h5"], "do not fit in memory"),
]


@pytest.mark.parametrize(("argv", "match"), FIT_CASES)
def test_runs_that_cannot_fit_are_refused_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    match: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(main_cli(capsys, *argv), argv[0], match)
    assert snapshot(tmp_path) == {}


@pytest.mark.parametrize("argv", [FIT_CASES[0][0], FIT_CASES[-2][0]], ids=["generate", "simulate"])
def test_runs_that_cannot_fit_end_without_a_signal(tmp_path: Path, argv: list[str]) -> None:
    result = run_cli(*argv, cwd=tmp_path)
    assert_refused(result, argv[0], "fit")
    assert "Traceback" not in result.stderr and snapshot(tmp_path) == {}


def test_events_stream_in_memory_independent_of_the_run_length() -> None:
    source = EventSource(Bundle.load(BUNDLE), None, seed=1, device="cpu")
    batches = source.events(0, 10**15, batch_size=4096)  # lazily: no list of 10^11 batches
    first = next(batches)
    assert first.shape == (4096, len(source.schema))
    np.testing.assert_array_equal(first[:100], next(source.events(0, 100, batch_size=100)))


# ----------------------------------------------------------------------------- resume verifies


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished dataset of three shards made by ``eventgen generate``."""
    out = tmp_path_factory.mktemp("ds") / "ds"
    result = run_cli("generate", str(BUNDLE), "-n", "25000", "--shard-size", "10000", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    return out


def _resume_args(out: Path) -> list[str]:
    return ["generate", str(BUNDLE), "-n", "25000", "--shard-size", "10000", "-o", str(out), "--resume"]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _replace_by_another_shard(path: Path) -> None:
    shutil.copy(path.with_name("part-00002.parquet"), path)


@pytest.mark.parametrize(
    "damages",
    [
        {1: Path.unlink},
        {0: _truncate},
        {2: _flip_a_byte},
        {0: Path.unlink, 1: _replace_by_another_shard, 2: _truncate},
    ],
    ids=["deleted", "truncated", "changed", "all-three"],
)
def test_resume_verifies_every_shard_and_writes_bad_ones_again(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damages: dict[int, Callable[[Path], object]],
) -> None:
    out = tmp_path / "ds"
    shutil.copytree(dataset, out)
    for k, damage in damages.items():
        damage(out / f"part-{k:05d}.parquet")
    result = main_cli(capsys, *_resume_args(out))
    assert result.returncode == 0, result.stderr
    assert f"{len(damages)} finished shards failed verification and were written again" in result.stderr
    for k in damages:
        assert f"shard part-{k:05d}.parquet " in result.stderr
    assert snapshot(out) == snapshot(dataset)  # bit-identical to what the first run wrote
    assert snapshot(tmp_path) == {f"ds/{name}": h for name, h in snapshot(dataset).items()} | {"ds": "dir"}
    again = main_cli(capsys, *_resume_args(out))
    assert again.returncode == 0 and "written again" not in again.stderr
    assert "(0 new" in again.stderr


def _manifest(dataset: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((dataset / MANIFEST).read_text())
    return data


def _with_shard(dataset: Path, k: int, **changes: object) -> str:
    data = _manifest(dataset)
    shards = data["shards"]
    assert isinstance(shards, list)
    shards[k] = {**shards[k], **changes}
    return json.dumps(data)


def _garbage(dataset: Path) -> dict[str, str | bytes]:
    """Forged manifests for the dataset, by the way they are wrong."""
    data = _manifest(dataset)
    shards = data["shards"]
    assert isinstance(shards, list)
    return {
        "not json": "{not json",
        "binary": bytes(range(256)),
        "empty": "",
        "a list": "[1, 2, 3]",
        "a string": '"eventgen-dataset"',
        "deeply nested": "[" * 100_000 + "]" * 100_000,
        "no format": json.dumps({k: v for k, v in data.items() if k != "format"}),
        "shards not a list": json.dumps({**data, "shards": "part-00000.parquet"}),
        "run not an object": json.dumps({**data, "run": [1]}),
        "shard a list": json.dumps({**data, "shards": [[0, "part-00000.parquet", 10000, "0" * 64]]}),
        "index a string": _with_shard(dataset, 0, index="0"),
        "index a bool": _with_shard(dataset, 1, index=True),
        "index negative": _with_shard(dataset, 0, index=-1),
        "index past the plan": _with_shard(dataset, 2, index=7),
        "count a string": _with_shard(dataset, 0, n_events="10000"),
        "count off the plan": _with_shard(dataset, 2, n_events=10000),
        "size a float": _with_shard(dataset, 0, size=1.5),
        "sha256 short": _with_shard(dataset, 0, sha256="abc"),
        "foreign file": _with_shard(dataset, 0, file="../../etc/passwd"),
        "extra key": _with_shard(dataset, 0, command="rm -rf /"),
        "listed twice": json.dumps({**data, "shards": [shards[0], shards[0]]}),
    }


GARBAGE = [
    "not json",
    "binary",
    "empty",
    "a list",
    "a string",
    "deeply nested",
    "no format",
    "shards not a list",
    "run not an object",
    "shard a list",
    "index a string",
    "index a bool",
    "index negative",
    "index past the plan",
    "count a string",
    "count off the plan",
    "size a float",
    "sha256 short",
    "foreign file",
    "extra key",
    "listed twice",
]


def _forge(dataset: Path, folder: Path, case: str) -> Path:
    """A copy of the dataset in ``folder`` with the forged manifest ``case`` (and a killed writer's file)."""
    out = folder / "ds"
    shutil.copytree(dataset, out)
    (out / ".part-00001.parquet.123.tmp").write_bytes(b"half a shard")
    content = _garbage(dataset)[case]
    if isinstance(content, bytes):
        (out / MANIFEST).write_bytes(content)
    else:
        (out / MANIFEST).write_text(content)
    return out


@pytest.mark.parametrize("case", GARBAGE)
def test_a_forged_manifest_is_refused_and_nothing_is_touched(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    out = _forge(dataset, tmp_path, case)
    before = snapshot(tmp_path)
    result = main_cli(capsys, *_resume_args(out))
    assert_refused(result, "generate", "is not a readable eventgen manifest; pass --overwrite")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["deeply nested", "count off the plan"])
def test_a_forged_manifest_ends_without_a_signal(dataset: Path, tmp_path: Path, case: str) -> None:
    out = _forge(dataset, tmp_path, case)
    before = snapshot(tmp_path)
    result = run_cli(*_resume_args(out))
    assert_refused(result, "generate", "is not a readable eventgen manifest; pass --overwrite")
    assert "Traceback" not in result.stderr and snapshot(tmp_path) == before


def test_garbage_cases_are_all_listed(dataset: Path) -> None:
    assert sorted(_garbage(dataset)) == sorted(GARBAGE)


@pytest.mark.parametrize("kind", ["a folder", "a link to a device"])
def test_a_manifest_that_is_not_a_file_is_refused(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    out = tmp_path / "ds"
    shutil.copytree(dataset, out)
    (out / MANIFEST).unlink()
    if kind == "a folder":
        (out / MANIFEST).mkdir()
    else:
        (out / MANIFEST).symlink_to("/dev/zero")
    before = snapshot(tmp_path)  # a link to a device is not a file: it is not read
    assert_refused(main_cli(capsys, *_resume_args(out)), "generate", "not a readable eventgen manifest")
    assert snapshot(tmp_path) == before


def test_resume_without_a_manifest_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    before = snapshot(tmp_path)
    result = main_cli(capsys, *_resume_args(out))
    assert_refused(result, "generate", "it has no _manifest.json, so no eventgen run")
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- one writer per output


def test_a_claim_is_exclusive_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    with OutputClaim(target) as first:
        assert lock_path(target).read_text() == f"{os.getpid()}\n"
        with pytest.raises(OutputError, match=rf"is being written by another process \(pid {os.getpid()}\)"):
            OutputClaim(target).acquire()
        assert first.held
    assert list(tmp_path.iterdir()) == []
    with OutputClaim(target):  # free again
        pass
    with pytest.raises(OutputError, match="cannot claim output"):
        OutputClaim(tmp_path / "missing" / "x.parquet").acquire()


def test_a_failed_writer_leaves_no_file(tmp_path: Path) -> None:
    schema = get_schema("zll")
    with pytest.raises(OutputError, match="cannot write .*Unsupported compression"):
        EventWriter(tmp_path / "x.parquet", schema, compression="lzma9")
    assert list(tmp_path.iterdir()) == []


def test_compression_failure_from_the_cli_leaves_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.parquet")
    result = main_cli(capsys, "generate", str(BUNDLE), "-n", "100", "-o", out, "--compression", "lzma9")
    assert_refused(result, "generate", "lzma9")
    assert snapshot(tmp_path) == {}


def _stopped_while_writing(proc: subprocess.Popen[str], lock: Path, writing: Callable[[], bool]) -> None:
    """Stop ``proc`` once it holds ``lock`` and ``writing()`` is true."""
    wait_for(lambda: lock.exists() and writing(), proc, "the first run started writing")
    proc.send_signal(signal.SIGSTOP)


@pytest.mark.slow
def test_a_second_writer_of_one_file_is_refused_and_the_first_completes(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    args = ["generate", str(BUNDLE), "-n", "60000", "-o", str(out), "--seed", "3", "--threads", "1", "-q"]
    first = start_cli(*args)
    try:
        _stopped_while_writing(first, lock_path(out), lambda: any(tmp_path.glob(".x.parquet.*.tmp")))
        during = snapshot(tmp_path)
        second = run_cli(*args)
        assert snapshot(tmp_path) == during  # the second run touched nothing of the first's
    finally:
        first.send_signal(signal.SIGCONT)
    assert_refused(second, "generate", "is being written by another process (pid")
    assert finish(first) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]
    assert len(read_events(out)) == 60_000
    again = run_cli(*args)
    assert_refused(again, "generate", "exists already")


@pytest.mark.slow
def test_a_resume_of_a_running_dataset_is_refused_and_the_run_completes(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["generate", str(BUNDLE), "-n", "40000", "--shard-size", "20000", "-o", str(out), "--threads", "1"]
    first = start_cli(*args, "-q")
    try:
        _stopped_while_writing(first, lock_path(out), lambda: any(out.glob(".part-*.tmp")))
        during = snapshot(tmp_path)
        second = run_cli(*args, "--resume")
        third = run_cli(*args, "--overwrite")
        assert snapshot(tmp_path) == during
    finally:
        first.send_signal(signal.SIGCONT)
    assert_refused(second, "generate", "is being written by another process")
    assert_refused(third, "generate", "is being written by another process")
    assert finish(first) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    manifest = _manifest(out)
    shards = manifest["shards"]
    assert isinstance(shards, list) and [s["n_events"] for s in shards] == [20000, 20000]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, *(s["file"] for s in shards)]
    verified = run_cli(*args, "--resume")
    assert verified.returncode == 0 and "(0 new" in verified.stderr and "written again" not in verified.stderr


@pytest.mark.slow
def test_a_killed_writer_neither_blocks_nor_leaves_files_to_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    args = ["generate", str(BUNDLE), "-o", str(out), "--seed", "2", "--threads", "1", "-q"]
    killed = start_cli(*args, "-n", "2000000")
    wait_for(
        lambda: lock_path(out).exists() and any(tmp_path.glob(".x.h5.*.tmp")), killed, "it started writing"
    )
    killed.kill()
    assert finish(killed)[0] == -signal.SIGKILL
    assert lock_path(out).exists() and any(tmp_path.glob(".x.h5.*.tmp"))  # what SIGKILL leaves
    rerun = run_cli(*args, "-n", "5000")
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]
    assert len(read_events(out)) == 5000
