// upload-emulator dashboard: everything it shows or changes goes through the control plane's public endpoints.
// No framework and no build step: plain DOM, built with textContent only (journal entries carry what clients
// sent, so nothing from them is ever parsed as HTML). Polls once a second; pauses while the tab is hidden.
"use strict";
(() => {
  const API = document.body.dataset.api;
  const TOKEN_KEY = "upload-emulator-admin-token";
  const POLL_MS = 1000;
  const SLOW_EVERY = 5; // keys and state are refreshed every fifth poll
  const SHOWN = 200; // journal rows kept on the page
  const MAX_PAGES = 10; // journal pages followed per poll when the control plane pages its answer
  const PREVIEW = 1024; // bytes of each body the journal keeps
  const $ = (selector) => document.querySelector(selector);

  let providers = {}; // name -> GET /providers item
  let entries = []; // newest first
  let openId = null;
  let paused = false;
  let lastSignature = "";
  let tick = 0;
  let timer = null;
  let waitingForToken = false;
  let createdSecret = null; // a key just created: held here for the copy button, never put in the page
  let stateChosen = false; // until someone picks a provider, the state panel follows the newest request's

  // --- helpers -------------------------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  class Forbidden extends Error {}

  async function api(method, path, body) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(API + path, init);
    if (response.status === 401 || response.status === 403) { // a token is needed, or the one given was refused
      askForToken(token ? "The admin token was refused; enter it again." : null);
      throw new Forbidden("The control plane asks for the admin token.");
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : null;
    if (!response.ok) throw new Error((data && data.message) || `HTTP ${response.status}`);
    return data;
  }

  function say(message, isError) {
    const status = $("#status");
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  function report(error) {
    if (!(error instanceof Forbidden)) say(error.message || String(error), true);
  }

  function isoTime(epoch) {
    return new Date(epoch * 1000).toISOString().replace(".000Z", "Z");
  }

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function statusClass(status) {
    return status ? `s${String(status)[0]}` : "s0";
  }

  // --- admin token ---------------------------------------------------------------------------------------------

  function askForToken(message) {
    waitingForToken = true;
    const form = $("#token-form");
    form.hidden = false;
    document.querySelector("main").inert = true; // nothing else works without the token
    say(message || "This control plane needs its admin token.", true);
    $("#token").focus();
  }

  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    $("#token-form").hidden = true;
    document.querySelector("main").inert = false;
    waitingForToken = false;
    start();
  });

  // --- providers (operations, scopes, limits for the forms) ----------------------------------------------------

  function operationsOf(name) {
    const list = name ? [providers[name]] : Object.values(providers);
    return [...new Set(list.filter(Boolean).flatMap((p) => p.operations.map((op) => op.id)))].sort();
  }

  function fillOperations(select, providerName) {
    const keep = select.value;
    select.replaceChildren(h("option", { value: "", text: "any" }),
      ...operationsOf(providerName).map((id) => h("option", { value: id, text: id })));
    select.value = operationsOf(providerName).includes(keep) ? keep : "";
  }

  function fillKeyForm() {
    const info = providers[$("#k-provider").value];
    const scopes = $("#k-scopes");
    const limits = $("#k-limits");
    scopes.replaceChildren(scopes.querySelector("legend"));
    limits.replaceChildren(limits.querySelector("legend"));
    if (!info) return;
    if (!info.scopes.length) scopes.append(h("p", { class: "hint", text: "This provider's keys have no scopes." }));
    for (const scope of info.scopes) {
      const id = `k-scope-${scope.replace(/[^a-z0-9]/gi, "-")}`;
      scopes.append(h("div", { class: "check" }, h("input", { type: "checkbox", id, name: "scope", value: scope }),
        h("label", { for: id, text: scope })));
    }
    for (const limit of info.rate_limits) {
      const id = `k-limit-${limit.name.replace(/[^a-z0-9]/gi, "-")}`;
      limits.append(h("div", { class: "limit" },
        h("label", { for: id, text: `${limit.name} (default ${limit.limit} per ${limit.window} s)` }),
        h("input", { type: "number", id, name: limit.name, min: 0, placeholder: String(limit.limit) })));
    }
  }

  async function loadProviders() {
    const data = await api("GET", "/providers");
    providers = Object.fromEntries(data.providers.map((p) => [p.name, p]));
    fillOperations($("#f-operation"), $("#f-provider").value);
    fillOperations($("#fa-operation"), $("#fa-provider").value);
    fillKeyForm();
  }

  // --- journal -------------------------------------------------------------------------------------------------

  function journalPath(params, next) {
    // follow the control plane's paging: a cursor (or a URL of the next page) when present
    if (next === undefined) return "/journal?" + params;
    if (next === null || next === "") return null;
    const text = String(next);
    if (text.startsWith("http")) {
      const url = new URL(text);
      return journalPath(params, url.pathname + url.search);
    }
    if (text.startsWith(API)) return text.slice(API.length);
    if (text.startsWith("/")) return text;
    if (text.startsWith("?")) return "/journal" + text;
    const more = new URLSearchParams(params);
    more.set("cursor", text);
    return "/journal?" + more;
  }

  async function loadJournal() {
    const form = new FormData($("#filters"));
    const params = new URLSearchParams();
    for (const name of ["provider", "operation", "key_id"]) {
      const value = String(form.get(name) || "").trim();
      if (value) params.set(name, value);
    }
    params.set("limit", String(SHOWN));
    params.set("order", "desc"); // newest first: one page holds the rows shown
    const byId = new Map();
    let path = journalPath(params);
    for (let page = 0; path && page < MAX_PAGES; page++) {
      const data = await api("GET", path);
      for (const entry of data.entries || []) byId.set(entry.id, entry);
      // GET /journal pages its answer: `next_cursor` while `has_more` (an older shape answered `next`)
      path = journalPath(params, data.has_more ? data.next_cursor : (data.next ?? null));
    }
    const wanted = String(form.get("status") || "");
    entries = [...byId.values()]
      .filter((e) => !wanted || (wanted === "none" ? e.status === null : String(e.status || "")[0] === wanted))
      .sort((a, b) => b.id - a.id)
      .slice(0, SHOWN);
    const newest = entries.find((e) => e.provider);
    if (!stateChosen && newest && providers[newest.provider] && $("#s-provider").value !== newest.provider) {
      $("#s-provider").value = newest.provider;
      loadState().catch(report);
    }
    const keys = [...new Set(entries.map((e) => e.key_id).filter(Boolean))];
    $("#known-keys").replaceChildren(...keys.map((k) => h("option", { value: k })));
    renderJournal();
  }

  function renderJournal() {
    const signature = JSON.stringify(entries.map((e) => [e.id, e.status, e.completed, e.duration_ms, e.fault]));
    if (signature === lastSignature) return;
    lastSignature = signature;
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.open : undefined;
    const rows = entries.map((e) => {
      const at = e.at || isoTime(e.epoch);
      const wall = e.wall ? new Date(e.wall * 1000) : null;
      const request = `${e.method} ${e.path}${e.query ? "?" + e.query : ""}`;
      return h("tr", { "data-id": e.id, class: e.id === openId ? "open" : null },
        h("td", { "data-label": "#" }, h("button", {
          type: "button", class: "link", "data-open": e.id, text: `#${e.id}`,
          "aria-label": `Open exchange ${e.id}: ${e.method} ${e.path}`, "aria-expanded": String(e.id === openId),
          onclick: () => openExchange(e.id),
        })),
        h("td", { "data-label": "Virtual", title: at, text: at.slice(11, 23) }),
        h("td", { "data-label": "Wall", title: wall ? wall.toISOString() : "", text: wall ? wall.toTimeString().slice(0, 8) : "—" }),
        h("td", { "data-label": "Provider", text: e.provider || "—" }),
        // the provider's mount is in the Provider column already; the whole request line is the cell's title
        h("td", { "data-label": "Request", class: "path", title: request }, h("span", { class: "method", text: e.method }),
          " ", e.provider && e.path.startsWith(`/${e.provider}/`) ? e.path.slice(e.provider.length + 1) : e.path),
        h("td", { "data-label": "Operation", text: e.operation || "—" }),
        h("td", { "data-label": "Status" }, h("span", { class: `status ${statusClass(e.status)}`, text: e.status ?? "—" }),
          e.completed ? null : h("span", { class: "hint", text: " cut" })),
        h("td", { "data-label": "Duration", class: "num", text: `${Math.round(e.duration_ms)} ms` }),
        h("td", { "data-label": "Bytes", class: "num", text: `${bytes(e.request_bytes)} / ${bytes(e.response_bytes)}` }),
        h("td", { "data-label": "Key", class: "mono", text: e.key_id || "—" }),
        h("td", { "data-label": "Fault", text: e.fault || "" }));
    });
    $("#journal-rows").replaceChildren(...(rows.length ? rows
      : [h("tr", {}, h("td", { colspan: 11, class: "empty", text: "No requests yet." }))]));
    if (focused !== undefined) {
      const again = document.querySelector(`[data-open="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function headerList(headers) {
    const items = Object.entries(headers || {});
    if (!items.length) return h("p", { class: "hint", text: "none recorded" });
    return h("dl", { class: "headers" }, items.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
  }

  function bodyBlock(preview, size, label) {
    if (!size) return h("p", { class: "hint", text: "no body" });
    if (preview === null || preview === undefined) {
      return h("p", { class: "hint", text: `${bytes(size)}, not text: not previewed` });
    }
    const whole = size <= PREVIEW;
    let shown = preview;
    if (whole) {
      try { shown = JSON.stringify(JSON.parse(preview), null, 2); } catch { /* not JSON: as sent */ }
    }
    return h("figure", {},
      h("figcaption", { class: "hint", text: whole ? `${label}, ${bytes(size)}` : `${label}: first 1,024 bytes of ${bytes(size)}` }),
      h("pre", { class: "body", tabindex: 0, text: shown }));
  }

  function shellQuote(text) {
    return "'" + String(text).replace(/'/g, "'\\''") + "'";
  }

  function curlFor(e) {
    const url = location.origin + e.path + (e.query ? "?" + e.query : "");
    const parts = ["curl", "-sS", "-i", "-X", e.method, shellQuote(url)];
    const info = providers[e.provider];
    if (e.key_id && info) {
      parts.push("-H", info.bearer ? '"Authorization: Bearer $API_KEY"' : `"${info.key_header}: $API_KEY"`);
    }
    for (const [name, value] of Object.entries(e.request_headers || {})) {
      if (!["content-length", "transfer-encoding", "expect", "user-agent"].includes(name)) {
        parts.push("-H", shellQuote(`${name}: ${value}`));
      }
    }
    const body = bodyForReplay(e);
    if (body === null) parts.push("--data-binary", "@FILE");
    else if (body) parts.push("--data-raw", shellQuote(body));
    return parts.join(" ");
  }

  // the request body to replay: "" for none, null when the journal does not hold it whole (binary, longer than
  // the preview, redacted, or never read because a fault answered first)
  function bodyForReplay(e) {
    const declared = Number((e.request_headers || {})["content-length"] || 0);
    const size = Math.max(e.request_bytes, declared);
    if (!size) return "";
    const whole = e.request_body !== null && e.request_body !== undefined
      && new TextEncoder().encode(e.request_body).length === size;
    return whole ? e.request_body : null;
  }

  function curlNotes(e) {
    const notes = [];
    if (e.key_id) notes.push(`Set API_KEY to the key whose fingerprint is ${e.key_id}.`);
    if ((e.query || "").includes("REDACTED")) notes.push("The query's secrets are redacted: a presigned URL needs its real signature.");
    if (bodyForReplay(e) === null) {
      notes.push(e.request_bytes ? `The body (${bytes(e.request_bytes)}) was not kept whole: replace FILE with the file to send.`
        : "The emulator answered before reading the body: replace FILE with the file to send.");
    }
    return notes;
  }

  function openExchange(id) {
    const e = entries.find((x) => x.id === id);
    if (!e) return;
    openId = id;
    lastSignature = "";
    renderJournal();
    const limits = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"]
      .filter((k) => e.response_headers && k in e.response_headers)
      .map((k) => `${k}: ${e.response_headers[k]}`);
    const curl = curlFor(e);
    $("#exchange-h").textContent = `Exchange #${e.id}: ${e.method} ${e.path}`;
    $("#exchange-body").replaceChildren(...[
      h("p", {}, `${e.provider || "no provider"} · ${e.operation || "no operation"} · key ${e.key_id || "none"} · `
        + `virtual ${e.at} · client ${e.client || "?"}`),
      e.fault ? h("p", { class: "fault", text: `Fault applied: ${e.fault}` }) : null,
      (e.notes || []).length ? h("ul", { class: "notes" }, e.notes.map((n) => h("li", { text: n }))) : null,
      h("div", { class: "halves" },
        h("section", { "aria-label": "Request" }, h("h4", { text: "Request" }),
          h("p", { class: "mono", text: `${e.method} ${e.path}${e.query ? "?" + e.query : ""}` }),
          headerList(e.request_headers), bodyBlock(e.request_body, e.request_bytes, "Request body")),
        h("section", { "aria-label": "Response" }, h("h4", { text: "Response" }),
          h("p", {}, h("span", { class: `status ${statusClass(e.status)}`, text: e.status ?? "no answer" }),
            ` in ${e.duration_ms} ms`, e.completed ? "" : " (connection cut before the end)"),
          limits.length ? h("p", { class: "ratelimit", text: "Rate limit: " + limits.join(" · ") }) : null,
          headerList(e.response_headers), bodyBlock(e.response_body, e.response_bytes, "Response body"))),
      h("h4", { text: "Replay with curl" }),
      h("pre", { class: "curl", id: "curl", tabindex: 0, text: curl }),
      h("ul", { class: "notes" }, curlNotes(e).map((n) => h("li", { text: n }))),
      h("button", { type: "button", text: "Copy curl command", onclick: () => copy(curl, "curl command copied") }),
    ].filter(Boolean));
    const panel = $("#exchange");
    panel.hidden = false;
    panel.focus();
  }

  $("#exchange-close").addEventListener("click", () => {
    const id = openId;
    openId = null;
    $("#exchange").hidden = true;
    lastSignature = "";
    renderJournal();
    const button = document.querySelector(`[data-open="${id}"]`);
    if (button) button.focus();
  });

  async function copy(text, done) {
    try {
      await navigator.clipboard.writeText(text);
      say(done);
    } catch {
      say("The clipboard is not available here (it needs localhost or https).", true);
    }
  }

  for (const el of ["#f-provider", "#f-operation", "#f-status"]) {
    $(el).addEventListener("change", () => {
      if (el === "#f-provider") fillOperations($("#f-operation"), $("#f-provider").value);
      lastSignature = "";
      poll();
    });
  }
  $("#f-key").addEventListener("change", () => { lastSignature = ""; poll(); });
  $("#filters").addEventListener("submit", (event) => { event.preventDefault(); lastSignature = ""; poll(); });
  $("#journal-pause").addEventListener("click", (event) => {
    paused = !paused;
    event.currentTarget.setAttribute("aria-pressed", String(paused));
    event.currentTarget.textContent = paused ? "Resume" : "Pause";
    say(paused ? "Journal paused." : "Live.");
  });
  $("#journal-clear").addEventListener("click", () => act(() => api("DELETE", "/journal"), "Journal cleared."));

  // --- clock ---------------------------------------------------------------------------------------------------

  function showClock(clock) {
    $("#clock-now").textContent = clock.now;
    const state = $("#clock-state");
    state.textContent = clock.frozen ? "frozen" : "running";
    state.classList.toggle("frozen", clock.frozen);
  }

  async function loadClock() {
    showClock(await api("GET", "/clock"));
  }

  for (const button of document.querySelectorAll("[data-advance]")) {
    button.addEventListener("click", () => act(async () => showClock(
      await api("POST", "/clock/advance", { seconds: Number(button.dataset.advance) })),
    `Clock advanced by ${button.textContent}.`));
  }
  $("#freeze").addEventListener("click", () => act(async () => showClock(await api("POST", "/clock/freeze", {})), "Clock frozen."));
  $("#resume").addEventListener("click", () => act(async () => showClock(await api("POST", "/clock/resume")), "Clock running."));
  $("#clock-set").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#clock-time").value;
    const time = (value.length === 16 ? value + ":00" : value) + "Z";
    act(async () => showClock(await api("POST", "/clock/set", { time })), `Clock set to ${time}.`);
  });

  // --- faults --------------------------------------------------------------------------------------------------

  function describeMatch(rule) {
    const parts = [rule.provider, rule.operation, rule.key_id, rule.path ? `path ~ ${rule.path}` : null].filter(Boolean);
    return parts.length ? parts.join(" · ") : "every request";
  }

  function describeAction(rule) {
    switch (rule.action) {
      case "status": return `status ${rule.status}` + (rule.retry_after != null ? `, Retry-After ${rule.retry_after}` : "");
      case "delay": return `delay ${rule.seconds} s`;
      case "stall": return `stall ${rule.seconds} s after ${rule.bytes} B`;
      case "drop_upload": return `drop after ${rule.bytes} B`;
      case "drop": return `drop ${rule.when.replace("_", " ")}`;
      default: return rule.action;
    }
  }

  async function loadFaults() {
    const { faults } = await api("GET", "/faults");
    $("#fault-rows").replaceChildren(...(faults.length ? faults.map((rule) => h("tr", {},
      h("td", { class: "mono", text: rule.id }), h("td", { text: describeMatch(rule) }),
      h("td", { text: describeAction(rule) }), h("td", { class: "num", text: rule.remaining ?? "∞" }),
      h("td", {}, h("button", { type: "button", "aria-label": `Remove ${rule.id}`, text: "Remove",
        onclick: () => act(() => api("DELETE", `/faults/${encodeURIComponent(rule.id)}`), `${rule.id} removed.`) }))))
      : [h("tr", {}, h("td", { colspan: 5, class: "empty", text: "No rules: every request is answered normally." }))]));
  }

  function showFaultFields() {
    const action = $("#fa-action").value;
    for (const el of document.querySelectorAll("#fault-form [data-for]")) {
      el.hidden = !el.dataset.for.split(" ").includes(action);
    }
  }

  $("#fa-action").addEventListener("change", showFaultFields);
  $("#fa-provider").addEventListener("change", () => fillOperations($("#fa-operation"), $("#fa-provider").value));
  $("#faults-clear").addEventListener("click", () => act(() => api("DELETE", "/faults"), "All fault rules removed."));
  $("#fault-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = (name) => event.currentTarget.elements.namedItem(name);
    const rule = { action: field("action").value };
    for (const name of ["provider", "operation", "path"]) {
      if (field(name).value) rule[name] = field(name).value;
    }
    if (field("times").value) rule.times = Number(field("times").value);
    const numbers = { status: ["status", "retry_after"], delay: ["seconds"], stall: ["bytes", "seconds"], drop_upload: ["bytes"] };
    for (const name of numbers[rule.action] || []) {
      if (field(name).value !== "") rule[name] = Number(field(name).value);
    }
    if (rule.action === "status" && field("message").value) rule.message = field("message").value;
    if (rule.action === "drop") rule.when = field("when").value;
    act(() => api("POST", "/faults", rule), "Fault rule added.");
  });

  // --- keys ----------------------------------------------------------------------------------------------------

  async function loadKeys() {
    const { keys } = await api("GET", "/keys");
    $("#key-rows").replaceChildren(...(keys.length ? keys.map((key) => h("tr", { class: key.revoked ? "revoked" : null },
      h("td", { class: "mono" }, key.id, h("br"), h("span", { class: "hint", text: key.hint })),
      h("td", { text: key.provider }),
      h("td", { text: [key.scopes ? key.scopes.join(", ") : "all scopes",
        ...Object.entries(key.rate_limits).map(([n, v]) => `${n} ${v}`)].join(" · ") }),
      h("td", {}, key.revoked ? h("span", { class: "badge", text: "revoked" })
        : h("button", { type: "button", text: "Revoke", "aria-label": `Revoke ${key.id}`,
          onclick: () => act(() => api("DELETE", `/keys/${encodeURIComponent(key.id)}`), `${key.id} revoked.`) }))))
      : [h("tr", {}, h("td", { colspan: 4, class: "empty", text: "No keys created here." }))]));
  }

  $("#k-provider").addEventListener("change", fillKeyForm);
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { provider: $("#k-provider").value };
    const scopes = [...document.querySelectorAll("#k-scopes input:checked")].map((el) => el.value);
    if (scopes.length) body.scopes = scopes;
    const limits = {};
    for (const input of document.querySelectorAll("#k-limits input")) {
      if (input.value !== "") limits[input.name] = Number(input.value);
    }
    if (Object.keys(limits).length) body.rate_limits = limits;
    act(async () => {
      const created = await api("POST", "/keys", body);
      createdSecret = created.key;
      const notice = $("#key-created");
      notice.replaceChildren(`Created ${created.id} (${created.hint}). The key is not shown; copy it now: `,
        h("button", { type: "button", text: "Copy key", onclick: async () => {
          if (createdSecret) await copy(createdSecret, "Key copied.");
          createdSecret = null;
        } }));
      notice.hidden = false;
    }, "Key created.");
  });

  // --- state ---------------------------------------------------------------------------------------------------

  function blobsIn(value, found = []) {
    if (value && typeof value === "object") {
      const name = value.name ?? value.blob_name;
      if (typeof name === "string" && typeof value.md5 === "string" && typeof value.size === "number") {
        found.push({ name, size: value.size });
      } else {
        for (const item of Object.values(value)) blobsIn(item, found);
      }
    }
    return found;
  }

  function downloadLink(provider, blob) {
    const href = `${API}/state/${encodeURIComponent(provider)}/blob?name=${encodeURIComponent(blob.name)}`;
    return h("a", { href, download: blob.name.split("/").pop(), class: "download",
      text: `${blob.name.split("/").slice(1).join("/")} (${bytes(blob.size)})`,
      onclick: async (event) => {
        const token = sessionStorage.getItem(TOKEN_KEY);
        if (!token) return; // loopback: the plain link works
        event.preventDefault(); // a link cannot send the token: fetch, then save what came back
        const response = await fetch(href, { headers: { Authorization: "Bearer " + token } });
        if (!response.ok) return say(`Download refused: HTTP ${response.status}`, true);
        const url = URL.createObjectURL(await response.blob());
        const a = h("a", { href: url, download: blob.name.split("/").pop() });
        document.body.append(a);
        a.click();
        a.remove();
        URL.revokeObjectURL(url);
      } });
  }

  async function loadState() {
    const provider = $("#s-provider").value;
    if (!provider) return;
    const { tables } = await api("GET", `/state/${encodeURIComponent(provider)}`);
    const names = Object.keys(tables).filter((t) => tables[t].length);
    const open = new Set([...document.querySelectorAll("#state-tables details[open]")].map((d) => d.dataset.id));
    $("#state-tables").replaceChildren(...(names.length ? names.map((table) => h("section", { class: "table" },
      h("h3", { text: `${table} (${tables[table].length})` }),
      h("div", { class: "scroll" }, h("table", { class: "compact" },
        h("thead", {}, h("tr", {}, ["Id", "Status", "Created", "Stored bytes", "Record"].map((c) => h("th", { scope: "col", text: c })))),
        h("tbody", {}, tables[table].slice(0, SHOWN).map((record) => {
          const id = String(record.id ?? record.file_id ?? record.object_id ?? record.media_id ?? "—");
          const status = record.status ?? record.state ?? (record.revoked ? "revoked" : "—");
          const blobs = blobsIn(record);
          return h("tr", {},
            h("td", { class: "mono", "data-label": "Id", text: id }),
            h("td", { "data-label": "Status" }, h("span", { class: `badge st-${String(status).replace(/[^a-z]/gi, "")}`, text: status })),
            h("td", { "data-label": "Created", text: typeof record.created_at === "number" ? isoTime(record.created_at) : "—" }),
            h("td", { "data-label": "Bytes" }, blobs.length ? blobs.map((b) => h("div", {}, downloadLink(provider, b))) : "—"),
            h("td", { "data-label": "Record" }, h("details", { "data-id": `${table}:${id}`, open: open.has(`${table}:${id}`) },
              h("summary", { text: "fields" }), h("pre", { text: JSON.stringify(record, null, 2) }))));
        }))))))
      : [h("p", { class: "empty", text: "No records." })]));
  }

  $("#s-provider").addEventListener("change", () => {
    stateChosen = true;
    loadState().catch(report);
  });
  $("#state-refresh").addEventListener("click", () => loadState().then(() => say("State refreshed.")).catch(report));

  // --- reset ---------------------------------------------------------------------------------------------------

  $("#reset-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const select = $("#r-provider");
    $("#reset-question").textContent = select.value
      ? `Forget ${select.selectedOptions[0].textContent.replace(" only", "")}'s records, stored bytes, rate-limit windows, journal entries, fault rules and keys?`
      : "Forget everything: records, stored bytes, rate-limit windows, journal, fault rules, keys, and the clock back to real time?";
    $("#reset-confirm").hidden = false;
    $("#reset-yes").focus();
  });
  $("#reset-no").addEventListener("click", () => {
    $("#reset-confirm").hidden = true;
    $("#reset-form button").focus();
  });
  $("#reset-yes").addEventListener("click", () => {
    const provider = $("#r-provider").value;
    $("#reset-confirm").hidden = true;
    act(() => api("POST", "/reset", provider ? { provider } : {}), provider ? `${provider} reset.` : "Everything reset.");
    $("#reset-form button").focus();
  });

  // --- the loop ------------------------------------------------------------------------------------------------

  async function act(action, done) {
    try {
      await action();
      say(done);
      lastSignature = "";
      await refresh(true);
    } catch (error) {
      report(error);
    }
  }

  async function refresh(all) {
    const work = [loadClock(), loadFaults()];
    if (!paused) work.push(loadJournal());
    if (all) work.push(loadKeys(), loadState());
    await Promise.all(work);
  }

  async function poll() {
    clearTimeout(timer);
    if (waitingForToken) return;
    try {
      await refresh(tick % SLOW_EVERY === 0);
      if (!paused) say(`Live · updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      report(error);
    }
    tick++;
    if (!waitingForToken) timer = setTimeout(poll, document.hidden ? POLL_MS * 5 : POLL_MS);
  }

  async function start() {
    try {
      await loadProviders();
      tick = 0;
      await poll();
    } catch (error) {
      report(error);
    }
  }

  showFaultFields();
  document.addEventListener("visibilitychange", () => { if (!document.hidden && !waitingForToken) poll(); });
  start();
})();
