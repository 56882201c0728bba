/**
 * The room's viewer, built from the diagnostic viewer's own modules (imported,
 * not copied), and the synchronization of views.
 *
 * The presenter's series, slice, window/level, zoom and pan go to the room
 * whenever they change (at most every 50 ms, the last one always). The others
 * follow, or browse freely — touching their own viewer while following
 * switches to browsing — and follow again with one click. Anyone may take the
 * presenter role; the change is stored in the transcript. Views themselves
 * are ephemeral: a follower who arrives asks the presenter for the current one.
 */

import { DicomWebClient, num, str } from "../../viewer/dicomweb.js";
import { FrameLoader, Stack, imagesOf } from "../../viewer/stack.js";
import { Layout } from "../../viewer/layout.js";
import { Viewport } from "../../viewer/viewport.js";
import { SeriesPanel, sortSeries } from "../../viewer/panel.js";
import { config } from "../../viewer/strings.js";
import { rt } from "./strings.js";

const NON_IMAGE = new Set(["SR", "PR", "KO", "DOC", "ECG", "REG", "SEG", "RTSTRUCT"]);
const SEND_EVERY_MS = 50;

/** The object the viewer's Viewport and SeriesPanel talk to ("app"). */
export class ConsultViewer {
  constructor({ grid, seriesList, priorList }) {
    this.client = new DicomWebClient(config.dicomweb);
    this.loader = new FrameLoader(this.client, { concurrency: 5 });
    this.tool = "window";
    this.stacks = new Map();
    this.listeners = { change: new Set(), drawn: new Set(), measured: new Set() };
    this.layout = new Layout(grid, (i) => new Viewport(this, i));
    this.panel = new SeriesPanel(this, seriesList, priorList);
    this.loader.listeners.add((image, frame, error) => this.frameArrived(image, frame, error));
    this.layout.set("1x1");
  }

  get viewport() {
    return this.layout.active;
  }

  on(name, listener) {
    this.listeners[name].add(listener);
  }

  emit(name, ...args) {
    for (const listener of this.listeners[name]) listener(...args);
  }

  stack(study, series) {
    const key = `${study}|${series}`;
    if (!this.stacks.has(key)) {
      const promise = this.client
        .seriesMetadata(study, series)
        .then((metadata) => new Stack(imagesOf(metadata, study, series), { study, series }));
      promise.catch(() => this.stacks.delete(key));
      this.stacks.set(key, promise);
    }
    return this.stacks.get(key);
  }

  async showSeries(study, series, viewport = this.layout.active, slice = 0) {
    const stack = await this.stack(study, series);
    if (!viewport.stack || viewport.stack.series !== series || viewport.stack.study !== study) {
      viewport.setStack(stack, slice);
    } else {
      viewport.setSlice(slice);
    }
    this.loader.watch(this.layout.stacks());
    this.markSeries();
    this.emit("change", viewport);
    return stack;
  }

  async start(study) {
    const list = sortSeries(await this.client.searchSeries(study));
    this.panel.showSeries(study, list);
    this.panel.showPriors([]);
    const first = list.find((ds) => !NON_IMAGE.has(str(ds, "00080060")) && num(ds, "00201209", 1) > 0);
    if (first) await this.showSeries(study, str(first, "0020000E"));
  }

  // --- what the Viewport and the SeriesPanel call --------------------------------------

  activate(viewport) {
    if (this.layout.activate(viewport)) this.markSeries();
  }

  sliceChanged(viewport) {
    this.emit("change", viewport);
  }

  drawn(viewport) {
    this.emit("drawn", viewport);
  }

  measured(viewport, measurement) {
    this.emit("measured", viewport, measurement);
  }

  markSeries() {
    const stack = this.viewport && this.viewport.stack;
    const key = stack ? `${stack.study}|${stack.series}` : "";
    this.panel.mark(new Set(key ? [key] : []), key);
  }

  frameArrived(image) {
    for (const viewport of this.layout.viewports) {
      if (!viewport.stack || viewport.stack.series !== image.series) continue;
      viewport.updateProgress();
      const current = viewport.currentImage();
      if (current && current.key === image.key) viewport.invalidate();
    }
  }

  // --- the view as the room sees it ------------------------------------------------------

  /** The active viewport's view: what a follower needs to show the same thing. */
  state() {
    const viewport = this.viewport;
    if (!viewport || !viewport.stack) return null;
    const image = viewport.currentImage();
    const { zoom, panX, panY, rotation, flipH, flipV, invert } = viewport.view;
    return {
      study: viewport.stack.study,
      series: viewport.stack.series,
      slice: viewport.slice,
      sop: image ? image.sop : "",
      voi: viewport.voi ? { center: viewport.voi.center, width: viewport.voi.width } : null,
      view: { zoom, panX, panY, rotation, flipH, flipV, invert },
    };
  }

  async apply(state) {
    if (!state || !state.series) return;
    const viewport = this.viewport;
    await this.showSeries(state.study, state.series, viewport, state.slice);
    if (state.voi) viewport.voi = { ...state.voi };
    if (state.view) Object.assign(viewport.view, state.view);
    viewport.invalidate();
  }
}

/** Presenter and followers: who leads the view, and who follows it. */
export class Sync {
  constructor(viewer, room, { me, presentButton, followButton, status }) {
    this.viewer = viewer;
    this.room = room;
    this.me = me;
    this.presenter = null;
    this.following = true;
    this.presentButton = presentButton;
    this.followButton = followButton;
    this.status = status;
    this.lastSent = "";
    this.sendTimer = null;
    this.applying = false;
    this.pendingState = null;
    viewer.on("change", () => this.changed());
    viewer.on("drawn", () => this.changed());
    presentButton.addEventListener("click", () =>
      this.room.send("present", { on: this.presenter !== this.me.id }),
    );
    followButton.addEventListener("click", () => this.follow(!this.following));
    // Touching one's own viewer while following means: let me look myself.
    for (const type of ["pointerdown", "wheel", "keydown"]) {
      viewer.layout.grid.addEventListener(
        type,
        (e) => e.isTrusted && !viewer.annotating && this.presenter && !this.presenting && this.following && this.follow(false),
        { capture: true, passive: true },
      );
    }
    this.render();
  }

  get presenting() {
    return this.presenter === this.me.id;
  }

  setPresenter(userId, name = "") {
    this.presenter = userId;
    this.presenterName = name;
    this.lastSent = "";
    if (this.presenting) this.changed();
    else if (userId && this.following) this.room.emit("view_request");
    this.render();
  }

  follow(on) {
    this.following = on;
    if (on && this.presenter && !this.presenting) this.room.emit("view_request");
    this.render();
  }

  /** The presenter's view changed: tell the room, at most every 50 ms, the last one always. */
  changed() {
    if (!this.presenting || this.sendTimer) return;
    this.sendTimer = setTimeout(() => {
      this.sendTimer = null;
      this.sendNow();
    }, SEND_EVERY_MS);
  }

  sendNow(force = false) {
    const state = this.viewer.state();
    if (!state) return;
    const text = JSON.stringify(state);
    if (!force && text === this.lastSent) return;
    if (this.room.emit("view", { state })) this.lastSent = text;
  }

  /** A view from the presenter (the hub sends only the presenter's). */
  async received(state) {
    if (this.presenting || !this.following) return;
    // Apply the latest only: views arriving while one loads replace each other.
    this.pendingState = state;
    if (this.applying) return;
    this.applying = true;
    try {
      while (this.pendingState) {
        const next = this.pendingState;
        this.pendingState = null;
        await this.viewer.apply(next);
      }
    } finally {
      this.applying = false;
    }
  }

  requested() {
    if (this.presenting) this.sendNow(true);
  }

  render() {
    this.presentButton.textContent = this.presenting ? rt("stop_presenting") : rt("present");
    this.presentButton.setAttribute("aria-pressed", String(this.presenting));
    this.followButton.hidden = this.presenting || !this.presenter;
    this.followButton.setAttribute("aria-pressed", String(this.following));
    let text = rt("no_presenter");
    if (this.presenting) text = rt("presenting");
    else if (this.presenter) text = this.following ? rt("following", { name: this.presenterName || "" }) : rt("browsing");
    this.status.textContent = text;
    document.body.dataset.following = String(this.following && Boolean(this.presenter) && !this.presenting);
    document.body.dataset.presenting = String(this.presenting);
  }
}
