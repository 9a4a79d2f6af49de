"""A plain schemathesis CLI run against each served spec ends with 0 failures (issue 21).

``st run http://127.0.0.1:PORT/<provider>/openapi.json -H '<auth header with the dev key>' --checks all`` is run
from the repository root, as a user would, so it reads the top-level ``schemathesis.toml``; the only flags added
bound the run (``--max-examples``), fix its seed (a failure reproduces) and allow a slow answer on a loaded machine
(``--request-timeout``; schemathesis' default of 10 s counts a slower answer as a failure). The
emulator is a live uvicorn on a loopback port in strict mode (every answer also checked against its spec), with
generous rate limits so that the run reaches the handlers instead of collecting 429s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contracts.openapi_suite import ACCEPTED, STATE_DEPENDENT
from contracts.target import generous_limits
from emulator.providers import PROVIDERS
from emulator.settings import Settings
from emulator.testing import ServedEmulator, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "schemathesis.toml"
MAX_EXAMPLES = 10
SEED = 21


@pytest.fixture(scope="module")
def served() -> Iterator[ServedEmulator]:
    server = serve_in_thread(Settings(strict=True, rate_limits=generous_limits()))
    yield server
    server.stop()


def auth_header(provider: str, spec: dict) -> str:
    """The dev key, given the way the spec's first security scheme says."""
    key = PROVIDERS[provider].keys.example
    (first, *_), *_ = [list(requirement) for requirement in spec["security"]]
    scheme = spec["components"]["securitySchemes"][first]
    if scheme["type"] == "http":
        return f"Authorization: Bearer {key}"
    return f"{scheme['name']}: {key}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_st_run_from_the_repository_root_ends_with_no_failure(
    provider: str, served: ServedEmulator, tmp_path: Path
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis (a dependency) installs the st command"
    url = f"{served.url}/{provider}/openapi.json"
    spec = httpx.get(url, timeout=10).json()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}  # no user-level config or hooks
    done = subprocess.run(
        [
            st,
            "run",
            url,
            "-H",
            auth_header(provider, spec),
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--request-timeout",
            "60",
            "--no-color",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    summary = done.stdout[-3000:]
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-2000:]
    assert "Failures:" not in done.stdout and " failure" not in summary.splitlines()[-1], summary
    assert "generated" in summary, summary  # it really ran cases


def test_schemathesis_toml_says_what_the_contract_suite_accepts():
    """The same statuses per operation as contracts/openapi_suite.py's STATE_DEPENDENT, each provider by spec title."""
    projects = {project["title"]: project for project in tomllib.loads(CONFIG.read_text())["project"]}
    assert set(projects) == {PROVIDERS[name].specs.effective["info"]["title"] for name in STATE_DEPENDENT}
    for name, operations in STATE_DEPENDENT.items():
        project = projects[PROVIDERS[name].specs.effective["info"]["title"]]
        configured = {
            entry["include-operation-id"]: entry["checks"]["positive_data_acceptance"]["expected-statuses"]
            for entry in project["operations"]
        }
        expected = {
            op_id: ACCEPTED + sorted({status for group in reasons.values() for status in group})
            for op_id, reasons in operations.items()
        }
        assert configured == expected, name
        assert set(configured) <= {op_id for op_id, *_ in PROVIDERS[name].specs.operations()}
