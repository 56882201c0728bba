// Remembering upload sessions across reloads, for the upload page.
//
// A session's UUID is kept in localStorage under the file's institution, name,
// size and modification time, so the same file chosen again after a reload or a
// lost connection resumes instead of starting over.

const STORAGE_PREFIX = "rc-upload:";
const STORAGE_MAX_AGE_MS = 24 * 3600 * 1000; // the server forgets idle uploads after a day

export function storageKey(institution, item) {
  const parts = [institution, item.path, item.file.size, item.file.lastModified];
  return STORAGE_PREFIX + parts.join("|");
}

export function remember(item, uuid) {
  try {
    localStorage.setItem(item.key, JSON.stringify({ uuid, name: item.path, at: Date.now() }));
  } catch (error) {
    /* private mode or full: resuming is a convenience */
  }
}

export function recalled(item) {
  try {
    const saved = JSON.parse(localStorage.getItem(item.key) || "null");
    return saved && Date.now() - saved.at < STORAGE_MAX_AGE_MS ? saved.uuid : null;
  } catch (error) {
    return null;
  }
}

export function forget(item) {
  try {
    localStorage.removeItem(item.key);
  } catch (error) {
    /* nothing to do */
  }
}

export function pendingFromBefore() {
  const pending = [];
  try {
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith(STORAGE_PREFIX)) continue;
      const saved = JSON.parse(localStorage.getItem(key) || "null");
      if (!saved || Date.now() - saved.at >= STORAGE_MAX_AGE_MS) localStorage.removeItem(key);
      else pending.push(saved.name);
    }
  } catch (error) {
    /* storage unavailable */
  }
  return pending;
}
