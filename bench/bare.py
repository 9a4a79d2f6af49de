"""Calibration: the least a Starlette + uvicorn endpoint can do for the same request (parse JSON, answer 201).

Served by ``uvicorn bench.bare:app`` with the emulator's server settings (uvloop, httptools, no access log). The
emulator's ratio to it is its own overhead, and it moves with the machine's load like the emulator does, so runs on
a busy and a quiet machine can be compared through it.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def upload(request: Request) -> Response:
    body = json.loads(await request.body())
    if request.headers.get("authorization", "")[:7] != "Bearer " or not isinstance(body, dict):
        return Response(status_code=400)
    answer = {"data": {"media_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890", **body}, "error": None, "meta": {}}
    return Response(json.dumps(answer), status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/api/v1/media/upload", upload, methods=["POST"])])
