"""Identifiers in the providers' own shapes, from one source of randomness (seedable for reproducible runs)."""

from __future__ import annotations

import base64
import os
import random

_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32, the ULID alphabet
# base64's base32 (RFC 4648) in C, then its alphabet mapped onto Crockford's: ~6 times faster than 26 shifts in Python
_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _BASE32.encode())


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
        # 4 zero bytes ahead of the 16 make 160 bits, 32 characters of 5 bits: the first 6 are the 30 zero bits, the
        # other 26 the ULID (its first character's top 2 bits are 0)
        raw = b"\0\0\0\0" + int(at * 1000).to_bytes(6, "big") + self.bytes(10)
        return base64.b32encode(raw)[6:].translate(_CROCKFORD).decode()

    def hex(self, n_chars: int) -> str:
        return self.bytes((n_chars + 1) // 2).hex()[:n_chars]

    def object_id(self, at: float) -> str:
        """A MongoDB ObjectId: 4-byte timestamp + 8 random bytes, 24 hex characters."""
        return int(at).to_bytes(4, "big").hex() + self.hex(16)
