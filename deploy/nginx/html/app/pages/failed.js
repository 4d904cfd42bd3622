// Operator: failed jobs (messages dead-lettered after their retries), from /api/admin/failed.
// Retry or delete one, retry a selection, or retry every one matching the filter.

import { api } from "../api.js";
import { fill, h, show, when } from "../dom.js";
import { busy, field, guard, pageError, showNotice } from "../ui.js";

const QUEUES = ["high", "default", "low", "receipts", "recordings", "maintenance"];
// Shown as columns when present, in this order; every other field goes under Details.
const KNOWN = [
  ["actor", "Actor", show],
  ["queue", "Queue", show],
  ["error", "Error", show],
  ["kwargs", "Arguments", show],
  ["retries", "Retries used", show],
  ["dead_lettered_at", "Failed at", when],
  ["retryable", "Retryable", (v, item) => (v === false ? `no: ${item.reason || "?"}` : v ? "yes" : "—")],
];

const idOf = (item) => String(item.id ?? item.message_id);

export async function render(root) {
  const listArea = h("div", { id: "failed-list" });
  const more = h("div", { class: "actions" });
  const selected = new Set();
  const filter = { queue: "", actor: "" };
  let items = [];

  // First page, or (with a cursor) the next, older one appended.
  const load = async (cursor = null) => {
    const data = await api("GET", "/admin/failed", {
      query: { queue: filter.queue, actor: filter.actor, limit: 50, cursor },
    });
    const page = data.items;
    items = cursor ? items.concat(page) : page;
    if (!cursor) selected.clear();
    fill(listArea, items.length ? failedTable() : h("p", { class: "empty" }, "No failed jobs."));
    fill(more, data.next_cursor
      ? h("button", { type: "button", onclick: (e) => busy(e.currentTarget, () => guard(() => load(data.next_cursor))) }, "Load older")
      : null);
    updateSelection();
  };

  const retry = async (ids) => {
    for (const id of ids) await api("POST", `/admin/failed/${encodeURIComponent(id)}/retry`);
    showNotice(ids.length === 1 ? `Job ${ids[0]} was sent back to its queue.`
      : `${ids.length} jobs were sent back to their queues.`);
    await load();
  };

  const retryMatching = async () => {
    const body = {};
    if (filter.queue) body.queue = filter.queue;
    if (filter.actor) body.actor = filter.actor;
    const what = Object.keys(body).length ? ` matching ${JSON.stringify(body)}` : "";
    if (!window.confirm(`Retry every failed job${what}?`)) return;
    const result = await api("POST", "/admin/failed/retry", { body });
    const skipped = result.skipped_total ?? (result.skipped || []).length;
    showNotice(`${result.retried} jobs were sent back to their queues` +
      (skipped ? `; ${skipped} could not be retried and stay listed.` : "."));
    await load();
  };

  const remove = async (id) => {
    if (!window.confirm(`Delete failed job ${id}? It will not run again.`)) return;
    await api("DELETE", `/admin/failed/${encodeURIComponent(id)}`);
    showNotice(`Job ${id} deleted.`);
    await load();
  };

  const retrySelected = h("button", { type: "button", class: "primary", disabled: true }, "Retry selected");
  retrySelected.addEventListener("click", () => busy(retrySelected, () => guard(() => retry([...selected]))));
  const retryAll = h("button", { type: "button" }, "Retry all matching");
  retryAll.addEventListener("click", () => busy(retryAll, () => guard(retryMatching)));
  const refresh = h("button", { type: "button" }, "Refresh");
  refresh.addEventListener("click", () => busy(refresh, () => guard(() => load())));
  const updateSelection = () => {
    retrySelected.disabled = selected.size === 0;
    fill(retrySelected, selected.size ? `Retry selected (${selected.size})` : "Retry selected");
  };

  const failedTable = () => {
    // Known fields get columns; every other field is still shown, under Details.
    const columns = KNOWN.filter(([key]) => items.some((item) => key in item))
      .map(([key, title, format]) => [title, (item) => format(item[key], item)]);
    const all = h("input", { type: "checkbox", "aria-label": "Select every failed job shown" });
    all.addEventListener("change", () => {
      for (const box of listArea.querySelectorAll("input[data-id]")) {
        if (box.disabled) continue;
        box.checked = all.checked;
        if (all.checked) selected.add(box.dataset.id);
        else selected.delete(box.dataset.id);
      }
      updateSelection();
    });
    return h("div", { class: "table-wrap" }, h("table", { class: "failed" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, all),
        h("th", { scope: "col" }, "Actions"),
        columns.map(([title]) => h("th", { scope: "col" }, title)),
        h("th", { scope: "col" }, "Details"))),
      h("tbody", {}, items.map((item) => row(item, columns)))));
  };

  const row = (item, columns) => {
    const id = idOf(item);
    const retryable = item.retryable !== false;
    const box = h("input", { type: "checkbox", "aria-label": `Select job ${id}`, dataset: { id },
      disabled: !retryable });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(id);
      else selected.delete(id);
      updateSelection();
    });
    const retryButton = h("button", { type: "button", class: "primary", disabled: !retryable,
      "aria-label": `Retry job ${id}`, title: retryable ? false : item.reason }, "Retry");
    retryButton.addEventListener("click", () => busy(retryButton, () => guard(() => retry([id]))));
    const deleteButton = h("button", { type: "button", class: "danger", "aria-label": `Delete job ${id}` },
      "Delete");
    deleteButton.addEventListener("click", () => busy(deleteButton, () => guard(() => remove(id))));
    const rest = Object.keys(item).filter((key) => !KNOWN.some(([k]) => k === key)
      && item[key] !== undefined && item[key] !== null && item[key] !== "");
    return h("tr", { dataset: { failedId: id, actor: item.actor || "" } },
      h("td", { "data-label": "Select" }, box),
      h("td", { "data-label": "Actions" }, h("div", { class: "row-actions" }, retryButton, deleteButton)),
      columns.map(([title, cell]) => h("td", { "data-label": title }, cell(item))),
      h("td", { "data-label": "Details" }, h("details", {}, h("summary", {}, `${rest.length} more fields`),
        h("dl", { class: "kv" }, rest.map((f) => [h("dt", {}, f.replaceAll("_", " ")),
          h("dd", {}, typeof item[f] === "object" ? h("pre", {}, JSON.stringify(item[f], null, 2))
            : f.endsWith("_at") ? when(item[f]) : h("pre", {}, String(item[f])))])))));
  };

  const queue = h("select", { name: "queue" }, h("option", { value: "" }, "all queues"),
    QUEUES.map((q) => h("option", { value: q }, q)));
  const actor = h("input", { name: "actor", placeholder: "e.g. recordings.process", autocomplete: "off" });
  const filterForm = h("form", { class: "toolbar" }, field("Queue", queue), field("Actor", actor),
    h("button", { type: "submit" }, "Filter"));
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    filter.queue = queue.value;
    filter.actor = actor.value.trim();
    guard(() => load());
  });

  root.append(h("h2", { class: "page-title" }, "Failed jobs"),
    h("p", { class: "muted" }, "Messages whose retries ran out. Retry sends one back to its queue ",
      "with its arguments and a fresh retry budget; delete drops it for good."),
    h("section", { class: "panel" }, filterForm,
      h("div", { class: "actions" }, retrySelected, retryAll, refresh), listArea, more));
  try {
    await load();
  } catch (err) {
    pageError(root, err);
  }
}
