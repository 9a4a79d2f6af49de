"""Run a client under schedules: one fresh key, the schedule's fault rules, the client, then the verdict.

``Target`` is the emulator (started here on a loopback port, or a running one); ``Client`` is what runs the user's
uploader once (``command`` for any program, ``python`` for a function in this process); ``explore`` lets
hypothesis draw schedules, shrinks a failing one within the budget, and returns what it found.

Runs are sequential: the fault rules of storage operations match by operation (presigned URLs carry no key), so a
running emulator given with ``--base-url`` must not serve other clients of that provider meanwhile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from emulator.chaos.invariants import INVARIANTS, Run, Violation, check
from emulator.chaos.schedule import Schedule, profile_of, rule_for, schedules
from emulator.testing import ControlClient, ControlError, ServedEmulator

ENV_BASE_URL, ENV_API_KEY, ENV_FILE, ENV_CONTENT_TYPE = (
    "UPLOAD_EMULATOR_BASE_URL",
    "UPLOAD_EMULATOR_API_KEY",
    "UPLOAD_EMULATOR_FILE",
    "UPLOAD_EMULATOR_CONTENT_TYPE",
)


@dataclass
class Options:
    provider: str
    examples: int = 25
    seed: int | None = None
    budget: float = 600.0  # seconds for the whole exploration, shrinking included
    expect_recovery: bool = False
    max_retries: int = 10
    max_wait: float = 2.0  # largest Retry-After and delay drawn
    max_faults: int = 3
    timeout: float = 60.0  # for one run of the client


@dataclass
class ClientResult:
    exit_code: int | None  # None: killed at the timeout
    stdout: str = ""
    stderr: str = ""


Client = Callable[[dict[str, str], float], ClientResult]  # (the run's environment variables, timeout)


def command(argv: Sequence[str]) -> Client:
    """A client that is a program: run once per schedule with the run's variables added to this environment."""

    def run(env: dict[str, str], timeout: float) -> ClientResult:
        try:
            process = subprocess.Popen(
                list(argv),
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        except OSError as exc:  # not found, not executable: the shell's 127
            return ClientResult(127, "", f"cannot run {argv[0]!r}: {exc}")
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: children go too
            out, err = process.communicate()
            return ClientResult(None, out, err)
        return ClientResult(process.returncode, out, err)

    return run


def python(upload: Callable[[dict[str, str]], str | None]) -> Client:
    """A client that is a Python function of the run's variables: returning means success (a returned string is
    the id it created), raising means it gave up. It runs in this process, against the live emulator."""

    def run(env: dict[str, str], timeout: float) -> ClientResult:
        try:
            created = upload(env)
        except Exception as exc:  # the client gave up: that is a result, not an error of the run
            return ClientResult(1, "", f"{type(exc).__name__}: {exc}")
        return ClientResult(0, f"{created}\n" if created else "")

    return run


class Target:
    """The emulator runs go to: started here (the default) or a running one at ``base_url``."""

    def __init__(self, base_url: str | None = None) -> None:
        self._served: ServedEmulator | None = None
        if base_url is None:
            from emulator.settings import Settings
            from emulator.testing import serve_in_thread

            # quiet: dropped connections are the point here, not errors worth a log line
            self._served = serve_in_thread(Settings(), log_level="critical")
            base_url = self._served.url
        self.url = base_url.rstrip("/")
        self.control = ControlClient(self.url)
        health = httpx.get(f"{self.url}/_emulator/health", timeout=10).json()
        self.providers: list[str] = health["providers"]

    def base_url(self, provider: str) -> str:
        """What a client uses instead of the provider's real base URL."""
        from emulator.providers import PROVIDERS

        spec = PROVIDERS[provider]
        mount = "" if self.providers == [provider] else f"/{provider}"  # per-provider mode serves at the root
        return f"{self.url}{mount}{spec.specs.server_path}{spec.client_path}"

    def close(self) -> None:
        self.control.close()
        if self._served is not None:
            self._served.stop()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, schedule: Schedule, client: Client, options: Options) -> Run:
        """One run: a fresh key, the schedule's rules, the client, and what the journal and the state say."""
        from emulator.providers import PROVIDERS

        provider = PROVIDERS[schedule.provider]
        profile = profile_of(schedule.provider)
        content = schedule.content(profile)
        created = self.control.create_key(schedule.provider)
        key, key_id = created["key"], created["id"]
        since = float(self.control.clock()["epoch"])
        newest = self.control.journal_page(limit=1, order="desc").entries
        mark = newest[0].id if newest else 0
        rules = [self.control.add_fault(**rule_for(fault, provider, key)) for fault in schedule.faults]
        with tempfile.TemporaryDirectory(prefix="upload-emulator-chaos-") as folder:
            path = Path(folder) / schedule.filename
            path.write_bytes(content)
            env = {
                ENV_BASE_URL: self.base_url(schedule.provider),
                ENV_API_KEY: key,
                ENV_FILE: str(path),
                ENV_CONTENT_TYPE: schedule.content_type,
            }
            started = time.monotonic()
            result = client(env, options.timeout)
            seconds = time.monotonic() - started
        for rule in rules:
            try:
                self.control.remove_fault(rule["id"])
            except ControlError:  # already gone (someone cleared the rules)
                pass
        entries = [
            dataclasses.asdict(e) for e in self.control.journal(provider=schedule.provider, since=since) if e.id > mark
        ]
        now = float(self.control.clock()["epoch"])
        finished = profile.finished(self.control.state(schedule.provider), key_id, now)
        return Run(
            schedule,
            hashlib.md5(content, usedforsecurity=False).hexdigest(),
            result.exit_code,
            result.stdout,
            result.stderr,
            seconds,
            entries,
            finished,
        )


@dataclass
class Outcome:
    """What an exploration found: the runs made, and the smallest failing run (if any) with its violations."""

    provider: str
    runs: int = 0
    seconds: float = 0.0
    out_of_budget: bool = False
    failure: Run | None = None
    violations: list[Violation] = field(default_factory=list)
    passed: list[Schedule] = field(default_factory=list)  # schedules that held every invariant
    tallies: dict[str, list[int]] = field(default_factory=dict)  # invariant → [runs that held it, runs that broke it]

    def count(self, violations: list[Violation], expect_recovery: bool) -> None:
        broken = {v.invariant for v in violations}
        for invariant in INVARIANTS:
            if invariant != "expect_recovery" or expect_recovery:
                self.tallies.setdefault(invariant, [0, 0])[invariant in broken] += 1

    @property
    def failed(self) -> bool:
        return self.failure is not None


class ChaosViolation(AssertionError):
    """A run broke an invariant (raised inside hypothesis' test function, so that it shrinks the schedule)."""

    def __init__(self, run: Run, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{v.invariant}: {v.message}" for v in violations))
        self.run, self.violations = run, violations


def judge(target: Target, schedule: Schedule, client: Client, options: Options) -> tuple[Run, list[Violation]]:
    run = target.run(schedule, client, options)
    return run, check(
        run, profile_of(schedule.provider), max_retries=options.max_retries, expect_recovery=options.expect_recovery
    )


def check_run(
    target: Target,
    schedule: Schedule,
    client: Client,
    *,
    expect_recovery: bool = False,
    max_retries: int = 10,
    timeout: float = 60.0,
) -> Run:
    """Run ``client`` under ``schedule`` and raise ``ChaosViolation`` if it broke an invariant: call it inside a
    ``@given(schedule=schedules(...))`` test and hypothesis shrinks a failure to the smallest schedule."""
    options = Options(schedule.provider, expect_recovery=expect_recovery, max_retries=max_retries, timeout=timeout)
    run, violations = judge(target, schedule, client, options)
    if violations:
        raise ChaosViolation(run, violations)
    return run


def explore(
    target: Target, client: Client, options: Options, on_run: Callable[[Run, list[Violation]], None] | None = None
) -> Outcome:
    """Draw up to ``options.examples`` schedules, run each, and shrink the first failure, all within the budget.

    Each distinct schedule runs once (hypothesis asks again while shrinking and when it reports: the first verdict
    stands, so a timing-dependent client cannot make the report flaky). Past the budget, schedules not yet run count
    as passed without running, which ends both the search and the shrinking.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

    outcome = Outcome(options.provider)
    verdicts: dict[str, tuple[Run, list[Violation]] | None] = {}
    started = time.monotonic()

    def probe(schedule: Schedule) -> None:
        known = schedule.dumps()
        if known not in verdicts:
            if time.monotonic() - started > options.budget:
                outcome.out_of_budget = True
                return
            run, violations = judge(target, schedule, client, options)
            outcome.runs += 1
            outcome.count(violations, options.expect_recovery)
            verdicts[known] = (run, violations) if violations else None
            if not violations:
                outcome.passed.append(schedule)
            if on_run is not None:
                on_run(run, violations)
        verdict = verdicts[known]
        if verdict is not None:
            raise ChaosViolation(*verdict)

    test: Any = given(schedule=schedules(options.provider, max_faults=options.max_faults, max_wait=options.max_wait))(
        probe
    )
    test = settings(
        max_examples=options.examples,
        database=None,
        deadline=None,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )(test)
    if options.seed is not None:
        test = seed(options.seed)(test)
    try:
        test()
    except ChaosViolation as found:
        outcome.failure, outcome.violations = found.run, found.violations
    outcome.seconds = time.monotonic() - started
    return outcome


def replay(target: Target, schedule: Schedule, client: Client, options: Options) -> Outcome:
    """Run one given schedule (``--replay``) and judge it."""
    started = time.monotonic()
    run, violations = judge(target, schedule, client, options)
    outcome = Outcome(schedule.provider, runs=1, seconds=time.monotonic() - started)
    outcome.count(violations, options.expect_recovery)
    if violations:
        outcome.failure, outcome.violations = run, violations
    else:
        outcome.passed.append(schedule)
    return outcome


DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "rate_limited": {"retry_after": 1},
    "server_error": {"status": 503},
    "drop": {"when": "before_headers"},
    "drop_upload": {"bytes": 1},
    "stall": {"bytes": 1, "seconds": 1.0},
    "slow": {"seconds": 1.0},
}


def survey(
    target: Target, provider: str, client: Client, options: Options, content_types: tuple[str, ...] | None = None
) -> dict[tuple[str, str, str], list[str]]:
    """Each faithful fault alone, once, on each operation the client really uses: what does it survive?

    Returns {(content type, operation, fault kind): invariants broken (empty: survived)}. Judged with
    ``options.expect_recovery``, so giving up on a single transient fault counts as not surviving it.
    """
    from emulator.chaos.schedule import Fault

    profile = profile_of(provider)
    found: dict[tuple[str, str, str], list[str]] = {}
    for sample in profile.samples:
        if content_types is not None and sample.content_type not in content_types:
            continue
        plain = Schedule(provider, sample.content_type, sample.filename, sample.sizes[0], 0)
        used = {e["operation"] for e in target.run(plain, client, options).entries}
        for step in profile.steps:
            if step.operation not in used:
                continue
            for kind in step.faults:
                if kind == "pending" and not sample.processing:
                    continue
                params = dict(DEFAULT_PARAMS.get(kind, {}))
                schedule = dataclasses.replace(plain, faults=(Fault(step.operation, kind, params),))
                _, violations = judge(target, schedule, client, options)
                found[(sample.content_type, step.operation, kind)] = sorted({v.invariant for v in violations})
    return found
