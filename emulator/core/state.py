"""The state store: records by namespace and id, in memory by default.

Providers keep their records (media, uploads, posts) here and nowhere else, so a persistent or shared backend
(SQLite, Redis) can replace ``MemoryStore`` without touching providers.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Store(Protocol):
    def get(self, namespace: str, id: str) -> Any | None: ...
    def put(self, namespace: str, id: str, record: Any) -> None: ...
    def delete(self, namespace: str, id: str) -> None: ...
    def values(self, namespace: str) -> list[Any]: ...
    def namespaces(self, prefix: str = "") -> list[str]: ...
    def clear(self, prefix: str = "") -> None: ...


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
