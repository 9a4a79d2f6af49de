"""Every setting, with its default, its flag and its ``UPLOAD_EMULATOR_*`` environment variable.

``Settings`` is the one typed definition: each field's type says how its flag and its variable are read (``kind``),
and a field whose text form is not one of those types names its own parser in its metadata (``parse``).
"""

from __future__ import annotations

import functools
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "UPLOAD_EMULATOR_"


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _keys(value: str) -> dict[str, list[str]]:
    """``provider=KEY,provider=KEY`` → {provider: [keys]}."""
    out: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        provider, _, key = item.partition("=")
        if not key:
            raise ValueError(f"{ENV_PREFIX}KEYS: expected PROVIDER=KEY, got {item!r}")
        out.setdefault(provider.strip(), []).append(key.strip())
    return out


def _limits(value: str) -> dict[str, int]:
    """``provider.minute=600,provider.posts-minute=100`` → {"provider.limit": n}; 0 refuses everything."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, number = item.partition("=")
        if not re.fullmatch(r"[0-9]{1,18}", number.strip()):  # ASCII digits: "-1", "²" and "1e3" are refused
            raise ValueError(
                f"--rate-limit / {ENV_PREFIX}RATE_LIMITS: expected PROVIDER.LIMIT=N with N a whole "
                f"number >= 0 (at most 18 digits; 0 refuses every request), got {item!r}"
            )
        out[name.strip()] = int(number)
    return out


@dataclass
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "Interface to listen on."})
    port: int = field(default=8080, metadata={"help": "Port to listen on."})
    provider: str | None = field(
        default=None,
        metadata={"help": "Serve only this provider, at the root of the port (clients swap only scheme+host)."},
    )
    data_dir: Path | None = field(
        default=None, metadata={"help": "Keep uploaded bytes here (default: a temporary directory removed at exit)."}
    )
    state: str | None = field(
        default=None,
        metadata={
            "help": "Keep the state on Redis, redis://HOST:PORT/DB, so several processes or replicas act as one "
            "emulator (blobs in a --data-dir they all see); default: in memory, or SQLite in --data-dir."
        },
    )
    workers: int = field(
        default=1,
        metadata={"help": "serve: worker processes on one port (more than 1 needs --state redis://… and --data-dir)."},
    )
    public_url: str | None = field(
        default=None,
        metadata={
            "help": "Base URL clients reach the emulator at, used in presigned URLs (default: the request's host)."
        },
    )
    strict_keys: bool = field(
        default=False,
        metadata={"help": "Accept only keys from --key / UPLOAD_EMULATOR_KEYS (default: any well-formed key)."},
    )
    keys: dict[str, list[str]] = field(
        default_factory=dict, metadata={"help": "Configured keys, PROVIDER=KEY, comma-separated.", "parse": _keys}
    )
    rate_limits: dict[str, int] = field(
        default_factory=dict,
        metadata={
            "help": "Override rate limits, PROVIDER.LIMIT=N, comma-separated (see docs/settings.md).",
            "parse": _limits,
        },
    )
    max_tracked_keys: int = field(
        default=100_000,
        metadata={
            "help": "Most keys whose rate-limit windows are kept; past it the least recently seen key is forgotten "
            "(see docs/reliability-and-security.md)."
        },
    )
    strict: bool = field(
        default=False,
        metadata={"help": "Validate every response against the spec; a mismatch is a 500 and a loud log line."},
    )
    strict_docs: bool = field(
        default=False,
        metadata={
            "help": "Refuse the undocumented request forms official clients send (accepted and journaled by default)."
        },
    )
    seed: int | None = field(default=None, metadata={"help": "Seed ids for reproducible runs."})
    video_processing_seconds: float = field(
        default=0.0, metadata={"help": "Virtual seconds a completed video stays 'processing' before it is 'ready'."}
    )
    max_json_body: int = field(default=1024 * 1024, metadata={"help": "Largest JSON request body, in bytes."})
    admin_token: str | None = field(
        default=None,
        metadata={
            "help": "Open the control plane (/_emulator) to other hosts that send Authorization: Bearer <token>."
        },
    )
    journal_max_bytes: int = field(
        default=32 * 1024 * 1024,
        metadata={
            "help": "Bytes the request journal may hold (estimated); past them, or past 10,000 entries, the oldest "
            "entries go."
        },
    )
    log_level: str = field(default="info", metadata={"help": "uvicorn log level."})
    head_timeout: float = field(
        default=10.0,
        metadata={
            "help": "Seconds a client may take to send a request line and headers (from connecting, or from the first "
            "byte of a request) before it gets 408 and the connection is closed; 0 waits forever."
        },
    )
    max_header_bytes: int = field(
        default=16384,
        metadata={
            "help": "Largest request head (request line and headers), in bytes: a longer one gets 431 and the "
            "connection is closed (a request line over 8192 bytes: 414); 0 sets no limit."
        },
    )
    chaos_max_wait: float = field(
        default=2.0,
        metadata={
            "help": "upload-emulator chaos: the longest Retry-After, delay or stall a schedule draws, in seconds."
        },
    )
    chaos_max_retries: int = field(
        default=10,
        metadata={
            "help": "upload-emulator chaos: the retries a client may send of one request (more is a request storm)."
        },
    )
    body_timeout: float = field(
        default=30.0,
        metadata={
            "help": "Seconds a request body may stall (no bytes arriving) before it is refused with 400 "
            "RequestTimeout; 0 waits forever."
        },
    )
    abandoned_after: float = field(
        default=86400.0,
        metadata={
            "help": "Virtual seconds after which an upload never finished is removed with its bytes (as an S3 "
            "lifecycle rule's AbortIncompleteMultipartUpload does); 0 keeps them forever."
        },
    )
    reset_state: bool = field(
        default=False,
        metadata={
            "help": "With --data-dir: move what is stored there (state file and bytes) aside into DIR/aside-<time>/ "
            "and start empty; nothing is deleted."
        },
    )
    buffered_writes: bool = field(
        default=False,
        metadata={
            "help": "Write uploaded bytes through the page cache instead of past it (O_DIRECT, the default where the "
            "file system allows): for a --data-dir on a disk slower than memory, where direct writes run at the "
            "disk's speed."
        },
    )
    fetch_urls: bool = field(
        default=False,
        metadata={
            "help": "Really fetch the https URLs given to an upload-from-url operation (public addresses only, "
            "25 MB, timeouts, redirects checked again); by default nothing is fetched and a bundled sample "
            "of the URL's type is stored."
        },
    )
    # Tests only, and on purpose neither a flag nor an environment variable (``internal``): lets --fetch-urls reach
    # the tests' own TLS server on loopback, trusting the CA (a PEM file) that signed its certificate.
    test_only_fetch_loopback_ca: Path | None = field(
        default=None,
        metadata={
            "help": "TESTS ONLY: admit loopback addresses for --fetch-urls and trust this CA file.",
            "internal": True,
        },
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.metadata.get("internal"):  # settable in code only, never from the environment
                continue
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = cls.parse(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def kind(cls, name: str) -> type:
        """The type a field holds, ``None`` aside: ``int`` for ``port``, ``Path`` for ``data_dir: Path | None``."""
        hint = _hints()[name]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return typing.get_origin(hint) or hint

    @classmethod
    def parse(cls, name: str, raw: str) -> Any:
        """A field's value from its text form (a flag's argument or an environment variable)."""
        f = next(f for f in fields(cls) if f.name == name)
        if "parse" in f.metadata:
            return f.metadata["parse"](raw)
        return _READERS[cls.kind(name)](raw)


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


# how a field of each type is read from text; a field of another type must name its own ``parse`` in its metadata
_READERS: dict[type, Callable[[str], Any]] = {bool: _bool, int: int, float: float, Path: Path, str: str}
