/**
 * Shared annotations: arrows, lengths and text notes drawn on an image, stored
 * by the hub with the study (study, series, SOP instance, frame) and shown to
 * everyone in the room, whatever their zoom: points are kept in image
 * coordinates and drawn through each viewport's own matrix, on a canvas laid
 * over the viewer's.
 */

import { lengthOf } from "../../viewer/tools.js";
import { fmt } from "../../viewer/strings.js";
import { rt } from "./strings.js";

export const ANNOTATION_TOOLS = new Set(["arrow", "length", "text"]);
const COLOUR = "#29d3ff";
const PENDING = "#ffd23f";

function imageKey(sop, frame) {
  return `${sop}/${frame || 1}`;
}

export class Annotations {
  constructor(viewer, room) {
    this.viewer = viewer;
    this.room = room;
    this.tool = null;
    this.byImage = new Map();
    this.pending = new Map();
    this.live = null;
    this.overlays = new Map();
    viewer.on("drawn", (viewport) => this.draw(viewport));
    for (const viewport of viewer.layout.viewports) this.attach(viewport);
  }

  setTool(tool) {
    this.tool = ANNOTATION_TOOLS.has(tool) ? tool : null;
    this.viewer.annotating = Boolean(this.tool);
  }

  attach(viewport) {
    const canvas = document.createElement("canvas");
    canvas.className = "cs-annotations";
    canvas.dataset.testid = "annotation-layer";
    viewport.element.append(canvas);
    this.overlays.set(viewport, canvas);
    viewport.element.addEventListener("pointerdown", (e) => this.down(viewport, e), { capture: true });
  }

  /** A stored annotation message arrived (once each, in order). */
  add(message) {
    const p = message.payload;
    const shape = { ...p, author: message.author, seq: message.seq };
    const key = imageKey(p.sop, p.frame_number);
    if (!this.byImage.has(key)) this.byImage.set(key, []);
    this.byImage.get(key).push(shape);
    this.pending.delete(message.client_msg_id);
    this.redraw();
  }

  count() {
    let n = 0;
    for (const list of this.byImage.values()) n += list.length;
    return n;
  }

  redraw() {
    for (const viewport of this.viewer.layout.viewports) this.draw(viewport);
  }

  // --- drawing ------------------------------------------------------------------------------

  draw(viewport) {
    const canvas = this.overlays.get(viewport);
    if (!canvas) return;
    const source = viewport.canvas;
    if (canvas.width !== source.width || canvas.height !== source.height) {
      canvas.width = source.width;
      canvas.height = source.height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const image = viewport.currentImage();
    if (!image || !viewport.matrix) return;
    const scale = viewport.dpr;
    const key = imageKey(image.sop, image.frame);
    for (const shape of this.byImage.get(key) || []) this.shape(ctx, viewport.matrix, shape, COLOUR, scale);
    for (const shape of this.pending.values()) {
      if (imageKey(shape.sop, shape.frame_number) === key) this.shape(ctx, viewport.matrix, shape, PENDING, scale);
    }
    if (this.live && this.live.viewport === viewport) this.shape(ctx, viewport.matrix, this.live.shape, PENDING, scale);
  }

  shape(ctx, matrix, shape, colour, scale) {
    const points = shape.points.map((p) => matrix.transformPoint(new DOMPoint(p.x, p.y)));
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = 2 * scale;
    ctx.font = `${Math.round(14 * scale)}px system-ui, "Noto Sans CJK SC", sans-serif`;
    ctx.textBaseline = "bottom";
    const [a, b] = points;
    if (shape.kind === "text") {
      ctx.beginPath();
      ctx.arc(a.x, a.y, 4 * scale, 0, 2 * Math.PI);
      ctx.fill();
      this.label(ctx, shape.text, a.x + 6 * scale, a.y - 4 * scale, scale);
    } else if (b) {
      ctx.beginPath();
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
      ctx.stroke();
      const angle = Math.atan2(b.y - a.y, b.x - a.x);
      if (shape.kind === "arrow") {
        const size = 12 * scale;
        ctx.beginPath();
        ctx.moveTo(b.x, b.y);
        ctx.lineTo(b.x - size * Math.cos(angle - 0.45), b.y - size * Math.sin(angle - 0.45));
        ctx.lineTo(b.x - size * Math.cos(angle + 0.45), b.y - size * Math.sin(angle + 0.45));
        ctx.closePath();
        ctx.fill();
        if (shape.text) this.label(ctx, shape.text, a.x + 6 * scale, a.y - 4 * scale, scale);
      } else {
        for (const p of [a, b]) {
          ctx.beginPath();
          ctx.moveTo(p.x - 5 * scale * Math.sin(angle), p.y + 5 * scale * Math.cos(angle));
          ctx.lineTo(p.x + 5 * scale * Math.sin(angle), p.y - 5 * scale * Math.cos(angle));
          ctx.stroke();
        }
        if (shape.value !== null && shape.value !== undefined) {
          this.label(ctx, `${fmt(shape.value, 1)} ${shape.unit || ""}`, b.x + 6 * scale, b.y - 4 * scale, scale);
        }
      }
    }
    ctx.restore();
  }

  label(ctx, text, x, y, scale) {
    if (!text) return;
    const width = ctx.measureText(text).width + 6 * scale;
    const height = 18 * scale;
    ctx.save();
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(x - 3 * scale, y - height, width, height);
    ctx.restore();
    ctx.fillText(text, x, y - 2 * scale);
  }

  // --- drawing one with the mouse ------------------------------------------------------------

  down(viewport, e) {
    if (!this.tool || e.button !== 0 || !viewport.matrix || !viewport.currentImage()) return;
    // The viewer's own tools must not act on this press.
    e.stopPropagation();
    e.preventDefault();
    const start = viewport.imagePoint(viewport.canvasPoint(e));
    if (this.tool === "text") {
      const text = (window.prompt(rt("annotation_prompt")) || "").trim();
      if (text) this.send(viewport, "text", [start], { text });
      return;
    }
    const kind = this.tool;
    this.live = { viewport, shape: { kind, points: [start, { ...start }] } };
    const move = (event) => {
      this.live.shape.points[1] = viewport.imagePoint(viewport.canvasPoint(event));
      this.draw(viewport);
    };
    const up = (event) => {
      window.removeEventListener("pointermove", move, true);
      window.removeEventListener("pointerup", up, true);
      move(event);
      const [a, b] = this.live.shape.points;
      this.live = null;
      const image = viewport.currentImage();
      if (Math.hypot(b.x - a.x, b.y - a.y) * viewport.scaleFactor() < 3) return this.draw(viewport);
      const extra = kind === "length" && image ? lengthOf(image, a, b) : {};
      this.send(viewport, kind, [a, b], extra);
    };
    window.addEventListener("pointermove", move, true);
    window.addEventListener("pointerup", up, true);
  }

  send(viewport, kind, points, extra = {}) {
    const image = viewport.currentImage();
    const annotation = {
      kind,
      points: points.map((p) => ({ x: Math.round(p.x * 100) / 100, y: Math.round(p.y * 100) / 100 })),
      study: image.study,
      series: image.series,
      sop: image.sop,
      frame: image.frame,
      ...extra,
    };
    const id = this.room.send("annotate", { annotation });
    this.pending.set(id, { ...annotation, frame_number: image.frame });
    this.draw(viewport);
    return id;
  }

  failed(id) {
    if (this.pending.delete(id)) this.redraw();
  }
}
