"""One contract run: open the target, then for each provider the schemathesis phases, the flow machines and the
documented examples; the result feeds the summary table, JUnit XML and the Markdown report.

    from contracts.runner import Options, run
    result = run(Options(providers=["<provider>"], max_examples=20))
    assert not result.failed, [f.check for f in result.findings]

A run that starts its own emulator gives each provider a fresh one, so a provider's result depends only on the
options and the seed, never on which providers ran before it or where. That makes the providers independent tasks:
with more than one core they run in worker processes (``Options.workers``, default one per core), biggest spec
first, and their results are merged into one ``RunResult`` in the order the providers were asked for. Processes,
not threads: schemathesis and hypothesis are pure-Python work that one interpreter's GIL would serialise. A run
against ``--base-url`` stays in this process, one provider after another: its flows freeze and move that server's
one virtual clock, which two providers at once would move under each other's feet.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from contracts import documented, flows, openapi_suite
from contracts.results import SUITES, ProviderResult, RunResult
from contracts.target import Target, TargetError, open_target, parse_keys
from emulator.providers import PROVIDERS

# schemathesis examples per operation and phase: with it every provider gets well over 1,000 generated cases
DEFAULT_MAX_EXAMPLES = 60  # keep in step with the CLI default of --max-examples


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, as in a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    unknown = [n for n in options.providers if n not in PROVIDERS]
    if unknown:
        raise TargetError(f"unknown provider {unknown[0]!r}; choose from {', '.join(PROVIDERS)}")
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

_EVENTS: Any = None  # in a worker: the queue its progress events go back to the parent on


def _init_worker(events: Any) -> None:
    global _EVENTS
    _EVENTS = events


def _worker_task(options: Options, name: str, seed: int) -> tuple[ProviderResult, str]:
    try:
        return _on_own_emulator(options, name, seed, lambda *event: _EVENTS.put(event))
    finally:
        _EVENTS.put((name, "", "finished", 0))  # after this, no event of this provider is in flight


def _cost(name: str) -> int:
    """A provider's expected run time, for ordering (longest first): the size of its spec, which tracks it."""
    return len(repr(PROVIDERS[name].specs.served("")))


def _in_workers(
    per_provider: dict[str, Options], seed: int, notify: Progress, workers: int
) -> dict[str, tuple[ProviderResult, str]]:
    """Run each provider in a pool of ``workers`` processes, the longest first, relaying progress as it comes."""
    # spawn, not fork: this process has threads (the progress bar, schemathesis' pools), which fork would copy
    # half-way through whatever they hold
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    order = sorted(per_provider, key=_cost, reverse=True)
    # a fresh process per provider: hypothesis draws constants from the project's modules loaded so far (its
    # "local constants"), so a process that ran another provider first would generate other cases from the seed
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(events,), max_tasks_per_child=1
    )
    with pool:
        futures: dict[str, Future[tuple[ProviderResult, str]]] = {
            name: pool.submit(_worker_task, per_provider[name], name, seed) for name in order
        }
        finished: set[str] = set()
        try:
            while len(finished) < len(futures):
                try:
                    provider, suite, event, count = events.get(timeout=0.2)
                except queue.Empty:
                    # a worker that died never says "finished": its future says why
                    finished |= {n for n, f in futures.items() if f.done() and f.exception() is not None}
                    continue
                if event == "finished":
                    finished.add(provider)
                else:
                    notify(provider, suite, event, count)
            return {name: future.result() for name, future in futures.items()}
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
