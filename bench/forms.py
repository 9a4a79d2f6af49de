"""Form uploads only: one 20 MiB PNG and 20 at once, emulator vs moto in the same run, with server CPU per upload.

    python -m bench.forms --trials 3 --fresh-pages   # MB/s, CPU-seconds per upload, peak RSS, same-run ratios
    python -m bench.forms --trials 1 --profile       # ... and py-spy (per thread) of the emulator's 20 at once

A quick loop for work on the form path (``bench/run.py --only multipart,rss`` is the reference figure). On a shared
machine wall-clock MB/s drifts: the server's CPU-seconds per upload (user + system, all threads, from /proc) is
the figure to compare between versions of the code, the same-run ratio the one to compare against moto. Servers are
fresh for each concurrency, so the peak RSS of the 20-at-once case is that case's own; each server takes one
upload before its first trial (not counted: the first form of a process compiles its validator). ``--fresh-pages``
sets up ``bench/run.py``'s regime (new page-cache pages for every write; it holds GBs of memory while it runs);
without it the writes recycle pages and cost a tenth of the system time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import ceilings, peers, png, profiling, uploads
from bench.peers import Emulator, Moto
from bench.procs import Server, cpu_times

MIB = 1 << 20
RATE = 200  # py-spy samples per second


class Baseline(Emulator):
    """The emulator of another source tree, for before/after in one run: ``git archive <commit> emulator specs
    contracts | tar -x -C DIR``, then ``--baseline DIR`` (its ``PYTHONPATH`` goes before the installed project)."""

    def run(self) -> Baseline:
        tmpdir = self.extra["tmpdir"]
        tmpdir.mkdir(parents=True, exist_ok=True)
        self.start(self.ready, env=peers.clean_env(TMPDIR=str(tmpdir), PYTHONPATH=str(self.extra["source"])))
        return self


def make_jobs(server: Server, n: int, path: Path, prefix: str) -> list[uploads.Job]:
    if isinstance(server, Emulator):
        return uploads.emulator_forms(server, n, path)
    assert isinstance(server, Moto)
    return uploads.moto_forms(server, n, prefix)


def loop_cpu_seconds(server: Server) -> float:
    """User + system CPU of the server's main thread (the event loop's, for the emulator and moto alike)."""
    return sum(cpu_times(f"/proc/{server.pid}/task/{server.pid}/stat"))


def measure(server: Server, jobs: list[uploads.Job], path: Path, conc: int) -> tuple[float, float, float]:
    """(MB/s, server CPU-seconds per upload, main thread's CPU-seconds per upload) of one batch of jobs."""
    cpu, loop = server.cpu_seconds(), loop_cpu_seconds(server)
    timed = uploads.run_jobs(jobs, path, conc)
    return timed.mb_s, (server.cpu_seconds() - cpu) / len(jobs), (loop_cpu_seconds(server) - loop) / len(jobs)


def profiled(server: Server, jobs: list[uploads.Job], path: Path, conc: int, out: Path, native: bool) -> float:
    """``measure`` under py-spy; prints each thread's busy share and the top frames. Returns MB/s."""
    recorder = profiling.attach(server.pid, out, rate=RATE, native=native, threads=not native)
    time.sleep(1.0)  # py-spy attaches
    mb_s, _, _ = measure(server, jobs, path, conc)
    profiling.stop(recorder)
    stacks = profiling.parse(out.read_text())
    seconds = len(jobs) * path.stat().st_size / mb_s / 1e6
    print(profiling.thread_busy(stacks, seconds, RATE))
    print(profiling.render(f"emulator, {len(jobs)} forms, {conc} at once", stacks, n=20))
    return mb_s


def case(args: argparse.Namespace, work: Path, path: Path, count: int, moto_python: Path | None) -> None:
    servers: dict[str, Server] = {}
    try:
        if "emulator" in args.only:
            servers["emulator"] = Emulator.make(work, f"forms{count}").run()
        if args.baseline is not None:
            baseline = Baseline.make(work, f"baseline{count}")
            baseline.extra["source"] = args.baseline
            servers["baseline"] = baseline.run()
        if moto_python is not None:
            servers["moto"] = Moto.make(work, moto_python, f"forms{count}").run()
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in servers}
        for trial in range(args.trials):
            names = list(servers)[trial % len(servers) :] + list(servers)[: trial % len(servers)]
            for name in names:
                server = servers[name]
                n = args.serial if count == 1 else count
                if trial == 0:
                    uploads.run_jobs(make_jobs(server, 1, path, "warm"), path, 1)
                jobs = make_jobs(server, n, path, f"forms{count}-{trial}")
                if args.profile and name == "emulator" and trial == args.trials - 1:
                    profiled(server, jobs, path, count, work / "profile.txt", args.native)
                    continue
                mb_s, cpu, loop = measure(server, jobs, path, count)
                results[name].append((mb_s, cpu, loop))
                print(
                    f"{count} at once, {name} trial {trial + 1}: {mb_s:,.0f} MB/s, {cpu * 1000:.0f} ms CPU/upload "
                    f"({loop * 1000:.0f} ms of it on the main thread)"
                )
        summary = {
            name: (
                statistics.median(r[0] for r in rows),
                statistics.median(r[1] for r in rows),
                statistics.median(r[2] for r in rows),
            )
            for name, rows in results.items()
            if rows
        }
        line = ", ".join(
            f"{name} {mb:,.0f} MB/s {cpu * 1000:.0f} ms CPU/upload ({loop * 1000:.0f} ms main thread), "
            f"peak RSS {servers[name].peak_rss_mib():.0f} MiB"
            for name, (mb, cpu, loop) in summary.items()
        )
        for name in ("emulator", "baseline"):
            if name in summary and "moto" in summary:
                (emu_mb, emu_cpu, _), (moto_mb, moto_cpu, _) = summary[name], summary["moto"]
                line += f"; {name} ÷ moto {emu_mb / moto_mb:.2f}x MB/s, {moto_cpu / emu_cpu:.2f}x per CPU-second"
        print(f"== {count} at once (median of {args.trials}): {line}", flush=True)
    finally:
        for server in servers.values():
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--counts", default="1,20", help="uploads at once, per case")
    parser.add_argument("--serial", type=int, default=5, help="uploads per trial, one after the other, at 1 at once")
    parser.add_argument("--only", default="emulator,moto", help="servers to measure")
    parser.add_argument(
        "--fresh-pages",
        action="store_true",
        help="use up and hold the pages the kernel could recycle before each case, as bench/run.py does (GBs held)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the emulator in its last trial of each case")
    parser.add_argument("--native", action="store_true", help="profile C frames too (py-spy then pauses the process)")
    parser.add_argument("--baseline", type=Path, default=None, help="also measure the emulator of this source tree")
    parser.add_argument("--cache-dir", type=Path, default=peers.default_cache())
    args = parser.parse_args(argv)
    args.only = {n.strip() for n in args.only.split(",") if n.strip()}
    work = Path(tempfile.mkdtemp(prefix="upload-emulator-forms-"))
    pages = ceilings.FreshPages()
    try:
        moto_python = peers.ensure_moto(args.cache_dir) if "moto" in args.only else None
        path = png.form_image(work / "20MiB.png")
        for count in (int(c) for c in args.counts.split(",")):
            if args.fresh_pages:
                print(f"fresh pages: held {pages.enter()} MiB more", flush=True)
            case(args, work, path, count, moto_python)
    finally:
        pages.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
