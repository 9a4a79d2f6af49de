"""The state store: records by namespace and id, in memory by default, in SQLite when a data directory is set.

Providers keep their records (media, uploads, posts) here and nowhere else, so a persistent or shared backend
can replace ``MemoryStore`` without touching providers. ``SqliteStore`` is that persistent backend for one
process: it holds the live records in memory exactly as ``MemoryStore`` does (handlers read and change them in
place) and writes each record through to SQLite when it is ``put``, so what a handler stored survives a restart,
and what it was only in the middle of changing (a completion under way) does not.

A state file that cannot be used as it is (not SQLite, damaged, a table missing, a ``meta`` value of the wrong
shape, empty) stops the start with a ``StateError``: one line naming the file, what is wrong and the way out
(``--reset-state``), never a start with some records silently gone. ``problems`` finds the same faults without
opening the file for writing, for ``upload-emulator state check``.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from emulator.core import records

WAY_OUT = "start with --reset-state to move the old state aside (kept, not deleted) and start empty"
TABLES = {"records": ("namespace", "id", "body"), "meta": ("name", "value")}
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (namespace TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (namespace, id))",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# what decoding a damaged record body may raise (JSON of the wrong shape: a number where a list belongs, ...)
UNREADABLE = (records.RecordError, ValueError, TypeError, KeyError, AttributeError, RecursionError)
META = {
    "presign_secret": (re.compile("[0-9a-f]{64}"), "64 hexadecimal digits"),
    "boots": (re.compile("[0-9]{1,18}"), "a whole number"),
}


class StateError(ValueError):
    """The state file cannot be used as it is: the message is one line naming the file, the fault and the way out."""


def _refused(path: Path, fault: str) -> StateError:
    return StateError(f"{path}: {fault}; {WAY_OUT}")


class Store(Protocol):
    def get(self, namespace: str, id: str) -> Any | None: ...
    def put(self, namespace: str, id: str, record: Any) -> None: ...
    def delete(self, namespace: str, id: str) -> None: ...
    def values(self, namespace: str) -> list[Any]: ...
    def items(self, namespace: str) -> list[tuple[str, Any]]: ...
    def namespaces(self, prefix: str = "") -> list[str]: ...
    def clear(self, prefix: str = "") -> None: ...
    def close(self) -> None: ...

    # The same, awaited by handlers on the event loop: a store that asks a server (Redis) lets the loop serve other
    # requests while it waits; the in-process stores answer at once, exactly as the plain calls do.
    async def aget(self, namespace: str, id: str) -> Any | None: ...
    async def aput(self, namespace: str, id: str, record: Any) -> None: ...
    async def adelete(self, namespace: str, id: str) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, id: str) -> Any | None:
        return self._tables.get(namespace, {}).get(id)

    def put(self, namespace: str, id: str, record: Any) -> None:
        with self._lock:
            self._tables.setdefault(namespace, {})[id] = record

    def delete(self, namespace: str, id: str) -> None:
        with self._lock:
            self._tables.get(namespace, {}).pop(id, None)

    def values(self, namespace: str) -> list[Any]:
        return list(self._tables.get(namespace, {}).values())

    def items(self, namespace: str) -> list[tuple[str, Any]]:
        return list(self._tables.get(namespace, {}).items())

    def namespaces(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._tables if name.startswith(prefix))

    def clear(self, prefix: str = "") -> None:
        with self._lock:
            for name in [n for n in self._tables if n.startswith(prefix)]:
                del self._tables[name]

    def close(self) -> None:
        """Nothing to release: the records go with the process."""

    async def aget(self, namespace: str, id: str) -> Any | None:
        return self.get(namespace, id)

    async def aput(self, namespace: str, id: str, record: Any) -> None:
        self.put(namespace, id, record)

    async def adelete(self, namespace: str, id: str) -> None:
        self.delete(namespace, id)


class SqliteStore(MemoryStore):
    """Records in memory, written through to an SQLite database on every put, delete and clear.

    Each write is its own transaction (WAL journal, ``synchronous=NORMAL``): a record a handler has put survives
    the process being killed at any moment; only a power loss may take the last writes. Records are stored as
    typed JSON (``core.records``). ``meta`` holds the emulator's own small values (the presign secret, the boot
    count). One process owns a database at a time.
    """

    def __init__(self, path: Path, root: Path | None = None) -> None:
        super().__init__()
        self.path, self._root = path, root
        if not path.exists():
            _create(path)
        elif path.stat().st_size == 0:  # SQLite would take it for a new database: every record silently gone
            raise _refused(path, "is empty (0 bytes), so the records of what is stored beside it are lost")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            fault = next(_faults(self._db), None)
            if fault is not None:
                raise _refused(path, fault)
            for namespace, id, body in self._db.execute("SELECT namespace, id, body FROM records").fetchall():
                try:
                    record = records.loads(body, root)
                except UNREADABLE as exc:
                    raise _refused(path, f"record {namespace}/{id} cannot be read back ({exc})") from None
                self._tables.setdefault(namespace, {})[id] = record
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _refused(path, _database_fault(exc)) from None
        except StateError:
            self._db.close()
            raise

    def put(self, namespace: str, id: str, record: Any) -> None:
        body = records.dumps(record, self._root)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO records (namespace, id, body) VALUES (?, ?, ?)", (namespace, id, body)
            )
            self._tables.setdefault(namespace, {})[id] = record

    def delete(self, namespace: str, id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM records WHERE namespace = ? AND id = ?", (namespace, id))
            self._tables.get(namespace, {}).pop(id, None)

    def clear(self, prefix: str = "") -> None:
        with self._lock:
            for name in [n for n in self._tables if n.startswith(prefix)]:
                self._db.execute("DELETE FROM records WHERE namespace = ?", (name,))
                del self._tables[name]

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def secret(self) -> bytes:  # its shape was checked at open (``META``)
        """The presign secret, made once per data directory, so URLs issued before a restart verify after it."""
        stored = self.meta("presign_secret")
        if stored is None:
            stored = secrets.token_hex(32)
            self.set_meta("presign_secret", stored)
        return bytes.fromhex(stored)

    def boot(self) -> int:
        """Count this start; the count keeps a seeded run's new ids from repeating those of earlier runs."""
        count = int(self.meta("boots") or 0) + 1
        self.set_meta("boots", str(count))
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _create(path: Path) -> None:
    """A new, empty state file, made whole under another name and renamed into place: a process killed while
    creating it leaves no empty ``state.sqlite3`` behind (which the next start would have to refuse)."""
    fresh = path.with_name(path.name + ".new")
    # also a -wal/-shm the old file left: SQLite would replay that journal of another database into the new one
    for leftover in (
        fresh,
        fresh.with_name(fresh.name + "-journal"),
        *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")),
    ):
        leftover.unlink(missing_ok=True)
    db = sqlite3.connect(fresh, isolation_level=None)
    try:
        for statement in SCHEMA:
            db.execute(statement)
    finally:
        db.close()
    os.replace(fresh, path)


def _database_fault(exc: sqlite3.DatabaseError) -> str:
    return f"is not a readable SQLite database ({exc}): damaged, truncated or not a state file"


def _faults(db: sqlite3.Connection) -> Iterator[str]:
    """What makes an open state database unusable, worst first: damage SQLite finds, then tables and values."""
    for (verdict,) in db.execute("PRAGMA quick_check").fetchall():
        if verdict != "ok":
            yield f"is damaged (SQLite quick_check: {verdict})"
            return
    usable = True
    for table, columns in TABLES.items():
        found = tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            usable = False
            yield (
                f"has no {table} table (dropped, or not an upload-emulator state file)"
                if not found
                else f"has a {table} table with columns {', '.join(found)}, not {', '.join(columns)}"
            )
    if not usable:
        return
    for name, value in db.execute("SELECT name, value FROM meta").fetchall():
        shape = META.get(name)
        if shape is not None and not (isinstance(value, str) and shape[0].fullmatch(value)):
            yield f"meta value {name} is {str(value)[:40]!r}, not {shape[1]}"


def read_back(path: Path, root: Path | None = None) -> Iterator[tuple[str | None, tuple[str, str, Any] | None]]:
    """Each fault (one line naming the file) or record ``(namespace, id, record)`` of a state file, which is opened
    read-only and never changed: what ``upload-emulator state check`` reports."""
    if not path.exists():
        yield f"{path}: is missing", None
        return
    if path.stat().st_size == 0:
        yield f"{path}: is empty (0 bytes), so the records of what is stored beside it are lost", None
        return
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        yield f"{path}: {_database_fault(exc)}", None
        return
    try:
        faults = list(_faults(db))
        for fault in faults:
            yield f"{path}: {fault}", None
        if faults:
            return
        for namespace, id, body in db.execute("SELECT namespace, id, body FROM records"):
            try:
                yield None, (namespace, id, records.loads(body, root))
            except UNREADABLE as exc:
                yield f"{path}: record {namespace}/{id} cannot be read back ({exc})", None
    except sqlite3.DatabaseError as exc:
        yield f"{path}: {_database_fault(exc)}", None
    finally:
        db.close()
