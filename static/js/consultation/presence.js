/**
 * Who is in the room now: every open connection, told by the hub as "join",
 * "here" (the answer of those already present to a newcomer) and "leave".
 * Nothing of it is stored; after a reconnect the others answer again.
 */

import { rt } from "./strings.js";

export class Presence {
  constructor(list, me) {
    this.list = list;
    this.me = me;
    this.conns = new Map();
    this.presenter = null;
    this.listeners = new Set();
    this.render();
  }

  handle(data) {
    if (data.event === "leave") this.conns.delete(data.conn);
    else this.conns.set(data.conn, data.user);
    this.render();
    for (const listener of this.listeners) listener(data);
  }

  /** The line dropped: whoever is still here says so again when it is back. */
  reset() {
    this.conns.clear();
    this.render();
  }

  setPresenter(userId) {
    this.presenter = userId;
    this.render();
  }

  /** The other people here, once each (a person may have two windows open). */
  people() {
    const seen = new Map();
    for (const user of this.conns.values()) if (user.id !== this.me.id) seen.set(user.id, user);
    return [...seen.values()];
  }

  render() {
    const items = [{ ...this.me, self: true }, ...this.people()].map((user) => {
      const li = document.createElement("li");
      li.className = "cs-person";
      li.dataset.userId = String(user.id);
      const name = document.createElement("span");
      name.className = "cs-person__name";
      name.textContent = user.self ? `${user.name} (${rt("you")})` : user.name;
      const where = document.createElement("span");
      where.className = "cs-person__where";
      where.textContent = user.institution || "";
      li.append(name, where);
      if (user.id === this.presenter) {
        const badge = document.createElement("span");
        badge.className = "cs-badge";
        badge.textContent = rt("presenting");
        li.append(badge);
      }
      return li;
    });
    if (items.length === 1) {
      const alone = document.createElement("li");
      alone.className = "cs-muted";
      alone.textContent = rt("alone");
      items.push(alone);
    }
    this.list.replaceChildren(...items);
  }
}
