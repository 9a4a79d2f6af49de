"""Lint, format and types, enforced by the default test command: ruff (the rules in pyproject.toml), ruff's
formatter and mypy (``check_untyped_defs``) over the whole tree, each run from this interpreter's environment,
where the test extra pins their versions, so a finding fails here exactly as it fails in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(*args: str, timeout: float) -> str:
    """Run ``python -m <args>`` at the repository root; fail with the tool's whole output unless it exits 0."""
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"`{' '.join(args)}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_ruff_finds_nothing():
    out = _tool("ruff", "check", "--no-fix", ".", timeout=60)
    assert "All checks passed!" in out


def test_ruff_format_would_change_nothing():
    out = _tool("ruff", "format", "--check", ".", timeout=60)
    assert "already formatted" in out


@pytest.mark.timeout(300)  # a first run (no .mypy_cache yet) takes ~10 s on an idle core; later runs under 1 s
def test_mypy_finds_no_type_errors():
    out = _tool("mypy", timeout=280)
    assert out.startswith("Success: no issues found"), out
