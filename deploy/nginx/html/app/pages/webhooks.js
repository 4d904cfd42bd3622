// Event webhooks: register endpoints (the signing secret is shown once), enable/disable,
// rotate the secret, and each endpoint's delivery log with redelivery of one or all failed.
// /webhooks?endpoint=ID opens that endpoint's log.

import { api } from "../api.js";
import { fill, h, show, when } from "../dom.js";
import { busy, field, guard, pageError, pager, poll, showNotice, statusBadge, table } from "../ui.js";

const STATUSES = ["", "pending", "failed", "succeeded"];

export async function render(root, ctx) {
  let selected = Number(ctx.query.get("endpoint")) || null;
  let logPage = 1;
  let logStatus = "";
  let stopPolling = null;
  const notices = h("div", { id: "webhook-notices" });
  const secretArea = h("div", { id: "webhook-secret", "aria-live": "polite" });
  const listArea = h("div", { id: "endpoints-list" });
  const logArea = h("section", { class: "panel", id: "deliveries", "aria-live": "polite" });
  ctx.onLeave(() => stopPolling && stopPolling());

  let types;
  try {
    ({ items: types } = await api("GET", "/webhooks/event-types"));
  } catch (err) {
    pageError(root, err);
    return;
  }

  // Endpoints.
  const loadEndpoints = async () => {
    const { items } = await api("GET", "/webhooks/endpoints");
    fill(notices, items.filter((e) => e.disabled_reason).map((e) =>
      h("p", { class: "state state-unavailable", role: "status" },
        `Endpoint ${e.id} (${e.url}) is disabled. ${e.disabled_reason}`)));
    fill(listArea, table(items, [
      ["ID", (e) => e.id],
      ["URL", (e) => h("span", {}, e.url, e.description ? h("br") : null,
        e.description ? h("small", { class: "muted" }, e.description) : null)],
      ["Events", (e) => e.event_types.join(", ")],
      ["State", (e) => statusBadge(e.enabled ? "enabled" : "disabled")],
      ["Failing since", (e) => when(e.failing_since)],
      ["Deliveries", (e) => `${e.deliveries.succeeded} sent · ${e.deliveries.pending} pending · ${e.deliveries.failed} failed`],
      ["Actions", (e) => h("div", { class: "row-actions" },
        button("Deliveries", `of endpoint ${e.id}`, () => openLog(e.id), "primary"),
        button(e.enabled ? "Disable" : "Enable", `endpoint ${e.id}`, async () => {
          await api("PATCH", `/webhooks/endpoints/${e.id}`, { body: { enabled: !e.enabled } });
          await refresh();
        }),
        button("Rotate secret", `of endpoint ${e.id}`, async () => {
          if (!window.confirm(`Rotate the secret of endpoint ${e.id}? The current one keeps signing for 24 hours.`)) return;
          const rotated = await api("POST", `/webhooks/endpoints/${e.id}/rotate-secret`);
          showSecret(rotated, "Its new signing secret");
          await refresh();
        }),
        button("Delete", `endpoint ${e.id}`, async () => {
          if (!window.confirm(`Delete endpoint ${e.id} and its delivery log?`)) return;
          await api("DELETE", `/webhooks/endpoints/${e.id}`);
          if (selected === e.id) selected = null;
          await refresh();
        }, "danger"))],
    ], { empty: "No endpoints yet: register one above.",
      row: (e) => ({ dataset: { endpointId: e.id, enabled: e.enabled } }) }));
    return items;
  };

  const showSecret = (endpoint, what) => {
    fill(secretArea, h("section", { class: "panel", role: "status" },
      h("h2", {}, `${what} (endpoint ${endpoint.id})`),
      h("p", {}, "Copy it now: it is not shown again. Verify each delivery's webhook-signature with it ",
        "(README, \"Verifying a delivery\")."),
      h("pre", { class: "secret", dataset: { endpointId: endpoint.id } }, endpoint.secret)));
  };

  // One endpoint's delivery log, followed live: new events and attempts show up as they
  // happen (every 2 s while the tab is visible; redrawn only when something changed).
  const openLog = async (endpointId) => {
    selected = endpointId;
    logPage = 1;
    await loadLog();
  };

  let shownLog = "";
  const loadLog = async () => {
    if (!selected) {
      fill(logArea, h("h2", {}, "Deliveries"), h("p", { class: "empty" }, "Choose an endpoint's Deliveries."));
      return;
    }
    const data = await api("GET", `/webhooks/endpoints/${selected}/deliveries`,
      { query: { status: logStatus, page: logPage, per_page: 25 } });
    const text = JSON.stringify(data);
    if (text !== shownLog) {
      if (shownLog) await loadEndpoints(); // the counts and "failing since" moved too
      drawLog(data);
    }
    shownLog = text;
    if (!stopPolling) {
      stopPolling = poll(async () => {
        if (document.visibilityState === "visible") await loadLog();
        return stopPolling !== null;
      }, 2000);
    }
  };

  const statusFilter = h("select", { name: "delivery_status", "aria-label": "Delivery status" },
    STATUSES.map((s) => h("option", { value: s }, s || "every status")));
  statusFilter.addEventListener("change", () => {
    logStatus = statusFilter.value;
    logPage = 1;
    guard(loadLog);
  });

  const drawLog = (data) => {
    const redeliverFailed = button("Redeliver failed", `deliveries of endpoint ${selected}`, async () => {
      const result = await api("POST", `/webhooks/endpoints/${selected}/redeliver-failed`);
      const n = result.redelivered;
      showNotice(n === 1 ? "1 failed delivery was sent again." : `${n} failed deliveries were sent again.`);
      await loadLog();
    });
    fill(logArea, h("h2", {}, `Deliveries of endpoint ${selected}`),
      h("div", { class: "toolbar" }, field("Status", statusFilter), h("div", { class: "actions" }, redeliverFailed,
        button("Refresh", `deliveries of endpoint ${selected}`, loadLog))),
      table(data.items, [
        ["ID", (d) => d.id],
        ["Event", (d) => h("span", {}, d.event_type, h("br"), h("small", { class: "muted" }, d.event_id))],
        ["Status", (d) => statusBadge(d.status)],
        ["Attempts", (d) => d.attempts],
        ["HTTP", (d) => show(d.last_attempt && d.last_attempt.http_status)],
        ["Latency", (d) => (d.last_attempt && d.last_attempt.latency_ms !== null ? `${d.last_attempt.latency_ms} ms` : "—")],
        ["Answer / error", (d) => answer(d.last_attempt)],
        ["Next attempt", (d) => when(d.next_attempt_at)],
        ["Actions", (d) => h("div", { class: "row-actions" },
          button("Redeliver", `delivery ${d.id}`, async () => {
            await api("POST", `/webhooks/deliveries/${d.id}/redeliver`);
            showNotice(`Delivery ${d.id} was sent again.`);
            await loadLog();
          }),
          button("Details", `of delivery ${d.id}`, () => details(d.id)))],
      ], { empty: "No deliveries.", row: (d) => ({ dataset: { deliveryId: d.id, status: d.status } }) }),
      pager(data, (p) => { logPage = p; guard(loadLog); }),
      h("div", { id: "delivery-details" }));
  };

  const details = async (deliveryId) => {
    const d = await api("GET", `/webhooks/deliveries/${deliveryId}`);
    fill(logArea.querySelector("#delivery-details"), h("h3", {}, `Delivery ${d.id}: every attempt`),
      table(d.attempt_log, [
        ["#", (a) => a.number],
        ["Outcome", (a) => statusBadge(a.outcome)],
        ["Started", (a) => when(a.started_at)],
        ["HTTP", (a) => show(a.http_status)],
        ["Latency", (a) => (a.latency_ms === null ? "—" : `${a.latency_ms} ms`)],
        ["Answer / error", (a) => answer(a)],
      ], { empty: "Not attempted yet." }),
      h("details", {}, h("summary", {}, "Body sent"), h("pre", {}, JSON.stringify(d.payload, null, 2))));
  };

  // Register.
  const url = h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com/hooks/switchboard", autocomplete: "off" });
  const description = h("input", { name: "description", maxlength: 500, autocomplete: "off" });
  const boxes = types.map((t) => h("input", { type: "checkbox", name: "event_types", value: t.name, checked: true }));
  const every = h("input", { type: "checkbox", name: "every_type", value: "*" });
  const submit = h("button", { type: "submit", class: "primary" }, "Register endpoint");
  const form = h("form", { class: "panel", "aria-labelledby": "new-endpoint" },
    h("h2", { id: "new-endpoint" }, "Send events to your systems"),
    h("div", { class: "form-grid" }, field("Endpoint URL", url), field("Description (optional)", description)),
    h("fieldset", { class: "days" }, h("legend", {}, "Events"),
      types.map((t, i) => h("label", { class: "check", title: t.description }, boxes[i], t.name)),
      h("label", { class: "check", title: "every type, including ones added later" }, every, "every type (*)")),
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, () => guard(async () => {
      const chosen = every.checked ? ["*"] : boxes.filter((b) => b.checked).map((b) => b.value);
      const body = { url: url.value.trim(), event_types: chosen };
      if (description.value.trim()) body.description = description.value.trim();
      const created = await api("POST", "/webhooks/endpoints", { body });
      showSecret(created, "Endpoint registered. Its signing secret");
      form.reset();
      await loadEndpoints();
      await openLog(created.id);
    }));
  });

  const refresh = async () => {
    await loadEndpoints();
    await loadLog();
  };

  root.append(h("h2", { class: "page-title" }, "Webhooks"), notices, form, secretArea,
    h("section", { class: "panel", "aria-labelledby": "endpoints-title" },
      h("h2", { id: "endpoints-title" }, "Endpoints"), listArea),
    logArea);
  try {
    await refresh();
  } catch (err) {
    pageError(root, err);
  }
}

function answer(attempt) {
  if (!attempt) return "—";
  const parts = [];
  if (attempt.error) parts.push(h("span", { class: "error-text" }, attempt.error));
  if (attempt.response_snippet) parts.push(h("pre", {}, attempt.response_snippet));
  return parts.length ? parts : "—";
}

function button(label, what, action, cls) {
  const el = h("button", { type: "button", class: cls || false, "aria-label": `${label} ${what}` }, label);
  el.addEventListener("click", () => busy(el, () => guard(action)));
  return el;
}
