"""Identifiers in the providers' own shapes, from one source of randomness (seedable for reproducible runs)."""

from __future__ import annotations

import os
import random

_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32, the ULID alphabet
# every pair of characters, by the 10 bits they encode: a ULID's 130 bits (128 and 2 leading zero bits) are 13 pairs,
# half the steps of one character at a time (base64.b32encode is itself a Python loop on 3.11, and slower still)
_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_PAIR_SHIFTS = range(120, -1, -10)


class Ids:
    def __init__(self, seed: int | None = None) -> None:
        self._rng: random.Random | None = random.Random(seed) if seed is not None else None

    def bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n) if self._rng is not None else os.urandom(n)

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
        value = int.from_bytes(int(at * 1000).to_bytes(6, "big") + self.bytes(10), "big")
        return "".join([_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])

    def hex(self, n_chars: int) -> str:
        return self.bytes((n_chars + 1) // 2).hex()[:n_chars]

    def object_id(self, at: float) -> str:
        """A MongoDB ObjectId: 4-byte timestamp + 8 random bytes, 24 hex characters."""
        return int(at).to_bytes(4, "big").hex() + self.hex(16)
