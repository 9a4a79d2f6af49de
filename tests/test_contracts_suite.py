"""The contract suite itself: a small clean run through the CLI, and proof that it catches drift.

Each drift test starts a second emulator with one deliberate deviation (a renamed response field, a missing
rate-limit header, a 500 on one operation, an ETag that does not match its bytes), points the suite at it with
``--base-url`` semantics, and checks that the run fails naming the check and the operation. The clean run shows
the same suite finds nothing on the emulator as it is.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.report import markdown
from contracts.results import Finding, ProviderResult, RunResult
from contracts.runner import Options, run
from contracts.target import LocalServer, contract_settings, start_local
from emulator import Settings
from emulator.core.provider import Call, Reply
from emulator.providers import PROVIDERS
from emulator.testing import ControlClient
from tests.helpers import child_pids, run_command

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

SMALL: dict[str, Any] = {"max_examples": 3, "flow_examples": 5, "seed": 1}


@pytest.fixture
def deviant() -> Iterator[Any]:
    """Start a second emulator (generous limits, optionally a wrapped app); stopped after the test."""
    servers: list[LocalServer] = []

    def start(wrap: Any = None, settings: Settings | None = None) -> LocalServer:
        server = start_local(settings or contract_settings(list(PROVIDERS)), wrap)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _named(result: RunResult, provider: str, check: str, operation: str) -> list[Finding]:
    return [f for f in result.findings if f.provider == provider and f.check == check and operation in f.operation]


def without_header(app: ASGIApp, path_suffix: str, header: bytes) -> ASGIApp:
    """A deviation: responses to ``path_suffix`` lose ``header`` (pure ASGI, the emulator otherwise unchanged)."""

    async def deviating(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(path_suffix):
            await app(scope, receive, send)
            return

        async def strip(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [(k, v) for k, v in message["headers"] if k.lower() != header]}
            await send(message)

        await app(scope, receive, strip)

    return deviating


def as_real_provider(app: ASGIApp) -> ASGIApp:
    """One provider at the root with no control plane: to the suite, a real provider."""

    async def provider_only(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/_emulator"):
            await JSONResponse({"message": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await app(scope, receive, send)

    return provider_only


def test_a_real_provider_gets_only_safe_requests_without_allow_writes(deviant):
    server = deviant(as_real_provider, Settings(provider="segmentflow"))
    key = PROVIDERS["segmentflow"].keys.example
    result = run(Options(providers=["segmentflow"], base_url=server.url, api_keys=[key], **SMALL))
    assert not result.failed, [(f.check, f.operation) for f in result.findings]
    sent = server.app.state.runtime.journal.query()
    assert sent and {entry.method for entry in sent} <= {"GET", "HEAD", "OPTIONS"}
    assert {e.operation for e in sent} >= {"listAssets", "getAsset"}
    [provider] = result.providers
    assert provider.cases["schemathesis"] > 0 and set(provider.skipped) == {"flows", "documented"}
    assert any("read-only" in note for note in result.notes)


def test_cli_run_against_the_emulator_passes_and_writes_junit_and_markdown(tmp_path):
    junit, report = tmp_path / "contracts.xml", tmp_path / "contracts.md"
    outcome = run_command(
        [
            "contract",
            "--max-examples",
            "3",
            "--flow-examples",
            "5",
            "--seed",
            "1",
            "--junit",
            str(junit),
            "--report",
            str(report),
        ]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "contracts passed: 0 failure(s)" in outcome.output
    # the last line says how much ran, on one line whatever the width (bench/suites.py reports it)
    last = outcome.output.strip().splitlines()[-1]
    assert last.startswith("contracts passed: 0 failure(s) in ") and "schemathesis cases, " in last, last
    assert last.endswith(" checks)") and "flows examples, " in last and "documented examples, " in last, last
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert sorted(s.get("name", "") for s in suites) == sorted(f"contracts.{p}" for p in PROVIDERS)
    for suite in suites:
        assert suite.get("failures") == "0"
        names = {(c.get("classname", "").rsplit(".", 1)[1], c.get("name")) for c in suite.findall("testcase")}
        # every schemathesis check ran, and the custom ones, the flows and the documented examples too
        assert {
            ("schemathesis", "not_a_server_error"),
            ("schemathesis", "response_schema_conformance"),
            ("schemathesis", "positive_data_acceptance"),
            ("schemathesis", "rate_limit_headers"),
            ("flows", "rate_limit_headers"),
            ("flows", "flow_status"),
            ("documented", "documented_status"),
        } <= names, suite.get("name")
    text = report.read_text()
    assert text.startswith("# Contract run against http://127.0.0.1:") and "**passed**: 0 failure(s)" in text
    assert "It ran " in text and " checks." in text
    assert "## Failures\n\nNone." in text
    for provider in PROVIDERS:
        assert f"| {provider} | schemathesis | `not_a_server_error` |" in text


def test_providers_run_side_by_side_in_workers_and_merge_into_one_result_in_the_asked_order():
    events: list[tuple[str, str, str, int]] = []
    options = Options(
        providers=["segmentflow", "xenonflare"],
        workers=2,
        suites=("schemathesis", "documented"),
        operations=("listAssets", "getChunkStatus"),  # one of each
        max_examples=2,
        seed=7,
    )
    first = run(options, lambda *event: events.append(event))
    assert [p.provider for p in first.providers] == ["segmentflow", "xenonflare"] and not first.failed
    # each provider had an emulator of its own, in a worker process whose progress came back here
    assert first.target.count("http://127.0.0.1:") == 2 and any("2 at a time" in note for note in first.notes)
    for provider in first.providers:
        done = {suite: count for name, suite, event, count in events if name == provider.provider and event == "done"}
        assert done == provider.cases and done["schemathesis"] > 0, (done, provider.cases)
    # a fresh process and emulator per provider: the same seed makes the same cases and checks, wherever it ran
    second = run(options)
    assert [(p.cases, p.tallies) for p in second.providers] == [(p.cases, p.tallies) for p in first.providers]
    assert first.size() == second.size() and "checks" in first.size()


def test_a_renamed_response_field_fails_response_schema_conformance(deviant, monkeypatch):
    provider = PROVIDERS["segmentflow"]
    honest_ok = provider.ok

    def renaming_ok(call: Call, reply: Reply) -> Any:
        if call.op_id == "createAssetUploadUrl":
            reply = Reply(
                {("upload_url" if k == "uploadUrl" else k): v for k, v in reply.data.items()},
                reply.status,
                reply.headers,
            )
        return honest_ok(call, reply)

    monkeypatch.setattr(provider, "ok", renaming_ok)
    server = deviant()
    result = run(Options(providers=["segmentflow"], base_url=server.url, operations=("createAssetUploadUrl",), **SMALL))
    assert result.failed
    [finding] = _named(result, "segmentflow", "response_schema_conformance", "POST /api/v1/assets/upload-url")
    assert "uploadUrl" in finding.message and finding.curl.startswith("curl -X POST")
    # the flows and the documented examples trip over it as well
    assert any(f.suite == "flows" for f in result.findings)
    assert any(f.suite == "documented" and "uploadUrl" in f.message for f in result.findings)


def test_a_missing_rate_limit_header_fails_response_headers_conformance(deviant):
    server = deviant(lambda app: without_header(app, "/api/v1/media/upload", b"x-ratelimit-remaining"))
    result = run(Options(providers=["posteverywhere"], base_url=server.url, operations=("uploadMedia",), **SMALL))
    assert _named(result, "posteverywhere", "response_headers_conformance", "POST /v1/media/upload")
    assert _named(result, "posteverywhere", "rate_limit_headers", "POST /v1/media/upload")
    flow = [f for f in result.findings if f.suite == "flows"]
    assert flow and flow[0].check == "rate_limit_headers" and flow[0].operation.startswith("uploadMedia")
    assert "x-ratelimit-remaining" in flow[0].message


def test_a_500_on_one_operation_fails_not_a_server_error(deviant):
    server = deviant()
    with ControlClient(server.url) as control:
        control.add_fault("status", provider="xenonflare", operation="getChunkStatus", status=500)
    result = run(Options(providers=["xenonflare"], base_url=server.url, operations=("getChunkStatus",), **SMALL))
    assert _named(result, "xenonflare", "not_a_server_error", "GET /api/v1/media/chunks")
    flow = [f for f in result.findings if f.suite == "flows"]
    assert flow and flow[0].operation == "getChunkStatus" and "got 500" in flow[0].message


def test_an_etag_that_does_not_match_fails_etag_matches_body(deviant):
    server = deviant()
    with ControlClient(server.url) as control:
        control.add_fault("wrong_etag", provider="autoposting", operation="uploadClipPart")
    result = run(Options(providers=["autoposting"], base_url=server.url, operations=("uploadClipPart",), **SMALL))
    [finding] = _named(result, "autoposting", "etag_matches_body", "uploadClipPart")
    assert finding.suite == "flows" and "answered ETag" in finding.message
    assert "curl -X PUT" in finding.curl and "storage/clips/" in finding.curl
    # nothing else is wrong with that emulator
    assert {f.check for f in result.findings} == {"etag_matches_body"}


def test_cli_against_a_deviating_emulator_fails_and_its_report_reproduces_the_failure_with_curl(deviant, tmp_path):
    server = deviant()
    with ControlClient(server.url) as control:
        control.add_fault("status", provider="xenonflare", operation="getChunkStatus", status=500)
    junit, report = tmp_path / "contracts.xml", tmp_path / "contracts.md"
    outcome = run_command(
        [
            "contract",
            "--provider",
            "xenonflare",
            "--base-url",
            server.url,
            "--operation",
            "getChunkStatus",
            "--suite",
            "schemathesis",
            "--max-examples",
            "3",
            "--junit",
            str(junit),
            "--report",
            str(report),
        ]
    )
    assert outcome.exit_code == 1, outcome.output
    assert "FAIL xenonflare schemathesis not_a_server_error GET /api/v1/media/chunks" in outcome.output
    failures = ET.parse(junit).getroot().findall(".//testcase[@name='not_a_server_error']/failure")
    assert failures and "GET /api/v1/media/chunks" in failures[0].get("message", "")
    text = report.read_text()
    assert "· `not_a_server_error` · GET /api/v1/media/chunks" in text
    command = text.split("```bash\n", 1)[1].split("\n```", 1)[0].splitlines()[0]
    replayed = subprocess.run(
        ["bash", "-c", command + " -s -o /dev/null -w '%{http_code}'"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "API_KEY": PROVIDERS["xenonflare"].keys.example},
    )
    assert replayed.stdout == "500", (command, replayed.stdout, replayed.stderr)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--provider", "nope"], "unknown provider or suite 'nope'"),
        (["--suite", "everything"], "unknown provider or suite 'everything'"),
        (["--provider", "segmentflow", "--base-url", "http://127.0.0.1:9"], "--api-key is required for segmentflow"),
        (["--api-key", "k"], "--api-key without a provider name needs exactly one --provider"),
    ],
)
def test_cli_usage_errors_exit_2_and_say_what_is_wrong(args, says):
    outcome = run_command(["contract", *args])
    assert outcome.exit_code == 2 and says in " ".join(outcome.output.split()), outcome.output


def test_the_markdown_report_lists_each_failure_with_its_curl():
    result = RunResult("http://127.0.0.1:9", seed=3)
    provider = ProviderResult("segmentflow")
    provider.tally("schemathesis", "not_a_server_error", ok=False)
    provider.add(
        Finding(
            "segmentflow",
            "schemathesis",
            "not_a_server_error",
            "GET /api/v1/assets",
            "Server error",
            "Received: 500",
            "curl -X GET http://127.0.0.1:9/segmentflow/api/v1/assets",
            phase="fuzzing",
        )
    )
    result.providers.append(provider)
    text = markdown(result)
    assert "**FAILED**: 1 failure(s)" in text and ", seed 3." in text
    assert "### 1. segmentflow · `not_a_server_error` · GET /api/v1/assets" in text
    assert "```bash\ncurl -X GET http://127.0.0.1:9/segmentflow/api/v1/assets\n```" in text
    assert "| segmentflow | schemathesis | `not_a_server_error` | 0 | 1 |" in text


def test_a_negative_multipart_case_whose_mutation_sends_no_part_is_not_sent():
    """Schemathesis serialises [] in a multipart body as no part: on the wire the field is absent, which an optional
    field allows, so the case would be a false "Invalid data should have been rejected"."""
    from types import SimpleNamespace

    from schemathesis.core.parameters import ParameterLocation

    from contracts.openapi_suite import _negative_multipart_reaches_the_wire as reaches

    def case(body: Any, media_type: str, negative: bool) -> SimpleNamespace:
        meta = SimpleNamespace(is_negative_at=lambda location: negative and location == ParameterLocation.BODY)
        return SimpleNamespace(meta=meta, media_type=media_type, body=body)

    assert not reaches(case({"file": b"x", "slideId": []}, "multipart/form-data", negative=True))
    assert reaches(case({"file": b"x", "slideId": [1]}, "multipart/form-data", negative=True))  # parts are sent
    assert reaches(case({"slideId": []}, "application/json", negative=True))  # JSON sends the [] itself
    assert reaches(case({"file": b"x", "slideId": []}, "multipart/form-data", negative=False))


def test_a_worker_killed_mid_run_fails_the_run_with_one_line_naming_its_provider():
    """A provider's worker process that dies (killed, out of memory) ends the run within seconds: exit 1 and an
    error line naming the provider, never a traceback, and the other workers are stopped."""
    import signal
    import sys
    import time

    run = subprocess.Popen(
        [sys.executable, "-m", "emulator", "contract", "--provider", "all", "--workers", "2", "--max-examples", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            # the workers are spawned processes (multiprocessing's resource tracker is one more child)
            workers = [
                child
                for child in child_pids(run.pid)
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
                and b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
            ]
            time.sleep(0.2)
        assert len(workers) == 2, "the two workers never started"
        time.sleep(3)  # working: past their imports, inside their providers
        os.kill(workers[0], signal.SIGKILL)
        output, _ = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 1, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "was killed by signal 9 without a result" in lines[0], output
    assert any(f"running {name} " in lines[0] for name in PROVIDERS), lines
    for worker in workers[1:]:
        assert not os.path.exists(f"/proc/{worker}") or Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z"
