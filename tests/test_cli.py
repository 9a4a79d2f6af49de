"""The ``upload-emulator`` command line: one framework (argparse), a table of commands, flags typed by ``Settings``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from dataclasses import fields

import pytest

from emulator.main import COMMANDS
from emulator.serve import parser as serve_parser
from emulator.settings import Settings
from tests.helpers import run_command


def test_help_lists_every_command_with_its_description() -> None:
    result = run_command(["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name, module in COMMANDS.items():
        assert name in text and " ".join(importlib.import_module(module).DESCRIPTION.split()) in text


@pytest.mark.parametrize(
    "args, says",
    [
        ([], "required: COMMAND"),
        (["launch"], "invalid choice: 'launch'"),
        (["specs"], "required"),
        (["specs", "show", "x", "--part", "all"], "invalid"),
        (["contract", "--max-examples", "0"], "argument --max-examples: must be at least 1, got 0"),
        (["contract", "--flow-examples", "-3"], "argument --flow-examples: must be at least 1, got -3"),
        (["contract", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
        (["contract", "--workers", "two"], "argument --workers: invalid count value: 'two'"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_wrong(args: list[str], says: str) -> None:
    result = run_command(args)
    assert result.exit_code == 2 and says in result.output, result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_an_argparse_parser_and_a_run(name: str) -> None:
    module = importlib.import_module(COMMANDS[name])
    assert module.DESCRIPTION and callable(module.run)
    assert module.parser().prog == f"upload-emulator {name}"
    assert run_command([name, "--help"]).exit_code == 0


def test_specs_show_prints_the_spec_as_json() -> None:
    result = run_command(["specs", "show", "segmentflow", "--part", "published"])
    assert result.exit_code == 0 and json.loads(result.output)["openapi"].startswith("3.")
    unknown = run_command(["specs", "show", "nope"])
    assert unknown.exit_code == 2 and "unknown provider 'nope'" in unknown.output


def test_serve_loads_none_of_the_other_commands_machinery() -> None:
    """What ``serve`` has imported when uvicorn is about to run (uvicorn itself brings click): the start-up budget
    has no room for the rest."""
    probe = (
        "import sys, uvicorn\n"
        "def stop(*args, **kwargs):\n"
        "    print(' '.join(sorted(sys.modules)))\n"
        "uvicorn.run = stop\n"
        "from emulator.main import main\n"
        "main(['serve', '--port', '0'])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split("\n")[-2].split())
    assert "emulator.app" in loaded
    heavy = {"rich", "typer", "pydantic", "schemathesis", "hypothesis", "contracts", "openapi_core"}
    assert loaded & heavy == set()


def test_every_setting_is_read_by_its_type() -> None:
    """A field's type decides its flag and variable; a type with no reader must name its own ``parse``."""
    flags = {action.dest: action for action in serve_parser()._actions}
    for f in fields(Settings):
        kind = Settings.kind(f.name)
        assert "parse" in f.metadata or kind in (bool, int, float, str) or kind.__name__ == "Path", f.name
        if kind is bool:
            assert flags[f.name].nargs == 0 and Settings.parse(f.name, "yes") is True, f.name
        elif "parse" not in f.metadata and f.default is not None:
            assert Settings.parse(f.name, str(f.default)) == f.default, f.name


def test_contract_defaults_match_the_runner() -> None:
    """The command keeps its own copy of the default (importing the runner would load schemathesis for --help)."""
    from contracts.runner import DEFAULT_MAX_EXAMPLES
    from emulator.commands import contract

    assert contract.parser().parse_args([]).max_examples == DEFAULT_MAX_EXAMPLES
