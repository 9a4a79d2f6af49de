"""Per-key rate limits over rolling windows, read from the virtual clock.

Exact: each limit counts the admissions of the last ``window`` seconds (a sliding log, not an estimate), and
``take`` is atomic under one lock, so fifty concurrent requests on one key admit exactly ``limit``. A refused
request counts against nothing. A limit of 0 refuses every request, with a ``Retry-After`` of its window.

Compact, and freed (issue 16: each key used to leave ~3 KB that was never freed):

- One log per key, not one per limit: the admission times in arrival order, 8 bytes each (``array('d')``), and
  per limit a cursor (its oldest admission still inside its window) and a count. A request counts against a set
  of limits (a provider's posting operation against both its general and its posting limits); when a key has used more
  than one such set, a byte per admission says which. A key that made one request holds about 0.35 KB.
- A key's log is freed once its longest window has passed since it was last seen: a few keys are checked on each
  request, and all of them when the clock is moved through the control plane (``sweep``).
- At most ``max_keys`` keys are tracked. A new key past that frees a key whose windows are empty if the oldest
  ones have any, else forgets the key seen least recently (nginx's ``limit_req`` zone does the same when it is
  full). That key then starts again with a full budget: the price of bounded memory. Reaching that point takes
  ``max_keys`` other keys active within the window, each of which had a full budget of its own anyway; with
  ``strict_keys`` the table never holds more than the configured and created keys.

Written here rather than taken from a library: ``limits`` and ``pyrate-limiter`` keep a Python object per request
(or read the wall clock), and none reports the headers' figures (the oldest admission still in the window).
"""

from __future__ import annotations

import logging
import math
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from emulator.core.errors import RateLimited

log = logging.getLogger("emulator.ratelimit")

DEFAULT_MAX_KEYS = 100_000
SWEEP_PER_REQUEST = 8  # expired keys freed at most per request: a request never pays for a whole sweep
TRIM_AT = 32  # drop expired admissions from a log's front once this many (or half the log) have piled up


@dataclass(frozen=True)
class Limit:
    name: str  # unique per provider, e.g. "minute" or "posts-minute"
    limit: int
    window: float  # seconds


class Quota(NamedTuple):
    """What the rate-limit headers report: the most constraining limit after this request (a named tuple: made on
    every rate-limited request, where a frozen dataclass took ~0.8 µs)."""

    limit: int
    remaining: int
    reset: int  # unix seconds when a slot frees up in that window
    retry_after: int = 0
    frees_at: float = 0.0  # the same moment, unrounded (for limiters that report seconds until it instead)


class _Layout:
    """The limits a key's log keeps a cursor for (shared by every key that has seen the same ones)."""

    __slots__ = ("names", "longest", "head", "_slots")

    def __init__(self, names: tuple[str, ...], longest: float) -> None:
        self.names = names
        self.longest = longest  # once this has passed since the key was last seen, the key is forgotten
        self.head = 1 + 2 * len(names)  # where the admission times start in a log's ``data``
        self._slots: dict[tuple[str, ...], tuple[int, ...] | None] = {}

    def slots(self, names: tuple[str, ...]) -> tuple[int, ...] | None:
        """The cursor of each of ``names`` (``None``: this layout lacks one of them)."""
        try:
            return self._slots[names]
        except KeyError:
            found = tuple(self.names.index(n) for n in names) if set(names) <= set(self.names) else None
            self._slots[names] = found
            return found


class _Log:
    """One key's admissions, in one flat array of doubles (a Python object per number would weigh three times as
    much): ``data[0]`` is the latest time the key was seen; then, per name of the layout, ``start, count``: the
    index among the admissions of that limit's oldest one still inside its window, and how many of its admissions
    are at or after that index; then the admission times, in arrival order. ``tags`` is ``None`` while every
    admission counted against the same set of limits (``tag``), else that set's number for each admission."""

    __slots__ = ("layout", "data", "tags", "tag")

    def __init__(self, layout: _Layout, tag: int) -> None:
        self.layout = layout
        self.data = array("d", [-math.inf] + [0.0] * (2 * len(layout.names)))
        self.tags: bytearray | None = None
        self.tag = tag

    @property
    def seen(self) -> float:
        return self.data[0]


class RateLimiter:
    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"--max-tracked-keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        self.evicted = 0  # keys forgotten while their windows still held admissions
        # one LRU per longest window: in each, the key seen least recently is the next to expire
        self._groups: dict[float, OrderedDict[str, _Log]] = {}
        self._layouts: dict[tuple[tuple[str, ...], float], _Layout] = {}
        self._fresh: dict[tuple[tuple[str, float], ...], _Layout] = {}  # a new key's, by the limits it first meets
        self._count = 0  # keys tracked, over every group
        # the earliest moment a sweep could free a key (the first key of some group passes its longest window then):
        # before it, a request skips the sweep, which would free nothing (a moment too early only costs a sweep)
        self._due = math.inf
        self._tags: list[frozenset[str]] = []
        self._tag_ids: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    @property
    def tracked(self) -> int:
        """How many keys have rate-limit state."""
        return self._count

    def reset(self, prefix: str | None = None) -> None:
        with self._lock:
            if prefix is None:
                self._groups.clear()
            for group in self._groups.values():
                for bucket in [b for b in group if b.startswith(prefix or "")]:
                    del group[bucket]
            self._count = sum(len(group) for group in self._groups.values())

    def sweep(self, now: float) -> int:
        """Forget every key whose longest window has passed; how many were forgotten."""
        with self._lock:
            return self._sweep(now, budget=None)

    def take(self, bucket: str, limits: Sequence[Limit], now: float) -> Quota:
        """Admit one request for ``bucket`` or raise ``RateLimited`` with the headers' figures."""
        if not limits:
            return Quota(0, 0, 0)
        names = tuple(limit.name for limit in limits)
        with self._lock:
            if now >= self._due:
                self._sweep(now, budget=SWEEP_PER_REQUEST)
            entry = self._find(bucket)
            tag = self._tag_for(names)
            state = entry[1] if entry is not None else _Log(self._fresh_layout(limits), tag)
            slots = state.layout.slots(names)
            if slots is None:
                slots = self._widen(state, limits, names)
            # one pass over the limits: each one's count of admissions still inside its window, and the figures the
            # headers report if this request is admitted; the most constraining: fewest remaining, then the
            # earliest reset
            refused: list[tuple[Limit, float]] = []
            tightest: tuple[int, int, int, float] | None = None
            for slot, limit in zip(slots, limits, strict=True):
                count, oldest = self._advance(state, slot, limit, now)
                if count >= limit.limit:
                    refused.append((limit, oldest))
                elif not refused:
                    frees_at = oldest + limit.window
                    remaining, reset = limit.limit - count - 1, math.ceil(frees_at)
                    if tightest is None or (remaining, reset) < (tightest[0], tightest[1]):
                        tightest = (remaining, reset, limit.limit, frees_at)
            if refused:
                if entry is not None:
                    self._touch(bucket, state, now, entry[0])
                waits = [(oldest + limit.window - now, limit) for limit, oldest in refused]
                wait, limit = max(waits, key=lambda w: w[0])
                retry_after = max(1, math.ceil(wait))
                raise RateLimited(
                    f"Rate limit exceeded. Retry after {retry_after} seconds.",
                    retry_after=retry_after,
                    headers=_headers(Quota(limit.limit, 0, math.ceil(now + wait), retry_after)),
                )
            self._admit(state, tag, slots, now)
            if entry is None:
                self._insert(bucket, state, now)
            else:
                self._touch(bucket, state, now, entry[0])
            self._trim(state)
        assert tightest is not None
        remaining, reset, most, frees_at = tightest
        return Quota(most, remaining, reset, frees_at=frees_at)

    # --- one key's log ---------------------------------------------------------------------------------------

    def _advance(self, state: _Log, slot: int, limit: Limit, now: float) -> tuple[int, float]:
        """Move ``limit``'s cursor past its admissions that left the window; the count of those still inside, and
        the time of the oldest of them (``now`` when there is none: it is this request's, if admitted)."""
        data, head, at = state.data, state.layout.head, 1 + 2 * slot
        start, count = int(data[at]), int(data[at + 1])
        cutoff = now - limit.window
        tags, kinds = state.tags, self._tags
        while count:
            if tags is not None and limit.name not in kinds[tags[start]]:
                start += 1  # an admission this limit did not count
            elif data[head + start] <= cutoff:
                start, count = start + 1, count - 1
            else:
                break
        data[at], data[at + 1] = (start if count else len(data) - head), count
        return count, data[head + start] if count else now

    def _admit(self, state: _Log, tag: int, slots: tuple[int, ...], now: float) -> None:
        data, head = state.data, state.layout.head
        size = len(data) - head
        if state.tags is None and tag != state.tag and size:
            state.tags = bytearray([state.tag]) * size
        if state.tags is not None:
            state.tags.append(tag)
        else:
            state.tag = tag
        data.append(now)
        for slot in slots:  # a cursor with no admissions points past the end: at the one just added
            data[2 + 2 * slot] += 1

    def _trim(self, state: _Log) -> None:
        """Drop admissions that every limit has left behind, once enough of them have piled up."""
        data, head = state.data, state.layout.head
        size = len(data) - head
        front = size  # the oldest admission a limit still counts (a plain loop: a generator cost ~1 µs a request)
        for at in range(1, head, 2):
            if data[at + 1] and data[at] < front:
                front = int(data[at])
        if front and (front >= TRIM_AT or 2 * front >= size):
            del data[head : head + front]
            if state.tags is not None:
                del state.tags[:front]
            for at in range(1, head, 2):
                data[at] = data[at] - front if data[at + 1] else size - front

    def _widen(self, state: _Log, limits: Sequence[Limit], names: tuple[str, ...]) -> tuple[int, ...]:
        """Give the log cursors for limits it has not met yet (none of its admissions counted against them)."""
        layout = self._layout(state.layout.names, limits, state.layout.longest)
        head, size = state.layout.head, len(state.data) - state.layout.head
        state.data[head:head] = array("d", [size, 0] * (len(layout.names) - len(state.layout.names)))
        state.layout = layout
        slots = layout.slots(names)
        assert slots is not None
        return slots

    # --- the table of keys -----------------------------------------------------------------------------------

    def _layout(self, names: tuple[str, ...], limits: Sequence[Limit], longest: float = 0.0) -> _Layout:
        new = tuple(limit.name for limit in limits if limit.name not in names)
        key = (names + new, max(longest, *(limit.window for limit in limits)))
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = _Layout(*key)
        return layout

    def _fresh_layout(self, limits: Sequence[Limit]) -> _Layout:
        kind = tuple((limit.name, limit.window) for limit in limits)
        layout = self._fresh.get(kind)
        if layout is None:
            layout = self._fresh[kind] = self._layout((), limits)
        return layout

    def _tag_for(self, names: tuple[str, ...]) -> int:
        """The number of the set of limits ``names`` (a byte per admission: the providers declare a handful)."""
        tag = self._tag_ids.get(names)
        if tag is None:
            kind = frozenset(names)
            tag = self._tags.index(kind) if kind in self._tags else len(self._tags)
            if tag > 255:
                raise ValueError("more than 256 distinct sets of rate limits")
            if tag == len(self._tags):
                self._tags.append(kind)
            self._tag_ids[names] = tag
        return tag

    def _find(self, bucket: str) -> tuple[OrderedDict[str, _Log], _Log] | None:
        for group in self._groups.values():
            state = group.get(bucket)
            if state is not None:
                return group, state
        return None

    def _touch(self, bucket: str, state: _Log, now: float, group: OrderedDict[str, _Log]) -> None:
        """Mark a tracked key as seen now: the back of its group (another group if its longest window grew)."""
        state.data[0] = max(state.data[0], now)
        if self._groups.get(state.layout.longest) is group:
            group.move_to_end(bucket)
        else:
            del group[bucket]
            self._groups.setdefault(state.layout.longest, OrderedDict())[bucket] = state

    def _insert(self, bucket: str, state: _Log, now: float) -> None:
        if self._count >= self.max_keys:
            self._make_room(now)
        state.data[0] = now
        self._groups.setdefault(state.layout.longest, OrderedDict())[bucket] = state
        self._count += 1
        self._due = min(self._due, now + state.layout.longest)

    def _make_room(self, now: float) -> None:
        """Free one key: one whose windows are empty if the oldest of any group is, else the least recently seen."""
        if self._sweep(now, budget=1):
            return
        fronts = [(next(iter(group.values())).seen, longest) for longest, group in self._groups.items() if group]
        _, longest = min(fronts)
        self._groups[longest].popitem(last=False)
        self._count -= 1
        self.evicted += 1
        if self.evicted == 1:
            log.warning(
                "rate limits track %d keys (--max-tracked-keys): forgetting the windows of the key seen "
                "least recently to make room; it starts again with a full budget",
                self.max_keys,
            )

    def _sweep(self, now: float, budget: int | None) -> int:
        """Free up to ``budget`` keys whose longest window has passed, oldest first, in each group. A group is in the
        order its keys were seen, which is the order they expire in while the clock moves forward; after it was set
        back, keys seen "later" wait until their time comes again (``max_keys`` still bounds them)."""
        freed = 0
        emptied: list[float] = []
        for longest, group in self._groups.items():
            before = len(group)
            while group and (budget is None or freed < budget):
                if now < next(iter(group.values())).data[0] + longest:  # the oldest here is still in its window
                    break
                group.popitem(last=False)
                freed += 1
            if not group:
                emptied.append(longest)
            elif budget is None and len(group) * 4 < before:
                self._groups[longest] = OrderedDict(group)  # a dict never shrinks its table by itself
        for longest in emptied:
            del self._groups[longest]  # its hash table goes with it
        self._count -= freed
        self._due = min(
            (next(iter(group.values())).data[0] + longest for longest, group in self._groups.items()), default=math.inf
        )
        return freed


def _figures(quota: Quota) -> list[tuple[str, int]]:
    """The rate-limit headers' names and figures (Retry-After only with a wait)."""
    figures = [
        ("X-RateLimit-Limit", quota.limit),
        ("X-RateLimit-Remaining", quota.remaining),
        ("X-RateLimit-Reset", quota.reset),
    ]
    if quota.retry_after:
        figures.append(("Retry-After", quota.retry_after))
    return figures


def _headers(quota: Quota) -> dict[str, str]:
    return {name: str(value) for name, value in _figures(quota)}


def quota_headers(quota: Quota | None) -> dict[str, str]:
    return _headers(quota) if quota is not None and quota.limit else {}


# the names as an ASGI response's raw header list holds them (lowercase bytes), worked out once
_RAW_NAMES = {name: name.lower().encode() for name, _ in _figures(Quota(1, 0, 0, retry_after=1))}


def quota_raw_headers(quota: Quota | None) -> list[tuple[bytes, bytes]]:
    """``quota_headers`` as raw (name, value) pairs, to append to a response's ``raw_headers`` without Starlette's
    ``MutableHeaders`` (which lowercased, encoded and scanned the list per header: ~3 % of a JSON request)."""
    if quota is None or not quota.limit:
        return []
    return [(_RAW_NAMES[name], str(value).encode()) for name, value in _figures(quota)]
