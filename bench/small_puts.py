"""Only the small-upload figure: presigned PUTs of 1 MiB × 200, 8 at a time, to the emulator and moto in one run.

For working on the per-upload fixed cost without the whole of ``run.py --only uploads`` (no ceilings, no 64/500 MiB
classes). Each trial reports MB/s and, per upload, the server's CPU time (user + system, all threads), its system
time and its main thread's CPU time (the emulator's event loop), which other work on a shared machine disturbs far
less than the wall-clock figure.

    python -m bench.small_puts [--trials 5] [--count 200] [--concurrency 8] [--size-kib 1024] [--fresh-pages]
                               [--profile OUT [--native]] [--work DIR] [--baseline DIR]

``--baseline DIR``: also the emulator of another source tree, in the same trials (``bench.forms.Baseline``).

``--fresh-pages``: the regime of ``run.py``'s upload figures (``ceilings.FreshPages``): page-cache writes need pages
the host must back again, which costs this VM 2-4 ms of system time per MiB.

``--profile OUT``: after the trials, one more emulator batch under py-spy (each thread on its own, sampled without
pausing; ``--native``: with C frames, pausing the process), the raw stacks written to OUT and summarised
(``bench/profiling.py``): where the fixed cost per upload goes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import ceilings, profiling, uploads
from bench.forms import Baseline
from bench.peers import Emulator, Moto, default_cache, ensure_moto
from bench.procs import Server, cpu_times


def trial(server: Server, jobs: list[uploads.Job], path: Path, concurrency: int) -> tuple[float, ...]:
    """MB/s, then per upload the server's CPU ms (user + system, all threads), its system ms alone, and the main
    thread's CPU ms (the emulator's event loop), for one batch of jobs."""
    process, main = f"/proc/{server.pid}/stat", f"/proc/{server.pid}/task/{server.pid}/stat"
    before, main_before = cpu_times(process), cpu_times(main)
    timed = uploads.run_jobs(jobs, path, concurrency)
    after, main_after = cpu_times(process), cpu_times(main)
    per_upload = 1e3 / len(jobs)
    return (
        timed.mb_s,
        (sum(after) - sum(before)) * per_upload,
        (after[1] - before[1]) * per_upload,
        (sum(main_after) - sum(main_before)) * per_upload,
    )


def profile(emu: Emulator, path: Path, md5: str, args: argparse.Namespace, rate: int = 200) -> None:
    jobs = uploads.emulator_puts(emu, args.count, path, md5)
    recorder = profiling.attach(
        emu.pid,
        args.profile,
        rate=rate,
        native=args.native,
        threads=not args.native,  # py-spy samples C frames only by pausing the process
    )
    time.sleep(1.0)  # py-spy attaches
    start = time.perf_counter()
    uploads.run_jobs(jobs, path, args.concurrency)
    seconds = time.perf_counter() - start
    profiling.stop(recorder)
    stacks = profiling.parse(args.profile.read_text())
    print(profiling.thread_busy(stacks, seconds, rate))
    flat = [(frames[1:] or ["?"], count) for frames, count in stacks]
    print(profiling.render("emulator, all threads", flat, n=25))


def row(figures: tuple[float, ...]) -> str:
    mb_s, ms, sys_ms, main_ms = figures
    return f"{mb_s:7.0f} MB/s  {ms:6.2f} ms CPU/upload (system {sys_ms:5.2f}; main thread {main_ms:5.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--size-kib", type=int, default=1024)
    parser.add_argument(
        "--fresh-pages",
        action="store_true",
        help="before each trial, use up the pages the kernel could recycle, as run.py does (holds GBs of memory)",
    )
    parser.add_argument("--work", type=Path, help="keep the servers' logs and data here (default: a temp dir)")
    parser.add_argument("--native", action="store_true", help="with --profile: C frames too (pauses the process)")
    parser.add_argument("--profile", type=Path, help="record one more emulator batch with py-spy into this file")
    parser.add_argument("--baseline", type=Path, help="also measure the emulator of this source tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="small-puts-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        path = uploads.make_file(work / "small.bin", args.size_kib * 1024)
        md5 = uploads.md5_of(path)
        emu = Emulator.make(work, "small").run()
        servers: dict[str, Server] = {"emulator": emu}
        if args.baseline is not None:
            baseline = Baseline.make(work, "baseline")
            baseline.extra["source"] = args.baseline
            servers["baseline"] = baseline.run()
        moto = servers["moto"] = Moto.make(work, ensure_moto(default_cache()), "small").run()
        results: dict[str, list[tuple[float, ...]]] = {name: [] for name in servers}
        pages = ceilings.FreshPages()
        try:
            for n in range(args.trials):
                names = list(servers)[n % len(servers) :] + list(servers)[: n % len(servers)]
                for name in names:
                    if args.fresh_pages:
                        pages.enter()
                    server = servers[name]
                    if isinstance(server, Emulator):
                        jobs = uploads.emulator_puts(server, args.count, path, md5)
                    else:
                        jobs = uploads.moto_puts(moto, args.count, md5, "small")
                    results[name].append(trial(server, jobs, path, args.concurrency))
                    print(f"trial {n + 1} {name:8} {row(results[name][-1])}", flush=True)
            if args.profile:
                profile(emu, path, md5, args)
        finally:
            pages.close()
            for server in servers.values():
                server.stop()
        med = {k: tuple(statistics.median(v[i] for v in r) for i in range(4)) for k, r in results.items()}
        for name, figures in med.items():
            print(f"median   {name:8} {row(figures)}")
        for name in [n for n in servers if n != "moto"]:
            ratios = [e[0] / m[0] for e, m in zip(results[name], results["moto"], strict=True)]
            per_trial = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"{name}/moto MB/s per trial: {per_trial}; median {statistics.median(ratios):.2f}")
            print(f"CPU per upload, moto/{name}: {med['moto'][1] / med[name][1]:.2f}")


if __name__ == "__main__":
    main()
