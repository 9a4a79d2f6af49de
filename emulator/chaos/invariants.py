"""The invariants a run is judged by, from the journal and the stored records: what a client did, not what it said.

success_is_real       exit 0 means a completed, ready record of this key holds bytes with the file's MD5
                      (and the id printed on the last stdout line, if any, is that record)
retry_after_honoured  after a 429 or 503 with Retry-After, the next request to that operation waited it out
no_blind_retry        a 400/401/403/404/413/415 is not sent again unchanged as the very next request
bounded_retries       no request is sent more than 1 + max_retries times
steps_in_order        nothing completes/registers before its bytes were accepted (the provider's own order)
expect_recovery       (--expect-recovery) a schedule a careful client survives ends with exit 0, in time
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from emulator.chaos.schedule import Schedule, recoverable
from emulator.core.chaos import ChaosProfile, Finished

INVARIANTS = (
    "success_is_real",
    "retry_after_honoured",
    "no_blind_retry",
    "bounded_retries",
    "steps_in_order",
    "expect_recovery",
)
NON_RETRYABLE = (400, 401, 403, 404, 413, 415)
TOLERANCE = 0.05  # seconds: the journal's clock and the client's timer are two readings of one clock


@dataclass
class Run:
    """What one run of the client under one schedule left behind."""

    schedule: Schedule
    md5: str  # of the file the client was given
    exit_code: int | None  # None: it did not finish within the timeout
    stdout: str
    stderr: str
    seconds: float
    entries: list[dict[str, Any]] = field(default_factory=list)  # this run's journal entries, oldest first
    finished: list[Finished] = field(default_factory=list)  # this key's completed, ready records

    @property
    def printed_id(self) -> str | None:
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        return last if last and len(last) <= 200 and not any(c.isspace() for c in last) else None


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str


def _retry_after(entry: dict[str, Any]) -> float | None:
    raw = entry.get("response_headers", {}).get("retry-after")
    return float(raw) if raw is not None and raw.strip().isdigit() else None


def _answered_at(entry: dict[str, Any]) -> float:
    return float(entry["epoch"]) + float(entry.get("duration_ms") or 0) / 1000


def _line(entry: dict[str, Any]) -> str:
    return f"#{entry['id']} {entry['method']} {entry['path']} ({entry.get('operation')})"


def check(run: Run, profile: ChaosProfile, *, max_retries: int = 10, expect_recovery: bool = False) -> list[Violation]:
    found: list[Violation] = []
    entries = run.entries

    if run.exit_code == 0:
        matching = [f for f in run.finished if f.md5 == run.md5]
        if not matching:
            stored = ", ".join(f"{f.id} (MD5 {f.md5})" for f in run.finished) or "none"
            found.append(
                Violation(
                    "success_is_real",
                    f"the client exited 0, but no completed, ready record of its "
                    f"key holds the file (MD5 {run.md5}); its records: {stored}",
                )
            )
        elif run.printed_id is not None and run.printed_id not in {f.id for f in run.finished}:
            found.append(
                Violation(
                    "success_is_real",
                    f"the client printed {run.printed_id!r}, which is not a "
                    f"completed record of its key (those: "
                    f"{', '.join(f.id for f in matching)})",
                )
            )

    for index, entry in enumerate(entries):
        wait = _retry_after(entry)
        if entry.get("status") in (429, 503) and wait is not None:
            later = next((e for e in entries[index + 1 :] if e.get("operation") == entry.get("operation")), None)
            if later is not None:
                waited = float(later["epoch"]) - _answered_at(entry)
                if waited + TOLERANCE < wait:
                    found.append(
                        Violation(
                            "retry_after_honoured",
                            f"{_line(entry)} answered {entry['status']} with "
                            f"Retry-After: {wait:g}; {_line(later)} came "
                            f"{max(waited, 0):.2f} s later",
                        )
                    )
                    break

    for index, entry in enumerate(entries):
        if entry.get("status") in NON_RETRYABLE and index + 1 < len(entries):
            again = entries[index + 1]  # resending after another step changed things (a new upload) is fine
            if _identity(again) == _identity(entry):
                found.append(
                    Violation(
                        "no_blind_retry",
                        f"{_line(entry)} answered {entry['status']} and was sent again unchanged as {_line(again)}",
                    )
                )
                break

    counts = Counter((e["method"], e["path"]) for e in entries)
    for (method, path), count in counts.most_common(1):
        if count - 1 > max_retries:
            found.append(
                Violation(
                    "bounded_retries",
                    f"{method} {path} was sent {count} times: {count - 1} retries, more than {max_retries}",
                )
            )

    for order in profile.order:
        accepted = False
        for entry in entries:
            operation = entry.get("operation")
            if operation in order.before and 200 <= (entry.get("status") or 0) < 300 and _delivered(entry):
                accepted = True
            elif operation in order.after and not accepted:
                found.append(
                    Violation(
                        "steps_in_order",
                        f"{_line(entry)} came before any {'/'.join(sorted(order.before))} was accepted: {order.rule}",
                    )
                )
                break

    if expect_recovery and recoverable(run.schedule, max_retries) and run.exit_code != 0:
        how = "did not finish in time" if run.exit_code is None else f"gave up (exit {run.exit_code})"
        found.append(
            Violation(
                "expect_recovery",
                f"the client {how} on a schedule of transient faults within the "
                f"retry budget, which a careful client survives",
            )
        )
    return found


def _delivered(entry: dict[str, Any]) -> bool:
    """Whether the client got the whole answer: sent in full, or cut only after all its declared bytes (a dropped
    empty-bodied 200 still reached the client complete)."""
    declared = entry.get("response_headers", {}).get("content-length", "")
    return bool(entry.get("completed")) or (declared.isdigit() and int(declared) <= entry.get("response_bytes", 0))


def _identity(entry: dict[str, Any]) -> tuple[Any, ...]:
    headers = entry.get("request_headers", {})
    return (
        entry["method"],
        entry["path"],
        entry.get("query"),
        entry.get("request_bytes"),
        headers.get("content-type", "").split(";")[0],
    )  # a multipart boundary is new on every request
