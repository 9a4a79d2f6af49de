// Points PostEverywhere's official Node clients at upload-emulator without changing them.
//
// @posteverywhere/sdk hard-codes https://app.posteverywhere.ai and calls the global fetch, so this module wraps
// fetch and rewrites that origin to the emulator's. Load it before your program:
//
//   POSTEVERYWHERE_EMULATOR_URL=http://127.0.0.1:8080/posteverywhere node --import ./redirect.mjs app.mjs
//
// (with `upload-emulator serve --provider posteverywhere` the URL is just http://127.0.0.1:8080). Everything
// else — presigned upload_url hosts included — goes where the emulator's answers say, untouched.
const REAL = "https://app.posteverywhere.ai";
const target = (process.env.POSTEVERYWHERE_EMULATOR_URL || "http://127.0.0.1:8080/posteverywhere").replace(/\/$/, "");
const realFetch = globalThis.fetch;

globalThis.fetch = function redirectedFetch(input, init) {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (url === REAL || url.startsWith(REAL + "/")) {
    const moved = target + url.slice(REAL.length);
    return realFetch(typeof input === "string" || input instanceof URL ? moved : new Request(moved, input), init);
  }
  return realFetch(input, init);
};
