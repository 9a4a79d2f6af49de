"""Secrets out of the journal and every log line: query values that may hold a key or a signature become REDACTED.

Keys travel in headers, which neither the journal (it keeps a few named headers, never ``Authorization``) nor any
log line holds (uvicorn's trace log shows headers as ``<...>``). But presigned URLs carry their signature in the
query string, a client may put a key there too (``?api_key=…``), and uvicorn logs query strings: the access log
(``serve`` runs without it, anyone may turn it on) and, at ``--log-level trace``, every request's ASGI scope. The
journal redacts the values of ``SECRET_QUERY`` names, and ``redact_logs`` gives uvicorn's loggers the same
redaction at every level.
"""

from __future__ import annotations

import logging
import re
import string
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

# query names whose values are secrets (compared lowercase, after percent-decoding)
SECRET_QUERY = frozenset(
    {
        "x-emulator-signature",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "authorization",
        "password",
        "secret",
        "client_secret",
        "api_key",
        "api-key",
        "apikey",
        "x-api-key",
        "key",
        "access_key",
        "access-key",
        "accesskey",
    }
)
REDACTED = "REDACTED"


def redact_query(query: str) -> str:
    """A query string with secret values replaced (as the journal stores it: parsed and encoded again)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in SECRET_QUERY else v) for k, v in pairs])


# ``name=value`` anywhere in a text: a query string, a URL, the repr of an ASGI scope's query_string. A name is the
# longest run of these characters before an "=" (percent-encoded, or with "+" for spaces, it is compared decoded); its
# value ends where a query value, a word or a quoted repr ends, and an "=" inside a value starts no pair.
_NAME_CHARS = string.ascii_letters + string.digits + "_.~%+-"
_VALUE = re.compile(r"[^&\s'\"]*")


def redact_text(text: str) -> str:
    """``text`` with the value of every secret ``name=value`` pair replaced, the rest left exactly as it was.

    Written as a scan from one "=" to the next rather than one regular expression over the text: the pattern
    ``(?<![name chars])[name chars]+=…`` (what this did before) is tried at every position of the text, ~15 µs for the
    800-byte answer of an upload with its presigned URL, on every journal entry the Redis store writes; this looks
    only at the few "=" (~3 µs). tests/test_redaction.py checks both give the same text for any input."""
    if "=" not in text:
        return text
    out: list[str] = []
    done = start = 0  # text[:done] is in ``out``; text[start:] is still to scan
    while (equals := text.find("=", start)) != -1:
        head = text[start:equals]  # a name never spans an "=", nor starts before ``start`` (a non-name character)
        name = head[len(head.rstrip(_NAME_CHARS)) :]
        if not name:
            start = equals + 1
            continue
        end = _VALUE.match(text, equals + 1).end()  # type: ignore[union-attr]  # matches anywhere (may be empty)
        decoded = unquote_plus(name) if "%" in name or "+" in name else name
        if decoded.lower() in SECRET_QUERY:
            out += (text[done : equals + 1], REDACTED)
            done = end
        start = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact_text(arg)
    if isinstance(arg, bytes) and b"=" in arg:
        return redact_text(arg.decode("latin-1")).encode("latin-1")
    if isinstance(arg, dict) and isinstance(arg.get("query_string"), bytes):  # an ASGI scope at trace level
        return {**arg, "query_string": _redact_arg(arg["query_string"])}
    return arg


class RedactSecrets(logging.Filter):
    """Redacts the record's message and arguments in place, keeping their shape: uvicorn's access formatter reads
    its five arguments (client, method, path with query, HTTP version, status) one by one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        if record.exc_info and not record.exc_text:  # a traceback's messages may quote a URL: formatted here once
            record.exc_text = redact_text(_TRACEBACKS.formatException(record.exc_info))
        return True


_TRACEBACKS = logging.Formatter()


# every logger uvicorn writes a request's query to: a logger's filters see the records logged on it, not those its
# children pass up, so each one gets the filter
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def redact_logs() -> None:
    """Install the filter once per process (apps built later share it); uvicorn's logging set-up keeps it."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
