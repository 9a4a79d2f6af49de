"""The dashboard at /_emulator/ui in a real browser: Debian's chromium driven by Playwright, against a live server.

One browser per module (launching it is the slow part); a fresh page per test, and the emulator reset between tests.
Each state is saved as a screenshot in a temporary directory (its path is printed, and kept by pytest's tmp dirs).
Outside CI a missing chromium or playwright skips with the reason; under CI (env CI set) it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import Settings
from emulator.testing import ControlClient, ServedEmulator, serve_in_thread
from tests.helpers import AUTH, MP4, PE, PE_KEY, sample

pytestmark = pytest.mark.live
CHROMIUM = "/usr/bin/chromium"
# Playwright cannot download its own browsers here: it drives the system's, with what a sandboxed CI needs
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT = 10_000  # ms: the page polls every second


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests: .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _missing("chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"), args=ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served() -> Iterator[ServedEmulator]:
    emulator = serve_in_thread(Settings(strict=True, seed=20))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"dashboard screenshots: {folder}")
    return folder


@pytest.fixture
def control(served: ServedEmulator) -> Iterator[ControlClient]:
    with ControlClient(served.url) as client:
        client.reset()
        yield client


@pytest.fixture
def page(browser: Any, served: ServedEmulator, control: ControlClient) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.goto(served.url + "/_emulator/ui")
    tab.wait_for_selector("#status:has-text('Live')")
    yield tab
    context.close()
    assert errors == [], errors


def api(served: ServedEmulator) -> httpx.Client:
    return httpx.Client(base_url=served.url, timeout=10)


def upload_png(served: ServedEmulator) -> tuple[dict[str, Any], bytes]:
    png = sample("png")
    with api(served) as http:
        data = http.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "a.png", "content_type": "image/png", "size": len(png)},
        ).json()["data"]
        assert http.post(data["upload_url"], files={"file": ("a.png", png, "image/png")}).status_code == 200
        assert http.post(f"{PE}/media/{data['media_id']}/complete", headers=AUTH).status_code == 200
    return data, png


def iso_after(epoch: float) -> str:
    from emulator.core.clock import iso_millis

    return iso_millis(epoch)


def rows(page: Any) -> list[dict[str, str]]:
    """The journal as the page shows it, newest first: one dict per row, cell label → text."""
    return page.eval_on_selector_all(
        "#journal-rows tr[data-id]",
        """trs => trs.map(tr => Object.fromEntries(
        [...tr.cells].map(td => [td.dataset.label, td.innerText.trim()])))""",
    )


def wait_rows(page: Any, count: int) -> list[dict[str, str]]:
    page.wait_for_function(f"() => document.querySelectorAll('#journal-rows tr[data-id]').length >= {count}")
    return rows(page)


def open_exchange(page: Any, operation: str) -> None:
    """Click the newest row of ``operation`` open (its "#id" button, labelled "Open exchange <id>: <request>")."""
    row = page.locator("#journal-rows tr", has=page.locator(f"td[data-label=Operation]:text-is('{operation}')"))
    button = row.first.get_by_role("button")
    assert (button.get_attribute("aria-label") or "").startswith("Open exchange ")
    button.click()


def test_a_posteverywhere_upload_appears_live_and_its_exchange_opens(page, served, shots):
    data, png = upload_png(served)
    found = wait_rows(page, 3)  # no reload: the page polls
    assert [(r["Operation"], r["Status"]) for r in found] == [
        ("completeMediaUpload", "200"),
        ("storeImage", "200"),
        ("uploadMedia", "201"),
    ]
    assert all(r["Provider"] == "posteverywhere" for r in found)
    assert re.fullmatch(r"key_[0-9a-f]{16}", found[2]["Key"])
    assert found[2]["Virtual"].count(":") == 2 and found[2]["Wall"] != "—"
    assert page.locator("#journal-rows .status.s2").count() == 3  # coloured by class
    page.screenshot(path=shots / "journal-1280.png", full_page=True)

    open_exchange(page, "uploadMedia")
    exchange = page.locator("#exchange")
    exchange.wait_for()
    text = exchange.inner_text()
    assert "x-ratelimit-remaining: 59" in text  # the rate-limit headers
    assert '"filename": "a.png"' in text and "X-Emulator-Signature=REDACTED" in text
    signature = data["upload_url"].split("X-Emulator-Signature=")[1].split("&")[0]
    html = page.content()
    assert PE_KEY not in html and signature not in html
    page.screenshot(path=shots / "exchange-1280.png", full_page=True)

    # its curl line replays the request against the emulator, with the key from the environment
    curl = page.locator("#curl").inner_text()
    assert curl.startswith("curl ") and "$API_KEY" in curl and PE_KEY not in curl
    result = subprocess.run(
        ["bash", "-c", curl],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "API_KEY": PE_KEY},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/1.1 201"), result.stdout[:200]
    assert '"media_id"' in result.stdout
    found = wait_rows(page, 4)
    assert (found[0]["Operation"], found[0]["Status"]) == ("uploadMedia", "201")

    # and the bytes it stored can be downloaded from the state panel
    page.select_option("#s-provider", "posteverywhere")
    link = page.locator("#state-tables a.download").first
    link.wait_for()
    assert "ready" in page.locator("#state-tables").inner_text()
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == png


def test_a_429_fault_added_through_the_form_answers_the_next_request(page, served, control, shots):
    page.select_option("#fa-provider", "posteverywhere")
    page.select_option("#fa-operation", "uploadMedia")
    page.select_option("#fa-action", "status")
    page.fill("#fa-status", "429")
    page.fill("#fa-retry", "7")
    page.fill("#fa-times", "1")
    assert page.locator("#fa-seconds").is_hidden()  # only the chosen action's parameters
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_selector("#fault-rows td:has-text('status 429, Retry-After 7')")
    (rule,) = control.faults()
    assert (rule["provider"], rule["operation"], rule["status"], rule["retry_after"], rule["remaining"]) == (
        "posteverywhere",
        "uploadMedia",
        429,
        7,
        1,
    )
    page.screenshot(path=shots / "fault-added.png", full_page=True)

    with api(served) as http:
        r = http.post(
            f"{PE}/media/upload", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 10}
        )
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    (row,) = wait_rows(page, 1)
    assert (row["Operation"], row["Status"], row["Fault"]) == ("uploadMedia", "429", rule["id"])
    assert page.locator("#journal-rows .status.s4").count() == 1
    page.wait_for_selector("#fault-rows td:text-is('0')")  # its remaining count, spent
    open_exchange(page, "uploadMedia")
    text = page.locator("#exchange").inner_text()
    assert f"Fault applied: {rule['id']}" in text and "retry-after: 7" in text
    # the fault answered before the body was read: the replay asks for the body instead of sending none
    assert "--data-binary @FILE" in page.locator("#curl").inner_text()
    assert "answered before reading the body" in text
    page.screenshot(path=shots / "fault-fired.png", full_page=True)

    page.get_by_role("button", name=f"Remove {rule['id']}").click()
    page.wait_for_selector("#fault-rows td:has-text('No rules')")
    assert control.faults() == []


def test_the_clock_moved_past_expiry_makes_a_presigned_put_refused(page, served, control, shots):
    page.get_by_role("button", name="Freeze").click()
    page.wait_for_selector("#clock-state:text-is('frozen')")
    with api(served) as http:
        data = http.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(MP4)},
        ).json()["data"]
        before = control.clock()["epoch"]
        page.get_by_role("button", name=re.compile("Past presigned expiry")).click()
        page.wait_for_selector(f"#clock-now:text-is('{iso_after(before + 3601)}')")
        moved = control.clock()
        assert moved["epoch"] == before + 3601 and moved["frozen"]
        r = http.put(data["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 403 and b"Request has expired" in r.content
    found = wait_rows(page, 2)
    assert (found[0]["Operation"], found[0]["Status"]) == ("storeObject", "403")
    assert page.locator("#clock-now").inner_text() == control.clock()["now"]
    page.screenshot(path=shots / "expired-put.png", full_page=True)

    page.get_by_role("button", name="Resume").click()
    page.wait_for_selector("#clock-state:text-is('running')")
    page.fill("#clock-time", "2030-01-02T03:04:05")
    page.get_by_role("button", name="Set", exact=True).click()
    page.wait_for_selector("#clock-now:has-text('2030-01-02T03:04')")


def test_keys_are_created_and_revoked_and_no_raw_key_reaches_the_page(page, served, control, shots):
    page.select_option("#k-provider", "posteverywhere")
    page.check("#k-scopes input[value='read']")
    page.fill("#k-limit-minute", "5")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_selector("#key-created:has-text('Created key_')")
    (key,) = control.keys()
    assert key["scopes"] == ["read"] and key["rate_limits"] == {"minute": 5}
    # the notice comes before the list is read again (``act``: the action, its message, then ``refresh``)
    page.locator("#key-rows", has_text=key["id"]).wait_for()
    # the secret was returned once to the page's script; it is in no text, attribute or value of the page
    secret_tail = key["hint"].lstrip("…")
    everything = page.evaluate("""() => document.documentElement.outerHTML
        + [...document.querySelectorAll('input, select, textarea')].map(e => e.value).join(' ')""")
    assert re.search(r"pe_live_[0-9a-f]{32}", everything) is None
    assert secret_tail in everything  # only the last four characters, as the hint
    page.screenshot(path=shots / "key-created.png", full_page=True)
    page.get_by_role("button", name=f"Revoke {key['id']}").click()
    page.wait_for_selector("#key-rows .badge:text-is('revoked')")
    assert control.keys()[0]["revoked"] is True


def test_filters_and_reset_with_confirmation(page, served, control):
    upload_png(served)
    with api(served) as http:
        assert http.post("/segmentflow/api/v1/assets", json={}).status_code == 401
    wait_rows(page, 4)
    page.select_option("#f-provider", "posteverywhere")
    page.select_option("#f-operation", "uploadMedia")
    page.wait_for_function("() => document.querySelectorAll('#journal-rows tr[data-id]').length === 1")
    page.select_option("#f-operation", "")
    page.select_option("#f-provider", "")
    page.select_option("#f-status", "4")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#journal-rows tr[data-id]')].every("
        "tr => tr.querySelector('.status').textContent.startsWith('4'))"
    )
    page.select_option("#f-status", "")

    page.get_by_role("button", name="Reset…").click()
    confirm = page.get_by_role("alertdialog")
    assert "Forget everything" in confirm.inner_text()
    assert page.evaluate("document.activeElement.id") == "reset-yes"
    page.get_by_role("button", name="Cancel").click()
    assert len(control.journal()) >= 4
    page.get_by_role("button", name="Reset…").click()
    page.get_by_role("button", name="Yes, reset").click()
    page.wait_for_selector("#journal-rows td:has-text('No requests yet')")
    assert control.journal() == []


def test_a_paged_journal_is_followed_through_its_next_cursor(browser, served, control):
    """The control plane may answer the journal in pages (``next``: a cursor); the page reads every page."""

    def entry(n: int) -> dict[str, Any]:
        return {
            "id": n,
            "at": "2026-01-01T00:00:00.000Z",
            "epoch": 1767225600.0,
            "wall": 1767225600.0,
            "method": "GET",
            "path": f"/posteverywhere/api/v1/media/{n}",
            "query": "",
            "client": "127.0.0.1",
            "provider": "posteverywhere",
            "operation": "getMedia",
            "key_id": None,
            "status": 200,
            "duration_ms": 1.0,
            "request_bytes": 0,
            "response_bytes": 2,
            "request_headers": {},
            "response_headers": {},
            "fault": None,
            "notes": [],
            "completed": True,
            "request_body": None,
            "response_body": None,
        }

    asked: list[str] = []

    def pages(route: Any) -> None:
        cursor = re.search(r"[?&]cursor=([^&]+)", route.request.url)
        asked.append(cursor.group(1) if cursor else "")
        if cursor is None:
            route.fulfill(json={"entries": [entry(1), entry(2)], "next": "page-2"})
        else:
            route.fulfill(json={"entries": [entry(3)], "next": None})

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    try:
        context.route(re.compile(r".*/_emulator/journal\?.*"), pages)
        tab = context.new_page()
        tab.goto(served.url + "/_emulator/ui")
        tab.wait_for_function("() => document.querySelectorAll('#journal-rows tr[data-id]').length === 3")
        assert [r["#"] for r in rows(tab)] == ["#3", "#2", "#1"]
        assert asked[:2] == ["", "page-2"]
    finally:
        context.close()


def test_readable_at_390_px_and_at_1280(page, served, shots):
    upload_png(served)
    wait_rows(page, 3)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(100)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        open_exchange(page, "completeMediaUpload")
        page.locator("#exchange").wait_for()
        smallest = page.evaluate("""() => Math.min(...[...document.querySelectorAll('body *')]
            .filter(e => e.offsetParent !== null && e.childNodes.length && [...e.childNodes].some(
                n => n.nodeType === 3 && n.textContent.trim()))
            .map(e => parseFloat(getComputedStyle(e).fontSize)))""")
        assert smallest >= 10, smallest
        page.screenshot(path=shots / f"dashboard-{width}.png", full_page=True)
        page.get_by_role("button", name="Close").click()


def test_every_field_is_labelled_and_the_keyboard_reaches_the_controls(page):
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.name)""")
    assert unlabelled == []
    nameless = page.evaluate("""() => [...document.querySelectorAll('button')]
        .filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length""")
    assert nameless == 0
    reached: list[str] = []
    page.evaluate("document.activeElement.blur()")
    for _ in range(100):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    for control_id in (
        "Skip to the journal",
        "freeze",
        "clock-time",
        "f-provider",
        "f-key",
        "fa-provider",
        "fa-action",
        "k-provider",
        "r-provider",
        "s-provider",
    ):
        assert control_id in reached, (control_id, reached)
    # the first stop, the skip link, lands on the journal
    assert reached[0] == "Skip to the journal"
    page.locator("a.skip").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "journal"


class NotLoopback:
    """Makes every client look like 203.0.113.5 to the emulator (the browser itself stays on loopback)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": ("203.0.113.5", 40000)}
        await self.app(scope, receive, send)


def test_with_an_admin_token_the_page_asks_for_it_and_keeps_it_for_the_tab(browser, shots):
    emulator = serve_in_thread(Settings(strict=True, admin_token="tok-for-the-dashboard"), wrap=NotLoopback)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    try:
        tab = context.new_page()
        tab.goto(emulator.url + "/_emulator/ui")
        tab.wait_for_selector("#token-form:not([hidden])")
        assert tab.evaluate("document.activeElement.id") == "token"
        assert tab.evaluate("document.querySelector('main').inert") is True  # only the token form works
        tab.screenshot(path=shots / "token.png")
        tab.fill("#token", "wrong")
        tab.get_by_role("button", name="Use token").click()
        tab.wait_for_selector("#status:has-text('refused')")
        tab.fill("#token", "tok-for-the-dashboard")
        tab.get_by_role("button", name="Use token").click()
        tab.wait_for_selector("#status:has-text('Live')")
        assert tab.evaluate("document.querySelector('main').inert") is False
        assert tab.evaluate("sessionStorage.getItem('upload-emulator-admin-token')") == "tok-for-the-dashboard"
        assert tab.evaluate("localStorage.length") == 0
        with httpx.Client(base_url=emulator.url) as http:
            http.post(
                f"{PE}/media/upload", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 10}
            )
        tab.wait_for_selector("#journal-rows tr[data-id]")
        # a new tab of the same browser starts without it
        other = context.new_page()
        other.goto(emulator.url + "/_emulator/ui")
        other.wait_for_selector("#token-form:not([hidden])")
    finally:
        context.close()
        emulator.stop()
