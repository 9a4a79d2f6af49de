"""The state store: records by namespace and id, in memory by default, in SQLite when a data directory is set.

Providers keep their records (media, uploads, posts) here and nowhere else, so a persistent or shared backend
can replace ``MemoryStore`` without touching providers. ``SqliteStore`` is that persistent backend for one
process: it holds the live records in memory exactly as ``MemoryStore`` does (handlers read and change them in
place) and writes each record through to SQLite when it is ``put``, so what a handler stored survives a restart,
and what it was only in the middle of changing (a completion under way) does not.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from emulator.core import records


class Store(Protocol):
    def get(self, namespace: str, id: str) -> Any | None: ...
    def put(self, namespace: str, id: str, record: Any) -> None: ...
    def delete(self, namespace: str, id: str) -> None: ...
    def values(self, namespace: str) -> list[Any]: ...
    def namespaces(self, prefix: str = "") -> list[str]: ...
    def clear(self, prefix: str = "") -> None: ...
    def close(self) -> None: ...


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

    def namespaces(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._tables if name.startswith(prefix))

    def clear(self, prefix: str = "") -> None:
        with self._lock:
            for name in [n for n in self._tables if n.startswith(prefix)]:
                del self._tables[name]

    def close(self) -> None:
        """Nothing to release: the records go with the process."""


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
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS records (namespace TEXT NOT NULL, id TEXT NOT NULL, "
                         "body TEXT NOT NULL, PRIMARY KEY (namespace, id))")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for namespace, id, body in self._db.execute("SELECT namespace, id, body FROM records").fetchall():
            try:
                record = records.loads(body, root)
            except (records.RecordError, ValueError) as exc:
                self._db.close()
                raise RuntimeError(f"{path}: record {namespace}/{id} cannot be read back ({exc}); move the data "
                                   "directory aside to start empty") from None
            self._tables.setdefault(namespace, {})[id] = record

    def put(self, namespace: str, id: str, record: Any) -> None:
        body = records.dumps(record, self._root)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO records (namespace, id, body) VALUES (?, ?, ?)",
                             (namespace, id, body))
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

    def secret(self) -> bytes:
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
