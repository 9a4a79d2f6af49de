"""Autoposting.ai: the SDK's multipart clip upload, init → presign → part PUTs → complete (or abort), then the clip.

Interleaved uploads on two keys; parts presigned in random order and subsets, PUT in any order, retried; URLs
expired by moving the clock; completes attempted early (refused, and the upload stays completable); aborts.

Invariants: a part's ETag is the MD5 of its bytes; the completed object is the parts' bytes in order, with the
multipart ETag ``"md5(part md5s)-N"``; a key never sees another key's clip; an expired part URL is refused as S3
refuses it; rate-limit headers follow the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from contracts.flows.base import FlowMachine, ProviderContract, md5
from contracts.flows.samples import filler, video

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3/R2: every part but the last is at least 5 MiB
URL_EXPIRES_IN = 3600


@dataclass
class Clip:
    id: str
    upload_id: str
    object_key: str
    owner: int  # index into the machine's keys
    parts: list[bytes]  # part n is parts[n - 1]
    urls: dict[int, str] = field(default_factory=dict)
    etags: dict[int, str] = field(default_factory=dict)  # part number -> ETag the PUT answered
    state: str = "active"  # active, completed, aborted

    @property
    def body(self) -> dict[str, str]:
        return {"clipId": self.id, "uploadId": self.upload_id, "key": self.object_key}


class ClipUploads(FlowMachine):
    provider_name = "autoposting"
    flow_name = "clip multipart upload"

    def __init__(self) -> None:
        super().__init__()
        self.clips: dict[str, Clip] = {}

    def _active(self) -> list[str]:
        return [c.id for c in self.clips.values() if c.state == "active"]

    def _key(self, clip: Clip) -> str:
        return self.keys[clip.owner]

    @initialize(parts=st.integers(1, 3), last=st.integers(1, 64 * 1024), seed=st.integers(0, 2**16))
    def first_upload(self, parts: int, last: int, seed: int) -> None:
        """Every example starts with an upload in progress, so that its steps reach the parts and complete."""
        self.init(parts, last, seed, 0)

    @rule(parts=st.integers(1, 3), last=st.integers(1, 64 * 1024), seed=st.integers(0, 2**16), owner=st.integers(0, 1))
    def init(self, parts: int, last: int, seed: int, owner: int) -> None:
        owner = owner if owner < len(self.keys) else 0
        sizes = [MIN_PART] * (parts - 1) + [last]
        contents = [video(seed, sizes[0])] + [filler(seed + n, size) for n, size in enumerate(sizes[1:], 1)]
        body = {
            "brandId": "brand_contract",
            "title": "Contract flow",
            "fileName": "flow.mp4",
            "fileSize": sum(len(c) for c in contents),
            "mimeType": "video/mp4",
        }
        r = self.api("POST", "initClipUpload", "/clips/upload/init", key=self.keys[owner], json=body)
        self.expect(r, 201, "initClipUpload")
        got = r.json()["data"]
        self.clips[got["clipId"]] = Clip(got["clipId"], got["uploadId"], got["key"], owner, contents)

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data())
    def presign(self, data: st.DataObject) -> None:
        clip = self.clips[data.draw(st.sampled_from(self._active()), label="clip")]
        numbers = data.draw(st.permutations(range(1, len(clip.parts) + 1)), label="order")
        numbers = numbers[: data.draw(st.integers(1, len(numbers)), label="how many")]
        r = self.api(
            "POST",
            "presignClipParts",
            "/clips/upload/presign",
            key=self._key(clip),
            json={**clip.body, "partNumbers": numbers},
        )
        self.expect(r, 200, "presignClipParts")
        urls = r.json()["data"]["presignedUrls"]
        self.ctx.check(
            "flow_status",
            "presignClipParts",
            [u["partNumber"] for u in urls] == numbers,
            f"asked for parts {numbers} in this order, got {[u['partNumber'] for u in urls]}",
        )
        clip.urls.update({u["partNumber"]: u["url"] for u in urls})

    def _with_urls(self) -> list[str]:
        return [c for c in self._active() if self.clips[c].urls]

    @precondition(lambda self: bool(self._with_urls()))
    @rule(data=st.data())
    def put_part(self, data: st.DataObject) -> None:
        """PUT a presigned part (a second PUT of the same part is a retry and must answer the same ETag)."""
        clip = self.clips[data.draw(st.sampled_from(self._with_urls()), label="clip")]
        number = data.draw(st.sampled_from(sorted(clip.urls)), label="part")
        content = clip.parts[number - 1]
        r = self.send("PUT", clip.urls[number], content=content, headers={"Content-Type": "video/mp4"})
        self.expect(r, 200, "uploadClipPart")
        etag = r.headers.get("etag", "")
        self.ctx.check(
            "etag_matches_body",
            "uploadClipPart",
            etag == f'"{md5(content)}"',
            f'part {number} ({len(content)} bytes) answered ETag {etag}, not "{md5(content)}"',
        )
        clip.etags[number] = etag

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        clip = self.clips[data.draw(st.sampled_from(self._active()), label="clip")]
        listed = [{"partNumber": n, "eTag": clip.etags[n]} for n in sorted(clip.etags)]
        r = self.api(
            "POST",
            "completeClipUpload",
            "/clips/upload/complete",
            key=self._key(clip),
            json={**clip.body, "parts": listed},
        )
        if len(clip.etags) < len(clip.parts):
            # an early complete is refused (a part missing, too small, or no parts) and changes nothing
            self.expect(r, 400, "completeClipUpload")
            return
        self.expect(r, 200, "completeClipUpload")
        clip.state = "completed"
        self._check_object(clip)

    def _check_object(self, clip: Clip) -> None:
        r = self.api("GET", "getClip", f"/clips/{clip.id}", key=self._key(clip))
        self.expect(r, 200, "getClip")
        view = r.json()["data"]
        self.ctx.check(
            "flow_status",
            "getClip",
            view["status"] == "ready" and "url" in view,
            f"a completed video clip with no processing delay should be ready with a url: {view}",
        )
        got = self.send("GET", view["url"])
        self.expect(got, 200, "getClipObject")
        sent = b"".join(clip.parts)
        self.ctx.check(
            "stored_bytes_match",
            "getClipObject",
            got.content == sent,
            f"served {len(got.content)} bytes (MD5 {md5(got.content)}), uploaded {len(sent)} (MD5 {md5(sent)})",
        )
        digests = b"".join(bytes.fromhex(md5(part)) for part in clip.parts)
        expected = f'"{md5(digests)}-{len(clip.parts)}"'
        self.ctx.check(
            "etag_matches_body",
            "getClipObject",
            got.headers.get("etag") == expected,
            f"the multipart object's ETag is {got.headers.get('etag')}, not {expected}",
        )

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        clip = self.clips[data.draw(st.sampled_from(self._active()), label="clip")]
        r = self.api("POST", "abortClipUpload", "/clips/upload/abort", key=self._key(clip), json=clip.body)
        self.expect(r, 200, "abortClipUpload")
        clip.state = "aborted"
        again = self.api(
            "POST",
            "presignClipParts",
            "/clips/upload/presign",
            key=self._key(clip),
            json={**clip.body, "partNumbers": [1]},
        )
        self.expect(again, 404, "presignClipParts", check="aborted_upload_is_gone")

    @precondition(lambda self: self.ctx.control is not None and bool(self._with_urls()))
    @rule(data=st.data())
    def expire_part_urls(self, data: st.DataObject) -> None:
        """After the URL's 3600 s the storage refuses it; fresh URLs from a new presign work."""
        clip = self.clips[data.draw(st.sampled_from(self._with_urls()), label="clip")]
        number = data.draw(st.sampled_from(sorted(clip.urls)), label="part")
        self.advance(URL_EXPIRES_IN + 1)
        r = self.send("PUT", clip.urls[number], content=clip.parts[number - 1])
        self.ctx.check(
            "presigned_url_expiry",
            "uploadClipPart",
            r.status_code == 403 and "Request has expired" in r.text,
            f"a part URL {URL_EXPIRES_IN + 1} s old answered {r.status_code}: {r.text[:200]}",
        )
        for other in self.clips.values():
            other.urls.clear()  # every URL issued so far is as old

    @precondition(lambda self: len(self.keys) > 1 and bool(self.clips))
    @rule(data=st.data())
    def another_key_sees_nothing(self, data: st.DataObject) -> None:
        clip = self.clips[data.draw(st.sampled_from(list(self.clips)), label="clip")]
        stranger = self.keys[1 - clip.owner]
        r = self.api("GET", "getClip", f"/clips/{clip.id}", key=stranger)
        self.expect(r, 404, "getClip", check="tenant_isolation")
        r = self.api(
            "POST", "presignClipParts", "/clips/upload/presign", key=stranger, json={**clip.body, "partNumbers": [1]}
        )
        self.expect(r, 404, "presignClipParts", check="tenant_isolation")


CONTRACT = ProviderContract(
    flows=(ClipUploads,),
    state_dependent={
        "uploadCarouselAssets": {"the file's bytes must be a JPEG, PNG or WebP image, judged by content": ("400",)},
        "presignClipParts": {"key must be the clip's own object key, as init returned it": ("400",)},
        "completeClipUpload": {
            "the listed parts must have been uploaded with these ETags, every part but the "
            "last at least 5 MiB, adding up to fileSize (S3's rules over what was uploaded); "
            "key must be the clip's": ("400",)
        },
        "abortClipUpload": {"key must be the clip's own object key, as init returned it": ("400",)},
    },
)
