"""emulator.chaos as a library: the profiles every provider declares, schedules and the rules they become, and each
invariant deciding both ways."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from emulator.chaos import Run, Schedule, check, schedules
from emulator.chaos.cli import run as chaos
from emulator.chaos.schedule import rule_for
from emulator.core.chaos import FAULT_KINDS, Finished
from emulator.core.media import same_family, sniff_bytes
from emulator.providers import PROVIDERS

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_provider_declares_a_faithful_profile(name):
    provider = PROVIDERS[name]
    profile = provider.chaos
    assert profile is not None
    operations = {op for op, *_ in provider.specs.operations()}
    for step in profile.steps:
        assert step.operation in operations
        assert set(step.faults) <= set(FAULT_KINDS)
        if "slow_down" in step.faults or "wrong_etag" in step.faults:  # storage behind a presigned URL only
            assert not provider.handlers[step.operation].auth, step.operation
        assert ("expire" in step.faults) == (step.expires is not None)
    for order in profile.order:
        assert order.before <= operations and order.after <= operations
    for sample in profile.samples:
        for size in sample.sizes:
            data = sample.make(size, 7)
            assert len(data) == size and same_family(sample.content_type, sniff_bytes(data[:8192])), (name, size)


@given(schedule=schedules("posteverywhere"))
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_schedules_round_trip_and_stay_within_their_bounds(schedule):
    assert Schedule.from_json(json.loads(schedule.dumps())) == schedule
    assert len(schedule.faults) <= 3
    for fault in schedule.faults:
        assert fault.params.get("retry_after", 1) <= 2 and fault.params.get("seconds", 0) <= 2
        assert fault.params.get("bytes", 0) < schedule.size
        assert fault.kind != "pending" or schedule.content_type.startswith("video/")


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_every_fault_a_profile_allows_is_a_rule_the_control_plane_accepts(client, name):
    provider = PROVIDERS[name]
    assert provider.chaos is not None
    for step in provider.chaos.steps:
        for kind in step.faults:
            from emulator.chaos import Fault

            rule = rule_for(Fault(step.operation, kind, {}), provider, provider.keys.example)
            r = await client.post("/_emulator/faults", json=rule)
            assert r.status_code == 201, (step.operation, kind, r.text)


def _entry(n: int, operation: str, status: int, epoch: float, **extra: object) -> dict[str, object]:
    return {
        "id": n,
        "epoch": epoch,
        "method": extra.pop("method", "POST"),
        "path": extra.pop("path", f"/{operation}"),
        "query": "",
        "operation": operation,
        "status": status,
        "duration_ms": 10.0,
        "request_bytes": 10,
        "response_bytes": 10,
        "request_headers": {},
        "response_headers": extra.pop("headers", {}),
        "completed": extra.pop("completed", True),
    }


SCHEDULE = Schedule("segmentflow", "image/png", "a.png", 10, 0)
PROFILE = PROVIDERS["segmentflow"].chaos


def _run(
    entries: list[dict[str, object]],
    exit_code: int | None = 0,
    stdout: str = "asset-1\n",
    finished: tuple[Finished, ...] = (Finished("asset-1", "m", 10),),
) -> Run:
    return Run(SCHEDULE, "m", exit_code, stdout, "", 1.0, entries, list(finished))


FLOW = [
    _entry(1, "createAssetUploadUrl", 200, 0.0),
    _entry(2, "putAssetObject", 200, 0.1, method="PUT"),
    _entry(3, "createAsset", 200, 0.2),
]


def invariants(run: Run, **kwargs: object) -> set[str]:
    assert PROFILE is not None
    return {v.invariant for v in check(run, PROFILE, **kwargs)}  # type: ignore[arg-type]


def test_a_good_run_holds_every_invariant():
    assert invariants(_run(FLOW), expect_recovery=True) == set()


def test_success_must_be_real_and_the_printed_id_its_record():
    assert invariants(_run(FLOW, finished=())) == {"success_is_real"}
    assert invariants(_run(FLOW, finished=(Finished("asset-1", "other", 10),))) == {"success_is_real"}
    assert invariants(_run(FLOW, stdout="asset-2\n")) == {"success_is_real"}
    assert invariants(_run(FLOW, exit_code=1, finished=())) == set()  # giving up is honest


def test_retry_after_is_measured_from_the_answer():
    limited = _entry(1, "createAssetUploadUrl", 429, 0.0, headers={"retry-after": "2"})
    early = [limited, _entry(2, "createAssetUploadUrl", 200, 1.5), *FLOW[1:]]
    waited = [limited, _entry(2, "createAssetUploadUrl", 200, 2.02), *FLOW[1:]]
    assert invariants(_run(early)) == {"retry_after_honoured"}
    assert invariants(_run(waited)) == set()


def test_a_4xx_is_not_resent_unchanged():
    refused = _entry(3, "createAsset", 400, 0.2)
    assert invariants(_run([*FLOW[:2], refused, _entry(4, "createAsset", 200, 0.3)])) == {"no_blind_retry"}
    changed = _entry(4, "createAsset", 200, 0.3)
    changed["request_bytes"] = 11
    assert invariants(_run([*FLOW[:2], refused, changed])) == set()


def test_retries_are_bounded():
    storm = [_entry(n, "createAssetUploadUrl", 500, n / 10) for n in range(1, 12)]  # with FLOW: 11 retries
    assert "bounded_retries" in invariants(_run([*storm, *FLOW]), max_retries=10)
    assert "bounded_retries" not in invariants(_run([*storm, *FLOW]), max_retries=11)


def test_registering_before_the_bytes_were_accepted_is_out_of_order():
    dropped = _entry(
        2, "putAssetObject", 200, 0.1, method="PUT", completed=False, headers={"content-length": "50"}
    )  # 10 of 50 bytes arrived
    assert invariants(_run([FLOW[0], dropped, FLOW[2]])) == {"steps_in_order"}
    empty = _entry(2, "putAssetObject", 200, 0.1, method="PUT", completed=False, headers={"content-length": "0"})
    assert invariants(_run([FLOW[0], empty, FLOW[2]])) == set()  # every declared byte reached the client


def test_giving_up_on_transient_faults_fails_only_with_expect_recovery():
    run = _run(FLOW, exit_code=1, finished=())
    assert invariants(run) == set()
    assert invariants(run, expect_recovery=True) == {"expect_recovery"}
    assert invariants(_run(FLOW, exit_code=None, finished=()), expect_recovery=True) == {"expect_recovery"}


def test_replaying_another_providers_schedule_is_a_usage_error(tmp_path, capsys):
    saved = tmp_path / "s.json"
    saved.write_text(SCHEDULE.dumps())
    with pytest.raises(SystemExit) as exited:
        chaos(["--provider", "xenonflare", "--replay", str(saved), "--", "true"])
    assert exited.value.code == 2 and "is a schedule for segmentflow" in capsys.readouterr().err


def test_the_budget_bounds_the_run(capsys):
    example = Path(__file__).resolve().parents[1] / "examples" / "segmentflow_upload.py"
    with pytest.raises(SystemExit) as exited:
        chaos(
            [
                "--provider",
                "segmentflow",
                "--examples",
                "50",
                "--seed",
                "1",
                "--budget",
                "2",
                "--",
                sys.executable,
                str(example),
            ]
        )
    out = capsys.readouterr().out
    assert exited.value.code == 0
    runs = int(out.split(": ")[1].split(" run(s)")[0])
    assert 1 <= runs < 50 and "(budget reached)" in out, out


def test_a_running_emulator_serving_one_provider_at_its_root_can_be_the_target(tmp_path, capsys):
    from emulator.settings import Settings
    from emulator.testing import serve_in_thread

    served = serve_in_thread(Settings(provider="segmentflow"))
    try:
        saved = tmp_path / "s.json"
        saved.write_text(Schedule("segmentflow", "image/png", "photo.png", 174, 0).dumps())
        example = Path(__file__).resolve().parents[1] / "examples" / "segmentflow_upload.py"
        with pytest.raises(SystemExit) as exited:
            chaos(
                [
                    "--provider",
                    "segmentflow",
                    "--base-url",
                    served.url,
                    "--replay",
                    str(saved),
                    "--",
                    sys.executable,
                    str(example),
                ]
            )
        out = capsys.readouterr().out
        assert exited.value.code == 0, out
        assert "1 run(s)" in out and "every run held every invariant" in out
        # the key chaos minted uploaded one asset, through the root of the per-provider server
        assert len(served.app.state.runtime.store.values("segmentflow:assets")) == 1
    finally:
        served.stop()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--provider", "nope", "--", "true"], "unknown provider 'nope'"),
        (["--provider", "segmentflow"], "give the command to run after --"),
        (["--provider", "segmentflow", "--", "no-such-command-h18"], "cannot find the command"),
        (["--provider", "segmentflow", "--base-url", "http://127.0.0.1:9", "--", "true"], "no emulator answers"),
    ],
)
def test_usage_errors_exit_2_with_a_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        chaos(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err
