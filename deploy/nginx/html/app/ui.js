// Shared pieces of every page: the error banner, progress bars, tables, pagers, polling.

import { ApiError, session } from "./api.js";
import { clear, fill, h, show, when } from "./dom.js";

const banner = () => document.getElementById("banner");

/** Show an error in the banner: the API's message and code, never a silent failure. */
export function showError(err) {
  const el = banner();
  el.className = "banner error";
  el.hidden = false;
  const parts = [];
  if (err instanceof ApiError) {
    parts.push(h("strong", {}, describe(err)));
    const detail = err.status ? `HTTP ${err.status}, ${err.code}` : err.code;
    parts.push(h("span", { class: "code" }, ` (${detail})`));
    const details = err.body && err.body.error && err.body.error.details;
    if (details) parts.push(h("pre", { class: "details" }, JSON.stringify(details, null, 2)));
  } else {
    parts.push(h("strong", {}, `Unexpected error: ${err && err.message ? err.message : err}`));
  }
  fill(el, h("div", { class: "banner-text" }, parts), dismissButton());
  console.error(err); // also in the devtools console, with its stack
}

/** A neutral or positive message in the banner (e.g. "Gmail connected"). */
export function showNotice(text) {
  const el = banner();
  el.className = "banner notice";
  el.hidden = false;
  fill(el, h("div", { class: "banner-text" }, text), dismissButton());
}

export function hideBanner() {
  const el = banner();
  el.hidden = true;
  clear(el);
}

function dismissButton() {
  return h("button", { type: "button", class: "link", onclick: hideBanner }, "Dismiss");
}

/** A sentence for the errors people meet often; the API's own message otherwise. */
export function describe(err) {
  if (err.code === "queue_unavailable") return "The queue is unavailable, try again. " + err.message;
  if (err.status === 403) return `${forbiddenReason()} ${err.message}`;
  return err.message;
}

/** Why a 403 happened, from the role of the token that signed in. */
export function forbiddenReason() {
  const role = session.me && session.me.role;
  if (role === "business") {
    return "This token is a business token; operator pages need an operator token.";
  }
  if (role === "operator") {
    return "This token is an operator token; business pages need a business token.";
  }
  return "This token may not see this page.";
}

/**
 * The page-level answer to a 403: what the token is, what the page needs, and the API's own
 * words. Returned so the page shows it where its content would be.
 */
export function forbiddenPanel(err) {
  return h(
    "section",
    { class: "panel forbidden", role: "alert" },
    h("h2", {}, "Not allowed (403)"),
    h("p", {}, forbiddenReason()),
    h("p", { class: "muted" }, `The API said: ${err.message}`),
    h("p", {}, h("a", { href: "/signin", "data-link": true }, "Sign in with another token")),
  );
}

/** Run `fn`; show what it throws. Returns its result (undefined after an error). */
export async function guard(fn) {
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

/**
 * A progress bar with its figures as text beside it. `percent` null means "not known yet".
 * A native <progress> element: accessible by default, and styled without inline styles
 * (the Content-Security-Policy forbids those).
 */
export function progressBar(percent, label, { status } = {}) {
  const known = percent !== null && percent !== undefined;
  const value = known ? Math.max(0, Math.min(100, Number(percent))) : null;
  const bar = h("progress", {
    max: 100,
    value: known ? value : false,
    "aria-label": label,
    class: status ? `status-${status}` : false,
  });
  const text = known ? `${formatPercent(value)} %` : "…";
  return h("div", { class: "progress", dataset: { percent: known ? value : "" } }, bar,
    h("span", { class: "progress-text" }, text));
}

function formatPercent(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/**
 * A table of `items`. `columns` is a list of [header, item => cell]; without it the columns are
 * every field the items have (for APIs whose shapes may still change: show what is there).
 */
export function table(items, columns, { empty = "Nothing yet.", caption, row } = {}) {
  if (!items || items.length === 0) return h("p", { class: "empty" }, empty);
  const cols = columns || inferColumns(items);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, cols.map(([title]) => h("th", { scope: "col" }, title)))),
      h(
        "tbody",
        {},
        items.map((item) =>
          h("tr", row ? row(item) : {},
            cols.map(([title, cell]) => h("td", { "data-label": title }, cell(item)))),
        ),
      ),
    ),
  );
}

export function inferColumns(items) {
  const names = [];
  for (const item of items) {
    for (const key of Object.keys(item || {})) if (!names.includes(key)) names.push(key);
  }
  return names.map((name) => [name.replaceAll("_", " "),
    (item) => (name.endsWith("_at") ? when(item[name]) : show(item[name]))]);
}

/** Previous/next for the API's {page, per_page, total} lists. */
export function pager(data, go) {
  const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || 1)));
  return h(
    "div",
    { class: "pager" },
    h("button", { type: "button", disabled: data.page <= 1, onclick: () => go(data.page - 1) },
      "Previous"),
    h("span", {}, `Page ${data.page} of ${pages} (${data.total} in all)`),
    h("button", { type: "button", disabled: data.page >= pages, onclick: () => go(data.page + 1) },
      "Next"),
  );
}

/**
 * Call `tick` every `ms` until `stop()` (or the tick returns false). Ticks never overlap: the
 * next one is scheduled when the previous one has finished, so a slow API is not piled on.
 */
export function poll(tick, ms = 1000) {
  let stopped = false;
  let timer = null;
  const loop = async () => {
    if (stopped) return;
    let again = true;
    try {
      again = (await tick()) !== false;
    } catch (err) {
      showError(err);
    }
    if (!stopped && again) timer = setTimeout(loop, ms);
  };
  timer = setTimeout(loop, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** A labelled form field: <label>text <input …></label>. */
export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input,
    hint ? h("small", { class: "hint" }, hint) : null);
}

/** Disable a button while `fn` runs, so a double click does not send twice. */
export async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } finally {
    button.disabled = false;
  }
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, show(status));
}

/**
 * What a page does with an error while loading its data: a 403 replaces the page with the
 * explanation (the page has nothing it may show); anything else goes to the banner.
 * Returns true when the page was replaced, so pollers can stop.
 */
export function pageError(root, err) {
  if (err instanceof ApiError && err.status === 403) {
    fill(root, forbiddenPanel(err));
    return true;
  }
  showError(err);
  return false;
}
