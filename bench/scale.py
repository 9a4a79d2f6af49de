"""Scale-out benchmark (issue 19): validated JSON throughput with the memory store vs the Redis store on one
process, and one vs two processes (``--workers 2``) on Redis, in one run, with every server's CPU and the load
generator's.

    .venv/bin/pip install -e '.[redis]' && .venv/bin/python -m bench.scale --seconds 5 --trials 3

Needs ``wrk`` and ``redis-server`` (Debian packages ``wrk``, ``redis-server``); starts its own Redis on a free
loopback port without persistence and stops everything it started. Goals (issue 19): the Redis store keeps at least
65 % of the memory store's throughput on one process, and two processes reach at least 1.5x one process. On a
2-core machine the load generator and Redis share the cores with the emulator: the table shows their CPU, which
explains a figure that misses (two workers cannot use two cores when wrk and Redis take half of one).
Nothing here is a test; no CI job runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import wrk
from bench.peers import JSON_BODY, PE_KEY, Emulator
from bench.procs import Server, free_port


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (uvicorn's workers), from /proc."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("needs redis-server (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def emulators(work: Path, url: str) -> dict[str, Server]:
    memory = Emulator.make(work, "memory-1")
    redis_one = Emulator.make(work, "redis-1")
    redis_one.cmd += ["--state", url, "--data-dir", str(work / "data-redis")]
    redis_two = Emulator.make(work, "redis-2")
    redis_two.cmd += ["--state", url, "--data-dir", str(work / "data-redis"), "--workers", "2"]
    return {"memory, 1 process": memory, "redis, 1 process": redis_one, "redis, 2 processes": redis_two}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="upload-emulator-bench-scale-"))
    redis, url = start_redis(work)
    results: dict[str, list[dict[str, float]]] = {}
    try:
        script = work / "post.lua"
        script.write_text(
            wrk.lua_script(
                "POST", {"Content-Type": "application/json", "Authorization": f"Bearer {PE_KEY}"}, json.dumps(JSON_BODY)
            )
        )
        for name, server in emulators(work, url).items():  # one at a time: each gets the whole machine
            emulator: Emulator = server  # type: ignore[assignment]  # emulators() makes only Emulator servers
            with server.start(emulator.ready):
                wrk.run(emulator.json_url, str(script), args.connections, 1.0)  # warm-up
                for _ in range(args.trials):
                    cpu, redis_cpu = tree_cpu(server.pid), tree_cpu(redis.pid)
                    children = resource.getrusage(resource.RUSAGE_CHILDREN)
                    result = wrk.run(emulator.json_url, str(script), args.connections, args.seconds)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    results.setdefault(name, []).append(
                        {
                            "rps": result.requests_per_s,
                            "p99_ms": result.p99_ms,
                            "clean": float(result.clean),
                            "server_cpu": (tree_cpu(server.pid) - cpu) / args.seconds,
                            "redis_cpu": (tree_cpu(redis.pid) - redis_cpu) / args.seconds,
                            "wrk_cpu": (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
                            / args.seconds,
                        }
                    )
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    return 0


def table(results: dict[str, list[dict[str, float]]]) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    base = median("memory, 1 process", "rps")
    one = median("redis, 1 process", "rps")
    lines = [
        "| configuration | req/s (median) | vs memory, 1 process | p99 ms | emulator CPU | redis CPU | wrk CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in results:
        clean = "" if all(r["clean"] for r in results[name]) else " (errors: see wrk)"
        lines.append(
            f"| {name} | {median(name, 'rps'):,.0f}{clean} | {median(name, 'rps') / base:.2f}x | "
            f"{median(name, 'p99_ms'):.1f} | {median(name, 'server_cpu'):.0%} | "
            f"{median(name, 'redis_cpu'):.0%} | {median(name, 'wrk_cpu'):.0%} |"
        )
    two = median("redis, 2 processes", "rps")
    lines.append("")
    lines.append(
        f"Redis store on one process: {one / base:.0%} of the memory store (goal: at least 65 %); "
        f"two processes: {two / one:.2f}x one (goal: at least 1.5x). CPU figures are cores used."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
