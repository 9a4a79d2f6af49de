"""A corpus of hostile requests for every provider, answered in-process with strict response checks.

Invalid UTF-8, NUL bytes, 10,000 multipart parts, JSON nested 1,000 deep, huge and negative numbers, path traversal
in filenames, keys and URL paths (``../``, absolute, percent-encoded, backslash, overlong-UTF-8 and Unicode
look-alikes). Each request gets its documented status in the provider's own error shape (JSON envelope, S3 XML or
Cloudflare JSON) — never a 5xx: the ``client`` fixture runs strict mode, so an answer outside the spec raises — and
nothing reaches the filesystem outside the blob store. Wire-level inputs (1 MB headers, Content-Length lies,
trickled bodies) are in ``test_hostile_wire.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.test_reliability_support import AP, PE, SF, XF, auth, envelope, md5, payload

pytestmark = pytest.mark.anyio

Builder = Callable[[httpx.AsyncClient], Awaitable[tuple[str, str, dict[str, Any]]]]
DEEP_ARRAY = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
HUGE_INT = "9" * 5000
TRAVERSALS = [
    "../../etc/passwd",
    "/etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..\\..\\windows\\win.ini",
    "C:\\Windows\\win.ini",
    "\u2025/\u2025/etc/passwd",
    "\uff0e\uff0e\uff0fetc\uff0fpasswd",
    "..\u2215..\u2215etc",
    "%c0%ae%c0%ae/etc",
    "....//....//etc",
    "a/../../../b.png",
]


@dataclass(frozen=True)
class Case:
    id: str
    provider: str
    build: Builder
    status: int
    shape: str = "json"  # json (the provider's API envelope), xml (S3), cloudflare
    code: str | None = None  # the S3 <Code>, or the envelope's code where it matters


def json_request(method: str, path: str, provider: str, body: bytes | str, tenant: int = 0) -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        raw = body.encode() if isinstance(body, str) else body
        return method, path, {"content": raw, "headers": {**auth(provider, tenant), "Content-Type": "application/json"}}

    return build


def form_request(
    path: str,
    provider: str,
    parts: list[tuple[bytes, bytes]],
    headers: dict[str, str] | None = None,
    boundary: str = "hostileboundary",
) -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        body = (
            b"".join(
                b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n" for head, value in parts
            )
            + b"--"
            + boundary.encode()
            + b"--\r\n"
        )
        h = {
            **(auth(provider, 0) if headers is None else headers),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }
        return "POST", path, {"content": body, "headers": h}

    return build


def field(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    return b'Content-Disposition: form-data; name="' + name + b'"', value


def file(name: bytes, filename: bytes, data: bytes, content_type: bytes = b"image/jpeg") -> tuple[bytes, bytes]:
    return (
        b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
        b"Content-Type: " + content_type,
        data,
    )


def get_request(path: str, provider: str | None) -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        return "GET", path, {"headers": auth(provider, 0) if provider else {}}

    return build


JPG = payload("jpg", 3_000, 1)
PNG = payload("png", 3_000, 2)
PLATFORMS = field(b"platforms", b'["linkedin"]')


def pe_upload(**overrides: Any) -> str:
    return json.dumps({"filename": "a.png", "content_type": "image/png", "size": 10, **overrides})


def ap_init(**overrides: Any) -> str:
    return json.dumps(
        {"brandId": "b1", "title": "t", "fileName": "a.mp4", "fileSize": 10, "mimeType": "video/mp4", **overrides}
    )


def sf_url(**overrides: Any) -> str:
    return json.dumps({"filename": "a.png", "contentType": "image/png", "size": 10, **overrides})


def raw_number(template: str, number: str) -> str:
    return template.replace('"__N__"', number)


async def _pe_url(c: httpx.AsyncClient, content_type: str = "video/mp4") -> tuple[str, str]:
    r = await c.post(
        f"{PE}/media/upload",
        headers=auth("posteverywhere", 0),
        json={
            "filename": "v.mp4" if content_type.startswith("video") else "a.png",
            "content_type": content_type,
            "size": 10,
        },
    )
    return r.json()["data"]["upload_url"], r.json()["data"]["media_id"]


async def _sf_url(c: httpx.AsyncClient) -> dict[str, Any]:
    r = await c.post(
        f"{SF}/assets/upload-url",
        headers=auth("segmentflow", 0),
        json={"filename": "a.png", "contentType": "image/png", "size": 10},
    )
    return r.json()


async def _ap_url(c: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    clip = (
        await c.post(
            f"{AP}/clips/upload/init",
            headers=auth("autoposting", 0),
            json={"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": 10, "mimeType": "video/mp4"},
        )
    ).json()["data"]
    ids = {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}
    urls = (
        await c.post(f"{AP}/clips/upload/presign", headers=auth("autoposting", 0), json={**ids, "partNumbers": [1]})
    ).json()["data"]["presignedUrls"]
    return urls[0]["url"], ids


def _pe_put(
    query_extra: str = "", body: bytes = b"0123456789", path_suffix: str = "", content_type: str = "video/mp4"
) -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        url, _ = await _pe_url(c)
        base, _, query = url.partition("?")
        return (
            "PUT",
            base + path_suffix + "?" + query + query_extra,
            {"content": body, "headers": {"Content-Type": content_type}},
        )

    return build


def _pe_image_post(parts: list[tuple[bytes, bytes]], boundary: str = "hostileboundary") -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        url, _ = await _pe_url(c, "image/png")
        method, _, kwargs = await form_request("", "posteverywhere", parts, headers={}, boundary=boundary)(c)
        return method, url, kwargs

    return build


def _ap_put(path_transform: Callable[[str], str] = lambda p: p, body: bytes = b"0123456789") -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        url, _ = await _ap_url(c)
        base, _, query = url.partition("?")
        return "PUT", path_transform(base) + "?" + query, {"content": body}

    return build


def _ap_json(path: str, body: Callable[[dict[str, str]], dict[str, Any]]) -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        _, ids = await _ap_url(c)
        return "POST", path, {"json": body(ids), "headers": auth("autoposting", 0)}

    return build


def _always(object_id: str) -> Callable[[str], str]:
    """An object id that replaces the real one, whatever it was."""
    return lambda _: object_id


def _sf_put(
    object_id: Callable[[str], str] = lambda o: o, query_extra: str = "", body: bytes = b"0123456789"
) -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        step = await _sf_url(c)
        base, _, query = step["uploadUrl"].partition("?")
        head, _, oid = base.rpartition("/")
        return (
            "PUT",
            f"{head}/{object_id(oid)}?{query}{query_extra}",
            {"content": body, "headers": {"Content-Type": "image/png"}},
        )

    return build


def _sf_register(s3_key: str) -> Builder:
    async def build(c: httpx.AsyncClient) -> tuple[str, str, dict[str, Any]]:
        await _sf_url(c)
        return (
            "POST",
            f"{SF}/assets",
            {
                "json": {"filename": "a.png", "s3Key": s3_key, "contentType": "image/png", "size": 10},
                "headers": auth("segmentflow", 0),
            },
        )

    return build


TEN_THOUSAND = [field(b"x%d" % i, b"v") for i in range(10_000)]
TEN_THOUSAND_FILES = [file(b"file", b"a.jpg", b"x") for _ in range(10_000)]

CASES: list[Case] = [
    # --- invalid UTF-8 -------------------------------------------------------------------------------------------
    Case(
        "pe-json-invalid-utf8",
        "posteverywhere",
        json_request(
            "POST",
            f"{PE}/media/upload",
            "posteverywhere",
            b'{"filename":"\xff\xfe.png","content_type":"image/png","size":10}',
        ),
        400,
    ),
    Case(
        "ap-json-invalid-utf8",
        "autoposting",
        json_request(
            "POST",
            f"{AP}/clips/upload/init",
            "autoposting",
            b'{"brandId":"\xc3\x28","title":"t","fileName":"a.mp4","fileSize":10,"mimeType":"video/mp4"}',
        ),
        400,
    ),
    Case(
        "sf-json-invalid-utf8",
        "segmentflow",
        json_request(
            "POST",
            f"{SF}/assets/upload-url",
            "segmentflow",
            b'{"filename":"\xed\xa0\x80.png","contentType":"image/png","size":10}',
        ),
        400,
    ),
    Case(
        "xf-field-invalid-utf8",
        "xenonflare",
        form_request(
            f"{XF}/images", "xenonflare", [PLATFORMS, field(b"title", b"\xff\xfe"), file(b"file", b"a.jpg", JPG)]
        ),
        400,
    ),
    Case(
        "ap-field-invalid-utf8",
        "autoposting",
        form_request(
            f"{AP}/carousels/c1/assets",
            "autoposting",
            [field(b"slideId", b"\x80abc"), file(b"file", b"a.png", PNG, b"image/png")],
        ),
        400,
    ),
    Case(
        "pe-cloudflare-field-invalid-utf8",
        "posteverywhere",
        _pe_image_post([field(b"metadata", b"\xfe"), file(b"file", b"a.png", PNG, b"image/png")]),
        400,
        "cloudflare",
    ),
    # --- NUL bytes -------------------------------------------------------------------------------------------------
    Case(
        "pe-nul-in-filename",
        "posteverywhere",
        json_request("POST", f"{PE}/media/upload", "posteverywhere", pe_upload(filename="a\u0000.png")),
        400,
    ),
    Case(
        "pe-raw-nul-in-json",
        "posteverywhere",
        json_request(
            "POST",
            f"{PE}/media/upload",
            "posteverywhere",
            b'{"filename":"a\x00.png","content_type":"image/png","size":10}',
        ),
        400,
    ),
    Case(
        "ap-raw-nul-in-json",
        "autoposting",
        json_request("POST", f"{AP}/clips/upload/init", "autoposting", ap_init().replace('"t"', '"t\x00"')),
        400,
    ),
    Case(
        "sf-raw-nul-in-json",
        "segmentflow",
        json_request("POST", f"{SF}/assets/upload-url", "segmentflow", sf_url().replace('"a.png"', '"a\x00.png"')),
        400,
    ),
    Case(
        "xf-nul-chunk-field",
        "xenonflare",
        form_request(
            f"{XF}/chunks",
            "xenonflare",
            [
                field(b"chunkIndex", b"0\x00"),
                field(b"totalChunks", b"1"),
                field(b"fileId", b"f"),
                file(b"file", b"blob", b"data", b"application/octet-stream"),
            ],
        ),
        400,
    ),
    Case(
        "sf-nul-in-signature",
        "segmentflow",
        _sf_put(query_extra="&X-Emulator-Signature=%00"),
        403,
        "xml",
        "SignatureDoesNotMatch",
    ),
    # --- 10,000 multipart parts -----------------------------------------------------------------------------------
    Case("xf-10000-fields", "xenonflare", form_request(f"{XF}/images", "xenonflare", [PLATFORMS, *TEN_THOUSAND]), 400),
    Case("xf-10000-files", "xenonflare", form_request(f"{XF}/chunks", "xenonflare", TEN_THOUSAND_FILES), 400),
    Case("ap-10000-fields", "autoposting", form_request(f"{AP}/carousels/c1/assets", "autoposting", TEN_THOUSAND), 400),
    Case("pe-10000-parts", "posteverywhere", _pe_image_post(TEN_THOUSAND_FILES), 400, "cloudflare"),
    Case(
        "sf-10000-parts-to-json-api",
        "segmentflow",
        form_request(f"{SF}/assets/upload-url", "segmentflow", TEN_THOUSAND),
        415,
    ),
    # --- JSON nested 1,000 deep -----------------------------------------------------------------------------------
    Case(
        "pe-deep-array", "posteverywhere", json_request("POST", f"{PE}/media/upload", "posteverywhere", DEEP_ARRAY), 400
    ),
    Case(
        "pe-deep-object-in-post",
        "posteverywhere",
        json_request(
            "POST",
            f"{PE}/posts",
            "posteverywhere",
            '{"content":"x","account_ids":[1],"platform_content":' + DEEP_OBJECT + "}",
        ),
        400,
    ),
    Case(
        "ap-deep-object",
        "autoposting",
        json_request("POST", f"{AP}/clips/upload/complete", "autoposting", DEEP_OBJECT),
        400,
    ),
    Case(
        "sf-deep-in-tags",
        "segmentflow",
        json_request(
            "PATCH", f"{SF}/assets/3c90c3cc-0d44-4b50-8888-8dd25736052a", "segmentflow", '{"tags":' + DEEP_ARRAY + "}"
        ),
        400,
    ),
    Case(
        "xf-deep-config",
        "xenonflare",
        form_request(
            f"{XF}/images",
            "xenonflare",
            [
                field(b"platforms", b'["instagram"]'),
                field(b"instagram", DEEP_OBJECT.encode()),
                file(b"file", b"a.jpg", JPG),
            ],
        ),
        400,
    ),
    Case(
        "xf-deep-platforms",
        "xenonflare",
        form_request(
            f"{XF}/images", "xenonflare", [field(b"platforms", DEEP_ARRAY.encode()), file(b"file", b"a.jpg", JPG)]
        ),
        400,
    ),
    # --- huge numbers ---------------------------------------------------------------------------------------------
    Case(
        "pe-size-5000-digits",
        "posteverywhere",
        json_request("POST", f"{PE}/media/upload", "posteverywhere", raw_number(pe_upload(size="__N__"), HUGE_INT)),
        400,
    ),
    Case(
        "pe-size-1e400",
        "posteverywhere",
        json_request("POST", f"{PE}/media/upload", "posteverywhere", raw_number(pe_upload(size="__N__"), "1e400")),
        400,
    ),
    Case(
        "pe-size-2-pow-64",
        "posteverywhere",
        json_request("POST", f"{PE}/media/upload", "posteverywhere", pe_upload(size=2**64)),
        400,
    ),
    Case(
        "pe-nan",
        "posteverywhere",
        json_request("POST", f"{PE}/media/upload", "posteverywhere", raw_number(pe_upload(size="__N__"), "NaN")),
        400,
    ),
    Case(
        "ap-filesize-5000-digits",
        "autoposting",
        json_request("POST", f"{AP}/clips/upload/init", "autoposting", raw_number(ap_init(fileSize="__N__"), HUGE_INT)),
        400,
    ),
    Case(
        "ap-filesize-1e400",
        "autoposting",
        json_request("POST", f"{AP}/clips/upload/init", "autoposting", raw_number(ap_init(fileSize="__N__"), "1e400")),
        400,
    ),
    Case(
        "ap-part-number-huge",
        "autoposting",
        _ap_put(lambda p: p.rsplit("/", 1)[0] + "/" + HUGE_INT),
        400,
        "xml",
        "InvalidArgument",
    ),
    Case(
        "sf-size-5000-digits",
        "segmentflow",
        json_request("POST", f"{SF}/assets/upload-url", "segmentflow", raw_number(sf_url(size="__N__"), HUGE_INT)),
        400,
    ),
    Case(
        "sf-size-infinity",
        "segmentflow",
        json_request("POST", f"{SF}/assets/upload-url", "segmentflow", raw_number(sf_url(size="__N__"), "Infinity")),
        400,
    ),
    Case("sf-limit-5000-digits", "segmentflow", get_request(f"{SF}/assets?limit={HUGE_INT}", "segmentflow"), 400),
    Case(
        "xf-chunk-index-5000-digits",
        "xenonflare",
        form_request(
            f"{XF}/chunks",
            "xenonflare",
            [
                field(b"chunkIndex", HUGE_INT.encode()),
                field(b"totalChunks", HUGE_INT.encode()),
                field(b"fileId", b"f"),
                file(b"file", b"blob", b"data", b"application/octet-stream"),
            ],
        ),
        400,
    ),
    Case(
        "xf-config-huge-number",
        "xenonflare",
        form_request(
            f"{XF}/images",
            "xenonflare",
            [
                field(b"platforms", b'["instagram"]'),
                field(b"instagram", b'{"caption": ' + HUGE_INT.encode() + b"}"),
                file(b"file", b"a.jpg", JPG),
            ],
        ),
        400,
    ),
    Case(
        "pe-signed-size-5000-digits",
        "posteverywhere",
        _pe_put(query_extra=f"&X-Emulator-Max-Size={HUGE_INT}"),
        400,
        "xml",
    ),
    # --- negative sizes -------------------------------------------------------------------------------------------
    Case(
        "pe-size-negative",
        "posteverywhere",
        json_request("POST", f"{PE}/media/upload", "posteverywhere", pe_upload(size=-1)),
        400,
    ),
    Case(
        "ap-filesize-negative",
        "autoposting",
        json_request("POST", f"{AP}/clips/upload/init", "autoposting", ap_init(fileSize=-5)),
        400,
    ),
    Case(
        "ap-part-number-negative",
        "autoposting",
        _ap_put(lambda p: p.rsplit("/", 1)[0] + "/-1"),
        400,
        "xml",
        "InvalidArgument",
    ),
    Case(
        "ap-presign-negative-part",
        "autoposting",
        _ap_json(f"{AP}/clips/upload/presign", lambda ids: {**ids, "partNumbers": [-1]}),
        400,
    ),
    Case(
        "sf-size-negative",
        "segmentflow",
        json_request("POST", f"{SF}/assets/upload-url", "segmentflow", sf_url(size=-1)),
        400,
    ),
    Case("sf-offset-negative", "segmentflow", get_request(f"{SF}/assets?offset=-1", "segmentflow"), 400),
    Case(
        "xf-chunk-index-negative",
        "xenonflare",
        form_request(
            f"{XF}/chunks",
            "xenonflare",
            [
                field(b"chunkIndex", b"-1"),
                field(b"totalChunks", b"-5"),
                field(b"fileId", b"f"),
                file(b"file", b"blob", b"data", b"application/octet-stream"),
            ],
        ),
        400,
    ),
    Case("pe-signed-size-negative", "posteverywhere", _pe_put(query_extra="&X-Emulator-Max-Size=-1"), 400, "xml"),
    # --- path traversal in keys and URL paths ---------------------------------------------------------------------
    *[
        Case(f"sf-register-traversal-{i}", "segmentflow", _sf_register(key), 422)
        for i, key in enumerate(
            [
                "../../etc/passwd",
                "/etc/passwd",
                "assets/../../etc/passwd",
                "assets/..%2F..%2Fx",
                "assets/\u2025/\u2025/x",
                "assets\\..\\..\\x",
            ]
        )
    ],
    Case(
        "ap-complete-key-traversal",
        "autoposting",
        _ap_json(
            f"{AP}/clips/upload/complete",
            lambda ids: {**ids, "key": "../../etc/passwd", "parts": [{"partNumber": 1, "eTag": md5(b"x")}]},
        ),
        400,
    ),
    *[
        Case(
            f"sf-get-object-traversal-{i}",
            "segmentflow",
            get_request(f"/segmentflow/storage/assets/{p}", None),
            404,
            "xml",
            "NoSuchKey",
        )
        for i, p in enumerate(
            [
                "..%2F..%2Fetc%2Fpasswd",
                "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                "..%5C..%5Cwin.ini",
                "%c0%ae%c0%ae%2fetc",
                "%E2%80%A5%2Fetc",
                "%2Fetc%2Fpasswd",
            ]
        )
    ],
    *[
        Case(f"sf-put-object-traversal-{i}", "segmentflow", _sf_put(object_id=_always(p)), status, "xml", code)
        for i, (p, status, code) in enumerate(
            [
                ("..%2F..%2Fetc%2Fpasswd", 404, "NoSuchKey"),  # no such route
                ("%2e%2e", 403, "SignatureDoesNotMatch"),
                ("..%5C..%5Cwin.ini", 403, "SignatureDoesNotMatch"),
            ]
        )
    ],
    *[
        Case(
            f"ap-get-object-traversal-{i}",
            "autoposting",
            get_request(f"{AP}/storage/objects/clips/{p}", None),
            404,
            "xml",
            "NoSuchKey",
        )
        for i, p in enumerate(
            ["..%2F..%2F..%2Fetc/passwd/x", "org_1/%2e%2e/clip.mp4", "a/b/..%5C..%5Cwin.ini", "%2Fetc/passwd/x"]
        )
    ],
    Case(
        "ap-get-asset-traversal",
        "autoposting",
        get_request(f"{AP}/storage/assets/..%2F..%2Fetc%2Fpasswd", None),
        404,
        "xml",
        "NoSuchKey",
    ),
    Case(
        "ap-put-part-traversal",
        "autoposting",
        _ap_put(lambda p: p.replace("/storage/clips/", "/storage/clips/..%2F..%2F")),
        404,
        "xml",
    ),
    *[
        Case(
            f"pe-get-object-traversal-{i}",
            "posteverywhere",
            get_request(f"/posteverywhere/api/storage/objects/{p}", None),
            status,
            "xml",
        )
        for i, (p, status) in enumerate(
            [("..%2F..%2Fetc%2Fpasswd", 404), ("%2e%2e", 400), ("%2Fetc%2Fpasswd", 404), ("%E2%80%A5", 400)]
        )
    ],
    Case("pe-put-object-traversal", "posteverywhere", _pe_put(path_suffix="%2F..%2F..%2Fx"), 404, "xml"),
    *[
        Case(f"xf-get-image-traversal-{i}", "xenonflare", get_request(f"{XF}/images/{p}", "xenonflare"), 404)
        for i, p in enumerate(["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%00", "..%5C..%5Cx"])
    ],
    Case(
        "xf-chunk-file-id-traversal",
        "xenonflare",
        get_request(f"{XF}/chunks?fileId=..%2F..%2Fetc%2Fpasswd", "xenonflare"),
        200,
    ),
]

# path traversal in file names: a file name is a label (stored, echoed), never a path the server opens
FILENAME_CASES = [
    *[
        Case(
            f"pe-filename-{i}",
            "posteverywhere",
            json_request("POST", f"{PE}/media/upload", "posteverywhere", pe_upload(filename=name)),
            400 if ("/" in name or "\\" in name) else 201,
        )
        for i, name in enumerate(TRAVERSALS)
    ],
    *[
        Case(
            f"ap-filename-{i}",
            "autoposting",
            json_request("POST", f"{AP}/clips/upload/init", "autoposting", ap_init(fileName=name)),
            201,
        )
        for i, name in enumerate(TRAVERSALS)
    ],
    *[
        Case(
            f"sf-filename-{i}",
            "segmentflow",
            json_request("POST", f"{SF}/assets/upload-url", "segmentflow", sf_url(filename=name)),
            200,
        )
        for i, name in enumerate(TRAVERSALS)
    ],
    *[
        Case(
            f"xf-filename-{i}",
            "xenonflare",
            form_request(f"{XF}/images", "xenonflare", [PLATFORMS, file(b"file", name.encode(), JPG)]),
            200,
        )
        for i, name in enumerate(TRAVERSALS)
    ],
    *[
        Case(
            f"ap-asset-filename-{i}",
            "autoposting",
            form_request(f"{AP}/carousels/c1/assets", "autoposting", [file(b"file", name.encode(), PNG, b"image/png")]),
            200,
        )
        for i, name in enumerate(TRAVERSALS)
    ],
]
ALL = CASES + FILENAME_CASES
BLOB_FILE = re.compile(r"(\.tmp|[0-9a-f]{2}/[0-9a-f]{64}(\.json)?)")


def _assert_shape(case: Case, r: httpx.Response) -> None:
    if case.shape == "xml":
        assert r.headers["content-type"].startswith("application/xml"), r.text[:300]
        assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>')
        if case.code is not None:
            assert f"<Code>{case.code}</Code>" in r.text, r.text[:300]
    elif case.shape == "cloudflare":
        body = r.json()
        assert body["success"] is False and body["result"] is None and body["errors"][0]["message"]
    elif r.status_code >= 400:
        envelope(case.provider, r.json())


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
async def test_hostile_request_gets_its_status_in_the_providers_shape(client, runtime, case):
    method, url, kwargs = await case.build(client)
    r = await client.request(method, url, **kwargs)
    assert r.status_code == case.status, r.text[:500]
    _assert_shape(case, r)
    for secret in (
        auth(case.provider, 0).get("Authorization", "").removeprefix("Bearer "),
        auth(case.provider, 0).get("X-API-Key", ""),
    ):
        assert not secret or secret not in r.text  # never echoed, even in a refusal
    # whatever was sent, nothing reached the filesystem outside the blob store's own layout
    root = runtime.blobs.root
    for path in (p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        assert BLOB_FILE.fullmatch(relative) or relative.startswith(".tmp/"), relative
    assert list(runtime.blobs.tmp_dir.iterdir()) == []


async def test_segmentflow_keys_made_from_hostile_filenames_are_one_safe_segment(client):
    for name in TRAVERSALS:
        r = await client.post(
            f"{SF}/assets/upload-url",
            headers=auth("segmentflow", 0),
            json={"filename": name, "contentType": "image/png", "size": 10},
        )
        key = r.json()["key"]
        object_id = key.removeprefix("assets/")
        assert re.fullmatch(r"[A-Za-z0-9._-]+", object_id) and not object_id.startswith(".")
        assert ".." not in object_id.split("/"), key


async def test_stored_values_with_nul_and_odd_text_come_back_exactly(client):
    title = "t\u0000\u202e\ud7ff\U0001f600"  # NUL, a bidi override, the edge of the BMP, an emoji
    r = await client.post(
        f"{AP}/clips/upload/init",
        headers=auth("autoposting", 0),
        json=json.loads(ap_init(title=title, fileName="../\u0000.mp4")),
    )
    assert r.status_code == 201
    clip = (await client.get(f"{AP}/clips/{r.json()['data']['clipId']}", headers=auth("autoposting", 0))).json()
    assert clip["data"]["title"] == title and clip["data"]["fileName"] == "../\u0000.mp4"
    r = await client.post(
        f"{XF}/images",
        headers=auth("xenonflare", 0),
        files=[("platforms", (None, '["linkedin"]')), ("title", (None, title)), ("file", ("a.jpg", JPG, "image/jpeg"))],
    )
    assert r.status_code == 200 and r.json()["data"][0]["title"] == title


def test_the_corpus_covers_every_provider_and_every_kind_of_input():
    providers = {c.provider for c in ALL}
    assert providers == {"posteverywhere", "autoposting", "segmentflow", "xenonflare"}
    for kind in ("invalid-utf8", "nul", "10000", "deep", "5000-digits", "negative", "traversal", "filename"):
        covered = {c.provider for c in ALL if kind in c.id}
        assert covered == providers, (kind, covered)


async def test_a_lone_surrogate_in_json_is_kept_and_echoed_as_its_escape(client):
    # "\ud800" is valid JSON text for an unpaired surrogate; UTF-8 cannot carry it, so the answer escapes it as
    # JavaScript's JSON.stringify does (before the fix: UnicodeEncodeError, a 500, on every read of the record)
    body = b'{"brandId":"b","title":"\\ud800 half","fileName":"a.mp4","fileSize":10,"mimeType":"video/mp4"}'
    r = await client.post(
        f"{AP}/clips/upload/init", content=body, headers={**auth("autoposting", 0), "Content-Type": "application/json"}
    )
    assert r.status_code == 201
    got = await client.get(f"{AP}/clips/{r.json()['data']['clipId']}", headers=auth("autoposting", 0))
    assert got.status_code == 200 and b'"title":"\\ud800 half"' in got.content
    assert got.json()["data"]["title"] == "\ud800 half"
    post = await client.post(
        f"{PE}/posts",
        content=b'{"content":"\\udfff","account_ids":[1]}',
        headers={**auth("posteverywhere", 0), "Content-Type": "application/json"},
    )
    assert post.status_code == 201 and b'"content":"\\udfff"' in post.content


async def test_a_json_body_cut_off_by_a_disconnect_is_journaled_499_and_stores_nothing(app, runtime, clock):
    """``read_body`` reads ``receive`` itself: a client gone mid-body is a 499 in the journal, no record, no 500."""
    body = json.dumps({"filename": "a.png", "content_type": "image/png", "size": 68}).encode()
    headers = {**auth("posteverywhere", 0), "content-type": "application/json", "content-length": str(len(body))}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{PE}/media/upload",
        "raw_path": f"{PE}/media/upload".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    arriving: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    messages = iter(arriving)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 499
    (entry,) = runtime.journal.query(operation="uploadMedia")
    assert entry.status == 499 and entry.request_bytes == 10
    assert runtime.store.values("posteverywhere:media") == []


@pytest.mark.parametrize(
    ("method", "path", "status", "allow", "shape"),
    [
        ("GET", "/nope", 404, None, "emulator"),
        ("POST", "/_emulator/health", 405, "GET, HEAD", "emulator"),
        ("GET", f"{PE}/nope", 404, None, "posteverywhere"),
        ("DELETE", f"{PE}/media/upload", 405, "POST", "posteverywhere"),
    ],
)
async def test_what_the_routers_refuse_is_answered_in_its_owners_shape(client, method, path, status, allow, shape):
    """404 and 405 from the emulator's router (through its exception layer) and from a provider's own router."""
    r = await client.request(method, path)
    assert r.status_code == status and r.headers.get("allow") == allow
    body = r.json()
    if shape == "emulator":
        assert body["error"] == ("not_found" if status == 404 else "method_not_allowed")
    else:
        envelope(shape, body)
        assert body["error"]["code"] == ("not_found" if status == 404 else "method_not_allowed")


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nope", 404), ("PATCH", "/api/v1/media/upload", 405)])
async def test_with_one_provider_at_the_root_its_own_shape_answers_what_the_router_refuses(method, path, status):
    from emulator.app import create_app
    from emulator.settings import Settings

    app = create_app(Settings(strict=True, provider="posteverywhere"))
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            r = await c.request(method, path)
    finally:
        app.state.runtime.close()
    assert r.status_code == status
    envelope("posteverywhere", r.json())
    assert r.headers.get("allow") == ("POST" if status == 405 else None)
