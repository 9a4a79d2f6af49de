"""Uploaded bytes on disk: streamed in with bounded memory, hashed as they arrive, committed atomically.

Blob names come from the emulator (``namespace`` + an id it generated), never from a request's filename, and are
hashed into the file name, so nothing a client sends reaches the filesystem as a path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from emulator.core.errors import PayloadTooLarge


@dataclass(frozen=True)
class Blob:
    name: str
    path: Path
    size: int
    md5: str  # hex
    content_type: str

    @property
    def etag(self) -> str:
        return f'"{self.md5}"'

    def head(self, n: int = 4096) -> bytes:
        with self.path.open("rb") as fh:
            return fh.read(n)


class TooLarge(PayloadTooLarge):
    """The body passed the limit while streaming."""


class BlobWriter:
    """One upload in progress: write chunks, then ``commit`` (atomic rename) or ``abort`` (nothing left behind)."""

    def __init__(self, store: BlobStore, name: str, content_type: str, max_size: int) -> None:
        self._store, self.name, self.content_type, self.max_size = store, name, content_type, max_size
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=store.tmp_dir)
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_size:
            raise TooLarge(f"Body exceeds the maximum allowed size of {self.max_size} bytes.",
                           details={"max_size": self.max_size})
        self._md5.update(data)
        self._fh.write(data)

    def commit(self) -> Blob:
        self._fh.close()
        path = self._store.path_for(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, path)
        blob = Blob(self.name, path, self.size, self._md5.hexdigest(), self.content_type)
        self._store.index[self.name] = blob
        return blob

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path | None = None) -> None:
        self._owned = root is None
        self.root = Path(tempfile.mkdtemp(prefix="upload-emulator-")) if root is None else root
        self.tmp_dir = self.root / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, Blob] = {}

    def path_for(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return self.root / digest[:2] / digest

    def writer(self, name: str, content_type: str, max_size: int) -> BlobWriter:
        return BlobWriter(self, name, content_type, max_size)

    async def put_stream(self, name: str, chunks: AsyncIterator[bytes], content_type: str, max_size: int) -> Blob:
        writer = self.writer(name, content_type, max_size)
        try:
            async for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def concat(self, name: str, parts: list[Blob], content_type: str, max_size: int) -> Blob:
        """A new blob made of ``parts`` in order, copied in 1 MiB blocks (bounded memory, MD5 on the way).

        Blocking file I/O: call it through ``anyio.to_thread.run_sync`` from async code.
        """
        writer = self.writer(name, content_type, max_size)
        try:
            for part in parts:
                with part.path.open("rb") as fh:
                    while block := fh.read(1024 * 1024):
                        writer.write(block)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def get(self, name: str) -> Blob | None:
        return self.index.get(name)

    def delete(self, name: str) -> None:
        blob = self.index.pop(name, None)
        if blob is not None:
            blob.path.unlink(missing_ok=True)

    def clear(self, prefix: str = "") -> None:
        for name in [n for n in self.index if n.startswith(prefix)]:
            self.delete(name)

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)


def multipart_etag(part_md5s: list[str]) -> str:
    """S3's ETag for a completed multipart upload: the MD5 of the parts' binary MD5s, then ``-<part count>``."""
    digest = hashlib.md5(b"".join(bytes.fromhex(m) for m in part_md5s), usedforsecurity=False).hexdigest()
    return f'"{digest}-{len(part_md5s)}"'


async def iter_file(path: Path, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            yield chunk
