"""Abandoned uploads reclaimed: what S3's lifecycle rule ``AbortIncompleteMultipartUpload`` does, for every provider.

An upload a client starts and never finishes (parts never completed, chunks never finalized, an object never
registered) would keep its bytes for ever. A provider declares each kind of unfinished upload it keeps as an
``Abandonable``: the namespace of its records, when a record's upload started (``None`` once it is finished, or
while a request is finishing it), and how to expire it (remove its bytes, and leave the record, or its absence,
answering as the provider answers for an expired upload). Core does the sweeping and names no provider.

A sweep expires every upload started more than ``abandoned_after`` virtual seconds ago. Sweeps run when the
control plane moves the clock, and otherwise at most once per ``interval`` virtual seconds, on the next request
or on the server's periodic tick, so an idle emulator frees its disk too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.runtime import Runtime


@dataclass(frozen=True)
class Abandonable:
    namespace: str  # where the provider keeps these records
    started: Callable[[Any], float | None]  # when its upload started; None: finished, or being finished right now
    expire: Callable[[Runtime, str, Any], None]  # remove its bytes; afterwards it answers as an expired upload


class Reclaimer:
    """When the next sweep is due, and the sweep itself (run on the event loop, between requests' steps)."""

    def __init__(self, after: float) -> None:
        if not after >= 0:  # also NaN
            raise ValueError(f"abandoned_after: must be a number of seconds, 0 (never reclaim) or more; got {after}")
        self.after = after
        # often enough that an abandoned upload outlives its period by at most 1/24 of it (an hour by default)
        self.interval = min(3600.0, after / 24)
        self.due = float("-inf") if after > 0 else float("inf")  # the first request sweeps: uploads kept from
        # an earlier run (--data-dir) may have been abandoned long ago

    def tick(self, runtime: Runtime, kinds: Iterable[Abandonable], now: float) -> int:
        """Sweep if one is due; the number of uploads expired."""
        if self.after <= 0 or now < self.due:
            return 0
        return self.sweep(runtime, kinds, now)

    def sweep(self, runtime: Runtime, kinds: Iterable[Abandonable], now: float) -> int:
        if self.after <= 0:
            return 0
        self.due = now + self.interval
        cutoff = now - self.after
        expired = 0
        for kind in kinds:
            for id, record in runtime.store.items(kind.namespace):
                started = kind.started(record)
                if started is not None and started < cutoff:  # more than `after` ago
                    kind.expire(runtime, id, record)
                    expired += 1
        return expired
