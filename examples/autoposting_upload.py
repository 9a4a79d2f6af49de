"""Upload one file to Autoposting.ai, carefully: an image to a carousel, a video as a multipart clip upload
(init → presign → PUT the parts → complete → poll the clip until it is ready).

    UPLOAD_EMULATOR_BASE_URL=http://127.0.0.1:8080/autoposting/api-proxy UPLOAD_EMULATOR_API_KEY=sk-social-... \
    UPLOAD_EMULATOR_FILE=clip.mp4 UPLOAD_EMULATOR_CONTENT_TYPE=video/mp4 python examples/autoposting_upload.py

Prints the asset or clip id and exits 0, or exits 1 when it gives up. What makes it careful:
- connection errors, 429 and 5xx are retried a bounded number of times, waiting Retry-After when the answer gives
  one, else backing off exponentially;
- parts are 5 MiB (R2/S3's minimum for all but the last); each part's ETag must be the MD5 of its bytes, else it
  is sent again, and complete lists exactly those ETags;
- a part URL that expired (403 from storage) is presigned again for the same upload, a bounded number of times;
- a complete whose answer was lost is retried; its 409 ("already completed") means it worked;
- the clip is polled while it processes, a bounded number of times;
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


PART_SIZE = 5 * 1024 * 1024
POLLS = 20
CAROUSEL = "car_chaos_example"  # the carousel the images go to


def upload_image(api: httpx.Client, data: bytes, name: str, content_type: str) -> str:
    r = send(api, "POST", f"carousels/{CAROUSEL}/assets", files={"file": (name, data, content_type)})
    if r.status_code not in (200, 201):
        raise GiveUp(f"carousel asset upload answered {r.status_code}: {r.text}")
    return str(r.json()["data"]["assetId"])


def put_part(api: httpx.Client, storage: httpx.Client, upload: dict, number: int, part: bytes) -> str:
    """PUT one part (presigning it again if its URL expired); return its confirmed ETag."""
    md5 = hashlib.md5(part).hexdigest()
    for _ in range(ATTEMPTS):
        r = send(api, "POST", "clips/upload/presign", json={**upload, "partNumbers": [number]})
        if r.status_code != 200:
            raise GiveUp(f"presign answered {r.status_code}: {r.text}")
        url = r.json()["data"]["presignedUrls"][0]["url"]
        r = send(storage, "PUT", url, content=part, headers={"Content-Type": "application/octet-stream"})
        if r.status_code == 403 and "expired" in r.text:
            print(f"part {number}: its URL expired, presigning again", file=sys.stderr)
            continue
        if r.status_code != 200:
            raise GiveUp(f"part {number} answered {r.status_code}: {r.text}")
        if r.headers.get("etag", "").strip('"') == md5:
            return md5
        print(f"part {number}: ETag {r.headers.get('etag')} is not the MD5 {md5}, sending again", file=sys.stderr)
    raise GiveUp(f"part {number} was never confirmed")


def upload_video(api: httpx.Client, storage: httpx.Client, data: bytes, name: str, content_type: str) -> str:
    r = send(
        api,
        "POST",
        "clips/upload/init",
        json={
            "brandId": "brand_chaos_example",
            "title": name,
            "fileName": name,
            "fileSize": len(data),
            "mimeType": content_type,
        },
    )
    if r.status_code != 201:
        raise GiveUp(f"init answered {r.status_code}: {r.text}")
    init = r.json()["data"]
    upload = {"clipId": init["clipId"], "uploadId": init["uploadId"], "key": init["key"]}
    parts = [data[i : i + PART_SIZE] for i in range(0, len(data), PART_SIZE)]
    etags = [put_part(api, storage, upload, n, part) for n, part in enumerate(parts, 1)]
    r = send(
        api,
        "POST",
        "clips/upload/complete",
        json={**upload, "parts": [{"partNumber": n, "eTag": etag} for n, etag in enumerate(etags, 1)]},
    )
    if r.status_code not in (200, 409):  # 409: an earlier attempt completed it, and its answer was lost
        raise GiveUp(f"complete answered {r.status_code}: {r.text}")
    for poll in range(POLLS):
        r = send(api, "GET", f"clips/{init['clipId']}")
        if r.status_code != 200:
            raise GiveUp(f"reading the clip answered {r.status_code}: {r.text}")
        status = r.json()["data"]["status"]
        if status == "ready":
            return str(init["clipId"])
        if status == "failed":
            raise GiveUp("processing failed")
        time.sleep(backoff(poll))
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
        try:
            if content_type.startswith("image/"):
                created = upload_image(api, data, path.name, content_type)
            else:
                created = upload_video(api, storage, data, path.name, content_type)
        except GiveUp as exc:
            print(f"giving up: {exc}", file=sys.stderr)
            return 1
    print(created)
    return 0


if __name__ == "__main__":
    sys.exit(main())
