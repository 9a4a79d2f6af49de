"""``upload-emulator chaos`` end to end: the careful reference uploaders survive, the naive one is caught and
shrunk, a broken Retry-After is caught, the library example runs, and the official SDK's survey matches the docs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.chaos import Options, Target, command, survey
from emulator.chaos.cli import run as chaos
from tests.test_official_clients import node_clients  # noqa: F401 - the pinned SDK, installed once

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SEED = 18


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        chaos(argv)
    return int(exited.value.code or 0), capsys.readouterr().out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("provider", ["segmentflow", "posteverywhere", "autoposting", "xenonflare"])
def test_the_reference_uploader_survives_50_schedules(provider, capsys, tmp_path):
    started = time.monotonic()
    code, out = run_cli(
        [
            "--provider",
            provider,
            "--examples",
            "50",
            "--seed",
            str(SEED),
            "--expect-recovery",
            "--junit",
            str(tmp_path / "chaos.xml"),
            "--save",
            str(tmp_path / "failure.json"),
            "--",
            sys.executable,
            str(EXAMPLES / f"{provider}_upload.py"),
        ],
        capsys,
    )
    assert code == 0, out
    assert re.search(r": 50 run\(s\) in [\d.]+ s: every run held every invariant\.", out), out
    assert not (tmp_path / "failure.json").exists()
    junit = (tmp_path / "chaos.xml").read_text()
    assert 'name="expect_recovery"' in junit and "<failure" not in junit and "50 passed, 0 failed" in junit
    print(f"{provider}: 50 schedules in {time.monotonic() - started:.1f} s", file=sys.stderr)


@pytest.mark.timeout(300)
def test_the_naive_uploader_is_caught_and_shrunk_to_at_most_two_faults(capsys, tmp_path):
    saved, report = tmp_path / "failure.json", tmp_path / "report.md"
    naive = [sys.executable, str(EXAMPLES / "naive_upload.py")]
    code, out = run_cli(
        [
            "--provider",
            "segmentflow",
            "--examples",
            "50",
            "--seed",
            str(SEED),
            "--save",
            str(saved),
            "--report",
            str(report),
            "--",
            *naive,
        ],
        capsys,
    )
    assert code == 1
    schedule = json.loads(saved.read_text())
    assert 1 <= len(schedule["faults"]) <= 2, schedule
    assert "invariant broken:\n  success_is_real: the client exited 0" in out
    assert "shrunk schedule:\n  file: " in out and "journal of that run (redacted):" in out
    assert "sk_live_" not in out  # the key never shows, only its fingerprint's effects
    replay = out.split("replay it:\n  ")[1].strip()
    assert replay == shlex.join(
        ["upload-emulator", "chaos", "--provider", "segmentflow", "--replay", str(saved), "--", *naive]
    )
    text = report.read_text()
    assert text.startswith("# Chaos run against http://127.0.0.1:") and "`success_is_real`" in text
    # the printed command replays it, and fails the same way
    again = subprocess.run(
        [str(Path(sys.executable).with_name("upload-emulator")), *shlex.split(replay)[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1 and "success_is_real" in again.stdout, again.stdout + again.stderr


@pytest.mark.timeout(300)
def test_a_broken_retry_after_is_caught(capsys, tmp_path):
    source = (EXAMPLES / "segmentflow_upload.py").read_text()
    honoured = "time.sleep(wait if wait is not None else backoff(attempt))"
    assert honoured in source
    mutant = tmp_path / "segmentflow_upload.py"
    mutant.write_text(source.replace(honoured, "time.sleep(backoff(attempt))"))  # Retry-After ignored
    code, out = run_cli(
        [
            "--provider",
            "segmentflow",
            "--examples",
            "50",
            "--seed",
            str(SEED),
            "--save",
            str(tmp_path / "failure.json"),
            "--",
            sys.executable,
            str(mutant),
        ],
        capsys,
    )
    assert code == 1 and "retry_after_honoured: " in out, out
    faults = json.loads((tmp_path / "failure.json").read_text())["faults"]
    assert len(faults) == 1 and faults[0]["kind"] in ("rate_limited", "server_error", "slow_down"), faults


@pytest.mark.timeout(300)
def test_the_library_example_runs():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_segmentflow_chaos.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


# What docs/chaos.md says the official SDK survives, one fault at a time (a video upload: media.upload() for an
# MP4 goes through uploadMedia, the R2 PUT and complete). Measured, never tuned: when the SDK or the emulator
# changes, this test fails and the table in the docs is updated from its output.
SDK_VIDEO = {
    ("uploadMedia", "rate_limited"): [],
    ("uploadMedia", "server_error"): ["expect_recovery"],
    ("uploadMedia", "drop"): [],
    ("uploadMedia", "slow"): [],
    ("uploadMedia", "expire"): ["expect_recovery"],
    ("storeObject", "server_error"): [],
    ("storeObject", "slow_down"): ["retry_after_honoured"],
    ("storeObject", "drop"): [],
    ("storeObject", "drop_upload"): [],
    ("storeObject", "stall"): [],
    ("storeObject", "wrong_etag"): [],
    ("storeObject", "slow"): [],
    ("completeMediaUpload", "rate_limited"): [],
    ("completeMediaUpload", "server_error"): ["expect_recovery"],
    ("completeMediaUpload", "drop"): [],
    ("completeMediaUpload", "slow"): [],
    ("completeMediaUpload", "pending"): ["expect_recovery"],
}


@pytest.mark.timeout(600)
def test_what_the_official_sdk_survives_is_what_the_docs_say(node_clients, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CLIENTS_DIR", str(node_clients))
    sdk = command(["node", str(ROOT / "clients" / "node" / "chaos-upload.mjs")])
    with Target() as target:
        found = survey(
            target, "posteverywhere", sdk, Options("posteverywhere", expect_recovery=True), content_types=("video/mp4",)
        )
    measured = {(operation, kind): broken for (_, operation, kind), broken in found.items()}
    assert measured == SDK_VIDEO, json.dumps({f"{o} {k}": v for (o, k), v in measured.items()}, indent=1)
    docs = (ROOT / "docs" / "chaos.md").read_text()
    for (operation, kind), broken in SDK_VIDEO.items():
        verdict = "survives" if not broken else "**fails**: " + ", ".join(f"`{b}`" for b in broken)
        assert f"| `{operation}` | `{kind}` | {verdict} |" in docs, (operation, kind)
