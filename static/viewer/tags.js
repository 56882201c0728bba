/**
 * The DICOM tag browser: every attribute of the image shown in the active
 * viewport, from the series metadata already fetched (no extra request but
 * the keyword dictionary, loaded once when the browser first opens), nested
 * sequences indented, searchable by tag, keyword or value.
 */

import { t } from "./strings.js";

let names = null;

async function loadNames(url) {
  if (names) return names;
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    names = response.ok ? await response.json() : {};
  } catch {
    names = {};
  }
  return names;
}

function tagLabel(tag) {
  return `(${tag.slice(0, 4)},${tag.slice(4)})`;
}

function valueText(element) {
  if (!element) return "";
  if (element.BulkDataURI || element.InlineBinary) return t("bulk_data");
  const list = element.Value || [];
  if (element.vr === "PN") {
    return list
      .map((name) => (typeof name === "string" ? name : [name.Alphabetic, name.Ideographic, name.Phonetic].filter(Boolean).join(" = ")))
      .join("\\");
  }
  return list.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join("\\");
}

/** Flatten a data set into rows {depth, tag, vr, value}, sequences followed by their items. */
export function tagRows(ds, depth = 0, rows = []) {
  for (const tag of Object.keys(ds).sort()) {
    const element = ds[tag];
    if (element.vr === "SQ") {
      const items = element.Value || [];
      rows.push({ depth, tag, vr: "SQ", value: t("items", { count: items.length }) });
      items.forEach((item, i) => {
        rows.push({ depth: depth + 1, tag: "", vr: "", value: `#${i + 1}`, item: true });
        tagRows(item, depth + 2, rows);
      });
    } else {
      rows.push({ depth, tag, vr: element.vr || "", value: valueText(element) });
    }
  }
  return rows;
}

export class TagBrowser {
  constructor(element, namesUrl, onClose) {
    this.element = element;
    this.namesUrl = namesUrl;
    this.ds = null;
    const head = document.createElement("div");
    head.className = "vw-tags__head";
    const title = document.createElement("h2");
    title.textContent = t("tags_title");
    const close = document.createElement("button");
    close.type = "button";
    close.className = "vw-tags__close";
    close.textContent = "×";
    close.title = t("close");
    close.setAttribute("aria-label", t("close"));
    close.addEventListener("click", onClose);
    head.append(title, close);
    this.search = document.createElement("input");
    this.search.type = "search";
    this.search.className = "vw-tags__search";
    this.search.placeholder = t("tags_search");
    this.search.setAttribute("aria-label", t("tags_search"));
    this.search.addEventListener("input", () => this.render());
    this.body = document.createElement("div");
    this.body.className = "vw-tags__body";
    element.append(head, this.search, this.body);
  }

  get open() {
    return !this.element.hidden;
  }

  async setOpen(open) {
    this.element.hidden = !open;
    if (open) {
      await loadNames(this.namesUrl);
      this.render();
      this.search.focus();
    }
  }

  show(ds) {
    if (ds === this.ds) return;
    this.ds = ds;
    // Scrolling changes the image every frame: render at most once per frame.
    if (this.open && !this.queued) {
      this.queued = true;
      requestAnimationFrame(() => {
        this.queued = false;
        this.render();
      });
    }
  }

  render() {
    if (!this.ds) return;
    const query = this.search.value.trim().toLowerCase();
    const dictionary = names || {};
    const rows = tagRows(this.ds).filter((row) => {
      if (!query) return true;
      const keyword = dictionary[row.tag] || "";
      return [row.tag, tagLabel(row.tag || "    "), keyword, row.value].some((text) => String(text).toLowerCase().includes(query));
    });
    if (!rows.length) {
      const empty = document.createElement("p");
      empty.className = "vw-muted";
      empty.textContent = t("no_tags");
      this.body.replaceChildren(empty);
      return;
    }
    const table = document.createElement("table");
    table.className = "vw-tags__table";
    const head = table.createTHead().insertRow();
    for (const key of ["tag", "tag_name", "tag_vr", "tag_value"]) {
      const th = document.createElement("th");
      th.textContent = t(key);
      head.append(th);
    }
    const body = table.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      tr.dataset.tag = row.tag;
      if (row.item) tr.className = "is-item";
      const cells = [row.tag ? tagLabel(row.tag) : "", row.tag ? dictionary[row.tag] || "" : "", row.vr, row.value];
      cells.forEach((text, i) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (i === 0) td.style.paddingLeft = `${0.4 + row.depth * 0.9}rem`;
      });
    }
    this.body.replaceChildren(table);
  }
}
