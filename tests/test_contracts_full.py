"""The full contract run (what ``upload-emulator contract`` and ``pytest contracts/`` do by default): every provider,
every suite, at least 1,000 generated schemathesis cases per provider, and not one failure. The providers run side
by side in worker processes, one per core, as the command runs them (about half a minute on two quiet cores); it
runs in the default suite (and so in CI), as issue 8 asks."""

from __future__ import annotations

import pytest

from contracts.runner import DEFAULT_MAX_EXAMPLES, Options, run
from emulator.providers import PROVIDERS


@pytest.mark.timeout(900)
def test_the_full_contract_run_passes_with_over_1000_cases_per_provider():
    result = run(Options(max_examples=DEFAULT_MAX_EXAMPLES))
    assert not result.failed, "\n\n".join(
        f"{f.provider} {f.check} {f.operation}: {f.message}\n{f.curl}" for f in result.findings
    )
    assert [p.provider for p in result.providers] == list(PROVIDERS)
    for provider in result.providers:
        assert provider.cases["schemathesis"] >= 1000, (provider.provider, provider.cases, result.seed)
        assert provider.cases["flows"] > 0 and provider.cases["documented"] > 0
