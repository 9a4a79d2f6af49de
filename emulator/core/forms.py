"""multipart/form-data fields checked against the operation's schema in the effective spec.

Form fields arrive as text. openapi-core would validate ``"true"`` against ``type: boolean`` and fail, and it would
need the whole body in memory; so each text field is converted by the type its schema declares (booleans,
integers, numbers, JSON arrays and objects, and strings whose ``contentMediaType`` is ``application/json``, which
are parsed and checked against their ``contentSchema``), file parts stand in as their file names, and the result is
validated with the OpenAPI 3.1 dialect of jsonschema, compiled once per operation, when its first form arrives
(importing that validator takes a third of a second: serving starts without it).
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from emulator.core.errors import FieldError, Invalid
from emulator.core.multipart import Form
from emulator.core.validation import field_errors

if TYPE_CHECKING:
    from openapi_schema_validator import OAS31Validator
    from referencing import Registry

SPEC_URI = "urn:upload-emulator:spec"


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class FormContract:
    """Built once per multipart operation from the effective spec."""

    def __init__(self, effective: dict[str, Any], path: str, method: str) -> None:
        self._spec = effective
        pointer = _pointer("paths", path, method.lower(), "requestBody", "content", "multipart/form-data", "schema")
        self._pointer = pointer
        self.properties: dict[str, dict[str, Any]] = {}
        self.required: set[str] = set()
        self._collect(self._resolve(self._at(pointer)))
        self.file_fields = {
            name
            for name, schema in self.properties.items()
            if schema.get("format") == "binary"
            or schema.get("contentMediaType", "").startswith(("image/", "video/", "application/octet"))
        }

    @functools.cached_property
    def _registry(self) -> Registry:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        return Registry().with_resource(SPEC_URI, Resource(contents=self._spec, specification=DRAFT202012))

    @functools.cached_property
    def _validator(self) -> OAS31Validator:
        from openapi_schema_validator import OAS31Validator, oas31_format_checker

        return OAS31Validator(
            {"$ref": SPEC_URI + self._pointer}, registry=self._registry, format_checker=oas31_format_checker
        )

    def _at(self, pointer: str) -> Any:
        node: Any = self._spec
        for part in pointer.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _resolve(self, schema: Any) -> dict[str, Any]:
        while isinstance(schema, dict) and "$ref" in schema:
            schema = self._at(schema["$ref"])
        return schema if isinstance(schema, dict) else {}

    def _collect(self, schema: dict[str, Any]) -> None:
        for name, prop in schema.get("properties", {}).items():
            self.properties.setdefault(name, self._resolve(prop))
        self.required.update(schema.get("required", []))
        for sub in schema.get("allOf", []):
            self._collect(self._resolve(sub))

    def _types(self, name: str) -> set[str]:
        schema = self.properties.get(name, {})
        declared = schema.get("type", "string")
        types = {declared} if isinstance(declared, str) else set(declared)
        for alternative in schema.get("oneOf", []) + schema.get("anyOf", []):
            alt_type = self._resolve(alternative).get("type")
            types |= {alt_type} if isinstance(alt_type, str) else set(alt_type or [])
        return types

    def _convert(self, name: str, values: list[str], errors: list[FieldError]) -> Any:
        types = self._types(name)
        schema = self.properties.get(name, {})
        if "array" in types:
            if len(values) == 1 and values[0].lstrip().startswith("["):
                return self._json(name, values[0], errors)
            return values
        raw = values[-1]
        if "boolean" in types and raw in ("true", "false"):
            return raw == "true"
        if "integer" in types and raw.strip().lstrip("-").isdigit() and len(raw) <= 4000:
            return int(raw)  # (longer digit strings stay text, refused as not an integer: int() would raise)
        if "number" in types:
            try:
                return float(raw) if "string" not in types else raw
            except ValueError:
                pass
        if "object" in types:
            return self._json(name, raw, errors)
        if schema.get("contentMediaType") == "application/json":
            parsed = self._json(name, raw, errors)
            if "contentSchema" in schema and parsed is not _BAD:
                content_schema = (
                    self._resolve(schema["contentSchema"])
                    if "$ref" in schema["contentSchema"]
                    else schema["contentSchema"]
                )
                from openapi_schema_validator import OAS31Validator, oas31_format_checker

                validator = OAS31Validator(content_schema, format_checker=oas31_format_checker, registry=self._registry)
                errors += field_errors(validator.iter_errors(parsed), name)
            return raw
        return raw

    def _json(self, name: str, raw: str, errors: list[FieldError]) -> Any:
        try:
            return json.loads(raw, parse_constant=_not_json)
        except (ValueError, RecursionError) as exc:  # ValueError: also NaN/Infinity, or a number of 4300+ digits
            where = f" (line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            errors.append(FieldError(name, f"must be valid JSON{where}"))
            return _BAD

    def validate(self, form: Form) -> dict[str, Any]:
        """Typed values of the text fields (and file names of the files); raise ``Invalid`` naming bad fields."""
        # A single-value field sent more than once is refused, never resolved by picking one: servers' form parsers
        # disagree (the web's FormData.get keeps the first, busboy-style parsers the last, multer makes an array),
        # so whichever the emulator chose, a client could come to depend on an accident of it.
        errors = [
            FieldError(name, f"was sent {len(raw)} times; it takes one value")
            for name, raw in form.fields.items()
            if len(raw) > 1 and "array" not in self._types(name)
        ]
        values: dict[str, Any] = {
            name: self._convert(name, raw, errors)
            for name, raw in form.fields.items()
            if not any(e.field == name for e in errors)
        }
        instance = {name: value for name, value in values.items() if value is not _BAD}
        for name, parts in form.files.items():
            instance[name] = parts[-1].filename or name
        errors += [
            e
            for e in field_errors(self._validator.iter_errors(instance))
            if not any(e.field == bad.field for bad in errors)
        ]
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise Invalid(f"{errors[0].field}: {errors[0].message}{more}", errors=errors)
        return instance


_BAD: Any = object()


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")  # NaN and Infinity: Python accepts them, JSON does not
