"""Where a cold start goes: ``upload-emulator serve`` from spawn to its first answer, in phases, without a profiler.

The child runs the real console entry point (``emulator.main:main``) with two wrappers that only take the time:
``create_app`` (called by ``serve`` once its command line is parsed) and uvicorn's ``Server.startup`` (the
socket is listening). The parent spawns it, polls the JSON operation as ``procs.Server.start`` does and notes the
first 201. Every mark is ``time.time()``, so parent and child marks share one clock. Run by ``run.py --profile``,
or alone: ``python -m bench.startup``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peers import PE_KEY, PE_PATH, RATE_LIMITS, clean_env
from bench.procs import free_port

CHILD = r"""
import time; marks = {"interpreter ready": time.time()}
import json, sys
out = sys.argv.pop(1)
from emulator.main import main
import uvicorn, emulator.app, emulator.serve
marks["imports done (emulator.main, emulator.serve, uvicorn, emulator.app)"] = time.time()
create = emulator.app.create_app
def create_app(*args, **kwargs):
    marks["serve's command line parsed (argparse)"] = time.time()
    app = create(*args, **kwargs)
    marks["create_app returned"] = time.time()
    return app
emulator.app.create_app = create_app
startup = uvicorn.Server.startup
async def listening(self, *args, **kwargs):
    await startup(self, *args, **kwargs)
    marks["uvicorn listening"] = time.time()
    with open(out, "w") as fh:
        json.dump(marks, fh)
uvicorn.Server.startup = listening
main()
"""


def one(port: int, out: Path) -> dict[str, float]:
    """Seconds from spawn to each mark (and to the first 201), for one start."""
    from bench import client

    cmd = [
        sys.executable,
        "-c",
        CHILD,
        str(out),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    for limit in RATE_LIMITS:
        cmd += ["--rate-limit", limit]
    url = f"http://127.0.0.1:{port}/posteverywhere/api{PE_PATH}"
    body = json.dumps({"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}).encode()
    spawned = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    try:
        while True:
            try:
                if (
                    client.request(
                        url, "POST", {"Authorization": f"Bearer {PE_KEY}", "Content-Type": "application/json"}, body
                    ).status
                    == 201
                ):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() - spawned > 60:
                raise RuntimeError("the emulator did not answer")
            time.sleep(0.005)
        first = time.time()
    finally:
        proc.terminate()
        proc.wait(15)
    marks = {name: at - spawned for name, at in json.loads(out.read_text()).items()}
    return {**marks, "first 201 answered": first - spawned}


def phases(rounds: int = 5) -> str:
    """The median time of each phase over ``rounds`` starts, as a small table."""
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(rounds):
            runs.append(one(free_port(), Path(scratch) / f"marks-{round_}.json"))
    names = list(runs[0])
    at = {name: statistics.median(run[name] for run in runs) for name in names}
    lines = [
        f"### `upload-emulator serve` start-up by phase (median of {rounds} starts, no profiler)",
        "",
        "| phase | ends at | takes |",
        "|---|---|---|",
    ]
    before = 0.0
    for name in names:
        lines.append(f"| {name} | {at[name] * 1000:,.0f} ms | {(at[name] - before) * 1000:,.0f} ms |")
        before = at[name]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(phases())
