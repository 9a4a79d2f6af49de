"""Chaos testing for your own upload client: hypothesis draws provider-faithful fault schedules, the emulator
applies them, and invariants judge what the client did from the journal and the stored bytes.

    from hypothesis import given, settings
    from emulator.chaos import check_run, python, schedules

    @given(schedule=schedules("segmentflow"))
    @settings(max_examples=20, deadline=None)
    def test_my_uploader_survives(upload_chaos, schedule):
        check_run(upload_chaos, schedule, python(my_upload), expect_recovery=True)

``upload_chaos`` is a fixture of the pytest plugin (a live emulator for chaos runs). The command line is
``upload-emulator chaos`` (``emulator.chaos.cli``). Manual: docs/chaos.md.
"""

from emulator.chaos.invariants import INVARIANTS, Run, Violation, check
from emulator.chaos.runner import (
    ChaosViolation,
    Client,
    ClientResult,
    Options,
    Outcome,
    Target,
    check_run,
    command,
    explore,
    python,
    replay,
    survey,
)
from emulator.chaos.schedule import Fault, Schedule, recoverable, schedules

__all__ = [
    "INVARIANTS",
    "ChaosViolation",
    "Client",
    "ClientResult",
    "Fault",
    "Options",
    "Outcome",
    "Run",
    "Schedule",
    "Target",
    "Violation",
    "check",
    "check_run",
    "command",
    "explore",
    "python",
    "recoverable",
    "replay",
    "schedules",
    "survey",
]
