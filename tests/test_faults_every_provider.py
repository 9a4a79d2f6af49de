"""Fault rules and the journal work the same for every provider, each answering in its own envelope."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.providers import PROVIDERS
from tests.test_magic_keys import CASES, headers

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio


def messages(body: Any) -> list[str]:
    """Every ``message`` string of a JSON body, wherever the provider's envelope puts it."""
    if isinstance(body, dict):
        found = [body["message"]] if isinstance(body.get("message"), str) else []
        return found + [m for value in body.values() for m in messages(value)]
    if isinstance(body, list):
        return [m for value in body for m in messages(value)]
    return []


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_status_fault_answers_in_the_provider_envelope_and_is_journaled(client, provider):
    method, path, body = CASES[provider][0]
    key = PROVIDERS[provider].keys.example
    rule = (
        await client.post(
            "/_emulator/faults",
            json={"provider": provider, "action": "status", "status": 503, "message": "injected outage", "times": 1},
        )
    ).json()
    r = await client.request(method, path, headers=headers(provider, key), json=body)
    assert r.status_code == 503
    assert messages(r.json()) == ["injected outage"]
    after = await client.request(method, path, headers=headers(provider, key), json=body)
    assert after.status_code < 500
    entries = (await client.get("/_emulator/journal", params={"provider": provider})).json()["entries"]
    assert [e["status"] for e in entries] == [503, after.status_code]
    assert entries[0]["fault"] == rule["id"] and entries[1]["fault"] is None
    assert key not in str(entries)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_429_fault_has_retry_after_for_every_provider(client, provider):
    method, path, body = CASES[provider][0]
    await client.post(
        "/_emulator/faults",
        json={"provider": provider, "action": "status", "status": 429, "retry_after": 9, "times": 1},
    )
    r = await client.request(method, path, headers=headers(provider, PROVIDERS[provider].keys.example), json=body)
    assert r.status_code == 429 and r.headers["retry-after"] == "9"
