"""Client generators accept every served spec (issue 21): ``GET /<provider>/openapi.json`` is what users feed them.

- openapi-python-client (pinned in ``clients/python/requirements.txt``, installed into its own venv in the cache
  folder: its typer<0.28 cannot share the project's venv) generates a client from each served spec, and
  ``clients/python/generated_flows.py`` completes one documented flow per provider with it against a live emulator
  in strict mode (every answer the generated client got was checked against the spec).
- openapi-typescript (pinned in ``clients/node/package.json``, installed like the official clients) generates types
  from each served spec, naming every path and operation.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.providers import PROVIDERS
from emulator.settings import Settings
from emulator.testing import ServedEmulator, serve_in_thread
from tests.helpers import clients_cache

GENERATORS = Path(__file__).resolve().parents[1] / "clients" / "python"
REQUIREMENTS = GENERATORS / "requirements.txt"
FLOWS = GENERATORS / "generated_flows.py"


@pytest.fixture(scope="session")
def python_generator() -> Path:
    """A venv with the pinned openapi-python-client, in the cache (once per version of the requirements file)."""
    target = clients_cache() / f"python-{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]}"
    if (target / ".installed").exists():
        return target
    scratch = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(scratch)], check=True, timeout=120)
    done = subprocess.run(
        [
            str(scratch / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"pip install -r {REQUIREMENTS.name} failed:\n{done.stdout}\n{done.stderr}"
    (scratch / ".installed").write_text("ok\n")
    try:
        scratch.rename(target)  # a venv's scripts name its path: they are run through bin/python, never directly
    except OSError:  # another run installed it first
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def served() -> Iterator[ServedEmulator]:
    server = serve_in_thread(Settings(strict=True))
    yield server
    server.stop()


def served_spec(server: ServedEmulator, provider: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    r = httpx.get(f"{server.url}/{provider}/openapi.json", timeout=10)
    assert r.status_code == 200
    path = folder / f"{provider}.json"
    path.write_bytes(r.content)
    return path, r.json()


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_openapi_python_client_generates_a_client_that_completes_a_documented_flow(
    provider: str, served: ServedEmulator, python_generator: Path, tmp_path: Path
) -> None:
    spec_file, spec = served_spec(served, provider, tmp_path)
    package = tmp_path / "gen" / f"{provider}_client"
    python = str(python_generator / "bin" / "python")
    env = {**os.environ, "PATH": f"{python_generator / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = subprocess.run(
        [
            python,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec_file),
            "--output-path",
            str(package),
            "--meta",
            "none",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert generated.returncode == 0 and (package / "client.py").is_file(), generated.stdout + generated.stderr
    assert "Traceback" not in generated.stdout + generated.stderr

    key = PROVIDERS[provider].keys.example
    flow = subprocess.run(
        [python, str(FLOWS), provider, spec["servers"][0]["url"], key, str(tmp_path / "gen")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert flow.returncode == 0, flow.stdout + flow.stderr
    report = json.loads(flow.stdout)
    assert report["steps"] and all(200 <= status < 300 for _, status in report["steps"]), report
    if provider == "posteverywhere":
        assert [s for s, _ in report["steps"]] == ["uploadMedia", "POST upload_url", "completeMediaUpload", "getMedia"]
        assert report["status"] == "ready" and report["size"] == 69
    elif provider == "segmentflow":
        assert [s for s, _ in report["steps"]] == ["createAssetUploadUrl", "PUT uploadUrl", "createAsset", "getAsset"]
        assert report["size"] == 69 and report["filename"] == "pixel.png"
    elif provider == "autoposting":
        assert report["same_bytes"] is True
    else:
        assert report["current_size"] == 69 and re.fullmatch(r"[0-9a-f]{24}", report["image"])


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_openapi_typescript_generates_types_for_every_path_and_operation(
    provider: str, served: ServedEmulator, node_clients: Path, tmp_path: Path
) -> None:
    spec_file, spec = served_spec(served, provider, tmp_path)
    cli = node_clients / "node_modules" / "openapi-typescript" / "bin" / "cli.js"
    out = tmp_path / f"{provider}.d.ts"
    done = subprocess.run(
        ["node", str(cli), str(spec_file), "-o", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    types = out.read_text()
    for path in spec["paths"]:
        assert f'"{path}": {{' in types, path
    for op_id, *_ in PROVIDERS[provider].specs.operations():
        assert re.search(rf"^\s+{re.escape(op_id)}: {{", types, re.M), op_id
