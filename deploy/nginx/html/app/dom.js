// Tiny DOM helpers. Text always goes in as text nodes, never as HTML: whatever the API or a
// CSV file contains is shown, not executed.

/**
 * h("button", {class: "primary", onclick: fn}, "Save") builds an element.
 * Attributes starting with "on" become listeners; `false`/`null`/`undefined` ones are skipped;
 * children may be strings, numbers, nodes, arrays of those, or null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

export function clear(element) {
  while (element.firstChild) element.firstChild.remove();
  return element;
}

/** Replace an element's children. */
export function fill(element, ...children) {
  clear(element);
  append(element, children);
  return element;
}

/** A date-time from the API (ISO 8601, UTC) in the browser's zone; "—" for none. */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** Seconds as "1 h 5 min", "4 min 2 s" or "12 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

/** Any JSON value as short readable text (for tables that show whatever fields exist). */
export function show(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) return value.length ? value.map(show).join(", ") : "—";
  if (typeof value === "object") {
    const entries = Object.entries(value);
    // A flat map such as {"1m": 3, "5m": 12} reads better as "1m 3 · 5m 12" than as JSON.
    if (entries.every(([, v]) => v === null || typeof v !== "object")) {
      return entries.length ? entries.map(([k, v]) => `${k} ${show(v)}`).join(" · ") : "—";
    }
    return JSON.stringify(value);
  }
  return String(value);
}
