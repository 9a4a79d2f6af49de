"""py-spy recordings of the emulator and a reader for their collapsed stacks (``-f raw``).

A raw line is ``frame;frame;...;leaf COUNT`` with frames written ``function (file:line)``. ``top`` folds line
numbers away and counts, per function, the samples where it is the leaf (self) and where it is anywhere on the stack
(inclusive), so the README can quote where the time goes.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def parse(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    return stacks


def fold(frame: str) -> str:
    """``handle (emulator/core/provider.py:123)`` → ``handle (emulator/core/provider.py)``; site-packages trimmed;
    an unsymbolised native frame (``0x7f… (libcrypto.so.3)``, ``--native``) becomes ``[native] (libcrypto.so.3)``."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match.group("file")
    if re.fullmatch(r"0x[0-9a-f]+", match.group("func")):
        return f"[native] ({file})"
    file = file.split("site-packages/", 1)[-1]
    return f"{match.group('func')} ({file})"


@dataclass(frozen=True)
class Row:
    frame: str
    samples: int
    share: float  # of all samples


def top(
    stacks: list[tuple[list[str], int]], n: int = 15, inclusive: bool = False, only: str | None = None
) -> list[Row]:
    """The ``n`` functions with most samples as leaf (or anywhere on the stack); ``only`` keeps frames whose file
    contains that text (e.g. ``emulator/``)."""
    total = sum(count for _, count in stacks) or 1
    counts: Counter[str] = Counter()
    for frames, count in stacks:
        folded = [fold(f) for f in frames]
        if inclusive:
            for frame in set(folded):
                counts[frame] += count
        else:
            counts[folded[-1]] += count
    rows = [
        Row(frame, samples, samples / total) for frame, samples in counts.most_common() if only is None or only in frame
    ]
    return rows[:n]


def render(title: str, stacks: list[tuple[list[str], int]], n: int = 12) -> str:
    total = sum(count for _, count in stacks)
    lines = [f"### {title} ({total} samples)", "", "self (leaf) time:", ""]
    lines += [f"  {row.share:6.1%}  {row.frame}" for row in top(stacks, n)]
    lines += ["", "inclusive time, emulator code:", ""]
    lines += [
        f"  {row.share:6.1%}  {row.frame}"
        for row in top(stacks, n + 2, inclusive=True, only="emulator/")
        if "emulator/cli.py" not in row.frame
    ]
    return "\n".join(lines) + "\n"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise RuntimeError("py-spy not found: pip install -r bench/requirements.txt")
    return found


def attach(pid: int, out: Path, rate: int = 100, native: bool = True, threads: bool = False) -> subprocess.Popen[bytes]:
    """Start recording ``pid``; ``stop`` ends the recording (SIGINT makes py-spy write what it has).

    ``native`` adds C frames, so time inside MD5 (libcrypto), memcpy or a syscall is told apart from the Python
    frame that called it. ``threads`` records each thread under its own root frame and samples without pausing
    the process (pausing a process whose threads hash and write in parallel slows it down tenfold); see
    ``thread_busy``."""
    cmd = [py_spy(), "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(out)]
    cmd += ["--native"] if native else []
    cmd += ["--threads", "--nonblocking"] if threads else []
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def thread_busy(stacks: list[tuple[list[str], int]], seconds: float, rate: int) -> str:
    """Per thread of a ``threads=True`` recording: the share of ``seconds`` in which it was running (idle samples
    are not recorded), and where its time went."""
    per_thread: dict[str, list[tuple[list[str], int]]] = {}
    for frames, count in stacks:
        root = frames[0] if frames else "?"
        named = re.match(r"thread \(\d+\):?\s*(.*)", root)
        name = (named.group(1) if named else root) or root
        per_thread.setdefault(name, []).append((frames[1:] or ["(no Python frame)"], count))
    lines = []
    for name, own in sorted(per_thread.items(), key=lambda kv: -sum(c for _, c in kv[1])):
        samples = sum(count for _, count in own)
        leaves = ", ".join(f"{row.frame} {row.share:.0%}" for row in top(own, 3))
        lines.append(f"  {name}: busy {samples / (seconds * rate):.0%} of the time; {leaves}")
    return "\n".join(lines) + "\n"


def stop(recorder: subprocess.Popen[bytes]) -> None:
    recorder.send_signal(signal.SIGINT)
    try:
        recorder.wait(30)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait(5)


def launch(cmd: list[str], out: Path, rate: int = 500) -> None:
    """Record a command from its first instruction to its exit (start-up profile)."""
    subprocess.run(
        [py_spy(), "record", "-r", str(rate), "-f", "raw", "-o", str(out), "--", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
