/**
 * The side panel: this study's series as thumbnails, and the patient's prior
 * studies, each opening to its own series. A click shows a series in the
 * active viewport; a thumbnail can also be dragged onto any viewport.
 */

import { formatDate, num, str, values } from "./dicomweb.js";
import { t } from "./strings.js";
import { SERIES_TYPE } from "./viewport.js";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Series in the order a reader expects them: by series number. */
export function sortSeries(list) {
  return [...list].sort((a, b) => (num(a, "00200011", 1e9) - num(b, "00200011", 1e9)) || 0);
}

export class SeriesPanel {
  constructor(app, seriesList, priorList) {
    this.app = app;
    this.seriesList = seriesList;
    this.priorList = priorList;
    this.items = new Map();
  }

  seriesItem(study, ds) {
    const uid = str(ds, "0020000E");
    const li = element("li", "vw-series__item");
    const button = element("button", "vw-thumb");
    button.type = "button";
    button.draggable = true;
    button.dataset.seriesUid = uid;
    button.dataset.studyUid = study;
    const img = element("img", "vw-thumb__img");
    img.alt = "";
    img.loading = "lazy";
    img.decoding = "async";
    img.src = this.app.client.thumbnailUrl(study, uid);
    img.addEventListener("error", () => img.classList.add("is-missing"));
    const number = num(ds, "00200011");
    const title = [str(ds, "00080060"), number !== undefined ? t("series_label", { number }) : ""].filter(Boolean).join(" · ");
    const text = element("span", "vw-thumb__text");
    text.append(element("span", "vw-thumb__title", title));
    text.append(element("span", "vw-thumb__desc", str(ds, "0008103E")));
    text.append(element("span", "vw-thumb__count", t("images_count", { count: num(ds, "00201209", 0) })));
    button.append(img, text);
    button.addEventListener("click", () => this.app.showSeries(study, uid));
    button.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData(SERIES_TYPE, JSON.stringify({ study, series: uid }));
      e.dataTransfer.effectAllowed = "copy";
    });
    li.append(button);
    this.items.set(`${study}|${uid}`, button);
    return li;
  }

  showSeries(study, list) {
    this.seriesList.replaceChildren(...sortSeries(list).map((ds) => this.seriesItem(study, ds)));
  }

  /** Mark the series shown in some viewport, and the active one. */
  mark(shown, active) {
    for (const [key, button] of this.items) {
      button.classList.toggle("is-shown", shown.has(key));
      button.classList.toggle("is-active", key === active);
    }
  }

  showPriors(priors) {
    if (!priors.length) {
      this.priorList.replaceChildren(element("p", "vw-muted", t("no_priors")));
      return;
    }
    const nodes = priors.map((study) => {
      const uid = str(study, "0020000D");
      const details = element("details", "vw-prior");
      details.dataset.studyUid = uid;
      const summary = element("summary", "vw-prior__summary");
      summary.append(element("span", "vw-prior__date", formatDate(str(study, "00080020"))));
      summary.append(element("span", "vw-prior__mod", values(study, "00080061").join("/")));
      summary.append(element("span", "vw-prior__desc", str(study, "00081030")));
      const list = element("ul", "vw-series");
      details.append(summary, list);
      details.addEventListener("toggle", () => {
        if (details.open && !list.childElementCount) this.fillPrior(uid, list);
      });
      return details;
    });
    this.priorList.replaceChildren(...nodes);
  }

  async fillPrior(study, list) {
    list.append(element("li", "vw-muted", t("loading")));
    try {
      const series = await this.app.client.searchSeries(study);
      list.replaceChildren(...sortSeries(series).map((ds) => this.seriesItem(study, ds)));
      this.app.markSeries();
    } catch {
      list.replaceChildren(element("li", "vw-muted", t("load_failed")));
    }
  }
}
