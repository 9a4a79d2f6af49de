"""Published and inferred specs: load, merge into the effective spec, and prove the merge only adds.

Layout and rules: ``emulator/specs/README.md``. Specs ship inside the package and are read with
``importlib.resources``, so an installed wheel needs no source tree.

Parsing and merging the YAML is most of a cold start (~130 ms for every spec), so ``load`` keeps what it built in
a JSON file in the user's cache directory (``$XDG_CACHE_HOME/upload-emulator/specs``), named by a hash of the very
bytes it was built from: a changed spec file is a different name, and a spec is never read from a stale cache. The
cache is only written when the JSON reads back equal to what YAML gave (no dates, no non-string keys), and an
unreadable or unwritable cache is ignored: the specs are then built from their YAML, as without one.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

CACHE_FORMAT = "2"  # change when what load() builds from the same bytes changes

INFERRED_NOTE = "x-emulator-inferred"
# An overlay's table of second paths for documented operations: {alias path: {path, operationIds: {method: id},
# x-emulator-inferred}}. Each alias is a copy of that path's operations under their own operationIds (OpenAPI wants
# them unique), served by the same handlers; the table itself is not part of the effective spec.
PATH_ALIASES = "x-emulator-path-aliases"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class SpecError(Exception):
    """A spec that cannot be used: unreadable, invalid, or an overlay that changes published text."""


def merge(base: Any, overlay: Any, where: str = "#") -> Any:
    """Deep-merge ``overlay`` onto ``base``: mappings key by key, lists keep ``base`` and append new items.

    A scalar in ``overlay`` that differs from ``base`` is an error: an overlay only adds. The one scalar it may
    replace is a schema ``type``, by a list that keeps it (``string`` → ``[string, "null"]``): that adds types.
    """
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base[key], value, f"{where}/{key}") if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(overlay, list):
        return list(base) + [copy.deepcopy(item) for item in overlay if item not in base]
    if _widens_type(where, base, overlay):
        return [base] + [t for t in overlay if t != base]
    if base != overlay or type(base) is not type(overlay):
        raise SpecError(f"{where}: the overlay changes {base!r} to {overlay!r}; an overlay may only add")
    return base


def _widens_type(where: str, published: Any, other: Any) -> bool:
    """A schema's ``type: string`` that became ``type: [string, "null"]``: the published type kept, types added (the
    one way to say "or null" in OpenAPI 3.1, which has no ``nullable``)."""
    return (
        where.endswith("/type")
        and isinstance(published, str)
        and isinstance(other, list)
        and all(isinstance(t, str) for t in other)
        and published in other
    )


def dropped(published: Any, effective: Any, where: str = "#") -> Iterator[str]:
    """Every place where ``effective`` lost or changed something ``published`` states."""
    if isinstance(published, dict):
        if not isinstance(effective, dict):
            yield f"{where}: was a mapping"
            return
        for key, value in published.items():
            if key not in effective:
                yield f"{where}/{key}: missing"
            else:
                yield from dropped(value, effective[key], f"{where}/{key}")
    elif isinstance(published, list):
        if not isinstance(effective, list):
            yield f"{where}: was a list"
            return
        for index, item in enumerate(published):
            if index >= len(effective) or effective[index] != item:
                yield f"{where}/{index}: published item {item!r} missing or moved"
    elif _widens_type(where, published, effective):
        return
    elif published != effective or type(published) is not type(effective):
        yield f"{where}: {published!r} became {effective!r}"


def unnoted_additions(published: Any, overlay: Any, where: str = "#", noted: bool = False) -> Iterator[str]:
    """Operations, responses, parameters, headers and properties the overlay adds without an inference note."""
    if not isinstance(overlay, dict):
        return
    noted = noted or INFERRED_NOTE in overlay
    parent = where.rsplit("/", 1)[-1]
    for key, value in overlay.items():
        if key.startswith("x-"):
            continue
        here = f"{where}/{key}"
        base = published.get(key) if isinstance(published, dict) else None
        is_new = base is None
        # a new path item is fine when each operation in it carries its own note
        meaningful = key in HTTP_METHODS or parent in (
            "paths",
            "responses",
            "properties",
            "headers",
            "schemas",
            "parameters",
            "links",
        )
        own_note = isinstance(value, dict) and INFERRED_NOTE in value
        if is_new and meaningful and not noted and not own_note and parent != "paths":
            yield here
            continue
        if isinstance(value, dict):
            yield from unnoted_additions(base if isinstance(base, dict) else {}, value, here, noted)


@dataclass(frozen=True)
class ProviderSpecs:
    provider: str
    published: dict[str, Any]
    inferred: dict[str, Any]
    effective: dict[str, Any]

    @property
    def server_path(self) -> str:
        """The path part of the first published server URL (``/api`` for ``https://app.example.com/api``)."""
        return urlsplit(self.published["servers"][0]["url"]).path.rstrip("/")

    def operations(self) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """(operationId, METHOD, path, operation) for every operation of the effective spec."""
        for path, item in self.effective["paths"].items():
            for method in HTTP_METHODS:
                if method in item:
                    yield item[method]["operationId"], method.upper(), path, item[method]

    def served(self, emulator_base: str) -> dict[str, Any]:
        """The effective spec as ``/openapi.json`` serves it: the emulator first among the servers."""
        spec = copy.deepcopy(self.effective)
        real = spec.get("servers", [])
        spec["servers"] = [{"url": emulator_base + self.server_path, "description": "upload-emulator"}, *real]
        return spec

    def check(self) -> list[str]:
        """Problems with this provider's specs; empty when the effective spec is valid and only adds."""
        from openapi_spec_validator import validate

        problems: list[str] = []
        try:
            validate(self.effective)
        except Exception as exc:  # the validator raises a family of errors; report any
            problems.append(f"effective spec is not valid OpenAPI: {exc}".splitlines()[0])
        problems += [f"dropped from the published spec: {p}" for p in dropped(self.published, self.effective)]
        problems += [f"addition without {INFERRED_NOTE}: {p}" for p in unnoted_additions(self.published, self.inferred)]
        seen: set[str] = set()
        for path, item in self.effective["paths"].items():
            for method in HTTP_METHODS:
                op = item.get(method)
                if op is None:
                    continue
                op_id = op.get("operationId")
                if not op_id:
                    problems.append(f"{method.upper()} {path}: no operationId")
                elif op_id in seen:
                    problems.append(f"{method.upper()} {path}: duplicate operationId {op_id}")
                seen.add(op_id or "")
        return problems


def with_path_aliases(spec: dict[str, Any], provider: str = "") -> dict[str, Any]:
    """``spec`` with the operations its ``x-emulator-path-aliases`` table names copied to their second paths."""
    aliases = spec.get(PATH_ALIASES)
    if not aliases:
        return spec
    spec = {key: value for key, value in spec.items() if key != PATH_ALIASES}
    paths = dict(spec["paths"])
    for alias, rule in aliases.items():
        source = paths.get(rule.get("path", ""))
        if alias in paths or source is None or not rule.get("operationIds") or INFERRED_NOTE not in rule:
            raise SpecError(
                f"{provider}: path alias {alias}: needs a path the spec has, operationIds and a "
                f"{INFERRED_NOTE} note, and must not be a path of its own"
            )
        item = {
            key: copy.deepcopy(value)
            for key, value in source.items()
            if key not in HTTP_METHODS or key in rule["operationIds"]
        }
        for method, operation_id in rule["operationIds"].items():
            if method not in item:
                raise SpecError(f"{provider}: path alias {alias}: {rule['path']} has no {method} operation")
            operation = item[method]
            operation["operationId"] = operation_id
            basis = operation.get(INFERRED_NOTE)
            operation[INFERRED_NOTE] = rule[INFERRED_NOTE] + (f" As at {rule['path']}: {basis}" if basis else "")
        paths[alias] = item
    spec["paths"] = paths
    return spec


def _read_yaml(name: str, source: bytes) -> dict[str, Any]:
    import yaml

    # libyaml's parser with PyYAML's own safe constructors: the same values, ten times faster than pure Python
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(source.decode("utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"{name}: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{name}: expected a mapping at the top level")
    return data


def available() -> list[str]:
    root = resources.files("emulator") / "specs"
    # names starting with "_" are the emulator's own APIs (the control plane), not providers
    return sorted(
        node.name
        for node in root.iterdir()
        if node.is_dir() and not node.name.startswith("_") and (node / "published").is_dir()
    )


@functools.cache
def load(provider: str) -> ProviderSpecs:
    root = resources.files("emulator") / "specs" / provider
    published_sources = [
        (node.name, node.read_bytes())
        for node in sorted((root / "published").iterdir(), key=lambda n: n.name)
        if node.name.endswith((".yaml", ".yml"))
    ]
    inferred_node = root / "inferred.yaml"
    inferred_source = inferred_node.read_bytes() if inferred_node.is_file() else None
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{provider}".encode())
    for name, source in [*published_sources, ("inferred.yaml", inferred_source or b"")]:
        digest.update(f"\0{name}\0{len(source)}\0".encode() + source)
    cache = _cache_file(provider, digest.hexdigest())
    cached = _read_cache(cache)
    if cached is not None:
        return ProviderSpecs(provider, cached["published"], cached["inferred"], cached["effective"])

    published: dict[str, Any] = {}
    for name, source in published_sources:
        published = merge(published, _read_yaml(name, source), f"{provider}/published/{name}#")
    if not published:
        raise SpecError(f"{provider}: no published spec")
    inferred = _read_yaml("inferred.yaml", inferred_source) if inferred_source is not None else {}
    effective = with_path_aliases(merge(published, inferred, f"{provider}/inferred.yaml#"), provider)
    _write_cache(cache, {"published": published, "inferred": inferred, "effective": effective})
    return ProviderSpecs(provider, published, inferred, effective)


def _cache_file(provider: str, digest: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "upload-emulator" / "specs" / f"{provider}-{digest[:32]}.json"


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not (
        isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in ("published", "inferred", "effective"))
    ):
        return None
    return data


def _write_cache(path: Path, specs: dict[str, Any]) -> None:
    """Keep ``specs`` for the next start, if JSON holds them exactly; drop older caches of the same provider."""
    try:
        data = orjson.dumps(specs)
        if orjson.loads(data) != specs:  # e.g. a YAML date, which JSON would turn into a string
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".spec-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        provider = path.name.rsplit("-", 1)[0]
        for old in path.parent.glob(f"{provider}-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except (OSError, TypeError, orjson.JSONEncodeError):
        return  # no cache: the next start builds from YAML again
