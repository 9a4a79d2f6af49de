"""The schemathesis suite: every check, and the examples, coverage, fuzzing and stateful phases, over one provider's
effective spec, driven through schemathesis' engine (its Python API; no shell-out).

The stateful phase follows the OpenAPI ``links`` each effective spec declares (init → presign → complete, upload →
complete → posts, upload-url → register → get/patch/delete, chunks → finalize → status). Credentials are given the
way each spec's security schemes say. Custom checks (``contracts.checks``) add the emulator's own invariants.

Some rejections depend on state no schema can express: registering an ``s3Key`` nothing was uploaded to,
completing an upload before its bytes arrived, file bytes that are not the declared kind. ``STATE_DEPENDENT`` lists,
per operation, the statuses the spec documents for exactly those cases; ``positive_data_acceptance`` accepts them
there and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import Status, events, from_schema

from contracts import checks as _checks  # noqa: F401  (registers the custom checks)
from contracts.flows import CONTRACTS
from contracts.results import Finding, ProviderResult
from contracts.target import SAFE_METHODS, ProviderTarget, Target

SUITE = "schemathesis"
# positive_data_acceptance's own defaults, kept
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

# provider -> operationId -> {why: statuses}: what a schema-valid request may still get, because of state or content
# the schema cannot express; each provider declares its own in contracts/flows/<provider>.py
STATE_DEPENDENT: dict[str, Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    name: contract.state_dependent for name, contract in CONTRACTS.items()
}

Progress = Callable[[str, int], None]  # (provider, cases so far)

# Headers that frame the HTTP message itself: a malformed one is refused by the HTTP server (uvicorn, or any proxy in
# front of a real provider) with its own plain-text 400 before the API sees the request, so a generated one tests
# the web server, not the API contract.
FRAMING_HEADERS = frozenset({"transfer-encoding", "content-length", "host", "connection", "expect", "upgrade", "te"})


def _without_framing_headers(context: Any, case: Any) -> bool:
    return not any(str(name).lower() in FRAMING_HEADERS for name in (case.headers or {}))


def _negative_multipart_reaches_the_wire(case: Any) -> bool:
    """Whether a negative multipart case still sends its mutation.

    Schemathesis serialises an empty array in a multipart body as no part at all, so a case that mutated a field
    into ``[]`` sends a request without that field, which the spec allows when the field is optional: a false
    "Invalid data should have been rejected" (seen: a multipart upload's optional text field, ``slideId`` "was
    string, became array", with a random seed of the full contract run). No bytes could tell the two apart, so such
    cases are not sent.
    """
    meta = getattr(case, "meta", None)
    if meta is None or not meta.is_negative_at(ParameterLocation.BODY):
        return True
    if not str(case.media_type or "").startswith("multipart/"):
        return True
    return not (isinstance(case.body, dict) and any(value == [] for value in case.body.values()))


def _worth_sending(context: Any, case: Any) -> bool:
    return _without_framing_headers(context, case) and _negative_multipart_reaches_the_wire(case)


def _auth(target: ProviderTarget, spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """One entry per security scheme of the spec, each carrying the key its own way."""
    auth: dict[str, dict[str, str]] = {}
    for name, scheme in spec.get("components", {}).get("securitySchemes", {}).items():
        if scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer":
            auth[name] = {"bearer": target.key}
        elif scheme.get("type") == "apiKey":
            auth[name] = {"api_key": target.key}
    return auth


def _links_among(spec: dict[str, Any], chosen: list[str]) -> bool:
    """Whether any chosen operation links to a chosen operation (else a narrowed run has no stateful phase)."""
    for op_id, operation in _operations(spec):
        if op_id not in chosen:
            continue
        for response in operation.get("responses", {}).values():
            links = response.get("links", {}) if isinstance(response, dict) else {}
            if any(link.get("operationId") in chosen for link in links.values() if isinstance(link, dict)):
                return True
    return False


def config_for(
    target: ProviderTarget,
    spec: dict[str, Any],
    *,
    max_examples: int,
    seed: int | None,
    read_only: bool = False,
    stateful: bool = True,
) -> SchemathesisConfig:
    operations = [
        {
            "include-operation-id": op_id,
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED + list(statuses)}},
        }
        for op_id, reasons in STATE_DEPENDENT.get(target.name, {}).items()
        for statuses in [tuple(sorted({s for group in reasons.values() for s in group}))]
        if _has_operation(spec, op_id)
    ]
    data: dict[str, Any] = {
        "base-url": target.base_url,
        "auth": {"openapi": _auth(target, spec)},
        # every check, including the custom ones registered by contracts.checks
        "checks": {"enabled": True, "positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        "generation": {"max-examples": max_examples, "database": "none"},
        "phases": {
            "examples": {"enabled": True, "fill-missing": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": stateful, "max-steps": 8},
        },
        # reports must reproduce: bodies stay whole; the API key is replaced by $API_KEY in curl commands instead
        "output": {"sanitization": {"enabled": False}},
        "request-timeout": 30,
        "suppress-health-check": ["all"],
    }
    if read_only:
        data["phases"]["coverage"]["unexpected-methods"] = ["OPTIONS"]
    if operations:
        data["operations"] = operations
    if seed is not None:
        data["seed"] = seed
    return SchemathesisConfig.from_dict(data)


def _operations(spec: dict[str, Any], methods: frozenset[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(operationId, operation) of the spec, optionally only those of ``methods`` (upper case)."""
    return [
        (op["operationId"], op)
        for item in spec.get("paths", {}).values()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op and (methods is None or method.upper() in methods)
    ]


def _has_operation(spec: dict[str, Any], op_id: str) -> bool:
    return any(found == op_id for found, _ in _operations(spec))


def curl_with_key_variable(curl: str, keys: tuple[str, ...]) -> str:
    """Put ``$API_KEY`` (``$OTHER_API_KEY``) where the key was: reports never carry a key, and still reproduce."""
    for key, variable in zip(keys, ("API_KEY", "OTHER_API_KEY")):
        curl = curl.replace(key, f"'\"${variable}\"'")
    return curl


def run(
    target: Target,
    provider: ProviderTarget,
    result: ProviderResult,
    *,
    max_examples: int,
    seed: int | None = None,
    progress: Progress | None = None,
    operations: tuple[str, ...] = (),
) -> None:
    """Run every phase against ``provider`` and record cases, check tallies and findings in ``result``.

    ``operations`` (operationIds) narrows the run to those operations; empty means all of them.
    """
    started = time.monotonic()
    spec = provider.spec()
    chosen = [op_id for op_id in operations if _has_operation(spec, op_id)]
    if operations and not chosen:
        result.skipped[SUITE] = f"none of the chosen operations ({', '.join(operations)}) is {provider.name}'s"
        return
    read_only = not target.allow_writes
    included = [
        op_id for op_id, _ in _operations(spec, SAFE_METHODS if read_only else None) if not chosen or op_id in chosen
    ]
    config = config_for(
        provider, spec, max_examples=max_examples, seed=seed, read_only=read_only, stateful=_links_among(spec, included)
    )
    schema = schemathesis.openapi.from_dict(spec, config=config)
    schema.hook("filter_case")(_worth_sending)
    # narrowed with exclusions: config-level operation entries (STATE_DEPENDENT) already act as includes, and
    # includes add up (either matches), where exclusions all apply
    if read_only:
        schema = schema.exclude(method=["POST", "PUT", "PATCH", "DELETE"])
    if chosen:
        others = [op_id for op_id, *_ in _operations(spec) if op_id not in chosen]
        if others:
            schema = schema.exclude(operation_id=others)
    cases = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += _record(event, provider, result)
            if progress is not None:
                progress(provider.name, cases)
        elif isinstance(event, events.NonFatalError):
            result.add(
                Finding(
                    provider.name,
                    SUITE,
                    "engine_error",
                    event.label,
                    event.info.title,
                    event.info.format(base_url_is_set=True),
                    "",
                )
            )
            result.tally(SUITE, "engine_error", ok=False)
        elif isinstance(event, events.FatalError):
            result.add(
                Finding(
                    provider.name,
                    SUITE,
                    "engine_error",
                    "(run)",
                    type(event.exception).__name__,
                    str(event.exception),
                    "",
                )
            )
            result.tally(SUITE, "engine_error", ok=False)
        elif isinstance(event, events.EngineFinished):
            for failure in event.failures:  # run-wide (after_run) checks
                result.add(
                    Finding(
                        provider.name,
                        SUITE,
                        getattr(failure, "check", "after_run"),
                        failure.operation or "(run)",
                        failure.title,
                        failure.message,
                        "",
                    )
                )
    result.cases[SUITE] = result.cases.get(SUITE, 0) + cases
    result.seconds[SUITE] = result.seconds.get(SUITE, 0.0) + time.monotonic() - started


def _record(event: events.ScenarioFinished, provider: ProviderTarget, result: ProviderResult) -> int:
    recorder = event.recorder
    for case_id, checks in recorder.checks.items():
        node = recorder.cases.get(case_id)
        operation = node.value.operation.label if node is not None else recorder.label
        for check in checks:
            if check.status == Status.SKIP:
                continue
            result.tally(SUITE, check.name, ok=check.failure_info is None)
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            result.add(
                Finding(
                    provider.name,
                    SUITE,
                    check.name,
                    failure.operation or operation,
                    failure.title,
                    failure.message,
                    curl_with_key_variable(check.failure_info.code_sample, provider.keys),
                    phase=str(event.phase.value),
                )
            )
    return len(recorder.cases)
