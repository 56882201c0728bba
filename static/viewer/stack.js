/**
 * A series as a stack of images (one per frame), and the loader that fetches
 * their pixels: what is looked at first, then the rest of the stack in the
 * background, nearest slices first, a few requests at a time.
 *
 * Frames stay as typed arrays (Uint16Array/Int16Array for CT and MR), so
 * window/level is a table lookup, never a new request.
 */

import { item, num, nums, str, HttpError } from "./dicomweb.js";

const NATIVE = new Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]);
const PIXEL_DATA = "7FE00010";
const RETRIES = 3;

function dot(a, b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

/** Return [row spacing, column spacing] in mm and where it came from, or null. */
function spacingOf(ds) {
  const pixel = nums(ds, "00280030");
  if (pixel.length === 2 && pixel[0] > 0 && pixel[1] > 0) return { mm: pixel, source: "PixelSpacing" };
  const imager = nums(ds, "00181164");
  if (imager.length === 2 && imager[0] > 0 && imager[1] > 0) return { mm: imager, source: "ImagerPixelSpacing" };
  // Ultrasound: the calibrated region (PS3.3 C.8.5.5), units 3 = cm.
  const region = item(ds, "00186011");
  if (region && num(region, "00186024") === 3 && num(region, "00186026") === 3) {
    const dx = num(region, "0018602C");
    const dy = num(region, "0018602E");
    if (dx > 0 && dy > 0) return { mm: [dy * 10, dx * 10], source: "UltrasoundRegion" };
  }
  return null;
}

/** One displayable image: a frame of an instance, with what rendering and measuring need. */
export class ImageRef {
  constructor(ds, frame, frames, study, series) {
    this.ds = ds;
    this.frame = frame;
    this.frames = frames;
    this.study = study;
    this.series = series;
    this.sop = str(ds, "00080018");
    this.key = `${this.sop}/${frame}`;
    this.rows = num(ds, "00280010", 0);
    this.columns = num(ds, "00280011", 0);
    this.samples = num(ds, "00280002", 1);
    this.bitsAllocated = num(ds, "00280100", 16);
    this.signed = num(ds, "00280103", 0) === 1;
    this.photometric = str(ds, "00280004", "MONOCHROME2").toUpperCase();
    this.planar = num(ds, "00280006", 0);
    this.syntax = str(ds, "00083002") || str(ds, "00020010");
    this.native = !this.syntax || NATIVE.has(this.syntax);
    this.slope = num(ds, "00281053", 1) || 1;
    this.intercept = num(ds, "00281052", 0);
    this.modality = str(ds, "00080060");
    const centers = nums(ds, "00281050");
    const widths = nums(ds, "00281051");
    this.window = centers.length && widths.length && widths[0] > 0 ? { center: centers[0], width: widths[0] } : null;
    this.spacing = spacingOf(ds);
    this.orientation = nums(ds, "00200037");
    this.position = nums(ds, "00200032");
    this.thickness = num(ds, "00180050");
    this.sliceLocation = num(ds, "00201041");
    this.lossy = str(ds, "00282110") === "01";
    this.kind = this.pixelKind();
  }

  /** "gray", "rgb", or "rendered" when only the server can make it displayable. */
  pixelKind() {
    if (this.samples === 1 && this.photometric.startsWith("MONOCHROME") && [8, 16, 32].includes(this.bitsAllocated)) {
      return "gray";
    }
    if (this.samples === 3 && this.bitsAllocated === 8) {
      // Decoded on the server, YBR colour arrives as RGB; stored raw, RGB and YBR_FULL are ours.
      if (!this.native || this.photometric === "RGB" || this.photometric === "YBR_FULL") return "rgb";
    }
    return "rendered";
  }

  get unit() {
    return this.modality === "CT" || str(this.ds, "00281054") === "HU" ? "HU" : "";
  }

  get frameBytes() {
    return this.rows * this.columns * this.samples * (this.bitsAllocated / 8);
  }

  /** Slice position along the normal of the image plane, in mm, or undefined. */
  get location() {
    if (this.orientation.length === 6 && this.position.length === 3) {
      const normal = cross(this.orientation.slice(0, 3), this.orientation.slice(3));
      return dot(normal, this.position);
    }
    return this.sliceLocation;
  }
}

/** Return the images of a series' metadata, in reading order. */
export function imagesOf(metadata, study, series) {
  const instances = metadata.filter((ds) => ds[PIXEL_DATA] || num(ds, "00280010", 0) > 0);
  instances.sort((a, b) => {
    const na = num(a, "00200013");
    const nb = num(b, "00200013");
    if (na !== undefined && nb !== undefined && na !== nb) return na - nb;
    const pa = nums(a, "00200032");
    const pb = nums(b, "00200032");
    return pa.length === 3 && pb.length === 3 ? pb[2] - pa[2] : 0;
  });
  const images = [];
  for (const ds of instances) {
    const frames = Math.max(1, num(ds, "00280008", 1));
    for (let frame = 1; frame <= frames; frame++) images.push(new ImageRef(ds, frame, frames, study, series));
  }
  return images;
}

/** A stack being viewed: its images and where the reader is, so prefetch starts there. */
export class Stack {
  constructor(images, { study, series, seriesDs }) {
    this.images = images;
    this.study = study;
    this.series = series;
    this.ds = seriesDs || (images[0] && images[0].ds);
    this.center = 0;
  }

  get length() {
    return this.images.length;
  }

  /** The next image to prefetch: the nearest to the reader not yet asked for, forward first. */
  next(loader) {
    const count = this.images.length;
    for (let d = 0; d < count; d++) {
      for (const i of [this.center + d, this.center - d - 1]) {
        if (i >= 0 && i < count && !loader.known(this.images[i].key)) return this.images[i];
      }
    }
    return null;
  }

  loaded(loader) {
    let n = 0;
    for (const image of this.images) if (loader.frames.has(image.key)) n++;
    return n;
  }
}

// --- pixels --------------------------------------------------------------------------

function typedPixels(image, bytes) {
  // Typed arrays need an aligned offset: copy a misaligned view.
  const size = image.bitsAllocated / 8;
  const data = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const count = data.byteLength / size;
  if (size === 1) return new Uint8Array(data.buffer, data.byteOffset, count);
  if (size === 2) return image.signed ? new Int16Array(data.buffer, data.byteOffset, count) : new Uint16Array(data.buffer, data.byteOffset, count);
  return image.signed ? new Int32Array(data.buffer, data.byteOffset, count) : new Uint32Array(data.buffer, data.byteOffset, count);
}

/** Return interleaved RGB bytes from planar (PS3.3 C.7.6.3.1.3) or YBR_FULL native pixels. */
function toInterleavedRgb(image, bytes) {
  const n = image.rows * image.columns;
  let rgb = bytes;
  if (image.native && image.planar === 1) {
    rgb = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      rgb[i * 3] = bytes[i];
      rgb[i * 3 + 1] = bytes[n + i];
      rgb[i * 3 + 2] = bytes[2 * n + i];
    }
  }
  if (image.native && image.photometric === "YBR_FULL") {
    const out = new Uint8Array(n * 3);
    for (let i = 0; i < n * 3; i += 3) {
      const y = rgb[i];
      const cb = rgb[i + 1] - 128;
      const cr = rgb[i + 2] - 128;
      out[i] = Math.max(0, Math.min(255, y + 1.402 * cr));
      out[i + 1] = Math.max(0, Math.min(255, y - 0.344136 * cb - 0.714136 * cr));
      out[i + 2] = Math.max(0, Math.min(255, y + 1.772 * cb));
    }
    rgb = out;
  }
  return rgb;
}

async function renderedFrame(client, image) {
  const bitmap = await client.rendered(image);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  bitmap.close();
  return { kind: "rgb", pixels: rgb, rows: bitmap.height, columns: bitmap.width, rendered: true, bytes: rgb.byteLength };
}

/** Decode a frame from its pixel bytes (a promise: the request may already be on its way). */
export async function frameFrom(client, image, request) {
  if (image.kind === "rendered") return renderedFrame(client, image);
  let bytes;
  try {
    bytes = await request;
  } catch (error) {
    // 406: the hub cannot decode this syntax; its rendered JPEG/PNG still shows the image.
    if (error instanceof HttpError && error.status === 406) return renderedFrame(client, image);
    throw error;
  }
  if (bytes.byteLength < image.frameBytes) throw new Error(`short frame ${image.key}`);
  bytes = bytes.subarray(0, image.frameBytes);
  if (image.kind === "rgb") {
    const pixels = toInterleavedRgb(image, bytes);
    return { kind: "rgb", pixels, rows: image.rows, columns: image.columns, bytes: pixels.byteLength };
  }
  const pixels = typedPixels(image, bytes);
  return { kind: "gray", pixels, rows: image.rows, columns: image.columns, bytes: pixels.byteLength };
}

function fetchFrame(client, image) {
  if (image.kind === "rendered") return renderedFrame(client, image);
  return frameFrom(client, image, client.frame(image, image.frameBytes));
}

/** Return [min, max] of a grey frame's stored values (cached on the frame). */
export function frameRange(frame) {
  if (!frame.range) {
    const px = frame.pixels;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < px.length; i++) {
      const v = px[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    frame.range = [lo, hi];
  }
  return frame.range;
}

// --- the loader ----------------------------------------------------------------------

/**
 * Fetches frames, at most `concurrency` at once: images someone is looking at
 * first (the latest asked for first), then the stacks on screen, nearest
 * slices first. Listeners hear of every frame that arrives or fails.
 */
export class FrameLoader {
  constructor(client, { concurrency = 5, budgetBytes = 1536 * 1024 * 1024 } = {}) {
    this.client = client;
    this.concurrency = concurrency;
    this.budgetBytes = budgetBytes;
    this.frames = new Map();
    this.failed = new Map();
    this.inflight = new Set();
    this.urgent = [];
    this.stacks = new Set();
    this.listeners = new Set();
    this.bytes = 0;
    this.turn = 0;
  }

  /** Whether `key` is loaded, on its way, or failed too recently (or too often) to retry. */
  known(key) {
    if (this.frames.has(key) || this.inflight.has(key)) return true;
    const failure = this.failed.get(key);
    // A slow link drops requests now and then: try again, a little later each time.
    return Boolean(failure && (failure.attempts >= RETRIES || performance.now() - failure.at < 2000 * failure.attempts));
  }

  hasFailed(key) {
    const failure = this.failed.get(key);
    return Boolean(failure && failure.attempts >= RETRIES);
  }

  get(image) {
    return this.frames.get(image.key);
  }

  /** Fetch this image before anything else (the reader is waiting for it). */
  request(image) {
    if (!image || this.known(image.key)) return;
    this.urgent = this.urgent.filter((other) => other.key !== image.key);
    this.urgent.push(image);
    // Scrolling fast: only the last few asked for still matter.
    if (this.urgent.length > this.concurrency * 2) this.urgent.shift();
    this.pump();
  }

  /** Prefetch these stacks (the ones on screen) in the background. */
  watch(stacks) {
    this.stacks = new Set(stacks.filter(Boolean));
    this.evict();
    this.pump();
  }

  pump() {
    while (this.inflight.size < this.concurrency) {
      let image = this.urgent.pop();
      // Prefetch may have fetched it since it was asked for.
      while (image && this.known(image.key)) image = this.urgent.pop();
      image = image || this.nextPrefetch();
      if (!image) return;
      this.fetch(image);
    }
  }

  nextPrefetch() {
    if (this.bytes > this.budgetBytes) return null;
    const stacks = [...this.stacks];
    for (let k = 0; k < stacks.length; k++) {
      const stack = stacks[(this.turn + k) % stacks.length];
      const image = stack.next(this);
      if (image) {
        this.turn = (this.turn + k + 1) % stacks.length;
        return image;
      }
    }
    return null;
  }

  fetch(image) {
    this.track(image, fetchFrame(this.client, image));
  }

  /** Take over a frame whose bytes were asked for before its metadata was known. */
  adopt(image, request) {
    if (this.known(image.key)) return;
    this.track(image, frameFrom(this.client, image, request));
  }

  async track(image, promise) {
    this.inflight.add(image.key);
    try {
      const frame = await promise;
      this.frames.set(image.key, frame);
      this.failed.delete(image.key);
      this.bytes += frame.bytes;
      this.notify(image, frame, null);
    } catch (error) {
      const attempts = (this.failed.get(image.key)?.attempts || 0) + 1;
      this.failed.set(image.key, { error, attempts, at: performance.now() });
      if (attempts < RETRIES) setTimeout(() => this.pump(), 2000 * attempts + 50);
      this.notify(image, null, error);
    } finally {
      this.inflight.delete(image.key);
      this.pump();
    }
  }

  notify(image, frame, error) {
    for (const listener of this.listeners) listener(image, frame, error);
  }

  /** Over budget: forget frames of stacks no longer on screen. */
  evict() {
    if (this.bytes <= this.budgetBytes) return;
    const keep = new Set();
    for (const stack of this.stacks) for (const image of stack.images) keep.add(image.key);
    for (const [key, frame] of this.frames) {
      if (!keep.has(key)) {
        this.frames.delete(key);
        this.bytes -= frame.bytes;
      }
    }
  }
}
