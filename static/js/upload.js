// The upload page: files, folders and zips into the archive through /api/uploads/.
//
// Each file is one upload session on the server. Files go in chunks (the size
// the server asks for), a few files and a few chunks at a time; a chunk that
// fails for a network reason is sent again with exponential backoff. The
// session's UUID is kept in localStorage under the file's name, size and
// modification time, so after a reload or a lost connection the same file,
// chosen again, sends only the chunks the server is missing.

import { forget, pendingFromBefore, recalled, remember, storageKey } from "./upload/resume.js";
import { sha256Hex } from "./upload/sha256.js";

const strings = JSON.parse(document.getElementById("upload-strings").textContent);
const config = JSON.parse(document.getElementById("upload-config").textContent);
const app = document.getElementById("upload-app");
const csrfToken = app.querySelector("input[name=csrfmiddlewaretoken]").value;
const institutionInput = document.getElementById("upload-institution");
const drop = document.getElementById("upload-drop");
const fileInput = document.getElementById("upload-files");
const folderInput = document.getElementById("upload-folder");
const table = document.getElementById("upload-list");
const tbody = table.querySelector("tbody");
const overall = document.getElementById("upload-overall");
const overallLabel = document.getElementById("upload-overall-label");
const overallBar = overall.querySelector(".bar");
const resumeHint = document.getElementById("upload-resume-hint");
const skippedNote = document.getElementById("upload-skipped");

// Files a CD export or an operating system adds that are not studies.
const JUNK_NAMES = new Set(["dicomdir", "thumbs.db", "desktop.ini", "autorun.inf"]);
const JUNK_EXTENSIONS = new Set([
  "exe", "dll", "ini", "inf", "htm", "html", "css", "js", "jar", "ico", "bat", "cmd", "sys", "cab",
]);

const items = [];
const queue = [];
let activeFiles = 0;
let skippedCount = 0;

// --- Small helpers -------------------------------------------------------------------

function t(key, params = {}) {
  let text = strings[key] || key;
  for (const [name, value] of Object.entries(params)) {
    text = text.split(`%(${name})s`).join(String(value));
  }
  return text;
}

function formatSize(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function waitUntilOnline() {
  if (navigator.onLine !== false) return Promise.resolve();
  return new Promise((resolve) => window.addEventListener("online", resolve, { once: true }));
}

class UploadFailure extends Error {
  constructor(message, { restart = false } = {}) {
    super(message);
    this.restart = restart; // forget the session: the next try starts a new one
  }
}

class Transient extends Error {}

function reasonOf(response) {
  const data = response.data || {};
  return data.reason || data.detail || t("server_error", { status: response.status });
}

// --- Requests --------------------------------------------------------------------------

// XMLHttpRequest rather than fetch: it reports upload progress within a chunk,
// which on a slow line is the difference between a moving bar and a stuck one.
function request(method, url, { body = null, headers = {}, onProgress = null } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("X-CSRFToken", csrfToken);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    if (onProgress) xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch (error) {
        data = null;
      }
      resolve({ status: xhr.status, data });
    };
    xhr.onerror = () => reject(new Transient(t("network_error")));
    xhr.ontimeout = () => reject(new Transient(t("network_error")));
    xhr.onabort = () => reject(new Transient(t("network_error")));
    xhr.send(body);
  });
}

// Send until the answer is not a network failure, 5xx or 429, backing off in between.
async function withRetry(item, send) {
  for (let attempt = 1; ; attempt++) {
    let response = null;
    let failure = null;
    try {
      response = await send();
      if (response.status >= 500 || response.status === 429 || response.status === 0) {
        failure = new Transient(reasonOf(response));
      }
    } catch (error) {
      if (!(error instanceof Transient)) throw error;
      failure = error;
    }
    if (!failure) {
      if (attempt > 1) setNote(item, "");
      return response;
    }
    if (attempt >= config.max_attempts) throw new UploadFailure(failure.message);
    const base = Math.min(config.max_delay_ms, config.base_delay_ms * 2 ** (attempt - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    setNote(item, navigator.onLine === false ? t("offline") : t("retrying", { seconds: Math.ceil(delay / 1000) }));
    await sleep(delay);
    await waitUntilOnline();
  }
}

// --- The file list ---------------------------------------------------------------------

function addRow(item) {
  const row = document.createElement("tr");
  row.dataset.testid = "upload-row";
  row.dataset.state = "waiting";
  const name = document.createElement("td");
  name.className = "upload-list__name";
  name.textContent = item.path;
  name.title = item.path;
  const size = document.createElement("td");
  size.className = "num";
  size.textContent = formatSize(item.file.size);
  const progress = document.createElement("td");
  progress.className = "upload-list__progress";
  progress.innerHTML =
    '<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">' +
    '<div class="bar__fill"></div></div><span class="upload-list__percent">0%</span>';
  const result = document.createElement("td");
  result.className = "upload-list__result";
  result.innerHTML = '<span class="upload-state"></span><span class="upload-note"></span>';
  row.append(name, size, progress, result);
  tbody.append(row);
  item.row = row;
  item.bar = progress.querySelector(".bar");
  item.percent = progress.querySelector(".upload-list__percent");
  item.stateLabel = result.querySelector(".upload-state");
  item.note = result.querySelector(".upload-note");
  item.bar.setAttribute("aria-label", item.path);
  setState(item, "waiting");
}

function setState(item, state, label = t(state)) {
  item.state = state;
  item.row.dataset.state = state;
  item.stateLabel.textContent = label;
  item.stateLabel.className = `upload-state upload-state--${state}`;
}

function setNote(item, text) {
  item.note.textContent = text;
}

function bytesDone(item) {
  if (item.finished) return item.file.size;
  let inflight = 0;
  for (const loaded of item.inflight.values()) inflight += loaded;
  return Math.min(item.file.size, item.sent + inflight);
}

function setBar(bar, percent) {
  bar.setAttribute("aria-valuenow", String(percent));
  bar.firstElementChild.style.width = `${percent}%`;
}

function render(item) {
  const size = item.file.size || 1;
  const percent = item.finished || item.file.size === 0 ? 100 : Math.floor((100 * bytesDone(item)) / size);
  setBar(item.bar, percent);
  item.percent.textContent = `${percent}%`;
  renderOverall();
}

function renderOverall() {
  overall.hidden = items.length === 0;
  const total = items.reduce((sum, item) => sum + item.file.size, 0) || 1;
  const done = items.reduce((sum, item) => sum + bytesDone(item), 0);
  const finished = items.filter((item) => item.finished).length;
  const percent = items.every((item) => item.finished) ? 100 : Math.floor((100 * done) / total);
  setBar(overallBar, percent);
  if (items.length && finished === items.length) {
    const counts = { stored: 0, already_stored: 0, refused: 0 };
    for (const item of items) {
      for (const [outcome, count] of Object.entries(item.counts || {})) counts[outcome] += count;
    }
    overallLabel.textContent = t("overall_done", {
      stored: counts.stored, already: counts.already_stored, refused: counts.refused,
    });
  } else {
    overallLabel.textContent = t("overall", { done: finished, total: items.length, percent: `${percent}%` });
  }
}

function showResult(item, result) {
  item.finished = true;
  item.counts = result.summary || {};
  const results = result.results || [];
  setNote(item, "");
  if (result.kind === "zip") {
    const summary = result.summary || {};
    const accepted = (summary.stored || 0) + (summary.already_stored || 0);
    let worst = summary.stored ? "stored" : "already_stored";
    if (summary.refused) worst = accepted ? "partial" : "refused";
    setState(item, worst, t("zip_summary", {
      stored: summary.stored || 0, already: summary.already_stored || 0, refused: summary.refused || 0,
    }));
    const details = document.createElement("details");
    details.className = "upload-members";
    const title = document.createElement("summary");
    title.textContent = t("zip_details");
    const list = document.createElement("ul");
    for (const entry of results) {
      const li = document.createElement("li");
      li.dataset.outcome = entry.outcome;
      const badge = document.createElement("span");
      badge.className = `upload-state upload-state--${entry.outcome}`;
      badge.textContent = t(entry.outcome);
      const name = document.createElement("span");
      name.className = "upload-members__name";
      name.textContent = entry.name;
      li.append(badge, " ", name);
      if (entry.reason) {
        const why = document.createElement("span");
        why.className = "upload-reason";
        why.textContent = entry.reason;
        li.append(why);
      }
      list.append(li);
    }
    details.append(title, list);
    item.note.append(details);
  } else {
    const entry = results[0] || { outcome: "refused", reason: "" };
    setState(item, entry.outcome);
    setNote(item, entry.reason || "");
  }
  render(item);
}

function showFailure(item, message) {
  item.finished = true;
  item.counts = { refused: 1 };
  setState(item, "failed");
  setNote(item, message);
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "btn btn-small";
  retry.textContent = t("retry");
  retry.addEventListener("click", () => {
    retry.remove();
    item.finished = false;
    item.counts = null;
    setNote(item, "");
    setState(item, "waiting");
    queue.push(item);
    pump();
  });
  item.note.append(" ", retry);
  render(item);
}

// --- One file ----------------------------------------------------------------------------

function detailUrl(uuid) {
  return `${config.api}${uuid}/`;
}

async function openSession(item) {
  const saved = recalled(item);
  if (saved) {
    const response = await withRetry(item, () => request("GET", detailUrl(saved)));
    if (response.status === 200 && response.data.state !== "failed" && response.data.size === item.file.size) {
      return response.data;
    }
    forget(item);
  }
  const response = await withRetry(item, () =>
    request("POST", config.api, {
      body: JSON.stringify({ file_name: item.path, size: item.file.size }),
      headers: { "Content-Type": "application/json", "X-Institution": institutionInput.value },
    }),
  );
  if (response.status !== 201) throw new UploadFailure(reasonOf(response));
  remember(item, response.data.uuid);
  return response.data;
}

async function sendChunk(item, index) {
  const start = index * item.chunkSize;
  const blob = item.file.slice(start, Math.min(start + item.chunkSize, item.file.size));
  let buffer;
  try {
    buffer = await blob.arrayBuffer();
  } catch (error) {
    throw new UploadFailure(t("unreadable_file"));
  }
  const digest = await sha256Hex(buffer);
  const url = `${detailUrl(item.uuid)}chunks/${index}`;
  const response = await withRetry(item, () => {
    item.inflight.set(index, 0);
    return request("PUT", url, {
      body: buffer,
      headers: { "Content-Type": "application/octet-stream", "X-Chunk-SHA256": digest },
      onProgress: (loaded) => {
        item.inflight.set(index, loaded);
        render(item);
      },
    });
  });
  item.inflight.delete(index);
  if (response.status === 200 || response.status === 201) {
    item.sent += buffer.byteLength;
    render(item);
    return;
  }
  if (response.status === 409) throw new UploadFailure(t("file_changed"), { restart: true });
  throw new UploadFailure(reasonOf(response), { restart: response.status === 404 });
}

async function sendChunks(item, indexes) {
  const pending = [...indexes];
  const worker = async () => {
    while (pending.length) await sendChunk(item, pending.shift());
  };
  const workers = Array.from({ length: Math.min(config.parallel_chunks, pending.length) }, worker);
  await Promise.all(workers);
}

async function complete(item) {
  for (;;) {
    const response = await withRetry(item, () => request("POST", `${detailUrl(item.uuid)}complete`));
    if (response.status === 200) return response.data;
    const code = response.data && response.data.code;
    if (response.status === 409 && code === "missing_chunks") {
      await sendChunks(item, response.data.missing);
      continue;
    }
    if (response.status === 409 && code === "busy") {
      // Another request (an earlier try whose answer was lost) is storing it: wait for its result.
      await sleep(2000);
      const status = await withRetry(item, () => request("GET", detailUrl(item.uuid)));
      if (status.status === 200 && status.data.state === "complete") return status.data.result;
      continue;
    }
    throw new UploadFailure(reasonOf(response), { restart: response.status === 400 || response.status === 404 });
  }
}

async function run(item) {
  if (item.file.size === 0) {
    showResult(item, { kind: "file", results: [{ outcome: "refused", reason: t("empty_file") }], summary: { refused: 1 } });
    return;
  }
  item.sent = 0;
  item.inflight = new Map();
  setState(item, "preparing");
  try {
    const session = await openSession(item);
    item.uuid = session.uuid;
    if (session.state === "complete") {
      forget(item);
      showResult(item, session.result);
      return;
    }
    item.chunkSize = session.chunk_size;
    const received = new Set(session.received);
    const missing = [];
    for (let index = 0; index < session.chunk_count; index++) {
      if (received.has(index)) {
        item.sent += Math.min(item.chunkSize, item.file.size - index * item.chunkSize);
      } else {
        missing.push(index);
      }
    }
    setState(item, received.size ? "resuming" : "uploading");
    render(item);
    await sendChunks(item, missing);
    setState(item, "storing");
    const result = await complete(item);
    forget(item);
    showResult(item, result);
  } catch (error) {
    if (error instanceof UploadFailure && error.restart) forget(item);
    showFailure(item, error.message || t("network_error"));
  }
}

function pump() {
  while (activeFiles < config.parallel_files && queue.length) {
    const item = queue.shift();
    activeFiles += 1;
    run(item).finally(() => {
      activeFiles -= 1;
      pump();
    });
  }
  renderOverall();
}

function isJunk(path) {
  const parts = path.split("/");
  const base = parts[parts.length - 1].toLowerCase();
  const extension = base.includes(".") ? base.split(".").pop() : "";
  return (
    parts.includes("__MACOSX") || base.startsWith(".") || JUNK_NAMES.has(base) || JUNK_EXTENSIONS.has(extension)
  );
}

function enqueue(entries, { fromFolder = false } = {}) {
  for (const { file, path } of entries) {
    if (fromFolder && isJunk(path)) {
      skippedCount += 1;
      continue;
    }
    const item = { file, path: path || file.name, finished: false, sent: 0, inflight: new Map() };
    item.key = storageKey(institutionInput.value, item);
    items.push(item);
    addRow(item);
    queue.push(item);
  }
  table.hidden = items.length === 0;
  skippedNote.hidden = skippedCount === 0;
  skippedNote.textContent = t("skipped", { count: skippedCount });
  resumeHint.hidden = true;
  pump();
}

// --- Choosing and dropping ---------------------------------------------------------------

function readAllEntries(reader) {
  // readEntries answers in batches (100 in Chromium) until it answers with none.
  return new Promise((resolve, reject) => {
    const all = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (!batch.length) resolve(all);
        else {
          all.push(...batch);
          next();
        }
      }, reject);
    next();
  });
}

async function collect(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\//, "") });
  } else if (entry.isDirectory) {
    for (const child of await readAllEntries(entry.createReader())) await collect(child, out);
  }
}

fileInput.addEventListener("change", () => {
  enqueue(Array.from(fileInput.files, (file) => ({ file, path: file.name })));
  fileInput.value = "";
});

folderInput.addEventListener("change", () => {
  enqueue(Array.from(folderInput.files, (file) => ({ file, path: file.webkitRelativePath || file.name })), {
    fromFolder: true,
  });
  folderInput.value = "";
});

for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("is-over");
  });
}
for (const type of ["dragleave", "dragend"]) {
  drop.addEventListener(type, () => drop.classList.remove("is-over"));
}
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  drop.classList.remove("is-over");
  const transfer = event.dataTransfer;
  // Entries must be taken before the first await: the list empties after the event.
  const entries = Array.from(transfer.items || [])
    .map((dropped) => (dropped.webkitGetAsEntry ? dropped.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) {
    enqueue(Array.from(transfer.files, (file) => ({ file, path: file.name })));
    return;
  }
  const plain = [];
  const fromFolders = [];
  try {
    for (const entry of entries) await collect(entry, entry.isDirectory ? fromFolders : plain);
  } catch (error) {
    skippedNote.hidden = false;
    skippedNote.textContent = t("folder_error");
  }
  enqueue(plain);
  enqueue(fromFolders, { fromFolder: true });
});

window.addEventListener("beforeunload", (event) => {
  if (items.some((item) => !item.finished)) {
    event.preventDefault();
    event.returnValue = t("leave_warning");
  }
});

const pending = pendingFromBefore();
if (pending.length) {
  resumeHint.hidden = false;
  resumeHint.textContent = t("resume_hint", { count: pending.length });
}

// Everything above is wired: files chosen from now on are uploaded (the page's
// tests wait for this; a file chosen before the module ran would be lost).
drop.dataset.ready = "true";
