"""``upload-emulator contract``: check that an emulator (or a real provider) honours the providers' contracts.

Exit status: 0 when nothing failed, 1 when something did, 2 for bad usage (argparse's own status for a bad flag).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = "Check that an emulator (or a real provider) honours the providers' contracts."
DEFAULT_MAX_EXAMPLES = 60  # keep in step with contracts.runner.DEFAULT_MAX_EXAMPLES (not imported: it is heavy)


def count(text: str) -> int:
    """A count of at least 1 (0 examples would run nothing and report the engine's errors as findings)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(prog="upload-emulator contract", description=DESCRIPTION)
    out.add_argument("--provider", default="all", help="all, or one provider (default: all)")
    out.add_argument(
        "--base-url",
        metavar="URL",
        help="Test this server instead of starting an emulator: a running emulator (every provider under "
        "its prefix, or one at its root) or a real provider's origin (with --provider)",
    )
    out.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        help="The key to use: KEY with one --provider, or PROVIDER=KEY (repeatable); default: dev keys",
    )
    out.add_argument(
        "--max-examples",
        type=count,
        default=DEFAULT_MAX_EXAMPLES,
        metavar="N",
        help=f"schemathesis examples per operation and phase (default: {DEFAULT_MAX_EXAMPLES})",
    )
    out.add_argument(
        "--flow-examples",
        type=count,
        metavar="N",
        help="hypothesis examples per flow machine (default: half of --max-examples, at least 5)",
    )
    out.add_argument("--seed", type=int, metavar="N", help="Seed for a reproducible run")
    out.add_argument(
        "--workers",
        type=count,
        metavar="N",
        help="Processes that run providers side by side when the command starts its own emulators "
        "(default: one per core, at most one per provider; 1: all in this process)",
    )
    out.add_argument("--junit", type=Path, metavar="FILE", help="Write JUnit XML here")
    out.add_argument("--report", type=Path, metavar="FILE", help="Write a Markdown report (failures with curl) here")
    out.add_argument(
        "--allow-writes",
        action="store_true",
        help="Let a run against a real provider upload (an emulator is always a sandbox)",
    )
    out.add_argument(
        "--suite",
        action="append",
        metavar="SUITE",
        help="Run only these suites: schemathesis, flows, documented (repeatable)",
    )
    out.add_argument(
        "--operation",
        action="append",
        metavar="ID",
        help="Narrow the schemathesis suite to these operationIds (repeatable)",
    )
    return out


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from rich.console import Console

    from contracts.console import run_with_progress
    from contracts.results import SUITES
    from contracts.runner import Options, WorkerDied
    from contracts.target import TargetError
    from emulator.providers import PROVIDERS

    console = Console()
    names = list(PROVIDERS) if args.provider == "all" else [args.provider]
    unknown = [n for n in names if n not in PROVIDERS] + [s for s in args.suite or () if s not in SUITES]
    if unknown:
        print(
            f"error: unknown provider or suite {unknown[0]!r}; providers: {', '.join(PROVIDERS)}; "
            f"suites: {', '.join(SUITES)}",
            file=sys.stderr,
        )
        return 2
    options = Options(
        providers=names,
        base_url=args.base_url,
        api_keys=args.api_key or [],
        max_examples=args.max_examples,
        flow_examples=args.flow_examples,
        seed=args.seed,
        allow_writes=args.allow_writes,
        suites=tuple(s for s in SUITES if s in (args.suite or SUITES)),
        operations=tuple(args.operation or ()),
        workers=args.workers,
    )
    try:
        result = run_with_progress(options, console, junit=args.junit, report=args.report)
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WorkerDied as exc:  # the other workers are stopped already
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the worker processes are stopped already
        print("interrupted", file=sys.stderr)
        return 130
    return 1 if result.failed else 0
