"""SIGTERM during uploads, against ``python -m emulator serve --data-dir`` in a subprocess.

On SIGTERM the emulator stops accepting connections at once (a new client is refused), lets an upload in flight
finish and answers it, ends a stalled upload at ``--body-timeout`` with a 400 ``RequestTimeout`` (keeping none of
its bytes), shuts down cleanly, and after a restart on the same data directory everything completed before is
there byte for byte — including the upload that was drained — while an upload URL issued before the restart still
works after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.test_reliability_support import (
    PE,
    SF,
    Stored,
    ap_asset,
    ap_clip,
    auth,
    md5,
    others_refused,
    payload,
    pe_image,
    pe_video,
    sf_asset,
    url_path,
    xf_chunked_video,
    xf_image,
)

pytestmark = pytest.mark.anyio
BODY_TIMEOUT = 2


class Served:
    """One ``python -m emulator serve`` process."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_EMULATOR_")}
        env["COLUMNS"] = "200"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--body-timeout",
                str(BODY_TIMEOUT),
                "--seed",
                "3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/_emulator/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out, err = self.proc.communicate(timeout=5)
                raise RuntimeError(f"serve did not start: {err.decode()[-2000:]}")
            time.sleep(0.05)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


async def _start_upload(port: int, path: str, content_type: str, data: bytes, sent: int) -> tuple:
    """A raw PUT that has sent its head and the first ``sent`` bytes of ``data``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data[:sent]
    )
    await writer.drain()
    return reader, writer


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), timeout=30)
    return status, headers, body


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _blob_on_disk(data_dir: Path, name: str) -> tuple[bytes, dict]:
    digest = hashlib.sha256(name.encode()).hexdigest()
    path = data_dir / digest[:2] / digest
    return path.read_bytes(), json.loads(path.with_name(digest + ".json").read_text())


async def _verify(c: httpx.AsyncClient, item: Stored, data_dir: Path) -> None:
    if item.read_url is not None:
        r = await c.get(item.read_url)
        assert r.status_code == 200 and r.content == item.data and r.headers["etag"] == item.etag, item
        return
    # XenonFlare serves no bytes back: find the record through the control plane, the bytes in the data directory
    state = (await c.get("/_emulator/state/xenonflare")).json()["tables"]["media"]
    (media,) = [m for m in state if m["id"] == item.id]
    data, record = _blob_on_disk(data_dir, media["blob_name"])
    assert data == item.data and f'"{record["md5"]}"' == item.etag and media["size"] == len(item.data)


async def test_sigterm_drains_uploads_in_flight_and_what_completed_survives_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    first = Served(data_dir)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as c:
            stored = [
                await pe_video(c, 0, payload("mp4", 200_000, 1)),
                await pe_image(c, 1, payload("png", 50_000, 2)),
                await ap_clip(c, 2, payload("mp4", 6 * 1024 * 1024, 3), part_size=5 * 1024 * 1024),
                await ap_asset(c, 3, payload("png", 40_000, 4)),
                await sf_asset(c, 4, payload("png", 30_000, 5)),
                await xf_image(c, 5, payload("jpg", 20_000, 6)),
                await xf_chunked_video(c, 6, payload("mp4", 90_000, 7), chunk=40_000, file_id="before-sigterm"),
            ]
            for item in stored:
                await _verify(c, item, data_dir)
            drained_bytes = payload("mp4", 4 * 1024 * 1024, 8)
            drained = (
                await c.post(
                    f"{PE}/media/upload",
                    headers=auth("posteverywhere", 0),
                    json={"filename": "drain.mp4", "content_type": "video/mp4", "size": len(drained_bytes)},
                )
            ).json()["data"]
            stalled = (
                await c.post(
                    f"{PE}/media/upload",
                    headers=auth("posteverywhere", 1),
                    json={"filename": "stall.mp4", "content_type": "video/mp4", "size": 1_000_000},
                )
            ).json()["data"]
            pending = (
                await c.post(
                    f"{SF}/assets/upload-url",
                    headers=auth("segmentflow", 4),
                    json={"filename": "later.png", "contentType": "image/png", "size": 30_000},
                )
            ).json()

        in_flight = await _start_upload(
            first.port, url_path(drained["upload_url"]), "video/mp4", drained_bytes, sent=len(drained_bytes) // 3
        )
        stuck = await _start_upload(
            first.port, url_path(stalled["upload_url"]), "video/mp4", payload("mp4", 1_000_000, 9), sent=100_000
        )
        await asyncio.sleep(0.3)  # both requests are being read
        first.terminate()

        deadline = time.monotonic() + 5
        while not _refused(first.port):  # new clients are refused as soon as shutdown starts
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            await asyncio.sleep(0.05)

        reader, writer = in_flight  # the upload in flight finishes and is answered: drained
        writer.write(drained_bytes[len(drained_bytes) // 3 :])
        await writer.drain()
        status, headers, _ = await _response(reader)
        assert status == 200 and headers["etag"] == f'"{md5(drained_bytes)}"'
        assert headers.get("connection") == "close"
        writer.close()

        reader, writer = stuck  # the stalled one ends at the body timeout, in the storage's own error shape
        status, headers, body = await _response(reader)
        assert status == 400 and b"<Code>RequestTimeout</Code>" in body
        writer.close()

        code, log = first.wait()
        assert code in (0, -signal.SIGTERM), log
        assert "Traceback" not in log and "ERROR" not in log, log
        assert "Application shutdown complete" in log
    finally:
        first.kill()

    assert list((data_dir / ".tmp").iterdir()) == []  # no partial file survives the shutdown
    second = Served(data_dir)
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as c:
            for item in stored:
                await _verify(c, item, data_dir)
                await others_refused(c, item, other=9)
            done = await c.post(f"{PE}/media/{drained['media_id']}/complete", headers=auth("posteverywhere", 0))
            assert done.status_code == 200 and done.json()["data"]["size"] == len(drained_bytes)
            fetched = await c.get(url_path(drained["upload_url"]).split("?")[0])
            assert fetched.content == drained_bytes
            never = await c.post(f"{PE}/media/{stalled['media_id']}/complete", headers=auth("posteverywhere", 1))
            assert never.status_code == 400 and never.json()["error"]["code"] == "upload_not_ready"
            later = payload("png", 30_000, 10)
            put = await c.put(url_path(pending["uploadUrl"]), content=later, headers={"Content-Type": "image/png"})
            assert put.status_code == 200, put.text  # signed before the restart, accepted after it
            registered = await c.post(
                "/segmentflow/api/v1/assets",
                headers=auth("segmentflow", 4),
                json={"filename": "later.png", "s3Key": pending["key"], "contentType": "image/png", "size": len(later)},
            )
            assert registered.status_code == 200
        second.terminate()
        code, log = second.wait()
        assert code in (0, -signal.SIGTERM) and "Traceback" not in log, log
    finally:
        second.kill()


async def test_a_killed_emulator_keeps_everything_it_answered(tmp_path):
    data_dir = tmp_path / "data"
    first = Served(data_dir)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as c:
            stored = [
                await pe_video(c, 0, payload("mp4", 150_000, 11)),
                await sf_asset(c, 1, payload("png", 20_000, 12)),
                await ap_clip(c, 2, payload("mp4", 80_000, 13)),
                await xf_image(c, 3, payload("jpg", 9_000, 14)),
            ]
            doomed = (
                await c.post(
                    f"{PE}/media/upload",
                    headers=auth("posteverywhere", 0),
                    json={"filename": "doomed.mp4", "content_type": "video/mp4", "size": 2_000_000},
                )
            ).json()["data"]
        in_flight = await _start_upload(
            first.port, url_path(doomed["upload_url"]), "video/mp4", payload("mp4", 2_000_000, 15), sent=1_000_000
        )
        await asyncio.sleep(0.3)
        first.proc.kill()  # SIGKILL: no shutdown at all
        first.wait()
        in_flight[1].close()
    finally:
        first.kill()
    second = Served(data_dir)  # a killed process holds no lock: the directory opens again at once
    try:
        assert list((data_dir / ".tmp").iterdir()) == []  # the half-received body was removed at start
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as c:
            for item in stored:
                await _verify(c, item, data_dir)
            never = await c.post(f"{PE}/media/{doomed['media_id']}/complete", headers=auth("posteverywhere", 0))
            assert never.status_code == 400 and never.json()["error"]["code"] == "upload_not_ready"
    finally:
        second.terminate()
        second.wait()
        second.kill()
