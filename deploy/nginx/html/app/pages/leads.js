// Leads: the list, one lead by hand, and a CSV import followed by its BackgroundJob.

import { api } from "../api.js";
import { fill, h, show, when } from "../dom.js";
import { followJob } from "../jobs.js";
import { busy, field, guard, pageError, pager, showNotice, table } from "../ui.js";

export async function render(root, ctx) {
  let page = Number(ctx.query.get("page")) || 1;
  let q = ctx.query.get("q") || "";
  const listArea = h("div", { id: "leads-list" });
  const jobArea = h("div", { id: "import-job", "aria-live": "polite" });

  const load = async () => {
    const data = await api("GET", "/leads", { query: { page, q, per_page: 50 } });
    fill(listArea,
      table(data.items, [
        ["ID", (l) => l.id],
        ["Name", (l) => show(l.name)],
        ["Phone", (l) => l.phone],
        ["Time zone", (l) => show(l.timezone)],
        ["Source", (l) => l.source],
        ["Last call", (l) => show(l.last_call_status)],
        ["Callback", (l) => (l.callback_requested ? "requested" : "—")],
        ["Created", (l) => when(l.created_at)],
      ], { empty: q ? "No lead matches." : "No leads yet: import a CSV or add one." }),
      pager(data, (p) => { page = p; guard(load); }));
  };

  // CSV import: 202 with a job; its progress bar follows /api/jobs/{id} every second.
  const file = h("input", { type: "file", name: "file", accept: ".csv,text/csv", required: true });
  const importButton = h("button", { type: "submit", class: "primary" }, "Import");
  const importForm = h("form", { class: "panel", "aria-labelledby": "import-title" },
    h("h2", { id: "import-title" }, "Import leads from a CSV file"),
    h("p", { class: "muted" }, "Columns by header: phone (or phone_number, number), name, ",
      "timezone, email, notes. Bad rows are reported with their line numbers; good ones are imported."),
    field("CSV file", file),
    h("div", { class: "actions" }, importButton),
    jobArea);
  importForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    busy(importButton, () => guard(async () => {
      const body = new FormData();
      body.append("file", file.files[0]);
      const { job } = await api("POST", "/leads/import", { body });
      const stop = followJob(jobArea, job, {
        title: "CSV import",
        describeResult: importSummary,
        onFinal: (final) => {
          if (final.status === "succeeded") guard(load);
        },
      });
      ctx.onLeave(stop);
    }));
  });

  // One lead by hand.
  const name = h("input", { name: "name", autocomplete: "off" });
  const phone = h("input", { name: "phone", required: true, inputmode: "tel", autocomplete: "off" });
  const zone = h("input", { name: "timezone", placeholder: "America/New_York", autocomplete: "off" });
  const addButton = h("button", { type: "submit" }, "Add lead");
  const addForm = h("form", { class: "panel inline-form", "aria-labelledby": "add-title" },
    h("h2", { id: "add-title" }, "Add a lead"),
    field("Name", name), field("Phone", phone), field("Time zone (optional)", zone),
    h("div", { class: "actions" }, addButton));
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(addButton, () => guard(async () => {
      const lead = await api("POST", "/leads", {
        body: { name: name.value || null, phone: phone.value, timezone: zone.value || null },
      });
      showNotice(`Lead ${lead.id} added (${lead.phone}).`);
      addForm.reset();
      await load();
    }));
  });

  const search = h("input", { type: "search", name: "q", value: q, autocomplete: "off" });
  const searchForm = h("form", { class: "toolbar", role: "search" },
    field("Search name or phone", search), h("button", { type: "submit" }, "Search"));
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    q = search.value.trim();
    page = 1;
    guard(load);
  });

  root.append(
    h("h2", { class: "page-title" }, "Leads"),
    h("div", { class: "grid-2" }, importForm, addForm),
    h("section", { class: "panel", "aria-labelledby": "list-title" },
      h("h2", { id: "list-title" }, "All leads"), searchForm, listArea),
  );
  try {
    await load();
  } catch (err) {
    pageError(root, err);
  }
}

function importSummary(result) {
  const rows = result.errors || [];
  return h("div", { class: "import-summary" },
    h("p", {}, `Imported: ${result.created ?? 0} created, ${result.updated ?? 0} updated, `,
      `${result.invalid ?? rows.length} refused, of ${result.rows ?? "?"} rows.`),
    rows.length
      ? table(rows, [["Line", (r) => r.line], ["Problem", (r) => r.error]], { caption: "Refused rows" })
      : null);
}
