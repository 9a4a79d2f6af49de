// Runs @posteverywhere/sdk flows against the emulator and prints one JSON object with what happened.
// Used by tests/test_official_clients.py:
//
//   CLIENTS_DIR=<npm ci folder> POSTEVERYWHERE_EMULATOR_URL=... PE_KEY=... FIXTURES=<dir> \
//     node --import ./redirect.mjs sdk-flows.mjs <scenario>
//
// Every fetch the SDK makes (after redirect.mjs rewrote it) is logged with its time, so the test can see the
// methods, bodies' field names and the wait before a retry. The SDK itself is used unchanged.
import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import path from "node:path";

const require = createRequire(path.join(process.env.CLIENTS_DIR, "package.json"));
const sdk = require("@posteverywhere/sdk");
const { PostEverywhere } = sdk;

const log = [];
const redirected = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const entry = { method: init.method || "GET", url: String(input), started: Date.now() };
  if (typeof init.body === "string") entry.body = JSON.parse(init.body);
  if (init.headers) entry.content_type = init.headers["Content-Type"] || init.headers["content-type"] || null;
  log.push(entry);
  const response = await redirected(input, init);
  entry.status = response.status;
  entry.retry_after = response.headers.get("retry-after");
  return response;
};

const key = process.env.PE_KEY;
const client = (apiKey = key, options = {}) => new PostEverywhere({ apiKey, ...options });
const fixture = async (name, type) => new Blob([await readFile(path.join(process.env.FIXTURES, name))], { type });

function describeError(err) {
  return {
    class: err.constructor.name, name: err.name, message: err.message, status: err.status, code: err.code,
    requestId: err.requestId, details: err.details, retryAfter: err.retryAfter,
    isPostEverywhereError: err instanceof sdk.PostEverywhereError,
  };
}

async function outcome(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (err) {
    return { ok: false, error: describeError(err) };
  }
}

const scenarios = {
  // media.upload(): presign → upload → complete in one call, for each documented type
  async upload() {
    const pe = client();
    return {
      image: await outcome(pe.media.upload(await fixture("sample.png", "image/png"),
                                           { filename: "photo.png", contentType: "image/png" })),
      video: await outcome(pe.media.upload(await fixture("sample.mp4", "video/mp4"),
                                           { filename: "clip.mp4", contentType: "video/mp4" })),
      pdf: await outcome(pe.media.upload(await fixture("sample.pdf", "application/pdf"),
                                         { filename: "deck.pdf", contentType: "application/pdf" })),
    };
  },

  // media.getUploadUrl() + the upload the answer describes + media.complete(), by hand as the docs describe
  async manual() {
    const pe = client();
    const results = {};
    for (const [name, file, type] of [["image", "sample.png", "image/png"], ["pdf", "sample.pdf", "application/pdf"]]) {
      const blob = await fixture(file, type);
      const presign = await pe.media.getUploadUrl({ filename: file, content_type: type, size: blob.size });
      let stored;
      if (presign.upload_method.method === "POST") {
        const form = new FormData();
        form.append(presign.upload_method.field_name, blob, file);
        stored = await fetch(presign.upload_url, { method: "POST", body: form });
      } else {
        stored = await fetch(presign.upload_url, { method: "PUT", headers: presign.upload_method.headers, body: blob });
      }
      const completed = await pe.media.complete(presign.media_id);
      results[name] = { presign, storage_status: stored.status, completed };
    }
    return results;
  },

  async fromUrl() {
    const pe = client();
    const imported = await pe.media.uploadFromUrl({ url: "https://images.example.com/launch/hero.png" });
    return { imported, fetched: await pe.media.get(imported.media_id) };
  },

  // upload, then posts.create() with the media_ids the upload returned; then the media library reads
  async post() {
    const pe = client();
    const media = await pe.media.upload(await fixture("sample.png", "image/png"),
                                        { filename: "post.png", contentType: "image/png" });
    const post = await pe.posts.create({ content: "Launch day!", account_ids: [101, 102], media_ids: media.media_ids,
                                         scheduled_for: "2030-01-01T09:00:00Z", timezone: "UTC" });
    const fetchedPost = await pe.posts.get(post.post_id);
    const posts = await pe.posts.list({ limit: 5 });
    const listed = await pe.media.list({ type: "image", limit: 10 });
    const deleted = await pe.media.delete(media.media_id);
    const afterDelete = await outcome(pe.media.get(media.media_id));
    return { media, post, fetchedPost, posts, listed, deleted, afterDelete };
  },

  async errors() {
    return {
      // passes the SDK's own "pe_live_" prefix check, fails the documented pe_live_<32 hex> format
      malformedKey: await outcome(client("pe_live_not-a-real-key").media.list()),
      revokedKey: await outcome(client("pe_live_00000000000000000000000000000401").media.list()),
      badBody: await outcome(client().media.getUploadUrl({ filename: "big.png", content_type: "image/png",
                                                          size: 30000000 })),
      unknownMedia: await outcome(client().media.complete("00000000-0000-4000-8000-000000000000")),
    };
  },

  // the test has armed a 429 fault (Retry-After: 1) for the next request(s) to POST /media/upload
  async retry() {
    const result = await outcome(client().media.getUploadUrl({ filename: "a.png", content_type: "image/png", size: 10 }));
    return { result };
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const result = await outcome(scenarios[name]());
process.stdout.write(JSON.stringify({ result, log }) + "\n");
