"""Interrupted uploads, over real sockets: a client that goes away mid-body leaves nothing behind.

For every upload endpoint of every provider, a raw socket sends the request head and half of the body, then
disconnects — politely (FIN) or abruptly (RST). Afterwards: no completed object and no half-written file (the
blob store's ``.tmp`` is empty, its index unchanged), no file descriptor left open in the server, and the same
upload, sent again in full, succeeds and completes.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from emulator import Settings
from tests.test_reliability_support import (
    AP,
    GENEROUS_LIMITS,
    PE,
    SF,
    XF,
    auth,
    index_consistent,
    md5,
    open_fds,
    partial_files,
    payload,
    url_path,
)

SIZE = 3 * 1024 * 1024  # large enough that the server is mid-file when the client leaves
BOUNDARY = "reliabilityboundary"
TENANT = 3


@dataclass
class Attempt:
    """One upload to interrupt: its request, how to check nothing was kept, and how to finish it properly."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    operation: str
    nothing_kept: Callable[[httpx.Client], None]
    retry: Callable[[httpx.Client], None]


def _multipart(fields: dict[str, str], filename: str, data: bytes, content_type: str) -> bytes:
    out = b""
    for name, value in fields.items():
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
    out += (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    return out + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def pe_not_ready(h: dict[str, str], media_id: str) -> Callable[[httpx.Client], None]:
    """PostEverywhere's check that nothing was kept: step 3 still finds no uploaded file."""

    def nothing_kept(c: httpx.Client) -> None:
        r = c.post(f"{PE}/media/{media_id}/complete", headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"] == "upload_not_ready", r.text

    return nothing_kept


def pe_object(http: httpx.Client, runtime) -> Attempt:
    data = payload("mp4", SIZE, 1)
    h = auth("posteverywhere", TENANT)
    step = http.post(
        f"{PE}/media/upload", headers=h, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(data)}
    ).json()["data"]

    def retry(c: httpx.Client) -> None:
        put = c.put(url_path(step["upload_url"]), content=data, headers={"Content-Type": "video/mp4"})
        assert put.status_code == 200 and put.headers["etag"] == f'"{md5(data)}"'
        assert c.post(f"{PE}/media/{step['media_id']}/complete", headers=h).json()["data"]["size"] == len(data)

    return Attempt(
        "PUT",
        url_path(step["upload_url"]),
        {"Content-Type": "video/mp4"},
        data,
        "storeObject",
        pe_not_ready(h, step["media_id"]),
        retry,
    )


def pe_image(http: httpx.Client, runtime) -> Attempt:
    data = payload("png", SIZE, 2)
    h = auth("posteverywhere", TENANT)
    step = http.post(
        f"{PE}/media/upload", headers=h, json={"filename": "a.png", "content_type": "image/png", "size": len(data)}
    ).json()["data"]

    def retry(c: httpx.Client) -> None:
        assert c.post(url_path(step["upload_url"]), files={"file": ("a.png", data, "image/png")}).status_code == 200
        assert c.post(f"{PE}/media/{step['media_id']}/complete", headers=h).json()["data"]["size"] == len(data)

    return Attempt(
        "POST",
        url_path(step["upload_url"]),
        MULTIPART,
        _multipart({}, "a.png", data, "image/png"),
        "storeImage",
        pe_not_ready(h, step["media_id"]),
        retry,
    )


def ap_part(http: httpx.Client, runtime) -> Attempt:
    data = payload("mp4", SIZE, 3)
    h = auth("autoposting", TENANT)
    clip = http.post(
        f"{AP}/clips/upload/init",
        headers=h,
        json={"brandId": "b1", "title": "t", "fileName": "v.mp4", "fileSize": len(data), "mimeType": "video/mp4"},
    ).json()["data"]
    ids = {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}
    url = http.post(f"{AP}/clips/upload/presign", headers=h, json={**ids, "partNumbers": [1]}).json()["data"][
        "presignedUrls"
    ][0]["url"]
    parts = [{"partNumber": 1, "eTag": md5(data)}]

    def nothing_kept(c: httpx.Client) -> None:
        r = c.post(f"{AP}/clips/upload/complete", headers=h, json={**ids, "parts": parts})
        assert r.status_code == 400 and "was not uploaded" in r.json()["message"], r.text

    def retry(c: httpx.Client) -> None:
        assert c.put(url_path(url), content=data).headers["etag"] == f'"{md5(data)}"'
        assert c.post(f"{AP}/clips/upload/complete", headers=h, json={**ids, "parts": parts}).status_code == 200

    return Attempt("PUT", url_path(url), {}, data, "uploadClipPart", nothing_kept, retry)


def ap_asset(http: httpx.Client, runtime) -> Attempt:
    data = payload("png", SIZE, 4)
    h = auth("autoposting", TENANT)

    def nothing_kept(c: httpx.Client) -> None:
        assert runtime.store.values("autoposting:assets") == []

    def retry(c: httpx.Client) -> None:
        r = c.post(f"{AP}/carousels/car_1/assets", headers=h, files={"file": ("a.png", data, "image/png")})
        assert r.status_code == 200
        assert c.get(url_path(r.json()["data"]["url"])).content == data

    return Attempt(
        "POST",
        f"{AP}/carousels/car_1/assets",
        {**h, **MULTIPART},
        _multipart({"slideId": "s1"}, "a.png", data, "image/png"),
        "uploadCarouselAssets",
        nothing_kept,
        retry,
    )


def sf_object(http: httpx.Client, runtime) -> Attempt:
    data = payload("png", SIZE, 5)
    h = auth("segmentflow", TENANT)
    step = http.post(
        f"{SF}/assets/upload-url", headers=h, json={"filename": "a.png", "contentType": "image/png", "size": len(data)}
    ).json()
    register = {"filename": "a.png", "s3Key": step["key"], "contentType": "image/png", "size": len(data)}

    def nothing_kept(c: httpx.Client) -> None:
        r = c.post(f"{SF}/assets", headers=h, json=register)
        assert r.status_code == 422 and "nothing has been uploaded" in r.text, r.text

    def retry(c: httpx.Client) -> None:
        put = c.put(url_path(step["uploadUrl"]), content=data, headers={"Content-Type": "image/png"})
        assert put.status_code == 200
        assert c.post(f"{SF}/assets", headers=h, json=register).json()["asset"]["size"] == len(data)

    return Attempt(
        "PUT", url_path(step["uploadUrl"]), {"Content-Type": "image/png"}, data, "putAssetObject", nothing_kept, retry
    )


def xf_image(http: httpx.Client, runtime) -> Attempt:
    data = payload("jpg", SIZE, 6)
    h = auth("xenonflare", TENANT)

    def nothing_kept(c: httpx.Client) -> None:
        assert runtime.store.values("xenonflare:media") == []

    def retry(c: httpx.Client) -> None:
        r = c.post(
            f"{XF}/images",
            headers=h,
            files=[("platforms", (None, '["linkedin"]')), ("file", ("a.jpg", data, "image/jpeg"))],
        )
        assert r.status_code == 200, r.text

    return Attempt(
        "POST",
        f"{XF}/images",
        {**h, **MULTIPART},
        _multipart({"platforms": '["linkedin"]'}, "a.jpg", data, "image/jpeg"),
        "uploadImage",
        nothing_kept,
        retry,
    )


def xf_chunk(http: httpx.Client, runtime) -> Attempt:
    data = payload("mp4", SIZE, 7)
    h = auth("xenonflare", TENANT)
    fields = {"chunkIndex": "0", "totalChunks": "1", "fileId": "interrupted-1"}

    def nothing_kept(c: httpx.Client) -> None:
        status = c.get(f"{XF}/chunks", headers=h, params={"fileId": "interrupted-1"}).json()["data"]
        assert status == {"exists": False, "currentSize": 0, "fileId": "interrupted-1"}

    def retry(c: httpx.Client) -> None:
        r = c.post(f"{XF}/chunks", headers=h, data=fields, files={"file": ("blob", data, "application/octet-stream")})
        assert r.status_code == 200 and r.json()["data"]["completed"] is True
        assert c.get(f"{XF}/chunks", headers=h, params={"fileId": "interrupted-1"}).json()["data"][
            "currentSize"
        ] == len(data)

    return Attempt(
        "POST",
        f"{XF}/chunks",
        {**h, **MULTIPART},
        _multipart(fields, "blob", data, "application/octet-stream"),
        "uploadChunk",
        nothing_kept,
        retry,
    )


ATTEMPTS = {
    "posteverywhere-object": pe_object,
    "posteverywhere-image": pe_image,
    "autoposting-part": ap_part,
    "autoposting-asset": ap_asset,
    "segmentflow-object": sf_object,
    "xenonflare-image": xf_image,
    "xenonflare-chunk": xf_chunk,
}


def send_half_then_leave(port: int, attempt: Attempt, abrupt: bool) -> None:
    head = f"{attempt.method} {attempt.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in attempt.headers.items())
    head += f"Content-Length: {len(attempt.body)}\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(head.encode() + attempt.body[: len(attempt.body) // 2])
        time.sleep(0.2)  # let the server start writing the file
        if abrupt:  # RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=21, rate_limits=GENEROUS_LIMITS)])
@pytest.mark.parametrize("abrupt", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("target", list(ATTEMPTS))
def test_disconnect_mid_body_keeps_nothing_leaks_nothing_and_can_be_retried(live_server, target, abrupt):
    runtime = live_server.app.state.runtime
    port = int(live_server.url.rsplit(":", 1)[1])
    baseline = open_fds()  # the server is up and no client is connected
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        attempt = ATTEMPTS[target](http, runtime)
    blobs_before = dict(runtime.blobs.index)

    send_half_then_leave(port, attempt, abrupt)
    # the server notices the disconnect and answers nobody (499 in the journal, nothing delivered)
    wait_for(
        lambda: any(e.status == 499 for e in runtime.journal.query(operation=attempt.operation)),
        "the server to notice the disconnect",
    )
    wait_for(lambda: partial_files(runtime) == [], "the partial file to be removed")
    assert runtime.blobs.index == blobs_before  # nothing committed
    wait_for(lambda: open_fds() <= baseline, f"file descriptors to return to {baseline} (now {open_fds()})")

    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        attempt.nothing_kept(http)
        attempt.retry(http)
    assert partial_files(runtime) == []
    index_consistent(runtime)
    wait_for(lambda: open_fds() <= baseline, "file descriptors to return after the retry")


@pytest.mark.parametrize("persistent", [True, False], ids=["data-dir", "scratch"])
def test_put_cancelled_while_a_worker_commits_it_keeps_nothing(tmp_path, monkeypatch, persistent):
    """A small PUT's last batch and commit run in a worker: a request cancelled meanwhile (server shutdown) waits
    for that job and takes back what it committed, bytes and record, so nothing stays unindexed on disk."""
    import asyncio
    import threading

    from emulator.core.storage import BlobStore, BlobWriter

    store = BlobStore(tmp_path / "data" if persistent else None)
    started, release = threading.Event(), threading.Event()
    finish = BlobWriter._finish

    def slow_finish(self: BlobWriter, batch: list[bytes]) -> object:
        started.set()
        release.wait(10)
        return finish(self, batch)

    monkeypatch.setattr(BlobWriter, "_finish", slow_finish)
    body = b"x" * (200 * 1024)  # over the inline size, under two batches: one worker job

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    async def main() -> None:
        task = asyncio.create_task(store.put_stream("n", chunks(), "application/octet-stream", 1 << 20, len(body)))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        threading.Timer(0.05, release.set).start()  # the job commits after the cancellation
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
        assert store.index == {}
        assert [p for p in store.root.rglob("*") if p.is_file() and p.name != ".lock"] == []
    finally:
        store.close()
