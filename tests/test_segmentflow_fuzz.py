"""Generated requests for every Segmentflow operation (schemathesis, from the served effective spec): whatever is
sent, the answer is never a 5xx and always inside the spec (strict mode raises on any response outside it)."""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis

from emulator import Settings, create_app
from tests.test_segmentflow_flow import KEY

# The storage PUT takes raw bytes of the documented types; schemathesis sends them like any binary body.
for media_type in ("application/pdf", "application/vnd.ms-excel"):
    schemathesis.serializer.alias(media_type, "application/octet-stream")


@pytest.fixture(scope="module")
def segmentflow_schema() -> Iterator[object]:
    app = create_app(Settings(strict=True, provider="segmentflow", seed=5))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.analysis.constants.enabled = False  # generation from the seed alone (see test_hostile_fuzz.py)
    yield schema
    app.state.runtime.close()


schema = schemathesis.pytest.from_fixture("segmentflow_schema")


@schema.parametrize()
@hypothesis.settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(hypothesis.HealthCheck)
)
def test_generated_requests_never_break_the_contract(case):
    case.headers = {**(case.headers or {}), "x-api-key": KEY}
    response = case.call()
    assert response.status_code < 500, response.text
