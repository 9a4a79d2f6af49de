"""Identifiers in the providers' own shapes, from one source of randomness (seedable for reproducible runs)."""

from __future__ import annotations

import os
import random
import threading

# Crockford's base32 (the ULID alphabet), two characters (10 bits) at a time
_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_SHIFTS = range(120, -1, -10)  # a ULID's 128 bits as 13 pairs; the first pair's top 2 bits are 0


class _UrandomPool:
    """os.urandom drawn 16 KiB at a time: one getrandom() call per ~1,000 ids instead of one (plus a getpid())
    per id, which under load was ~8 % of a JSON request's time. A forked child starts with an empty pool, so it
    never repeats its parent's bytes."""

    SIZE = 16 * 1024

    def __init__(self) -> None:
        self._pool, self._at = b"", 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._drain)

    def _drain(self) -> None:
        self._pool, self._at = b"", 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._pool):
                self._pool, self._at = os.urandom(max(self.SIZE, n)), 0
            start = self._at
            self._at += n
            return self._pool[start : self._at]


_URANDOM = _UrandomPool()


class Ids:
    def __init__(self, seed: int | None = None) -> None:
        self._rng: random.Random | None = random.Random(seed) if seed is not None else None

    def bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n) if self._rng is not None else _URANDOM.take(n)

    def uuid4(self) -> str:
        """The same string as ``str(uuid.UUID(bytes=..., version=4))``, without building a UUID object."""
        raw = bytearray(self.bytes(16))
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def ulid(self, at: float) -> str:
        """A ULID whose time part is ``at`` (virtual clock seconds): 48 bits of milliseconds, then 80 random bits,
        26 characters of Crockford's base32 (https://github.com/ulid/spec)."""
        # (not base64.b32encode: in Python 3.11 it is a Python loop, ~7 µs against ~4 µs for these 13 lookups)
        value = int.from_bytes(int(at * 1000).to_bytes(6, "big") + self.bytes(10), "big")
        return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])

    def hex(self, n_chars: int) -> str:
        return self.bytes((n_chars + 1) // 2).hex()[:n_chars]

    def object_id(self, at: float) -> str:
        """A MongoDB ObjectId: 4-byte timestamp + 8 random bytes, 24 hex characters."""
        return int(at).to_bytes(4, "big").hex() + self.hex(16)
