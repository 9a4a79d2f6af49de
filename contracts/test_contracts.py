"""The contract suite's verdicts as pytest tests (options in ``contracts/conftest.py``)."""

from __future__ import annotations

import pytest

from contracts.results import RunResult

pytestmark = pytest.mark.contract


def test_provider_honours_its_contract(contract_run: RunResult, provider_suite: tuple[str, str]) -> None:
    provider, suite = provider_suite
    result = next(p for p in contract_run.providers if p.provider == provider)
    findings = [f for f in result.findings if f.suite == suite]
    assert not findings, "\n\n".join(f"{f.check} on {f.operation}: {f.title}\n{f.message}\n{f.curl}" for f in findings)
    ran = result.cases.get(suite, 0) > 0 or suite in result.skipped
    assert ran, f"the {suite} suite ran no case for {provider}"


def test_enough_cases_were_generated(contract_run: RunResult, provider: str, pytestconfig: pytest.Config) -> None:
    result = next(p for p in contract_run.providers if p.provider == provider)
    generated = result.cases.get("schemathesis", 0)
    assert generated >= pytestconfig.getoption("--min-cases"), (
        f"{provider}: schemathesis generated {generated} cases, fewer than --min-cases"
    )
