"""Identifiers in the providers' own shapes, from one source of randomness (seedable for reproducible runs)."""

from __future__ import annotations

import os
import random

_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32, the ULID alphabet
_SHIFTS = range(125, -1, -5)  # a ULID's 128 bits as 26 characters of 5 bits; the first one's top 2 bits are 0


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
        return "".join([_BASE32[(value >> shift) & 31] for shift in _SHIFTS])

    def hex(self, n_chars: int) -> str:
        return self.bytes((n_chars + 1) // 2).hex()[:n_chars]

    def object_id(self, at: float) -> str:
        """A MongoDB ObjectId: 4-byte timestamp + 8 random bytes, 24 hex characters."""
        return int(at).to_bytes(4, "big").hex() + self.hex(16)
