"""Upload one file to PostEverywhere, carefully: upload → store the bytes → complete (polled while processing).

    UPLOAD_EMULATOR_BASE_URL=http://127.0.0.1:8080/posteverywhere/api/v1 UPLOAD_EMULATOR_API_KEY=pe_live_... \
    UPLOAD_EMULATOR_FILE=clip.mp4 UPLOAD_EMULATOR_CONTENT_TYPE=video/mp4 python examples/posteverywhere_upload.py

Prints the media id and exits 0, or exits 1 when it gives up. What makes it careful:
- connection errors, 429 and 5xx are retried a bounded number of times, waiting Retry-After when the answer gives
  one, else backing off exponentially;
- step 2 is done the way step 1's upload_method says (POST multipart for images, PUT for the rest); a PUT's ETag
  must be the MD5 of the bytes, else it is sent again;
- an upload URL that expired (403 from storage) is replaced: the whole flow starts over, bounded;
- complete is called again while the media is processing (the docs' way to poll), a bounded number of times;
- anything else (400, 401, 403, 404, 413, 415 from the API) is never sent again: the client gives up.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import sys
import time
from pathlib import Path

import httpx

ATTEMPTS = 8  # per request: the first try and up to 7 retries
FLOWS = 3  # times the whole flow may start over (an upload URL expired)
TRANSIENT = {429, 500, 502, 503, 504}


class GiveUp(Exception):
    """The upload cannot succeed: say why and stop."""


class Expired(Exception):
    """The presigned URL expired before the bytes got there: start over with a new one."""


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After as seconds or as an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    return min(0.2 * 2**attempt, 2.0)


def send(client: httpx.Client, method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request, retried on connection errors, 429 and 5xx; any other answer is returned as it is."""
    for attempt in range(ATTEMPTS):
        try:
            response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            print(f"{method} {url}: {type(exc).__name__}, retrying", file=sys.stderr)
            time.sleep(backoff(attempt))
            continue
        if response.status_code not in TRANSIENT:
            return response
        wait = retry_after(response)
        time.sleep(wait if wait is not None else backoff(attempt))  # never earlier than the server asked
    raise GiveUp(f"{method} {url}: still failing after {ATTEMPTS} attempts")


POLLS = 20


def store(storage: httpx.Client, issued: dict, data: bytes, name: str, content_type: str) -> None:
    """Step 2, as ``upload_method`` says; raises Expired when the URL is no longer valid."""
    method, md5 = issued["upload_method"], hashlib.md5(data).hexdigest()
    for _ in range(ATTEMPTS):
        if method["method"] == "POST":
            r = send(
                storage,
                "POST",
                issued["upload_url"],
                files={method.get("field_name", "file"): (name, data, content_type)},
            )
        else:
            r = send(
                storage,
                "PUT",
                issued["upload_url"],
                content=data,
                headers=method.get("headers") or {"Content-Type": content_type},
            )
        if r.status_code == 403 and "expired" in r.text:
            raise Expired()
        if r.status_code != 200:
            raise GiveUp(f"storing the bytes answered {r.status_code}: {r.text}")
        etag = r.headers.get("etag")
        if etag is None or etag.strip('"') == md5:
            return
        print(f"ETag {etag} is not the MD5 {md5} of the bytes, sending again", file=sys.stderr)
    raise GiveUp("the storage never confirmed the bytes")


def upload_once(api: httpx.Client, storage: httpx.Client, data: bytes, name: str, content_type: str) -> str:
    r = send(api, "POST", "media/upload", json={"filename": name, "content_type": content_type, "size": len(data)})
    if r.status_code != 201:
        raise GiveUp(f"media/upload answered {r.status_code}: {r.text}")
    issued = r.json()["data"]
    store(storage, issued, data, name, content_type)
    for poll in range(POLLS):
        r = send(api, "POST", f"media/{issued['media_id']}/complete")
        if r.status_code != 200:
            raise GiveUp(f"complete answered {r.status_code}: {r.text}")
        status = r.json()["data"]["status"]
        if status == "ready":
            return str(issued["media_id"])
        if status == "failed":
            raise GiveUp("processing failed")
        time.sleep(backoff(poll))  # processing: ask again in a moment
    raise GiveUp(f"still processing after {POLLS} polls")


def main() -> int:
    base_url, key = os.environ["UPLOAD_EMULATOR_BASE_URL"], os.environ["UPLOAD_EMULATOR_API_KEY"]
    path, content_type = Path(os.environ["UPLOAD_EMULATOR_FILE"]), os.environ["UPLOAD_EMULATOR_CONTENT_TYPE"]
    data = path.read_bytes()
    with (
        httpx.Client(
            base_url=base_url.rstrip("/") + "/", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as api,
        httpx.Client(timeout=30) as storage,
    ):
        for _ in range(FLOWS):
            try:
                media_id = upload_once(api, storage, data, path.name, content_type)
            except Expired:
                print("the upload URL expired: starting over", file=sys.stderr)
                continue
            except GiveUp as exc:
                print(f"giving up: {exc}", file=sys.stderr)
                return 1
            print(media_id)
            return 0
    print("giving up: every upload URL expired", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
