"""Autoposting.ai carousel assets: POST /carousels/{carouselId}/assets through HTTP — real JPEG/PNG/WebP only,
decided by content; the url serves the bytes back; every refusal in the carousel document's envelope."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.helpers import MP4, PDF, sample
from tests.test_autoposting_flow import AP, AUTH, MIB, ULID, X_API_KEY, md5

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

ASSETS = f"{AP}/carousels/car_01HXYZ/assets"


def carousel_error(r: httpx.Response, status: int, error: str) -> str:
    """Assert the carousel document's error envelope and return its message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"success", "error", "message"}
    assert body["success"] is False and body["error"] == error
    return body["message"]


@pytest.mark.parametrize("ext, mime", [("jpg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")])
async def test_each_accepted_format_uploads_and_is_served_back(client, ext, mime):
    image = sample(ext)
    r = await client.post(ASSETS, headers=AUTH, files={"file": (f"slide.{ext}", image, mime)})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and set(body["data"]) == {"assetId", "url"}
    asset_id = body["data"]["assetId"]
    assert re.fullmatch(f"asset_{ULID}", asset_id)
    assert body["data"]["url"] == f"http://127.0.0.1:8080{AP}/storage/assets/{asset_id}.{ext}"
    assert r.headers["x-ratelimit-limit"] == "100" and r.headers["x-ratelimit-remaining"] == "99"

    served = await client.get(body["data"]["url"])  # public, like a CDN: no key
    assert served.status_code == 200
    assert served.content == image
    assert served.headers["content-type"] == mime
    assert served.headers["etag"] == f'"{md5(image)}"'
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_type_comes_from_the_bytes_not_the_name_or_declared_type(client):
    png = sample("png")
    r = await client.post(ASSETS, headers=AUTH, files={"file": ("photo.jpg", png, "image/jpeg")})
    assert r.status_code == 200
    url = r.json()["data"]["url"]
    assert url.endswith(".png")
    assert (await client.get(url)).headers["content-type"] == "image/png"


async def test_slide_id_and_the_x_api_key_header(client):
    r = await client.post(
        ASSETS,
        headers=X_API_KEY,
        data={"slideId": "slide_01"},
        files={"file": ("a.webp", sample("webp"), "image/webp")},
    )
    assert r.status_code == 200 and r.json()["data"]["assetId"].startswith("asset_")


async def test_asset_url_needs_its_own_extension(client):
    r = await client.post(ASSETS, headers=AUTH, files={"file": ("a.png", sample("png"), "image/png")})
    url = r.json()["data"]["url"]
    wrong = await client.get(url[: -len(".png")] + ".jpg")
    assert wrong.status_code == 404 and "<Code>NoSuchKey</Code>" in wrong.text


async def test_magic_carousel_id_is_the_documented_404(client):
    r = await client.post(
        f"{AP}/carousels/car_not_found/assets", headers=AUTH, files={"file": ("a.png", sample("png"), "image/png")}
    )
    assert carousel_error(r, 404, "Not Found") == "Carousel car_not_found not found or not owned by your org."
    assert r.headers["x-ratelimit-remaining"] == "99"


async def test_any_other_carousel_id_exists_for_its_key(client):
    for carousel in ("car_01HXYZ", "car_anything", "12345"):
        r = await client.post(
            f"{AP}/carousels/{carousel}/assets", headers=AUTH, files={"file": ("a.png", sample("png"), "image/png")}
        )
        assert r.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic sk-social-dev0123456789abcdef"},
        {"Authorization": "Bearer sk-social-short"},
        {"Authorization": "Bearer pe_live_" + "0" * 32},
        {"x-api-key": "sk_social_dev0123456789abcdef"},
    ],
)
async def test_401_exactly_as_published_for_carousels(client, headers):
    r = await client.post(ASSETS, headers=headers, files={"file": ("a.png", sample("png"), "image/png")})
    assert r.status_code == 401
    assert r.json() == {"success": False, "error": "Unauthorized", "message": "Authentication required."}
    assert "x-ratelimit-limit" not in r.headers


# --- bad input: precise 400/413/415, nothing kept ----------------------------------------------------------------


@pytest.fixture
def nothing_kept(runtime):
    """Every refused upload leaves the blob store as it found it."""
    before = set(runtime.blobs.index)
    yield
    assert set(runtime.blobs.index) == before


async def test_missing_file(client, nothing_kept):
    r = await client.post(ASSETS, headers=AUTH, data={"slideId": "slide_01"}, files={"other": ("x", b"", "text/plain")})
    assert carousel_error(r, 400, "Bad Request") == "other: is not a file field of this operation (file fields: file)."
    r = await client.post(
        ASSETS, headers=AUTH, data={"slideId": "slide_01"}, files={"ignored": (None, "text field")}
    )  # multipart with text fields only
    assert carousel_error(r, 400, "Bad Request") == "file: is required"


async def test_empty_file(client, nothing_kept):
    r = await client.post(ASSETS, headers=AUTH, files={"file": ("a.png", b"", "image/png")})
    assert carousel_error(r, 400, "Bad Request") == "file: is empty (0 bytes); send a JPEG, PNG or WebP image."


@pytest.mark.parametrize(
    "name, content, found",
    [
        ("fake.png", b"this is text, not a PNG", "the uploaded bytes are not a recognised format"),
        ("clip.png", MP4, "the uploaded bytes are video/mp4"),
        ("doc.jpg", PDF, "the uploaded bytes are application/pdf"),
        ("anim.png", None, "the uploaded bytes are image/gif"),
        ("photo.webp", None, "the uploaded bytes are image/heic"),
    ],
)
async def test_only_jpeg_png_webp_bytes(client, nothing_kept, name, content, found):
    if content is None:
        content = sample("gif") if name.startswith("anim") else sample("heic")
    r = await client.post(ASSETS, headers=AUTH, files={"file": (name, content, "image/png")})
    assert carousel_error(r, 400, "Bad Request") == f"file: must be a JPEG, PNG or WebP image; {found}."


async def test_two_files(client, nothing_kept):
    png = sample("png")
    r = await client.post(
        ASSETS, headers=AUTH, files=[("file", ("a.png", png, "image/png")), ("file", ("b.png", png, "image/png"))]
    )
    assert carousel_error(r, 400, "Bad Request") == "file: send exactly one file per request; got 2."


async def test_file_as_a_text_field(client, nothing_kept):
    r = await client.post(ASSETS, headers=AUTH, files={"file": (None, "not a file")})
    assert carousel_error(r, 400, "Bad Request") == "file: must be a file part (with a filename), not a text field."


@pytest.mark.parametrize(
    "slide_id, message",
    [
        ("s" * 256, "slideId: '" + "s" * 256 + "' is too long"),
        ("", "slideId: '' should be non-empty"),
        ("s" * 70_000, "Field 'slideId' is longer than 65536 bytes."),
    ],
)
async def test_bad_slide_id(client, nothing_kept, slide_id, message):
    r = await client.post(
        ASSETS, headers=AUTH, data={"slideId": slide_id}, files={"file": ("a.png", sample("png"), "image/png")}
    )
    assert carousel_error(r, 400, "Bad Request") == message  # a 70 kB value is never echoed back


async def test_slide_id_sent_as_a_file(client, nothing_kept):
    r = await client.post(
        ASSETS,
        headers=AUTH,
        files={"file": ("a.png", sample("png"), "image/png"), "slideId": ("s.txt", b"slide_01", "text/plain")},
    )
    assert (
        carousel_error(r, 400, "Bad Request") == "slideId: is not a file field of this operation (file fields: file)."
    )


async def test_multipart_without_boundary(client, nothing_kept):
    r = await client.post(ASSETS, headers={**AUTH, "Content-Type": "multipart/form-data"}, content=b"--x\r\n")
    assert (
        carousel_error(r, 400, "Bad Request")
        == "multipart/form-data body has no boundary parameter in its Content-Type."
    )


async def test_truncated_multipart(client, nothing_kept):
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + sample("png")
    )
    r = await client.post(ASSETS, headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"}, content=body)
    assert carousel_error(r, 400, "Bad Request") == "multipart body is truncated: the closing boundary never arrived."


async def test_json_instead_of_multipart_is_415(client, nothing_kept):
    r = await client.post(ASSETS, headers=AUTH, json={"file": "a.png"})
    assert (
        carousel_error(r, 415, "Unsupported Media Type")
        == "Content-Type must be multipart/form-data, got application/json."
    )
    assert r.headers["x-ratelimit-limit"] == "100"


async def test_file_over_20_mib_is_413(client, nothing_kept):
    big = sample("png") + b"\0" * (21 * MIB)
    r = await client.post(ASSETS, headers=AUTH, files={"file": ("a.png", big, "image/png")})
    assert carousel_error(r, 413, "Payload Too Large").startswith("Request body of ")
    assert "exceeds the 20971520-byte file limit." in r.json()["message"]


async def test_streamed_file_over_20_mib_is_cut_off(client, nothing_kept):
    async def body():
        yield (
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        )
        for _ in range(21):
            yield b"\0" * MIB
        yield b"\r\n--xyz--\r\n"

    r = await client.post(ASSETS, headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"}, content=body())
    assert carousel_error(r, 413, "Payload Too Large") == "Body exceeds the maximum allowed size of 20971520 bytes."


async def test_file_of_exactly_20_mib_is_accepted(client):
    png = sample("png")
    exact = png + b"\0" * (20 * MIB - len(png))  # PNG readers stop at IEND; trailing bytes keep it a PNG
    r = await client.post(ASSETS, headers=AUTH, files={"file": ("a.png", exact, "image/png")})
    assert r.status_code == 200
    assert (await client.get(r.json()["data"]["url"])).content == exact


async def test_wrong_method_is_405_in_the_carousel_envelope(client):
    r = await client.get(ASSETS, headers=AUTH)
    assert carousel_error(r, 405, "Method Not Allowed").startswith("Method GET is not allowed")
