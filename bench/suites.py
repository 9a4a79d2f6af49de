"""Wall time of the contract suite: ``upload-emulator contract --provider all`` once, with how many cases it ran.

The count comes from the run itself: its JUnit XML (``--junit``: one testcase per provider, suite and check, each
saying how many times the check passed and failed) and the ``cases: schemathesis N, flows N, documented N`` line
of each provider in its summary table. When a CLI lacks the ``contract`` command, the per-provider test files
(``pytest tests/test_<provider>_*.py``) stand in, one run per provider, and the table says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


ALL = ["contract", "--provider", "all"]
CHECKS = re.compile(r"(\d+) passed, (\d+) failed")
CASES = re.compile(r"cases: ((?:[a-z]+ \d+(?:, )?)+)")


def parse_junit(text: str) -> list[dict[str, Any]]:
    """Per provider (``<testsuite>``): its time, testcases, checks run (passed + failed, from each testcase's
    ``system-out``) and failures, as the contract command's JUnit XML records them."""
    out = []
    for suite in ET.fromstring(text).iter("testsuite"):
        cases = suite.findall("testcase")
        checks = 0
        for case in cases:
            found = CHECKS.search(case.findtext("system-out") or "")
            checks += int(found[1]) + int(found[2]) if found else 0
        out.append(
            {
                "provider": suite.get("name", "?").rsplit(".", 1)[-1],
                "seconds": float(suite.get("time", "nan")),
                "testcases": len(cases),
                "checks": checks,
                "failures": int(suite.get("failures", "0")) + int(suite.get("errors", "0")),
            }
        )
    return out


def parse_cases(output: str) -> int | None:
    """The cases the run generated or replayed: the sum of every provider's ``cases: …`` line, if it printed any."""
    found = CASES.findall(output)
    return sum(int(n) for line in found for n in re.findall(r"\d+", line)) if found else None


def run_all(work: Path) -> dict[str, Any]:
    """Time ``upload-emulator contract --provider all --junit FILE`` (its defaults otherwise) and count its cases."""
    junit, log = work / "contract-all.xml", work / "contract-all.log"
    cmd = [*emulator_exe(), *ALL, "--junit", str(junit)]
    start = time.perf_counter()
    # a wide console, so the summary table does not wrap the "cases:" lines
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=clean_env(COLUMNS="200"))
    seconds = time.perf_counter() - start
    work.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    providers = parse_junit(junit.read_text()) if junit.exists() else []
    return {
        "kind": "contract-all",
        "command": cmd,
        "seconds": seconds,
        "returncode": done.returncode,
        "cases": parse_cases(done.stdout),
        "testcases": sum(p["testcases"] for p in providers),
        "checks": sum(p["checks"] for p in providers),
        "providers": providers,
    }
