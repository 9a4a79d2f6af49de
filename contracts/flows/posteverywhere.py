"""PostEverywhere: upload → bytes to upload_url (multipart POST for images, PUT for video and PDF) → complete → post.

Interleaved media on two keys, bytes sent again before complete (the last upload wins), completes attempted
before the bytes arrive (400 upload_not_ready, nothing changes), URLs expired by moving the clock.

Invariants: the stored bytes are the bytes sent; a PUT's ETag is their MD5; complete reports their size; a post
carries the media_ids it was given; a key never sees or posts another key's media; rate-limit headers follow the
ledger (posts count against both the general and the posting limits).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from contracts.flows.base import FlowMachine, ProviderContract, md5
from contracts.flows.samples import PDF, image, video

URL_EXPIRES_IN = 3600
KINDS = {
    "image/jpeg": ("photo.jpg", lambda seed: image("jpg")),
    "image/png": ("photo.png", lambda seed: image("png")),
    "image/webp": ("photo.webp", lambda seed: image("webp")),
    "video/mp4": ("clip.mp4", lambda seed: video(seed, 200 + seed % 4096)),
    "application/pdf": ("doc.pdf", lambda seed: PDF),
}


@dataclass
class Media:
    id: str
    owner: int
    content_type: str
    content: bytes
    upload_url: str
    method: str
    sent: bool = False
    completed: bool = False
    url_expired: bool = False


class MediaUploads(FlowMachine):
    provider_name = "posteverywhere"
    flow_name = "three-step media upload and post"

    def __init__(self) -> None:
        super().__init__()
        self.media: dict[str, Media] = {}

    def _where(self, **state: bool) -> list[str]:
        return [m.id for m in self.media.values() if all(getattr(m, k) == v for k, v in state.items())]

    @initialize(content_type=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 2**16))
    def first_upload(self, content_type: str, seed: int) -> None:
        """Every example starts with a media item, so that its steps reach the bytes, complete and posts."""
        self.upload(content_type, seed, 0)

    @rule(content_type=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 2**16), owner=st.integers(0, 1))
    def upload(self, content_type: str, seed: int, owner: int) -> None:
        owner = owner if owner < len(self.keys) else 0
        filename, make = KINDS[content_type]
        content = make(seed)
        r = self.api(
            "POST",
            "uploadMedia",
            "/v1/media/upload",
            key=self.keys[owner],
            json={"filename": filename, "content_type": content_type, "size": len(content)},
        )
        self.expect(r, 201, "uploadMedia")
        data = r.json()["data"]
        self.ctx.check(
            "flow_status",
            "uploadMedia",
            data["media_ids"] == [data["media_id"]],
            f"media_ids should be [media_id]: {data}",
        )
        self.media[data["media_id"]] = Media(
            data["media_id"], owner, content_type, content, data["upload_url"], data["upload_method"]["method"]
        )

    @precondition(lambda self: bool(self._where(completed=False, url_expired=False)))
    @rule(data=st.data())
    def send_bytes(self, data: st.DataObject) -> None:
        """Step 2, possibly again (a retry, or a replacement before complete)."""
        media = self.media[data.draw(st.sampled_from(self._where(completed=False, url_expired=False)))]
        if media.method == "POST":
            r = self.send("POST", media.upload_url, files={"file": ("upload", media.content, media.content_type)})
            self.expect(r, 200, "storeImage")
        else:
            r = self.send("PUT", media.upload_url, content=media.content, headers={"Content-Type": media.content_type})
            self.expect(r, 200, "storeObject")
            self.ctx.check(
                "etag_matches_body",
                "storeObject",
                r.headers.get("etag") == f'"{md5(media.content)}"',
                f"ETag {r.headers.get('etag')} is not the MD5 of the {len(media.content)} bytes PUT",
            )
        media.sent = True
        stored = self.send("GET", media.upload_url.split("?")[0])
        operation = "getStoredImage" if media.method == "POST" else "getStoredObject"
        self.expect(stored, 200, operation)
        self.ctx.check(
            "stored_bytes_match",
            operation,
            stored.content == media.content,
            f"served {len(stored.content)} bytes (MD5 {md5(stored.content)}), sent {len(media.content)} "
            f"(MD5 {md5(media.content)})",
        )

    @precondition(lambda self: bool(self.media))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        media = self.media[data.draw(st.sampled_from(list(self.media)))]
        r = self.api("POST", "completeMediaUpload", f"/v1/media/{media.id}/complete", key=self.keys[media.owner])
        if not media.sent:
            self.expect(r, 400, "completeMediaUpload")
            self.ctx.check(
                "flow_status",
                "completeMediaUpload",
                r.json()["error"]["code"] == "upload_not_ready",
                f"a complete before the bytes should be upload_not_ready: {r.text[:300]}",
            )
            return
        self.expect(r, 200, "completeMediaUpload")
        view = r.json()["data"]
        self.ctx.check(
            "stored_bytes_match",
            "completeMediaUpload",
            view["size"] == len(media.content) and view["status"] == "ready",
            f"complete should report the {len(media.content)} bytes sent, ready: {view}",
        )
        media.completed = True

    @precondition(lambda self: bool(self._where(completed=True)))
    @rule(data=st.data())
    def post(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(sorted({self.media[m].owner for m in self._where(completed=True)})))
        mine = [m for m in self._where(completed=True) if self.media[m].owner == owner]
        chosen = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=len(mine), unique=True))
        r = self.api(
            "POST",
            "createPost",
            "/v1/posts",
            key=self.keys[owner],
            json={"content": "Posted by a contract flow", "account_ids": [1], "media_ids": chosen},
        )
        self.expect(r, 201, "createPost")
        self.ctx.check(
            "flow_status",
            "createPost",
            r.json()["data"].get("media_ids") == chosen,
            f"the post should carry media_ids {chosen}: {r.text[:300]}",
        )

    @precondition(lambda self: len(self.keys) > 1 and bool(self.media))
    @rule(data=st.data())
    def another_key_sees_nothing(self, data: st.DataObject) -> None:
        media = self.media[data.draw(st.sampled_from(list(self.media)))]
        stranger = self.keys[1 - media.owner]
        r = self.api("POST", "completeMediaUpload", f"/v1/media/{media.id}/complete", key=stranger)
        self.expect(r, 404, "completeMediaUpload", check="tenant_isolation")
        r = self.api(
            "POST",
            "createPost",
            "/v1/posts",
            key=stranger,
            json={"content": "Not mine", "account_ids": [1], "media_ids": [media.id]},
        )
        self.ctx.check(
            "tenant_isolation",
            "createPost",
            r.status_code == 400 and "not found" in r.text,
            f"another key's media must read as not found: {r.status_code} {r.text[:300]}",
        )

    @precondition(lambda self: self.ctx.control is not None and bool(self._where(completed=False, url_expired=False)))
    @rule(data=st.data())
    def expire_upload_url(self, data: st.DataObject) -> None:
        media = self.media[data.draw(st.sampled_from(self._where(completed=False, url_expired=False)))]
        self.advance(URL_EXPIRES_IN + 1)
        if media.method == "POST":
            r = self.send("POST", media.upload_url, files={"file": ("upload", media.content, media.content_type)})
        else:
            r = self.send("PUT", media.upload_url, content=media.content, headers={"Content-Type": media.content_type})
        self.ctx.check(
            "presigned_url_expiry",
            "storeImage" if media.method == "POST" else "storeObject",
            r.status_code == 403,
            f"an upload_url {URL_EXPIRES_IN + 1} s old answered {r.status_code}: {r.text[:200]}",
        )
        for other in self.media.values():
            other.url_expired = True


CONTRACT = ProviderContract(
    flows=(MediaUploads,),
    state_dependent={
        "completeMediaUpload": {
            "upload_not_ready: the bytes were not uploaded to upload_url yet, or disagree with step 1": ("400",)
        },
        "createPost": {
            "media_ids must name completed media of the same key; scheduled_at (a deprecated alias) "
            "must equal scheduled_for when both are sent": ("400",)
        },
        "updatePost": {
            "media_ids must name completed media of the same key; scheduled_at (a deprecated alias) "
            "must equal scheduled_for when both are sent": ("400",)
        },
        "schedulePost": {"a draft saved without accounts needs account_ids to be scheduled": ("400",)},
        "uploadMediaFromUrl": {
            "url must be public https:// (private, loopback, link-local, single-label, .local "
            "and .internal hosts are refused)": ("400",),
            "a URL naming a video other than MP4 is refused (MP4 too with --strict-docs)": ("415",),
        },
    },
)
