"""PostEverywhere's official clients, unchanged, against the emulator (issue 9).

- ``@posteverywhere/sdk`` 1.4.2 (Node): its host is hard-coded, so it runs under ``clients/node/redirect.mjs``, the
  fetch wrapper the README gives users; ``clients/node/sdk-flows.mjs`` drives it and reports every request it made.
- ``@posteverywhere/mcp`` 1.7.0 (the official MCP server): started over stdio by the Python ``mcp`` client with
  ``POSTEVERYWHERE_API_URL`` pointing at the emulator (the variable its ``dist/index.js`` reads).

Both are installed from ``clients/node/package-lock.json`` with ``npm ci`` into a cache folder outside the
repository (``$UPLOAD_EMULATOR_CLIENTS_CACHE``, default ``~/.cache/upload-emulator/clients``), once per lock file.
Every test runs the emulator in strict mode, so every answer the clients got was also checked against the spec.

Registries searched for the other providers' official clients (2026-11-27): npm ``@autoposting.ai/sdk`` and
``@autoposting.ai/cli`` (published from github Autoposting-ai/autoposting-cli, but not on the registry: 404),
``autoposting``, ``@segmentflow/sdk``, ``segmentflow``, ``@xenonflare/sdk``, ``xenonflare``; PyPI ``posteverywhere``
(github posteverywhere/posteverywhere-python exists, not published), ``autoposting``, ``segmentflow``,
``xenonflare``: none found, so PostEverywhere's two are the official clients there are to run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from emulator.settings import Settings
from emulator.testing import ControlClient
from tests.helpers import MP4, PDF, sample

CLIENTS = Path(__file__).resolve().parents[1] / "clients" / "node"
SDK_FLOWS = CLIENTS / "sdk-flows.mjs"
REDIRECT = CLIENTS / "redirect.mjs"
UUID_LEN = 36


def _cache_root() -> Path:
    configured = os.environ.get("UPLOAD_EMULATOR_CLIENTS_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "upload-emulator" / "clients"


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """The pinned official Node clients, installed with ``npm ci`` into the cache (once per lock file)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        message = "Node >= 20 with npm is needed to run PostEverywhere's official clients"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, f"Node >= 20 needed, found {version}"
    manifest, lock = (CLIENTS / "package.json").read_bytes(), (CLIENTS / "package-lock.json").read_bytes()
    target = _cache_root() / f"node-{hashlib.sha256(manifest + lock).hexdigest()[:16]}"
    if (target / ".installed").exists():
        return target
    scratch = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (scratch / "package.json").write_bytes(manifest)
    (scratch / "package-lock.json").write_bytes(lock)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    (scratch / ".installed").write_text("ok\n")
    try:
        scratch.rename(target)
    except OSError:  # another run installed it first
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("client-fixtures")
    (folder / "sample.png").write_bytes(sample("png"))
    (folder / "sample.mp4").write_bytes(MP4)
    (folder / "sample.pdf").write_bytes(PDF)
    return folder


def key(n: int) -> str:
    return f"pe_live_{n:032x}"


def run_sdk(server: Any, clients: Path, fixtures: Path, scenario: str, api_key: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "CLIENTS_DIR": str(clients),
        "FIXTURES": str(fixtures),
        "PE_KEY": api_key,
        "POSTEVERYWHERE_EMULATOR_URL": f"{server.url}/posteverywhere",
    }
    done = subprocess.run(
        ["node", "--import", REDIRECT.as_uri(), str(SDK_FLOWS), scenario],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["result"]["ok"], report["result"]["error"]
    return report


def api_calls(log: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(method, path under /api/v1, status) of every SDK request to the (real, rewritten) API host."""
    prefix = "https://app.posteverywhere.ai/api/v1"
    return [(e["method"], e["url"][len(prefix) :], e["status"]) for e in log if e["url"].startswith(prefix)]


def notes(server: Any, operation: str) -> list[str]:
    with ControlClient(server.url) as control:
        return [n for e in control.journal(provider="posteverywhere", operation=operation) for n in e.notes]


# --- the SDK -----------------------------------------------------------------------------------------------------


def test_sdk_upload_in_one_call_for_image_video_and_pdf(live_server, node_clients, fixtures):
    report = run_sdk(live_server, node_clients, fixtures, "upload", key(1))
    result = report["result"]["value"]
    for name, kind, size in (
        ("image", "image", len(sample("png"))),
        ("video", "video", len(MP4)),
        ("pdf", "document", len(PDF)),
    ):
        assert result[name]["ok"], (name, result[name])
        done = result[name]["value"]
        assert done["status"] == "ready" and done["type"] == kind and done["size"] == size
        assert done["media_ids"] == [done["media_id"]] and len(done["media_id"]) == UUID_LEN
        assert done["id"] == done["media_id"] and done["message"]  # the SDK's CompleteMediaResponse
    assert result["image"]["value"]["width"] == 64 and result["image"]["value"]["height"] == 48
    # what the SDK really sends: file_size (not size) in step 1, a PUT with Content-Type for every type in step 2
    presigns = [e for e in report["log"] if e["url"].endswith("/api/v1/media/upload")]
    assert [sorted(e["body"]) for e in presigns] == [["content_type", "file_size", "filename"]] * 3
    uploads = [e for e in report["log"] if "/storage/" in e["url"]]
    assert [(e["method"], e["content_type"], e["status"]) for e in uploads] == [
        ("PUT", "image/png", 200),
        ("PUT", "video/mp4", 200),
        ("PUT", "application/pdf", 200),
    ]
    assert all(e["url"].startswith(live_server.url) for e in uploads)  # upload_url names the emulator
    # each undocumented form was accepted and the journal says so, naming the client
    assert len(notes(live_server, "uploadMedia")) == 3
    assert all(
        "file_size instead of size" in n and "@posteverywhere/sdk 1.4.2" in n for n in notes(live_server, "uploadMedia")
    )
    assert (
        len(notes(live_server, "storeImageRaw")) == 1
        and "PUT of the raw image" in notes(live_server, "storeImageRaw")[0]
    )
    assert notes(live_server, "storeObject") == []  # the documented PUT for videos and documents is no departure


def test_sdk_get_upload_url_and_complete_by_hand(live_server, node_clients, fixtures):
    result = run_sdk(live_server, node_clients, fixtures, "manual", key(2))["result"]["value"]
    image, pdf = result["image"], result["pdf"]
    assert image["presign"]["upload_method"] == {
        "method": "POST",
        "content_type": "multipart/form-data",
        "field_name": "file",
    }
    assert image["presign"]["provider"] == "images" and image["presign"]["expires_in"] == 3600
    assert pdf["presign"]["upload_method"]["method"] == "PUT" and pdf["presign"]["provider"] == "r2"
    assert image["storage_status"] == 200 and pdf["storage_status"] == 200
    assert image["completed"]["status"] == "ready" and pdf["completed"]["type"] == "document"
    assert notes(live_server, "uploadMedia") == []  # the documented forms leave no note
    assert notes(live_server, "storeImage") == []


def test_sdk_upload_from_url_and_media_get(live_server, node_clients, fixtures):
    result = run_sdk(live_server, node_clients, fixtures, "fromUrl", key(3))["result"]["value"]
    imported, fetched = result["imported"], result["fetched"]
    assert imported["media_status"] == "ready" and imported["type"] == "image"
    assert imported["content_type"] == "image/png" and imported["filename"] == "hero.png"
    assert imported["source_url"] == "https://images.example.com/launch/hero.png"
    assert fetched["id"] == imported["media_id"] and fetched["upload_status"] == "ready"
    assert fetched["media_type"] == "image" and fetched["mime_type"] == "image/png"
    assert fetched["file_size"] == imported["size"]


def test_sdk_posts_create_with_uploaded_media_then_list_and_delete(live_server, node_clients, fixtures):
    report = run_sdk(live_server, node_clients, fixtures, "post", key(4))
    result = report["result"]["value"]
    media, post = result["media"], result["post"]
    assert post["post_id"] == post["id"] and post["media_ids"] == media["media_ids"]
    assert (
        post["status"] == "scheduled" and post["destinations"] == 2 and post["scheduled_for"] == "2030-01-01T09:00:00Z"
    )
    assert result["fetchedPost"]["id"] == post["post_id"] and result["fetchedPost"]["post_status"] == "scheduled"
    assert [d["social_account_id"] for d in result["fetchedPost"]["destinations"]] == [101, 102]
    assert result["posts"]["total"] == 1 and result["posts"]["posts"][0]["id"] == post["post_id"]
    listed = result["listed"]
    assert listed["total"] == 1 and [m["id"] for m in listed["media"]] == [media["media_id"]]
    assert result["deleted"] == {"deleted": True, "id": media["media_id"]}
    assert result["afterDelete"]["ok"] is False and result["afterDelete"]["error"]["status"] == 404
    assert [c[:1] + c[2:] for c in api_calls(report["log"])][-4:] == [
        ("GET", 200),
        ("GET", 200),
        ("DELETE", 200),
        ("GET", 404),
    ]


def test_sdk_error_classes(live_server, node_clients, fixtures):
    result = run_sdk(live_server, node_clients, fixtures, "errors", key(5))["result"]["value"]
    for name in ("malformedKey", "revokedKey"):
        error = result[name]["error"]
        assert error["class"] == "AuthenticationError" and error["status"] == 401, (name, error)
        assert error["requestId"].startswith("req_")
    bad = result["badBody"]["error"]
    assert bad["class"] == "ValidationError" and bad["status"] == 400
    assert bad["details"]["validation_errors"] == [
        {"field": "size", "message": "30000000 is greater than the maximum of 20971520"}
    ]
    missing = result["unknownMedia"]["error"]
    assert missing["class"] == "PostEverywhereError" and missing["status"] == 404 and missing["code"] == "not_found"


def test_sdk_retries_a_429_after_retry_after_then_raises_rate_limit_error(live_server, node_clients, fixtures):
    with ControlClient(live_server.url) as control:
        control.add_fault(
            "status", provider="posteverywhere", operation="uploadMedia", status=429, retry_after=1, times=1
        )
        retried = run_sdk(live_server, node_clients, fixtures, "retry", key(6))
        control.add_fault(
            "status", provider="posteverywhere", operation="uploadMedia", status=429, retry_after=1, times=3
        )
        exhausted = run_sdk(live_server, node_clients, fixtures, "retry", key(7))
    attempts = [e for e in retried["log"] if e["url"].endswith("/media/upload")]
    assert [(e["status"], e["retry_after"]) for e in attempts] == [(429, "1"), (201, None)]
    assert attempts[1]["started"] - attempts[0]["started"] >= 1000  # it waited Retry-After seconds
    assert retried["result"]["value"]["result"]["ok"]
    attempts = [e for e in exhausted["log"] if e["url"].endswith("/media/upload")]
    assert [e["status"] for e in attempts] == [429, 429, 429]  # maxRetries 2: three attempts, then the error
    assert all(b["started"] - a["started"] >= 1000 for a, b in zip(attempts, attempts[1:]))
    error = exhausted["result"]["value"]["result"]["error"]
    assert error["class"] == "RateLimitError" and error["status"] == 429


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=1234, strict_docs=True)])
def test_strict_docs_refuses_what_the_sdk_sends_and_says_why(live_server, node_clients, fixtures):
    result = run_sdk(live_server, node_clients, fixtures, "upload", key(8))["result"]["value"]
    for name in ("image", "video", "pdf"):
        error = result[name]["error"]
        assert error["class"] == "ValidationError" and error["status"] == 400
        assert error["details"]["validation_errors"] == [
            {"field": "size", "message": "is required; file_size is not a documented field"}
        ]
    # the documented flow still works in full under --strict-docs
    manual = run_sdk(live_server, node_clients, fixtures, "manual", key(9))["result"]["value"]
    assert manual["image"]["completed"]["status"] == "ready"


# --- the MCP server ----------------------------------------------------------------------------------------------


def _text(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text) if result.content[0].text[:1] in "[{" else result.content[0].text


@pytest.mark.anyio
async def test_mcp_server_media_and_post_tools(live_server, node_clients):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = node_clients / "node_modules" / "@posteverywhere" / "mcp" / "dist" / "index.js"
    params = StdioServerParameters(
        command="node",
        args=[str(server)],
        env={
            "PATH": os.environ["PATH"],
            "POSTEVERYWHERE_API_KEY": key(10),
            "POSTEVERYWHERE_API_URL": f"{live_server.url}/posteverywhere",
        },
    )
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name for tool in (await session.list_tools()).tools}
            assert {"upload_media_from_url", "get_media", "list_media", "delete_media", "create_post"} <= tools

            imported = _text(
                await session.call_tool(
                    "upload_media_from_url",
                    {"url": "https://cdn.example.com/spring/cover.jpg", "filename": "cover.jpg"},
                )
            )
            assert imported["media_status"] == "ready" and imported["content_type"] == "image/jpeg"
            media_id = imported["media_id"]

            got = _text(await session.call_tool("get_media", {"media_id": media_id}))
            assert got["id"] == media_id and got["status"] == "ready" and got["type"] == "image"
            assert got["mime_type"] == "image/jpeg" and got["file_size"] == imported["size"]
            assert got["dimensions"] == {"width": got["width"], "height": got["height"]}
            assert got["orientation"] in ("landscape", "portrait", "square") and got["aspect_ratio"] > 0

            listed = _text(await session.call_tool("list_media", {"type": "image"}))
            assert [item["id"] for item in listed] == [media_id]

            post = _text(
                await session.call_tool(
                    "create_post", {"content": "Spring collection is live", "account_ids": [7], "media_ids": [media_id]}
                )
            )
            assert post["post_id"] and post["status"] == "publishing" and post["accounts_count"] == 1
            assert post["message"] and post["media_ids"] == [media_id]

            draft = _text(await session.call_tool("create_post", {"content": "For review", "draft": True}))
            assert draft["status"] == "draft" and draft["accounts_count"] == 0  # accounts optional for a draft

            # the review workflow the create_post tool describes: list drafts → get → edit → schedule
            drafts = _text(await session.call_tool("list_posts", {"status": "draft"}))
            assert [p["id"] for p in drafts] == [draft["post_id"]]
            got = _text(await session.call_tool("get_post", {"post_id": draft["post_id"]}))
            assert got["content"] == "For review" and got["status"] == "draft" and got["destinations"] == []
            edited = _text(
                await session.call_tool(
                    "update_post", {"post_id": draft["post_id"], "content": "Reviewed", "account_ids": [7, 8]}
                )
            )
            assert edited["content"] == "Reviewed" and len(edited["destinations"]) == 2
            scheduled = _text(
                await session.call_tool(
                    "schedule_post", {"post_id": draft["post_id"], "scheduled_for": "2030-06-20T14:00:00Z"}
                )
            )
            assert scheduled["status"] == "scheduled" and len(scheduled["destinations"]) == 2
            assert _text(await session.call_tool("list_posts", {"status": "draft"})) == []
            throwaway = _text(await session.call_tool("create_post", {"content": "Scrap", "draft": True}))
            assert (
                _text(await session.call_tool("delete_post", {"post_id": throwaway["post_id"]}))
                == f"Post {throwaway['post_id']} deleted successfully."
            )
            assert len(_text(await session.call_tool("list_posts", {}))) == 2  # the published one and the scheduled

            video = _text(
                await session.call_tool("upload_media_from_url", {"url": "https://cdn.example.com/spring/teaser.mp4"})
            )
            assert video["type"] == "video" and video["media_status"] in ("uploading", "ready")
            polled = _text(await session.call_tool("get_media", {"media_id": video["media_id"]}))
            assert polled["status"] == "ready" and polled["mime_type"] == "video/mp4"
            assert _text(await session.call_tool("delete_media", {"media_id": video["media_id"]}))

            deleted = _text(await session.call_tool("delete_media", {"media_id": media_id}))
            assert deleted == f"Media {media_id} deleted successfully."
            assert _text(await session.call_tool("list_media", {})) == []
            gone = await session.call_tool("get_media", {"media_id": media_id})
            assert gone.is_error and "not found" in gone.content[0].text.lower()

    with ControlClient(live_server.url) as control:
        entries = control.journal(provider="posteverywhere")
    assert {e.request_headers.get("user-agent") for e in entries} == {"posteverywhere-mcp/1.7.0"}
    assert all(e.status is not None and e.status < 500 for e in entries)
    noted = [(e.operation, n) for e in entries for n in e.notes]
    assert len(noted) == 1 and noted[0][0] == "uploadMediaFromUrl" and "MP4 URL" in noted[0][1]


def test_clients_folder_pins_exact_versions():
    manifest = json.loads((CLIENTS / "package.json").read_text())
    lock = json.loads((CLIENTS / "package-lock.json").read_text())
    assert manifest["dependencies"] == {"@posteverywhere/mcp": "1.7.0", "@posteverywhere/sdk": "1.4.2"}
    for name, version in manifest["dependencies"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert not (CLIENTS / "node_modules").exists(), "clients are installed into the cache, never the repository"
