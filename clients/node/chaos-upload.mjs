// Uploads one file with @posteverywhere/sdk's media.upload(), for `upload-emulator chaos` (docs/chaos.md):
//
//   CLIENTS_DIR=<npm ci of clients/node> upload-emulator chaos --provider posteverywhere -- \
//     node clients/node/chaos-upload.mjs
//
// UPLOAD_EMULATOR_BASE_URL is the emulator's stand-in for https://app.posteverywhere.ai/api/v1; redirect.mjs needs
// the origin part, so POSTEVERYWHERE_EMULATOR_URL is set from it, then redirect.mjs is loaded. CLIENTS_DIR is
// where the pinned SDK is installed (npm ci of clients/node). Exits 0 and prints the media id when media.upload()
// resolves with a ready media, 1 when it throws or resolves still processing. The SDK itself is used unchanged.
import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import path from "node:path";

const base = process.env.UPLOAD_EMULATOR_BASE_URL.replace(/\/$/, "");
process.env.POSTEVERYWHERE_EMULATOR_URL = base.replace(/\/api\/v1$/, "");
await import(new URL("./redirect.mjs", import.meta.url));
const require = createRequire(path.join(process.env.CLIENTS_DIR, "package.json"));
const { PostEverywhere } = require("@posteverywhere/sdk");

const file = process.env.UPLOAD_EMULATOR_FILE;
const type = process.env.UPLOAD_EMULATOR_CONTENT_TYPE;
const pe = new PostEverywhere({ apiKey: process.env.UPLOAD_EMULATOR_API_KEY });
try {
  const done = await pe.media.upload(new Blob([await readFile(file)], { type }),
                                     { filename: path.basename(file), contentType: type });
  if (done.status !== "ready") throw new Error(`media.upload() resolved with status ${done.status}`);
  console.log(done.media_id);
  // exit now: after a dropped connection the SDK leaves that request's 120 s abort timer armed (docs/chaos.md),
  // which would keep Node alive long after the upload succeeded
  process.exit(0);
} catch (err) {
  console.error(`${err.constructor.name}: ${err.message}`);
  process.exit(1);
}
