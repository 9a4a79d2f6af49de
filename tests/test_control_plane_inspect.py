"""What the control plane shows of an exchange and of stored state: body previews (redacted), record statuses,
stored bytes to download, and the providers' operations, limits and scopes (what the dashboard's forms offer)."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from emulator import Settings
from tests.helpers import AUTH, MP4, PE, PE_KEY, sample

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio
CTL = "/_emulator"
PROVIDER_SUBSETS = {  # tests/test_registry.py: tests that cover only some providers, and why
    "test_stored_bytes_refuses_names_it_does_not_hold": "a control-plane refusal of names: one provider's name "
    "space and another's are all it needs",
}


async def _upload_png(client: httpx.AsyncClient) -> tuple[dict, bytes]:
    png = sample("png")
    data = (
        await client.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "a.png", "content_type": "image/png", "size": len(png)},
        )
    ).json()["data"]
    assert (await client.post(data["upload_url"], files={"file": ("a.png", png, "image/png")})).status_code == 200
    assert (await client.post(f"{PE}/media/{data['media_id']}/complete", headers=AUTH)).status_code == 200
    return data, png


async def test_journal_previews_text_bodies_with_signatures_and_keys_redacted(client):
    data, png = await _upload_png(client)
    entries = (await client.get(f"{CTL}/journal")).json()["entries"]
    upload, store, complete = entries
    assert json.loads(upload["request_body"]) == {"filename": "a.png", "content_type": "image/png", "size": len(png)}
    signature = data["upload_url"].split("X-Emulator-Signature=")[1].split("&")[0]
    assert "X-Emulator-Signature=REDACTED" in upload["response_body"]
    assert signature not in json.dumps(entries) and PE_KEY not in json.dumps(entries)
    assert upload["response_body"].startswith('{"data":{"media_id":"' + data["media_id"])
    assert store["request_body"] is None  # multipart with an image: not text
    assert json.loads(store["response_body"])["success"] is True
    assert json.loads(complete["response_body"])["data"]["status"] == "ready"
    assert complete["request_body"] is None  # no body


async def test_journal_keeps_wall_time_beside_the_virtual_clock(client, clock):
    clock.set(time.time() + 86400 * 30)
    before = time.time()
    await client.post(
        f"{PE}/media/upload", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 10}
    )
    (entry,) = (await client.get(f"{CTL}/journal")).json()["entries"]
    assert before <= entry["wall"] <= time.time()
    assert entry["epoch"] == clock.now() and entry["epoch"] - entry["wall"] > 86400 * 29


async def test_journal_preview_is_capped_and_redacts_a_key_a_body_repeats(client):
    long_name = "x" * 3000 + ".png"
    await client.post(
        f"{PE}/media/upload",
        headers=AUTH,
        json={"filename": long_name, "content_type": "image/png", "size": 10, "note": PE_KEY},
    )
    (entry,) = (await client.get(f"{CTL}/journal")).json()["entries"]
    assert entry["request_bytes"] > 3000 and len(entry["request_body"].encode()) <= 1024
    assert entry["response_body"] is not None and len(entry["response_body"].encode()) <= 1024 + 16
    assert PE_KEY not in entry["response_body"] + entry["request_body"]


async def test_journal_preview_blanks_json_members_and_query_parameters_named_like_secrets(client):
    body = {"filename": "a.png", "api_key": "sekrit-value-1", "callback": "https://x.test/cb?token=sekrit-value-2&a=1"}
    await client.post(f"{PE}/media/upload", headers=AUTH, json=body)
    (entry,) = (await client.get(f"{CTL}/journal")).json()["entries"]
    assert '"api_key":"REDACTED"' in entry["request_body"] and "?token=REDACTED&a=1" in entry["request_body"]
    assert "sekrit" not in json.dumps(entry)


async def test_journal_preview_cut_inside_a_repeated_key_keeps_none_of_it(client):
    prefix = '{"filename":"a.png","content_type":"image/png","size":10,"note":"'
    body = prefix + "x" * (1024 - len(prefix) - 20) + PE_KEY + '"}'  # the preview ends 20 characters into the key
    await client.post(f"{PE}/media/upload", headers={**AUTH, "Content-Type": "application/json"}, content=body)
    (entry,) = (await client.get(f"{CTL}/journal")).json()["entries"]
    assert entry["request_body"].endswith("xREDACTED") and PE_KEY[:20] not in entry["request_body"]


async def test_journal_preview_of_binary_bodies_is_null(client):
    data = (
        await client.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)},
        )
    ).json()["data"]
    await client.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    put = (await client.get(f"{CTL}/journal", params={"operation": "storeObject"})).json()["entries"][0]
    assert put["request_bytes"] == len(MP4) and put["request_body"] is None


async def test_state_shows_each_records_status_and_its_bytes_download(client):
    data, png = await _upload_png(client)
    (media,) = (await client.get(f"{CTL}/state/posteverywhere")).json()["tables"]["media"]
    assert media["id"] == data["media_id"] and media["status"] == "ready"
    blob = media["blob"]
    assert blob["size"] == len(png) and blob["md5"] == hashlib.md5(png).hexdigest()
    r = await client.get(f"{CTL}/state/posteverywhere/blob", params={"name": blob["name"]})
    assert r.status_code == 200 and r.content == png
    assert r.headers["content-type"] == "image/png" and r.headers["etag"] == f'"{blob["md5"]}"'
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "provider, name, status",
    [
        ("posteverywhere", "posteverywhere/nothing-here", 404),
        ("segmentflow", None, 404),  # another provider's blob is not this provider's
        ("posteverywhere", "../../etc/passwd", 404),
        ("nobody", "x", 404),
        ("posteverywhere", "", 400),
    ],
)
async def test_stored_bytes_refuses_names_it_does_not_hold(client, provider, name, status):
    data, _ = await _upload_png(client)
    if name is None:
        (media,) = (await client.get(f"{CTL}/state/posteverywhere")).json()["tables"]["media"]
        name = media["blob"]["name"]
    r = await client.get(f"{CTL}/state/{provider}/blob", params={"name": name})
    assert r.status_code == status and r.json()["error"] in ("not_found", "validation")


async def test_stored_bytes_needs_a_name(client):
    r = await client.get(f"{CTL}/state/posteverywhere/blob")
    assert r.status_code == 400 and r.json()["error"] == "validation"


async def test_providers_lists_operations_limits_scopes_and_key_header(client):
    providers = {p["name"]: p for p in (await client.get(f"{CTL}/providers")).json()["providers"]}
    assert set(providers) == {"autoposting", "segmentflow", "xenonflare", "posteverywhere"}
    pe = providers["posteverywhere"]
    assert pe["base_path"] == "/posteverywhere/api" and pe["key_header"] == "authorization" and pe["bearer"]
    assert {"id": "uploadMedia", "method": "POST", "path": "/v1/media/upload"} in pe["operations"]
    assert {"name": "minute", "limit": 60, "window": 60} in pe["rate_limits"]
    assert pe["scopes"] == ["read", "write"]
    assert providers["segmentflow"]["key_header"] == "x-api-key" and not providers["segmentflow"]["bearer"]


@pytest.mark.parametrize(
    "settings", [Settings(strict=True, provider="segmentflow", rate_limits={"segmentflow.minute": 7})]
)
async def test_providers_lists_only_the_served_one_with_its_limits_as_set(client, settings):
    (only,) = (await client.get(f"{CTL}/providers")).json()["providers"]
    assert only["name"] == "segmentflow" and not only["base_path"].startswith("/segmentflow")
    limits = {lim["name"]: lim["limit"] for lim in only["rate_limits"]}
    assert limits.get("minute") == 7, limits


async def test_stored_bytes_answer_a_range_with_206(client):
    _, png = await _upload_png(client)
    (media,) = (await client.get(f"{CTL}/state/posteverywhere")).json()["tables"]["media"]
    r = await client.get(
        f"{CTL}/state/posteverywhere/blob", params={"name": media["blob"]["name"]}, headers={"Range": "bytes=0-7"}
    )
    assert r.status_code == 206 and r.content == png[:8]
    assert r.headers["content-range"] == f"bytes 0-7/{len(png)}"
    r = await client.get(
        f"{CTL}/state/posteverywhere/blob",
        params={"name": media["blob"]["name"]},
        headers={"Range": f"bytes={len(png) + 10}-"},
    )
    assert r.status_code == 416
