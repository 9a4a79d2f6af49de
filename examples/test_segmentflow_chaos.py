"""Chaos-test a Python uploader from your own pytest suite: hypothesis draws Segmentflow's fault schedules, the
``upload_chaos`` fixture (upload-emulator's pytest plugin) applies each to a live emulator, and ``check_run`` raises
when an invariant breaks, so hypothesis shrinks to the smallest schedule that does it.

    pytest examples/test_segmentflow_chaos.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings

from emulator.chaos import ClientResult, check_run, schedules

UPLOADER = Path(__file__).with_name("segmentflow_upload.py")


def my_upload(env: dict[str, str], timeout: float) -> ClientResult:
    """Your client, given the run's UPLOAD_EMULATOR_* variables; here the reference uploader, run in-process."""
    os.environ.update(env)  # the uploader reads its configuration from the environment
    sys.argv = [str(UPLOADER)]
    namespace: dict[str, object] = {"__name__": "uploader"}
    exec(compile(UPLOADER.read_text(), str(UPLOADER), "exec"), namespace)
    code = namespace["main"]()  # type: ignore[operator]
    return ClientResult(int(code))


def my_upload_as_a_program(env: dict[str, str], timeout: float) -> ClientResult:
    """The same client as a program (any language works this way)."""
    done = subprocess.run(
        [sys.executable, str(UPLOADER)], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )
    return ClientResult(done.returncode, done.stdout, done.stderr)


@given(schedule=schedules("segmentflow", max_faults=2, max_wait=1.0))
@settings(max_examples=8, deadline=None, database=None)
def test_the_uploader_survives_segmentflow_in_process(upload_chaos, schedule):
    check_run(upload_chaos, schedule, my_upload, expect_recovery=True)


@given(schedule=schedules("segmentflow", max_faults=2, max_wait=1.0))
@settings(max_examples=4, deadline=None, database=None)
def test_the_uploader_survives_segmentflow_as_a_program(upload_chaos, schedule):
    check_run(upload_chaos, schedule, my_upload_as_a_program, expect_recovery=True)
