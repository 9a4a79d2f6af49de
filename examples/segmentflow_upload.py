"""Upload one file to Segmentflow, carefully: upload-url → PUT the bytes → register the asset.

    UPLOAD_EMULATOR_BASE_URL=http://127.0.0.1:8080/segmentflow UPLOAD_EMULATOR_API_KEY=sk_live_... \
    UPLOAD_EMULATOR_FILE=photo.png UPLOAD_EMULATOR_CONTENT_TYPE=image/png python examples/segmentflow_upload.py

Prints the asset id and exits 0, or exits 1 when it gives up. What makes it careful:
- connection errors, 429 and 5xx are retried a bounded number of times, waiting Retry-After when the answer gives
  one, else backing off exponentially;
- the PUT's ETag must be the MD5 of the bytes sent, else the PUT is repeated;
- an upload URL that expired (403 from storage) is replaced by a new one: the whole flow starts over, bounded;
- a registration whose answer was lost is retried; its 409 ("already registered as asset X") is success;
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


def upload_once(api: httpx.Client, storage: httpx.Client, data: bytes, name: str, content_type: str) -> str:
    md5 = hashlib.md5(data).hexdigest()
    r = send(
        api,
        "POST",
        "/api/v1/assets/upload-url",
        json={"filename": name, "contentType": content_type, "size": len(data)},
    )
    if r.status_code != 200:
        raise GiveUp(f"upload-url answered {r.status_code}: {r.text}")
    upload_url, key = r.json()["uploadUrl"], r.json()["key"]

    for _ in range(ATTEMPTS):
        r = send(storage, "PUT", upload_url, content=data, headers={"Content-Type": content_type})
        if r.status_code == 403 and "expired" in r.text:
            raise Expired()
        if r.status_code != 200:
            raise GiveUp(f"PUT answered {r.status_code}: {r.text}")
        if r.headers.get("etag", "").strip('"') == md5:
            break
        print(f"PUT: ETag {r.headers.get('etag')} is not the MD5 {md5} of the bytes, sending again", file=sys.stderr)
    else:
        raise GiveUp("the storage never confirmed the bytes")

    r = send(
        api,
        "POST",
        "/api/v1/assets",
        json={"filename": name, "s3Key": key, "contentType": content_type, "size": len(data)},
    )
    if r.status_code == 409:  # an earlier attempt registered it, and its answer was lost
        return str(r.json()["details"]["assetId"])
    if r.status_code != 200:
        raise GiveUp(f"registration answered {r.status_code}: {r.text}")
    return str(r.json()["asset"]["id"])


def main() -> int:
    base_url, key = os.environ["UPLOAD_EMULATOR_BASE_URL"], os.environ["UPLOAD_EMULATOR_API_KEY"]
    path, content_type = Path(os.environ["UPLOAD_EMULATOR_FILE"]), os.environ["UPLOAD_EMULATOR_CONTENT_TYPE"]
    data = path.read_bytes()
    with (
        httpx.Client(base_url=base_url, headers={"x-api-key": key}, timeout=30) as api,
        httpx.Client(timeout=30) as storage,
    ):  # the presigned URL carries its own authorisation
        for _ in range(FLOWS):
            try:
                asset_id = upload_once(api, storage, data, path.name, content_type)
            except Expired:
                print("the upload URL expired: starting over", file=sys.stderr)
                continue
            except GiveUp as exc:
                print(f"giving up: {exc}", file=sys.stderr)
                return 1
            print(asset_id)
            return 0
    print("giving up: every upload URL expired", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
