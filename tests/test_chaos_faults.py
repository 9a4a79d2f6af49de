"""The fault mechanisms chaos schedules are made of, through HTTP: ``after``, ``advance_clock``, ``pending`` and
Retry-After on a 5xx."""

from __future__ import annotations

import pytest

from tests.helpers import AUTH, MP4, PE, sample

pytestmark = pytest.mark.anyio
CTL = "/_emulator"
UPLOAD = f"{PE}/media/upload"
BODY = {"filename": "a.png", "content_type": "image/png", "size": 10}


async def test_after_lets_requests_through_before_the_rule_fires(client):
    r = await client.post(
        f"{CTL}/faults",
        json={
            "provider": "posteverywhere",
            "operation": "uploadMedia",
            "action": "status",
            "status": 500,
            "after": 2,
            "times": 1,
        },
    )
    assert r.status_code == 201 and r.json()["after"] == 2 and r.json()["remaining"] == 1
    statuses = [(await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code for _ in range(4)]
    assert statuses == [201, 201, 500, 201]


async def test_a_5xx_fault_with_retry_after_sends_it(client):
    await client.post(
        f"{CTL}/faults",
        json={
            "provider": "posteverywhere",
            "operation": "uploadMedia",
            "action": "status",
            "status": 503,
            "retry_after": 2,
            "times": 1,
        },
    )
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 503 and r.headers["retry-after"] == "2" and r.json()["error"]["retryable"] is True


async def test_advance_clock_expires_the_url_just_issued(client):
    before = (await client.get(f"{CTL}/clock")).json()["epoch"]
    await client.post(
        f"{CTL}/faults",
        json={
            "provider": "posteverywhere",
            "operation": "uploadMedia",
            "action": "advance_clock",
            "advance": 3601,
            "times": 1,
        },
    )
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
        )
    ).json()["data"]
    assert (await client.get(f"{CTL}/clock")).json()["epoch"] - before >= 3601
    r = await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 403 and "Request has expired" in r.text
    # the rule fired once: a new URL works
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
        )
    ).json()["data"]
    assert (await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})).status_code == 200


async def test_advance_clock_needs_advance(client):
    r = await client.post(f"{CTL}/faults", json={"action": "advance_clock"})
    assert r.status_code == 400 and r.json()["details"]["validation_errors"][0]["field"] == "advance"


async def test_pending_keeps_a_ready_video_processing_for_the_next_polls(client):
    await client.post(
        f"{CTL}/faults",
        json={"provider": "posteverywhere", "operation": "completeMediaUpload", "action": "pending", "times": 2},
    )
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
        )
    ).json()["data"]
    await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    complete = f"{PE}/media/{data['media_id']}/complete"
    polls = [(await client.post(complete, headers=AUTH)).json()["data"]["status"] for _ in range(3)]
    assert polls == ["processing", "processing", "ready"]


async def test_pending_leaves_images_alone(client):
    await client.post(
        f"{CTL}/faults", json={"provider": "posteverywhere", "operation": "getMedia", "action": "pending"}
    )
    png = sample("png")
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": len(png)}
        )
    ).json()["data"]
    await client.post(data["upload_url"], files={"file": ("a.png", png, "image/png")})
    await client.post(f"{PE}/media/{data['media_id']}/complete", headers=AUTH)
    assert (await client.get(f"{PE}/media/{data['media_id']}", headers=AUTH)).json()["data"]["status"] == "ready"


async def test_a_429_fault_carries_the_providers_rate_limit_headers(client):
    await client.post(
        f"{CTL}/faults",
        json={
            "provider": "posteverywhere",
            "operation": "uploadMedia",
            "action": "status",
            "status": 429,
            "retry_after": 2,
            "times": 1,
        },
    )
    now = (await client.get(f"{CTL}/clock")).json()["epoch"]
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.headers["x-ratelimit-limit"] == "60" and r.headers["x-ratelimit-remaining"] == "0"  # 60 a minute
    assert 0 <= int(r.headers["x-ratelimit-reset"]) - now <= 3
