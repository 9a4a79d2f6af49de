"""A state file that cannot be used as it is stops the start: ``upload-emulator serve --data-dir DIR`` exits with
status 2 and one line naming the file, what is wrong and the way out, never a traceback and never a start with the
records silently gone. ``--reset-state`` is that way out: the old state is moved aside, not deleted.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from emulator import Settings, create_app
from tests.test_reliability_support import PE, auth, payload, pe_image, stored_files

STATE = "state.sqlite3"


async def _stored_state(data_dir: Path) -> None:
    """A data directory holding one PostEverywhere image, its record, and the emulator's meta values."""
    app = create_app(Settings(strict=True, seed=2, data_dir=data_dir))
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            await pe_image(c, 0, payload("png", 40_000, 1))
    finally:
        app.state.runtime.close()  # checkpoints the WAL into the state file


def _sql(statement: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as db:
            db.execute(statement)
        db.close()

    return damage


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 + 100])


def _bytes(make: Callable[[int], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(make(path.stat().st_size))


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "is not a readable SQLite database (database disk image is malformed)"),
    "garbage": (_bytes(lambda n: os.urandom(n)), "is not a readable SQLite database (file is not a database)"),
    "zeroed": (_bytes(lambda n: bytes(n)), "is not a readable SQLite database (file is not a database)"),
    "empty": (_bytes(lambda n: b""), "is empty (0 bytes)"),
    "records dropped": (_sql("DROP TABLE records"), "has no records table"),
    "meta dropped": (_sql("DROP TABLE meta"), "has no meta table"),
    "records reshaped": (
        _sql("ALTER TABLE records RENAME COLUMN body TO payload"),
        "has a records table with columns namespace, id, payload",
    ),
    "secret not hex": (
        _sql("UPDATE meta SET value = 'zz' WHERE name = 'presign_secret'"),
        "meta value presign_secret is 'zz', not 64 hexadecimal digits",
    ),
    "boots not a number": (
        _sql("UPDATE meta SET value = 'many' WHERE name = 'boots'"),
        "meta value boots is 'many', not a whole number",
    ),
    "foreign record type": (
        _sql('UPDATE records SET body = \'{"__type__": "os:system"}\''),
        "cannot be read back (refusing record type 'os:system'",
    ),
    "deleted": (lambda path: path.unlink(), "is missing, but 1 stored objects are there"),
    "record of the wrong shape": (
        _sql("UPDATE records SET body = '{\"__tuple__\": 5}'"),
        "cannot be read back ('int' object is not iterable)",
    ),
}


def _serve(data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
async def test_a_corrupt_state_file_refuses_to_start_in_one_line(tmp_path, corruption):
    damage, fault = CORRUPTIONS[corruption]
    await _stored_state(tmp_path)
    state = tmp_path / STATE
    damage(state)
    blobs_before = stored_files(tmp_path)
    result = _serve(tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {state}: ") and fault in line, line
    assert line.endswith("start with --reset-state to move the old state aside (kept, not deleted) and start empty")
    assert stored_files(tmp_path) == blobs_before  # a refused start changes nothing


@pytest.mark.anyio
async def test_reset_state_moves_the_old_state_aside_and_starts_empty(tmp_path):
    await _stored_state(tmp_path)
    kept = {
        path.relative_to(tmp_path): path.read_bytes()
        for path in tmp_path.rglob("*")
        if path.is_file() and path.name != ".lock"
    }
    (tmp_path / STATE).write_bytes(b"")  # the state file lost; the image's bytes are still there
    app = create_app(Settings(strict=True, data_dir=tmp_path, reset_state=True))
    runtime = app.state.runtime
    try:
        aside = runtime.blobs.set_aside_to
        assert aside is not None and aside.parent == tmp_path and aside.name.startswith("aside-")
        assert stored_files(tmp_path) == {} and runtime.store.namespaces() == []
        moved = {path.relative_to(aside): path.read_bytes() for path in aside.rglob("*") if path.is_file()}
        assert moved == {**kept, Path(STATE): b""}  # everything, nothing deleted
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            r = await c.get(f"{PE}/media", headers=auth("posteverywhere", 0))
            assert r.status_code == 200 and r.json()["data"]["media"] == []
            await pe_image(c, 0, payload("png", 9_000, 3))  # and it works as a fresh directory
    finally:
        runtime.close()


@pytest.mark.anyio
async def test_a_directory_set_aside_while_still_readable_serves_as_a_data_directory(tmp_path):
    await _stored_state(tmp_path)
    app = create_app(Settings(data_dir=tmp_path, reset_state=True))
    aside = app.state.runtime.blobs.set_aside_to
    app.state.runtime.close()
    assert aside is not None
    app = create_app(Settings(strict=True, data_dir=aside))  # paths are relative: the old state, whole
    try:
        media = app.state.runtime.store.values("posteverywhere:media")
        assert len(media) == 1
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            got = await c.get(f"{PE}/media/{media[0].id}", headers=auth("posteverywhere", 0))
            assert got.status_code == 200 and got.json()["data"]["status"] == "ready"
            assert (await c.get(got.json()["data"]["url"].removeprefix("http://127.0.0.1:8080"))).status_code == 200
    finally:
        app.state.runtime.close()
