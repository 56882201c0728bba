/**
 * Measurements: length, angle and elliptical region of interest. Points are
 * kept in image coordinates (columns, rows; pixel centres at +0.5), so a
 * measurement stays on its anatomy whatever the zoom, pan or rotation.
 * Distances are in mm from the pixel spacing (PS3.3 10.7.1.3: row spacing
 * first, then column spacing); a region's mean and SD are in modality units
 * (HU for CT, through RescaleSlope/Intercept).
 */

import { fmt, t } from "./strings.js";

export const MEASURE_TOOLS = new Set(["length", "angle", "ellipse"]);
const LINE = "#ffd23f";
const LIVE = "#7cf29a";

function spacing(image) {
  return image.spacing ? image.spacing.mm : null;
}

/** The vector from a to b in mm (or pixels when the image has no spacing). */
function physical(image, a, b) {
  const mm = spacing(image) || [1, 1];
  return [(b.x - a.x) * mm[1], (b.y - a.y) * mm[0]];
}

export function lengthOf(image, a, b) {
  const [dx, dy] = physical(image, a, b);
  return { value: Math.hypot(dx, dy), unit: spacing(image) ? "mm" : "px" };
}

export function angleOf(image, a, vertex, c) {
  const u = physical(image, vertex, a);
  const v = physical(image, vertex, c);
  const norm = Math.hypot(...u) * Math.hypot(...v);
  if (!norm) return { value: 0, unit: "deg" };
  const cos = Math.max(-1, Math.min(1, (u[0] * v[0] + u[1] * v[1]) / norm));
  return { value: (Math.acos(cos) * 180) / Math.PI, unit: "deg" };
}

/** Mean and SD of the pixels whose centres lie inside the ellipse in the box a–b. */
export function ellipseStats(image, frame, a, b) {
  const cx = (a.x + b.x) / 2;
  const cy = (a.y + b.y) / 2;
  const rx = Math.abs(b.x - a.x) / 2;
  const ry = Math.abs(b.y - a.y) / 2;
  const mm = spacing(image);
  const area = Math.PI * rx * ry * (mm ? mm[0] * mm[1] : 1);
  const result = { area, areaUnit: mm ? "mm2" : "px2", count: 0, unit: image.unit };
  if (!frame || rx < 0.5 || ry < 0.5) return result;
  const { columns, rows, pixels } = frame;
  const sums = [0, 0, 0];
  let sum = 0;
  let squares = 0;
  for (let y = Math.max(0, Math.floor(cy - ry)); y <= Math.min(rows - 1, Math.ceil(cy + ry)); y++) {
    const dy = (y + 0.5 - cy) / ry;
    for (let x = Math.max(0, Math.floor(cx - rx)); x <= Math.min(columns - 1, Math.ceil(cx + rx)); x++) {
      const dx = (x + 0.5 - cx) / rx;
      if (dx * dx + dy * dy > 1) continue;
      const i = y * columns + x;
      if (frame.kind === "rgb") {
        sums[0] += pixels[i * 3];
        sums[1] += pixels[i * 3 + 1];
        sums[2] += pixels[i * 3 + 2];
      } else {
        const value = pixels[i] * image.slope + image.intercept;
        sum += value;
        squares += value * value;
      }
      result.count++;
    }
  }
  if (!result.count) return result;
  if (frame.kind === "rgb") {
    result.rgb = sums.map((s) => s / result.count);
  } else {
    result.mean = sum / result.count;
    result.sd = Math.sqrt(Math.max(0, squares / result.count - result.mean * result.mean));
  }
  return result;
}

/** Compute a measurement's figures and its label lines. */
export function evaluate(measurement, image, frame) {
  const p = measurement.points;
  if (measurement.type === "length") {
    const { value, unit } = lengthOf(image, p[0], p[1]);
    measurement.value = value;
    measurement.unit = unit;
    measurement.labels = [t(unit === "mm" ? "length_mm" : "length_px", { value: fmt(value, 1) })];
  } else if (measurement.type === "angle") {
    const { value } = p.length === 3 ? angleOf(image, p[0], p[1], p[2]) : { value: 0 };
    measurement.value = value;
    measurement.unit = "deg";
    measurement.labels = p.length === 3 ? [t("angle", { value: fmt(value, 1) })] : [];
  } else {
    const stats = ellipseStats(image, frame, p[0], p[1]);
    Object.assign(measurement, { value: stats.mean, unit: stats.unit, stats });
    const lines = [];
    if (stats.rgb) lines.push(t("roi_color", { r: fmt(stats.rgb[0], 0), g: fmt(stats.rgb[1], 0), b: fmt(stats.rgb[2], 0) }));
    else if (stats.count) lines.push(t("roi_mean", { mean: fmt(stats.mean, 1), sd: fmt(stats.sd, 1), unit: stats.unit ? t("hu") : "" }).trim());
    lines.push(t(stats.areaUnit === "mm2" ? "roi_area" : "roi_area_px", { value: fmt(stats.area, stats.area < 100 ? 1 : 0) }));
    measurement.labels = lines;
  }
  return measurement;
}

/**
 * One measurement being drawn. Length and ellipse: press, drag, release.
 * Angle: drag the first arm to the vertex, release, then click the third point.
 */
export class MeasureSession {
  constructor(type, point) {
    this.measurement = { type, points: [point, { ...point }] };
    this.phase = 0;
  }

  move(point) {
    const points = this.measurement.points;
    points[points.length - 1] = point;
  }

  /** Return "done", "more" (angle: waiting for the third point) or "cancel". */
  release(point, screenDistance) {
    this.move(point);
    if (this.measurement.type === "angle" && this.phase === 0) {
      if (screenDistance < 4) return "cancel";
      this.phase = 1;
      this.measurement.points.push({ ...point });
      return "more";
    }
    if (this.measurement.type !== "angle" && screenDistance < 4) return "cancel";
    return "done";
  }
}

function overlaps(a, b) {
  return a.left < b.left + b.width && b.left < a.left + a.width && a.top < b.top + b.height && b.top < a.top + a.height;
}

/** Draw a label box near (x, y), moved down past the labels already `placed`. */
function label(ctx, lines, x, y, scale, placed) {
  if (!lines || !lines.length) return;
  const size = Math.round(13 * scale);
  ctx.font = `${size}px system-ui, "Noto Sans CJK SC", sans-serif`;
  ctx.textBaseline = "top";
  const pad = 3 * scale;
  const width = Math.max(...lines.map((line) => ctx.measureText(line).width)) + pad * 2;
  const height = lines.length * (size + 2 * scale) + pad * 2;
  const left = Math.min(Math.max(0, x + 8 * scale), ctx.canvas.width - width);
  let top = Math.min(Math.max(0, y + 8 * scale), ctx.canvas.height - height);
  for (let tries = 0; tries < placed.length + 1; tries++) {
    const clash = placed.find((box) => overlaps(box, { left, top, width, height }));
    if (!clash) break;
    top = clash.top + clash.height + 2 * scale;
  }
  placed.push({ left, top, width, height });
  ctx.fillStyle = "rgba(0, 0, 0, 0.65)";
  ctx.fillRect(left, top, width, height);
  ctx.fillStyle = "#fff";
  lines.forEach((line, i) => ctx.fillText(line, left + pad, top + pad + i * (size + 2 * scale)));
}

function drawOne(ctx, matrix, m, colour, scale, placed) {
  const screen = m.points.map((p) => matrix.transformPoint(new DOMPoint(p.x, p.y)));
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5 * scale;
  ctx.beginPath();
  if (m.type === "ellipse") {
    const [a, b] = m.points;
    // The path is built in image space, so the ellipse follows rotation and aspect.
    ctx.setTransform(matrix);
    ctx.ellipse((a.x + b.x) / 2, (a.y + b.y) / 2, Math.abs(b.x - a.x) / 2, Math.abs(b.y - a.y) / 2, 0, 0, 2 * Math.PI);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  } else {
    screen.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
  }
  ctx.stroke();
  ctx.fillStyle = colour;
  if (m.type !== "ellipse") for (const p of screen) ctx.fillRect(p.x - 2 * scale, p.y - 2 * scale, 4 * scale, 4 * scale);
  const anchor = m.type === "ellipse" ? screen.reduce((best, p) => (p.x > best.x ? p : best)) : screen[screen.length - 1];
  label(ctx, m.labels, anchor.x, anchor.y, scale, placed);
}

/** Draw the image's measurements, and the one being drawn, over the image. */
export function drawMeasurements(ctx, matrix, measurements, live, scale) {
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  const placed = [];
  for (const m of measurements || []) drawOne(ctx, matrix, m, LINE, scale, placed);
  if (live) drawOne(ctx, matrix, live, LIVE, scale, placed);
  ctx.restore();
}
