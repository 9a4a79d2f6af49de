"""Segmentflow: upload-url → PUT the bytes → register the asset → read, update, delete it.

Interleaved assets on two keys, PUTs repeated before registration (the last one wins), registrations attempted
before the bytes arrive (422, nothing changes), URLs expired by moving the clock, metadata patched.

Invariants: the PUT's ETag is the MD5 of the bytes; the asset's url serves exactly the bytes PUT; the asset keeps
its size and content type and the metadata last patched; after delete the asset and its bytes are gone; a key
never sees another key's assets; rate-limit headers follow the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from contracts.flows.base import FlowMachine, ProviderContract, md5
from contracts.flows.samples import PDF, filler, image
from contracts.target import ProviderTarget

URL_EXPIRES_IN = 900
KINDS = {
    "image/jpeg": ("photo.jpg", lambda seed: image("jpg")),
    "image/png": ("photo.png", lambda seed: image("png")),
    "text/csv": ("leads.csv", lambda seed: b"email,name\n" + filler(seed, 40).hex().encode() + b",x\n"),
    "application/pdf": ("guide.pdf", lambda seed: PDF),
}


@dataclass
class Asset:
    key: str  # s3Key
    owner: int
    filename: str
    content_type: str
    content: bytes
    upload_url: str
    put: bool = False
    id: str | None = None  # once registered
    deleted: bool = False
    url_expired: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class AssetUploads(FlowMachine):
    provider_name = "segmentflow"
    flow_name = "presigned asset upload and registration"

    def __init__(self) -> None:
        super().__init__()
        self.assets: dict[str, Asset] = {}

    def _pending(self) -> list[str]:
        return [k for k, a in self.assets.items() if a.id is None and not a.url_expired]

    def _live(self) -> list[str]:
        return [k for k, a in self.assets.items() if a.id is not None and not a.deleted]

    @initialize(content_type=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 2**16))
    def first_upload(self, content_type: str, seed: int) -> None:
        """Every example starts with an upload URL, so that its steps reach the PUT, registration and updates."""
        self.upload_url(content_type, seed, 0)

    @rule(content_type=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 2**16), owner=st.integers(0, 1))
    def upload_url(self, content_type: str, seed: int, owner: int) -> None:
        owner = owner if owner < len(self.keys) else 0
        filename, make = KINDS[content_type]
        content = make(seed)
        r = self.api(
            "POST",
            "createAssetUploadUrl",
            "/api/v1/assets/upload-url",
            key=self.keys[owner],
            json={"filename": filename, "contentType": content_type, "size": len(content)},
        )
        self.expect(r, 200, "createAssetUploadUrl")
        data = r.json()
        self.assets[data["key"]] = Asset(data["key"], owner, filename, content_type, content, data["uploadUrl"])

    @precondition(lambda self: bool(self._pending()))
    @rule(data=st.data())
    def put_bytes(self, data: st.DataObject) -> None:
        asset = self.assets[data.draw(st.sampled_from(self._pending()))]
        r = self.send("PUT", asset.upload_url, content=asset.content, headers={"Content-Type": asset.content_type})
        self.expect(r, 200, "putAssetObject")
        self.ctx.check(
            "etag_matches_body",
            "putAssetObject",
            r.headers.get("etag") == f'"{md5(asset.content)}"',
            f"ETag {r.headers.get('etag')} is not the MD5 of the {len(asset.content)} bytes PUT",
        )
        asset.put = True

    @precondition(
        lambda self: bool(self._pending()) or any(a.url_expired and a.id is None for a in self.assets.values())
    )
    @rule(data=st.data())
    def register(self, data: st.DataObject) -> None:
        unregistered = [k for k, a in self.assets.items() if a.id is None]
        asset = self.assets[data.draw(st.sampled_from(unregistered))]
        r = self.api(
            "POST",
            "createAsset",
            "/api/v1/assets",
            key=self.keys[asset.owner],
            json={
                "filename": asset.filename,
                "s3Key": asset.key,
                "contentType": asset.content_type,
                "size": len(asset.content),
            },
        )
        if not asset.put:
            self.expect(r, 422, "createAsset")  # nothing was PUT under the key (or its URL expired first)
            return
        self.expect(r, 200, "createAsset")
        view = r.json()["asset"]
        self.ctx.check(
            "flow_status",
            "createAsset",
            view["size"] == len(asset.content)
            and view["contentType"] == asset.content_type
            and view["s3Key"] == asset.key,
            f"the asset should keep size {len(asset.content)}, {asset.content_type}, {asset.key}: {view}",
        )
        asset.id = view["id"]
        self._check_bytes(asset, view["url"])

    def _check_bytes(self, asset: Asset, url: str) -> None:
        got = self.send("GET", url)
        self.expect(got, 200, "getAssetObject")
        self.ctx.check(
            "stored_bytes_match",
            "getAssetObject",
            got.content == asset.content,
            f"served {len(got.content)} bytes (MD5 {md5(got.content)}), PUT {len(asset.content)} "
            f"(MD5 {md5(asset.content)})",
        )

    @precondition(lambda self: bool(self._live()))
    @rule(
        data=st.data(),
        description=st.one_of(st.none(), st.text(max_size=40)),
        tags=st.lists(st.text(min_size=1, max_size=12), max_size=4),
    )
    def patch(self, data: st.DataObject, description: str | None, tags: list[str]) -> None:
        asset = self.assets[data.draw(st.sampled_from(self._live()))]
        r = self.api(
            "PATCH",
            "updateAsset",
            f"/api/v1/assets/{asset.id}",
            key=self.keys[asset.owner],
            json={"description": description, "tags": tags},
        )
        self.expect(r, 200, "updateAsset")
        asset.meta = {"description": description, "tags": tags}
        got = self.api("GET", "getAsset", f"/api/v1/assets/{asset.id}", key=self.keys[asset.owner])
        self.expect(got, 200, "getAsset")
        view = got.json()["asset"]
        # null clears a field, and a field with no value is left out (the published types are not nullable)
        self.ctx.check(
            "flow_status",
            "getAsset",
            view.get("description") == description and view["tags"] == tags,
            f"after PATCH description={description!r} tags={tags!r} the asset reads {view}",
        )

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        asset = self.assets[data.draw(st.sampled_from(self._live()))]
        got = self.api("GET", "getAsset", f"/api/v1/assets/{asset.id}", key=self.keys[asset.owner])
        self.expect(got, 200, "getAsset")
        url = got.json()["asset"]["url"]
        r = self.api("DELETE", "deleteAsset", f"/api/v1/assets/{asset.id}", key=self.keys[asset.owner])
        self.expect(r, 200, "deleteAsset")
        asset.deleted = True
        self.expect(
            self.api("GET", "getAsset", f"/api/v1/assets/{asset.id}", key=self.keys[asset.owner]),
            404,
            "getAsset",
            check="deleted_asset_is_gone",
        )
        self.expect(self.send("GET", url), 404, "getAssetObject", check="deleted_asset_is_gone")

    @precondition(lambda self: len(self.keys) > 1 and bool(self._live()))
    @rule(data=st.data())
    def another_key_sees_nothing(self, data: st.DataObject) -> None:
        asset = self.assets[data.draw(st.sampled_from(self._live()))]
        stranger = self.keys[1 - asset.owner]
        self.expect(
            self.api("GET", "getAsset", f"/api/v1/assets/{asset.id}", key=stranger),
            404,
            "getAsset",
            check="tenant_isolation",
        )
        listed = self.api("GET", "listAssets", "/api/v1/assets", key=stranger, params={"limit": 100})
        self.expect(listed, 200, "listAssets")
        self.ctx.check(
            "tenant_isolation",
            "listAssets",
            asset.id not in {a["id"] for a in listed.json()["assets"]},
            f"another key's list shows asset {asset.id}",
        )

    @precondition(lambda self: self.ctx.control is not None and bool(self._pending()))
    @rule(data=st.data())
    def expire_upload_url(self, data: st.DataObject) -> None:
        asset = self.assets[data.draw(st.sampled_from(self._pending()))]
        self.advance(URL_EXPIRES_IN + 1)
        r = self.send("PUT", asset.upload_url, content=asset.content, headers={"Content-Type": asset.content_type})
        self.ctx.check(
            "presigned_url_expiry",
            "putAssetObject",
            r.status_code == 403 and "Request has expired" in r.text,
            f"an uploadUrl {URL_EXPIRES_IN + 1} s old answered {r.status_code}: {r.text[:200]}",
        )
        for other in self.assets.values():
            other.url_expired = True


def uploaded_object(http: httpx.Client, target: ProviderTarget) -> dict[str, Any]:
    """A real PNG through upload-url and its PUT: the values createAsset's example cannot know."""
    png = image("png")
    r = http.post(
        target.base_url + "/api/v1/assets/upload-url",
        headers=target.auth_headers(),
        json={"filename": "example.png", "contentType": "image/png", "size": len(png)},
    )
    r.raise_for_status()
    http.put(r.json()["uploadUrl"], content=png, headers={"Content-Type": "image/png"}).raise_for_status()
    return {"filename": "example.png", "s3Key": r.json()["key"], "contentType": "image/png", "size": len(png)}


CONTRACT = ProviderContract(
    flows=(AssetUploads,),
    state_dependent={
        "createAsset": {
            "s3Key must have been issued to this key by createAssetUploadUrl and its bytes PUT, with "
            "the same size and contentType": ("422",)
        },
    },
    curl_examples=(
        (
            "https://segmentflow.ai/docs/api-reference/assets/post-apiv1assets",
            """curl --request POST \\
  --url http://localhost:3001/api/v1/assets \\
  --header 'Content-Type: application/json' \\
  --header 'x-api-key: <api-key>' \\
  --data '
{
  "filename": "<string>",
  "s3Key": "<string>",
  "contentType": "<string>",
  "size": 123,
  "assetType": "content-image",
  "websiteId": "3c90c3cc-0d44-4b50-8888-8dd25736052a"
}
'""",
        ),
    ),
    state_bound={
        "createAsset": (
            422,
            'the example\'s s3Key "<string>" was never issued by createAssetUploadUrl '
            "to this key: the errors page's 422, semantic validation failed",
        )
    },
    prepared={"createAsset": uploaded_object},
)
