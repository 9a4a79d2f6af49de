"""The ``upload-emulator`` command: ``serve`` goes straight to ``emulator.serve`` (argparse: no typer, pydantic or
rich to import, so the emulator answers sooner), ``chaos`` to ``emulator.chaos.cli`` (argparse too), every other
command to the typer app in ``emulator.cli``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        from emulator.serve import run

        run(args[1:])
        return
    if args[:1] == ["chaos"]:
        from emulator.chaos.cli import run as chaos

        chaos(args[1:])
        return
    from emulator.cli import app

    app(args, prog_name="upload-emulator")
