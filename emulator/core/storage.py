"""Uploaded bytes on disk: streamed in with bounded memory, hashed as they arrive, committed atomically.

Blob names come from the emulator (``namespace`` + an id it generated), never from a request's filename, and are
hashed into the file name, so nothing a client sends reaches the filesystem as a path.

With a data directory the store persists: next to each blob a small ``<file>.json`` records its name, size, MD5
and content type, written after the bytes are in place, so the index is rebuilt at the next start from what was
completely stored. Partial uploads (``.tmp/``) and bytes without their record (a kill between the two renames)
are removed then. ``.lock`` keeps a second emulator process out of the same directory.

Shared (``--state redis://…``): several processes use one data directory. They hold its ``.lock`` shared (a
process with its own state, which locks it exclusively, is kept out, and keeps them out); the first to start
(the one that gets the lock alone for a moment) removes the partial uploads of dead runs. A blob is looked up on disk
each time (another process may have stored or deleted it), and a reset removes every process's blobs.

Integrity at rest: the index trusts the records' sizes at start (hashing every blob would make the start as slow
as reading the whole directory). Bytes are verified against their recorded MD5 when they are first served after a
start (``intact``, in a worker thread) or copied into another blob (``concat``), and trusted afterwards while the
file's size, modification time and inode stay as verified; bytes that no longer match are ``damaged`` and never
served again. ``upload-emulator state check`` verifies everything at once.

Hashed later (``writer(hash_later=True)``: a form's file, whose answer names no checksum): the hashing lane keeps a
CRC-32 instead of the MD5 (a third of a form's CPU), the record says so, and the first read that needs the MD5
(``served``, ``hashed``: a GET's ETag, the state view) computes it in a worker thread, checking the CRC-32 on the
way; the index and the record learn it, so it is computed once.

Without a data directory the bytes live in a scratch directory ``upload-emulator-*`` in the system's temp dir,
removed at exit. Its ``.lock`` is held for the life of the process, so a scratch directory whose lock can be taken
belongs to a dead process (the kernel releases a lock when its holder dies, whatever became of its pid): the first
store a process opens removes those.

A streamed upload (``put_stream``, and a form's file part through ``add``/``drain``/``finish``) is hashed and
written off the event loop, in batches of at least 512 KiB: while the loop receives the next batch from the socket,
one worker thread adds the earlier ones to the MD5 and another writes them to the file (both release the GIL), so
receiving, hashing and writing overlap instead of taking turns on one core. Each upload queues its batches in two
``Lane``s (hashing, writing) that take them in order, the next as soon as one is done, so a worker never idles
waiting for the loop to hand over the next batch. An upload hashed later (a form's file: a CRC-32 on arrival, several
times cheaper than MD5) has each batch summed and written by one job in the writing lane: half the thread hand-offs,
and the write copies bytes the checksum has just brought into the cache. The loop waits once an upload has more than
``DEPTH`` (2) batches queued, or more than one while the workers hold over ``SPARE`` batches of all uploads: at most
three batches of an upload are in memory at once, two when many uploads share the workers. A PUT body of known
length up to ``HOLD`` (1 MiB) is received whole, then hashed, written and committed by one worker job. Bytes go past
the page cache (``O_DIRECT``, through a page-aligned buffer each worker thread keeps) where the file system allows,
the unaligned end of each batch with the next, the last few bytes through the page cache: on a VM that backs memory
lazily, new page-cache pages cost more system time than the whole direct write (``BlobWriter._write``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import hashlib
import itertools
import json
import mmap
import os
import re
import shutil
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per data directory is then up to the user
    fcntl = None  # type: ignore[assignment]  # the module or None: callers test for None

from emulator.core.errors import Conflict, NotFound, PayloadTooLarge


@dataclass(frozen=True)
class Blob:
    """Stored bytes. ``md5`` is known from arrival (every PUT: its answer's ETag is the MD5), except for a blob
    stored with ``hash_later`` (a form's file, whose answer names no checksum): its MD5 is ``""`` until the first
    read that needs it (``BlobStore.hashed``), and ``_crc32``, computed on arrival at a fraction of the CPU, is what
    that first read checks the bytes against, so bytes changed on disk in between are never given an MD5. (moto
    does the same: a POSTed object's MD5 is computed at its first HEAD or GET.)"""

    name: str
    path: Path
    size: int
    md5: str  # hex; "" until first needed, for a blob stored with ``hash_later``
    content_type: str
    _crc32: int | None = None  # of the bytes as they arrived, for a blob stored with ``hash_later`` (not shown)

    @property
    def etag(self) -> str:
        assert self.md5, f"{self.name}: MD5 not computed yet (BlobStore.hashed)"
        return f'"{self.md5}"'

    def same_bytes(self, other: Blob | None) -> bool:
        """The same stored bytes, whether or not either copy has learned the MD5 yet."""
        if other is None:
            return False
        if (self.md5 and other.md5) or self._crc32 is None or other._crc32 is None:
            return self == other
        return dataclasses.replace(self, md5="") == dataclasses.replace(other, md5="")

    def record(self) -> dict[str, Any]:
        """What the blob's ``.json`` record beside its bytes holds (``from_record`` reads it back)."""
        data: dict[str, Any] = {
            "name": self.name,
            "size": self.size,
            "md5": self.md5,
            "content_type": self.content_type,
        }
        if self._crc32 is not None:
            data["crc32"] = self._crc32
        return data

    @classmethod
    def from_record(cls, data: Any, path: Path) -> Blob:
        """Raises KeyError, TypeError or ValueError for a record of another shape."""
        crc32 = data.get("crc32")
        if crc32 is not None and (type(crc32) is not int or not 0 <= crc32 < 2**32):
            raise ValueError(f"crc32 {crc32!r} is not a CRC-32")
        blob = cls(data["name"], path, int(data["size"]), str(data["md5"]), str(data["content_type"]), crc32)
        if not (blob.md5 or crc32 is not None):
            raise ValueError("a record needs its MD5 or, for bytes stored to be hashed later, their CRC-32")
        return blob

    def head(self, n: int = 4096) -> bytes:
        with self.path.open("rb") as fh:
            return fh.read(n)


class TooLarge(PayloadTooLarge):
    """The body passed the limit while streaming."""


class Damaged(NotFound):
    """Stored bytes that no longer match their recorded MD5 (changed on disk outside the emulator)."""


class BlobWriter:
    """One upload in progress: write chunks, then ``commit`` (atomic rename) or ``abort`` (nothing left behind)."""

    def __init__(self, store: BlobStore, name: str, content_type: str, max_size: int, hash_later: bool = False) -> None:
        self._store, self.name, self.content_type, self.max_size = store, name, content_type, max_size
        self._tmp: Path | None = None  # the scratch file, made by the first write (in a worker, for a small PUT)
        self._fh: IO[bytes] | None = None
        # the hashing lane's digest: the MD5, or for ``hash_later`` the CRC-32 (~5 GB/s here against MD5's 0.74)
        self._md5: hashlib._Hash | _Crc32 = _Crc32() if hash_later else hashlib.md5(usedforsecurity=False)
        self.size = 0
        self._batch: list[bytes] = []  # received, not yet handed to the workers
        self._batched = 0
        self._pending: deque[list[Future[None]]] = deque()  # batches handed to the workers: their (hash, write)
        self._lanes: tuple[Lane, Lane] | None = None  # this upload's hashing and writing, each in order
        self._direct = True  # this file still written past the page cache (while the store's ``direct`` holds)
        self._carry = b""  # the last batch's unaligned end (under 4 KiB), written before the next batch

    def _file(self) -> IO[bytes]:
        if self._fh is None:
            fd, tmp = tempfile.mkstemp(prefix=".part-", dir=self._store.tmp_dir)
            self._tmp, self._fh = Path(tmp), os.fdopen(fd, "wb")
        return self._fh

    def write(self, data: bytes) -> None:
        self._count(len(data))
        self._md5.update(data)
        self._file().write(data)

    def _count(self, n: int) -> None:
        """Count bytes as they arrive, refusing the first byte past ``max_size`` before it is stored."""
        self.size += n
        if self.size > self.max_size:
            raise TooLarge(
                f"Body exceeds the maximum allowed size of {self.max_size} bytes.", details={"max_size": self.max_size}
            )

    def add(self, chunk: bytes) -> None:
        """Count ``chunk`` on arrival and queue it for the workers (``drain`` when ``full``, ``finish`` at the end)."""
        self._count(len(chunk))
        self._batch.append(chunk)
        self._batched += len(chunk)

    @property
    def full(self) -> bool:
        return self._batched >= BATCH

    async def drain(self) -> None:
        """Hand the queued batch to the workers; then wait while they hold more than ``DEPTH`` batches of this upload,
        or more than one while they hold more than ``SPARE`` in all (the slack is for one or two uploads at a time:
        twenty at once keep the workers busy without it, and would hold 15 MB more)."""
        self._hand_over(self._write, self._batch)
        self._batch, self._batched = [], 0
        if len(self._pending) > (DEPTH if self._store.workers.queued <= SPARE else 1):
            await self._settle_first()

    def _hand_over(self, write: Callable[[list[bytes]], None], batch: list[bytes]) -> None:
        """Queue ``batch`` in this upload's two lanes, hashing and writing: each takes the batches in order, the next
        as soon as it is done with one (no trip through the event loop in between)."""
        if self._lanes is None:
            self._lanes = self._store.workers.lane(), self._store.workers.lane()
        hashing, writing = self._lanes
        if isinstance(self._md5, _Crc32):
            # a CRC-32 is cheap enough to share the writer's thread: one job per batch, half the thread hand-offs
            self._pending.append([writing.submit(functools.partial(_hash_then_write, self._md5, batch, write))])
        else:
            self._pending.append(
                [
                    hashing.submit(functools.partial(_hash_all, self._md5, batch)),
                    writing.submit(functools.partial(write, batch)),
                ]
            )
        self._store.workers.queued += 1

    async def _settle_first(self) -> None:
        # forgotten only once done: until then ``_wait_all`` may need it (the last batch)
        await _settled(self._pending[0])
        self._pending.popleft()
        self._store.workers.queued -= 1

    async def _settle_all(self) -> None:
        while self._pending:
            await self._settle_first()

    def _wait_all(self) -> None:
        """Block until no worker touches the file (a failed or cancelled upload, before its file is closed); a lane
        runs its jobs in order, so the last batch's jobs end last."""
        if self._pending:  # (never touched otherwise: ``concat`` aborts its writers from a worker thread)
            wait(self._pending[-1])
            self._store.workers.queued -= len(self._pending)
            self._pending.clear()

    async def finish(self) -> None:
        """Every queued byte hashed and written: then ``commit``."""
        batch, self._batch, self._batched, big = self._batch, [], 0, self._batched >= INLINE
        if big:
            # the last, partial batch goes to the workers too: hashed here, up to half a MiB would hold the
            # event loop (and every other upload's receiving) for a millisecond
            self._hand_over(functools.partial(self._write, last=True), batch)
            await self._settle_all()
        else:  # a small remainder (or a small body): hashing and writing it here costs less than the thread hops
            await self._settle_all()
            _hash_all(self._md5, batch)
            self._file().writelines([self._carry, *batch])  # (through the page cache: no direct write on the loop)
            self._carry = b""

    async def write_and_commit(self, chunks: AsyncIterator[bytes], length: int | None = None) -> Blob:
        """Write every chunk (counted on arrival, hashed and written by the store's workers a batch behind), then
        ``commit``, with the last batch and the commit's file work (create, close, rename, record) in one worker
        job. ``length``: the body's declared length; a body that fits in two batches (what a streamed upload may
        hold in memory anyway) is received whole first, so it costs one thread hand-off and no file system call on
        the event loop. Also a tiny body: creating a file (a new inode) took ~200 µs of CPU and up to ~400 µs of
        wall time on ext4 here, during which the loop would serve no other request."""
        hold = length is not None and length <= HOLD
        try:
            async for chunk in chunks:
                self.add(chunk)
                if self.full and not (hold and self.size <= HOLD):
                    await self.drain()
            await self._settle_all()
        finally:
            self._wait_all()  # cancelled or failed: no worker may still touch the file when it is closed
        batch, self._batch, self._batched = self._batch, [], 0
        job = self._store.workers.submit(self._finish, batch)
        try:
            blob, identity = await asyncio.wrap_future(job)
        except BaseException:
            job.cancel()  # still queued: never runs (wrap_future would cancel it only in a later loop callback)
            wait([job])  # cancelled: the worker may still be committing; nothing of it may stay
            if not job.cancelled() and job.exception() is None:
                _remove_files(job.result()[0].path)
            raise
        return self._indexed(blob, identity)

    def _finish(self, batch: list[bytes]) -> tuple[Blob, tuple[int, int, int] | None]:
        """In a worker: hash and write the last batch, then the commit's file work."""
        _hash_all(self._md5, batch)
        self._write(batch, last=True)
        return self._commit_files()

    def _write(self, batch: list[bytes], last: bool = False) -> None:
        """Write ``batch`` after the bytes before it (in a worker; one batch of an upload at a time). Past the page
        cache (``O_DIRECT``) where the file system allows: the 4 KiB-aligned part of what has arrived goes out
        through the worker's page-aligned buffer, the unaligned end waits for the next batch (``_carry``), and the
        last batch's end is written through the page cache. On this VM a new page-cache page costs the host a fresh
        page: 2-4 ms of system time per MiB, 170-280 MB/s, against 0.25-0.45 ms and ~1 GB/s for the same bytes
        written directly (``python -m bench.small_puts``, ``python -m bench.forms``; bench/README.md 2b and "Big
        bodies past the page cache"). A file system that refuses direct I/O (EINVAL) is written as usual from then
        on."""
        if self._carry:
            batch, self._carry = [self._carry, *batch], b""
        if self._direct and self._store.direct:
            batch = self._write_direct(batch)
            if not last and self._direct:
                self._carry = b"".join(batch)
                return
        self._file().writelines(batch)  # nothing is buffered before these: direct writes went to the fd itself

    def _write_direct(self, chunks: list[bytes]) -> list[bytes]:
        """Write the longest 4 KiB-aligned start of ``chunks`` with ``O_DIRECT``, copied through this thread's
        buffer a buffer-full at a time; return what is left, for a buffered write or the next batch (everything
        not written directly once a direct write is refused or cut short: that file is written as usual)."""
        fd = self._file().fileno()
        buffer = _direct_buffer()
        filled = 0
        with memoryview(buffer) as view:
            for n, chunk in enumerate(chunks):
                data = memoryview(chunk)
                while data:
                    take = min(len(view) - filled, len(data))
                    view[filled : filled + take] = data[:take]
                    filled, data = filled + take, data[take:]
                    if filled == len(view):
                        done = self._out(fd, view)
                        if done < filled:
                            return [bytes(view[done:filled]), bytes(data), *chunks[n + 1 :]]
                        filled = 0
            aligned = filled - filled % _ALIGN
            done = self._out(fd, view[:aligned]) if aligned else 0
            return [bytes(view[done:filled])] if done < filled else []

    def _out(self, fd: int, data: memoryview) -> int:
        """Write aligned ``data`` to ``fd`` with ``O_DIRECT``; the bytes written (all unless it was refused or cut
        short, after which this file is no longer written directly; a first refusal stops it for the store)."""
        assert fcntl is not None  # _DIRECT is only set where fcntl exists
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        done = 0
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | _DIRECT)
            done = os.write(fd, data)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            if os.lseek(fd, 0, os.SEEK_CUR) == 0:  # refused at the file's start: not on this file system
                self._store.direct = False
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        if done < len(data):
            self._direct = False  # refused or short: the rest of this file (now unaligned) is written as usual
        return done

    def commit(self) -> Blob:
        return self._indexed(*self._commit_files())

    def _commit_files(self) -> tuple[Blob, tuple[int, int, int] | None]:
        """Close and move the bytes into place, then their record: blocking file work, safe in a worker thread
        (the index is not touched). The file's identity as committed, for ``verified``."""
        fh = self._file()  # an empty body has a file too
        fh.close()
        assert self._tmp is not None
        path = self._store.path_for(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self._md5, _Crc32):
            blob = Blob(self.name, path, self.size, "", self.content_type, self._md5.value)
        else:
            blob = Blob(self.name, path, self.size, self._md5.hexdigest(), self.content_type)
        if self._store.persistent:
            _record_path(path).unlink(missing_ok=True)  # bytes without a record are not indexed at the next start
        os.replace(self._tmp, path)
        if self._store.persistent:
            self._store.write_record(blob)
        try:
            identity: tuple[int, int, int] | None = _identity(path)
        except OSError:
            identity = None
        return blob, identity

    def _indexed(self, blob: Blob, identity: tuple[int, int, int] | None) -> Blob:
        """On the event loop (or the one thread using the store): the blob joins the index, hashed as it arrived."""
        self._store.index[self.name] = blob
        self._store.verified(blob, identity)
        return blob

    def abort(self) -> None:
        self._wait_all()  # no worker may still touch the file when it is closed
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)


T = TypeVar("T")
_DIRECT = getattr(os, "O_DIRECT", 0) if fcntl is not None else 0  # Linux; 0 elsewhere: never direct
_ALIGN = 4096  # O_DIRECT wants the buffer, the offset and the length aligned to the device's block size
_direct_buffers = threading.local()


def _direct_buffer() -> mmap.mmap:
    """A page-aligned buffer (two batches, 1 MiB) kept by each worker thread, so its pages are not new ones each
    time: a batch (and a whole small body) is copied into it and written directly in one call."""
    buffer: mmap.mmap | None = getattr(_direct_buffers, "buffer", None)
    if buffer is None:
        buffer = _direct_buffers.buffer = mmap.mmap(-1, HOLD)
    return buffer


BATCH = 512 * 1024  # bytes of a streamed upload handed to the workers at once (at least: whole pieces of the body)
DEPTH = 2  # batches of one upload the workers may hold while the next is received (while they hold few in all)
SPARE = 4  # batches of all uploads the workers may hold for an upload to queue more than one
HOLD = 2 * BATCH  # a body declared this long or shorter is received whole, then written in one job (and buffer size)
INLINE = 64 * 1024  # a last batch smaller than this is hashed and written on the event loop (~0.1 ms)


async def _settled(jobs: list[Future[None]]) -> None:
    """Wait, without blocking the event loop, until the workers have done ``jobs`` (raising what they raised)."""
    for job in jobs:
        await asyncio.wrap_future(job)


def _hash_all(md5: hashlib._Hash | _Crc32, chunks: Sequence[bytes]) -> None:
    for chunk in chunks:
        md5.update(chunk)


def _hash_then_write(md5: hashlib._Hash | _Crc32, chunks: list[bytes], write: Callable[[list[bytes]], None]) -> None:
    _hash_all(md5, chunks)
    write(chunks)


class _Crc32:
    """A running CRC-32 with ``hashlib``'s ``update`` (zlib releases the GIL for pieces over 5 KiB, as hashlib does)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)


class Lane:
    """Jobs that run in order, one at a time, on a thread pool: a job queued behind a running one starts as soon as
    that one ends, in the same worker thread (no trip through the event loop, which a ``submit`` per job would take
    when the loop waits on each before handing over the next). Once a job fails or is cancelled, every job after it
    is cancelled instead of run: a write after a failed one would land in the wrong place.

    concurrent.futures has no serial executor over a shared pool; a ThreadPoolExecutor(1) per upload would be a
    thread per upload."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._queue: deque[tuple[Future[None], Callable[[], None]]] = deque()
        self._running = False  # a worker is running this lane's jobs (and takes any queued meanwhile)
        self._broken = False

    def submit(self, job: Callable[[], None]) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            if self._broken:
                _cancel(future)
                return future
            self._queue.append((future, job))
            if self._running:
                return future
            self._running = True
        try:
            self._pool.submit(self._run)
        except BaseException:  # the pool is shut down: nothing will run them
            self._stop()
            raise
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                future, job = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                self._stop()
                continue
            try:
                job()
            except BaseException as error:
                future.set_exception(error)
                self._stop()
            else:
                future.set_result(None)

    def _stop(self) -> None:
        with self._lock:
            self._broken, self._running, queued = True, False, list(self._queue)
            self._queue.clear()
        for future, _ in queued:
            _cancel(future)


def _cancel(future: Future[None]) -> None:
    """Cancel a job that never ran, and tell whoever waits on it (``concurrent.futures.wait`` counts a cancelled
    future as done only once notified, which an executor does as it dequeues it)."""
    future.cancel()
    future.set_running_or_notify_cancel()


class Workers:
    """The threads that hash and write streamed uploads (started on first use; each upload's batches in order, through
    its ``Lane``s)."""

    def __init__(self, threads: int = 4) -> None:
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self.queued = 0  # batches handed over by uploads and not yet settled (counted on the event loop)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="blob-io")
        return self._pool

    def lane(self) -> Lane:
        return Lane(self._executor())

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        return self._executor().submit(fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class BlobStore:
    """``set_aside``: with a data directory, move what is stored there (the blobs, their records and the named
    files of the directory, e.g. the state file) into a new ``aside-<UTC time>/`` folder before indexing, so the
    store starts empty and nothing is deleted (``--reset-state``); ``set_aside_to`` is that folder. ``direct``:
    write past the page cache where the file system allows (off: ``--buffered-writes``)."""

    def __init__(
        self,
        root: Path | None = None,
        set_aside: tuple[str, ...] | None = None,
        shared: bool = False,
        direct: bool = True,
    ) -> None:
        self.workers = Workers()
        # bytes written with O_DIRECT (BlobWriter._write) unless asked not to (--buffered-writes) or refused
        self.direct = direct and _DIRECT != 0
        self.persistent = root is not None
        self.shared = shared and root is not None
        alone = True
        self.index: dict[str, Blob] = {}
        self.damaged: set[str] = set()  # names whose bytes failed their MD5: never served
        self._verified: dict[str, tuple[int, int, int]] = {}  # name → (size, mtime_ns, inode) when verified
        self.set_aside_to: Path | None = None
        self._lock_file: IO[str] | None
        if root is None:  # the lock beside the blobs' root, not in it: the root holds nothing but the store's files
            self._scratch: Path | None = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
            self._lock_file = _lock(self._scratch, wait=True)
            remove_dead_scratch_dirs(self._scratch.parent)
            self.root = self._scratch / "blobs"
        else:
            self._scratch = None
            self.root = root.absolute()
            self.root.mkdir(parents=True, exist_ok=True)
            if self.shared:
                self._lock_file, alone = _lock_shared(self.root)
            else:
                self._lock_file = _lock(self.root)
            if set_aside is not None:
                self.set_aside_to = self._set_aside(set_aside)
        self.tmp_dir = self.root / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if self.persistent:
            self._rebuild_index(clean=alone)
        if self.shared and fcntl is not None and self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_SH)  # cleaned up: let the other processes in

    def _set_aside(self, names: tuple[str, ...]) -> Path | None:
        """Move the store's own folders and ``names`` into ``aside-<time>/``; None when there was nothing."""
        moving = [
            path
            for path in self.root.iterdir()
            if (path.is_dir() and _HEX.fullmatch(path.name) and len(path.name) == 2)
            or path.name == ".tmp"
            or path.name in names
        ]
        if not moving:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.root / f"aside-{stamp}"
        for n in itertools.count(2):
            try:
                aside.mkdir()
                break
            except FileExistsError:
                aside = self.root / f"aside-{stamp}-{n}"
        for path in moving:
            os.replace(path, aside / path.name)
        return aside

    def _rebuild_index(self, clean: bool = True) -> None:
        """Index what a previous run stored completely; remove its partial uploads and unrecorded bytes (``clean``:
        unless other processes share the directory, whose uploads in progress look just like those).

        Only files of the store's own shapes are touched (``.tmp/.part-*``, ``<2 hex>/<64 hex>[.json]``): a data
        directory may hold other files, and those are never the store's to delete.
        """
        if clean:
            for partial in [*self.tmp_dir.glob(".part-*"), *self.tmp_dir.glob(".record-*")]:
                partial.unlink(missing_ok=True)
        for folder in self.root.iterdir():
            if not (folder.is_dir() and _HEX.fullmatch(folder.name) and len(folder.name) == 2):
                continue
            for path in folder.iterdir():
                if not (_HEX.fullmatch(path.name) and len(path.name) == 64 and path.name.startswith(folder.name)):
                    continue
                blob = self._read_record(path)
                if blob is None:
                    if not clean:
                        continue
                    path.unlink(missing_ok=True)
                    _record_path(path).unlink(missing_ok=True)
                else:
                    self.index[blob.name] = blob
            for record in folder.glob("*.json") if clean else ():  # a record whose bytes are gone
                bytes_path = record.with_suffix("")
                if _HEX.fullmatch(bytes_path.name) and len(bytes_path.name) == 64 and not bytes_path.exists():
                    record.unlink(missing_ok=True)

    def _read_record(self, path: Path) -> Blob | None:
        try:
            blob = Blob.from_record(json.loads(_record_path(path).read_text(encoding="utf-8")), path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if self.path_for(blob.name) != path or path.stat().st_size != blob.size:
            return None
        return blob

    def write_record(self, blob: Blob) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".record-", dir=self.tmp_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(blob.record(), fh)
        os.replace(tmp, _record_path(blob.path))

    def path_for(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return self.root / digest[:2] / digest

    def writer(self, name: str, content_type: str, max_size: int, hash_later: bool = False) -> BlobWriter:
        """``hash_later``: the MD5 is computed at the first read that needs it (``hashed``), not on arrival."""
        return BlobWriter(self, name, content_type, max_size, hash_later)

    async def put_stream(
        self, name: str, chunks: AsyncIterator[bytes], content_type: str, max_size: int, length: int | None = None
    ) -> Blob:
        """Store a streamed body; ``length``: its declared length (Content-Length), if any, which lets a small body
        be written and committed in one worker job (``BlobWriter.write_and_commit``)."""
        writer = self.writer(name, content_type, max_size)
        try:
            return await writer.write_and_commit(chunks, length)
        except BaseException:
            writer.abort()
            raise

    def concat(self, name: str, parts: list[Blob], content_type: str, max_size: int) -> Blob:
        """A new blob made of ``parts`` in order, copied in 1 MiB blocks (bounded memory, MD5 on the way).

        Blocking file I/O: call it through ``anyio.to_thread.run_sync`` from async code.
        Each part is hashed on the way and checked against its recorded MD5 (which costs one more MD5 pass, but no
        extra read): a part damaged at rest raises ``Damaged`` (the provider's 404), and nothing is stored.
        """
        writer = self.writer(name, content_type, max_size)
        try:
            for part in parts:
                digest = hashlib.md5(usedforsecurity=False)
                with part.path.open("rb") as fh:
                    while block := fh.read(1024 * 1024):
                        digest.update(block)
                        writer.write(block)
                if digest.hexdigest() != part.md5:
                    self.damaged.add(part.name)
                    raise Damaged(
                        f"The stored bytes of {part.name} no longer match their MD5 (damaged on disk "
                        "outside the emulator); upload them again."
                    )
                self.verified(part)
        except FileNotFoundError:
            # removed while being read: another request (on another process, with shared state) completed or
            # aborted the same upload at the same moment, and kept or dropped the parts itself
            writer.abort()
            raise Conflict(
                "A part of this upload is gone: another request completed or aborted it at the same "
                "moment. Read the upload again."
            ) from None
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def get(self, name: str) -> Blob | None:
        if self.shared:  # another process may have stored or deleted it since: the disk is the truth
            path = self.path_for(name)
            found = self._read_record(path) if path.exists() else None
            if found is None:
                self.index.pop(name, None)
            else:
                self.index[name] = found
            return found
        return self.index.get(name)

    def holds(self, blob: Blob | None) -> bool:
        """Whether ``blob`` (as a record remembers it) is stored, complete: the index is the truth about the disk
        (with a data directory, bytes cut short or lost outside the emulator are not indexed at the next start),
        less the bytes found ``damaged``. Bytes about to be served go through ``intact``, which also hashes."""
        return blob is not None and blob.same_bytes(self.get(blob.name)) and blob.name not in self.damaged

    async def intact(self, blob: Blob | None) -> bool:
        """``holds``, and the bytes on disk still match the recorded MD5: hashed in a worker thread the first time
        after a start (or after the file changed), so bytes damaged at rest are never served."""
        return await self.served(blob) is not None

    async def served(self, blob: Blob | None) -> Blob | None:
        """``blob`` with its MD5 (``hashed``) if it is ``intact``; None if not."""
        if blob is None or not self.holds(blob):
            return None
        if not blob.md5:
            found = await self.hashed(blob)
            if found is None:
                return None
            blob = found
        if self._unchanged(blob):
            return blob
        digest = await asyncio.to_thread(file_md5, blob.path)
        if digest != blob.md5:
            self.damaged.add(blob.name)
            return None
        self.verified(blob)
        return blob

    async def hashed(self, blob: Blob) -> Blob | None:
        """``blob`` with its MD5 known: as it is, when it was hashed on arrival; else as the store has learned it,
        or computed now in a worker thread with the arrival's CRC-32 checked on the way. None (and the name
        ``damaged``) if the bytes are gone or no longer those that arrived. The index, and with a data directory
        the record beside the bytes, learn the MD5, so it is computed once."""
        if blob.md5:
            return blob
        if blob.name in self.damaged:  # found changed before: not read (and hashed) again at every look
            return None
        stored = self.get(blob.name)
        if stored is not None and stored.md5 and blob.same_bytes(stored):
            return stored
        try:
            md5, crc32, size = await asyncio.to_thread(_digests, blob.path)
        except FileNotFoundError:
            return None
        if (crc32, size) != (blob._crc32, blob.size):
            self.damaged.add(blob.name)
            return None
        done = dataclasses.replace(blob, md5=md5)
        if blob.same_bytes(self.get(blob.name)):  # still stored (not deleted or replaced while hashing)
            self.index[blob.name] = done
            if self.persistent:
                await asyncio.to_thread(self.write_record, done)
            self.verified(done)
        return done

    def verified(self, blob: Blob, identity: tuple[int, int, int] | None = None) -> None:
        """Remember ``blob``'s bytes as checked: trusted while the file keeps this size, mtime and inode
        (``identity``, when the caller has just read it: ``_identity``)."""
        try:
            self._verified[blob.name] = identity or _identity(blob.path)
        except OSError:
            self._verified.pop(blob.name, None)

    def _unchanged(self, blob: Blob) -> bool:
        try:
            return self._verified.get(blob.name) == _identity(blob.path)
        except OSError:
            return False

    def delete(self, name: str) -> None:
        self.damaged.discard(name)
        self._verified.pop(name, None)
        blob = self.index.pop(name, None)
        if blob is None and self.shared:  # stored by another process
            path = self.path_for(name)
            blob = Blob(name, path, 0, "", "") if path.exists() or _record_path(path).exists() else None
        if blob is not None:
            if self.persistent:
                _record_path(blob.path).unlink(missing_ok=True)
            blob.path.unlink(missing_ok=True)

    def clear(self, prefix: str = "") -> None:
        if self.shared:  # every process's blobs: the records on disk name them
            for record in self.root.glob("[0-9a-f][0-9a-f]/*.json"):
                blob = self._read_record(record.with_suffix(""))
                if blob is not None and blob.name.startswith(prefix):
                    self.delete(blob.name)
        for name in [n for n in self.index if n.startswith(prefix)]:
            self.delete(name)

    def close(self) -> None:
        self.workers.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None


_HEX = re.compile("[0-9a-f]+")


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _remove_files(path: Path) -> None:
    """A blob's record (first: bytes without a record are not indexed at the next start), then its bytes."""
    _record_path(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


SCRATCH_PREFIX = "upload-emulator-"  # scratch directories in the system's temp dir (no --data-dir)


def _lock(root: Path, wait: bool = False) -> IO[str]:
    """Hold ``root/.lock`` for the life of the store: two processes writing one directory would corrupt it.

    The lock file then holds this process's id, for people (liveness is judged by the lock alone). ``wait``: a
    new scratch directory, which another process's ``remove_dead_scratch_dirs`` may be testing this instant.
    """
    handle = (root / ".lock").open("a+")
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            raise ValueError(f"data directory {root} is in use by another upload-emulator process") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _lock_shared(root: Path, patience: float = 10.0) -> tuple[IO[str], bool]:
    """Hold ``root/.lock`` with the other processes on shared state; True when this process holds it alone (so
    it may clean up after dead runs, then lets the others in by making its lock shared). A process on its own
    state holding the directory is refused, after ``patience`` seconds (a sharing process may be cleaning up)."""
    handle = (root / ".lock").open("a+")
    if fcntl is None:
        return handle, False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle, True
    except BlockingIOError:
        pass
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return handle, False
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise ValueError(
                    f"data directory {root} is in use by an upload-emulator process that keeps its own "
                    "state (not --state redis://…)"
                ) from None
            time.sleep(0.05)


@functools.cache
def remove_dead_scratch_dirs(parent: Path) -> tuple[Path, ...]:
    """Remove the scratch directories in ``parent`` that a dead emulator process left (killed before its exit
    could remove them), bytes included; once per process. A directory is dead when its ``.lock`` holds a process
    id and its lock can be taken; one that is another user's, a symlink, or has no such lock file (made by an
    older version, or being created right now) is left alone. Without advisory locks (Windows) nothing is removed.
    """
    if fcntl is None:
        return ()
    removed: list[Path] = []
    for folder in parent.glob(SCRATCH_PREFIX + "*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            handle = (folder / ".lock").open("r")
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its process still runs
                continue
            if not handle.read().strip().isdigit():  # its owner has not locked it yet: not ours to judge
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return tuple(removed)


def _read_into(path: Path, *digests: hashlib._Hash | _Crc32) -> int:
    """Feed a file to each digest in 1 MiB blocks (hashlib and zlib release the GIL while they work); its length."""
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            for digest in digests:
                digest.update(block)
            size += len(block)
    return size


def _digests(path: Path) -> tuple[str, int, int]:
    """A file's hex MD5, CRC-32 and length, in one read."""
    md5, crc32 = hashlib.md5(usedforsecurity=False), _Crc32()
    size = _read_into(path, md5, crc32)
    return md5.hexdigest(), crc32.value, size


def file_md5(path: Path) -> str:
    """The hex MD5 of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    _read_into(path, digest)
    return digest.hexdigest()


def file_crc32(path: Path) -> int:
    """The CRC-32 of a file (what bytes stored to be hashed later are checked against until their first read)."""
    crc32 = _Crc32()
    _read_into(path, crc32)
    return crc32.value


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def multipart_etag(part_md5s: list[str]) -> str:
    """S3's ETag for a completed multipart upload: the MD5 of the parts' binary MD5s, then ``-<part count>``."""
    digest = hashlib.md5(b"".join(bytes.fromhex(m) for m in part_md5s), usedforsecurity=False).hexdigest()
    return f'"{digest}-{len(part_md5s)}"'
