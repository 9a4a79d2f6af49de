"""The ``upload-emulator`` command: a table of subcommands, each a module with ``DESCRIPTION``, an argparse
``parser()`` and ``run(argv)``. Only the chosen module is imported, so ``serve`` starts without loading what the
other commands need (schemathesis, rich)."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, str] = {  # command name → module
    "serve": "emulator.serve",
    "contract": "emulator.commands.contract",
    "specs": "emulator.commands.specs",
    "state": "emulator.commands.state",
    "chaos": "emulator.chaos.cli",
}


def overview() -> argparse.ArgumentParser:
    """``upload-emulator --help``: every command with its description (each module's own parser has the rest)."""
    out = argparse.ArgumentParser(
        prog="upload-emulator",
        description="A faithful local stand-in for social-media upload APIs.",
        epilog="`upload-emulator COMMAND --help` lists a command's flags.",
    )
    commands = out.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        commands.add_parser(name, help=importlib.import_module(module).DESCRIPTION)
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in COMMANDS:
        raise SystemExit(importlib.import_module(COMMANDS[args[0]]).run(args[1:]))
    overview().parse_args(args)  # --help lists the commands; nothing, or an unknown command, is a usage error (2)
