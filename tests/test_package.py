"""Tests of the package's public names: ``from eventgen import fit`` is the function, always."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
