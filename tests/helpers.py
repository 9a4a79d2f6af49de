"""Small request builders shared by the tests: keys, sample files, the PostEverywhere paths."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PE = "/posteverywhere/api/v1"
PE_KEY = "pe_live_" + "0123456789abcdef" * 2
PE_OTHER_KEY = "pe_live_" + "fedcba9876543210" * 2
AUTH = {"Authorization": f"Bearer {PE_KEY}"}
OTHER = {"Authorization": f"Bearer {PE_OTHER_KEY}"}


def sample(ext: str) -> bytes:
    return (resources.files("emulator") / "assets" / f"sample.{ext}").read_bytes()


# A minimal ISO-BMFF header with the 'isom' brand: enough for content sniffing to call it video/mp4.
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free" + b"\x00" * 64
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


@dataclass
class CommandResult:
    exit_code: int
    output: str  # what the command wrote to stdout and stderr, in order


def run_command(args: list[str]) -> CommandResult:
    """``upload-emulator ARGS`` in this process (as the console script calls it): its exit status and output."""
    from emulator.main import main

    written = io.StringIO()
    with contextlib.redirect_stdout(written), contextlib.redirect_stderr(written):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return CommandResult(code, written.getvalue())


NODE_CLIENTS = Path(__file__).resolve().parents[1] / "clients" / "node"


def clients_cache() -> Path:
    """Where pinned clients are installed, outside the repository (once per lock file)."""
    configured = os.environ.get("UPLOAD_EMULATOR_CLIENTS_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "upload-emulator" / "clients"
