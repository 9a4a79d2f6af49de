"""Response classes with the exact bytes the providers send, rendered fast.

``JSONResponse`` writes the same compact JSON as Starlette's (no spaces, UTF-8, no ASCII escaping) with orjson,
about ten times faster than the standard library's encoder on the emulator's envelopes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            # an integer beyond 64 bits, or a lone surrogate ("\ud800" is valid JSON input): the standard library
            # writes any integer, and a lone surrogate is written as its \u escape, as JavaScript's JSON.stringify
            # does (UTF-8 cannot carry it)
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
            return text.encode("utf-8", "backslashreplace")
