"""Run every benchmark of issues 10 and 22 on this machine and print one table of figures and same-run ratios.

    python bench/run.py                  # everything (~8 min on 2 cores), table on stdout
    python bench/run.py --write-readme   # ... and replace the table and its chart (bench/ratios.png) in bench/README.md
    python bench/run.py --only json,cold --trials 1 --seconds 2   # a quick partial run
    python bench/run.py --profile        # also record py-spy profiles (JSON load, 500 MiB PUT, start-up)

Only loopback (127.0.0.1) is ever contacted. Peers (Prism, moto) are installed into the cache directory on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the root must be importable

from bench import ceilings, chart, client, inprocess, peers, png, profiling, report, startup, suites, uploads, wrk
from bench.peers import Bare, Emulator, Moto, Prism, Sink
from bench.procs import Server

S = TypeVar("S", bound=Server)

SECTIONS = ("cold", "json", "uploads", "multipart", "rss", "suites")
MIB = 1 << 20
FORMS_PER_TRIAL = 5  # figure 3: 20 MiB forms sent one at a time per trial
README = Path(__file__).resolve().parent / "README.md"
CHART = README.parent / "ratios.png"  # shown at the top of the generated block
START, END = "<!-- bench:table:start -->", "<!-- bench:table:end -->"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rotate(items: list[Any], n: int) -> list[Any]:
    """Start each trial with a different server, so drift in the machine's load is shared out."""
    n %= len(items)
    return items[n:] + items[:n]


def git_state() -> str:
    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "emulator", "pyproject.toml"], cwd=root, capture_output=True, text=True
    )
    changed = len(dirty.stdout.splitlines())
    return head.stdout.strip() + (f" + {changed} uncommitted emulator files" if changed else "")


def wait_quiet(limit: float, timeout: float) -> None:
    """Wait (up to ``timeout`` s) for the 1-minute load average to drop under ``limit``: other work on a 2-core
    machine skews every figure, peers included."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        log(f"load average {os.getloadavg()[0]:.2f} > {limit}: waiting")
        time.sleep(15)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem / 1024 / 1024,
        "kernel": platform.release(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "git": git_state(),
    }


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cache: Path = args.cache_dir
        self.work = Path(tempfile.mkdtemp(prefix="upload-emulator-bench-", dir=args.work_dir))
        self.files = self.work / "files"
        self.files.mkdir()
        self.results: dict[str, Any] = {"started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
        self.pages = ceilings.FreshPages()
        self.servers: list[Server] = []

    # --- helpers ---------------------------------------------------------------------------------------------

    def spawn(self, server: S) -> S:
        self.servers.append(server)
        server.run()
        return server

    def stop(self, *servers: Server) -> None:
        for server in servers:
            server.stop()

    def file(self, name: str, size: int) -> Path:
        path = self.files / name
        if not path.exists():
            uploads.make_file(path, size)
        return path

    # --- sections --------------------------------------------------------------------------------------------

    def cold(self) -> None:
        """Spawn → first successful answer of a real operation, alternating servers, median of ``rounds``."""
        out: dict[str, list[float]] = {"emulator": [], "prism": [], "moto": []}
        cpu: dict[str, list[float]] = {}
        make: dict[str, Callable[[str], Server]] = {
            "emulator": lambda tag: Emulator.make(self.work, tag),
            "prism": lambda tag: Prism.make(self.work, self.prism_cmd, self.prism_spec, False, tag),
            "moto": lambda tag: Moto.make(self.work, self.moto_python, tag),
        }
        for round_ in range(self.args.cold_rounds):
            for name in rotate(list(out), round_):
                server = make[name](f"cold{round_}")
                self.spawn(server)
                out[name].append(server.cold_start_s)
                cpu.setdefault(f"{name}-cpu", []).append(server.cold_start_cpu_s)
                self.stop(server)
        log(
            "cold start: "
            + ", ".join(
                f"{k} {report.median(v):.2f} s (CPU {report.median(cpu[k + '-cpu']):.2f} s)" for k, v in out.items()
            )
        )
        out.update(cpu)
        self.results["cold_start"] = out

    def json(self) -> None:
        """wrk against the emulator and Prism (default, silent), all up at once, trials interleaved."""
        script = self.work / "post.lua"
        script.write_text(
            wrk.lua_script(
                "POST",
                {"Content-Type": "application/json", "Authorization": f"Bearer {peers.PE_KEY}"},
                json.dumps(peers.JSON_BODY),
            )
        )
        servers: dict[str, Emulator | Prism | Bare] = {
            "emulator": Emulator.make(self.work, "json"),
            "prism": Prism.make(self.work, self.prism_cmd, self.prism_spec, False, "json"),
            "prism-silent": Prism.make(self.work, self.prism_cmd, self.prism_spec, True, "json-silent"),
            "bare": Bare.make(self.work),
        }
        for server in servers.values():
            self.spawn(server)
        out: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in servers}
        for trial in range(self.args.trials):
            for conc in self.args.connections:
                for name in rotate(list(servers), trial):
                    url = servers[name].json_url
                    if trial == 0:
                        wrk.run(url, str(script), conc, self.args.warmup)
                    cpu = servers[name].cpu_seconds()
                    result = wrk.run(url, str(script), conc, self.args.seconds)
                    busy = (servers[name].cpu_seconds() - cpu) / self.args.seconds
                    out[name].setdefault(str(conc), []).append({**result.__dict__, "server_cpu": busy})
                    log(
                        f"json {name} c={conc} trial {trial + 1}: {result.requests_per_s:,.0f} req/s "
                        f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms, server CPU {busy:.0%} of a core"
                        + ("" if result.clean else f" NOT CLEAN {result}")
                    )
        self.results["json"] = out
        self.results.setdefault("rss", {})["emulator-after-json"] = servers["emulator"].peak_rss_mib()
        self.stop(*servers.values())

    def fresh_pages(self) -> None:
        """Before each upload figure: use up the pages the page cache could recycle (``ceilings.FreshPages``), so
        every server, and the write ceiling, writes to new pages, as a long-running emulator does."""
        written = self.pages.enter()  # MiB
        self.results.setdefault("fresh_pages_mib", []).append(written)

    def measure_ceilings(self) -> None:
        size = 500 * MIB
        out = {
            "md5": [ceilings.md5_mb_s(size) for _ in range(self.args.trials)],
            "write-recycled": [ceilings.write_recycled_mb_s(self.work, size) for _ in range(self.args.trials)],
            **ceilings.kept_writes_mb_s(self.work, size, self.args.trials),
        }
        log("ceilings: " + ", ".join(f"{k} {report.median(v):,.0f} MB/s" for k, v in out.items()))
        self.results["ceilings"] = out

    def uploads(self) -> None:
        """Presigned PUTs of the same bytes to the emulator, moto and the raw sink; fresh servers per size."""
        self.fresh_pages()
        self.measure_ceilings()
        sink = self.spawn(Sink.make(self.work))
        classes = (("1MiBx200", MIB, 200, 8), ("64MiB", 64 * MIB, 1, 1), ("500MiB", 500 * MIB, 1, 1))
        out: dict[str, dict[str, list[float]]] = {}
        rss = self.results.setdefault("rss", {})
        for key, size, count, conc in classes:
            path = self.file(f"{key}.bin", size)
            md5 = uploads.md5_of(path)
            self.fresh_pages()
            emu = self.spawn(Emulator.make(self.work, key))
            rss["emulator-idle"] = emu.rss_mib()
            moto = self.spawn(Moto.make(self.work, self.moto_python, key))
            self.warm_up(emu, moto)
            out[key] = {"emulator": [], "moto": [], "loopback": []}
            for trial in range(self.args.trials):
                for name in rotate(["emulator", "moto", "loopback"], trial):
                    jobs = {
                        "emulator": partial(uploads.emulator_puts, emu, count, path, md5),
                        "moto": partial(uploads.moto_puts, moto, count, md5, key),
                        "loopback": partial(uploads.sink_puts, sink, count),
                    }[name]()
                    server = {"emulator": emu, "moto": moto, "loopback": sink}[name]
                    cpu = server.cpu_seconds()
                    timed = uploads.run_jobs(jobs, path, conc)
                    busy = (server.cpu_seconds() - cpu) / timed.seconds
                    out[key][name].append(timed.mb_s)
                    out[key].setdefault(f"{name}-cpu", []).append(busy)
                    log(
                        f"upload {key} {name} trial {trial + 1}: {timed.mb_s:,.0f} MB/s, server CPU {busy:.0%} "
                        "of a core"
                    )
                if trial == 0 and key == "500MiB":
                    rss["emulator-500MiB"], rss["moto-500MiB"] = emu.peak_rss_mib(), moto.peak_rss_mib()
            self.stop(emu, moto)
            shutil.rmtree(self.work / "data" / key, ignore_errors=True)
        self.stop(sink)
        self.results["uploads"] = out

    def warm_up(self, emu: Emulator, moto: Moto) -> None:
        """One small PUT and one small form upload to each fresh server before its first timed trial, so no figure
        includes what a server does once per process (the emulator's first storage request prepares its parameter
        checks, ~0.5 s; cold start is its own figure)."""
        video = self.file("warm.bin", MIB)
        image = self.files / "warm.png"
        if not image.exists():
            with image.open("wb") as fh:
                png.write_png(fh, 64, 64, seed=1)
        md5 = uploads.md5_of(video)
        uploads.run_jobs(uploads.emulator_puts(emu, 1, video, md5), video, 1)
        uploads.run_jobs(uploads.emulator_forms(emu, 1, image), image, 1)
        uploads.run_jobs(uploads.moto_puts(moto, 1, md5, "warm"), video, 1)
        uploads.run_jobs(uploads.moto_forms(moto, 1, "warm"), image, 1)

    def png_file(self) -> Path:
        return png.form_image(self.files / "20MiB.png")

    def multipart(self) -> None:
        self.fresh_pages()
        if "ceilings" not in self.results:
            self.measure_ceilings()
        path = self.png_file()
        emu = self.spawn(Emulator.make(self.work, "form"))
        moto = self.spawn(Moto.make(self.work, self.moto_python, "form"))
        self.warm_up(emu, moto)
        out: dict[str, list[float]] = {"emulator": [], "moto": []}
        for trial in range(self.args.trials):
            for name in rotate(["emulator", "moto"], trial):
                # FORMS_PER_TRIAL uploads one after another: a single 20 MiB upload lasts ~50 ms, too short for a figure
                jobs = (
                    uploads.emulator_forms(emu, FORMS_PER_TRIAL, path)
                    if name == "emulator"
                    else uploads.moto_forms(moto, FORMS_PER_TRIAL, f"form-{trial}")
                )
                server = emu if name == "emulator" else moto
                cpu = server.cpu_seconds()
                timed = uploads.run_jobs(jobs, path, 1)
                busy = (server.cpu_seconds() - cpu) / timed.seconds
                out[name].append(timed.mb_s)
                out.setdefault(f"{name}-cpu", []).append(busy)
                # then the MD5 of each object: both compute it at the object's first read (moto at its first HEAD or
                # GET, the emulator at a PostEverywhere image's, whose storage URL is the upload URL without its query)
                heads = (
                    moto.presign("head", FORMS_PER_TRIAL, f"form-{trial}")
                    if name == "moto"
                    else [job.url.partition("?")[0] for job in jobs]
                )
                started, cpu = time.perf_counter(), server.cpu_seconds()
                for url in heads:
                    reply = client.request(url, "HEAD", timeout=60)
                    assert reply.status == 200, f"HEAD of an uploaded form answered {reply.status}"
                    assert reply.headers.get("etag", "").strip('"'), f"HEAD of an uploaded form has no ETag: {url}"
                seconds = timed.seconds + time.perf_counter() - started
                out.setdefault(f"{name}+etag", []).append(timed.nbytes / seconds / 1e6)
                both = busy * timed.seconds + server.cpu_seconds() - cpu  # CPU-seconds of the POSTs and HEADs
                out.setdefault(f"{name}+etag-cpu", []).append(both / seconds)
                log(
                    f"multipart 20 MiB ×{FORMS_PER_TRIAL}, one at a time, {name} trial {trial + 1}: "
                    f"{timed.mb_s:,.0f} MB/s, "
                    f"server CPU {busy:.0%} "
                    "of a core"
                )
        self.stop(emu, moto)
        self.results["multipart"] = out

    def rss(self) -> None:
        """20 uploads of 20 MiB sent at once (form and PUT), each case on fresh servers, ``trials`` times alternating
        servers: throughput (MB/s of the 20, with the server's CPU) and peak RSS (VmHWM after the first trial)."""
        rss = self.results.setdefault("rss", {})
        concurrent = self.results.setdefault("concurrent", {})
        form, video = self.png_file(), self.file("20MiB.bin", 20 * MIB)
        md5 = uploads.md5_of(video)
        for case in ("form", "put"):
            self.fresh_pages()
            emu = self.spawn(Emulator.make(self.work, f"rss-{case}"))
            rss.setdefault("emulator-idle", emu.rss_mib())
            moto = self.spawn(Moto.make(self.work, self.moto_python, f"rss-{case}"))
            self.warm_up(emu, moto)
            servers: dict[str, Emulator | Moto] = {"emulator": emu, "moto": moto}
            out: dict[str, list[float]] = concurrent.setdefault(case, {"emulator": [], "moto": []})
            for trial in range(self.args.trials):
                for name in rotate(list(servers), trial):
                    if case == "form":
                        jobs = (
                            uploads.emulator_forms(emu, 20, form)
                            if name == "emulator"
                            else uploads.moto_forms(moto, 20, f"rss{trial}")
                        )
                    else:
                        jobs = (
                            uploads.emulator_puts(emu, 20, video, md5)
                            if name == "emulator"
                            else uploads.moto_puts(moto, 20, md5, f"rss{trial}")
                        )
                    cpu = servers[name].cpu_seconds()
                    timed = uploads.run_jobs(jobs, form if case == "form" else video, 20)
                    busy = (servers[name].cpu_seconds() - cpu) / timed.seconds
                    out[name].append(timed.mb_s)
                    out.setdefault(f"{name}-cpu", []).append(busy)
                    log(
                        f"20 × 20 MiB {case} {name} trial {trial + 1}: {timed.mb_s:,.0f} MB/s, server CPU "
                        f"{busy:.0%} of a core, peak RSS {servers[name].peak_rss_mib():.0f} MiB"
                    )
                if trial == 0:  # the figure is the first 20 at once on fresh servers (moto keeps every body in memory)
                    for name, server in servers.items():
                        rss[f"{name}-20x20MiB-{case}"] = server.peak_rss_mib()
            self.stop(emu, moto)
            shutil.rmtree(self.work / "data" / f"rss-{case}", ignore_errors=True)

    def suites(self) -> None:
        contract = suites.contract_available()
        if contract:
            data = suites.run_all(self.work / "logs")
            log(
                f"contract --provider all: {data['seconds']:.1f} s, rc {data['returncode']}, {data['cases']} cases, "
                f"{data['checks']:,} checks in {data['testcases']} JUnit testcases; "
                + ", ".join(f"{p['provider']} {p['seconds']:.1f} s" for p in data["providers"])
            )
            self.results["suites"] = data
            return
        runs = []
        for provider in suites.PROVIDERS:
            done = suites.run(provider, contract, self.work / "logs" / f"suite-{provider}.log")
            runs.append(
                {
                    "provider": provider,
                    "command": done.command,
                    "seconds": done.seconds,
                    "returncode": done.returncode,
                    "summary": done.summary,
                }
            )
            log(f"suite {provider}: {done.seconds:.1f} s ({done.summary})")
        self.results["suites"] = {"kind": "contract" if contract else "pytest", "runs": runs}

    def profile(self) -> None:
        """py-spy under JSON load (c=16), during 500 MiB PUTs, and over start-up; summaries printed and saved."""
        out_dir = self.cache / "profiles"
        out_dir.mkdir(parents=True, exist_ok=True)
        script = self.work / "post.lua"
        script.write_text(
            wrk.lua_script(
                "POST",
                {"Content-Type": "application/json", "Authorization": f"Bearer {peers.PE_KEY}"},
                json.dumps(peers.JSON_BODY),
            )
        )
        summaries = []
        emu = self.spawn(Emulator.make(self.work, "profile-json"))
        load = threading.Thread(target=wrk.run, args=(emu.json_url, str(script), 16, 13))
        load.start()
        time.sleep(1.5)
        recorder = profiling.attach(emu.pid, out_dir / "json.raw")
        time.sleep(10)
        profiling.stop(recorder)
        load.join()
        self.stop(emu)
        summaries.append(
            profiling.render(
                "JSON POST /v1/media/upload, wrk c=16", profiling.parse((out_dir / "json.raw").read_text())
            )
        )

        path = self.file("500MiB.bin", 500 * MIB)
        md5 = uploads.md5_of(path)
        self.fresh_pages()
        emu = self.spawn(Emulator.make(self.work, "profile-put"))
        jobs = uploads.emulator_puts(emu, 3, path, md5)
        recorder = profiling.attach(emu.pid, out_dir / "put500.raw", native=False, threads=True)
        time.sleep(0.5)
        timed = uploads.run_jobs(jobs, path, 1)
        profiling.stop(recorder)
        self.stop(emu)
        shutil.rmtree(self.work / "data" / "profile-put", ignore_errors=True)
        put = profiling.parse((out_dir / "put500.raw").read_text())
        summaries.append(
            f"### 3 × PUT 500 MiB, each thread (py-spy --threads --nonblocking; {timed.mb_s:,.0f} MB/s "
            f"while recorded)\n\n" + profiling.thread_busy(put, timed.seconds + 0.5, 100)
        )

        cost = inprocess.cpu_us_per_request()
        summaries.append(
            "### JSON request inside the app, no sockets: CPU µs per request (best of 3 × 5,000)\n\n"
            + "\n".join(f"  {name}: {us:,.0f} µs" for name, us in cost.items())
            + "\n\n"
            + "cProfile of 5,000 emulator requests (shares; cProfile inflates absolute times):\n\n"
            + inprocess.profile_emulator()
            + "\n"
        )

        summaries.append(startup.phases())
        launch = [
            sys.executable,
            "-c",
            "import uvicorn, emulator.main, emulator.serve; from emulator.app import create_app; create_app()",
        ]
        profiling.launch(launch, out_dir / "startup.raw")
        summaries.append(
            profiling.render("start-up: import + create_app()", profiling.parse((out_dir / "startup.raw").read_text()))
        )
        text = "\n".join(summaries)
        (out_dir / "summary.txt").write_text(text)
        print(text)
        log(f"profiles in {out_dir}")

    # --- the run -----------------------------------------------------------------------------------------------

    def __call__(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.results["machine"] = machine()
        self.prism_cmd = peers.ensure_prism(self.cache)
        self.moto_python = peers.ensure_moto(self.cache)
        self.results["versions"] = peers.versions(self.prism_cmd, self.moto_python)
        self.prism_spec = self.work / "posteverywhere.prism.json"
        self.prism_spec.write_text(json.dumps(peers.prism_spec(peers.effective_spec())))
        try:
            for section in SECTIONS:
                if section in self.args.only:
                    log(f"== {section}")
                    getattr(self, section)()
            if self.args.profile:
                log("== profile")
                self.profile()
        finally:
            for server in self.servers:
                server.stop()
            self.pages.close()
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
        self.results["machine"]["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        self.results["elapsed_s"] = time.perf_counter() - started
        return self.results


def write_readme(results: dict[str, Any], table: str, readme: Path = README, image: Path = CHART) -> None:
    """Replace the generated block of ``readme`` (between the markers): the chart of the run's ratios, drawn into
    ``image`` next to it, then the machine line and the table."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} lacks the {START} … {END} markers")
    count = chart.draw(results, image)
    picture = f"![emulator ÷ peer for every figure with a target in this run ({count} bars)]({image.name})"
    block = f"{START}\n{picture}\n\n{report.machine_line(results)}\n\n{table}{END}"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--trials", type=int, default=3, help="trials per figure; the table shows the median")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per JSON trial")
    parser.add_argument("--warmup", type=float, default=1.0, help="wrk warm-up per server and concurrency")
    parser.add_argument("--connections", default="1,16,64", help="wrk concurrencies")
    parser.add_argument("--cold-rounds", type=int, default=5, help="cold starts per server")
    parser.add_argument("--profile", action="store_true", help="also record py-spy profiles")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the 1-min load average to fall below 0.5",
    )
    parser.add_argument("--cache-dir", type=Path, default=peers.default_cache(), help="where Prism, moto live")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the run's scratch directory")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, files)")
    parser.add_argument("--results", type=Path, default=None, help="write the raw results here (JSON)")
    parser.add_argument("--table-from", type=Path, default=None, help="print the table of a saved results file")
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help="replace the table and its chart (bench/ratios.png) in bench/README.md",
    )
    args = parser.parse_args(argv)
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    args.connections = [int(c) for c in args.connections.split(",")]
    if unknown := args.only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    if args.write_readme:
        try:
            import matplotlib  # noqa: F401  # the chart needs it: fail now, not after a 10-minute run
        except ImportError:
            parser.error("--write-readme draws a chart: pip install -r bench/requirements.txt (matplotlib)")
    if args.table_from:
        results = json.loads(args.table_from.read_text())
    else:
        if args.wait_quiet:
            wait_quiet(0.5, args.wait_quiet)
        results = Run(args)()
        target = args.results or args.cache_dir / "last-results.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(results, indent=1))
        log(f"raw results: {target}")
    table = report.markdown(report.rows(results))
    print(report.machine_line(results) + "\n")
    print(table)
    if args.write_readme:
        write_readme(results, table, README, CHART)
        log(f"table written to {README}, chart to {CHART}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
