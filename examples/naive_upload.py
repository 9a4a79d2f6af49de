"""A deliberately naive Segmentflow uploader: no retries, no status checks. ``upload-emulator chaos`` catches it
(tests/test_chaos_examples.py): the first fault it meets, it reports success for an upload that did not happen.

Do not copy this one; copy ``segmentflow_upload.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

base_url, key = os.environ["UPLOAD_EMULATOR_BASE_URL"], os.environ["UPLOAD_EMULATOR_API_KEY"]
path, content_type = Path(os.environ["UPLOAD_EMULATOR_FILE"]), os.environ["UPLOAD_EMULATOR_CONTENT_TYPE"]
data = path.read_bytes()
api = httpx.Client(base_url=base_url, headers={"x-api-key": key})
try:
    issued = api.post(
        "/api/v1/assets/upload-url", json={"filename": path.name, "contentType": content_type, "size": len(data)}
    ).json()
    httpx.put(issued["uploadUrl"], content=data, headers={"Content-Type": content_type})
    asset = api.post(
        "/api/v1/assets",
        json={"filename": path.name, "s3Key": issued["key"], "contentType": content_type, "size": len(data)},
    ).json()
    print(asset.get("asset", {}).get("id", ""))
except Exception:  # noqa: BLE001 - naive on purpose: whatever happens, it says it worked
    pass
