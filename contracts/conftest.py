"""``pytest contracts/``: the contract suite as pytest tests, with the CLI's options.

    pytest contracts/                                         # start an emulator, test every provider
    pytest contracts/ --provider NAME --max-examples 20
    pytest contracts/ --base-url https://api.provider.example --provider NAME --api-key KEY
    pytest contracts/ --contract-junit contracts.xml --report contracts.md

The run happens once per session; each provider and suite is one test that fails listing every finding (check,
operation, curl). ``--contract-junit`` writes the suite's own JUnit XML (one testcase per check); pytest's
``--junitxml`` still reports the pytest tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.results import SUITES, RunResult
from contracts.runner import DEFAULT_MAX_EXAMPLES, Options, run
from emulator.providers import PROVIDERS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upload-emulator contracts")
    group.addoption("--provider", default="all", help="all, or one provider")
    group.addoption("--base-url", default=None, help="test this server instead of starting an emulator")
    group.addoption("--api-key", action="append", default=[], help="KEY (one --provider) or PROVIDER=KEY")
    group.addoption(
        "--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES, help="schemathesis examples per operation and phase"
    )
    group.addoption("--flow-examples", type=int, default=None, help="hypothesis examples per flow machine")
    group.addoption("--contract-seed", type=int, default=None, help="seed for a reproducible run")
    group.addoption(
        "--contract-workers",
        type=int,
        default=None,
        help="processes that run providers side by side (default: one per core; 1: all in this process)",
    )
    group.addoption("--contract-junit", default=None, help="write the suite's JUnit XML here")
    group.addoption("--report", default=None, help="write the Markdown report (failures with curl) here")
    group.addoption(
        "--allow-writes", action="store_true", default=False, help="let a run against a real provider upload"
    )
    group.addoption(
        "--min-cases",
        type=int,
        default=0,
        help="fail unless schemathesis generated at least this many cases per provider",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "contract: a test of the upload-emulator contract suite")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the whole run happens in the first test's setup and lasts as long as --max-examples makes it: a per-test
    # timeout (pytest-timeout, when installed) would cut it off
    if config.pluginmanager.hasplugin("timeout"):
        for item in items:
            if item.get_closest_marker("contract") is not None:
                item.add_marker(pytest.mark.timeout(0))


def _providers(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--provider")
    return list(PROVIDERS) if chosen == "all" else [chosen]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "provider_suite" in metafunc.fixturenames:
        pairs = [(p, s) for p in _providers(metafunc.config) for s in SUITES]
        metafunc.parametrize("provider_suite", pairs, ids=[f"{p}-{s}" for p, s in pairs])
    if "provider" in metafunc.fixturenames:
        metafunc.parametrize("provider", _providers(metafunc.config))


@pytest.fixture(scope="session")
def contract_run(pytestconfig: pytest.Config) -> RunResult:
    from contracts.report import write_junit, write_markdown

    options = Options(
        providers=_providers(pytestconfig),
        base_url=pytestconfig.getoption("--base-url"),
        api_keys=pytestconfig.getoption("--api-key"),
        max_examples=pytestconfig.getoption("--max-examples"),
        flow_examples=pytestconfig.getoption("--flow-examples"),
        seed=pytestconfig.getoption("--contract-seed"),
        allow_writes=pytestconfig.getoption("--allow-writes"),
        workers=pytestconfig.getoption("--contract-workers"),
    )
    result = run(options)
    if pytestconfig.getoption("--contract-junit"):
        write_junit(result, Path(pytestconfig.getoption("--contract-junit")))
    if pytestconfig.getoption("--report"):
        write_markdown(result, Path(pytestconfig.getoption("--report")))
    return result
