"""Every fault kind, observed by a plain httpx client against a live uvicorn (real sockets, real drops)."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from emulator.testing import ControlClient
from tests.helpers import AUTH, MP4, PE

UPLOAD = f"{PE}/media/upload"
BODY = {"filename": "a.png", "content_type": "image/png", "size": 10}
BIG = MP4 + b"\0" * (4 * 1024 * 1024 - len(MP4))


@pytest.fixture
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=15) as c:
        yield c


@pytest.fixture
def control(live_server):
    with ControlClient(live_server.url) as c:
        yield c


def video_url(http: httpx.Client, size: int) -> tuple[str, str]:
    data = http.post(
        UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": size}
    ).json()["data"]
    return data["upload_url"], data["media_id"]


def test_status_fault(http, control):
    control.add_fault("status", provider="posteverywhere", operation="uploadMedia", status=500, times=1)
    r = http.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert http.post(UPLOAD, headers=AUTH, json=BODY).status_code == 201


def test_delay_fault(http, control):
    control.add_fault("delay", provider="posteverywhere", seconds=0.6, times=1)
    started = time.perf_counter()
    assert http.post(UPLOAD, headers=AUTH, json=BODY).status_code == 201
    assert time.perf_counter() - started >= 0.6


# A dropped connection reaches the client as a close without an answer, or as a reset when the request's bytes
# were still unread in the server's socket as it closed (the kernel then sends RST): seen once in a loaded full run
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def test_drop_before_headers(http, control, live_server):
    control.add_fault("drop", provider="posteverywhere", operation="uploadMedia", when="before_headers", times=1)
    with pytest.raises(DROPPED):
        http.post(UPLOAD, headers=AUTH, json=BODY)
    assert http.post(UPLOAD, headers=AUTH, json=BODY).status_code == 201
    (entry, _) = control.journal(operation="uploadMedia")
    assert entry.fault is not None and entry.status is None and entry.completed is False


def test_drop_after_headers(http, control):
    control.add_fault("drop", provider="posteverywhere", operation="uploadMedia", when="after_headers", times=1)
    with pytest.raises(DROPPED):
        http.post(UPLOAD, headers=AUTH, json=BODY)
    (entry,) = control.journal(operation="uploadMedia")
    assert entry.status == 201 and entry.completed is False


def test_upload_stalls_after_n_bytes(http, control):
    url, media_id = video_url(http, len(BIG))
    control.add_fault(
        "stall", provider="posteverywhere", operation="storeObject", bytes=1024 * 1024, seconds=0.8, times=1
    )
    started = time.perf_counter()
    r = http.put(url, content=BIG, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 200 and time.perf_counter() - started >= 0.8
    assert r.headers["etag"] == f'"{hashlib.md5(BIG).hexdigest()}"'


def test_upload_dropped_after_n_bytes_keeps_nothing_and_can_be_retried(http, control, live_server):
    url, media_id = video_url(http, len(BIG))
    control.add_fault("drop_upload", provider="posteverywhere", operation="storeObject", bytes=1024 * 1024, times=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError)):
        http.put(url, content=BIG, headers={"Content-Type": "video/mp4"})
    runtime = live_server.app.state.runtime
    deadline = time.monotonic() + 5
    while list(runtime.blobs.tmp_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the disconnect and removes the partial file
    assert list(runtime.blobs.tmp_dir.iterdir()) == []
    assert http.post(f"{PE}/media/{media_id}/complete", headers=AUTH).status_code == 400
    with httpx.Client(timeout=15) as fresh:
        retry = fresh.put(url, content=BIG, headers={"Content-Type": "video/mp4"})
    assert retry.status_code == 200
    assert http.post(f"{PE}/media/{media_id}/complete", headers=AUTH).json()["data"]["size"] == len(BIG)


def test_wrong_etag_and_slow_down(http, control):
    url, _ = video_url(http, len(MP4))
    control.add_fault("wrong_etag", provider="posteverywhere", operation="storeObject", times=1)
    control.add_fault("slow_down", provider="posteverywhere", operation="storeObject", times=1)
    first = http.put(url, content=MP4, headers={"Content-Type": "video/mp4"})
    assert first.status_code == 200 and first.headers["etag"] != f'"{hashlib.md5(MP4).hexdigest()}"'
    second = http.put(url, content=MP4, headers={"Content-Type": "video/mp4"})
    assert second.status_code == 503 and "<Code>SlowDown</Code>" in second.text
