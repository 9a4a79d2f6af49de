"""Regression tests for what the contract suite found in the emulator, each through HTTP.

- a percent-encoded newline in a provider path fell through to the app-wide JSON 404 (Starlette's ``{path:path}``
  stops at a newline), instead of the provider's own answer (S3 XML on storage paths);
- ``PATCH /api/v1/assets/upload-url`` was routed to ``PATCH /api/v1/assets/{id}`` with ``id = "upload-url"``
  (a 400), where OpenAPI matches the concrete path first: the method is not allowed there (405);
- an integral JSON number sent as ``2.0`` was echoed as ``2.0`` and signed into a part URL ``…/2.0``, which the
  part PUT then refused; the providers' (Node) servers read it as the number 2;
- the specs did not say that every keyed response past the rate limiter carries the rate-limit headers (so a
  missing one went unnoticed), and Autoposting's clips 403 promised headers the emulator never sends.
"""

from __future__ import annotations

import pytest

from emulator import Settings
from emulator.core import specs
from emulator.providers import PROVIDERS

pytestmark = pytest.mark.anyio

AP = "/autoposting/api-proxy"
AP_AUTH = {"Authorization": f"Bearer {PROVIDERS['autoposting'].keys.example}"}
SF_AUTH = {"x-api-key": PROVIDERS["segmentflow"].keys.example}


@pytest.mark.parametrize("path", [f"{AP}/storage/assets/a%0Ab.png", f"{AP}/storage/assets/%0A"])
async def test_a_newline_in_a_storage_path_gets_the_storages_own_404(client, path):
    r = await client.get(path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/xml")
    assert "<Code>NoSuchKey</Code>" in r.text


async def test_a_newline_in_a_presigned_put_path_is_answered_in_s3_xml(client):
    r = await client.put(
        "/segmentflow/storage/assets/a%0Ab?X-Emulator-Signature=x", content=b"1", headers={"Content-Type": "image/png"}
    )
    assert r.status_code in (403, 404) and r.headers["content-type"].startswith("application/xml")
    assert "<Error><Code>" in r.text


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE", "PUT"])
async def test_a_concrete_path_is_not_a_value_of_a_templated_one(client, method):
    r = await client.request(method, "/segmentflow/api/v1/assets/upload-url", headers=SF_AUTH, json={})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("settings", [Settings(strict=True, provider="segmentflow")], ids=["one-provider-at-root"])
async def test_a_concrete_path_wins_at_the_root_too(client, settings):
    r = await client.patch("/api/v1/assets/upload-url", headers=SF_AUTH, json={})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    asset = await client.get("/api/v1/assets/3c90c3cc-0d44-4b50-8888-8dd25736052a", headers=SF_AUTH)
    assert asset.status_code == 404  # the templated path still serves every other value


async def test_an_integral_float_is_the_integer_it_names(client):
    init = await client.post(
        f"{AP}/clips/upload/init",
        headers=AP_AUTH,
        json={"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": 3.0, "mimeType": "video/mp4"},
    )
    assert init.status_code == 201
    clip = init.json()["data"]
    presign = await client.post(f"{AP}/clips/upload/presign", headers=AP_AUTH, json={**clip, "partNumbers": [2.0]})
    assert presign.status_code == 200
    [part] = presign.json()["data"]["presignedUrls"]
    assert '"partNumber":2,' in presign.text and part["url"].split("?")[0].endswith("/2")
    put = await client.put(part["url"], content=b"abc")
    assert put.status_code == 200
    got = await client.get(f"{AP}/clips/{clip['clipId']}", headers=AP_AUTH)
    assert '"fileSize":3,' in got.text


async def test_a_fractional_number_stays_fractional(client):
    r = await client.post(
        f"{AP}/clips/upload/init",
        headers=AP_AUTH,
        json={"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": 2.5, "mimeType": "video/mp4"},
    )
    assert r.status_code == 400 and "fileSize" in r.json()["message"]


def _resolve(root, node):
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


@pytest.mark.parametrize("provider", specs.available())
def test_every_response_past_the_rate_limiter_declares_required_rate_limit_headers(provider):
    """Auth (401) and scope (403) are checked before a request counts; every other keyed answer says where the
    key stands, and the spec says so, so that schemathesis' header check catches a missing one."""
    loaded = specs.load(provider)
    missing = []
    for op_id, _, _, operation in loaded.operations():
        if operation.get("security") == []:
            continue  # storage behind presigned URLs: no key, no limit
        for code, response in operation["responses"].items():
            if code in ("401", "403") or code.startswith("x-"):
                continue
            declared = {
                name.lower(): _resolve(loaded.effective, header)
                for name, header in _resolve(loaded.effective, response).get("headers", {}).items()
            }
            missing += [
                f"{op_id} {code} {h}"
                for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
                if not declared.get(h, {}).get("required")
            ]
    assert not missing


async def test_a_scope_refusal_carries_no_rate_limit_headers_and_the_spec_promises_none(client):
    r = await client.post(
        f"{AP}/clips/upload/init",
        headers={"Authorization": "Bearer sk-social-test-readonly-403"},
        json={"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": 3, "mimeType": "video/mp4"},
    )
    assert r.status_code == 403 and "x-ratelimit-remaining" not in r.headers
    forbidden = specs.load("autoposting").effective["components"]["responses"]["ClipsForbidden"]
    assert "headers" not in forbidden
