"""Upload one file to XenonFlare, carefully: small files in one multipart request, large ones in 10 MiB chunks
(resumed from the status check after any failure), then finalized with their fileId.

    UPLOAD_EMULATOR_BASE_URL=http://127.0.0.1:8080/xenonflare UPLOAD_EMULATOR_API_KEY=xf_live_... \
    UPLOAD_EMULATOR_FILE=clip.mp4 UPLOAD_EMULATOR_CONTENT_TYPE=video/mp4 python examples/xenonflare_upload.py

Prints the media id and exits 0, or exits 1 when it gives up. What makes it careful:
- connection errors, 429 and 5xx are retried a bounded number of times, waiting Retry-After when the answer gives
  one, else backing off exponentially;
- a chunk that failed is not guessed at: the status check (currentSize) says where to resume;
- a finalize whose answer was lost is retried; "already finalized as media X" names the media it created;
- anything else (400, 401, 403, 404, 413, 415) is never sent again: the client gives up.
"""

from __future__ import annotations

import email.utils
import os
import re
import sys
import time
import uuid
from pathlib import Path

import httpx

ATTEMPTS = 8  # per request: the first try and up to 7 retries
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


CHUNK = 10 * 1024 * 1024  # the docs' example resumes at currentSize 10485760
FINALIZED = re.compile(r"already finalized as media (?P<id>[0-9a-f]{24})")


def created_id(r: httpx.Response) -> str:
    if r.status_code == 400 and (found := FINALIZED.search(r.text)):  # our earlier finalize worked
        return found["id"]
    if r.status_code != 200:
        raise GiveUp(f"upload answered {r.status_code}: {r.text}")
    return str(r.json()["data"][0]["id"])


def upload_chunks(api: httpx.Client, data: bytes, name: str, content_type: str) -> str:
    file_id, total = str(uuid.uuid4()), -(-len(data) // CHUNK)
    for _ in range(total * ATTEMPTS):
        r = send(api, "GET", "api/v1/media/chunks", params={"fileId": file_id})
        if r.status_code != 200:
            raise GiveUp(f"chunk status answered {r.status_code}: {r.text}")
        received = r.json()["data"]["currentSize"]
        if received >= len(data):
            break
        index = received // CHUNK  # resume where the server says we are
        chunk = data[index * CHUNK : (index + 1) * CHUNK]
        try:
            r = api.post(
                "api/v1/media/chunks",
                files={"file": (name, chunk, content_type)},
                data={"chunkIndex": str(index), "totalChunks": str(total), "fileId": file_id},
            )
        except httpx.TransportError as exc:
            print(f"chunk {index}: {type(exc).__name__}, resuming from the status check", file=sys.stderr)
            continue
        if r.status_code in TRANSIENT:
            wait = retry_after(r)
            time.sleep(wait if wait is not None else backoff(0))
        elif r.status_code != 200:
            raise GiveUp(f"chunk {index} answered {r.status_code}: {r.text}")
    else:
        raise GiveUp("the chunks never all arrived")
    kind = "videos" if content_type.startswith("video/") else "images"
    platforms = '["youtube"]' if kind == "videos" else '["instagram"]'
    fields = {"fileId": (None, file_id), "platforms": (None, platforms)}  # multipart, with no file part
    return created_id(send(api, "POST", f"api/v1/media/{kind}", files=fields))


def upload_direct(api: httpx.Client, data: bytes, name: str, content_type: str) -> str:
    kind = "videos" if content_type.startswith("video/") else "images"
    platforms = '["youtube"]' if kind == "videos" else '["instagram"]'
    return created_id(
        send(
            api,
            "POST",
            f"api/v1/media/{kind}",
            files={"file": (name, data, content_type)},
            data={"platforms": platforms},
        )
    )


def main() -> int:
    base_url, key = os.environ["UPLOAD_EMULATOR_BASE_URL"], os.environ["UPLOAD_EMULATOR_API_KEY"]
    path, content_type = Path(os.environ["UPLOAD_EMULATOR_FILE"]), os.environ["UPLOAD_EMULATOR_CONTENT_TYPE"]
    data = path.read_bytes()
    with httpx.Client(base_url=base_url.rstrip("/") + "/", headers={"X-API-Key": key}, timeout=30) as api:
        try:
            upload = upload_chunks if len(data) > CHUNK else upload_direct
            media_id = upload(api, data, path.name, content_type)
        except GiveUp as exc:
            print(f"giving up: {exc}", file=sys.stderr)
            return 1
    print(media_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
