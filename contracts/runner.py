"""One contract run: open the target, then for each provider the schemathesis phases, the flow machines and the
documented examples; the result feeds the summary table, JUnit XML and the Markdown report.

    from contracts.runner import Options, run
    result = run(Options(providers=["<provider>"], max_examples=20))
    assert not result.failed, [f.check for f in result.findings]

A run that starts its own emulator gives each provider a fresh one, so a provider's result depends only on the
options and the seed, never on which providers ran before it or where. That makes the providers independent tasks:
with more than one core they run in worker processes (``Options.workers``, default one per core), most operations
first, and their results are merged into one ``RunResult`` in the order the providers were asked for. Processes,
not threads: schemathesis and hypothesis are pure-Python work that one interpreter's GIL would serialise. A run
against ``--base-url`` stays in this process, one provider after another: its flows freeze and move that server's
one virtual clock, which two providers at once would move under each other's feet.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import random
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from typing import Any

from contracts import documented, flows, openapi_suite
from contracts.results import SUITES, ProviderResult, RunResult
from contracts.target import Target, check_providers, open_target, parse_keys
from emulator.providers import PROVIDERS

# schemathesis examples per operation and phase: with it every provider gets well over 1,000 generated cases
DEFAULT_MAX_EXAMPLES = 60  # keep in step with the CLI default of --max-examples


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, as in a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class WorkerDied(RuntimeError):
    """A provider's worker process ended without a result (killed, or out of memory): the run cannot finish."""


@dataclass
class Options:
    providers: list[str] = field(default_factory=lambda: list(PROVIDERS))
    base_url: str | None = None  # None: start an emulator for the run
    api_keys: list[str] = field(default_factory=list)  # "KEY" (one provider) or "provider=KEY"
    max_examples: int = DEFAULT_MAX_EXAMPLES
    flow_examples: int | None = None  # hypothesis examples per flow machine; default max(5, max_examples // 2)
    seed: int | None = None
    allow_writes: bool = False
    suites: tuple[str, ...] = SUITES
    operations: tuple[str, ...] = ()  # operationIds: narrow the schemathesis suite to these (all when empty)
    # worker processes when the run starts its own emulators; None: one per core, at most one per provider
    workers: int | None = None

    @property
    def examples_per_flow(self) -> int:
        return self.flow_examples if self.flow_examples is not None else max(5, self.max_examples // 2)

    def worker_count(self) -> int:
        """How many processes run the providers: 1 (this one) against ``--base-url``."""
        if self.base_url is not None:
            return 1
        wanted = self.workers if self.workers is not None else available_cores()
        return max(1, min(wanted, len(self.providers)))


# (provider, suite, event, count): "start" before a suite, "cases" as schemathesis cases accumulate, "done" after
Progress = Callable[[str, str, str, int], None]


def _quiet(*event: Any) -> None:
    pass


def run(options: Options, progress: Progress | None = None, wrap: Callable[[Any], Any] | None = None) -> RunResult:
    """Run the chosen suites for every chosen provider; ``wrap`` wraps the ASGI app of an emulator started here
    (a run with ``wrap`` stays in this process: a wrapper need not survive pickling)."""
    notify = progress or _quiet
    started = time.monotonic()
    # schemathesis always runs seeded, so that the report's seed reproduces it (--seed N); flows are derandomized
    # only when a seed was asked for, and report a failing example's every step and request anyway
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    if options.base_url is not None:
        with open_target(
            options.providers,
            base_url=options.base_url,
            api_keys=options.api_keys,
            allow_writes=options.allow_writes,
            seed=seed,
        ) as target:
            result = RunResult(target.url, seed=seed, notes=list(target.notes))
            for name in options.providers:
                result.providers.append(_run_provider(target, name, options, seed, notify))
    else:
        result = _run_local(options, seed, notify, wrap)
    result.seconds = time.monotonic() - started
    return result


def _run_provider(target: Target, name: str, options: Options, seed: int, notify: Progress) -> ProviderResult:
    provider_result = ProviderResult(name)
    if "schemathesis" in options.suites:
        notify(name, "schemathesis", "start", 0)
        openapi_suite.run(
            target,
            target.providers[name],
            provider_result,
            max_examples=options.max_examples,
            seed=seed,
            operations=options.operations,
            progress=lambda provider, cases: notify(provider, "schemathesis", "cases", cases),
        )
        notify(name, "schemathesis", "done", provider_result.cases.get("schemathesis", 0))
    if "flows" in options.suites:
        notify(name, "flows", "start", 0)
        flows.run(target, name, provider_result, max_examples=options.examples_per_flow, seed=options.seed)
        notify(name, "flows", "done", provider_result.cases.get("flows", 0))
    if "documented" in options.suites:
        notify(name, "documented", "start", 0)
        documented.run(target, name, provider_result)
        notify(name, "documented", "done", provider_result.cases.get("documented", 0))
    return provider_result


def _on_own_emulator(
    options: Options, name: str, seed: int, notify: Progress, wrap: Callable[[Any], Any] | None = None
) -> tuple[ProviderResult, str]:
    """One provider against a fresh emulator of its own: its result and that emulator's URL."""
    with open_target([name], api_keys=options.api_keys, seed=seed, wrap=wrap) as target:
        return _run_provider(target, name, options, seed, notify), target.url


def _run_local(options: Options, seed: int, notify: Progress, wrap: Callable[[Any], Any] | None) -> RunResult:
    # keys are checked against the whole run (a bare KEY needs exactly one provider), then handed on by name
    given = parse_keys(options.api_keys, options.providers)
    workers = 1 if wrap is not None else options.worker_count()
    check_providers(options.providers)  # here, before any worker is spawned
    runs: dict[str, tuple[ProviderResult, str]] = {}
    per_provider = {
        name: replace(options, providers=[name], api_keys=[f"{name}={given[name]}"] if name in given else [])
        for name in options.providers
    }
    if workers == 1:
        for name in options.providers:
            runs[name] = _on_own_emulator(per_provider[name], name, seed, notify, wrap)
    else:
        runs = _in_workers(per_provider, seed, notify, workers)
    result = RunResult(", ".join(runs[name][1] for name in options.providers), seed=seed)
    result.providers = [runs[name][0] for name in options.providers]
    if workers > 1:
        result.notes.append(f"each provider ran against an emulator of its own, {workers} at a time")
    return result


# --- worker processes ------------------------------------------------------------------------------------------------


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (a TargetError does), else a RuntimeError that carries its traceback."""
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError("".join(traceback.format_exception(exc)))
    return exc


def _worker_main(events: Any, options: Options, name: str, seed: int) -> None:
    """One provider in a process of its own: its progress, then its result or its error, go back on ``events``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops every worker at once
    try:
        result = _on_own_emulator(options, name, seed, lambda *event: events.put(("progress", name, event)))
    except BaseException as exc:
        events.put(("failed", name, _portable(exc)))
    else:
        events.put(("result", name, result))


def _cost(name: str) -> int:
    """A provider's expected run time, for ordering (longest first): its operation count, which the number of
    schemathesis cases follows (measured on the four providers of 2026: 17 operations took 17.5 s of CPU, 9 took
    10.6 s; the size of the spec ordered them worse)."""
    return len(list(PROVIDERS[name].specs.operations()))


def _in_workers(
    per_provider: dict[str, Options], seed: int, notify: Progress, workers: int
) -> dict[str, tuple[ProviderResult, str]]:
    """Run each provider in a process of its own, ``workers`` at a time, the longest first, relaying progress.

    A fresh process per provider, not a pool's reused one: hypothesis draws constants from the project's modules a
    process has loaded (its "local constants"), so a process that ran another provider first would generate other
    cases from the seed. Spawned, not forked: this process has threads (the progress bar), which fork would copy
    half-way through whatever they hold. Plain processes rather than an executor, so that Ctrl-C or an error here
    stops every worker at once, and a worker that dies without a word is noticed instead of waited for.
    """
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    waiting = sorted(per_provider, key=_cost, reverse=True)
    running: dict[str, BaseProcess] = {}
    silent: set[str] = set()  # workers found dead: half a second more for their last message, then an error
    results: dict[str, tuple[ProviderResult, str]] = {}
    next_check = 0.0

    def handle(kind: str, name: str, payload: Any) -> None:
        if kind == "progress":
            notify(*payload)
        elif kind == "result":
            results[name] = payload
            running.pop(name).join()
        else:
            raise payload

    def drain() -> None:
        """Handle every message already queued (a worker's result may wait behind the others' progress)."""
        while True:
            try:
                handle(*events.get_nowait())
            except queue.Empty:
                return

    try:
        while waiting or running:
            while waiting and len(running) < workers:
                name = waiting.pop(0)
                worker = context.Process(
                    target=_worker_main, args=(events, per_provider[name], name, seed), name=f"contract-{name}"
                )
                worker.daemon = True  # never outlives this process
                worker.start()
                running[name] = worker
            if time.monotonic() >= next_check:  # twice a second, however busy the others keep the queue
                next_check = time.monotonic() + 0.5
                if any(not alive.is_alive() and name in silent for name, alive in running.items()):
                    drain()  # a worker that ended well has its result here: only one without is an error
                    for name, alive in running.items():
                        if not alive.is_alive() and name in silent:
                            code = alive.exitcode
                            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited {code}"
                            raise WorkerDied(f"the worker process running {name} {how} without a result")
                silent = {name for name, alive in running.items() if not alive.is_alive()}
            try:
                message = events.get(timeout=0.5)
            except queue.Empty:
                continue
            handle(*message)
    finally:
        for left in running.values():
            left.terminate()
        for left in running.values():
            left.join()
    return results
