"""Provider records as typed JSON, so that a persistent store can keep them across restarts.

Records are dataclasses (a provider's ``Media``, ``Clip``, ``Upload``…) holding plain values, lists, dicts (some
with integer keys), other dataclasses such as ``Blob``, and paths. ``dumps`` writes every dataclass with a type tag
and ``loads`` rebuilds it field by field. Unlike pickle, loading never runs code a database could smuggle in: a tag
may only name a dataclass defined in the ``emulator`` package (anything else is refused), and the object is
rebuilt by setting its fields, without calling its ``__init__``.

Paths under the data directory are written relative to it, so a data directory can be moved or mounted elsewhere
(Docker) and its records still point at their bytes.

    {"__type__": "emulator.core.storage:Blob", "name": "…", "path": {"__path__": "ab/ab12…", "rel": true}, …}
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

TYPE, PATH, TUPLE, SET, FROZENSET, BYTES, ITEMS = (
    "__type__",
    "__path__",
    "__tuple__",
    "__set__",
    "__frozenset__",
    "__bytes__",
    "__items__",
)
PACKAGE = "emulator"


class RecordError(ValueError):
    """A record that cannot be written (a value of an unknown kind) or read back (an unknown or foreign type)."""


# ASCII: a lone surrogate (valid in JSON input, as "\ud800") cannot be stored as UTF-8 text; one encoder for every
# record (``json.dumps`` with these options builds a new one per call)
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def dumps(record: Any, root: Path | None = None) -> str:
    return _ENCODER.encode(_encode(record, root))


def loads(text: str, root: Path | None = None) -> Any:
    return _decode(json.loads(text), root)


# values written as they are, recognised by their exact type first (most fields of a record): the Redis store writes
# a record on every put, and this with the class's fields looked up once (``_shape``) took ``dumps`` from 10 to 6 µs
# for a 17-field record; subclasses (an ``Enum`` of str) take the general checks below, as before
_PLAIN = frozenset({type(None), bool, int, float, str})


_SHAPES: dict[type, tuple[str, tuple[dataclasses.Field[Any], ...]]] = {}


def _shape(cls: type) -> tuple[str, tuple[dataclasses.Field[Any], ...]]:
    """A dataclass's type tag and fields (``dataclasses.fields`` builds its tuple again on every call)."""
    shape = _SHAPES.get(cls)
    if shape is None:
        shape = _SHAPES[cls] = f"{cls.__module__}:{cls.__qualname__}", dataclasses.fields(cls)
    return shape


def _encode(value: Any, root: Path | None) -> Any:
    if type(value) in _PLAIN or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        tag, fields = _shape(type(value))
        out = {TYPE: tag}
        for f in fields:
            item = getattr(value, f.name)
            out[f.name] = item if type(item) in _PLAIN else _encode(item, root)
        return out
    if isinstance(value, list):
        return [_encode(item, root) for item in value]
    if isinstance(value, tuple):
        return {TUPLE: [_encode(item, root) for item in value]}
    if isinstance(value, (set, frozenset)):
        return {FROZENSET if isinstance(value, frozenset) else SET: [_encode(item, root) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("__") for key in value):
            return {key: _encode(item, root) for key, item in value.items()}
        return {ITEMS: [[_encode(key, root), _encode(item, root)] for key, item in value.items()]}
    if isinstance(value, Path):
        if root is not None and value.is_absolute() and value.is_relative_to(root):
            return {PATH: value.relative_to(root).as_posix(), "rel": True}
        return {PATH: str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {BYTES: base64.b64encode(value).decode("ascii")}
    raise RecordError(f"cannot persist a {type(value).__name__}: records hold dataclasses and plain values")


def _decode(value: Any, root: Path | None) -> Any:
    if isinstance(value, list):
        return [_decode(item, root) for item in value]
    if not isinstance(value, dict):
        return value
    if TYPE in value:
        return _rebuild(value, root)
    if PATH in value:
        path = Path(value[PATH])
        return root / path if value.get("rel") and root is not None else path
    if TUPLE in value:
        return tuple(_decode(item, root) for item in value[TUPLE])
    if SET in value:
        return {_decode(item, root) for item in value[SET]}
    if FROZENSET in value:
        return frozenset(_decode(item, root) for item in value[FROZENSET])
    if BYTES in value:
        return base64.b64decode(value[BYTES])
    if ITEMS in value:
        return {_decode(key, root): _decode(item, root) for key, item in value[ITEMS]}
    return {key: _decode(item, root) for key, item in value.items()}


def _record_class(tag: Any) -> type[Any]:
    module_name, _, qualname = str(tag).partition(":")
    segments = module_name.split(".")
    # the emulator's own modules only, and none whose import does something (``emulator.__main__`` runs the CLI)
    if segments[0] != PACKAGE or any(not part.isidentifier() or part.startswith("_") for part in segments[1:]):
        raise RecordError(f"refusing record type {tag!r}: only the emulator's own dataclasses are stored")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        raise RecordError(f"unknown record type {tag!r} (written by another version of the emulator?)") from None
    if not (isinstance(found, type) and dataclasses.is_dataclass(found)):
        raise RecordError(f"refusing record type {tag!r}: not a dataclass")
    return found


def _rebuild(data: dict[str, Any], root: Path | None) -> Any:
    cls = _record_class(data[TYPE])
    record = object.__new__(cls)  # no record class defines __new__: what cls.__new__ would do, typed
    for f in _shape(cls)[1]:
        if f.name in data:
            value = _decode(data[f.name], root)
        elif f.default is not dataclasses.MISSING:  # a field added since the record was written
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            raise RecordError(f"record of type {data[TYPE]!r} lacks its field {f.name!r}")
        object.__setattr__(record, f.name, value)  # also for frozen dataclasses
    return record
