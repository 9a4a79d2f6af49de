"""CPU cost of one JSON request inside the app, without sockets: the emulator's ASGI app against ``bare.py``.

Calls each app directly with an ASGI scope for ``POST .../v1/media/upload`` and counts the process's CPU time
(``time.process_time``), so other work on the machine does not inflate the figure the way it inflates wall-clock
throughput; then runs the same loop under cProfile for the breakdown. Run by ``run.py --profile``.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import time
from collections.abc import Callable
from typing import Any

from bench.peers import JSON_BODY, PE_KEY, PE_PATH, RATE_LIMITS

BODY = json.dumps(JSON_BODY).encode()


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {PE_KEY}".encode()),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def _one(app: Callable[..., Any], path: str) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path), receive, send)
    return status


async def _loop(app: Callable[..., Any], path: str, n: int) -> None:
    for _ in range(n):
        status = await _one(app, path)
        if status != 201:
            raise RuntimeError(f"{path} answered {status}")


def apps() -> dict[str, tuple[Callable[..., Any], str]]:
    from emulator.app import create_app
    from emulator.settings import Settings

    from bench.bare import app as bare

    limits = Settings.parse("rate_limits", ",".join(RATE_LIMITS))
    return {
        "emulator": (create_app(Settings(rate_limits=limits)), f"/posteverywhere/api{PE_PATH}"),
        "bare": (bare, f"/api{PE_PATH}"),
    }


def cpu_us_per_request(n: int = 5000, rounds: int = 3) -> dict[str, float]:
    """Best of ``rounds`` loops of ``n`` requests, CPU µs per request, per app."""
    out = {}
    for name, (app, path) in apps().items():
        asyncio.run(_loop(app, path, 200))  # warm caches
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            asyncio.run(_loop(app, path, n))
            best = min(best, (time.process_time() - start) / n * 1e6)
        out[name] = best
    return out


def profile_emulator(n: int = 5000, top: int = 30) -> str:
    """cProfile of ``n`` emulator requests: functions by cumulative time (cProfile's overhead inflates every
    figure; the shares are what to read)."""
    app, path = apps()["emulator"]
    asyncio.run(_loop(app, path, 200))
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_loop(app, path, n))
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((cumtime, tottime, ncalls, f"{func} ({file.split('site-packages/')[-1]}:{line})"))
    rows.sort(reverse=True)
    lines = [f"{'cum %':>6} {'self %':>6} {'calls/req':>9}  function"]
    for cumtime, tottime, ncalls, name in rows[:top]:
        lines.append(f"{cumtime / total:6.1%} {tottime / total:6.1%} {ncalls / n:9.1f}  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(cpu_us_per_request())
    print(profile_emulator())
