"""Per-key rate limits over rolling windows, read from the virtual clock.

Each limit keeps the admission times of the last ``limit`` requests (a sliding log), so the count in any window is
exact, and ``take`` is atomic under a lock: fifty concurrent requests on one key admit exactly ``limit``.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from emulator.core.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    name: str  # unique per provider, e.g. "minute" or "posts-minute"
    limit: int
    window: float  # seconds


@dataclass(frozen=True)
class Quota:
    """What the rate-limit headers report: the most constraining limit after this request."""

    limit: int
    remaining: int
    reset: int  # unix seconds when a slot frees up in that window
    retry_after: int = 0
    frees_at: float = 0.0  # the same moment, unrounded (for limiters that report seconds until it instead)


class RateLimiter:
    def __init__(self) -> None:
        self._logs: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def reset(self, prefix: str | None = None) -> None:
        with self._lock:
            if prefix is None:
                self._logs.clear()
            else:
                for key in [k for k in self._logs if k[0].startswith(prefix)]:
                    del self._logs[key]

    def take(self, bucket: str, limits: Sequence[Limit], now: float) -> Quota:
        """Admit one request for ``bucket`` or raise ``RateLimited`` with the headers' figures."""
        with self._lock:
            logs: list[tuple[Limit, deque[float]]] = []
            exceeded: list[tuple[Limit, deque[float]]] = []
            for limit in limits:
                log = self._logs.get((bucket, limit.name))
                if log is None:
                    log = self._logs[(bucket, limit.name)] = deque()
                expired = now - limit.window
                while log and log[0] <= expired:
                    log.popleft()
                logs.append((limit, log))
                if len(log) >= limit.limit:
                    exceeded.append((limit, log))
            if exceeded:
                waits = [(log[0] + limit.window - now, limit) for limit, log in exceeded]
                wait, limit = max(waits, key=lambda w: w[0])
                retry_after = max(1, math.ceil(wait))
                raise RateLimited(
                    f"Rate limit exceeded. Retry after {retry_after} seconds.",
                    retry_after=retry_after,
                    headers=_headers(Quota(limit.limit, 0, math.ceil(now + wait), retry_after)),
                )
            # the most constraining limit after this request: fewest remaining, then the earliest reset
            tightest: tuple[int, int, int, float] | None = None
            for limit, log in logs:
                log.append(now)
                frees_at = log[0] + limit.window
                figures = (limit.limit - len(log), math.ceil(frees_at), limit.limit, frees_at)
                if tightest is None or figures[:2] < tightest[:2]:
                    tightest = figures
        if tightest is None:
            return Quota(0, 0, 0)
        remaining, reset, most, frees_at = tightest
        return Quota(most, remaining, reset, frees_at=frees_at)


def _headers(quota: Quota) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(quota.limit),
        "X-RateLimit-Remaining": str(quota.remaining),
        "X-RateLimit-Reset": str(quota.reset),
    }
    if quota.retry_after:
        headers["Retry-After"] = str(quota.retry_after)
    return headers


def quota_headers(quota: Quota | None) -> dict[str, str]:
    return _headers(quota) if quota is not None and quota.limit else {}
