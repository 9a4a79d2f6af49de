"""``upload-emulator specs``: check the providers' specs, or print one.

``specs check`` validates every effective spec and proves it only adds to the published one (exit 1 otherwise);
``specs show PROVIDER [--part published|inferred|effective]`` prints one as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = "Inspect and check the providers' specs."
PARTS = ("published", "inferred", "effective")


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(prog="upload-emulator specs", description=DESCRIPTION)
    commands = out.add_subparsers(dest="command", required=True, metavar="{check,show}")
    commands.add_parser(
        "check",
        help="Validate every effective spec and prove it only adds to the published one.",
        description="Validate every effective spec and prove it only adds to the published one.",
    )
    show = commands.add_parser(
        "show",
        help="Print a provider's published, inferred or effective spec as JSON.",
        description="Print a provider's published, inferred or effective spec as JSON.",
    )
    show.add_argument("provider")
    show.add_argument("--part", choices=PARTS, default="effective", help="which spec (default: effective)")
    return out


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return check() if args.command == "check" else show(args.provider, args.part)


def check() -> int:
    from emulator.core import specs

    failed = False
    for name in specs.available():
        try:
            problems = specs.load(name).check()
        except specs.SpecError as exc:
            problems = [str(exc)]
        print(f"{name}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  - {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


def show(provider: str, part: str) -> int:
    from emulator.core import specs

    if provider not in specs.available():
        print(f"error: unknown provider {provider!r}; choose from {', '.join(specs.available())}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(getattr(specs.load(provider), part), indent=2) + "\n")
    return 0
