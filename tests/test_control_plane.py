"""The control plane through HTTP: clock, reset, keys, faults, journal, state, access; and the magic keys."""

from __future__ import annotations

import gc
import hashlib
import json
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from emulator import Settings, create_app
from emulator.testing import ControlClient, ControlError
from tests.helpers import AUTH, MP4, PDF, PE, PE_KEY, sample

CTL = "/_emulator"
UPLOAD = f"{PE}/media/upload"
BODY = {"filename": "a.png", "content_type": "image/png", "size": 10}


def key_header(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def control(live_server) -> Iterator[ControlClient]:
    with ControlClient(live_server.url) as c:
        yield c


# --- clock ---------------------------------------------------------------------------------------------------------

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)
pytestmark = pytest.mark.anyio


async def test_clock_freeze_set_advance_resume(client):
    r = await client.post(f"{CTL}/clock/set", json={"time": "2030-01-01T00:00:00Z"})
    assert r.json() == {"now": "2030-01-01T00:00:00.000Z", "epoch": 1893456000.0, "frozen": True}
    r = await client.post(f"{CTL}/clock/advance", json={"seconds": 90.5})
    assert r.json()["now"] == "2030-01-01T00:01:30.500Z"
    assert (await client.get(f"{CTL}/clock")).json()["epoch"] == 1893456090.5
    r = await client.post(f"{CTL}/clock/resume")
    assert r.json()["frozen"] is False
    r = await client.post(f"{CTL}/clock/freeze")
    assert r.json()["frozen"] is True and r.json()["epoch"] >= 1893456090.5
    r = await client.post(f"{CTL}/clock/freeze", json={"time": "2031-06-01T12:00:00+02:00"})
    assert r.json()["now"] == "2031-06-01T10:00:00.000Z"


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/clock/advance", {"seconds": -1}, "seconds"),
        ("/clock/advance", {"seconds": "ten"}, "seconds"),
        ("/clock/advance", {}, "seconds"),
        ("/clock/set", {"time": "yesterday"}, "time"),
        ("/clock/advance", {"seconds": 1, "extra": True}, "body"),
    ],
)
async def test_clock_refuses_bad_input_precisely(client, path, body, field):
    r = await client.post(f"{CTL}{path}", json=body)
    assert r.status_code == 400
    assert r.json()["error"] == "validation"
    assert r.json()["details"]["validation_errors"][0]["field"] == field


async def test_timestamps_follow_the_clock(client):
    await client.post(f"{CTL}/clock/set", json={"time": "2027-03-04T05:06:07.089Z"})
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.json()["meta"]["timestamp"] == "2027-03-04T05:06:07.089Z"
    assert r.headers["x-ratelimit-reset"] == "1804136828"  # ceil(1804136767.089 + 60): when a slot frees


async def test_expiry_by_moving_the_clock_3601_seconds(client):
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
        )
    ).json()["data"]
    await client.post(f"{CTL}/clock/advance", json={"seconds": 3601})
    r = await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 403 and "Request has expired" in r.text


# --- reset and state -----------------------------------------------------------------------------------------------


async def test_reset_one_provider_or_everything(client, runtime):
    media_id = (await client.post(UPLOAD, headers=AUTH, json=BODY)).json()["data"]["media_id"]
    state = (await client.get(f"{CTL}/state/posteverywhere")).json()
    assert [m["id"] for m in state["tables"]["media"]] == [media_id]
    assert PE_KEY not in json.dumps(state)
    r = await client.post(f"{CTL}/reset", json={"provider": "posteverywhere"})
    assert r.json() == {"reset": "posteverywhere"}
    assert (await client.post(f"{PE}/media/{media_id}/complete", headers=AUTH)).status_code == 404
    assert (await client.get(f"{CTL}/state/posteverywhere")).json()["tables"] == {}
    r = await client.post(f"{CTL}/reset")
    assert r.json() == {"reset": "all"}
    assert runtime.journal.query() == []


async def test_reset_clears_rate_limit_windows(client):
    for _ in range(60):
        await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 429
    await client.post(f"{CTL}/reset", json={"provider": "posteverywhere"})
    assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 201


async def test_unknown_provider_is_404(client):
    r = await client.post(f"{CTL}/reset", json={"provider": "myspace"})
    assert r.status_code == 404 and "unknown provider 'myspace'" in r.json()["message"]
    assert (await client.get(f"{CTL}/state/myspace")).status_code == 404


# --- keys ----------------------------------------------------------------------------------------------------------


async def test_created_key_with_read_scope_cannot_write(client):
    r = await client.post(f"{CTL}/keys", json={"provider": "posteverywhere", "scopes": ["read"]})
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith("pe_live_") and len(created["key"]) == 40
    assert created["hint"] == "…" + created["key"][-4:]
    denied = await client.post(UPLOAD, headers=key_header(created["key"]), json=BODY)
    assert denied.status_code == 401
    assert "lacks the write scope" in denied.json()["error"]["message"]
    listed = (await client.get(f"{CTL}/keys")).json()["keys"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["key"] not in json.dumps(listed)


async def test_created_key_with_its_own_rate_limit(client):
    key = (await client.post(f"{CTL}/keys", json={"provider": "posteverywhere", "rate_limits": {"minute": 2}})).json()[
        "key"
    ]
    statuses = [(await client.post(UPLOAD, headers=key_header(key), json=BODY)).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    bad = await client.post(f"{CTL}/keys", json={"provider": "posteverywhere", "rate_limits": {"fortnight": 2}})
    assert bad.status_code == 400 and "unknown limit 'fortnight'" in bad.json()["message"]


async def test_created_key_must_have_the_provider_format(client):
    r = await client.post(f"{CTL}/keys", json={"provider": "posteverywhere", "key": "sk-not-a-pe-key"})
    assert r.status_code == 400 and r.json()["details"]["validation_errors"][0]["field"] == "key"


@pytest.mark.parametrize("settings", [Settings(strict=True, strict_keys=True)])
async def test_created_keys_pass_strict_keys(client, settings):
    assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 401
    key = (await client.post(f"{CTL}/keys", json={"provider": "posteverywhere"})).json()["key"]
    assert (await client.post(UPLOAD, headers=key_header(key), json=BODY)).status_code == 201


async def test_a_key_revoked_mid_flow_is_refused(client):
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "d.pdf", "content_type": "application/pdf", "size": len(PDF)}
        )
    ).json()["data"]
    assert (
        await client.put(data["upload_url"], content=PDF, headers={"Content-Type": "application/pdf"})
    ).status_code == 200
    r = await client.post(f"{CTL}/keys/revoke", json={"provider": "posteverywhere", "key": PE_KEY})
    key_id = r.json()["revoked"]
    done = await client.post(f"{PE}/media/{data['media_id']}/complete", headers=AUTH)
    assert done.status_code == 401 and done.json()["error"]["details"]["reason"] == "revoked"
    assert (await client.delete(f"{CTL}/keys/{key_id}")).json() == {"revoked": key_id}


# --- faults (in-process) -------------------------------------------------------------------------------------------


async def test_status_fault_uses_the_provider_envelope_and_counts_down(client):
    r = await client.post(
        f"{CTL}/faults",
        json={"provider": "posteverywhere", "operation": "uploadMedia", "action": "status", "status": 503, "times": 2},
    )
    assert r.status_code == 201 and r.json()["remaining"] == 2
    statuses = [(await client.post(UPLOAD, headers=AUTH, json=BODY)) for _ in range(3)]
    assert [s.status_code for s in statuses] == [503, 503, 201]
    error = statuses[0].json()["error"]
    assert error["retryable"] is True and statuses[0].json()["data"] is None
    assert (await client.get(f"{CTL}/faults")).json()["faults"][0]["remaining"] == 0


async def test_429_fault_carries_retry_after(client):
    await client.post(
        f"{CTL}/faults",
        json={"provider": "posteverywhere", "action": "status", "status": 429, "retry_after": 7, "times": 1},
    )
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 429 and r.headers["retry-after"] == "7" and r.json()["error"]["retryAfter"] == 7


async def test_faults_match_by_key_and_path(client):
    other = "pe_live_" + "9" * 32
    await client.post(
        f"{CTL}/faults", json={"provider": "posteverywhere", "key": other, "action": "status", "status": 500}
    )
    await client.post(f"{CTL}/faults", json={"path": "/complete$", "action": "status", "status": 502})
    assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 201
    assert (await client.post(UPLOAD, headers=key_header(other), json=BODY)).status_code == 500
    media_id = (await client.post(UPLOAD, headers=AUTH, json=BODY)).json()["data"]["media_id"]
    assert (await client.post(f"{PE}/media/{media_id}/complete", headers=AUTH)).status_code == 502


async def test_wrong_etag_fault(client):
    await client.post(
        f"{CTL}/faults",
        json={"provider": "posteverywhere", "operation": "storeObject", "action": "wrong_etag", "times": 1},
    )
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
        )
    ).json()["data"]
    r = await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 200 and r.headers["etag"] != f'"{hashlib.md5(MP4).hexdigest()}"'
    again = await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    assert again.headers["etag"] == f'"{hashlib.md5(MP4).hexdigest()}"'


async def test_slow_down_fault_is_s3_503(client):
    await client.post(
        f"{CTL}/faults", json={"provider": "posteverywhere", "operation": "storeObject", "action": "slow_down"}
    )
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
        )
    ).json()["data"]
    r = await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 503 and "<Code>SlowDown</Code>" in r.text


async def test_fault_rules_are_listed_removed_and_cleared(client):
    rule = (await client.post(f"{CTL}/faults", json={"action": "delay", "seconds": 0})).json()
    await client.post(f"{CTL}/faults", json={"action": "wrong_etag"})
    assert len((await client.get(f"{CTL}/faults")).json()["faults"]) == 2
    assert (await client.delete(f"{CTL}/faults/{rule['id']}")).json() == {"removed": rule["id"]}
    assert (await client.delete(f"{CTL}/faults/{rule['id']}")).status_code == 404
    await client.delete(f"{CTL}/faults")
    assert (await client.get(f"{CTL}/faults")).json()["faults"] == []


@pytest.mark.parametrize(
    "rule, field",
    [
        ({"action": "explode"}, "action"),
        ({"action": "status"}, "status"),
        ({"action": "status", "status": 200}, "status"),
        ({"action": "delay", "path": "(("}, "path"),
        ({"action": "delay", "provider": "posteverywhere", "operation": "nope"}, "operation"),
        ({"action": "delay", "key": "pe_live_x"}, "provider"),
    ],
)
async def test_bad_fault_rules_are_refused(client, rule, field):
    r = await client.post(f"{CTL}/faults", json=rule)
    assert r.status_code == 400, r.text
    assert r.json()["details"]["validation_errors"][0]["field"] == field


# --- journal -------------------------------------------------------------------------------------------------------


async def test_journal_answers_did_the_client_wait_retry_after(client):
    await client.post(
        f"{CTL}/faults",
        json={
            "provider": "posteverywhere",
            "operation": "uploadMedia",
            "action": "status",
            "status": 429,
            "retry_after": 5,
            "times": 1,
        },
    )
    first = await client.post(UPLOAD, headers=AUTH, json=BODY)
    wait = int(first.headers["retry-after"])
    await client.post(f"{CTL}/clock/advance", json={"seconds": wait})  # a client honouring Retry-After
    second = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert second.status_code == 201
    entries = (await client.get(f"{CTL}/journal", params={"operation": "uploadMedia"})).json()["entries"]
    assert [e["status"] for e in entries] == [429, 201]
    assert entries[1]["epoch"] - entries[0]["epoch"] >= int(entries[0]["response_headers"]["retry-after"])
    assert entries[0]["fault"] is not None and entries[1]["fault"] is None


async def test_journal_records_everything_and_never_the_key(client):
    await client.post(UPLOAD, json=BODY)  # 401
    await client.get(f"{PE}/nowhere", headers=AUTH)  # 404
    data = (
        await client.post(
            UPLOAD, headers=AUTH, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)}
        )
    ).json()["data"]
    await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    entries = (await client.get(f"{CTL}/journal")).json()["entries"]
    assert [e["status"] for e in entries] == [401, 404, 201, 200]
    assert PE_KEY not in json.dumps(entries)
    put = entries[-1]
    assert put["operation"] == "storeObject" and put["request_bytes"] == len(MP4)
    assert "X-Emulator-Signature=REDACTED" in put["query"]
    assert put["response_headers"]["etag"] == f'"{hashlib.md5(MP4).hexdigest()}"'
    upload = entries[2]
    assert upload["key_id"].startswith("key_") and upload["provider"] == "posteverywhere"
    assert upload["response_headers"]["x-ratelimit-remaining"] == "59"
    filtered = (await client.get(f"{CTL}/journal", params={"status": 401})).json()["entries"]
    assert len(filtered) == 1 and filtered[0]["key_id"] is None
    by_key = (await client.get(f"{CTL}/journal", params={"key_id": upload["key_id"]})).json()["entries"]
    assert [e["operation"] for e in by_key] == ["uploadMedia"]
    assert (await client.delete(f"{CTL}/journal")).json() == {"cleared": True}
    assert (await client.get(f"{CTL}/journal")).json()["entries"] == []


async def test_journal_since_filter_uses_the_virtual_clock(client, clock):
    await client.post(UPLOAD, headers=AUTH, json=BODY)
    clock.advance(10)
    await client.post(UPLOAD, headers=AUTH, json=BODY)
    entries = (await client.get(f"{CTL}/journal", params={"since": clock.now() - 5})).json()["entries"]
    assert len(entries) == 1


async def _requests(client, count: int, **headers: str) -> None:
    for i in range(count):
        await client.get(f"{PE}/nowhere/{i}", headers=headers)  # a cheap journaled request: the provider's 404


async def _pages(client, **params) -> list[dict]:
    """Every page of a journal listing, following next_cursor while has_more."""
    pages = [(await client.get(f"{CTL}/journal", params=params)).json()]
    while pages[-1]["has_more"]:
        pages.append((await client.get(f"{CTL}/journal", params={**params, "cursor": pages[-1]["next_cursor"]})).json())
    return pages


async def test_journal_pages_hold_100_entries_and_a_cursor_to_the_next(client):
    await _requests(client, 250)
    pages = await _pages(client)
    assert [len(p["entries"]) for p in pages] == [100, 100, 50]
    assert [p["has_more"] for p in pages] == [True, True, False]
    ids = [e["id"] for p in pages for e in p["entries"]]
    assert ids == sorted(ids) and len(set(ids)) == 250  # oldest first, none twice, none missed
    assert pages[0]["entries"][0]["path"].endswith("/nowhere/0")
    # oldest first, the last page's cursor finds what arrives later (a client can follow the journal)
    await _requests(client, 3)
    later = (await client.get(f"{CTL}/journal", params={"cursor": pages[-1]["next_cursor"]})).json()
    assert [e["path"].rsplit("/", 1)[1] for e in later["entries"]] == ["0", "1", "2"] and not later["has_more"]
    assert [e["id"] for e in later["entries"]][0] == ids[-1] + 1


async def test_journal_cursor_stays_put_while_entries_arrive_and_go(client):
    await _requests(client, 30)
    first = (await client.get(f"{CTL}/journal", params={"limit": 10})).json()
    await _requests(client, 5)  # new entries while paging: they come at the end, nothing shifts
    rest = (await client.get(f"{CTL}/journal", params={"cursor": first["next_cursor"], "limit": 100})).json()
    assert [e["id"] for e in rest["entries"]] == list(range(11, 36))
    await client.delete(f"{CTL}/journal")  # the entries a cursor points past may go: it still points after them
    await _requests(client, 2)
    after = (await client.get(f"{CTL}/journal", params={"cursor": first["next_cursor"]})).json()
    assert [e["id"] for e in after["entries"]] == [36, 37]


async def test_journal_newest_first_pages_back_to_the_oldest(client):
    await _requests(client, 25)
    pages = await _pages(client, order="desc", limit=10, status=404)
    ids = [e["id"] for p in pages for e in p["entries"]]
    assert [len(p["entries"]) for p in pages] == [10, 10, 5] and ids == sorted(ids, reverse=True)
    assert pages[-1]["next_cursor"] is None and not pages[-1]["has_more"]
    assert pages[0]["entries"][0]["path"].endswith("/nowhere/24")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "YXNjOi0x"}, "cursor"),
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"order": "sideways"}, "order"),
    ],
)
async def test_journal_refuses_a_cursor_it_did_not_issue_and_pages_past_1000(client, params, field):
    r = await client.get(f"{CTL}/journal", params=params)
    assert r.status_code == 400 and r.json()["error"]
    assert field in json.dumps(r.json())


@pytest.mark.parametrize("settings", [Settings(strict=True, journal_max_bytes=256 * 1024)])
async def test_journal_is_bounded_by_bytes_and_cuts_long_header_values(client, runtime, settings):
    big = {"User-Agent": "u" * 5000, "Idempotency-Key": "i" * 5000, "Content-Type": "c" * 5000, "Expect": "e" * 500}
    await _requests(client, 200, **big)
    held = [e for p in await _pages(client, limit=1000) for e in p["entries"]]
    assert 10 < len(held) < 200 and held[-1]["path"].endswith("/nowhere/199")  # the oldest went first
    assert runtime.journal.bytes <= settings.journal_max_bytes
    entry = held[-1]
    assert entry["request_headers"]["user-agent"] == "u" * 512 + "…"
    assert entry["request_headers"]["expect"] == "e" * 500
    # the estimate is the real footprint: what journal.py allocated and still holds, measured
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        await _requests(client, 200, **big)
        gc.collect()
        grown = sum(
            stat.size_diff
            for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
            if stat.traceback[0].filename.endswith("journal.py")
        )
    finally:
        tracemalloc.stop()
    assert grown < 1.5 * settings.journal_max_bytes, grown


def test_journal_needs_room_for_an_entry():
    with pytest.raises(ValueError, match="journal"):
        create_app(Settings(journal_max_bytes=0))


# --- access --------------------------------------------------------------------------------------------------------


async def test_control_plane_refuses_other_hosts(app):
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator:8080") as remote:
        r = await remote.get(f"{CTL}/journal")
        assert r.status_code == 403 and "loopback clients only" in r.json()["message"]
        assert (await remote.post(f"{CTL}/clock/advance", json={"seconds": 1})).status_code == 403
        assert (await remote.get(f"{CTL}/health")).status_code == 200
        assert (await remote.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 201  # providers stay open


@pytest.mark.parametrize("settings", [Settings(strict=True, admin_token="s3cret-token")])
async def test_admin_token_opens_the_control_plane(app, settings):
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator:8080") as remote:
        assert (await remote.get(f"{CTL}/clock")).status_code == 401
        assert (await remote.get(f"{CTL}/clock", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await remote.get(f"{CTL}/clock", headers={"Authorization": "Bearer s3cret-token"})).status_code == 200


async def test_control_plane_serves_its_own_openapi(client):
    spec = (await client.get(f"{CTL}/openapi.json")).json()
    assert spec["servers"][0]["url"] == "http://127.0.0.1:8080/_emulator"
    assert {"/clock/advance", "/faults", "/journal", "/keys", "/reset", "/state/{provider}"} <= set(spec["paths"])


# --- magic keys and values -----------------------------------------------------------------------------------------


async def test_magic_key_always_revoked(client):
    r = await client.post(UPLOAD, headers=key_header("pe_live_00000000000000000000000000000401"), json=BODY)
    assert r.status_code == 401 and r.json()["error"]["details"]["reason"] == "revoked"


async def test_magic_key_always_rate_limited(client):
    r = await client.post(UPLOAD, headers=key_header("pe_live_00000000000000000000000000000429"), json=BODY)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "60" and r.headers["x-ratelimit-remaining"] == "0"
    assert r.json()["error"]["code"] == "rate_limited"


async def test_magic_key_read_only(client):
    r = await client.post(UPLOAD, headers=key_header("pe_live_00000000000000000000000000000403"), json=BODY)
    assert r.status_code == 401 and "lacks the write scope" in r.json()["error"]["message"]


async def test_magic_key_always_slow(client):
    started = time.perf_counter()
    r = await client.post(UPLOAD, headers=key_header("pe_live_00000000000000000000000000002000"), json=BODY)
    assert r.status_code == 201 and time.perf_counter() - started >= 2.0


async def test_magic_filename_fails_processing(client):
    png = sample("png")
    created = await client.post(
        UPLOAD, headers=AUTH, json={"filename": "fail-processing.png", "content_type": "image/png", "size": len(png)}
    )
    data = created.json()["data"]
    await client.post(data["upload_url"], files={"file": ("fail-processing.png", png, "image/png")})
    r = await client.post(f"{PE}/media/{data['media_id']}/complete", headers=AUTH)
    assert r.status_code == 200 and r.json()["data"]["status"] == "failed"
    post = await client.post(
        f"{PE}/posts", headers=AUTH, json={"content": "x", "account_ids": [1], "media_ids": [data["media_id"]]}
    )
    assert post.status_code == 400 and "is failed, not ready" in post.json()["error"]["message"]


# --- the typed client ------------------------------------------------------------------------------------------------


def test_control_client_round_trip(control):
    control.freeze("2029-05-05T05:05:05Z")
    assert control.advance(10)["now"] == "2029-05-05T05:05:15.000Z"
    created = control.create_key("posteverywhere", scopes=["read", "write"])
    assert created["scopes"] == ["read", "write"]
    rule = control.add_fault("status", provider="posteverywhere", status=418, times=1)
    assert control.faults()[0]["id"] == rule["id"]
    with pytest.raises(ControlError) as refused:
        control.reset("myspace")
    assert refused.value.status == 404
    control.reset()
    assert control.journal() == [] and control.faults() == []
