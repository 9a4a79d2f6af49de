"""Hypothesis state machines, one per provider flow, driving a real HTTP client against the target.

``run`` plays each machine of a provider for ``max_examples`` examples and records every check it made; a failure
becomes a finding naming the check and operation, with the failing example's steps and requests as curl.
"""

from __future__ import annotations

import importlib
import time

from hypothesis import HealthCheck, Phase, settings
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from contracts.flows.base import SUITE, FlowContext, FlowFailure, FlowMachine, ProviderContract
from contracts.results import Finding, ProviderResult
from contracts.target import Target
from emulator.providers import PROVIDERS


def _discover() -> dict[str, ProviderContract]:
    """Each module here named after a registered provider declares that provider's ``CONTRACT``."""
    found: dict[str, ProviderContract] = {}
    for name in PROVIDERS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue  # a provider without a flows module has no flows: tests/test_registry.py says so
        found[name] = module.CONTRACT
    return found


CONTRACTS: dict[str, ProviderContract] = _discover()
FLOWS: dict[str, tuple[type[FlowMachine], ...]] = {name: contract.flows for name, contract in CONTRACTS.items()}


def run(
    target: Target,
    provider_name: str,
    result: ProviderResult,
    *,
    max_examples: int,
    steps: int = 12,
    seed: int | None = None,
) -> None:
    """Play every flow machine of ``provider_name``; tallies and findings go to ``result``."""
    provider = target.providers[provider_name]
    for machine in FLOWS.get(provider_name, ()):
        if machine.needs_writes and not target.allow_writes:
            result.skipped[SUITE] = "flows upload; pass --allow-writes to run them against a real provider"
            continue
        started = time.monotonic()
        ctx = FlowContext(target, provider)
        steps_seen: list[str] = []
        config = settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=seed is not None,
            print_blob=False,
            # no shrinking: each shrink step replays a whole flow over HTTP (megabytes of parts);
            # the failing example is reported with the steps it took
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
        )
        try:
            with with_reporter(steps_seen.append):
                run_state_machine_as_test(machine.bind(ctx), settings=config)
        except FlowFailure as failure:
            result.add(
                Finding(
                    provider_name,
                    SUITE,
                    failure.check,
                    failure.operation,
                    machine.flow_name,
                    failure.message + _steps(steps_seen),
                    ctx.curl_log(),
                    phase=machine.__name__,
                )
            )
        except Exception as exc:  # noqa: BLE001 - any other error of a flow is a finding too, never a crash
            result.add(
                Finding(
                    provider_name,
                    SUITE,
                    "flow_error",
                    machine.__name__,
                    type(exc).__name__,
                    f"{exc}{_steps(steps_seen)}",
                    ctx.curl_log(),
                    phase=machine.__name__,
                )
            )
            result.tally(SUITE, "flow_error", ok=False)
        for check, (passed, failed) in ctx.tallies.items():
            result.tally(SUITE, check, ok=True, count=passed)
            if failed:
                result.tally(SUITE, check, ok=False, count=failed)
        result.cases[SUITE] = result.cases.get(SUITE, 0) + ctx.examples
        result.seconds[SUITE] = result.seconds.get(SUITE, 0.0) + time.monotonic() - started


def _steps(lines: list[str]) -> str:
    """Hypothesis' report of the (shrunk) failing example: the rules it ran, in order."""
    text = "\n".join(line for line in lines if line.strip())
    return f"\n\nSteps of the failing example:\n{text}" if text else ""
