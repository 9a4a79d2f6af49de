"""The pytest plugin, used the way a user's project uses it: a separate test project, run in a subprocess,
that gets the fixtures only from the installed package's pytest11 entry point."""

from __future__ import annotations

USER_TESTS = """
import httpx
import pytest


def test_live_emulator_flow(emulator, posteverywhere_base_url, posteverywhere_key):
    assert posteverywhere_base_url == emulator.url + "/posteverywhere/api/v1"
    headers = {"Authorization": f"Bearer {posteverywhere_key}"}
    r = httpx.post(f"{posteverywhere_base_url}/media/upload", headers=headers,
                   json={"filename": "a.pdf", "content_type": "application/pdf", "size": 9})
    assert r.status_code == 201
    up = r.json()["data"]
    assert httpx.put(up["upload_url"], content=b"%PDF-1.4\\n", headers=up["upload_method"]["headers"]).status_code == 200
    done = httpx.post(f"{posteverywhere_base_url}/media/{up['media_id']}/complete", headers=headers)
    assert done.json()["data"]["status"] == "ready"


def test_each_test_starts_from_a_reset(emulator_control):
    assert emulator_control.journal() == []


@pytest.mark.emulator(clock="frozen", at="2030-01-01T00:00:00Z")
def test_frozen_clock_and_expiry(emulator, emulator_control, posteverywhere_base_url, posteverywhere_key):
    assert emulator_control.clock()["now"] == "2030-01-01T00:00:00.000Z"
    headers = {"Authorization": f"Bearer {posteverywhere_key}"}
    up = httpx.post(f"{posteverywhere_base_url}/media/upload", headers=headers,
                    json={"filename": "a.pdf", "content_type": "application/pdf", "size": 9}).json()["data"]
    emulator_control.advance(3601)
    r = httpx.put(up["upload_url"], content=b"%PDF-1.4\\n", headers=up["upload_method"]["headers"])
    assert r.status_code == 403 and "Request has expired" in r.text


def test_faults_and_journal(emulator_control, posteverywhere_base_url, posteverywhere_key):
    emulator_control.add_fault("status", provider="posteverywhere", status=429, retry_after=3, times=1)
    headers = {"Authorization": f"Bearer {posteverywhere_key}"}
    body = {"filename": "a.png", "content_type": "image/png", "size": 3}
    first = httpx.post(f"{posteverywhere_base_url}/media/upload", headers=headers, json=body)
    assert first.status_code == 429 and first.headers["retry-after"] == "3"
    assert [e.status for e in emulator_control.journal(provider="posteverywhere")] == [429]


@pytest.mark.anyio
async def test_in_process_transport(emulator_transport):
    async with httpx.AsyncClient(transport=emulator_transport, base_url="http://emulator") as client:
        r = await client.get("/_emulator/health")
    assert r.status_code == 200
"""


def test_plugin_works_in_a_fresh_project(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=5)
