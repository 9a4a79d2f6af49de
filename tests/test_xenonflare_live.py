"""Against a real uvicorn: the docs' own curl example run by real curl, and a chunk upload cut off mid-request."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from emulator import Settings
from emulator.core.specs import load
from tests.conftest import FROZEN_AT
from tests.helpers import sample
from tests.test_xenonflare_support import FROZEN_ISO, HEADERS, KEY, OBJECT_ID, XF

pytestmark = pytest.mark.live
REAL_HOST = "https://api.xenonflare.com"


def docs_curl_example() -> str:
    """The page's example request, verbatim, as the published spec transcribes it."""
    operation = load("xenonflare").published["paths"]["/api/v1/media/images"]["post"]
    text = operation["requestBody"]["content"]["multipart/form-data"]["examples"]["pageExample"]["description"]
    lines = [line[4:] for line in text.splitlines() if line.startswith("    ")]
    assert lines[0].startswith("curl -X POST https://api.xenonflare.com/api/v1/media/images")
    return "\n".join(lines)


def connected_accounts(api_base: str) -> dict[str, str]:
    """The key's own Instagram and Pinterest account ids, as GET /api/v1/channels lists them."""
    with httpx.Client(timeout=10) as c:
        data = c.get(f"{api_base}/api/v1/channels", headers=HEADERS).json()["data"]
    return {
        "YOUR_INSTAGRAM_BUSINESS_ID": data["instagram"][0]["id"],
        "YOUR_PINTEREST_ID": data["pinterest"][0]["accountId"],
    }


def run_docs_curl(base: str, image: Path, accounts: dict[str, str] | None = None) -> dict:
    assert shutil.which("curl"), "curl is needed to run the docs' example"
    command = docs_curl_example()
    assert command.count(REAL_HOST) == 1 and "YOUR_API_KEY" in command and "/path/to/image.jpg" in command
    # the host changes; the placeholders the docs ask the reader to fill in are filled in; nothing else
    command = command.replace(REAL_HOST, base).replace("YOUR_API_KEY", KEY).replace("/path/to/image.jpg", str(image))
    for placeholder, account_id in (accounts or {}).items():
        assert placeholder in command
        command = command.replace(placeholder, account_id)
    done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def assert_documented_shape(body: dict) -> str:
    assert list(body) == ["success", "message", "data"]
    assert body["success"] is True and body["message"] == "Upload successful"
    [item] = body["data"]
    assert list(item) == ["id", "title", "status", "platforms", "createdAt"]
    assert OBJECT_ID.fullmatch(item["id"])
    assert (item["title"], item["status"], item["platforms"]) == (
        "Untitled Image",
        "scheduled",
        ["instagram", "pinterest"],
    )
    assert item["createdAt"] == FROZEN_ISO
    return item["id"]


@pytest.fixture
def image_jpg(tmp_path: Path) -> Path:
    path = tmp_path / "image.jpg"
    path.write_bytes(sample("jpg"))
    return path


def test_the_docs_curl_example_works_with_the_host_and_its_placeholders_filled_in(live_server, image_jpg):
    live_server.app.state.runtime.clock.freeze(FROZEN_AT)
    base = f"{live_server.url}/xenonflare"
    refused = run_docs_curl(base, image_jpg)  # the account placeholders left as printed: not this key's accounts
    assert refused["success"] is False and refused["error"]["field"] == "instagram.accounts.0"
    media_id = assert_documented_shape(run_docs_curl(base, image_jpg, connected_accounts(base)))
    with httpx.Client(base_url=live_server.url, timeout=10) as c:
        data = c.get(f"{XF}/images/{media_id}", headers=HEADERS).json()["data"]
        assert data["status"] == "scheduled"  # at the instant it was answered, as the answer said
        live_server.app.state.runtime.clock.advance(1)
        data = c.get(f"{XF}/images/{media_id}", headers=HEADERS).json()["data"]
    assert data["instagram"]["status"] == data["pinterest"]["status"] == "published"  # autoPublish: true


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=7, provider="xenonflare")])
def test_the_docs_curl_example_in_per_provider_mode_is_the_real_url_on_another_host(live_server, image_jpg, settings):
    live_server.app.state.runtime.clock.freeze(FROZEN_AT)
    assert_documented_shape(run_docs_curl(live_server.url, image_jpg, connected_accounts(live_server.url)))


def _cut_off_chunk(url: str, file_id: str, index: int, total: int, data: bytes) -> None:
    """Send a chunk's headers and half its body over a real socket, then drop the connection."""
    host, port = url.removeprefix("http://").split(":")
    boundary = "xfcut0boundary"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (("chunkIndex", index), ("totalChunks", total), ("fileId", file_id))
    )
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="blob"\r\n\r\n'
    sent = head.encode() + data[: len(data) // 2]
    full = len(head) + len(data) + len(f"\r\n--{boundary}--\r\n")
    request = (
        f"POST {XF}/chunks HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {full}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode() + sent)
        time.sleep(0.2)  # let the server read part of the body before the line goes dead


def test_a_three_chunk_upload_cut_off_during_chunk_three_resumes_and_finalizes(live_server):
    chunk = 256 * 1024
    original = sample("png") + bytes(range(256)) * (3 * chunk // 256)
    original = original[: 3 * chunk - 1000]
    pieces = [original[i : i + chunk] for i in range(0, len(original), chunk)]
    file_id = str(uuid.uuid4())
    runtime = live_server.app.state.runtime
    with httpx.Client(base_url=live_server.url, timeout=10) as c:

        def send(index: int, data: bytes) -> httpx.Response:
            return c.post(
                f"{XF}/chunks",
                headers=HEADERS,
                files={"file": ("blob", data, "application/octet-stream")},
                data={"chunkIndex": str(index), "totalChunks": "3", "fileId": file_id},
            )

        assert send(0, pieces[0]).json()["data"] == {"completed": False, "chunkIndex": 0}
        assert send(1, pieces[1]).json()["data"] == {"completed": False, "chunkIndex": 1}
        _cut_off_chunk(live_server.url, file_id, 2, 3, pieces[2])
        deadline = time.monotonic() + 5
        while list(runtime.blobs.tmp_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)  # the server notices the drop and removes the partial chunk
        assert list(runtime.blobs.tmp_dir.iterdir()) == []

        status = c.get(f"{XF}/chunks", params={"fileId": file_id}, headers=HEADERS).json()
        assert status == {"success": True, "data": {"exists": True, "currentSize": 2 * chunk, "fileId": file_id}}
        offset = status["data"]["currentSize"]
        done = send(offset // chunk, original[offset:])
        assert done.json() == {
            "success": True,
            "data": {"completed": True, "fileId": file_id},
            "message": "Upload complete",
        }
        final = c.post(
            f"{XF}/images", headers=HEADERS, files={"fileId": (None, file_id), "platforms": (None, '["instagram"]')}
        )
        assert final.status_code == 200, final.text
        media = runtime.store.get("xenonflare:media", final.json()["data"][0]["id"])
        assert runtime.blobs.get(media.blob_name).path.read_bytes() == original
