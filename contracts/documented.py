"""The providers' own examples, replayed verbatim: request examples from the published specs, and the curl commands
of the provider documentation, with only the host, the key and the bytes of a file placeholder filled in.

Each replay declares the status it must get. A 2xx response must have the shape of the documented response example:
every field it sends is documented, with the documented JSON type, and a documented field is absent only where
the published schema makes it optional. A documented error example (a published 401 body) must come back byte for
byte.

Examples whose values name state no fresh account has (an object key that was never issued, an account id no key has
connected) get the refusal their
spec documents for that state; a prepared replay then keeps every documented value except the state-bound ones,
which come from a real upload, and must succeed with the documented shape.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts.flows import CONTRACTS
from contracts.flows.base import curl
from contracts.flows.samples import PDF, image, video
from contracts.results import Finding, ProviderResult
from contracts.target import ProviderTarget, Target
from emulator.core.specs import HTTP_METHODS
from emulator.providers import PROVIDERS

SUITE = "documented"
KEY_PLACEHOLDERS = ("<api-key>", "YOUR_API_KEY", "<API_KEY>")

# (provider, operationId) -> what each provider declares in contracts/flows/<provider>.py: the curl examples of its
# documentation, documented requests whose values name state a fresh account lacks, and how to make that state
CURL_EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {name: c.curl_examples for name, c in CONTRACTS.items()}
STATE_BOUND: dict[tuple[str, str], tuple[int, str]] = {
    (name, op_id): bound for name, c in CONTRACTS.items() for op_id, bound in c.state_bound.items()
}


@dataclass
class Replay:
    provider: str
    name: str
    op_id: str
    method: str
    path: str  # after the provider's base URL, parameters filled in
    expect_status: int
    json_body: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    keyed: bool = True
    example: Any = None  # the documented response example
    exact: bool = False  # the response body must equal ``example`` (a documented error, verbatim)
    schema: dict[str, Any] | None = None  # the documented response schema (which fields are required)
    why: str = ""
    prepare: Callable[[httpx.Client, ProviderTarget], dict[str, Any]] | None = None  # state-bound values


# --- examples from the published specs -----------------------------------------------------------------------------


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _example_of(spec: dict[str, Any], media: dict[str, Any]) -> Any:
    """A media type's documented example: ``example``, the first of ``examples``, or one built from the
    property-level examples of its schema (some published specs document responses that way)."""
    if "example" in media:
        return media["example"]
    if media.get("examples"):
        return next(iter(media["examples"].values()))["value"]
    return _from_property_examples(spec, media.get("schema"))


def _from_property_examples(spec: dict[str, Any], schema: Any) -> Any:
    schema = _resolve(spec, schema)
    if not isinstance(schema, dict):
        return None
    if "example" in schema:
        return schema["example"]
    if schema.get("type") == "object" and schema.get("properties"):
        built = {name: _from_property_examples(spec, sub) for name, sub in schema["properties"].items()}
        built = {k: v for k, v in built.items() if v is not None}
        return built or None
    return None


def _placeholder_file(text: str) -> tuple[str, bytes, str]:
    """Bytes for a documented file placeholder ("(binary contents of /path/to/image.jpg)", "@/path/x.mp4")."""
    match = re.search(r"([\w.-]+)\.(jpe?g|png|webp|gif|mp4|mov|pdf)\b", text, re.IGNORECASE)
    ext = (match.group(2).lower() if match else "png").replace("jpeg", "jpg")
    name = f"{match.group(1)}.{ext}" if match else "image.png"
    if ext in ("mp4", "mov"):
        return name, video(1, 2048), "video/mp4"
    if ext == "pdf":
        return name, PDF, "application/pdf"
    return name, image(ext), {"jpg": "image/jpeg"}.get(ext, f"image/{ext}")


def _success(operation: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The documented success status (``default`` reads as 200, Fastify's) and its response object."""
    for code, response in operation.get("responses", {}).items():
        if code.startswith("2") or code == "default":
            return (200 if code == "default" else int(code)), response
    return 200, {}


def spec_replays(provider: str) -> list[Replay]:
    published = PROVIDERS[provider].specs.published
    effective = PROVIDERS[provider].specs.effective
    replays: list[Replay] = []
    for path, item in published.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            op_id = operation["operationId"]
            filled = _fill_path(published, path, operation)
            status, success = _success(operation)
            media = next(iter(_resolve(published, success).get("content", {}).values()), {})
            success_example = _example_of(published, media) if media else None
            # which fields are required, and which may be null, the effective spec says (it only adds to the
            # published one: an overlay may require a documented field, or let it be null when unset)
            _, effective_success = _success(effective["paths"][path][method])
            schema = next(iter(_resolve(effective, effective_success).get("content", {}).values()), {}).get("schema")
            body = _request_example(published, operation)
            if body is not None:
                kind, value = body
                expected, why = STATE_BOUND.get((provider, op_id), (status, ""))
                replay = Replay(
                    provider,
                    f"{op_id}: request example",
                    op_id,
                    method.upper(),
                    filled,
                    expected,
                    example=success_example if expected == status else None,
                    schema=schema,
                    why=why,
                )
                _put_body(replay, kind, value)
                replays.append(replay)
                if (provider, op_id) in PREPARED:
                    prepared = Replay(
                        provider,
                        f"{op_id}: request example, state-bound values from a real upload",
                        op_id,
                        method.upper(),
                        filled,
                        status,
                        example=success_example,
                        schema=schema,
                        prepare=PREPARED[(provider, op_id)],
                    )
                    _put_body(prepared, kind, value)
                    replays.append(prepared)
            unauthorized = operation.get("responses", {}).get("401")
            if unauthorized is not None:
                media401 = next(iter(_resolve(published, unauthorized).get("content", {}).values()), {})
                example401 = _example_of(published, media401) if media401 else None
                if example401 is not None:
                    replays.append(
                        Replay(
                            provider,
                            f"{op_id}: documented 401 body",
                            op_id,
                            method.upper(),
                            filled,
                            401,
                            keyed=False,
                            example=example401,
                            exact=True,
                        )
                    )
    return replays


def _fill_path(spec: dict[str, Any], path: str, operation: dict[str, Any]) -> str:
    for param in operation.get("parameters", []):
        param = _resolve(spec, param)
        if param.get("in") == "path":
            value = param.get("example", param.get("schema", {}).get("example", "example"))
            path = path.replace("{" + param["name"] + "}", str(value))
    return path


def _request_example(spec: dict[str, Any], operation: dict[str, Any]) -> tuple[str, Any] | None:
    content = _resolve(spec, operation.get("requestBody", {})).get("content", {})
    for kind, media in content.items():
        example = _example_of(spec, media)
        if example is None and kind == "multipart/form-data":
            # a binary field is documented by its description only: a file of the format it names
            props = _resolve(spec, media.get("schema", {})).get("properties", {})
            example = {
                name: f"({sub.get('description', 'image')})"
                for name, sub in props.items()
                if sub.get("format") == "binary"
            } or None
        if example is not None:
            return kind, example
    return None


def _put_body(replay: Replay, kind: str, value: Any) -> None:
    if kind == "multipart/form-data":
        for name, text in value.items():
            if isinstance(text, str) and (text.startswith("(") or text.startswith("@")):
                replay.files[name] = _placeholder_file(text)
            else:
                replay.form[name] = text if isinstance(text, str) else json.dumps(text)
    else:
        replay.json_body = value


# --- curl examples of the documentation ----------------------------------------------------------------------------


def curl_replays(provider: str) -> list[Replay]:
    specs = PROVIDERS[provider].specs
    documented_base = specs.published["servers"][0]["url"].rstrip("/")
    replays = []
    for source, command in CURL_EXAMPLES.get(provider, ()):
        method, url, headers, data, form = _parse_curl(command)
        path = url[len(documented_base) :] if url.startswith(documented_base) else httpx.URL(url).path
        path = path[len(specs.server_path) :] if path.startswith(specs.server_path) else path
        op_id, operation = _operation(provider, method, path)
        status, success = _success(operation)
        media = next(iter(success.get("content", {}).values()), {})
        expected, why = STATE_BOUND.get((provider, op_id), (status, ""))
        replay = Replay(
            provider,
            f"{source}: curl example",
            op_id,
            method,
            path,
            expected,
            example=_example_of(specs.effective, media) if expected == status and media else None,
            schema=media.get("schema"),
            why=why,
        )
        replay.keyed = any(p in value for value in headers.values() for p in KEY_PLACEHOLDERS)
        if data is not None:
            replay.json_body = json.loads(data)
        for name, value in form:
            if value.startswith("@"):
                replay.files[name] = _placeholder_file(value)
            else:
                replay.form[name] = value
        replays.append(replay)
    return replays


def _parse_curl(command: str) -> tuple[str, str, dict[str, str], str | None, list[tuple[str, str]]]:
    tokens = shlex.split(command.replace("\\\n", " "))
    assert tokens[0] == "curl"
    method, url, headers, data, form = "GET", "", {}, None, []
    args = iter(tokens[1:])
    for token in args:
        if token in ("-X", "--request"):
            method = next(args).upper()
        elif token == "--url":
            url = next(args)
        elif token in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif token in ("-d", "--data", "--data-raw", "--data-binary"):
            data = next(args)
        elif token in ("-F", "--form"):
            name, _, value = next(args).partition("=")
            form.append((name, value))
        elif not token.startswith("-"):
            url = token
    if data is not None or form:
        method = method if method != "GET" else "POST"
    return method, url, headers, data, form


def _operation(provider: str, method: str, path: str) -> tuple[str, dict[str, Any]]:
    for op_id, op_method, op_path, operation in PROVIDERS[provider].specs.operations():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", op_path) + "$"
        if op_method == method and re.match(pattern, path):
            return op_id, operation
    raise LookupError(f"{provider}: no operation for {method} {path}")


PREPARED: dict[tuple[str, str], Callable[[httpx.Client, ProviderTarget], dict[str, Any]]] = {
    (name, op_id): prepare for name, c in CONTRACTS.items() for op_id, prepare in c.prepared.items()
}


# --- comparing with the documented example -------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def shape_problems(
    example: Any, actual: Any, schema: Any = None, spec: dict[str, Any] | None = None, where: str = "$"
) -> list[str]:
    """How ``actual`` departs from the shape of ``example``: undocumented fields, other JSON types, and documented
    fields that are missing although the schema requires them."""
    schema = _resolve(spec or {}, schema) if schema is not None else {}
    types = schema.get("type") if isinstance(schema, dict) else None
    if actual is None and isinstance(types, list) and "null" in types:  # a documented field, null when unset
        return []
    if _json_type(example) != _json_type(actual):
        return [f"{where}: documented as {_json_type(example)}, got {_json_type(actual)}"]
    problems: list[str] = []
    if isinstance(example, dict):
        properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
        required = set(schema.get("required", [])) if isinstance(schema, dict) else set()
        problems += [f"{where}.{name}: not in the documented example" for name in actual if name not in example]
        problems += [
            f"{where}.{name}: documented and required, but missing"
            for name in example
            if name not in actual and name in required
        ]
        for name, value in example.items():
            if name in actual:
                problems += shape_problems(value, actual[name], properties.get(name), spec, f"{where}.{name}")
    elif isinstance(example, list) and example:
        items = schema.get("items") if isinstance(schema, dict) else None
        for index, item in enumerate(actual):
            problems += shape_problems(example[0], item, items, spec, f"{where}[{index}]")
    return problems


# --- running -------------------------------------------------------------------------------------------------------


def replays(provider: str) -> list[Replay]:
    return spec_replays(provider) + curl_replays(provider)


def run(target: Target, provider_name: str, result: ProviderResult) -> None:
    started = time.monotonic()
    provider = target.providers[provider_name]
    effective = PROVIDERS[provider_name].specs.effective
    count = 0
    with httpx.Client(timeout=60) as http:
        for replay in replays(provider_name):
            if not target.allows(replay.method) and replay.keyed:
                result.skipped.setdefault(SUITE, "documented uploads are sent only with --allow-writes")
                continue
            count += 1
            try:
                _play(http, provider, replay, effective, result)
            except (httpx.HTTPError, LookupError, ValueError, TypeError) as exc:
                # the replay could not even be made (a preparing step failed, an answer lacked a field): a finding
                result.tally(SUITE, "documented_error", ok=False)
                result.add(
                    Finding(
                        provider_name,
                        SUITE,
                        "documented_error",
                        f"{replay.method} {replay.path}",
                        replay.name,
                        f"{type(exc).__name__}: {exc}",
                        "",
                        phase=replay.op_id,
                    )
                )
    result.cases[SUITE] = result.cases.get(SUITE, 0) + count
    result.seconds[SUITE] = result.seconds.get(SUITE, 0.0) + time.monotonic() - started


def _play(
    http: httpx.Client, provider: ProviderTarget, replay: Replay, spec: dict[str, Any], result: ProviderResult
) -> None:
    body, form = replay.json_body, replay.form
    if replay.prepare is not None:  # state-bound values: into the JSON body, or the multipart form
        values = replay.prepare(http, provider)
        if body is not None:
            body = {**body, **values}
        else:
            form = {**form, **values}
    headers = provider.auth_headers() if replay.keyed else {}
    request = http.build_request(
        replay.method,
        provider.base_url + replay.path,
        headers=headers,
        json=body if body is not None else None,
        data=form or None,
        files=replay.files or None,
    )
    response = http.send(request)
    operation = f"{replay.method} {replay.path}"

    def report(check: str, ok: bool, message: str) -> None:
        result.tally(SUITE, check, ok=ok)
        if not ok:
            result.add(
                Finding(
                    provider.name,
                    SUITE,
                    check,
                    operation,
                    replay.name,
                    message,
                    curl(request, provider.keys),
                    phase=replay.op_id,
                )
            )

    why = f" ({replay.why})" if replay.why else ""
    report(
        "documented_status",
        response.status_code == replay.expect_status,
        f"expected {replay.expect_status}{why}, got {response.status_code}: {response.text[:400]}",
    )
    if response.status_code != replay.expect_status or replay.example is None:
        return
    try:
        actual = response.json()
    except ValueError:
        report("documented_shape", False, f"the documented example is JSON; the response is not: {response.text[:200]}")
        return
    if replay.exact:
        report(
            "documented_body",
            actual == replay.example,
            f"documented body {json.dumps(replay.example)}, got {json.dumps(actual)}",
        )
    else:
        problems = shape_problems(replay.example, actual, replay.schema, spec)
        report("documented_shape", not problems, "; ".join(problems))
