"""A form's file is hashed at its first read, not on arrival (``BlobStore.writer(hash_later=True)``).

PostEverywhere's image upload (Cloudflare Images behind a multipart form) answers without any checksum, so the
emulator records a CRC-32 of the bytes as they arrive and computes the MD5 when something first needs it: a GET of
the image (its ETag), the state view, a download from the control plane. These tests hold it to what eager hashing
promised: the same MD5 everywhere, learned once, kept across a restart, and bytes changed on disk before that first
read never given an MD5 or served.
"""

from __future__ import annotations

import json
import zlib

import httpx
import pytest

from emulator.core.storage import Blob, _record_path
from tests.test_reliability_integrity import flip_a_byte, state_check
from tests.test_reliability_support import md5, payload, pe_image, running

pytestmark = pytest.mark.anyio


def _only_blob(runtime) -> Blob:
    (blob,) = runtime.blobs.index.values()
    return blob


async def _image(c: httpx.AsyncClient, data: bytes) -> str:
    """A PostEverywhere image stored and completed: where its bytes are served."""
    read_url = (await pe_image(c, 0, data)).read_url
    assert read_url is not None
    return read_url


async def test_the_md5_is_computed_at_the_first_read_and_learned_once(tmp_path, monkeypatch):
    data = payload("png", 300_000, 7)
    async with running(tmp_path) as (c, runtime):
        read_url = await _image(c, data)
        arrived = _only_blob(runtime)
        assert arrived.md5 == "" and arrived._crc32 == zlib.crc32(data)  # no MD5 on arrival
        assert json.loads(_record_path(arrived.path).read_text())["crc32"] == zlib.crc32(data)

        r = await c.get(read_url)
        assert r.status_code == 200 and r.content == data and r.headers["etag"] == f'"{md5(data)}"'
        learned = _only_blob(runtime)
        assert learned.md5 == md5(data) and learned.same_bytes(arrived)
        assert json.loads(_record_path(arrived.path).read_text())["md5"] == md5(data)

        # learned: further reads (and the state view) do not read the file again to hash it
        reads: list[object] = []

        def counted(path: object) -> tuple[str, int, int]:
            reads.append(path)
            return "", 0, 0

        monkeypatch.setattr("emulator.core.storage._digests", counted)
        assert (await c.get(read_url)).headers["etag"] == f'"{md5(data)}"'
        view = (await c.get("/_emulator/state/posteverywhere")).json()
        (media,) = view["tables"]["media"]
        assert media["blob"]["md5"] == md5(data) and "_crc32" not in media["blob"] and reads == []


async def test_the_state_view_and_the_download_are_first_reads_too(tmp_path):
    data = payload("png", 200_000, 8)
    async with running(tmp_path) as (c, runtime):
        await pe_image(c, 0, data)
        assert _only_blob(runtime).md5 == ""
        view = (await c.get("/_emulator/state/posteverywhere")).json()
        (media,) = view["tables"]["media"]
        assert media["blob"]["md5"] == md5(data)
        assert _only_blob(runtime).md5 == md5(data)
    async with running(tmp_path) as (c, runtime):  # the record beside the bytes kept what was learned
        assert _only_blob(runtime).md5 == md5(data)

    other = tmp_path / "other"
    async with running(other) as (c, runtime):
        await pe_image(c, 0, data)
        name = _only_blob(runtime).name
        r = await c.get("/_emulator/state/posteverywhere/blob", params={"name": name})
        assert r.status_code == 200 and r.content == data and r.headers["etag"] == f'"{md5(data)}"'


async def test_bytes_kept_unhashed_across_a_restart_are_hashed_at_their_first_read_after_it(tmp_path):
    data = payload("png", 150_000, 9)
    async with running(tmp_path) as (c, _):
        read_url = await _image(c, data)
    assert state_check(tmp_path).returncode == 0  # the CRC-32 checked where no MD5 was computed yet
    async with running(tmp_path) as (c, runtime):
        assert _only_blob(runtime).md5 == ""
        r = await c.get(read_url)
        assert r.status_code == 200 and r.headers["etag"] == f'"{md5(data)}"'


async def test_bytes_changed_on_disk_before_their_first_read_are_never_given_an_md5(tmp_path, monkeypatch):
    data = payload("png", 120_000, 10)
    async with running(tmp_path) as (c, runtime):
        read_url = await _image(c, data)
        blob = _only_blob(runtime)
        flip_a_byte(blob.path)  # same size: only the CRC-32 of the arrival tells
        r = await c.get(read_url)
        assert r.status_code == 404 and "etag" not in r.headers and r.json()["success"] is False
        view = (await c.get("/_emulator/state/posteverywhere")).json()
        assert view["tables"]["media"][0]["blob"]["md5"] is None  # unknown: not the MD5 of the changed bytes
        download = await c.get("/_emulator/state/posteverywhere/blob", params={"name": blob.name})
        assert download.status_code == 404 and "changed on disk" in download.json()["message"]
        assert runtime.blobs.damaged == {blob.name}
        monkeypatch.setattr("emulator.core.storage._digests", lambda path: pytest.fail("hashed again"))
        view = (await c.get("/_emulator/state/posteverywhere")).json()  # known damaged: not read again
        assert view["tables"]["media"][0]["blob"]["md5"] is None
        assert json.loads(_record_path(blob.path).read_text())["md5"] == ""  # nothing learned
    checked = state_check(tmp_path)
    assert checked.returncode == 1 and "no longer match their CRC-32" in checked.stdout, checked.stdout


def test_a_record_needs_an_md5_or_a_crc32(tmp_path):
    path = tmp_path / "x"
    good = {"name": "n", "size": 1, "md5": "", "content_type": "image/png", "crc32": 5}
    assert Blob.from_record(good, path)._crc32 == 5
    for bad in ({**good, "crc32": None}, {**good, "crc32": -1}, {**good, "crc32": 2**32}, {**good, "crc32": "5"}):
        with pytest.raises(ValueError):
            Blob.from_record(bad, path)
