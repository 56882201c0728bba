/**
 * The consultation room page: wires the socket (room.js) to the chat, the
 * presence list, the synchronized viewer, the annotations and the call.
 *
 * window.__consult exposes the state the browser tests look at (delivered
 * sequence numbers, presence, the presenter, peer connection states).
 */

import { Room } from "./room.js";
import { Chat } from "./chat.js";
import { Presence } from "./presence.js";
import { ConsultViewer, Sync } from "./sync.js";
import { ANNOTATION_TOOLS, Annotations } from "./annotations.js";
import { Call } from "./webrtc.js";
import { roomConfig, rt } from "./strings.js";

const $ = (selector) => document.querySelector(selector);
const MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024;

const me = roomConfig.me;
const banner = $(".cs-banner");
const handlers = { message: () => {}, event: () => {}, status: () => {} };
const room = new Room(roomConfig.socket, {
  message: (m) => handlers.message(m),
  event: (type, data) => handlers.event(type, data),
  status: (status, detail) => handlers.status(status, detail),
});

const viewer = new ConsultViewer({
  grid: $(".vw-grid"),
  seriesList: $(".vw-series"),
  priorList: $(".vw-priors"),
});
const chat = new Chat(room, { log: $(".cs-log"), form: $(".cs-compose"), me });
const presence = new Presence($(".cs-people"), me);
const sync = new Sync(viewer, room, {
  me,
  presentButton: $('[data-action="present"]'),
  followButton: $('[data-action="follow"]'),
  status: $(".cs-sync-status"),
});
const annotations = new Annotations(viewer, room);
const call = new Call(room, {
  iceServers: roomConfig.iceServers,
  localVideo: $(".cs-video--local"),
  remoteBox: $(".cs-videos"),
  button: $('[data-action="call"]'),
  status: $(".cs-call-status"),
});

function nameOf(userId) {
  if (userId === me.id) return me.name;
  const person = presence.people().find((p) => p.id === userId);
  return person ? person.name : "";
}

handlers.message = (message) => {
  chat.add(message);
  if (message.kind === "annotation") annotations.add(message);
  if (message.kind === "presenter") {
    const author = message.author ? message.author.id : null;
    if (message.payload.on) sync.setPresenter(author, message.author ? message.author.name : "");
    else if (sync.presenter === author) sync.setPresenter(null);
    presence.setPresenter(sync.presenter);
  }
  if (message.kind === "system" && ["concluded", "cancelled"].includes(message.payload.event)) closed(message.payload.event);
};

handlers.event = (type, data) => {
  if (type === "welcome") {
    sync.setPresenter(data.presenter, nameOf(data.presenter));
    presence.setPresenter(data.presenter);
    if (data.state === "concluded" || data.state === "cancelled") closed(data.state);
  } else if (type === "presence") {
    presence.handle(data);
    if (data.event === "leave") call.gone(data.conn);
    if (sync.presenter && !sync.presenterName) sync.setPresenter(sync.presenter, nameOf(sync.presenter));
  } else if (type === "view") {
    sync.received(data.state);
  } else if (type === "view_request") {
    sync.requested();
  } else if (type === "signal") {
    call.signal(data.conn, data.data);
  } else if (type === "state") {
    if (data.state === "concluded" || data.state === "cancelled") closed(data.state);
  } else if (type === "error") {
    chat.failed(data.client_msg_id, data.detail);
    annotations.failed(data.client_msg_id);
  }
};

handlers.status = (status, detail = {}) => {
  document.body.dataset.socket = status;
  if (status === "lost") {
    presence.reset();
    banner.hidden = false;
    banner.querySelector(".cs-banner__text").textContent = rt("lost");
    banner.querySelector(".cs-banner__retry").textContent = rt("retry_in", {
      seconds: Math.max(1, Math.round(detail.retryMs / 1000)),
    });
  } else if (status === "open") {
    banner.hidden = true;
  }
};

function closed(state) {
  document.body.dataset.closed = state;
  const note = $(".cs-closed");
  note.textContent = rt(`state_${state}`);
  note.hidden = false;
}

// --- tools: the viewer's own, and the annotation tools ---------------------------------------

for (const button of document.querySelectorAll("[data-tool]")) {
  button.addEventListener("click", () => {
    const tool = button.dataset.tool;
    viewer.tool = ANNOTATION_TOOLS.has(tool) ? "none" : tool;
    annotations.setTool(tool);
    for (const other of document.querySelectorAll("[data-tool]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
  });
}

const preset = $('[data-action="preset"]');
preset.addEventListener("change", () => {
  const chosen = roomConfig.presets.find((p) => p.key === preset.value);
  if (preset.value && viewer.viewport) viewer.viewport.applyPreset(chosen || null);
  preset.value = "";
});

// --- snapshots: the viewport with its annotations, as a PNG ------------------------------------

function snapshotDataUrl() {
  const viewport = viewer.viewport;
  const layer = viewport.element.querySelector(".cs-annotations");
  let width = viewport.canvas.width;
  let height = viewport.canvas.height;
  for (;;) {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(viewport.canvas, 0, 0, width, height);
    if (layer) ctx.drawImage(layer, 0, 0, width, height);
    const url = canvas.toDataURL("image/png");
    const bytes = Math.floor(((url.length - url.indexOf(",") - 1) * 3) / 4);
    if (bytes <= MAX_SNAPSHOT_BYTES || width < 64) return bytes <= MAX_SNAPSHOT_BYTES ? url : null;
    width = Math.round(width * 0.7);
    height = Math.round(height * 0.7);
  }
}

$('[data-action="snapshot"]').addEventListener("click", () => {
  const url = snapshotDataUrl();
  if (!url) return;
  const input = $(".cs-compose textarea");
  const text = input.value.trim();
  input.value = "";
  room.send("snapshot", { data_url: url, text });
});

window.__consult = { room, viewer, sync, presence, annotations, call, chat };

room.connect();
viewer.start(roomConfig.studyUid).catch((error) => console.error(error));
