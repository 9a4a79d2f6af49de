"""Abandoned uploads are reclaimed after ``--abandoned-after`` virtual seconds (24 h by default), bytes included, as an
S3 lifecycle rule's AbortIncompleteMultipartUpload does; completed uploads never are. And a start removes the
scratch directories (no ``--data-dir``) that killed emulators left in the temp dir, never a live one's.

Each provider's unfinished upload is started through HTTP, the clock advanced through the control plane, and then
the bytes are checked gone from disk and the provider's own answer for an expired upload checked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from emulator import Settings, create_app
from emulator.runtime import Runtime
from tests.conftest import FROZEN_AT
from tests.test_reliability_support import (
    AP,
    GENEROUS_LIMITS,
    PE,
    SF,
    XF,
    ap_clip,
    auth,
    payload,
    pe_video,
    sf_asset,
    stored_files,
    url_path,
    verify,
    xf_chunked_video,
)

pytestmark = pytest.mark.anyio
DAY = 86400


@asynccontextmanager
async def emulator(data_dir: Path, **settings: object) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_app(Settings(strict=True, seed=3, data_dir=data_dir, rate_limits=GENEROUS_LIMITS, **settings))  # type: ignore[arg-type]
    runtime: Runtime = app.state.runtime
    runtime.clock.freeze(FROZEN_AT)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            yield client, runtime
    finally:
        runtime.close()


async def advance(c: httpx.AsyncClient, seconds: float) -> None:
    r = await c.post("/_emulator/clock/advance", json={"seconds": seconds})
    assert r.status_code == 200, r.text


async def start_everything(c: httpx.AsyncClient) -> dict[str, dict]:
    """One unfinished upload per provider, each with bytes stored: what a client that gave up leaves behind."""
    data = payload("mp4", 30_000, 1)
    ap = (
        await c.post(
            f"{AP}/clips/upload/init",
            headers=auth("autoposting", 0),
            json={
                "brandId": "b",
                "title": "t",
                "fileName": "c.mp4",
                "fileSize": 6 * 1024 * 1024,
                "mimeType": "video/mp4",
            },
        )
    ).json()["data"]
    ap_ids = {"clipId": ap["clipId"], "uploadId": ap["uploadId"], "key": ap["key"]}
    r = await c.post(f"{AP}/clips/upload/presign", headers=auth("autoposting", 0), json={**ap_ids, "partNumbers": [1]})
    part_url = url_path(r.json()["data"]["presignedUrls"][0]["url"])
    assert (await c.put(part_url, content=data)).status_code == 200
    r = await c.post(
        f"{XF}/chunks",
        headers=auth("xenonflare", 0),
        data={"chunkIndex": "0", "totalChunks": "2", "fileId": "given-up"},
        files={"file": ("blob", data, "application/octet-stream")},
    )
    assert r.status_code == 200, r.text
    sf = (
        await c.post(
            f"{SF}/assets/upload-url",
            headers=auth("segmentflow", 0),
            json={"filename": "a.png", "contentType": "image/png", "size": 20_000},
        )
    ).json()
    image = payload("png", 20_000, 2)
    assert (
        await c.put(url_path(sf["uploadUrl"]), content=image, headers={"Content-Type": "image/png"})
    ).status_code == 200
    pe = (
        await c.post(
            f"{PE}/media/upload",
            headers=auth("posteverywhere", 0),
            json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(data)},
        )
    ).json()["data"]
    put = await c.put(url_path(pe["upload_url"]), content=data, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200, put.text
    return {"ap": {**ap_ids, "part_url": part_url}, "sf": {**sf, "image": image}, "pe": pe}


async def test_abandoned_uploads_of_every_provider_are_removed_with_their_bytes_after_24_hours(tmp_path):
    async with emulator(tmp_path) as (c, runtime):
        started = await start_everything(c)
        assert len(stored_files(tmp_path)) == 4
        await advance(c, DAY)  # exactly 24 h: not yet more than the period
        assert len(stored_files(tmp_path)) == 4
        await advance(c, 1)
        assert stored_files(tmp_path) == {}  # every abandoned upload's bytes are gone from disk
        assert runtime.blobs.index == {}

        # Autoposting: the upload is aborted, as by an S3 lifecycle rule; the clip failed
        ap = started["ap"]
        ids = {k: ap[k] for k in ("clipId", "uploadId", "key")}
        done = await c.post(
            f"{AP}/clips/upload/complete",
            headers=auth("autoposting", 0),
            json={**ids, "parts": [{"partNumber": 1, "eTag": "0" * 32}]},
        )
        assert done.status_code == 404 and done.json()["error"] == "not_found", done.text
        assert "never completed and has expired" in done.json()["message"]
        clip = await c.get(f"{AP}/clips/{ap['clipId']}", headers=auth("autoposting", 0))
        assert clip.json()["data"]["status"] == "failed"
        # XenonFlare: the fileId reads as never used
        status = await c.get(f"{XF}/chunks", headers=auth("xenonflare", 0), params={"fileId": "given-up"})
        assert status.json()["data"] == {"exists": False, "currentSize": 0, "fileId": "given-up"}
        final = await c.post(
            f"{XF}/videos",
            headers=auth("xenonflare", 0),
            files=[("platforms", (None, '["youtube"]')), ("fileId", (None, "given-up"))],
        )
        assert final.status_code == 404 and final.json()["error"]["code"] == "not_found", final.text
        # Segmentflow: the object is gone (NoSuchKey) and can no longer be registered
        sf = started["sf"]
        got = await c.get(url_path(sf["uploadUrl"]).split("?")[0])
        assert got.status_code == 404 and "<Code>NoSuchKey</Code>" in got.text
        register = await c.post(
            f"{SF}/assets",
            headers=auth("segmentflow", 0),
            json={"filename": "a.png", "s3Key": sf["key"], "contentType": "image/png", "size": 20_000},
        )
        assert register.status_code == 422 and register.json()["error"] == "validation_failed"
        assert "never registered and has expired" in register.json()["message"]
        # PostEverywhere: the media is gone
        pe = started["pe"]
        done = await c.post(f"{PE}/media/{pe['media_id']}/complete", headers=auth("posteverywhere", 0))
        assert done.status_code == 404 and done.json()["error"]["code"] == "not_found", done.text
        assert (await c.get(f"{PE}/media/{pe['media_id']}", headers=auth("posteverywhere", 0))).status_code == 404

    async with emulator(tmp_path) as (c, runtime):  # nothing of them comes back after a restart
        assert stored_files(tmp_path) == {} and runtime.blobs.index == {}
        assert runtime.store.values("posteverywhere:media") == [] and runtime.store.values("xenonflare:chunks") == []


async def test_storage_urls_of_an_expired_upload_answer_no_such_upload(tmp_path):
    # a period shorter than the URLs' lifetime, so the signed URLs are still valid when the upload expires
    async with emulator(tmp_path, abandoned_after=600) as (c, _):
        started = await start_everything(c)
        await advance(c, 601)
        assert stored_files(tmp_path) == {}
        put = await c.put(started["ap"]["part_url"], content=b"more")
        assert put.status_code == 404 and "<Code>NoSuchUpload</Code>" in put.text, put.text
        pe = started["pe"]
        put = await c.put(url_path(pe["upload_url"]), content=b"late", headers={"Content-Type": "video/mp4"})
        assert put.status_code == 404 and "<Code>NoSuchUpload</Code>" in put.text, put.text


async def test_completed_uploads_are_never_reclaimed(tmp_path):
    async with emulator(tmp_path) as (c, runtime):
        stored = [
            await pe_video(c, 0, payload("mp4", 20_000, 1)),
            await ap_clip(c, 0, payload("mp4", 30_000, 2)),
            await sf_asset(c, 0, payload("png", 15_000, 3)),
            await xf_chunked_video(c, 0, payload("mp4", 25_000, 4), chunk=10_000, file_id="done"),
        ]
        files = stored_files(tmp_path)
        await advance(c, 30 * DAY)
        assert stored_files(tmp_path) == files
        for item in stored:
            await verify(c, item, runtime)


async def test_an_upload_finished_after_its_part_was_sent_is_kept(tmp_path):
    async with emulator(tmp_path) as (c, runtime):
        started = await start_everything(c)
        await advance(c, DAY - 10)
        image = started["sf"]["image"]
        r = await c.post(
            f"{SF}/assets",
            headers=auth("segmentflow", 0),
            json={"filename": "a.png", "s3Key": started["sf"]["key"], "contentType": "image/png", "size": len(image)},
        )
        assert r.status_code == 200, r.text
        await advance(c, 20)
        assert len(stored_files(tmp_path)) == 1  # the registered asset's object; the three others expired
        assert (await c.get(url_path(r.json()["asset"]["url"]))).content == image


async def test_abandoned_uploads_are_also_reclaimed_as_time_passes_without_the_control_plane(tmp_path):
    async with emulator(tmp_path) as (c, runtime):
        await start_everything(c)
        runtime.clock.advance(DAY + 3600)  # time passing, as the real clock does: no control-plane call
        assert len(stored_files(tmp_path)) == 4
        assert (await c.get("/_emulator/health")).status_code == 200  # the next request finds a sweep due
        assert stored_files(tmp_path) == {}


async def test_a_period_of_0_keeps_unfinished_uploads(tmp_path):
    async with emulator(tmp_path, abandoned_after=0) as (c, _):
        await start_everything(c)
        await advance(c, 365 * DAY)
        assert len(stored_files(tmp_path)) == 4


async def test_uploads_abandoned_before_a_restart_are_reclaimed_after_it(tmp_path):
    async with emulator(tmp_path) as (c, _):
        await start_everything(c)
    async with emulator(tmp_path) as (c, runtime):
        runtime.clock.freeze(FROZEN_AT + DAY + 1)
        assert (await c.get("/_emulator/health")).status_code == 200  # the first request sweeps
        assert stored_files(tmp_path) == {}


# --- scratch directories of dead processes ------------------------------------------------------------------------


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    """``upload-emulator serve`` without --data-dir; returns once it printed its banner (its scratch dir exists)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("upload-emulator on"), "the emulator did not start"
    return proc


def _scratch(tmp: Path) -> set[str]:
    return {p.name for p in tmp.glob("upload-emulator-*")}


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_start_removes_scratch_dirs_of_killed_emulators_and_keeps_live_ones(tmp_path, processes):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    killed = _start(env)
    processes.append(killed)
    (dead,) = _scratch(tmp)
    (tmp / dead / "partial-bytes").write_bytes(b"x" * 100_000)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert _scratch(tmp) == {dead}  # SIGKILL: no exit handler ran, the bytes are still there
    # directories that are not a dead emulator's own: no lock file (an older version), a lock not yet written
    (tmp / "upload-emulator-older").mkdir()
    (tmp / "upload-emulator-older" / "keep").write_bytes(b"k")
    (tmp / "upload-emulator-being-made").mkdir()
    (tmp / "upload-emulator-being-made" / ".lock").write_bytes(b"")
    live = _start(env)
    processes.append(live)
    (alive,) = _scratch(tmp) - {dead, "upload-emulator-older", "upload-emulator-being-made"}
    assert dead not in _scratch(tmp)  # the live one's start removed the dead one's
    processes.append(_start(env))  # a further start keeps the live one
    assert {alive, "upload-emulator-older", "upload-emulator-being-made"} <= _scratch(tmp)
    assert (tmp / alive / ".lock").read_text().strip() == str(live.pid)
    assert (tmp / "upload-emulator-older" / "keep").read_bytes() == b"k"


def test_an_idle_server_reclaims_on_its_own(tmp_path):
    """No request after the upload: the server's own tick sweeps when one falls due (real time, a 3 s period)."""
    import time

    from emulator.testing import serve_in_thread

    served = serve_in_thread(Settings(data_dir=tmp_path, abandoned_after=3.0))
    try:
        r = httpx.post(
            f"{served.url}{PE}/media/upload",
            headers=auth("posteverywhere", 0),
            json={"filename": "v.mp4", "content_type": "video/mp4", "size": 9},
        )
        step = r.json()["data"]
        put = httpx.put(step["upload_url"], content=b"123456789", headers={"Content-Type": "video/mp4"})
        assert put.status_code == 200 and len(stored_files(tmp_path)) == 1
        deadline = time.monotonic() + 20
        while stored_files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)  # no request reaches the server meanwhile
        assert stored_files(tmp_path) == {}
        assert served.app.state.runtime.store.values("posteverywhere:media") == []
    finally:
        served.stop()


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_negative_period_is_a_usage_error(value):
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--abandoned-after", value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip() == f"error: abandoned_after: must be a number of seconds, 0 (never reclaim) or "
        f"more; got {float(value)}"
    )
