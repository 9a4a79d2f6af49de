"""A compiled fast path for accepting valid bodies; openapi-core stays the judge of every rejection.

openapi-core validates through jsonschema, which walks the schema keyword by keyword: ~100 µs for a small JSON
body, more than the whole rest of a request. fastjsonschema compiles the same schema to Python code (~5 µs). The
contract (``validation.OperationContract``) asks the compiled check first; only when it says no does openapi-core
run, and openapi-core's answer (and its error messages) is the one that counts — so the fast path can never
reject what openapi-core accepts, and ``tests/test_fastpath.py`` checks with hypothesis that it never accepts what
openapi-core rejects.

The compiled schema is the operation's schema with every ``$ref`` inlined, OpenAPI-only annotations dropped, and
every ``format`` checked by the very format checker openapi-core uses (asked for only when the schema has a
``format``, so a schema without one compiles without loading openapi-core). A schema using a keyword
fastjsonschema does not implement (JSON Schema 2020-12 additions) gets no fast path at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import fastjsonschema

if TYPE_CHECKING:
    from jsonschema import FormatChecker

ANNOTATIONS = frozenset(
    {
        "example",
        "examples",
        "description",
        "deprecated",
        "xml",
        "externalDocs",
        "discriminator",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
        "title",
        "default",
        "$comment",
    }
)
UNSUPPORTED = frozenset(
    {
        "prefixItems",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "$defs",
        "minContains",
        "maxContains",
        "$dynamicRef",
        "$anchor",
        "$dynamicAnchor",
        "patternProperties",
    }
)
SCHEMA_MAPS = frozenset({"properties", "definitions"})  # keys of these are names, not keywords
SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
SCHEMA_VALUES = frozenset({"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"})


class Unsupported(Exception):
    """The schema uses something the fast path does not reproduce exactly."""


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise Unsupported(f"external $ref {ref}")
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _inline(schema: Any, spec: dict[str, Any], refs: tuple[str, ...], formats: set[str]) -> Any:
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise Unsupported(f"schema is a {type(schema).__name__}")
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in refs:
            raise Unsupported(f"recursive $ref {ref}")
        target = _inline(_resolve(spec, ref), spec, (*refs, ref), formats)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        siblings = _inline(rest, spec, refs, formats)
        return {"allOf": [target, siblings]} if siblings else target
    out: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []  # checks that join ``allOf`` (see ``_none_of``)
    for key, value in schema.items():
        if key in UNSUPPORTED:
            raise Unsupported(key)
        if key in ANNOTATIONS or key.startswith("x-"):
            continue
        if key == "format":
            formats.add(value)
            out[key] = value
        elif key in SCHEMA_MAPS:
            out[key] = {name: _inline(sub, spec, refs, formats) for name, sub in value.items()}
        elif key in SCHEMA_LISTS:
            out[key] = [_inline(sub, spec, refs, formats) for sub in value]
        elif key == "not" and (pattern := _none_of(value)) is not None:
            extra.append({"pattern": pattern})
        elif key in SCHEMA_VALUES:
            out[key] = _inline(value, spec, refs, formats)
        else:
            out[key] = value
    if extra:
        out["allOf"] = [*out.get("allOf", []), *extra]
    return out


def _none_of(schema: Any) -> str | None:
    """``not: {const: S}`` or ``not: {enum: [S, ...]}`` of strings as the same check by a regular expression (a
    string must not be exactly one of them; anything else passes, as with ``not``). fastjsonschema checks ``not`` by
    raising and catching an exception when the value is valid, ~4 µs each: the specs' file-name check alone did that
    on every upload request."""
    if not isinstance(schema, dict) or len(schema) != 1:
        return None
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        return None
    return "^(?!(?:" + "|".join(re.escape(v) for v in values) + r")\Z)"


def compile_fast(
    schema: Any, spec: dict[str, Any], format_checker: Callable[[], FormatChecker]
) -> Callable[[Any], Any] | None:
    """A compiled validator for ``schema`` (raising on invalid data), or None when no exact fast path exists.

    ``format_checker()`` gives openapi-core's format checker for this schema; it is called only if a ``format``
    appears in it.
    """
    formats: set[str] = set()
    try:
        inlined = _inline(schema, spec, (), formats)
    except Unsupported:
        return None
    # every format is checked exactly as openapi-core's checker does; formats it does not know pass, as there
    checks = {}
    if formats:
        checker = format_checker()
        checks = {name: (lambda value, _name=name: checker.conforms(value, _name)) for name in formats}
    try:
        return fastjsonschema.compile({"$schema": "http://json-schema.org/draft-07/schema#", **inlined}, formats=checks)
    except (fastjsonschema.JsonSchemaDefinitionException, TypeError, ValueError):
        return None
