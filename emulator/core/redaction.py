"""Secrets out of uvicorn's access log: query values that may hold a key or a signature are logged as REDACTED.

``serve`` runs with the access log off, and keys travel in headers, which no log line holds. But a client may put a
key in a query string (``?api_key=…``), presigned URLs carry their signature there, and anyone may run the app
with uvicorn's access log on; this filter gives the access log the journal's redaction.
"""

from __future__ import annotations

import logging

from emulator.core.journal import redact_query

ACCESS_LOGGER = "uvicorn.access"


class RedactQuery(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's access record: (client address, method, path with query, HTTP version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            path, _, query = args[2].partition("?")
            record.args = (args[0], args[1], f"{path}?{redact_query(query)}", args[3], args[4])
        return True


def redact_access_log() -> None:
    """Install the filter once per process (apps built later share it)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQuery) for f in logger.filters):
        logger.addFilter(RedactQuery())
