/**
 * Corner overlays (patient, study, series, slice, window, zoom) and the
 * orientation markers at the viewport's edges. Markers come from Image
 * Orientation (Patient) (PS3.3 C.7.6.2.1.1), or Patient Orientation for
 * projection images, through the viewport's own rotation and flips.
 */

import { formatDate, num, personName, str, values } from "./dicomweb.js";
import { fmt, t } from "./strings.js";

const CORNERS = ["tl", "tr", "bl", "br"];
const SIDES = ["top", "bottom", "left", "right"];
// Patient coordinates are LPS: +x towards the patient's left, +y posterior, +z head.
const LETTERS = [
  ["L", "R"],
  ["P", "A"],
  ["H", "F"],
];
const VECTORS = { L: [1, 0, 0], R: [-1, 0, 0], P: [0, 1, 0], A: [0, -1, 0], H: [0, 0, 1], F: [0, 0, -1] };

/** Return the marker for a direction in patient space, main axis first ("L", "LA", ...). */
export function directionLetters(vector) {
  const length = Math.hypot(...vector) || 1;
  return vector
    .map((c, axis) => ({ c: c / length, axis }))
    .filter(({ c }) => Math.abs(c) >= 0.25)
    .sort((a, b) => Math.abs(b.c) - Math.abs(a.c))
    .map(({ c, axis }) => LETTERS[axis][c > 0 ? 0 : 1])
    .join("");
}

function fromLetters(text) {
  const sum = [0, 0, 0];
  for (const letter of String(text || "").toUpperCase()) {
    const v = VECTORS[letter];
    if (v) for (let i = 0; i < 3; i++) sum[i] += v[i];
  }
  return Math.hypot(...sum) ? sum : null;
}

/** The patient directions of the image's +column and +row axes, or null. */
function imageAxes(image) {
  if (image.orientation.length === 6) return [image.orientation.slice(0, 3), image.orientation.slice(3)];
  const given = values(image.ds, "00200020");
  if (given.length === 2) {
    const right = fromLetters(given[0]);
    const down = fromLetters(given[1]);
    if (right && down) return [right, down];
  }
  return null;
}

/** Return {top, bottom, left, right} markers for the image as the matrix shows it. */
export function orientationMarkers(image, matrix) {
  const axes = imageAxes(image);
  if (!axes) return null;
  const inverse = matrix.inverse();
  const origin = inverse.transformPoint(new DOMPoint(0, 0));
  const toPatient = (sx, sy) => {
    const p = inverse.transformPoint(new DOMPoint(sx, sy));
    const du = p.x - origin.x;
    const dv = p.y - origin.y;
    return [0, 1, 2].map((i) => du * axes[0][i] + dv * axes[1][i]);
  };
  const right = toPatient(1, 0);
  const down = toPatient(0, 1);
  return {
    right: directionLetters(right),
    left: directionLetters(right.map((c) => -c)),
    bottom: directionLetters(down),
    top: directionLetters(down.map((c) => -c)),
  };
}

function age(ds) {
  const given = str(ds, "00101010");
  const match = /^(\d{3})([DWMY])$/.exec(given);
  if (match && match[2] === "Y") return t("age_years", { value: Number(match[1]) });
  if (given) return given.replace(/^0+/, "");
  const born = str(ds, "00100030");
  const on = str(ds, "00080020");
  if (/^\d{8}$/.test(born) && /^\d{8}$/.test(on)) {
    const years = Math.floor((Number(on) - Number(born)) / 10000);
    if (years >= 0) return t("age_years", { value: years });
  }
  return "";
}

function sexAge(ds) {
  const sex = str(ds, "00100040");
  const label = sex ? t(`sex_${sex}`) : "";
  return [label.startsWith("sex_") ? sex : label, age(ds)].filter(Boolean).join(" · ");
}

/** The patient's lines above the series list: name; ID, sex and age; the study. */
export function patientBanner(ds) {
  return [
    personName(ds, "00100010"),
    [str(ds, "00100020"), sexAge(ds)].filter(Boolean).join(" · "),
    [formatDate(str(ds, "00080020")), str(ds, "00081030")].filter(Boolean).join(" "),
  ]
    .filter(Boolean)
    .join("\n");
}

export class Overlay {
  constructor(element) {
    this.boxes = {};
    this.texts = {};
    for (const name of [...CORNERS, ...SIDES]) {
      const box = document.createElement("div");
      box.className = CORNERS.includes(name) ? `vp-corner vp-${name}` : `vp-marker vp-${name}`;
      box.dataset.overlay = name;
      element.append(box);
      this.boxes[name] = box;
    }
  }

  set(name, lines) {
    const text = lines.filter(Boolean).join("\n");
    if (this.texts[name] !== text) {
      this.texts[name] = text;
      this.boxes[name].textContent = text;
    }
  }

  clear() {
    for (const name of Object.keys(this.boxes)) this.set(name, []);
  }

  update(viewport, image, frame, matrix) {
    const ds = image.ds;
    const stack = viewport.stack;
    const index = viewport.slice + 1;
    const total = stack.preview ? "…" : stack.length;
    this.set("tl", [personName(ds, "00100010"), str(ds, "00100020"), sexAge(ds)]);
    const series = [num(ds, "00200011") !== undefined ? `S${num(ds, "00200011")}` : "", str(ds, "0008103E")];
    this.set("tr", [
      str(ds, "00080080"),
      [formatDate(str(ds, "00080020")), str(ds, "00081030")].filter(Boolean).join(" "),
      [str(ds, "00080060"), ...series].filter(Boolean).join(" "),
    ]);
    const location = image.location;
    this.set("bl", [
      image.frames > 1 ? t("frame_of", { index: image.frame, total: image.frames }) : "",
      t("image_of", { index, total }),
      location !== undefined && image.orientation.length === 6 ? t("location", { value: fmt(location, 1) }) : "",
      image.thickness ? t("thickness", { value: fmt(image.thickness, 2) }) : "",
    ]);
    const voi = viewport.voi;
    this.set("br", [
      frame && frame.rendered ? t("rendered") : "",
      image.lossy ? t("lossy") : "",
      voi && frame && !frame.rendered ? t("window_level", { width: fmt(voi.width, 0), center: fmt(voi.center, 0) }) : "",
      t("zoom", { value: fmt(viewport.scaleFactor(image, frame), 2) }),
    ]);
    const markers = matrix ? orientationMarkers(image, matrix) : null;
    for (const side of SIDES) this.set(side, [markers ? markers[side] : ""]);
  }
}
