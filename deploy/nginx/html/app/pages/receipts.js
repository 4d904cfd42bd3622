// Receipts: connected Gmail inboxes, "Sync now" with its running / already running (409) /
// queue unavailable (503) states, and the receipts list with filters.

import { ApiError, api, download } from "../api.js";
import { fill, h, show, when } from "../dom.js";
import { followJob } from "../jobs.js";
import { busy, field, guard, pageError, pager, showError, showNotice, statusBadge, table } from "../ui.js";

export async function render(root, ctx) {
  const syncArea = h("div", { id: "sync-status", class: "sync-status", "aria-live": "polite" });
  const connectionsArea = h("div", { id: "connections" });
  const listArea = h("div", { id: "receipts-list" });
  const filters = { from: "", to: "", vendor: "", min_amount: "", max_amount: "", page: 1 };
  let stopFollowing = () => {};
  ctx.onLeave(() => stopFollowing());

  // Back from Google's consent screen: the API's callback says how it went in the query.
  const outcome = ctx.query.get("gmail");
  if (outcome === "connected") showNotice("Gmail connected. Press “Sync now” to fetch receipts.");
  else if (outcome === "error") {
    showError(new ApiError(0, ctx.query.get("reason") || "gmail_error",
      "Connecting Gmail did not succeed", null));
  }

  const follow = (job, heading) => {
    stopFollowing();
    fill(syncArea, h("p", { class: "state state-running" }, heading), h("div", {}));
    stopFollowing = followJob(syncArea.lastChild, job, {
      title: "Receipts sync",
      onFinal: () => guard(async () => { await loadConnections(); await loadReceipts(); }),
    });
  };

  const sync = async (connectionId) => {
    try {
      const body = connectionId ? { connection_id: connectionId } : undefined;
      const { job } = await api("POST", "/receipts/sync", { body });
      follow(job, "Sync started.");
    } catch (err) {
      // The two states people meet: shown in place, plainly, not only as an error banner.
      if (err instanceof ApiError && err.code === "sync_running" && err.body && err.body.job) {
        follow(err.body.job, `A sync is already running (job ${err.body.job.id}); following it.`);
      } else if (err instanceof ApiError && err.status === 503) {
        stopFollowing();
        fill(syncArea, h("p", { class: "state state-unavailable", role: "alert" },
          "The queue is unavailable, try again in a few seconds. Nothing was started. ",
          h("span", { class: "muted" }, `(${err.message})`)));
      } else {
        throw err;
      }
    }
  };

  const loadConnections = async () => {
    const data = await api("GET", "/gmail/connections");
    fill(connectionsArea, table(data.items, [
      ["Inbox", (c) => c.email],
      ["Status", (c) => statusBadge(c.status)],
      ["Last synced", (c) => when(c.last_synced_at)],
      ["Last error", (c) => show(c.last_error)],
      ["Actions", (c) => h("div", { class: "row-actions" },
        actionButton("Sync now", `Sync ${c.email} now`, () => sync(c.id), "primary"),
        actionButton("Disconnect", `Disconnect ${c.email}`, async () => {
          if (!window.confirm(`Disconnect ${c.email}? Its receipts stay.`)) return;
          await api("DELETE", `/gmail/connections/${c.id}`);
          await loadConnections();
        }, "danger"))],
    ], { empty: "No inbox is connected yet." }));
    // A sync started elsewhere (another tab, the schedule) is shown as running here too.
    const running = data.items.find((c) => c.sync_job_id);
    if (running && !syncArea.firstChild) {
      const job = await api("GET", `/jobs/${running.sync_job_id}`);
      if (job.status === "queued" || job.status === "running") {
        follow(job, `A sync of ${running.email} is running (job ${job.id}).`);
      }
    }
  };

  const loadReceipts = async () => {
    const data = await api("GET", "/receipts", { query: { ...filters, per_page: 50 } });
    fill(listArea, table(data.items, [
      ["Date", (r) => show(r.date)],
      ["Vendor", (r) => show(r.vendor)],
      ["Total", (r) => (r.total_amount === null ? "—" : `${r.total_amount} ${r.currency || ""}`.trim())],
      ["Subject", (r) => show(r.subject)],
      ["From", (r) => show(r.sender)],
      ["Received", (r) => when(r.received_at)],
      ["Files", (r) => (r.attachments && r.attachments.length
        ? h("div", { class: "row-actions" }, r.attachments.map((a) =>
          actionButton(a.filename, `Download ${a.filename}`,
            () => download(`/receipts/${r.id}/attachments/${a.id}`, a.filename), "link")))
        : "—")],
    ], { empty: "No receipts match." }), pager(data, (p) => { filters.page = p; guard(loadReceipts); }));
  };

  const connect = h("button", { type: "button" }, "Connect a Gmail inbox");
  connect.addEventListener("click", () => busy(connect, () => guard(async () => {
    const { url } = await api("GET", "/gmail/connect");
    window.location.assign(url); // Google's consent screen; it comes back to /receipts
  })));
  const syncAll = h("button", { type: "button", class: "primary", id: "sync-now" }, "Sync now");
  syncAll.addEventListener("click", () => busy(syncAll, () => guard(() => sync(null))));

  const inputs = {
    from: h("input", { type: "date", name: "from" }),
    to: h("input", { type: "date", name: "to" }),
    vendor: h("input", { type: "search", name: "vendor", autocomplete: "off" }),
    min_amount: h("input", { type: "number", name: "min_amount", step: "0.01" }),
    max_amount: h("input", { type: "number", name: "max_amount", step: "0.01" }),
  };
  const filterForm = h("form", { class: "toolbar", role: "search" },
    field("From", inputs.from), field("To", inputs.to), field("Vendor", inputs.vendor),
    field("Min amount", inputs.min_amount), field("Max amount", inputs.max_amount),
    h("button", { type: "submit" }, "Filter"));
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const [name, input] of Object.entries(inputs)) filters[name] = input.value.trim();
    filters.page = 1;
    guard(loadReceipts);
  });

  root.append(
    h("h2", { class: "page-title" }, "Receipts"),
    h("section", { class: "panel", "aria-labelledby": "inboxes-title" },
      h("h2", { id: "inboxes-title" }, "Gmail inboxes"),
      h("div", { class: "actions" }, syncAll, connect), syncArea, connectionsArea),
    h("section", { class: "panel", "aria-labelledby": "receipts-title" },
      h("h2", { id: "receipts-title" }, "Receipts"), filterForm, listArea),
  );
  try {
    await loadConnections();
    await loadReceipts();
  } catch (err) {
    pageError(root, err);
  }
}

function actionButton(label, accessibleName, action, cls) {
  const el = h("button", { type: "button", class: cls || false, "aria-label": accessibleName }, label);
  el.addEventListener("click", () => busy(el, () => guard(action)));
  return el;
}
