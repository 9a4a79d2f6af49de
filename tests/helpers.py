"""Small request builders shared by the tests: keys, sample files, the PostEverywhere paths, child processes."""

from __future__ import annotations

import contextlib
import io
import os
import socket
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


def assert_put_without_length_is_411(url: str, extra_headers: str = "") -> None:
    """A PUT to ``url`` with neither Content-Length nor chunking, on a raw socket (no HTTP client sends one): the
    answer is S3's 411 MissingContentLength. ``extra_headers``: more header lines, each ending in CRLF."""
    from urllib.parse import urlsplit

    target = urlsplit(url)
    head_lines = f"Host: {target.netloc}\r\n{extra_headers}Connection: close\r\n"
    request = f"PUT {target.path}?{target.query} HTTP/1.1\r\n{head_lines}\r\n"
    with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 411 "), head
    assert b"<Code>MissingContentLength</Code>" in body
    assert b"<Message>You must provide the Content-Length HTTP header.</Message>" in body


NODE_CLIENTS = Path(__file__).resolve().parents[1] / "clients" / "node"


def clients_cache() -> Path:
    """Where pinned clients are installed, outside the repository (once per lock file)."""
    configured = os.environ.get("UPLOAD_EMULATOR_CLIENTS_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "upload-emulator" / "clients"


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started that are still running (Linux /proc)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found
