"""Identifiers keep the providers' shapes: ULIDs as the spec writes them, UUIDs as the uuid module would."""

from __future__ import annotations

import re
import uuid

from hypothesis import given, strategies as st

from emulator.core.ids import Ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid_by_the_spec(millis: int, randomness: bytes) -> str:
    """https://github.com/ulid/spec: 48 bits of time, 80 of randomness, as 26 base32 characters, 5 bits each."""
    value = (millis << 80) | int.from_bytes(randomness, "big")
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


@given(at=st.floats(min_value=0, max_value=2**48 / 1000 - 1), seed=st.integers(0, 2**32))
def test_a_ulid_is_its_time_and_randomness_in_crockford_base32(at, seed):
    ulid = Ids(seed).ulid(at)
    randomness = Ids(seed).bytes(10)  # the same seed draws the same bytes
    assert ulid == _ulid_by_the_spec(int(at * 1000), randomness)
    assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", ulid)


@given(seed=st.integers(0, 2**32))
def test_a_uuid4_is_what_the_uuid_module_writes(seed):
    value = Ids(seed).uuid4()
    raw = bytearray(Ids(seed).bytes(16))
    assert value == str(uuid.UUID(bytes=bytes(raw), version=4))
    assert uuid.UUID(value).version == 4
