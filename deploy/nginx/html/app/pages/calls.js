// Calls: the call log, filtered by run, lead and status; a call's transcript (both sides,
// timestamped) and what its voice agent did, under "Transcript"; an operator's disposition
// (one of the business's, from the Dispositions page) under "Disposition".

import { api, download } from "../api.js";
import { fill, h, show, when } from "../dom.js";
import { busy, field, guard, pageError, pager, showNotice, statusBadge, table } from "../ui.js";

const STATUSES = ["queued", "initiated", "ringing", "in-progress", "completed", "busy",
  "no-answer", "failed", "canceled"];

function agentOutcome(call) {
  const parts = [];
  if (call.transferred_to) parts.push(`transferred (${call.transfer_mode}) to ${call.transferred_to}`);
  if (call.agent_error) parts.push(`fell back: ${call.agent_error}`);
  return parts.length ? parts.join("; ") : "—";
}

// The disposition as a menu of the business's codes; choosing one sets it (the worker then
// recycles the lead as the disposition says, once the call has ended).
function dispositionMenu(call, codes) {
  const options = [...new Set([...codes, call.disposition].filter(Boolean))];
  const select = h("select", { "aria-label": `Disposition of call ${call.id}`,
    dataset: { callId: call.id } },
  h("option", { value: "" }, "—"),
  options.map((c) => h("option", { value: c, selected: c === call.disposition }, c)));
  select.addEventListener("change", () => guard(async () => {
    if (!select.value) return;
    const updated = await api("PUT", `/calls/${call.id}/disposition`, { body: { code: select.value } });
    source.textContent = updated.disposition_source;
  }));
  const source = h("small", { class: "muted" }, call.disposition_source || "");
  return h("span", {}, select, " ", source);
}

// A recording is downloaded with the token (a plain link would not send it).
function recordingCell(call) {
  const r = call.recording;
  if (!r) return "—";
  if (!r.available) return r.expired_at ? `deleted ${when(r.expired_at)}` : "not fetched yet";
  const seconds = r.duration_ms === null ? "" : ` (${Math.round(r.duration_ms / 1000)} s)`;
  return h("button", { type: "button", class: "link", "aria-label": `Download the recording of call ${call.id}`,
    title: `SHA-256 ${r.sha256}`, onclick: () => guard(() => download(`/calls/${call.id}/recording`, `call-${call.id}.wav`)) },
  `Download${seconds}`);
}

// How long the business keeps recordings (an hourly job deletes older ones).
async function retentionForm() {
  const current = await api("GET", "/recordings/settings");
  const days = h("input", { name: "retention_days", type: "number", min: 1, max: 3650,
    placeholder: "kept", value: current.retention_days ?? "" });
  const save = h("button", { type: "submit" }, "Save retention");
  const form = h("form", { class: "toolbar", id: "retention-form" },
    field("Keep recordings (days)", days, "empty: kept"), save);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guard(() => busy(save, async () => {
      const body = { retention_days: days.value ? Number(days.value) : null };
      const saved = await api("PUT", "/recordings/settings", { body });
      showNotice(saved.retention_days === null ? "Recordings are kept."
        : `Recordings are kept ${saved.retention_days} days.`);
    }));
  });
  return form;
}

// The transcript is read when asked for: the list stays one request per page.
function transcriptToggle(call) {
  const body = h("div", { class: "transcript" });
  const details = h("details", { class: "transcript-toggle" }, h("summary", {}, "Show"), body);
  details.addEventListener("toggle", () => {
    if (!details.open || body.dataset.loaded) return;
    body.dataset.loaded = "yes";
    guard(async () => {
      const detail = await api("GET", `/calls/${call.id}`);
      fill(body, detail.transcript.length === 0
        ? h("p", { class: "empty" }, "Nothing was said on this call.")
        : h("ol", { class: "transcript-lines" }, detail.transcript.map((line) =>
          h("li", { class: `transcript-${line.role}` },
            h("time", { datetime: line.at }, when(line.at)), " ",
            h("strong", {}, `${line.role}:`), " ", line.text))));
    });
  });
  return details;
}

export async function render(root, ctx) {
  const filters = {
    run_id: ctx.query.get("run_id") || "",
    lead_id: ctx.query.get("lead_id") || "",
    status: ctx.query.get("status") || "",
    page: 1,
  };
  const listArea = h("div", { id: "calls-list" });

  const load = async () => {
    const [data, listed] = await Promise.all([
      api("GET", "/calls", { query: { ...filters, per_page: 50 } }),
      api("GET", "/dispositions"),
    ]);
    const codes = listed.items.map((d) => d.code);
    fill(listArea, table(data.items, [
      ["ID", (c) => c.id],
      ["Run", (c) => show(c.run_id)],
      ["Lead", (c) => show(c.lead_id)],
      ["Direction", (c) => c.direction],
      ["To", (c) => show(c.to)],
      ["Attempt", (c) => c.attempt],
      ["Status", (c) => statusBadge(c.status)],
      ["Answered by", (c) => show(c.answered_by)],
      ["Duration", (c) => (c.duration_s === null ? "—" : `${c.duration_s} s`)],
      ["Error", (c) => (c.error ? `${c.error.message || ""} (${c.error.code})` : "—")],
      ["Created", (c) => when(c.created_at)],
      ["Ended", (c) => when(c.ended_at)],
      ["Disposition", (c) => dispositionMenu(c, codes)],
      ["Agent", (c) => agentOutcome(c)],
      ["Recording", (c) => recordingCell(c)],
      ["Transcript", (c) => transcriptToggle(c)],
    ], { empty: "No calls match." }),
    pager(data, (p) => { filters.page = p; guard(load); }));
  };

  const runInput = h("input", { name: "run_id", type: "number", min: 1, value: filters.run_id });
  const leadInput = h("input", { name: "lead_id", type: "number", min: 1, value: filters.lead_id });
  const statusSelect = h("select", { name: "status" }, h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const form = h("form", { class: "toolbar" },
    field("Run", runInput), field("Lead", leadInput), field("Status", statusSelect),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(filters, {
      run_id: runInput.value, lead_id: leadInput.value, status: statusSelect.value, page: 1,
    });
    // Keep the filter in the address, so the view can be bookmarked or shared.
    const query = new URLSearchParams(
      Object.entries(filters).filter(([k, v]) => v && k !== "page"));
    history.replaceState(null, "", `/calls${query.toString() ? `?${query}` : ""}`);
    guard(load);
  });

  const retentionArea = h("div", { id: "retention" });
  root.append(h("h2", { class: "page-title" }, "Calls"),
    h("section", { class: "panel" }, form, listArea), h("section", { class: "panel" }, retentionArea));
  try {
    await load();
    fill(retentionArea, await retentionForm());
  } catch (err) {
    pageError(root, err);
  }
}
