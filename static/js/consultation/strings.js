/**
 * The room's configuration and translated texts, from the JSON blocks the
 * Django template wrote (json_script): the modules hold no user-visible text.
 */

function readJson(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : {};
}

export const roomConfig = readJson("viewer-config");
const strings = readJson("room-strings");

/** Return the room text for `key` with its {name} placeholders filled from `params`. */
export function rt(key, params = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}
