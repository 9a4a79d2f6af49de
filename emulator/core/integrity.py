"""Verify a data directory at rest: every record of the state file and every stored blob, without changing any.

What ``upload-emulator state check`` runs (the emulator itself verifies bytes lazily, see ``core.storage``). Each
problem is one line naming the file or record and what is wrong with it:

- the state file: missing while bytes are stored, empty, not SQLite, damaged, a table missing, a bad ``meta``
  value, a record that cannot be read back (``core.state.read_back``);
- each blob: its ``.json`` record unreadable, its size or MD5 no longer those recorded, or its bytes gone;
- each record that names a blob (a ``Blob`` value, or a ``blob_name`` field) whose bytes are missing or damaged.

Bytes no record names (an upload cut short by a kill, between storing its bytes and its record) are counted in the
summary, not reported as problems: they are not served, and cost only disk.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.core.state import read_back
from emulator.core.storage import _HEX, Blob, file_crc32, file_md5


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    records: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    unnamed: int = 0  # blobs no record names

    def summary(self, root: Path) -> str:
        counted = f"{self.records} records and {self.blobs} stored objects ({self.blob_bytes} bytes)"
        unnamed = f"; {self.unnamed} stored objects named by no record (cut short by a kill)" if self.unnamed else ""
        if self.problems:
            return f"{root}: {len(self.problems)} problem(s) in {counted}{unnamed}"
        return f"{root}: ok, {counted} verified{unnamed}"


def check(root: Path, state_file: str) -> Report:
    report = Report()
    good: dict[str, Blob] = {}
    bad: set[str] = set()
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and _HEX.fullmatch(folder.name) and len(folder.name) == 2:
            for problem, blob in _blobs(folder):
                if problem is not None:
                    report.problems.append(problem)
                if blob is not None:
                    (bad.add(blob.name) if problem else good.setdefault(blob.name, blob))
    report.blobs, report.blob_bytes = len(good), sum(blob.size for blob in good.values())
    named: set[str] = set()
    state = root / state_file
    if not state.exists() and not good and not bad:
        return report  # a directory that stores nothing yet
    for fault, item in read_back(state, root):
        if fault is not None:
            report.problems.append(fault)
            continue
        assert item is not None
        namespace, id, record = item
        report.records += 1
        for name in sorted(set(_blob_names(record))):
            named.add(name)
            if name not in good:
                why = "damaged (see above)" if name in bad else "missing"
                report.problems.append(f"{state}: record {namespace}/{id} names stored bytes {name}, which are {why}")
    report.unnamed = len(good.keys() - named)
    return report


def _blobs(folder: Path) -> Iterator[tuple[str | None, Blob | None]]:
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            bytes_path = path.with_suffix("")
            if _HEX.fullmatch(bytes_path.name) and len(bytes_path.name) == 64 and not bytes_path.exists():
                yield f"{path}: record of stored bytes that are gone", None
            continue
        if not (_HEX.fullmatch(path.name) and len(path.name) == 64 and path.name.startswith(folder.name)):
            continue
        record = path.with_name(path.name + ".json")
        try:
            blob = Blob.from_record(json.loads(record.read_text(encoding="utf-8")), path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            yield f"{path}: stored bytes without a readable record ({exc.__class__.__name__}: {exc})", None
            continue
        size = path.stat().st_size
        if size != blob.size:
            yield f"{path}: stored bytes of {blob.name} are {size} bytes, their record says {blob.size}", blob
            continue
        if not blob.md5:  # stored to be hashed at its first read, which has not come: the arrival's CRC-32
            crc32 = file_crc32(path)  # (no MD5: the first read computes it)
            if crc32 != blob._crc32:
                yield (
                    (
                        f"{path}: stored bytes of {blob.name} no longer match their CRC-32 (recorded "
                        f"{blob._crc32:08x}, found {crc32:08x}; their MD5 was to be computed at their first read)"
                    ),
                    blob,
                )
                continue
            yield None, blob
            continue
        digest = file_md5(path)
        if digest != blob.md5:
            yield (
                (
                    f"{path}: stored bytes of {blob.name} no longer match their MD5 (recorded {blob.md5}, found "
                    f"{digest})"
                ),
                blob,
            )
            continue
        yield None, blob


def _blob_names(value: Any) -> Iterator[str]:
    """The blob names a record holds: its ``Blob`` values and its ``blob_name`` fields, at any depth."""
    if isinstance(value, Blob):
        yield value.name
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name == "blob_name" and isinstance(item, str):
                yield item
            else:
                yield from _blob_names(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _blob_names(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _blob_names(item)
