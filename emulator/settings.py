"""Every setting, with its default, its flag and its ``UPLOAD_EMULATOR_*`` environment variable."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "UPLOAD_EMULATOR_"


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _keys(value: str) -> dict[str, list[str]]:
    """``posteverywhere=pe_live_...,posteverywhere=pe_live_...`` → {provider: [keys]}."""
    out: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        provider, _, key = item.partition("=")
        if not key:
            raise ValueError(f"{ENV_PREFIX}KEYS: expected PROVIDER=KEY, got {item!r}")
        out.setdefault(provider.strip(), []).append(key.strip())
    return out


def _limits(value: str) -> dict[str, int]:
    """``posteverywhere.minute=600,posteverywhere.posts-minute=100`` → {"provider.limit": n}; 0 refuses everything."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, number = item.partition("=")
        if not re.fullmatch(r"[0-9]{1,18}", number.strip()):  # ASCII digits: "-1", "²" and "1e3" are refused
            raise ValueError(f"--rate-limit / {ENV_PREFIX}RATE_LIMITS: expected PROVIDER.LIMIT=N with N a whole "
                             f"number >= 0 (at most 18 digits; 0 refuses every request), got {item!r}")
        out[name.strip()] = int(number)
    return out


@dataclass
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "Interface to listen on."})
    port: int = field(default=8080, metadata={"help": "Port to listen on."})
    provider: str | None = field(default=None, metadata={
        "help": "Serve only this provider, at the root of the port (clients swap only scheme+host)."})
    data_dir: Path | None = field(default=None, metadata={
        "help": "Keep uploaded bytes here (default: a temporary directory removed at exit)."})
    public_url: str | None = field(default=None, metadata={
        "help": "Base URL clients reach the emulator at, used in presigned URLs (default: the request's host)."})
    strict_keys: bool = field(default=False, metadata={
        "help": "Accept only keys from --key / UPLOAD_EMULATOR_KEYS (default: any well-formed key)."})
    keys: dict[str, list[str]] = field(default_factory=dict, metadata={
        "help": "Configured keys, PROVIDER=KEY, comma-separated.", "parse": _keys})
    rate_limits: dict[str, int] = field(default_factory=dict, metadata={
        "help": "Override rate limits, PROVIDER.LIMIT=N, comma-separated (see README).", "parse": _limits})
    max_tracked_keys: int = field(default=100_000, metadata={
        "help": "Most keys whose rate-limit windows are kept; past it the least recently seen key is forgotten "
                "(see README)."})
    strict: bool = field(default=False, metadata={
        "help": "Validate every response against the spec; a mismatch is a 500 and a loud log line."})
    strict_docs: bool = field(default=False, metadata={
        "help": "Refuse the undocumented request forms official clients send (accepted and journaled by default)."})
    seed: int | None = field(default=None, metadata={"help": "Seed ids for reproducible runs."})
    video_processing_seconds: float = field(default=0.0, metadata={
        "help": "Virtual seconds a completed video stays 'processing' before it is 'ready'."})
    max_json_body: int = field(default=1024 * 1024, metadata={"help": "Largest JSON request body, in bytes."})
    admin_token: str | None = field(default=None, metadata={
        "help": "Open the control plane (/_emulator) to other hosts that send Authorization: Bearer <token>."})
    log_level: str = field(default="info", metadata={"help": "uvicorn log level."})
    head_timeout: float = field(default=10.0, metadata={
        "help": "Seconds a client may take to send a request line and headers (from connecting, or from the first "
                "byte of a request) before it gets 408 and the connection is closed; 0 waits forever."})
    body_timeout: float = field(default=30.0, metadata={
        "help": "Seconds a request body may stall (no bytes arriving) before it is refused with 400 "
                "RequestTimeout; 0 waits forever."})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = cls.parse(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def parse(cls, name: str, raw: str) -> Any:
        f = next(f for f in fields(cls) if f.name == name)
        if "parse" in f.metadata:
            return f.metadata["parse"](raw)
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if kind.startswith("bool"):
            return _bool(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("Path"):
            return Path(raw)
        return raw
