"""The two places the emulator reaches past openapi-core's public API, in one module so an upgrade that moves them
breaks here, loudly, and ``tests/test_dependency_internals.py`` says which.

- ``schema_validator``: openapi-core's public validators resolve the path and server of every request (~1 ms); the
  emulator already knows the operation, so it asks the validator's ``schema_validators_factory`` for the
  ``SchemaValidator`` of one schema (a JSON body, a parameter) once, and validates with it per request.
  ``format_checker`` is that validator's jsonschema ``FormatChecker``, which the compiled fast path reuses.
- ``response_errors``: the response validator's ``_iter_errors`` checks a status, body and headers against one
  operation without a request object (strict mode); the public ``iter_errors`` needs a full request/response pair.

Both are why openapi-core is pinned exactly in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import FormatChecker
    from jsonschema_path import SchemaPath


class OpenAPICoreChanged(RuntimeError):
    """openapi-core no longer has what this module relies on: adapt this module to the new version."""


def _require(obj: Any, attribute: str) -> Any:
    try:
        return getattr(obj, attribute)
    except AttributeError:
        import openapi_core

        raise OpenAPICoreChanged(
            f"openapi-core {openapi_core.__version__}: {type(obj).__name__} has no "
            f"{attribute!r} (emulator/core/openapi_internals.py)"
        ) from None


def schema_validator(request_validator: Any, schema: SchemaPath) -> Any:
    """openapi-core's ``SchemaValidator`` for one schema of the spec, with the request validator's formats.

    Its ``validate(value)`` raises ``InvalidSchemaValue`` (with ``schema_errors``) for a value the schema refuses.
    """
    factory = _require(request_validator, "schema_validators_factory")
    return factory.create(
        _require(request_validator, "spec"),
        schema,
        format_validators=_require(request_validator, "format_validators"),
        extra_format_validators=_require(request_validator, "extra_format_validators"),
    )


def format_checker(validator: Any) -> FormatChecker:
    """The jsonschema ``FormatChecker`` inside a ``schema_validator``."""
    return _require(_require(validator, "validator"), "format_checker")


def response_errors(
    response_validator: Any,
    status: int,
    body: bytes | None,
    headers: Mapping[str, str],
    mimetype: str,
    operation: SchemaPath,
) -> list[Exception]:
    """What is wrong with a response of ``operation``: ``ResponseNotFound`` when the status is not documented,
    else one error per problem of the body (``__cause__`` an ``InvalidSchemaValue``) or of a header."""
    from starlette.datastructures import Headers

    # openapi-core reads headers as a case-insensitive mapping with getlist: starlette's Headers is one
    readable = headers if isinstance(headers, Headers) else Headers(headers=dict(headers))
    return list(_require(response_validator, "_iter_errors")(status, body, readable, mimetype, operation))
