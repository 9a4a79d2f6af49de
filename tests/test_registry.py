"""A fifth provider touches only its own files: its provider module, its specs folder and its flows module.

Every other place that needs to know the providers derives them from the registry (``emulator.providers``), and
these tests prove it: no shared module names a provider, and every table keyed by provider — in the contract
suite, the benchmarks, the compose file and the tests' own parametrized tables — lists every registered one, so a
provider missing from one is a failure here rather than silently untested.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from emulator.providers import PROVIDERS

ROOT = Path(__file__).resolve().parent.parent
REGISTERED = set(PROVIDERS)
# where a provider may be named: its own module, its flows module, its specs folder
OWN_PLACES = ("emulator/providers/", "contracts/flows/", "emulator/specs/", "specs/")
# bench's workloads are PostEverywhere's published JSON operation and its presigned PUT, compared with Prism
# serving that spec and moto storing those bytes (bench/README.md): a choice of benchmark, not a table of providers
BENCH_WORKLOADS = {"bench/peers.py", "bench/startup.py", "bench/inprocess.py", "bench/run.py", "bench/png.py"}
NAMES = re.compile("|".join(sorted(REGISTERED)), flags=re.IGNORECASE)


def shared_sources() -> Iterator[Path]:
    for folder in ("emulator", "contracts", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith(OWN_PLACES) and relative not in BENCH_WORKLOADS:
                yield path


def test_no_shared_module_names_a_provider() -> None:
    named = {
        path.relative_to(ROOT).as_posix(): sorted({m.lower() for m in NAMES.findall(path.read_text())})
        for path in shared_sources()
    }
    assert {path: names for path, names in named.items() if names} == {}


def test_the_contract_suite_knows_every_provider() -> None:
    from contracts import documented, openapi_suite
    from contracts.flows import CONTRACTS, FLOWS

    assert set(CONTRACTS) == set(FLOWS) == set(openapi_suite.STATE_DEPENDENT) == REGISTERED
    assert set(documented.CURL_EXAMPLES) == REGISTERED
    for name, contract in CONTRACTS.items():
        assert contract.flows, f"contracts/flows/{name}.py declares no flow machine"
        operations = {
            op["operationId"]
            for path in PROVIDERS[name].specs.effective["paths"].values()
            for op in path.values()
            if isinstance(op, dict) and "operationId" in op
        }
        declared = set(contract.state_dependent) | set(contract.state_bound) | set(contract.prepared)
        assert declared <= operations, f"{name} declares unknown operations {sorted(declared - operations)}"


def test_the_benchmarks_time_every_provider() -> None:
    from bench import suites

    assert set(suites.PROVIDERS) == REGISTERED


def test_the_compose_example_points_the_app_at_every_provider() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    environment = compose["services"]["app"]["environment"]
    for name, provider in PROVIDERS.items():
        expected = f"http://emulator:8080/{name}{provider.specs.server_path}{provider.client_path}"
        assert environment.get(f"{name.upper()}_BASE_URL") == expected, name


def test_serve_uses_the_port_a_provider_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.serve import settings_from

    monkeypatch.delenv("UPLOAD_EMULATOR_PORT", raising=False)
    for name, provider in PROVIDERS.items():
        assert settings_from(["--provider", name]).port == (provider.default_port or 8080)
        assert settings_from(["--provider", name, "--port", "9000"]).port == 9000
    assert settings_from([]).port == 8080


# --- the tests' own tables ---------------------------------------------------------------------------------------


def _test_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"tests.{path.stem}")
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        if path.stem != "test_registry"
    ]


def _provider_tables(module: ModuleType) -> Iterator[tuple[str, set[str]]]:
    """Module-level collections keyed by provider name: dicts whose keys, or sequences whose items, are all
    provider names (at least two of them, so a single provider's own constant is not a table)."""
    for attr, value in vars(module).items():
        if isinstance(value, dict):
            items: Any = list(value)
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
        else:
            continue
        if len(items) >= 2 and all(isinstance(item, str) and item in REGISTERED for item in items):
            yield attr, set(items)


def _provider_parametrizations(module: ModuleType) -> Iterator[tuple[str, set[str]]]:
    """Each test function's ``@pytest.mark.parametrize`` over an argument named ``provider``."""
    for attr, value in vars(module).items():
        if not (attr.startswith("test_") and callable(value)):
            continue
        for mark in getattr(value, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            argnames = mark.args[0]
            names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else list(argnames)
            if "provider" not in names:
                continue
            index = names.index("provider")
            values = [getattr(v, "values", v) for v in mark.args[1]]
            yield attr, {v if len(names) == 1 else v[index] for v in values}


@pytest.mark.parametrize("module", _test_modules(), ids=lambda m: m.__name__.rpartition(".")[2])
def test_every_table_of_providers_lists_every_provider(module: ModuleType) -> None:
    """A test may cover fewer providers only if its module says why (``PROVIDER_SUBSETS``: name → reason)."""
    subsets: dict[str, str] = getattr(module, "PROVIDER_SUBSETS", {})
    incomplete = {
        name: sorted(REGISTERED - covered)
        for name, covered in (*_provider_tables(module), *_provider_parametrizations(module))
        if covered != REGISTERED and name not in subsets
    }
    assert incomplete == {}, f"{module.__name__}: tables that miss registered providers"
    for name, reason in subsets.items():
        assert hasattr(module, name) and reason.strip(), f"{module.__name__}.PROVIDER_SUBSETS names {name!r}"
