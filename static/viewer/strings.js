/**
 * The page's configuration and its translated texts, from the JSON blocks the
 * Django template wrote (json_script). The modules hold no user-visible text.
 */

function readJson(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : {};
}

export const config = readJson("viewer-config");
const strings = readJson("viewer-strings");

/** Return the text for `key` with its {name} placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Format a number for an overlay: at most `digits` decimals, no trailing zeros. */
export function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  return String(Number(Number(value).toFixed(digits)));
}
