"""Small bodies written whole by one worker job, past the page cache (``O_DIRECT``) where the file system allows.

The bytes on disk, their MD5 and the index must be exactly what a buffered write gives, for every size around
the 4 KiB alignment and the whole-body limit (``HOLD``), and a file system that refuses direct I/O must not lose a byte.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulator.app import create_app
from emulator.core import storage
from emulator.core.storage import BATCH, DEPTH, HOLD, SPARE, BlobStore, Lane
from emulator.settings import Settings

SIZES = [0, 1, 4095, 4096, 4097, 3 * 4096, 64 * 1024 + 7, HOLD - 1, HOLD, HOLD + 1, HOLD + 5]


def _body(size: int) -> bytes:
    return (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]


async def _chunks(body: bytes, piece: int) -> AsyncIterator[bytes]:
    for at in range(0, len(body), piece):
        yield body[at : at + piece]


def _put(store: BlobStore, body: bytes, piece: int = 65536, length: int | None = -1) -> storage.Blob:
    declared = len(body) if length == -1 else length
    return asyncio.run(store.put_stream("n", _chunks(body, piece), "application/octet-stream", 1 << 30, declared))


@pytest.fixture(params=[True, False], ids=["data-dir", "scratch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    made = BlobStore(tmp_path / "data" if request.param else None)
    request.addfinalizer(made.close)
    return made


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("piece", [1000, 256000])
def test_whole_bodies_are_stored_exactly(store: BlobStore, size: int, piece: int) -> None:
    body = _body(size)
    blob = _put(store, body, piece)
    assert blob.path.read_bytes() == body
    assert blob.md5 == hashlib.md5(body).hexdigest() and blob.size == size
    assert store.get("n") == blob and store.holds(blob)
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.skipif(not storage._DIRECT, reason="no O_DIRECT on this platform: bodies are always written buffered")
def test_direct_io_is_used_and_kept_where_the_file_system_takes_it(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _direct_spy(monkeypatch)
    body = _body(HOLD - 100)
    blob = _put(store, body)
    assert blob.path.read_bytes() == body
    if store.direct:  # the file system under tmp_path takes direct I/O: the aligned part went that way
        assert sum(written) == len(body) - len(body) % 4096
    else:  # it refused: nothing was written directly
        assert written == []


def test_a_file_system_refusing_direct_io_loses_nothing(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    refused: list[int] = []

    def refuse_direct(fd: int, data: bytes | memoryview) -> int:
        import fcntl

        if storage._DIRECT and fcntl.fcntl(fd, fcntl.F_GETFL) & storage._DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", refuse_direct)
    body = _body(BATCH + 12345)
    blob = _put(store, body)
    assert blob.path.read_bytes() == body and blob.md5 == hashlib.md5(body).hexdigest()
    assert store.direct is False
    second = _body(4096 * 5)
    assert _put(store, second).path.read_bytes() == second
    assert len(refused) == (1 if storage._DIRECT else 0)  # refused once, then no longer tried


@pytest.mark.skipif(not storage._DIRECT, reason="no O_DIRECT on this platform: bodies are always written buffered")
def test_a_short_direct_write_loses_nothing(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A direct write that writes less than asked (a signal, a nearly full disk) leaves the rest unaligned: that file
    finishes through the page cache, and direct I/O stays on for the next (it was not the file system refusing it)."""
    real_write = os.write
    shortened: list[int] = []

    def short_once(fd: int, data: bytes | memoryview) -> int:
        import fcntl

        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if not shortened and flags & storage._DIRECT:
            shortened.append(len(data))
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~storage._DIRECT)  # (an unaligned count needs a buffered write)
            try:
                return real_write(fd, data[:1000])  # 1,000 bytes: the next direct write is unaligned (EINVAL)
            finally:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", short_once)
    body = _body(BATCH + 12345)
    blob = _put(store, body)
    assert blob.path.read_bytes() == body and blob.md5 == hashlib.md5(body).hexdigest()
    if not shortened:
        pytest.skip("the file system under the temp directory refuses direct I/O: nothing was written directly")
    assert store.direct is True


def test_other_write_errors_are_not_swallowed(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "write", full)
    with pytest.raises(OSError, match="No space"):
        _put(store, _body(BATCH))
    assert store.index == {} and list(store.tmp_dir.iterdir()) == []


def test_an_undeclared_length_takes_the_batched_path(store: BlobStore) -> None:
    body = _body(3 * BATCH + 5)
    blob = _put(store, body, length=None)
    assert blob.path.read_bytes() == body and blob.md5 == hashlib.md5(body).hexdigest()


STREAMED = [BATCH, BATCH + 1, 2 * BATCH + 4095, 3 * BATCH + 5, 5 * BATCH + 4096 * 3 + 17]


def _direct_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the writes made with ``O_DIRECT`` set on the file descriptor."""
    written: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes | memoryview) -> int:
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & storage._DIRECT:
            written.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", spy)
    return written


@pytest.mark.parametrize("size", STREAMED)
@pytest.mark.parametrize("piece", [1000, 4097, 256000, 3 * BATCH])
def test_streamed_bodies_are_stored_exactly(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch, size: int, piece: int
) -> None:
    """Batches whose ends are not 4 KiB-aligned carry their end over to the next batch; the last one's end goes
    through the page cache. A piece bigger than the direct buffer goes out a buffer-full at a time."""
    written = _direct_spy(monkeypatch)
    body = _body(size)
    blob = _put(store, body, piece, length=None)
    assert blob.path.read_bytes() == body
    assert blob.md5 == hashlib.md5(body).hexdigest() and blob.size == size
    assert store.get("n") == blob and list(store.tmp_dir.iterdir()) == []
    if storage._DIRECT and store.direct:
        assert sum(written) == size - size % 4096 and all(n % 4096 == 0 for n in written)
    else:
        assert written == []


@pytest.mark.parametrize("size", [100, 4096 * 20 + 5, BATCH + 3, 3 * BATCH + 4096 * 15 + 9, 4 * BATCH])
def test_form_file_parts_are_stored_exactly(store: BlobStore, size: int) -> None:
    """A form's file part: ``add`` per piece, ``drain`` when full, ``finish`` (a small last batch on the loop,
    through the page cache after the direct writes), then ``commit``."""
    body = _body(size)

    async def upload() -> storage.Blob:
        writer = store.writer("form", "image/png", 1 << 30)
        for at in range(0, size, 70001):
            writer.add(body[at : at + 70001])
            if writer.full:
                await writer.drain()
        await writer.finish()
        return writer.commit()

    blob = asyncio.run(upload())
    assert blob.path.read_bytes() == body and blob.md5 == hashlib.md5(body).hexdigest()
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.skipif(not storage._DIRECT, reason="no O_DIRECT on this platform: bodies are always written buffered")
def test_direct_io_refused_in_the_middle_of_a_file_loses_nothing(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A direct write refused after others of the same file went through (not the file system refusing direct I/O
    as such): that file finishes through the page cache, and the store keeps writing directly."""
    real_write = os.write
    calls: list[int] = []

    def refuse_the_second(fd: int, data: bytes | memoryview) -> int:
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & storage._DIRECT:
            calls.append(len(data))
            if len(calls) == 2:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", refuse_the_second)
    body = _body(4 * BATCH + 333)
    blob = _put(store, body, 65536, length=None)
    assert blob.path.read_bytes() == body and blob.md5 == hashlib.md5(body).hexdigest()
    if not calls:
        pytest.skip("the file system under the temp directory refuses direct I/O: nothing was written directly")
    assert len(calls) == 2 and store.direct is True
    second = _body(3 * BATCH)
    assert _put(store, second, 65536, length=None).path.read_bytes() == second
    assert len(calls) > 2  # the next file went directly again


def test_buffered_writes_setting_keeps_every_byte_in_the_page_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--buffered-writes`` / ``UPLOAD_EMULATOR_BUFFERED_WRITES``: for a data dir on a disk slower than memory,
    nothing is written with ``O_DIRECT``; by default the app's store writes directly where the platform can."""
    default = create_app(Settings.from_env({}))
    buffered = create_app(Settings.from_env({"UPLOAD_EMULATOR_BUFFERED_WRITES": "true"}))
    try:
        assert default.state.runtime.blobs.direct is (storage._DIRECT != 0)
        store = buffered.state.runtime.blobs
        assert store.direct is False
        written = _direct_spy(monkeypatch)
        body = _body(3 * BATCH + 5)
        blob = _put(store, body, 256000, length=None)
        assert blob.path.read_bytes() == body and blob.md5 == hashlib.md5(body).hexdigest()
        assert written == []
    finally:
        default.state.runtime.close()
        buffered.state.runtime.close()


def test_a_write_failing_in_the_middle_of_a_streamed_body_leaves_nothing(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batches queued behind the failed write are never written (their lane is stopped), the error reaches
    the caller, and no file is left."""
    real_write = os.write
    calls: list[int] = []

    def full_at_the_third(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", full_at_the_third)
    with pytest.raises(OSError, match="No space"):
        _put(store, _body(8 * BATCH + 7), 65536, length=None)
    assert len(calls) == 3  # nothing written after the failure
    assert store.index == {} and list(store.tmp_dir.iterdir()) == []
    assert store.workers.queued == 0  # the failed upload's batches are no longer counted


def test_the_workers_count_of_queued_batches_returns_to_zero(store: BlobStore) -> None:
    """Uploads side by side, streamed PUTs and form parts, one of them cut off: every batch handed over is counted
    off again (a leak would keep every later upload to one queued batch)."""

    async def cut(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for n, chunk in _aenumerate(chunks):
            if n == 40:
                raise ConnectionResetError("client went away")
            yield chunk

    async def form(size: int) -> None:
        writer = store.writer(f"form{size}", "image/png", 1 << 30)
        body = _body(size)
        for at in range(0, size, 65536):
            writer.add(body[at : at + 65536])
            if writer.full:
                await writer.drain()
        await writer.finish()
        writer.commit()

    async def main() -> None:
        bodies = [_body(6 * BATCH + n) for n in range(4)]
        puts = [store.put_stream(f"p{n}", _chunks(b, 65536), "video/mp4", 1 << 30) for n, b in enumerate(bodies)]
        broken = store.put_stream("cut", cut(_chunks(_body(8 * BATCH), 65536)), "video/mp4", 1 << 30)
        results = await asyncio.gather(*puts, form(5 * BATCH + 9), broken, return_exceptions=True)
        assert isinstance(results[-1], ConnectionResetError)
        assert all(not isinstance(r, BaseException) for r in results[:-1])

    asyncio.run(main())
    assert store.workers.queued == 0 and list(store.tmp_dir.iterdir()) == []


async def _aenumerate(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    n = 0
    async for chunk in chunks:
        yield n, chunk
        n += 1


@pytest.mark.parametrize("others", [0, SPARE + 1], ids=["alone", "workers-busy"])
def test_a_stalled_disk_stops_the_upload_from_reading_more_of_its_body(store: BlobStore, others: int) -> None:
    """Memory stays bounded: while the workers cannot write, an upload reads ``DEPTH`` batches of its body past the
    one being written (one when the workers hold more than ``SPARE`` batches of other uploads), then waits; then
    everything arrives intact."""
    piece = 65536
    body = _body(12 * BATCH)
    stall, taken = threading.Event(), []

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), piece):
            taken.append(at)
            yield body[at : at + piece]

    real = storage.BlobWriter._write

    def stalled(self: storage.BlobWriter, batch: list[bytes], last: bool = False) -> None:
        stall.wait(10)
        real(self, batch, last)

    async def upload() -> storage.Blob:
        task = asyncio.ensure_future(store.put_stream("n", chunks(), "application/octet-stream", 1 << 30))
        await asyncio.sleep(0.3)
        read = len(taken) * piece
        stall.set()
        blob = await task
        depth = DEPTH if others <= SPARE else 1
        assert depth * BATCH < read <= (depth + 1) * BATCH + piece  # the stalled batch and the queued ones
        return blob

    store.workers.queued = others  # as if other uploads had that many batches queued
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage.BlobWriter, "_write", stalled)
        blob = asyncio.run(upload())
    assert store.workers.queued == others
    assert blob.path.read_bytes() == body and blob.md5 == hashlib.md5(body).hexdigest()


def test_a_lane_runs_its_jobs_in_order_one_at_a_time() -> None:
    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(4) as pool:
        lane, order, running = Lane(pool), [], []

        def job(n: int) -> None:
            running.append(n)
            assert len(running) == 1, "two jobs of one lane ran at once"
            time.sleep(0.002)
            order.append(n)
            running.remove(n)

        futures = [lane.submit(functools.partial(job, n)) for n in range(20)]
        wait(futures)
    assert order == list(range(20)) and all(f.result() is None for f in futures)


def test_a_lane_stops_at_a_failed_or_cancelled_job() -> None:
    """What is queued behind a failure (or a job cancelled before it ran) is cancelled, and so is anything submitted
    later: a write after a failed one would land in the wrong place."""
    import threading
    from concurrent.futures import ThreadPoolExecutor, wait

    def boom() -> None:
        raise OSError(errno.EIO, "I/O error")

    with ThreadPoolExecutor(2) as pool:
        gate, ran = threading.Event(), []
        lane = Lane(pool)

        def first_job() -> None:
            gate.wait(5)
            ran.append(1)

        first = lane.submit(first_job)
        failing = lane.submit(boom)
        after = lane.submit(lambda: ran.append(3))
        gate.set()
        wait([first, failing, after])
        assert ran == [1] and isinstance(failing.exception(), OSError) and after.cancelled()
        assert lane.submit(lambda: ran.append(4)).cancelled() and ran == [1]

        gate.clear()
        lane = Lane(pool)
        first = lane.submit(first_job)
        skipped = lane.submit(lambda: ran.append(5))
        after = lane.submit(lambda: ran.append(6))
        assert skipped.cancel()
        gate.set()
        wait([first, after])
        assert after.cancelled() and ran == [1, 1]
