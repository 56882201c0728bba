/**
 * One viewport: a canvas showing a stack, its view (zoom, pan, rotation,
 * flips, inversion, window/level), its overlays and measurements, and the
 * mouse, wheel and drop handling that changes them. Drawing is coalesced to
 * one per animation frame, so a fast wheel never queues stale slices.
 */

import { config, t } from "./strings.js";
import { Painter, defaultWindow, drawImage, viewMatrix } from "./render.js";
import { Overlay } from "./overlay.js";
import { MEASURE_TOOLS, MeasureSession, drawMeasurements, evaluate } from "./tools.js";

export const SERIES_TYPE = "application/x-rc-series";

function freshView() {
  return { zoom: 1, panX: 0, panY: 0, rotation: 0, flipH: false, flipV: false, invert: false };
}

function div(className, parent) {
  const element = document.createElement("div");
  element.className = className;
  parent.append(element);
  return element;
}

export class Viewport {
  constructor(app, position) {
    this.app = app;
    this.position = position;
    this.element = document.createElement("div");
    this.element.className = "vp";
    this.element.tabIndex = 0;
    this.element.dataset.viewport = String(position);
    this.element.dataset.sliceIndex = "0";
    // Viewport 0 takes over the canvas first-paint.js drew the first image in.
    const first = position === 0 ? document.querySelector(".vp-first") : null;
    this.canvas = first ? first.querySelector("canvas") : document.createElement("canvas");
    this.element.append(this.canvas);
    if (first) first.remove();
    if (position === 0 && window.__viewerFirst) window.__viewerFirst.adopted = true;
    // Its image stays on screen, without a "Loading…" over it, until the viewer draws.
    this.keepsFirstPaint = Boolean(first);
    this.ctx = this.canvas.getContext("2d", { alpha: false });
    this.overlay = new Overlay(this.element);
    this.badge = div("vp-badge", this.element);
    this.badge.hidden = true;
    this.status = div("vp-status", this.element);
    this.progress = div("vp-progress", this.element);
    this.progressBar = div("vp-progress__bar", this.progress);
    this.progressLabel = div("vp-progress__label", this.progress);
    this.painter = new Painter();
    this.stack = null;
    this.slice = 0;
    this.view = freshView();
    this.voi = null;
    this.matrix = null;
    this.measurements = new Map();
    this.session = null;
    this.drag = null;
    this.wheelRest = 0;
    this.queued = false;
    this.bind();
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.element);
    if (!first) this.setStatus(t("empty_viewport"));
  }

  destroy() {
    this.resizer.disconnect();
    this.element.remove();
  }

  get dpr() {
    const width = this.canvas.getBoundingClientRect().width;
    return width ? this.canvas.width / width : window.devicePixelRatio || 1;
  }

  currentImage() {
    return this.stack ? this.stack.images[this.slice] : null;
  }

  setStatus(text) {
    this.status.textContent = text || "";
    this.status.hidden = !text;
  }

  /** Show `stack` from `slice`; `keep` the view when it replaces a preview of the same series. */
  setStack(stack, slice = 0, keep = false) {
    this.stack = stack;
    if (!keep) {
      this.view = freshView();
      this.voi = null;
      this.session = null;
      this.matrix = null;
    }
    this.element.dataset.seriesUid = stack.series;
    this.element.dataset.studyUid = stack.study;
    this.badge.textContent = t("prior");
    this.badge.hidden = stack.study === config.studyUid;
    if (!keep) this.setStatus(stack.length ? (this.keepsFirstPaint ? "" : t("loading")) : t("no_images"));
    this.setSlice(slice);
    this.updateProgress();
  }

  setSlice(index) {
    if (!this.stack || !this.stack.length) return;
    const slice = Math.max(0, Math.min(this.stack.length - 1, index));
    if (this.session && slice !== this.slice) this.session = null;
    this.slice = slice;
    this.stack.center = slice;
    this.element.dataset.sliceIndex = String(slice);
    this.app.loader.request(this.stack.images[slice]);
    this.invalidate();
    this.app.sliceChanged(this);
  }

  step(delta) {
    this.setSlice(this.slice + delta);
  }

  invalidate() {
    if (this.queued) return;
    this.queued = true;
    // A direct draw() in between clears `queued`, and this one is skipped.
    requestAnimationFrame(() => this.queued && this.draw());
  }

  resize() {
    const rect = this.element.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(rect.width * dpr));
    const height = Math.max(1, Math.round(rect.height * dpr));
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.draw();
    }
  }

  matrixFor(image, frame) {
    const mm = image.spacing && !frame.rendered ? image.spacing.mm : null;
    const aspect = mm ? mm[0] / mm[1] : 1;
    return viewMatrix(this.view, frame.columns, frame.rows, aspect, this.canvas.width, this.canvas.height);
  }

  /** Image pixels per CSS pixel of the screen, as the overlay shows it. */
  scaleFactor() {
    if (!this.matrix) return 1;
    return Math.hypot(this.matrix.a, this.matrix.b) / this.dpr;
  }

  /** Draw now: the current image if its frame is here, else keep what is shown. */
  draw() {
    this.queued = false;
    const image = this.currentImage();
    if (!image) {
      this.ctx.fillStyle = "#000";
      this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      this.place = "";
      this.overlay.clear();
      return false;
    }
    const frame = this.app.loader.get(image);
    if (!frame) {
      if (this.app.loader.hasFailed(image.key)) this.setStatus(t("frame_failed"));
      return false;
    }
    this.setStatus("");
    this.keepsFirstPaint = false;
    if (!this.voi) this.voi = defaultWindow(image, frame);
    const source = this.painter.paint(image, frame, { ...this.voi, invert: this.view.invert });
    const matrix = this.matrixFor(image, frame);
    const place = `${matrix}|${frame.columns}|${frame.rows}|${this.canvas.width}|${this.canvas.height}`;
    drawImage(this.ctx, source, matrix, this.overdrawn || place !== this.place);
    this.matrix = matrix;
    this.place = place;
    const live = this.session ? this.session.measurement : null;
    const shapes = this.measurements.get(image.key);
    // Labels may spill over the black border: the next draw clears it.
    this.overdrawn = Boolean(live || (shapes && shapes.length));
    drawMeasurements(this.ctx, matrix, shapes, live, this.dpr);
    this.overlay.update(this, image, frame, this.matrix);
    this.element.dataset.drawnIndex = String(this.slice);
    this.element.dataset.kind = frame.kind;
    this.app.drawn(this);
    return true;
  }

  updateProgress() {
    if (!this.stack) return;
    if (this.stack.preview) return;
    const total = this.stack.length;
    const loaded = this.stack.loaded(this.app.loader);
    this.progressBar.style.width = `${total ? (100 * loaded) / total : 100}%`;
    this.progressLabel.textContent = t("prefetch", { loaded, total });
    this.progress.classList.toggle("is-done", loaded >= total);
    this.element.dataset.loaded = String(loaded);
  }

  // --- view changes ------------------------------------------------------------------

  applyPreset(preset) {
    const image = this.currentImage();
    const frame = image && this.app.loader.get(image);
    if (!frame || frame.kind !== "gray") return;
    this.voi = preset ? { center: preset.center, width: preset.width } : defaultWindow(image, frame);
    this.invalidate();
  }

  rotate() {
    this.view.rotation = (this.view.rotation + 90) % 360;
    this.invalidate();
  }

  toggle(name) {
    this.view[name] = !this.view[name];
    this.invalidate();
  }

  reset() {
    this.view = freshView();
    this.voi = null;
    this.session = null;
    this.invalidate();
  }

  clearMeasurements() {
    const image = this.currentImage();
    if (image) this.measurements.delete(image.key);
    this.session = null;
    this.invalidate();
  }

  // --- input -------------------------------------------------------------------------

  bind() {
    const el = this.element;
    el.addEventListener("pointerdown", (e) => this.pointerDown(e));
    el.addEventListener("pointermove", (e) => this.pointerMove(e));
    el.addEventListener("pointerup", (e) => this.pointerUp(e));
    el.addEventListener("pointercancel", () => (this.drag = null));
    el.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    el.addEventListener("contextmenu", (e) => e.preventDefault());
    el.addEventListener("focus", () => this.app.activate(this));
    el.addEventListener("dragover", (e) => {
      if (e.dataTransfer.types.includes(SERIES_TYPE)) {
        e.preventDefault();
        el.classList.add("is-drop");
      }
    });
    el.addEventListener("dragleave", () => el.classList.remove("is-drop"));
    el.addEventListener("drop", (e) => {
      el.classList.remove("is-drop");
      const data = e.dataTransfer.getData(SERIES_TYPE);
      if (!data) return;
      e.preventDefault();
      const { study, series } = JSON.parse(data);
      this.app.activate(this);
      this.app.showSeries(study, series, this);
    });
  }

  canvasPoint(e) {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = this.dpr;
    return { x: (e.clientX - rect.left) * dpr, y: (e.clientY - rect.top) * dpr };
  }

  imagePoint(screen) {
    const p = this.matrix.inverse().transformPoint(new DOMPoint(screen.x, screen.y));
    return { x: p.x, y: p.y };
  }

  pointerDown(e) {
    this.app.activate(this);
    if (!this.stack || !this.matrix) return;
    e.preventDefault();
    this.element.focus({ preventScroll: true });
    this.element.setPointerCapture(e.pointerId);
    const screen = this.canvasPoint(e);
    const tool = e.button === 1 ? "pan" : e.button === 2 ? "zoom" : this.app.tool;
    if (this.session && this.session.phase === 1) {
      this.drag = { tool: "measure", start: screen };
      return;
    }
    if (MEASURE_TOOLS.has(tool) && e.button === 0) {
      this.session = new MeasureSession(tool, this.imagePoint(screen));
      this.drag = { tool: "measure", start: screen };
      this.invalidate();
      return;
    }
    this.drag = { tool, start: screen, voi: { ...this.voi }, view: { ...this.view }, slice: this.slice };
  }

  pointerMove(e) {
    if (!this.matrix) return;
    const screen = this.canvasPoint(e);
    if (this.session) {
      this.session.move(this.imagePoint(screen));
      this.evaluateLive();
      this.invalidate();
      return;
    }
    const drag = this.drag;
    if (!drag) return;
    const dpr = this.dpr;
    const dx = (screen.x - drag.start.x) / dpr;
    const dy = (screen.y - drag.start.y) / dpr;
    if (drag.tool === "window" && drag.voi.width) {
      const image = this.currentImage();
      const frame = image && this.app.loader.get(image);
      // Sensitivity follows the window: fine for a brain window, fast for a lung one.
      const rate = Math.max(frame && frame.kind === "rgb" ? 1 : 0.5, drag.voi.width / 300);
      this.voi = { center: drag.voi.center + dy * rate, width: Math.max(1, drag.voi.width + dx * rate) };
    } else if (drag.tool === "scroll") {
      const step = Math.max(3, Math.min(20, this.canvas.height / dpr / this.stack.length));
      this.setSlice(drag.slice + Math.round(dy / step));
    } else if (drag.tool === "zoom") {
      this.view.zoom = Math.max(0.1, Math.min(40, drag.view.zoom * Math.exp(-dy / 150)));
    } else if (drag.tool === "pan") {
      this.view.panX = drag.view.panX + dx * dpr;
      this.view.panY = drag.view.panY + dy * dpr;
    }
    this.invalidate();
  }

  pointerUp(e) {
    const drag = this.drag;
    this.drag = null;
    if (!drag || drag.tool !== "measure" || !this.session || !this.matrix) return;
    const screen = this.canvasPoint(e);
    const distance = Math.hypot(screen.x - drag.start.x, screen.y - drag.start.y) / this.dpr;
    const outcome = this.session.release(this.imagePoint(screen), distance);
    if (outcome === "done") this.finishMeasurement();
    else if (outcome === "cancel") this.session = null;
    else this.evaluateLive();
    this.invalidate();
  }

  evaluateLive() {
    const image = this.currentImage();
    if (image && this.session) evaluate(this.session.measurement, image, this.app.loader.get(image));
  }

  finishMeasurement() {
    const image = this.currentImage();
    const measurement = evaluate(this.session.measurement, image, this.app.loader.get(image));
    this.session = null;
    const list = this.measurements.get(image.key) || [];
    list.push(measurement);
    this.measurements.set(image.key, list);
    this.app.measured(this, measurement);
  }

  wheel(e) {
    e.preventDefault();
    this.app.activate(this);
    if (!this.stack) return;
    if (e.ctrlKey) {
      this.view.zoom = Math.max(0.1, Math.min(40, this.view.zoom * Math.exp(-e.deltaY / 300)));
      this.invalidate();
      return;
    }
    // A mouse notch is one slice; a touchpad's small deltas add up to one.
    let steps = 0;
    if (e.deltaMode !== 0 || Math.abs(e.deltaY) >= 50) {
      steps = Math.sign(e.deltaY);
      this.wheelRest = 0;
    } else {
      this.wheelRest += e.deltaY;
      if (Math.abs(this.wheelRest) >= 50) {
        steps = Math.sign(this.wheelRest);
        this.wheelRest = 0;
      }
    }
    if (steps) this.step(steps);
  }
}
