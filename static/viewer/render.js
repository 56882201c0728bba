/**
 * Pixels to screen. Window/level is one lookup per pixel: a table from stored
 * value straight to the RGBA word, rebuilt only when the window, the rescale
 * or the inversion changes, written into a reused ImageData. That goes onto an
 * offscreen canvas of the image's own size, which is drawn onto the viewport
 * with its transform (zoom, pan, rotation, flip) in one drawImage.
 */

import { frameRange } from "./stack.js";

const OPAQUE = 0xff000000;

/** The VOI LUT linear function (PS3.3 C.11.2.1.2.1): modality value to 0..1. */
export function windowed(value, center, width) {
  if (width <= 1) return value < center - 0.5 ? 0 : 1;
  const y = (value - (center - 0.5)) / (width - 1) + 0.5;
  return y <= 0 ? 0 : y >= 1 ? 1 : y;
}

/** The window to open an image with: the stored one, else the full range of its values. */
export function defaultWindow(image, frame) {
  if (frame.kind === "rgb") return { center: 127.5, width: 256 };
  if (image.window) return { ...image.window };
  const [lo, hi] = frameRange(frame);
  const a = lo * image.slope + image.intercept;
  const b = hi * image.slope + image.intercept;
  return { center: (a + b) / 2, width: Math.max(1, Math.abs(b - a)) };
}

function grayLut(image, voi) {
  const size = image.bitsAllocated === 8 ? 256 : 65536;
  const offset = image.signed ? size / 2 : 0;
  // MONOCHROME1: the lowest value is white (PS3.3 C.7.6.3.1.2).
  const invert = voi.invert !== (image.photometric === "MONOCHROME1");
  const lut = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    let y = windowed((i - offset) * image.slope + image.intercept, voi.center, voi.width);
    if (invert) y = 1 - y;
    const g = Math.round(y * 255);
    lut[i] = OPAQUE | (g << 16) | (g << 8) | g;
  }
  return { lut, offset };
}

function channelLut(voi) {
  const lut = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    const y = windowed(i, voi.center, voi.width);
    lut[i] = Math.round((voi.invert ? 1 - y : y) * 255);
  }
  return lut;
}

/** Paints frames into an offscreen canvas of the image's size; one per viewport. */
export class Painter {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.imageData = null;
    this.words = null;
    this.table = null;
    this.tableKey = "";
  }

  paint(image, frame, voi) {
    const { columns, rows } = frame;
    if (!this.imageData || this.imageData.width !== columns || this.imageData.height !== rows) {
      this.canvas.width = columns;
      this.canvas.height = rows;
      this.imageData = this.ctx.createImageData(columns, rows);
      this.words = new Uint32Array(this.imageData.data.buffer);
    }
    if (frame.kind === "gray") this.gray(image, frame, voi);
    else this.rgb(frame, voi);
    this.ctx.putImageData(this.imageData, 0, 0);
    return this.canvas;
  }

  gray(image, frame, voi) {
    const out = this.words;
    const px = frame.pixels;
    const n = Math.min(px.length, out.length);
    if (image.bitsAllocated === 32) {
      const invert = voi.invert !== (image.photometric === "MONOCHROME1");
      for (let i = 0; i < n; i++) {
        let y = windowed(px[i] * image.slope + image.intercept, voi.center, voi.width);
        if (invert) y = 1 - y;
        const g = Math.round(y * 255);
        out[i] = OPAQUE | (g << 16) | (g << 8) | g;
      }
      return;
    }
    const key = `g|${image.bitsAllocated}|${image.signed}|${image.photometric}|${image.slope}|${image.intercept}|${voi.center}|${voi.width}|${voi.invert}`;
    if (key !== this.tableKey) {
      this.table = grayLut(image, voi);
      this.tableKey = key;
    }
    const { lut, offset } = this.table;
    if (offset) for (let i = 0; i < n; i++) out[i] = lut[px[i] + offset];
    else for (let i = 0; i < n; i++) out[i] = lut[px[i]];
  }

  rgb(frame, voi) {
    const key = `c|${voi.center}|${voi.width}|${voi.invert}`;
    if (key !== this.tableKey) {
      this.table = channelLut(voi);
      this.tableKey = key;
    }
    const lut = this.table;
    const out = this.words;
    const px = frame.pixels;
    const n = out.length;
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      out[i] = OPAQUE | (lut[px[j + 2]] << 16) | (lut[px[j + 1]] << 8) | lut[px[j]];
    }
  }
}

/**
 * The image-to-canvas transform: fit, then zoom, rotate and flip about the
 * centre, then pan. `aspect` is a pixel's height over its width.
 */
export function viewMatrix(view, columns, rows, aspect, width, height) {
  const quarter = ((view.rotation % 360) + 360) % 360;
  const sideways = quarter === 90 || quarter === 270;
  const w = sideways ? rows * aspect : columns;
  const h = sideways ? columns : rows * aspect;
  const fit = Math.min(width / w, height / h);
  const scale = fit * view.zoom;
  return new DOMMatrix()
    .translateSelf(width / 2 + view.panX, height / 2 + view.panY)
    .scaleSelf(view.flipH ? -1 : 1, view.flipV ? -1 : 1)
    .rotateSelf(view.rotation)
    .scaleSelf(scale, scale * aspect)
    .translateSelf(-columns / 2, -rows / 2);
}

/**
 * Draw the painted image with `matrix`. The image is opaque, so when it lands
 * exactly where the last one did, the black around it need not be cleared.
 */
export function drawImage(ctx, source, matrix, clear = true) {
  const { width, height } = ctx.canvas;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  if (clear) {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
  }
  ctx.setTransform(matrix);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(source, 0, 0);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
}
