"""Integrity at rest: bytes changed on disk while the emulator was stopped (same size, so the start cannot tell) are
never served; the provider answers its 404 instead, as the README promises. And ``upload-emulator state check``
verifies a whole data directory: one line per problem, exit 1 on any, 0 and a summary line when clean.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.test_reliability_support import (
    XF,
    Stored,
    ap_asset,
    ap_clip,
    auth,
    payload,
    pe_image,
    pe_video,
    running,
    sf_asset,
    verify,
)

pytestmark = pytest.mark.anyio


def flip_a_byte(path: Path, at: int = 5_000) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def state_check(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", "state", "check", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _store_servable(c: httpx.AsyncClient) -> list[Stored]:
    return [
        await pe_video(c, 0, payload("mp4", 20_000, 1)),
        await pe_image(c, 1, payload("png", 20_000, 2)),
        await ap_clip(c, 0, payload("mp4", 20_000, 3)),
        await ap_asset(c, 1, payload("png", 20_000, 4)),
        await sf_asset(c, 0, payload("png", 20_000, 5)),
    ]


async def test_a_flipped_byte_is_never_served_by_any_provider(tmp_path):
    async with running(tmp_path, seed=11) as (c, runtime):
        stored = await _store_servable(c)
        paths = {blob.name: blob.path for blob in runtime.blobs.index.values()}
    for path in paths.values():
        flip_a_byte(path)  # same size: only the MD5 tells
    async with running(tmp_path, seed=11) as (c, runtime):
        for item in stored:
            assert item.read_url is not None
            r = await c.get(item.read_url)
            assert r.status_code == 404, (item.provider, item.kind, r.status_code)
            assert "etag" not in r.headers and item.data[:100] not in r.content
            if item.provider == "posteverywhere" and item.kind == "image":
                assert r.json()["success"] is False  # Cloudflare Images' own shape
            else:
                assert "<Code>NoSuchKey</Code>" in r.text  # the storage's S3 shape
        assert runtime.blobs.damaged == set(paths)
        # and again: a damaged blob stays refused, without hashing it once more
        assert [(await c.get(item.read_url)).status_code for item in stored if item.read_url] == [404] * 5


async def test_intact_bytes_are_served_after_a_restart_and_bytes_changed_while_running_are_not(tmp_path):
    async with running(tmp_path, seed=11) as (c, _):
        stored = await _store_servable(c)
    async with running(tmp_path, seed=11) as (c, runtime):
        for item in stored:
            await verify(c, item, runtime)
        verified = dict(runtime.blobs._verified)
        assert set(verified) == set(runtime.blobs.index)
        flip_a_byte(runtime.blobs.index[next(iter(verified))].path)  # changed while running: mtime moves
        served = [(await c.get(item.read_url)).status_code for item in stored if item.read_url]
        assert sorted(served) == [200, 200, 200, 200, 404]


async def test_a_damaged_chunk_is_not_assembled_into_a_video(tmp_path):
    data = payload("mp4", 30_000, 7)
    async with running(tmp_path, seed=11) as (c, runtime):
        for index, piece in enumerate((data[:15_000], data[15_000:])):
            r = await c.post(
                f"{XF}/chunks",
                headers=auth("xenonflare", 0),
                data={"chunkIndex": str(index), "totalChunks": "2", "fileId": "damaged"},
                files={"file": ("blob", piece, "application/octet-stream")},
            )
            assert r.status_code == 200, r.text
        chunk_paths = [blob.path for blob in runtime.blobs.index.values()]
    flip_a_byte(sorted(chunk_paths, key=lambda p: p.stat().st_size)[0], at=100)
    async with running(tmp_path, seed=11) as (c, runtime):
        r = await c.post(
            f"{XF}/videos",
            headers=auth("xenonflare", 0),
            files=[("platforms", (None, '["youtube"]')), ("fileId", (None, "damaged"))],
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        assert "no longer match their MD5" in r.json()["message"]
        assert runtime.store.values("xenonflare:media") == []


async def test_state_check_passes_a_clean_directory_and_reports_every_problem(tmp_path):
    async with running(tmp_path, seed=11) as (c, runtime):
        stored = await _store_servable(c)
        blobs = sorted(runtime.blobs.index.values(), key=lambda b: b.name)
    clean = state_check(tmp_path)  # 8 records: 2 PostEverywhere media, a clip and its upload, an asset, and
    # a Segmentflow upload with its finalize index entry and its asset
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines() == [
        f"{tmp_path}: ok, 8 records and {len(blobs)} stored objects ({sum(b.size for b in blobs)} bytes) verified"
    ]

    flip_a_byte(blobs[0].path)  # damaged, same size
    blobs[1].path.write_bytes(blobs[1].path.read_bytes()[:10])  # truncated
    blobs[2].path.unlink()  # gone
    blobs[3].path.with_name(blobs[3].path.name + ".json").write_text("{not json")  # its record unreadable
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        db.execute("INSERT INTO records VALUES ('posteverywhere:media', 'odd', '{\"__type__\": \"os:system\"}')")
    report = state_check(tmp_path)
    lines = report.stdout.splitlines()
    assert report.returncode == 1 and report.stderr == ""
    assert any(str(blobs[0].path) in line and "no longer match their MD5" in line for line in lines)
    assert any(str(blobs[1].path) in line and "are 10 bytes, their record says" in line for line in lines)
    assert any(f"{blobs[2].path}.json: record of stored bytes that are gone" == line for line in lines)
    assert any(str(blobs[3].path) in line and "without a readable record" in line for line in lines)
    assert any("record posteverywhere:media/odd cannot be read back" in line for line in lines)
    for blob in blobs[:4]:  # and the provider record that names each of them
        assert any(f"names stored bytes {blob.name}, which are" in line for line in lines), blob.name
    assert lines[-1].startswith(f"{tmp_path}: {len(lines) - 1} problem(s) in ")
    assert len(stored) == 5


async def test_state_check_refuses_a_directory_in_use(tmp_path):
    async with running(tmp_path, seed=11) as (c, _):
        await pe_image(c, 0, payload("png", 5_000, 1))
        busy = state_check(tmp_path)
    assert busy.returncode == 2 and "in use by a running upload-emulator" in busy.stderr
    assert "Traceback" not in busy.stderr
    missing = state_check(tmp_path / "nope")
    assert missing.returncode == 2 and "not a directory" in missing.stderr


async def test_a_damaged_part_fails_the_completion_and_can_be_uploaded_again(tmp_path):
    from tests.test_reliability_support import AP, md5, url_path

    data = payload("mp4", 30_000, 9)
    h = auth("autoposting", 0)
    async with running(tmp_path, seed=11) as (c, runtime):
        clip = (
            await c.post(
                f"{AP}/clips/upload/init",
                headers=h,
                json={
                    "brandId": "b",
                    "title": "t",
                    "fileName": "c.mp4",
                    "fileSize": len(data),
                    "mimeType": "video/mp4",
                },
            )
        ).json()["data"]
        ids = {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}
        urls = (await c.post(f"{AP}/clips/upload/presign", headers=h, json={**ids, "partNumbers": [1]})).json()["data"][
            "presignedUrls"
        ]
        assert (await c.put(url_path(urls[0]["url"]), content=data)).status_code == 200
        (part,) = runtime.blobs.index.values()
    flip_a_byte(part.path)
    async with running(tmp_path, seed=11) as (c, runtime):
        parts = [{"partNumber": 1, "eTag": md5(data)}]
        done = await c.post(f"{AP}/clips/upload/complete", headers=h, json={**ids, "parts": parts})
        assert done.status_code == 404 and done.json()["error"] == "not_found", done.text
        assert "no longer match their MD5" in done.json()["message"]
        assert (await c.get(f"{AP}/clips/{clip['clipId']}", headers=h)).json()["data"]["status"] == "uploading"
        assert (await c.put(url_path(urls[0]["url"]), content=data)).status_code == 200  # the upload stays open
        done = await c.post(f"{AP}/clips/upload/complete", headers=h, json={**ids, "parts": parts})
        assert done.status_code == 200, done.text
        got = (await c.get(f"{AP}/clips/{clip['clipId']}", headers=h)).json()["data"]
        assert (await c.get(url_path(got["url"]))).content == data
