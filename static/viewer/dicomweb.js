/**
 * The hub's DICOMweb service (PS3.18): QIDO-RS searches, WADO-RS metadata,
 * frames, rendered images and thumbnails. Only same-origin requests, with the
 * session cookie; nothing else is ever contacted.
 *
 * Also the DICOM JSON accessors (PS3.18 F.2) every module reads attributes with.
 */

const JSON_ACCEPT = "application/dicom+json";
// Uncompressed little-endian frames; the hub decodes compressed objects for us.
const FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"';
const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

export class HttpError extends Error {
  constructor(status, url) {
    super(`HTTP ${status} for ${url}`);
    this.status = status;
  }
}

export class DicomWebClient {
  constructor(base) {
    this.base = base.replace(/\/$/, "");
  }

  studyUrl(study) {
    return `${this.base}/studies/${encodeURIComponent(study)}`;
  }

  seriesUrl(study, series) {
    return `${this.studyUrl(study)}/series/${encodeURIComponent(series)}`;
  }

  instanceUrl(study, series, sop) {
    return `${this.seriesUrl(study, series)}/instances/${encodeURIComponent(sop)}`;
  }

  thumbnailUrl(study, series) {
    return `${this.seriesUrl(study, series)}/thumbnail`;
  }

  async json(url, signal, answer = undefined) {
    const response = await (answer || fetch(url, { headers: { Accept: JSON_ACCEPT }, credentials: "same-origin", signal }));
    if (!response.ok) throw new HttpError(response.status, url);
    return response.json();
  }

  /** QIDO-RS: the series of a study, with their instance counts. */
  searchSeries(study) {
    return this.json(`${this.studyUrl(study)}/series`);
  }

  /** WADO-RS: every instance's DICOM JSON of one series (fetched once per series). */
  seriesMetadata(study, series) {
    return this.json(`${this.seriesUrl(study, series)}/metadata`);
  }

  /** WADO-RS: one instance's DICOM JSON; `answer`: its response, if already asked for. */
  async instanceMetadata(study, series, sop, answer = undefined) {
    const found = await this.json(`${this.instanceUrl(study, series, sop)}/metadata`, undefined, answer);
    return found[0];
  }

  /** QIDO-RS: studies matching `params` (only those the reader may see come back). */
  searchStudies(params) {
    const query = new URLSearchParams(params);
    return this.json(`${this.base}/studies?${query}`);
  }

  /**
   * WADO-RS: one frame's uncompressed pixel bytes. `expected` (bytes) lets the
   * multipart body be cut without scanning the pixels for the boundary;
   * `answer`: the response, if the frame was already asked for.
   */
  async frame(image, expected = 0, answer = undefined) {
    const url = `${this.instanceUrl(image.study, image.series, image.sop)}/frames/${image.frame}`;
    const response = await (answer || fetch(url, { headers: { Accept: FRAME_ACCEPT }, credentials: "same-origin" }));
    if (!response.ok) throw new HttpError(response.status, url);
    const body = new Uint8Array(await response.arrayBuffer());
    const boundary = boundaryOf(response.headers.get("Content-Type"));
    if (!boundary) return body; // a single-part answer: the bytes themselves
    const parts = multipartParts(body, boundary, expected);
    if (!parts.length) throw new HttpError(502, url);
    return parts[0].body;
  }

  /** WADO-RS rendered: a PNG of one frame, for what the browser cannot show from raw bytes. */
  async rendered(image) {
    const url = `${this.instanceUrl(image.study, image.series, image.sop)}/frames/${image.frame}/rendered`;
    const response = await fetch(url, { headers: { Accept: "image/png" }, credentials: "same-origin" });
    if (!response.ok) throw new HttpError(response.status, url);
    return createImageBitmap(await response.blob());
  }
}

// --- multipart/related (RFC 2046 5.1) ------------------------------------------------

export function boundaryOf(contentType) {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType || "");
  return match ? match[1] || match[2] : null;
}

function indexOf(haystack, needle, from) {
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(needle[0], from); i !== -1 && i <= last; i = haystack.indexOf(needle[0], i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function startsAt(haystack, needle, at) {
  if (at < 0 || at + needle.length > haystack.length) return false;
  for (let j = 0; j < needle.length; j++) if (haystack[at + j] !== needle[j]) return false;
  return true;
}

/** Return the parts of a multipart body as {headers, body} (body: a view, not a copy). */
export function multipartParts(bytes, boundary, expected = 0) {
  const opening = ENCODER.encode(`--${boundary}`);
  const delimiter = ENCODER.encode(`\r\n--${boundary}`);
  const blank = ENCODER.encode("\r\n\r\n");
  const parts = [];
  let at = indexOf(bytes, opening, 0);
  while (at >= 0) {
    const after = at + opening.length;
    if (bytes[after] === 45 && bytes[after + 1] === 45) break; // "--": the closing delimiter
    const headerEnd = indexOf(bytes, blank, after);
    if (headerEnd < 0) break;
    const headers = DECODER.decode(bytes.subarray(after, headerEnd));
    const start = headerEnd + blank.length;
    // Pixel bytes may hold anything: trust the expected length when it fits.
    let end = expected && startsAt(bytes, delimiter, start + expected) ? start + expected : -1;
    if (end < 0) end = indexOf(bytes, delimiter, start);
    if (end < 0) break;
    parts.push({ headers, body: bytes.subarray(start, end) });
    at = end + 2;
  }
  return parts;
}

// --- DICOM JSON accessors (PS3.18 F.2) -----------------------------------------------

export function values(ds, tag) {
  return (ds && ds[tag] && ds[tag].Value) || [];
}

export function first(ds, tag, fallback = undefined) {
  const list = values(ds, tag);
  return list.length ? list[0] : fallback;
}

export function str(ds, tag, fallback = "") {
  const value = first(ds, tag);
  return value === undefined || value === null ? fallback : String(value);
}

export function num(ds, tag, fallback = undefined) {
  const value = first(ds, tag);
  const number = Number(value);
  return value === undefined || value === null || value === "" || Number.isNaN(number) ? fallback : number;
}

export function nums(ds, tag) {
  return values(ds, tag).map(Number).filter((n) => !Number.isNaN(n));
}

/** The first item of a sequence, or undefined. */
export function item(ds, tag) {
  return first(ds, tag);
}

const CJK = /[\u3400-\u9fff\uf900-\ufaff]/;

function formatName(raw) {
  const parts = String(raw || "")
    .split("^")
    .map((p) => p.trim())
    .filter(Boolean);
  // Chinese names are written family name first, without a space.
  return parts.join(parts.some((p) => CJK.test(p)) ? "" : " ");
}

/** A Person Name (PS3.5 6.2) for display: ideographic first, then alphabetic. */
export function personName(ds, tag) {
  const value = first(ds, tag);
  if (!value) return "";
  if (typeof value === "string") return formatName(value);
  const ideographic = formatName(value.Ideographic);
  const alphabetic = formatName(value.Alphabetic);
  if (ideographic && alphabetic && ideographic !== alphabetic) return `${ideographic} (${alphabetic})`;
  return ideographic || alphabetic || formatName(value.Phonetic);
}

export function formatDate(da) {
  const text = String(da || "");
  return /^\d{8}$/.test(text) ? `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6, 8)}` : text;
}

// --- the patient's prior studies -----------------------------------------------------

/**
 * Return the patient's other studies the reader may see, newest first.
 *
 * The one place that decides what counts as "the same patient". For now that
 * is the same Patient ID from the same issuer: a Patient ID is unique only
 * inside the institution that issued it, so a bare ID match across issuers
 * could be someone else. A regional person link will widen this to the
 * person's IDs at other institutions; only this function changes then.
 */
export async function priorStudies(client, patient, currentStudyUid) {
  if (!patient || !patient.id) return [];
  const found = await client.searchStudies({
    PatientID: patient.id,
    includefield: "00081030,00080061,00201206,00201208,00100021,00080080",
  });
  return found
    .filter((study) => str(study, "0020000D") !== currentStudyUid)
    .filter((study) => str(study, "00100020") === patient.id)
    .filter((study) => !patient.issuer || !str(study, "00100021") || str(study, "00100021") === patient.issuer)
    .sort((a, b) => (str(b, "00080020") + str(b, "00080030")).localeCompare(str(a, "00080020") + str(a, "00080030")));
}
