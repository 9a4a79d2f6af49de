"""XenonFlare: a resumable chunked upload (status → chunks in order → finalize through /images or /videos) → status.

Interleaved uploads on two keys, chunks of random sizes, retried chunks, chunks sent out of order (refused, nothing
changes), status checks between chunks, finalize attempted early, on the wrong endpoint, and twice.

Invariants: ``currentSize`` is always the bytes of the chunks accepted so far (where a client resumes); a retried
chunk is answered again and changes nothing; the finalized media reads back under its id; a key never sees another
key's uploads or media; rate-limit headers follow the ledger (reads, writes and chunks counted apart).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from contracts.flows.base import FlowMachine, ProviderContract, chunks_of
from contracts.flows.samples import image, video
from contracts.target import ProviderTarget

ENDPOINTS = {
    "image": ("uploadImage", "/api/v1/media/images", "getImage", ["instagram"]),
    "video": ("uploadVideo", "/api/v1/media/videos", "getVideo", ["youtube"]),
}


@dataclass
class Upload:
    file_id: str
    owner: int
    kind: str  # image or video
    chunks: list[bytes]
    received: int = 0
    media_id: str | None = None

    @property
    def complete(self) -> bool:
        return self.received == len(self.chunks)

    @property
    def current_size(self) -> int:
        return sum(len(c) for c in self.chunks[: self.received])


class ChunkedUploads(FlowMachine):
    provider_name = "xenonflare"
    flow_name = "resumable chunked upload and finalize"

    def __init__(self) -> None:
        super().__init__()
        self.uploads: dict[str, Upload] = {}

    def _where(self, complete: bool, finalized: bool = False) -> list[str]:
        return [f for f, u in self.uploads.items() if u.complete == complete and (u.media_id is not None) == finalized]

    def _send_chunk(self, upload: Upload, index: int) -> object:
        return self.api(
            "POST",
            "uploadChunk",
            "/api/v1/media/chunks",
            key=self.keys[upload.owner],
            data={"chunkIndex": str(index), "totalChunks": str(len(upload.chunks)), "fileId": upload.file_id},
            files={"file": ("chunk", upload.chunks[index], "application/octet-stream")},
        )

    @initialize(
        kind=st.sampled_from(sorted(ENDPOINTS)),
        file_id=st.uuids(),
        chunk=st.integers(64, 4096),
        seed=st.integers(0, 2**16),
    )
    def first_upload(self, kind: str, file_id: object, chunk: int, seed: int) -> None:
        """Every example starts with an upload, so that its steps reach the chunks and the finalize."""
        self.start(kind, file_id, chunk, seed, 0)

    @rule(
        kind=st.sampled_from(sorted(ENDPOINTS)),
        file_id=st.uuids(),
        chunk=st.integers(64, 4096),
        seed=st.integers(0, 2**16),
        owner=st.integers(0, 1),
    )
    def start(self, kind: str, file_id: object, chunk: int, seed: int, owner: int) -> None:
        owner = owner if owner < len(self.keys) else 0
        content = image("png") if kind == "image" else video(seed, 300 + seed % 8192)
        upload = Upload(str(file_id), owner, kind, list(chunks_of(content, chunk)))
        self.uploads[upload.file_id] = upload
        self._check_status(upload)

    def _check_status(self, upload: Upload) -> None:
        r = self.api(
            "GET",
            "getChunkStatus",
            "/api/v1/media/chunks",
            key=self.keys[upload.owner],
            params={"fileId": upload.file_id},
        )
        self.expect(r, 200, "getChunkStatus")
        data = r.json()["data"]
        self.ctx.check(
            "resume_point",
            "getChunkStatus",
            data["currentSize"] == upload.current_size and data["exists"] == (upload.received > 0),
            f"after {upload.received} of {len(upload.chunks)} chunks ({upload.current_size} bytes) the "
            f"status reads {data}",
        )

    @precondition(lambda self: bool(self._where(complete=False)))
    @rule(data=st.data())
    def next_chunk(self, data: st.DataObject) -> None:
        upload = self.uploads[data.draw(st.sampled_from(self._where(complete=False)))]
        index = upload.received
        r = self._send_chunk(upload, index)
        self.expect(r, 200, "uploadChunk")
        upload.received += 1
        answer = r.json()["data"]
        expected = (
            {"completed": True, "fileId": upload.file_id}
            if upload.complete
            else {"completed": False, "chunkIndex": index}
        )
        self.ctx.check(
            "flow_status",
            "uploadChunk",
            answer == expected,
            f"chunk {index} of {len(upload.chunks)} should be answered {expected}, got {answer}",
        )

    @precondition(lambda self: any(u.received and u.media_id is None for u in self.uploads.values()))
    @rule(data=st.data())
    def retry_chunk(self, data: st.DataObject) -> None:
        """The client never saw the answer and sends the same chunk again: answered again, nothing changes."""
        candidates = [f for f, u in self.uploads.items() if u.received and u.media_id is None]
        upload = self.uploads[data.draw(st.sampled_from(candidates))]
        self.expect(self._send_chunk(upload, upload.received - 1), 200, "uploadChunk")
        self._check_status(upload)

    @precondition(lambda self: any(len(u.chunks) - u.received >= 2 for u in self.uploads.values()))
    @rule(data=st.data())
    def chunk_out_of_order(self, data: st.DataObject) -> None:
        candidates = [f for f, u in self.uploads.items() if len(u.chunks) - u.received >= 2]
        upload = self.uploads[data.draw(st.sampled_from(candidates))]
        self.expect(self._send_chunk(upload, upload.received + 1), 400, "uploadChunk")
        self._check_status(upload)

    @precondition(lambda self: bool(self.uploads))
    @rule(data=st.data(), on_its_endpoint=st.booleans())
    def finalize(self, data: st.DataObject, on_its_endpoint: bool) -> None:
        upload = self.uploads[data.draw(st.sampled_from(list(self.uploads)))]
        kind = upload.kind if on_its_endpoint else ("video" if upload.kind == "image" else "image")
        op_id, path, get_op, platforms = ENDPOINTS[kind]
        r = self.api(
            "POST",
            op_id,
            path,
            key=self.keys[upload.owner],
            files={"fileId": (None, upload.file_id), "platforms": (None, json.dumps(platforms))},
        )
        if upload.received == 0:
            self.expect(r, 404, op_id)  # nothing was ever sent under this fileId
        elif not upload.complete or upload.media_id is not None:
            self.expect(r, 400, op_id)  # incomplete, or already finalized
        elif kind != upload.kind:
            self.expect(r, 415, op_id)  # the bytes are not this endpoint's kind; the upload stays usable
        else:
            self.expect(r, 200, op_id)
            upload.media_id = r.json()["data"][0]["id"]
            got = self.api("GET", get_op, f"{path}/{upload.media_id}", key=self.keys[upload.owner])
            self.expect(got, 200, get_op)
            self.ctx.check(
                "flow_status",
                get_op,
                got.json()["data"]["platforms"] == platforms,
                f"the media should read back with platforms {platforms}: {got.text[:300]}",
            )

    @precondition(lambda self: len(self.keys) > 1 and bool(self.uploads))
    @rule(data=st.data())
    def another_key_sees_nothing(self, data: st.DataObject) -> None:
        upload = self.uploads[data.draw(st.sampled_from(list(self.uploads)))]
        stranger = self.keys[1 - upload.owner]
        r = self.api("GET", "getChunkStatus", "/api/v1/media/chunks", key=stranger, params={"fileId": upload.file_id})
        self.expect(r, 200, "getChunkStatus")
        self.ctx.check(
            "tenant_isolation",
            "getChunkStatus",
            r.json()["data"]["exists"] is False,
            f"another key's chunked upload must not exist for this key: {r.text[:300]}",
        )
        if upload.media_id is not None:
            _, path, get_op, _ = ENDPOINTS[upload.kind]
            self.expect(
                self.api("GET", get_op, f"{path}/{upload.media_id}", key=stranger),
                404,
                get_op,
                check="tenant_isolation",
            )


def connected_accounts(http: httpx.Client, target: ProviderTarget) -> dict[str, Any]:
    """The image example's per-platform configs with the key's own connected accounts in place of its placeholders."""
    from contracts.documented import _request_example  # here: contracts.documented reads this module's CONTRACT
    from emulator.providers import PROVIDERS

    r = http.get(target.base_url + "/api/v1/channels", headers=target.auth_headers())
    r.raise_for_status()
    connected = r.json()["data"]
    published = PROVIDERS["xenonflare"].specs.published
    example = _request_example(published, published["paths"]["/api/v1/media/images"]["post"])
    assert example is not None
    return {
        name: text.replace("YOUR_INSTAGRAM_BUSINESS_ID", connected["instagram"][0]["id"]).replace(
            "YOUR_PINTEREST_ID", connected["pinterest"][0]["id"]
        )
        for name, text in example[1].items()
        if name in ("instagram", "pinterest")
    }


STATE_DEPENDENT: dict[str, dict[str, tuple[str, ...]]] = {
    "uploadImage": {
        "rules across fields: exactly one of file and fileId; a platform's config only for a "
        "platform in platforms; nested configs are JSON objects (contentSchema is only an "
        "annotation in JSON Schema 2020-12); scheduledAt not in the past; account ids and profileId "
        "name the key's own connected accounts and profiles (GET /api/v1/channels, /profiles)": ("400",),
        "the file's bytes must be an image, judged by content": ("415",),
    },
    "uploadVideo": {
        "rules across fields and connected accounts, as for uploadImage": ("400",),
        "the file's bytes must be an MP4 or QuickTime video, judged by content": ("415",),
    },
    "uploadChunk": {
        "chunks arrive in order from 0 with the same totalChunks; a chunk sent again must carry the same bytes": (
            "400",
        )
    },
}
# the newer pages' prefix-less paths are the same operations under their own operationIds
STATE_DEPENDENT |= {
    f"{op_id}Unprefixed": STATE_DEPENDENT[op_id] for op_id in ("uploadImage", "uploadVideo", "uploadChunk")
}

CONTRACT = ProviderContract(
    flows=(ChunkedUploads,),
    state_dependent=STATE_DEPENDENT,
    curl_examples=(
        (
            "https://docs.xenonflare.com/docs/image-upload",
            (  # verbatim, split into literals
                "curl -X POST https://api.xenonflare.com/api/v1/media/images \\\n"
                '-H "X-API-Key: YOUR_API_KEY" \\\n'
                '-F "file=@/path/to/image.jpg" \\\n'
                '-F "platforms=[\\"instagram\\", \\"pinterest\\"]" \\\n'
                '-F "instagram={\\"caption\\": \\"Stunning view! #nature\\", \\"autoPublish\\": true, \\"accounts\\'
                '": [\\"YOUR_INSTAGRAM_BUSINESS_ID\\"]}" \\\n'
                '-F "pinterest={\\"title\\": \\"Nature Photography\\", \\"description\\": \\"Beautiful landscape p'
                'hoto.\\", \\"autoPublish\\": true, \\"accounts\\": [\\"YOUR_PINTEREST_ID\\"]}"'
            ),
        ),
    ),
    state_bound={
        "uploadImage": (
            400,
            "the example's account ids (YOUR_INSTAGRAM_BUSINESS_ID, YOUR_PINTEREST_ID) "
            "are placeholders, not accounts connected to this key (GET /api/v1/channels "
            "lists those)",
        )
    },
    prepared={"uploadImage": connected_accounts},
)
