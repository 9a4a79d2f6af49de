"""Records as typed JSON (``core.records``): the text written is exactly what the general encoder wrote (the Redis
store compares stored texts, so a record must be written the same way by every version that shares a database),
and it reads back as the same record."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.core import records
from emulator.core.storage import Blob
from emulator.providers.posteverywhere import Media


class Kind(enum.StrEnum):
    IMAGE = "image"


@dataclass
class Sample:
    id: str
    size: int
    ratio: float
    done: bool
    missing: None
    kind: Kind
    blob: Blob
    parts: dict[int, Blob] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    seen: set[str] = field(default_factory=set)
    raw: bytes = b""
    notes: list[Any] = field(default_factory=list)
    text: str = ""


def test_a_record_is_written_as_the_general_encoder_wrote_it_and_reads_back(tmp_path: Path) -> None:
    blob = Blob("ab12", tmp_path / "ab" / "ab12", 5, "0" * 32, "image/png")
    sample = Sample(
        "id-1",
        2**70,
        0.1,
        True,
        None,
        Kind.IMAGE,
        blob,
        {1: blob},
        ("a", "b"),
        {"x"},
        b"\x00\xff",
        [1, "two", None, {"k": [blob]}],
        "lone \ud800 surrogate, é",
    )
    text = records.dumps(sample, tmp_path)
    assert text == json.dumps(records._encode(sample, tmp_path), ensure_ascii=True, separators=(",", ":"))
    assert text.isascii() and '"kind":"image"' in text and '"rel":true' in text and '"size":' + str(2**70) in text
    # read back (only the emulator's own classes are: this test's are refused), a provider's record with its bytes
    media = Media(
        id="m1", tenant="t", filename="a.png", content_type="image/png", declared_size=5, created_at=1.5,
        expires_at=2, width=None, height=None, duration=None, blob=blob,
    )  # fmt: skip
    assert records.loads(records.dumps(media, tmp_path), tmp_path) == media
