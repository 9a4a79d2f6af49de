"""Request and response validation against the effective spec, prepared once per operation, on first use.

openapi-core does the work. Its top-level ``validate_request`` finds the path and server on every call (and
fails on absolute ``servers`` URLs for local requests); the route already names the operation, so each
``OperationContract`` prepares openapi-core's own ``SchemaValidator`` for the operation's JSON body and each
parameter (through ``openapi_internals.schema_validator``), so a request costs one jsonschema pass instead of
~1 ms of spec resolution. Response checks (strict mode only) go through ``openapi_internals.response_errors``. Those
two reach past openapi-core's public API, which is why openapi-core is pinned exactly.

Preparation is lazy, and each piece is made once per operation, never per request: importing openapi-core alone
takes ~0.6 s, so the emulator starts serving without it. A contract reads what the raw spec says (is there a JSON
body, is it required, are there parameters) when it is made; compiles its fast path (``fastpath.py``) from the raw
schema on its first body; and builds openapi-core's validators the first time it needs one: a parameter to check,
a body the fast path does not accept (openapi-core judges every rejection), a response to check in strict mode.
The spec itself is not validated again here: ``upload-emulator specs check`` and the test suite prove every
effective spec valid OpenAPI.

Multipart and raw upload bodies are never handed to openapi-core (its multipart deserializer reads the whole
body): those are streamed by ``core.multipart`` and ``core.storage``.
"""

from __future__ import annotations

import codecs
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from emulator.core.errors import FieldError, Invalid, InvalidJSON, UnsupportedMediaType
from emulator.core.fastpath import compile_fast
from emulator.core.openapi_internals import format_checker, response_errors, schema_validator

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaValidationError
    from jsonschema_path import SchemaPath
    from openapi_core.validation.request.validators import V31RequestValidator
    from openapi_core.validation.response.validators import V31ResponseValidator


def _binary(value: Any) -> bool:
    # OpenAPI 3.1 `format: binary` rejects bytes in openapi-core (its issue 854); any bytes are binary.
    return isinstance(value, (bytes, bytearray, str))


FORMATS = {"binary": _binary}


class SpecValidator:
    """One provider's effective spec; contracts per operation come from it, and share one openapi-core ``OpenAPI``
    object and request and response validators, built when a contract first needs them."""

    def __init__(self, effective: dict[str, Any]) -> None:
        self.effective = effective

    @functools.cached_property
    def openapi(self) -> Any:
        from openapi_core import Config, OpenAPI

        # no second validation of the spec (a third of a second per provider): `specs check` and the tests prove it
        return OpenAPI.from_dict(self.effective, config=Config(spec_validator_cls=None))

    @functools.cached_property
    def requests(self) -> V31RequestValidator:
        from openapi_core.validation.request.validators import V31RequestValidator

        return V31RequestValidator(self.openapi.spec, extra_format_validators=FORMATS)

    @functools.cached_property
    def responses(self) -> V31ResponseValidator:
        from openapi_core.validation.response.validators import V31ResponseValidator

        return V31ResponseValidator(self.openapi.spec, extra_format_validators=FORMATS)

    def contract(self, path: str, method: str) -> OperationContract:
        return OperationContract(self, path, method)


def field_errors(schema_errors: Iterable[SchemaValidationError], root: str = "") -> list[FieldError]:
    """jsonschema errors as (field, message) pairs with dotted paths: ``parts.0.partNumber``.

    Messages never echo a whole request back: alternatives (anyOf/oneOf) are summarised, long values shortened.
    """
    out: list[FieldError] = []
    for err in schema_errors:
        path = [str(p) for p in err.absolute_path]
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else ""
            path = [*path, missing] if missing else path
            message = "is required"
        elif (
            isinstance(err.schema, dict)
            and "x-emulator-message" in err.schema
            and err.validator in ("anyOf", "oneOf", "not", "if", "then", "else")
        ):
            message = err.schema["x-emulator-message"]  # a rule across fields, said the way the spec says it
        elif err.validator in ("anyOf", "oneOf") and err.context:
            required = sorted(
                {
                    e.message.split("'")[1]
                    for e in err.context
                    if e.validator == "required"
                    and "'" in e.message
                    and list(e.absolute_path) == list(err.absolute_path)
                }
            )
            if required and all(e.validator == "required" for e in err.context):
                message = f"requires one of: {', '.join(required)}"
            elif err.validator == "oneOf" and not err.context:
                message = "matches more than one of the allowed forms"
            else:
                deepest = max(err.context, key=lambda e: len(e.absolute_path))
                if len(deepest.absolute_path) > len(err.absolute_path):
                    path = [str(p) for p in deepest.absolute_path]
                    message = _short(deepest.message)
                else:
                    message = "does not match any of the allowed forms"
        elif err.validator in ("not", "if", "then", "else") or err.validator in ("anyOf", "oneOf"):
            message = (
                "does not match the allowed forms"
                if err.validator != "oneOf"
                else "matches more than one of the allowed forms"
            )
        else:
            message = _short(err.message)
        name = ".".join(path)
        name = f"{root}.{name}" if root and name else (name or root or "body")
        out.append(FieldError(name, message))
    return out


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit // 2] + " … " + message[-limit // 2 :]


class OperationContract:
    """One operation's request (and, in strict mode, response) checks; see the module docstring for when each
    piece is prepared."""

    def __init__(self, spec: SpecValidator, path: str, method: str) -> None:
        self._spec = spec
        self._path, self._method = path, method.lower()
        effective = spec.effective
        path_item = _deref(effective, effective["paths"][path])
        operation = _deref(effective, path_item[self._method])
        self.has_parameters = "parameters" in operation or "parameters" in path_item
        request_body = _deref(effective, operation.get("requestBody", {}))
        content = _deref(effective, request_body.get("content", {}))
        self.has_json_body = "requestBody" in operation and "application/json" in content
        self.body_required = self.has_json_body and request_body.get("required", False) is True
        media = _deref(effective, content["application/json"]) if self.has_json_body else {}
        self._body_schema: Any = media.get("schema")
        self._has_body_schema = "schema" in media

    @functools.cached_property
    def _operation(self) -> SchemaPath:
        return self._spec.openapi.spec / "paths" / self._path / self._method

    @functools.cached_property
    def _body(self) -> Any:
        """openapi-core's own SchemaValidator for the JSON body (building one resolves $refs and deep-copies a format
        checker: ~1 ms, where validating a small body takes ~30 µs), or None when the operation has no body schema."""
        if not self._has_body_schema:
            return None
        return schema_validator(
            self._spec.requests, self._operation / "requestBody" / "content" / "application/json" / "schema"
        )

    @functools.cached_property
    def _fast(self) -> Callable[[Any], Any] | None:
        """The compiled accept-only check of the JSON body (openapi-core's format checker only if it has a format)."""
        if not self._has_body_schema:
            return None
        return compile_fast(self._body_schema, self._spec.effective, lambda: format_checker(self._body))

    @functools.cached_property
    def _params(self) -> list[_Param]:
        if not self.has_parameters:
            return []
        path_item = self._spec.openapi.spec / "paths" / self._path
        return [
            _Param.build(self._spec.requests, param, self._spec.effective)
            for param in _parameters(self._operation, path_item)
        ]

    def parameters(self, query: Mapping[str, Any], path: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        """Validate query, path and header parameters; raise ``Invalid`` naming each bad one."""
        if not self.has_parameters or not self._params:
            return
        sources = {"query": query, "path": path, "header": headers}
        errors: list[FieldError] = []
        for param in self._params:
            errors += param.check(sources[param.location])
        if errors:
            raise Invalid(_summary(errors), errors=errors)

    def json_body(self, raw: bytes, content_type: str | None, normalize: Callable[[Any], Any] | None = None) -> Any:
        """Parse and validate a JSON body; return the parsed value.

        ``normalize`` (a handler's, see ``Handler.normalize``) sees the parsed value before validation and may map
        an undocumented form an official client sends onto the documented one.
        """
        mimetype = (content_type or "").split(";")[0].strip().lower()
        if not raw and not self.body_required:
            return {}
        if not raw:
            raise Invalid("Request body is required (a JSON object).", errors=[FieldError("body", "is required")])
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json, got {mimetype or 'none'}.",
                errors=[FieldError("Content-Type", "must be application/json")],
            )
        try:
            # strict UTF-8 (a BOM allowed): json.loads(bytes) would let encoded surrogates (ED A0 80) through; the
            # BOM is cut here because the "utf-8-sig" codec is written in Python and "utf-8" in C
            value = _DECODER.decode((raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw).decode("utf-8"))
        except _NotJSONConstant as exc:
            raise InvalidJSON(
                f"Request body is not valid JSON: {exc} is not a JSON value.",
                errors=[FieldError("body", f"contains {exc}, which JSON does not allow")],
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise InvalidJSON(
                f"Request body is not valid JSON{where}.", errors=[FieldError("body", "is not valid JSON")]
            ) from None
        except ValueError:  # an integer of more than 4300 digits: Python refuses to convert it
            raise InvalidJSON(
                "Request body is not valid JSON: a number in it has too many digits.",
                errors=[FieldError("body", "contains a number with too many digits")],
            ) from None
        if normalize is not None:
            value = normalize(value)
        if not self._has_body_schema:
            return value
        if self._fast is not None:
            try:
                self._fast(value)
                return value  # accepted by the compiled check (see fastpath.py: it never accepts more)
            except Exception:  # noqa: BLE001 - any doubt goes to openapi-core, whose verdict counts
                pass
        from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

        try:
            self._body.validate(value)
        except InvalidSchemaValue as exc:
            errors = field_errors(exc.schema_errors)
            raise Invalid(_summary(errors), errors=errors) from None
        except RecursionError:
            raise Invalid(
                "Request body is nested too deeply.", errors=[FieldError("body", "is nested too deeply")]
            ) from None
        return value

    def response_problems(self, status: int, body: bytes, headers: Mapping[str, str], content_type: str) -> list[str]:
        """Ways in which a response the emulator is about to send departs from the spec (strict mode)."""
        from openapi_core.templating.responses.exceptions import ResponseNotFound
        from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

        mimetype = (content_type or "").split(";")[0].strip()
        problems: list[str] = []
        errors = response_errors(self._spec.responses, status, body, headers, mimetype, self._operation)
        if any(isinstance(err, ResponseNotFound) for err in errors):
            return [f"status {status} is not documented"]
        for err in errors:
            cause = err.__cause__
            if isinstance(cause, InvalidSchemaValue):
                problems += [f"{fe.field}: {fe.message}" for fe in field_errors(cause.schema_errors)]
            else:
                problems.append(f"{type(err).__name__}: {cause or err}")
        return problems


class _NotJSONConstant(ValueError):
    pass


def _js_number(text: str) -> float | int:
    """A JSON number as the providers' (Node) servers hold it: ``604.0`` is the number 604, echoed and used as
    ``604`` (in a part URL, a size), never ``604.0``. Beyond 2**53 a number stays a float, as in JavaScript."""
    value = float(text)
    if value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); Python accepts them, the providers' JavaScript servers do not
    raise _NotJSONConstant(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_js_number)  # built once, not per body


def _deref(spec: dict[str, Any], node: Any) -> Any:
    """``node``, or what its (local) ``$ref`` points at, in the raw spec."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = spec
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _parameters(operation: SchemaPath, path_item: SchemaPath) -> list[SchemaPath]:
    """Operation parameters, then path-item ones not overridden (same rule as openapi-core)."""
    seen: set[tuple[str, str]] = set()
    out: list[SchemaPath] = []
    for owner in (operation, path_item):
        if "parameters" not in owner:
            continue
        for param in owner / "parameters":
            key = ((param / "name").read_str(), (param / "in").read_str())
            if key not in seen:
                seen.add(key)
                out.append(param)
    return out


class _Param:
    """One parameter, prepared once: where it is, whether it is required, how to type it, its validator."""

    def __init__(
        self,
        name: str,
        location: str,
        required: bool,
        types: set[str],
        validator: Any,
        fast: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name, self.location, self.required, self.types, self.validator = name, location, required, types, validator
        self.fast = fast  # the compiled accept-only check, as for JSON bodies (fastpath.py)

    @classmethod
    def build(cls, requests: V31RequestValidator, param: SchemaPath, spec: dict[str, Any]) -> _Param:
        schema = param / "schema"
        with schema.resolve() as resolved:
            contents = resolved.contents
        declared = contents.get("type", "string") if isinstance(contents, dict) else "string"
        types = {declared} if isinstance(declared, str) else set(declared)
        validator = schema_validator(requests, schema)
        fast = compile_fast(contents, spec, lambda: format_checker(validator))
        return cls(
            (param / "name").read_str(),
            (param / "in").read_str(),
            (param / "required").read_bool(default=False) if "required" in param else False,
            types,
            validator,
            fast,
        )

    def check(self, source: Mapping[str, Any]) -> list[FieldError]:
        where = f"{self.location} parameter"
        if self.name not in source:
            return [FieldError(self.name, f"is required ({where})")] if self.required else []
        if "array" in self.types and hasattr(source, "getlist"):
            value: Any = source.getlist(self.name)
        else:
            value = self._cast(source[self.name])
        if self.fast is not None:
            try:
                self.fast(value)
                return []  # accepted by the compiled check, which never accepts more than openapi-core
            except Exception:  # noqa: BLE001 - any doubt goes to openapi-core, whose verdict counts
                pass
        from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

        try:
            self.validator.validate(value)
        except InvalidSchemaValue as exc:
            return [
                FieldError(fe.field, f"{fe.message} ({where})") for fe in field_errors(exc.schema_errors, self.name)
            ]
        return []

    def _cast(self, raw: str) -> Any:
        if "integer" in self.types and raw.strip().lstrip("+-").isdigit():
            try:
                return int(raw)
            except ValueError:  # more digits than int() takes: left a string, refused as not an integer
                return raw
        if "number" in self.types:
            try:
                return float(raw)
            except ValueError:
                return raw
        if "boolean" in self.types and raw in ("true", "false"):
            return raw == "true"
        return raw


def _summary(errors: list[FieldError]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first.field}: {first.message}{more}"
