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
    worker = dict(
        factory=True,
        workers=settings.workers,
        http=protocol if isinstance(protocol, str) else "emulator.serve:WorkerProtocol",
        **common,
    )
    if balanced():
        serve_balanced(uvicorn.Config("emulator.serve:worker_app", **worker))
    else:
        uvicorn.run("emulator.serve:worker_app", **worker)


def balanced() -> bool:
    """Whether the workers can each listen on the port: Linux spreads the connections of an address over the
    listening sockets bound to it with SO_REUSEPORT (by a hash of each connection's addresses); elsewhere the option
    only lets sockets share a port, or does not exist."""
    import socket

    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int) -> Any:
    """A socket bound to ``host``:``port`` with SO_REUSEPORT, not yet listening (as uvicorn binds its own: the
    address family from the host, SO_REUSEADDR)."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class OwnListener:
    """What ``serve_balanced`` hands uvicorn as the workers' socket: each worker process unpickles it as a listening
    socket of its own, bound to the address with SO_REUSEPORT, so the kernel spreads new connections over the
    workers. uvicorn's one shared socket does not: whichever worker wakes first accepts every connection waiting
    (uvloop accepts until none is left), and 32 connections opened at once went 32/0, 28/4 and 22/10 over two
    workers (bench/README.md, "Scale out"), leaving one worker busy and the other idle for as long as they stay open.

    uvicorn starts its workers as spawned processes with their sockets pickled (``uvicorn.supervisors``), also each
    worker it restarts; ``tests/test_scale_out.py`` checks that the connections of a burst land on both workers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def serve_balanced(config: Any) -> None:
    """uvicorn's ``--workers`` supervisor (restarts, signals, health checks) with one listening socket per worker.

    The port stays reserved by a socket of this process, bound with SO_REUSEPORT and never listening (so it takes
    no connection): anything else on the port makes that bind fail, as uvicorn's own bind would; another emulator
    whose workers listen there with SO_REUSEPORT would let it through, so a connection that succeeds is refused."""
    import logging
    import socket

    from uvicorn.supervisors import Multiprocess

    logger = logging.getLogger("uvicorn.error")
    host, port = config.host, config.port
    try:
        reserved = reuse_port_socket(host, port)
    except OSError as exc:
        logger.error("%s while attempting to bind on address %s", exc, (host, port))
        raise SystemExit(1) from None
    with reserved:
        port = reserved.getsockname()[1]  # (--port 0: the port the system chose, for every worker)
        probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        try:
            socket.create_connection((probe, port), timeout=1).close()
        except OSError:
            pass  # nobody listens there: the port is this emulator's
        else:
            logger.error("address %s is already served by another process", (host, port))
            raise SystemExit(1)
        logger.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, port)
        Multiprocess(config, sockets=[OwnListener(host, port)]).run()  # type: ignore[list-item]


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
