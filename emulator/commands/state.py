"""``upload-emulator state check --data-dir DIR``: verify a stopped emulator's data directory, record by record and
blob by blob (``emulator.core.integrity``). One line per problem, then a summary line; exit status 0 when clean, 1 on
any problem, 2 when the directory cannot be checked (missing, or in use by a running emulator)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

DESCRIPTION = "Inspect an emulator's kept state (--data-dir)."


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(prog="upload-emulator state", description=DESCRIPTION)
    commands = out.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="Verify every record and every stored object's size and MD5.",
        description="Verify every record of the state file and every stored object (size "
        "and MD5) of a data directory, without changing anything. One line per "
        "problem; exit 1 on any, 0 with a summary line when clean.",
    )
    check.add_argument("--data-dir", type=Path, required=True, metavar="DIR", help="The emulator's --data-dir.")
    return out


def run(argv: list[str]) -> None:
    from emulator.core.integrity import check
    from emulator.runtime import STATE_FILE

    args = parser().parse_args(argv)
    root: Path = args.data_dir.absolute()
    if not root.is_dir():
        print(f"error: {root}: not a directory", file=sys.stderr)
        raise SystemExit(2)
    with (root / ".lock").open("a") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: a running emulator holds it exclusively
            except BlockingIOError:
                print(
                    f"error: {root}: in use by a running upload-emulator; stop it first (its state changes "
                    "under a check)",
                    file=sys.stderr,
                )
                raise SystemExit(2) from None
        report = check(root, STATE_FILE)
    for problem in report.problems:
        print(problem)
    print(report.summary(root))
    raise SystemExit(1 if report.problems else 0)
