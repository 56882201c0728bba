/**
 * The room's socket: reconnects with back-off, replays what it missed, and
 * delivers stored messages exactly once and in order.
 *
 * Every stored message carries the room's sequence number. Messages are
 * handed on strictly as lastSeq + 1, lastSeq + 2, …: an early one waits in a
 * buffer, a duplicate (a replay overlapping the live push, a resend pushed
 * twice) is dropped. After a reconnect, or when a gap does not fill within a
 * moment (the live fan-out is best effort), the room asks the hub for
 * everything after lastSeq. What this browser sends waits in an outbox under
 * an id of its own until the hub acknowledges it; after a reconnect it is sent
 * again with the same id, and the hub keeps it once.
 */

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const GAP_WAIT_MS = 1200;
// A message whose push was lost and that no later message reveals: caught within this.
const RESYNC_MS = 20000;

/** A random id for one message (crypto.randomUUID needs a secure context; this does not). */
export function clientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Room {
  /**
   * @param {string} path the socket's path (/ws/consultations/<uuid>/)
   * @param {{message: Function, event: Function, status: Function}} handlers
   */
  constructor(path, handlers) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.handlers = handlers;
    this.lastSeq = 0;
    this.buffer = new Map();
    this.outbox = new Map();
    this.attempt = 0;
    this.socket = null;
    this.open = false;
    this.gapTimer = null;
    this.retryTimer = null;
    this.conn = "";
    this.stats = { delivered: [], duplicates: 0, replays: 0, reconnects: 0 };
    setInterval(() => this.open && this.replay(), RESYNC_MS);
  }

  connect() {
    clearTimeout(this.retryTimer);
    const socket = new WebSocket(this.url);
    this.socket = socket;
    this.handlers.status("connecting");
    socket.addEventListener("open", () => {
      this.open = true;
      this.attempt = 0;
      this.handlers.status("open");
      this.replay();
      // Anything not yet acknowledged goes again, under the same id.
      for (const payload of this.outbox.values()) socket.send(JSON.stringify(payload));
    });
    socket.addEventListener("message", (e) => this.receive(JSON.parse(e.data)));
    socket.addEventListener("close", (e) => {
      if (this.socket !== socket) return;
      this.open = false;
      this.socket = null;
      const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)] * (0.8 + Math.random() * 0.4);
      this.attempt++;
      this.stats.reconnects++;
      this.handlers.status("lost", { code: e.code, retryMs: delay });
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  /** Drop the line now (tests use it to simulate a network failure). */
  drop() {
    if (this.socket) this.socket.close();
  }

  replay() {
    this.stats.replays++;
    this.raw({ type: "replay", after: this.lastSeq });
  }

  raw(payload) {
    if (!this.open || !this.socket) return false;
    this.socket.send(JSON.stringify(payload));
    return true;
  }

  /** Send something the hub stores (say, snapshot, annotate, present); return its id. */
  send(type, fields = {}) {
    const id = clientId();
    const payload = { type, client_msg_id: id, ...fields };
    this.outbox.set(id, payload);
    this.raw(payload);
    return id;
  }

  /** Send something ephemeral (view, signal): dropped while the line is down. */
  emit(type, fields = {}) {
    return this.raw({ type, ...fields });
  }

  receive(data) {
    switch (data.type) {
      case "message":
        this.accept(data.message);
        break;
      case "ack":
        this.outbox.delete(data.client_msg_id);
        this.handlers.event("ack", data);
        // The stored message comes with its ack: the room's push skips the sender.
        if (data.message) this.accept(data.message);
        break;
      case "error":
        if (data.client_msg_id) this.outbox.delete(data.client_msg_id);
        this.handlers.event("error", data);
        break;
      case "welcome":
        this.conn = data.conn;
        this.handlers.event("welcome", data);
        break;
      case "replayed":
        this.flush();
        this.handlers.event("replayed", data);
        break;
      default:
        this.handlers.event(data.type, data);
    }
  }

  accept(message) {
    if (message.seq <= this.lastSeq || this.buffer.has(message.seq)) {
      this.stats.duplicates++;
      return;
    }
    this.buffer.set(message.seq, message);
    this.flush();
  }

  flush() {
    while (this.buffer.has(this.lastSeq + 1)) {
      const message = this.buffer.get(this.lastSeq + 1);
      this.buffer.delete(message.seq);
      this.lastSeq = message.seq;
      this.stats.delivered.push(message.seq);
      this.handlers.message(message);
    }
    clearTimeout(this.gapTimer);
    if (this.buffer.size) {
      // A hole: the push of that message was lost, or is only late. Ask if it stays.
      this.gapTimer = setTimeout(() => this.buffer.size && this.replay(), GAP_WAIT_MS);
    }
  }
}
