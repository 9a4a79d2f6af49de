"""Upload jobs against each server, run at a given concurrency, each answer checked, wall time measured.

A job is one HTTP request carrying a file: the emulator's presigned PUT (video) or multipart POST (image), moto's
presigned PUT or POST form, or the raw sink. Presigning (the emulator's ``POST /v1/media/upload``, boto3 for moto)
happens before the clock starts: the figures are the uploads themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import client
from bench.peers import Emulator, Moto, Sink

MIB = 1 << 20
MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"  # so the bytes sniff as video/mp4


@dataclass
class Job:
    url: str
    method: str
    headers: dict[str, str]
    prefix: bytes = b""
    suffix: bytes = b""
    check: Callable[[client.Reply], str | None] = field(default=lambda reply: None)


def make_file(path: Path, size: int) -> Path:
    """``size`` bytes of noise that start like an MP4, written once per run and then served from the page cache."""
    with path.open("wb") as fh:
        fh.write(MP4_HEAD)
        left = size - len(MP4_HEAD)
        while left:
            left -= fh.write(os.urandom(min(MIB, left)))
    return path


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def _etag_is(md5: str) -> Callable[[client.Reply], str | None]:
    def check(reply: client.Reply) -> str | None:
        if reply.status != 200:
            return f"status {reply.status}: {reply.body[:200]!r}"
        if reply.headers.get("etag", "").strip('"') != md5:
            return f"ETag {reply.headers.get('etag')} is not the MD5 {md5}"
        return None

    return check


def _status_in(*ok: int) -> Callable[[client.Reply], str | None]:
    def check(reply: client.Reply) -> str | None:
        return None if reply.status in ok else f"status {reply.status}: {reply.body[:200]!r}"

    return check


def _image_accepted(reply: client.Reply) -> str | None:
    if reply.status != 200 or not json.loads(reply.body).get("success"):
        return f"status {reply.status}: {reply.body[:200]!r}"
    return None


def emulator_puts(emu: Emulator, count: int, path: Path, md5: str) -> list[Job]:
    size = path.stat().st_size
    return [
        Job(
            emu.new_upload(f"bench-{i}.mp4", "video/mp4", size),
            "PUT",
            {"Content-Type": "video/mp4"},
            check=_etag_is(md5),
        )
        for i in range(count)
    ]


def emulator_forms(emu: Emulator, count: int, path: Path) -> list[Job]:
    jobs = []
    for i in range(count):
        url = emu.new_upload(f"bench-{i}.png", "image/png", path.stat().st_size)
        content_type, before, after = client.multipart([], "file", f"bench-{i}.png", "image/png")
        jobs.append(Job(url, "POST", {"Content-Type": content_type}, before, after, _image_accepted))
    return jobs


def moto_puts(moto: Moto, count: int, md5: str, prefix: str) -> list[Job]:
    return [
        Job(url, "PUT", {"Content-Type": "application/octet-stream"}, check=_etag_is(md5))
        for url in moto.presign("put", count, prefix)
    ]


def moto_forms(moto: Moto, count: int, prefix: str) -> list[Job]:
    jobs = []
    for form in moto.presign("post", count, prefix):
        content_type, before, after = client.multipart(list(form["fields"].items()), "file", "bench.png", "image/png")
        jobs.append(Job(form["url"], "POST", {"Content-Type": content_type}, before, after, _status_in(200, 201, 204)))
    return jobs


def sink_puts(sink: Sink, count: int) -> list[Job]:
    return [
        Job(sink.url, "PUT", {"Content-Type": "application/octet-stream"}, check=_status_in(200)) for _ in range(count)
    ]


@dataclass(frozen=True)
class Timed:
    seconds: float
    nbytes: int

    @property
    def mb_s(self) -> float:
        return self.nbytes / self.seconds / 1e6


def run_jobs(jobs: list[Job], path: Path, concurrency: int) -> Timed:
    """Send every job's body (its prefix, the file, its suffix); wall time from the first connect to the last answer."""
    size = path.stat().st_size

    def one(job: Job) -> int:
        reply = client.send(job.url, job.method, job.headers, path, job.prefix, job.suffix)
        problem = job.check(reply)
        if problem:
            raise RuntimeError(f"{job.method} {job.url.split('?')[0]}: {problem}")
        return len(job.prefix) + size + len(job.suffix)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(one, jobs))
    return Timed(time.perf_counter() - start, total)
