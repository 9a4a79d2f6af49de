"""One documented flow per provider, driven by the Python client that openapi-python-client generated from the
emulator's served spec (tests/test_generators.py generates the clients and runs this in the generator's venv).

    python generated_flows.py PROVIDER SERVER_URL KEY GENERATED_DIR

GENERATED_DIR holds the generated package ``<provider>_client``. Prints one JSON object: the steps taken, each with
its status code. Every step goes through the generated API functions and models, except what a generated client
cannot do: a presigned PUT to a URL the API returned (not an operation of the API), and XenonFlare's image upload,
whose published form body (an ``anyOf`` of file / fileId at the top of the schema) openapi-python-client 0.29 turns
into an untyped ``body: Any`` that it never sends.
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from typing import Any

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4a40000000049454e44ae426082")


def main(provider: str, server: str, key: str, generated: str) -> dict[str, Any]:
    sys.path.insert(0, generated)
    pkg = f"{provider}_client"
    client_mod = importlib.import_module(f"{pkg}.client")
    if provider == "posteverywhere":
        client = client_mod.AuthenticatedClient(base_url=server, token=key)
    else:
        client = client_mod.AuthenticatedClient(base_url=server, token=key, prefix="", auth_header_name="x-api-key")
    steps: list[tuple[str, int]] = []

    def api(name: str) -> Any:
        tag = "default" if provider != "autoposting" else ("carousels" if "carousel" in name else "clips")
        return importlib.import_module(f"{pkg}.api.{tag}.{name}")

    def model(name: str) -> Any:
        return getattr(importlib.import_module(f"{pkg}.models"), name)

    File = importlib.import_module(f"{pkg}.types").File  # noqa: N806 - the generated class
    http = client.get_httpx_client()

    if provider == "posteverywhere":
        request = model("UploadMediaRequest")(filename="pixel.png", content_type=model("UploadMediaRequestContentType")(
            "image/png"), size=len(PNG))
        r = api("upload_media").sync_detailed(client=client, body=request)
        steps.append(("uploadMedia", r.status_code))
        data = r.parsed.data
        how = data.upload_method  # images: a multipart POST with the file in field_name; videos: a raw PUT
        if how.content_type == "multipart/form-data":
            sent = http.request(how.method.value, data.upload_url, files={how.field_name: ("pixel.png", PNG,
                                                                                         "image/png")})
        else:
            sent = http.request(how.method.value, data.upload_url, content=PNG, headers={"Content-Type": "image/png"})
        steps.append((f"{how.method.value} upload_url", sent.status_code))
        done = api("complete_media_upload").sync_detailed(str(data.media_id), client=client)
        steps.append(("completeMediaUpload", done.status_code))
        got = api("get_media").sync_detailed(str(data.media_id), client=client)
        steps.append(("getMedia", got.status_code))
        return {"steps": steps, "status": done.parsed.data.status.value, "size": done.parsed.data.size}

    if provider == "segmentflow":
        body = model("CreateAssetUploadUrlBody")(filename="pixel.png", content_type=model(
            "CreateAssetUploadUrlBodyContentType")("image/png"), size=len(PNG))
        r = api("create_asset_upload_url").sync_detailed(client=client, body=body)
        steps.append(("createAssetUploadUrl", r.status_code))
        put = http.put(r.parsed.upload_url, content=PNG, headers={"Content-Type": "image/png"})
        steps.append(("PUT uploadUrl", put.status_code))
        created = api("create_asset").sync_detailed(client=client, body=model("CreateAssetBody")(
            filename="pixel.png", s_3_key=r.parsed.key, content_type="image/png", size=len(PNG)))
        steps.append(("createAsset", created.status_code))
        got = api("get_asset").sync_detailed(uuid.UUID(created.parsed.asset.id), client=client)
        steps.append(("getAsset", got.status_code))
        return {"steps": steps, "size": got.parsed.asset.size, "filename": got.parsed.asset.filename}

    if provider == "autoposting":
        body = model("UploadCarouselAssetsBody")(file=File(payload=PNG, file_name="pixel.png", mime_type="image/png"),
                                                 slide_id="slide_01")
        r = api("upload_carousel_assets").sync_detailed("car_01", client=client, body=body)
        steps.append(("uploadCarouselAssets", r.status_code))
        fetched = http.get(r.parsed.data.url)
        steps.append(("GET url", fetched.status_code))
        return {"steps": steps, "same_bytes": fetched.content == PNG}

    if provider == "xenonflare":
        file_id = str(uuid.uuid4())
        half = len(PNG) // 2
        for index, piece in enumerate((PNG[:half], PNG[half:])):
            chunk = model("UploadChunkBody")(file=File(payload=piece, file_name="blob",
                                                       mime_type="application/octet-stream"),
                                             chunk_index=index, total_chunks=2, file_id=file_id)
            r = api("upload_chunk").sync_detailed(client=client, body=chunk)
            steps.append((f"uploadChunk {index}", r.status_code))
        status = api("get_chunk_status").sync_detailed(client=client, file_id=file_id)
        steps.append(("getChunkStatus", status.status_code))
        finalize = api("upload_image")._get_kwargs(body=None)  # method and URL from the generated client
        done = http.request(finalize["method"], finalize["url"], files={
            "fileId": (None, file_id), "platforms": (None, '["instagram"]')})
        steps.append(("uploadImage (fileId)", done.status_code))
        media_id = done.json()["data"][0]["id"]
        got = api("get_image").sync_detailed(media_id, client=client)
        steps.append(("getImage", got.status_code))
        return {"steps": steps, "current_size": status.parsed.data.current_size, "image": got.parsed.data.id}

    raise SystemExit(f"unknown provider {provider}")


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
