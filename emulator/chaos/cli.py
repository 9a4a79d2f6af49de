"""``upload-emulator chaos``: run your own uploader under provider-faithful fault schedules and judge what it did.

    upload-emulator chaos --provider segmentflow --examples 25 --expect-recovery -- python my_uploader.py

Exit 0: every run held every invariant; 1: a violation (the shrunk schedule, the invariant, the run's journal and
the ``--replay`` command are printed); 2: bad usage.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx

from emulator.chaos.invariants import Run
from emulator.chaos.runner import Options, Outcome, Target, command, explore, replay
from emulator.chaos.schedule import Schedule, profile_of
from emulator.settings import ENV_PREFIX, Settings

DESCRIPTION = (
    "Run COMMAND (your uploader, any language) once per drawn fault schedule against an emulator, and "
    "check from the journal and the stored bytes that it behaved."
)
EPILOG = (
    f"COMMAND gets {ENV_PREFIX}BASE_URL, {ENV_PREFIX}API_KEY (fresh per run), {ENV_PREFIX}FILE and "
    f"{ENV_PREFIX}CONTENT_TYPE; it exits 0 when it believes the upload succeeded and may print the id it "
    "created on its last stdout line. Manual: docs/chaos.md."
)


def parser() -> argparse.ArgumentParser:
    defaults = Settings.from_env()
    out = argparse.ArgumentParser(
        prog="upload-emulator chaos",
        description=DESCRIPTION,
        epilog=EPILOG,
        usage="%(prog)s --provider NAME [options] -- COMMAND [ARGS...]",
    )
    out.add_argument("--provider", required=True, help="the provider COMMAND uploads to")
    out.add_argument("--examples", type=int, default=25, metavar="N", help="schedules to draw (default 25)")
    out.add_argument("--seed", type=int, help="seed hypothesis, for a reproducible run")
    out.add_argument(
        "--budget",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="bound the whole run, shrinking included (default 600)",
    )
    out.add_argument(
        "--expect-recovery",
        action="store_true",
        help="a schedule of transient faults within the retry budget must end with exit 0",
    )
    out.add_argument("--replay", type=Path, metavar="SCHEDULE.json", help="run this one schedule instead of drawing")
    out.add_argument(
        "--save",
        type=Path,
        metavar="FILE",
        help="where a failing schedule is written for --replay (default: chaos-PROVIDER-failure.json)",
    )
    out.add_argument("--report", type=Path, metavar="FILE.md", help="write a Markdown report here")
    out.add_argument("--junit", type=Path, metavar="FILE.xml", help="write JUnit XML here")
    out.add_argument("--base-url", help="a running emulator to use (default: start one on a free loopback port)")
    out.add_argument("--max-faults", type=int, default=3, metavar="N", help="faults per schedule (default 3)")
    out.add_argument(
        "--max-wait",
        type=float,
        default=defaults.chaos_max_wait,
        metavar="SECONDS",
        help=f"longest Retry-After, delay or stall drawn (default {defaults.chaos_max_wait:g}; "
        f"env {ENV_PREFIX}CHAOS_MAX_WAIT)",
    )
    out.add_argument(
        "--max-retries",
        type=int,
        default=defaults.chaos_max_retries,
        metavar="N",
        help=f"retries allowed of one request (default {defaults.chaos_max_retries}; "
        f"env {ENV_PREFIX}CHAOS_MAX_RETRIES)",
    )
    out.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="one run of COMMAND may take this long before it is killed (default 60)",
    )
    return out


def run(argv: list[str]) -> None:
    args, cmd = _split(argv)
    parsed = parser()
    options_ns = parsed.parse_args(args)
    if not cmd:
        parsed.error("give the command to run after --, e.g. -- python my_uploader.py")
    if shutil.which(cmd[0]) is None:
        parsed.error(f"cannot find the command {cmd[0]!r}")
    try:
        profile_of(options_ns.provider)
        schedule = Schedule.from_json(json.loads(options_ns.replay.read_text())) if options_ns.replay else None
    except (ValueError, OSError, KeyError) as exc:
        parsed.error(str(exc))
    if schedule is not None and schedule.provider != options_ns.provider:
        parsed.error(f"{options_ns.replay} is a schedule for {schedule.provider}, not {options_ns.provider}")
    options = Options(
        provider=options_ns.provider,
        examples=options_ns.examples,
        seed=options_ns.seed,
        budget=options_ns.budget,
        expect_recovery=options_ns.expect_recovery,
        max_retries=options_ns.max_retries,
        max_wait=options_ns.max_wait,
        max_faults=options_ns.max_faults,
        timeout=options_ns.timeout,
    )
    client = command(cmd)

    def progress(run_: Run, violations: list[Any]) -> None:
        mark = "FAIL" if violations else "ok"
        faults = ", ".join(f"{f.operation}:{f.kind}" for f in run_.schedule.faults) or "no faults"
        print(f"  {mark:4} {run_.seconds:5.1f}s exit {run_.exit_code}  {faults}", file=sys.stderr, flush=True)

    try:
        target = Target(options_ns.base_url)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        parsed.error(f"no emulator answers at {options_ns.base_url}/_emulator/health: {exc}")
    with target:
        outcome = (
            replay(target, schedule, client, options)
            if schedule is not None
            else explore(target, client, options, on_run=progress)
        )
        target_url = target.url
    save = options_ns.save or Path(f"chaos-{options.provider}-failure.json")
    replay_command = _replay_command(options_ns, options_ns.replay or save, cmd)
    if outcome.failure is not None and schedule is None:
        save.write_text(json.dumps(outcome.failure.schedule.to_json(), indent=2) + "\n", encoding="utf-8")
    print(render(outcome, options, replay_command))
    if options_ns.report or options_ns.junit:
        _write_reports(outcome, target_url, options, replay_command, options_ns.report, options_ns.junit)
    raise SystemExit(1 if outcome.failed else 0)


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def _replay_command(ns: argparse.Namespace, path: Path, cmd: list[str]) -> str:
    parts = ["upload-emulator", "chaos", "--provider", ns.provider, "--replay", str(path)]
    if ns.expect_recovery:
        parts.append("--expect-recovery")
    if ns.max_retries != Settings().chaos_max_retries:
        parts += ["--max-retries", str(ns.max_retries)]
    if ns.base_url:
        parts += ["--base-url", ns.base_url]
    return shlex.join(parts + ["--", *cmd])


def journal_lines(run: Run) -> list[str]:
    """The run's journal, one line a request (redacted at the source: key fingerprints, signatures removed)."""
    if not run.entries:
        return ["(no requests reached the emulator)"]
    start = float(run.entries[0]["epoch"])
    lines = []
    for e in run.entries:
        status = e.get("status") if e.get("completed") else f"{e.get('status') or '—'} (connection dropped)"
        extra = []
        if e["response_headers"].get("retry-after"):
            extra.append(f"Retry-After {e['response_headers']['retry-after']}")
        if e.get("fault"):
            extra.append(f"fault {e['fault']}")
        lines.append(
            f"+{float(e['epoch']) - start:7.3f}s {e['method']:6} {e['path'][:90]} [{e.get('operation')}] → "
            f"{status}, {e['request_bytes']} B sent" + (f" ({'; '.join(extra)})" if extra else "")
        )
    return lines


def render(outcome: Outcome, options: Options, replay_command: str) -> str:
    head = f"chaos {outcome.provider}: {outcome.runs} run(s) in {outcome.seconds:.1f} s" + (
        " (budget reached)" if outcome.out_of_budget else ""
    )
    if outcome.failure is None:
        return f"{head}: every run held every invariant."
    run = outcome.failure
    lines = [f"{head}: FAILED", "", "invariant broken:"]
    lines += [f"  {v.invariant}: {v.message}" for v in outcome.violations]
    lines += ["", "shrunk schedule:"] + [f"  {line}" for line in run.schedule.describe()]
    lines += [
        "",
        f"the client exited {run.exit_code if run.exit_code is not None else '(killed at the timeout)'} "
        f"after {run.seconds:.1f} s",
    ]
    tail = [line for line in run.stderr.strip().splitlines()[-8:] if line.strip()]
    if tail:
        lines += ["its stderr ended with:"] + [f"  {line}" for line in tail]
    lines += ["", "journal of that run (redacted):"] + [f"  {line}" for line in journal_lines(run)]
    lines += ["", "replay it:", f"  {replay_command}"]
    return "\n".join(lines)


def _write_reports(
    outcome: Outcome, target: str, options: Options, replay_command: str, report: Path | None, junit: Path | None
) -> None:
    from contracts.report import markdown, write_junit
    from contracts.results import Finding, ProviderResult, RunResult

    provider = ProviderResult(options.provider, cases={"chaos": outcome.runs}, seconds={"chaos": outcome.seconds})
    for invariant, (held, broke) in outcome.tallies.items():
        provider.tally("chaos", invariant, True, held)
        provider.tally("chaos", invariant, False, broke)
    if outcome.failure is not None:
        run = outcome.failure
        for violation in outcome.violations:
            where = run.schedule.faults[0].operation if run.schedule.faults else "no faults"
            message = "\n".join(
                ["shrunk schedule:", *run.schedule.describe(), "", "journal (redacted):", *journal_lines(run)]
            )
            provider.add(
                Finding(
                    options.provider, "chaos", violation.invariant, where, violation.message, message, replay_command
                )
            )
    result = RunResult(
        target=target,
        providers=[provider],
        seconds=outcome.seconds,
        seed=options.seed,
        notes=[f"{outcome.runs} schedule(s) run" + (", budget reached" if outcome.out_of_budget else "")],
    )
    if report is not None:
        report.write_text(
            markdown(result, heading="Chaos run", reproduce="Replay the shrunk schedule:", state_dependent=False),
            encoding="utf-8",
        )
    if junit is not None:
        write_junit(result, junit, name="chaos")
