// Shared by the operator pages: a live view refreshed every few seconds, and the key/value
// summary of an answer's plain fields. Lists are read by their documented names.

import { api } from "../api.js";
import { fill, h, when } from "../dom.js";
import { pageError, poll, table } from "../ui.js";

/**
 * A read-only operator page: GET `path` every `refreshMs`, render `view(data)`. A 403 replaces
 * the page with the explanation and stops the refresh.
 */
export async function liveView(root, ctx, { title, path, view, refreshMs = 2000, intro }) {
  const area = h("div", { class: "live" });
  const stamp = h("p", { class: "muted small" });
  root.append(h("h2", { class: "page-title" }, title), intro ? h("p", { class: "muted" }, intro) : null,
    h("section", { class: "panel" }, area, stamp));
  const load = async () => {
    const data = await api("GET", path);
    fill(area, view(data));
    fill(stamp, `Updated ${new Date().toLocaleTimeString()}; refreshed every ${refreshMs / 1000} s.`);
  };
  try {
    await load();
  } catch (err) {
    if (pageError(root, err)) return;
  }
  const stop = poll(async () => {
    try {
      await load();
      return true;
    } catch (err) {
      return !pageError(root, err);
    }
  }, refreshMs);
  ctx.onLeave(stop);
}

export function keyValues(object, skip = []) {
  const entries = Object.entries(object || {}).filter(
    ([key, value]) => !skip.includes(key) && (value === null || typeof value !== "object"));
  if (!entries.length) return null;
  return h("dl", { class: "kv" }, entries.map(([key, value]) => [
    h("dt", {}, key.replaceAll("_", " ")),
    h("dd", {}, value === null ? "—" : key.endsWith("_at") ? when(value) : String(value))]));
}

export { table };
