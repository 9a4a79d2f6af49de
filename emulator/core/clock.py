"""The virtual clock every time-dependent part reads (presign expiry, rate-limit windows, timestamps).

Real time by default; frozen, set or advanced on demand so that "the URL expired after 3600 s" takes
milliseconds to test.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        """Seconds since the epoch, as the emulator sees them."""
        frozen = self._frozen_at
        return frozen if frozen is not None else self._wall() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self, at: float | None = None) -> None:
        with self._lock:
            self._frozen_at = self.now() if at is None else at

    def resume(self) -> None:
        """Let time run again from where it stands now."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - self._wall()
                self._frozen_at = None

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def set(self, at: float) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = at
            else:
                self._offset = at - self._wall()

    def reset(self) -> None:
        with self._lock:
            self._offset, self._frozen_at = 0.0, None

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def iso_millis(ts: float) -> str:
    """``2026-04-10T12:00:00.000Z``: the timestamp shape the providers' examples use."""
    seconds = int(ts // 1)
    micros = round((ts - seconds) * 1_000_000)  # as datetime.fromtimestamp rounds, then truncated to ms
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, 0
    return f"{_second(seconds)}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    """The date-and-time part, cached: within a burst of requests most timestamps share their second."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
