/**
 * The room's transcript as a chat: texts, snapshots, annotations and events,
 * in sequence order. What this browser sends shows at once as "sending…" and
 * is replaced by the stored message when it comes back with its number.
 */

import { rt } from "./strings.js";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class Chat {
  constructor(room, { log, form, me }) {
    this.room = room;
    this.log = log;
    this.form = form;
    this.me = me;
    this.pending = new Map();
    const input = form.querySelector("textarea, input[type=text]");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      this.sendText(text);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
  }

  sendText(text) {
    const id = this.room.send("say", { text });
    this.showPending(id, text);
    return id;
  }

  showPending(id, text) {
    const li = element("li", "cs-msg cs-msg--mine is-pending");
    li.dataset.clientId = id;
    li.append(element("span", "cs-msg__text", text), element("span", "cs-msg__meta", rt("sending")));
    this.log.append(li);
    this.pending.set(id, li);
    this.scroll();
  }

  failed(id, detail) {
    const li = this.pending.get(id);
    if (!li) return;
    li.classList.add("is-failed");
    li.querySelector(".cs-msg__meta").textContent = rt("error", { detail });
    this.pending.delete(id);
  }

  /** Show one stored message (the room hands them over once each, in order). */
  add(message) {
    const li = this.render(message);
    li.dataset.seq = String(message.seq);
    const waiting = this.pending.get(message.client_msg_id);
    if (waiting) {
      waiting.replaceWith(li);
      this.pending.delete(message.client_msg_id);
    } else {
      // Stored messages come before this browser's still-pending ones.
      const firstPending = this.log.querySelector(".is-pending");
      this.log.insertBefore(li, firstPending);
    }
    this.scroll();
  }

  render(message) {
    const name = message.author ? message.author.name : "";
    const mine = message.author && message.author.id === this.me.id;
    const payload = message.payload || {};
    if (message.kind === "system" || message.kind === "presenter") {
      const key = message.kind === "presenter" ? (payload.on ? "presenter_on" : "presenter_off") : `event_${payload.event}`;
      return element("li", "cs-msg cs-msg--event", `${clock(message.created_at)} · ${rt(key, { name })}`);
    }
    const li = element("li", `cs-msg${mine ? " cs-msg--mine" : ""} cs-msg--${message.kind}`);
    li.append(element("span", "cs-msg__who", name));
    if (message.kind === "snapshot") {
      const img = element("img", "cs-msg__snapshot");
      img.src = message.snapshot_url;
      img.alt = rt("snapshot");
      img.loading = "lazy";
      const link = element("a");
      link.href = message.snapshot_url;
      link.target = "_blank";
      link.rel = "noopener";
      link.append(img);
      li.append(link);
      if (message.text) li.append(element("span", "cs-msg__text", message.text));
    } else if (message.kind === "annotation") {
      const label = rt(`annotation_${payload.kind}`);
      const text = payload.text ? `${label}: ${payload.text}` : label;
      li.append(element("span", "cs-msg__text", text));
    } else {
      li.append(element("span", "cs-msg__text", message.text));
    }
    li.append(element("span", "cs-msg__meta", clock(message.created_at)));
    return li;
  }

  scroll() {
    this.log.scrollTop = this.log.scrollHeight;
  }
}
