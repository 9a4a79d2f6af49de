"""Wall time of the contract suite per provider.

``upload-emulator contract --provider NAME`` is the suite the issue means; until that command exists, the
per-provider test files (``pytest tests/test_<provider>_*.py``) stand in and the table says which one ran.
Switching is ``CONTRACT`` below: the runner asks the CLI whether ``contract`` exists and uses it when it does.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.peers import clean_env, emulator_exe
from emulator.providers import PROVIDERS as REGISTRY

PROVIDERS = tuple(REGISTRY)  # every registered provider, in the registry's order
CONTRACT = ["contract", "--provider", "{provider}"]  # appended to the upload-emulator executable
ROOT = Path(__file__).resolve().parent.parent


def contract_available() -> bool:
    done = subprocess.run([*emulator_exe(), CONTRACT[0], "--help"], capture_output=True, env=clean_env())
    return done.returncode == 0


def command(provider: str, contract: bool) -> list[str]:
    if contract:
        return [*emulator_exe(), *(part.format(provider=provider) for part in CONTRACT)]
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob(f"test_{provider}_*.py"))
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]


@dataclass(frozen=True)
class SuiteRun:
    provider: str
    command: list[str]
    seconds: float
    returncode: int
    summary: str  # the last line of its output


def run(provider: str, contract: bool, log: Path) -> SuiteRun:
    cmd = command(provider, contract)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=clean_env())
    seconds = time.perf_counter() - start
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return SuiteRun(provider, cmd, seconds, done.returncode, lines[-1] if lines else "")
