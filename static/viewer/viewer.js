/**
 * The viewer application: the DICOMweb client, the frame loader, the layout
 * of viewports, the series panel, the tag browser, the toolbar, the keys and
 * cine. The first image is asked for before anything else: the page names the
 * first series, so its metadata and then its first frame are fetched while
 * the series list and thumbnails follow.
 *
 * window.__viewerStats (first image time, frames drawn, the last measurement)
 * serves the tests and the benchmark; bench.js adds timed scrolling.
 */

import { DicomWebClient, num, priorStudies, str } from "./dicomweb.js";
import { FrameLoader, ImageRef, Stack, imagesOf } from "./stack.js";
import { Layout } from "./layout.js";
import { Viewport } from "./viewport.js";
import { SeriesPanel, sortSeries } from "./panel.js";
import { TagBrowser } from "./tags.js";
import { patientBanner } from "./overlay.js";
import { config, t } from "./strings.js";
import { installBench } from "./bench.js";

const NON_IMAGE = new Set(["SR", "PR", "KO", "DOC", "ECG", "REG", "SEG", "RTSTRUCT"]);
const TOOL_KEYS = { w: "window", s: "scroll", z: "zoom", p: "pan", l: "length", a: "angle", e: "ellipse" };
// first-paint.js may have drawn the first image already: keep what it recorded.
const stats = (window.__viewerStats = window.__viewerStats || {});
for (const [key, value] of Object.entries({
  firstImageMs: null,
  viewerDrawnMs: null,
  stackMs: null,
  firstFrameMs: null,
  framesDrawn: 0,
  framesLoaded: 0,
  framesFailed: 0,
  lastMeasurement: null,
})) {
  if (!(key in stats)) stats[key] = value;
}

class Viewer {
  constructor() {
    this.client = new DicomWebClient(config.dicomweb);
    this.loader = new FrameLoader(this.client, { concurrency: 5 });
    this.tool = "window";
    this.stacks = new Map();
    this.seriesLists = new Map();
    this.priors = [];
    this.cine = { playing: false, fps: 15, last: 0, userFps: false };
    this.message = document.querySelector(".vw-message");
    this.layout = new Layout(document.querySelector(".vw-grid"), (i) => new Viewport(this, i));
    this.panel = new SeriesPanel(this, document.querySelector(".vw-series"), document.querySelector(".vw-priors"));
    this.tags = new TagBrowser(document.querySelector(".vw-tags"), document.body.dataset.tagNames, () => this.toggleTags(false));
    this.loader.listeners.add((image, frame, error) => this.frameArrived(image, frame, error));
    this.firstDrawn = new Promise((resolve) => (this.firstImageDrawn = resolve));
    this.layout.set("1x1");
    this.bindToolbar();
    this.bindKeys();
  }

  showMessage(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  /** The stack of a series: its metadata is fetched once, whatever shows it. */
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

  async seriesList(study) {
    if (!this.seriesLists.has(study)) this.seriesLists.set(study, this.client.searchSeries(study));
    return this.seriesLists.get(study);
  }

  async showSeries(study, series, viewport = this.layout.active) {
    viewport.setStatus(t("loading"));
    try {
      const stack = await this.stack(study, series);
      if (!this.layout.viewports.includes(viewport)) return null;
      viewport.setStack(stack);
      if (stats.stackMs === null) stats.stackMs = performance.now();
      this.loader.watch(this.layout.stacks());
      this.markSeries();
      this.suggestFps(stack);
      if (viewport === this.layout.active) this.sliceChanged(viewport);
      return stack;
    } catch (error) {
      viewport.setStatus(t("load_failed"));
      console.error(error);
      return null;
    }
  }

  /**
   * Show the first image as soon as possible: its frame and its own metadata
   * are asked for together; the series' metadata (large for a long CT) only
   * once the frame is in, so it does not compete with it.
   */
  async openFirst() {
    const { studyUid: study, firstSeriesUid: series, firstInstanceUid: sop } = config;
    if (!series) return null;
    const viewport = this.layout.active;
    if (sop) {
      try {
        // first-paint.js asked for both before the modules arrived.
        const early = window.__viewerEarly || {};
        const ask = () => this.client.frame({ study, series, sop, frame: 1 });
        // If the early request failed, ask again: the client's error (406: not
        // decodable here) is what sends the loader to the rendered image.
        const request = early.frameBytes ? early.frameBytes.catch(ask) : ask();
        request.catch(() => null); // its failure is the loader's (or the fallback's) to handle
        const ds = await this.client.instanceMetadata(study, series, sop, early.metadata);
        const image = new ImageRef(ds, 1, Math.max(1, num(ds, "00280008", 1)), study, series);
        this.loader.adopt(image, request);
        const preview = new Stack([image], { study, series });
        preview.preview = true; // the rest of the series is still on its way
        viewport.setStack(preview);
        await request.catch(() => null);
        const stack = await this.stack(study, series);
        const slice = Math.max(0, stack.images.findIndex((other) => other.key === image.key));
        if (viewport.stack && viewport.stack.series === series) viewport.setStack(stack, slice, true);
        stats.stackMs = performance.now();
        this.loader.watch(this.layout.stacks());
        this.markSeries();
        this.suggestFps(stack);
        return stack;
      } catch (error) {
        console.error(error);
      }
    }
    return this.showSeries(study, series, viewport);
  }

  async start() {
    const study = config.studyUid;
    const first = (this.ready = this.openFirst());
    // The series list, its thumbnails and the recognition panel wait for the first image.
    await Promise.race([this.firstDrawn, first]);
    this.loadRecognitionPanel();
    let list;
    try {
      list = await this.seriesList(study);
    } catch (error) {
      this.showMessage(t("load_failed"));
      console.error(error);
      return;
    }
    this.panel.showSeries(study, list);
    let stack = await first;
    if (!stack) {
      const firstImages = sortSeries(list).find((ds) => !NON_IMAGE.has(str(ds, "00080060")));
      if (!firstImages) {
        this.showMessage(t("no_images"));
        return;
      }
      stack = await this.showSeries(study, str(firstImages, "0020000E"));
    }
    this.markSeries();
    const ds = stack && stack.images.length ? stack.images[0].ds : null;
    if (ds) {
      document.querySelector(".vw-patient").textContent = patientBanner(ds);
      this.findPriors(ds);
    }
  }

  loadRecognitionPanel() {
    if (!config.recognitionScript || document.querySelector("script[data-recognition]")) return;
    const script = document.createElement("script");
    script.src = config.recognitionScript;
    script.dataset.recognition = "";
    document.head.append(script);
  }

  async findPriors(ds) {
    const patient = { id: str(ds, "00100020"), issuer: str(ds, "00100021") };
    try {
      this.priors = await priorStudies(this.client, patient, config.studyUid);
    } catch (error) {
      console.error(error);
      this.priors = [];
    }
    this.panel.showPriors(this.priors);
    document.querySelector('[data-action="compare"]').disabled = !this.priors.length;
  }

  /** Show the latest prior beside the current study, a series of the same modality if any. */
  async comparePrior() {
    const prior = this.priors[0];
    if (!prior) return;
    const study = str(prior, "0020000D");
    const list = sortSeries(await this.seriesList(study)).filter((ds) => !NON_IMAGE.has(str(ds, "00080060")));
    const current = this.layout.active.currentImage();
    const pick = list.find((ds) => current && str(ds, "00080060") === current.modality) || list[0];
    if (!pick) return;
    if (this.layout.name === "1x1") this.setLayout("1x2", { fill: false });
    const target = this.layout.viewports[1];
    this.activate(target);
    await this.showSeries(study, str(pick, "0020000E"), target);
  }

  async setLayout(name, { fill = true } = {}) {
    const added = this.layout.set(name);
    for (const button of document.querySelectorAll("[data-layout]")) {
      button.setAttribute("aria-pressed", String(button.dataset.layout === name));
    }
    this.loader.watch(this.layout.stacks());
    this.markSeries();
    if (!fill || !added.length) return;
    // Each new viewport gets the next series of this study not yet on screen.
    const list = sortSeries(await this.seriesList(config.studyUid)).filter(
      (ds) => !NON_IMAGE.has(str(ds, "00080060")) && num(ds, "00201209", 1) > 0,
    );
    const shown = new Set(this.layout.viewports.map((v) => v.stack && v.stack.series).filter(Boolean));
    for (const viewport of added) {
      const next = list.find((ds) => !shown.has(str(ds, "0020000E"))) || list[0];
      if (!next) continue;
      shown.add(str(next, "0020000E"));
      this.showSeries(config.studyUid, str(next, "0020000E"), viewport);
    }
  }

  markSeries() {
    const shown = new Set();
    for (const viewport of this.layout.viewports) {
      if (viewport.stack) shown.add(`${viewport.stack.study}|${viewport.stack.series}`);
    }
    const active = this.layout.active && this.layout.active.stack;
    this.panel.mark(shown, active ? `${active.study}|${active.series}` : "");
  }

  // --- what viewports tell the app ---------------------------------------------------

  activate(viewport) {
    if (this.layout.activate(viewport)) {
      this.markSeries();
      this.sliceChanged(viewport);
    }
  }

  sliceChanged(viewport) {
    if (viewport !== this.layout.active) return;
    const image = viewport.currentImage();
    if (image) this.tags.show(image.ds);
  }

  drawn() {
    stats.framesDrawn++;
    if (stats.viewerDrawnMs === null) {
      // The viewer's own first draw: overlays and tools live from here.
      stats.viewerDrawnMs = performance.now();
      if (stats.firstImageMs === null) {
        stats.firstImageMs = stats.viewerDrawnMs;
        performance.mark("viewer-first-image");
      }
      this.firstImageDrawn();
      // The modules drew first (first-paint.js could not): show the page's chrome now.
      document.documentElement.classList.remove("vw-early");
    }
  }

  measured(viewport, m) {
    const image = viewport.currentImage();
    stats.lastMeasurement = {
      type: m.type,
      value: m.value,
      unit: m.unit,
      labels: m.labels,
      points: m.points.map((p) => ({ ...p })),
      spacing: image && image.spacing ? image.spacing.mm : null,
    };
  }

  frameArrived(image, frame, error) {
    if (error) stats.framesFailed++;
    else stats.framesLoaded++;
    if (stats.firstFrameMs === null) stats.firstFrameMs = performance.now();
    for (const viewport of this.layout.viewports) {
      const stack = viewport.stack;
      if (!stack || stack.series !== image.series) continue;
      viewport.updateProgress();
      const current = viewport.currentImage();
      if (current && current.key === image.key) {
        // The image the reader waits for: draw at once, not at the next frame.
        if (!viewport.matrix) viewport.draw();
        else viewport.invalidate();
      }
    }
  }

  // --- toolbar, keys, cine -----------------------------------------------------------

  setTool(name) {
    this.tool = name;
    for (const button of document.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === name));
    }
  }

  toggleTags(open = !this.tags.open) {
    document.querySelector('[data-action="tags"]').setAttribute("aria-pressed", String(open));
    this.tags.setOpen(open);
    const image = this.layout.active && this.layout.active.currentImage();
    if (image) this.tags.show(image.ds);
  }

  act(action) {
    const viewport = this.layout.active;
    const actions = {
      rotate: () => viewport.rotate(),
      "flip-h": () => viewport.toggle("flipH"),
      "flip-v": () => viewport.toggle("flipV"),
      invert: () => viewport.toggle("invert"),
      reset: () => viewport.reset(),
      clear: () => viewport.clearMeasurements(),
      cine: () => this.toggleCine(),
      compare: () => this.comparePrior(),
      tags: () => this.toggleTags(),
    };
    if (actions[action]) actions[action]();
  }

  bindToolbar() {
    for (const button of document.querySelectorAll("[data-tool]")) {
      button.addEventListener("click", () => this.setTool(button.dataset.tool));
    }
    for (const button of document.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", () => this.act(button.dataset.action));
    }
    for (const button of document.querySelectorAll("[data-layout]")) {
      button.addEventListener("click", () => this.setLayout(button.dataset.layout));
    }
    const preset = document.querySelector('[data-action="preset"]');
    preset.addEventListener("change", () => {
      const chosen = config.presets.find((p) => p.key === preset.value);
      if (preset.value) this.layout.active.applyPreset(chosen || null);
      preset.value = "";
    });
    const fps = document.querySelector('[data-action="fps"]');
    fps.addEventListener("change", () => {
      this.cine.fps = Math.max(1, Math.min(60, Number(fps.value) || 15));
      this.cine.userFps = true;
    });
  }

  bindKeys() {
    document.addEventListener("keydown", (e) => {
      if (e.target.closest("input, select, textarea") || e.altKey || e.ctrlKey || e.metaKey) return;
      // Space and Enter on a focused button press that button, nothing else.
      if ((e.key === " " || e.key === "Enter") && e.target.closest("button, summary, a")) return;
      const viewport = this.layout.active;
      const length = viewport.stack ? viewport.stack.length : 0;
      const page = Math.max(1, Math.round(length / 10));
      const moves = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -page, PageDown: page };
      const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
      if (key in moves) viewport.step(moves[key]);
      else if (key === "Home") viewport.setSlice(0);
      else if (key === "End") viewport.setSlice(length - 1);
      else if (key === " ") this.toggleCine();
      else if (key === "Escape") viewport.session ? ((viewport.session = null), viewport.invalidate()) : viewport.reset();
      else if (key === "Delete" || key === "Backspace") viewport.clearMeasurements();
      else if (TOOL_KEYS[key]) this.setTool(TOOL_KEYS[key]);
      else if (key === "r") viewport.rotate();
      else if (key === "h") viewport.toggle("flipH");
      else if (key === "v") viewport.toggle("flipV");
      else if (key === "i") viewport.toggle("invert");
      else if (key === "t") this.toggleTags();
      else return;
      e.preventDefault();
    });
  }

  suggestFps(stack) {
    const ds = stack.images.length ? stack.images[0].ds : null;
    if (!ds || this.cine.userFps) return;
    const frameTime = num(ds, "00181063");
    const rate = num(ds, "00082144") || num(ds, "00180040") || (frameTime ? 1000 / frameTime : 0);
    if (rate > 0) {
      this.cine.fps = Math.max(1, Math.min(60, Math.round(rate)));
      document.querySelector('[data-action="fps"]').value = String(this.cine.fps);
    }
  }

  toggleCine(play = !this.cine.playing) {
    this.cine.playing = play;
    const button = document.querySelector('[data-action="cine"]');
    button.setAttribute("aria-pressed", String(play));
    if (play) {
      this.cine.last = performance.now();
      requestAnimationFrame((now) => this.cineTick(now));
    }
  }

  cineTick(now) {
    if (!this.cine.playing) return;
    const viewport = this.layout.active;
    const interval = 1000 / this.cine.fps;
    if (viewport.stack && viewport.stack.length > 1 && now - this.cine.last >= interval) {
      const next = (viewport.slice + 1) % viewport.stack.length;
      const image = viewport.stack.images[next];
      // Wait for a frame still on its way rather than skip it.
      if (this.loader.get(image)) {
        viewport.setSlice(next);
        this.cine.last = now;
      } else {
        this.loader.request(image);
      }
    }
    requestAnimationFrame((time) => this.cineTick(time));
  }
}

const viewer = new Viewer();
viewer.start();
installBench(viewer);
