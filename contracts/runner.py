"""One contract run: open the target, then for each provider the schemathesis phases, the flow machines and the
documented examples; the result feeds the summary table, JUnit XML and the Markdown report.

    from contracts.runner import Options, run
    result = run(Options(providers=["<provider>"], max_examples=20))
    assert not result.failed, [f.check for f in result.findings]
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contracts import documented, flows, openapi_suite
from contracts.results import SUITES, ProviderResult, RunResult
from contracts.target import open_target
from emulator.providers import PROVIDERS

# schemathesis examples per operation and phase: with it every provider gets well over 1,000 generated cases
DEFAULT_MAX_EXAMPLES = 60  # keep in step with the CLI default of --max-examples


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

    @property
    def examples_per_flow(self) -> int:
        return self.flow_examples if self.flow_examples is not None else max(5, self.max_examples // 2)


# (provider, suite, event, count): "start" before a suite, "cases" as schemathesis cases accumulate, "done" after
Progress = Callable[[str, str, str, int], None]


def run(options: Options, progress: Progress | None = None, wrap: Callable[[Any], Any] | None = None) -> RunResult:
    """Run the chosen suites for every chosen provider; ``wrap`` wraps the ASGI app of an emulator started here."""
    notify = progress or (lambda *args: None)
    started = time.monotonic()
    # schemathesis always runs seeded, so that the report's seed reproduces it (--seed N); flows are derandomized
    # only when a seed was asked for, and report a failing example's every step and request anyway
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    with open_target(
        options.providers,
        base_url=options.base_url,
        api_keys=options.api_keys,
        allow_writes=options.allow_writes,
        seed=seed,
        wrap=wrap,
    ) as target:
        result = RunResult(target.url, seed=seed, notes=list(target.notes))
        for name in options.providers:
            provider_result = ProviderResult(name)
            result.providers.append(provider_result)
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
    result.seconds = time.monotonic() - started
    return result
