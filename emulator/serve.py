"""``upload-emulator serve``: its flags, made from ``Settings`` with argparse, and the server.

Start-up time is a feature here (a CI job starts the emulator on every run), so this module imports only argparse
and the settings until ``run`` needs the server. One flag per ``Settings`` field (``--data-dir`` for ``data_dir``;
the repeatable ``--key`` and ``--rate-limit`` for ``keys`` and ``rate_limits``), its type, help and
``UPLOAD_EMULATOR_*`` variable from the field, so flags, environment and ``--help`` cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import fields
from typing import Any

from emulator.settings import ENV_PREFIX, Settings

DESCRIPTION = "Run the emulator: every provider under its prefix, or one provider at the root with --provider."
WORKER_ARGV = "UPLOAD_EMULATOR_SERVE_WORKER_ARGV"  # how --workers N hands its flags to the worker processes
REPEATABLE = {"keys": ("--key", "PROVIDER=KEY"), "rate_limits": ("--rate-limit", "PROVIDER.LIMIT=N")}


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(
        prog="upload-emulator serve",
        description=DESCRIPTION,
        epilog="A flag wins over its environment variable, which wins over the default.",
    )
    for f in fields(Settings):
        if f.metadata.get("internal"):  # settable in code only (tests), never from the command line
            continue
        help_text = f"{f.metadata['help']} (env: {ENV_PREFIX}{f.name.upper()})"
        if f.name in REPEATABLE:
            flag, metavar = REPEATABLE[f.name]
            out.add_argument(flag, dest=f.name, action="append", metavar=metavar, help=f"{help_text}; repeatable")
        elif Settings.kind(f.name) is bool:
            out.add_argument(
                f"--{f.name.replace('_', '-')}", dest=f.name, action="store_true", default=None, help=help_text
            )
        else:
            out.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f.name,
                metavar=f.name.upper(),
                type=_parse_as(f.name),
                help=help_text,
            )
    return out


def _parse_as(name: str) -> Any:
    def convert(raw: str) -> Any:
        try:
            return Settings.parse(name, raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the converter in its error message
    return convert


def settings_from(argv: list[str]) -> Settings:
    values = vars(parser().parse_args(argv))
    for name in REPEATABLE:
        if values[name]:
            values[name] = Settings.parse(name, ",".join(values[name]))
    settings = Settings.from_env(**values)
    if settings.provider is not None and values["port"] is None and f"{ENV_PREFIX}PORT" not in os.environ:
        from emulator.providers import PROVIDERS

        provider = PROVIDERS.get(settings.provider)
        settings.port = provider.default_port or settings.port if provider else settings.port
    return settings


def run(argv: list[str]) -> None:
    import uvicorn

    from emulator.app import create_app
    from emulator.core.timeouts import head_guard_protocol
    from emulator.providers import PROVIDERS

    try:
        settings = settings_from(argv)
        check_workers(settings)
        application = create_app(settings)  # with --workers, only to refuse bad settings before forking
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    origin = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    # plain lines, never folded: the URLs and keys are meant to be copied
    lines = [f"upload-emulator on {origin}"]
    for name, prov in PROVIDERS.items():
        if settings.provider in (None, name):
            mount = "" if settings.provider else f"/{name}"
            lines.append(
                f"  {prov.title}: {origin}{mount}{prov.specs.server_path}{prov.client_path}  "
                f"(instead of {prov.real_base_url})  dev key: {prov.keys.example}"
            )
    lines.append(
        f"health: {origin}/_emulator/health · control plane: {origin}/_emulator/openapi.json"
        + ("" if settings.admin_token else " (loopback only)")
    )
    lines.append(f"dashboard: {origin}/_emulator/ui")
    aside = application.state.runtime.blobs.set_aside_to
    if aside is not None:
        lines.append(f"--reset-state: the previous state was moved to {aside}")
    print("\n".join(lines), flush=True)
    # SIGTERM drains: no new connections, requests in flight finish; a stalled body ends at body_timeout, and
    # anything still running a few seconds later is cancelled (a cancelled upload keeps nothing)
    drain = math.ceil(settings.body_timeout) + 5 if settings.body_timeout > 0 else None
    protocol = head_guard_protocol(settings.head_timeout, settings.max_header_bytes)
    common: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=drain,
        ws="none",
    )
    if settings.workers == 1:
        uvicorn.run(application, http=protocol, **common)
        return
    application.state.runtime.close()
    os.environ[WORKER_ARGV] = json.dumps(argv)  # the worker processes (spawned) read their settings from it
    # uvicorn imports the app and the protocol by name in each worker: a class made here could not be sent there
    uvicorn.run(
        "emulator.serve:worker_app",
        factory=True,
        workers=settings.workers,
        http=protocol if isinstance(protocol, str) else "emulator.serve:WorkerProtocol",
        **common,
    )


def check_workers(settings: Settings) -> None:
    """More than one worker only on shared state: with their own memory, N workers would be N emulators."""
    if settings.workers < 1:
        raise ValueError(f"--workers {settings.workers}: expected 1 or more")
    if settings.workers > 1 and (settings.state is None or settings.data_dir is None):
        raise ValueError(
            f"--workers {settings.workers} needs --state redis://HOST:PORT/DB and a --data-dir every "
            "worker sees: with their own state, the workers would be separate emulators"
        )


def worker_app() -> Any:
    """One worker's app (``--workers N``), from the flags ``run`` was given."""
    from emulator.app import create_app

    return create_app(settings_from(json.loads(os.environ[WORKER_ARGV])))


def __getattr__(name: str) -> Any:
    """``WorkerProtocol``: the head-guarding protocol class, made in each worker from its settings."""
    if name == "WorkerProtocol":
        from emulator.core.timeouts import head_guard_protocol

        settings = settings_from(json.loads(os.environ[WORKER_ARGV]))
        return head_guard_protocol(settings.head_timeout, settings.max_header_bytes)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
