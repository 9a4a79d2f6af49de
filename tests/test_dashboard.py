"""The dashboard's page through HTTP: where it is served, what guards it, what it holds and what it loads.

What it does in a browser is tested in tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import re

import httpx
import pytest

from emulator import Settings
from tests.helpers import AUTH, PE, PE_KEY

pytestmark = pytest.mark.anyio
UI = "/_emulator/ui"


def remote(app) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://emulator:8080")


async def test_the_page_is_the_folders_index_with_its_own_script_and_stylesheet(client):
    r = await client.get(UI)
    assert r.status_code == 308 and r.headers["location"] == f"{UI}/"
    page = await client.get(f"{UI}/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    assert re.findall(r'<script src="([^"]+)"', html) == [f"{UI}/static/dashboard.js"]
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', html) == [f"{UI}/static/dashboard.css"]
    assert "<script>" not in html and " style=" not in html and "http" not in html.split("<body")[0]
    for asset, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        r = await client.get(f"{UI}/static/{asset}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind) and len(r.content) > 1000
    assert (await client.get(f"{UI}/static/missing.js")).status_code == 404
    assert (await client.get(f"{UI}/static/../__init__.py")).status_code == 404


async def test_the_page_loads_nothing_from_elsewhere_and_may_not_be_framed(client):
    r = await client.get(f"{UI}/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"


async def test_the_page_offers_every_provider_and_its_forms_are_labelled(client):
    html = (await client.get(f"{UI}/")).text
    for name in ("autoposting", "posteverywhere", "segmentflow", "xenonflare"):
        assert f'<option value="{name}">' in html
    ids = re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', html)
    assert len(ids) > 15
    for field_id in ids:
        assert f'for="{field_id}"' in html, field_id


async def test_the_page_holds_no_state_the_control_plane_would_guard(client):
    await client.post(
        f"{PE}/media/upload", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 10}
    )
    created = (await client.post("/_emulator/keys", json={"provider": "posteverywhere"})).json()
    html = (await client.get(f"{UI}/")).text
    assert re.search(r"key_[0-9a-f]{16}", html) is None and created["key"] not in html
    assert PE_KEY not in html and "/v1/media/upload" not in html
    # and the page's own requests are not journaled: the journal is what clients do to the providers
    entries = (await client.get("/_emulator/journal")).json()["entries"]
    assert [e["operation"] for e in entries] == ["uploadMedia"]


async def test_other_hosts_get_the_control_planes_403_without_an_admin_token(app):
    async with remote(app) as other:
        for path in (UI + "/", f"{UI}/static/dashboard.js"):
            r = await other.get(path)
            assert r.status_code == 403 and "loopback clients only" in r.json()["message"]


@pytest.mark.parametrize("settings", [Settings(strict=True, admin_token="dash-token")])
async def test_with_an_admin_token_other_hosts_get_the_page_but_no_data_without_it(app, settings):
    async with remote(app) as other:
        page = await other.get(f"{UI}/")
        assert page.status_code == 200 and 'id="token-form"' in page.text
        assert (await other.get(f"{UI}/static/dashboard.js")).status_code == 200
        assert (await other.get("/_emulator/journal")).status_code == 403
        ok = await other.get("/_emulator/journal", headers={"Authorization": "Bearer dash-token"})
        assert ok.status_code == 200


@pytest.mark.parametrize("settings", [Settings(strict=True, provider="xenonflare")])
async def test_one_provider_mode_serves_the_page_for_that_provider(client, settings):
    html = (await client.get(f"{UI}/")).text
    assert '<option value="xenonflare">' in html and '<option value="posteverywhere">' not in html
    assert 'data-api="/_emulator"' in html
