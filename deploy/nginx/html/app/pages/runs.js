// Runs: create one, start/pause/resume/cancel, and live progress bars (polled every second
// while a run is dialing or has calls still in progress).

import { api } from "../api.js";
import { duration, fill, h, when } from "../dom.js";
import { busy, field, guard, pageError, pager, poll, progressBar, showNotice, statusBadge, table } from "../ui.js";

// The buttons a run shows are the actions the API says its status allows (run.actions, from
// the server's own transition table); the API checks again (409 invalid_state otherwise).
const LABELS = { start: "Start", pause: "Pause", resume: "Resume", cancel: "Cancel" };

export async function render(root, ctx) {
  let page = 1;
  let stopPolling = null;
  const listArea = h("div", { id: "runs-list" });
  const notices = h("div", { id: "run-notices" });

  // A run is live while it dials, or while calls it started are still ringing or talking.
  const isLive = (run) => run.status === "running" || (run.progress && run.progress.active_calls > 0);

  let shown = "";
  const load = async () => {
    const data = await api("GET", "/runs", { query: { page, per_page: 20 } });
    // Redrawn only when something changed: a button is not replaced under a pointer for nothing.
    const text = JSON.stringify(data);
    if (text !== shown) draw(data);
    shown = text;
    // Poll only while something moves: a page left open on finished runs costs nothing.
    if (data.items.some(isLive)) {
      if (!stopPolling) stopPolling = poll(async () => {
        await load();
        return stopPolling !== null;
      }, 1000);
    } else if (stopPolling) {
      stopPolling();
      stopPolling = null;
    }
  };
  ctx.onLeave(() => stopPolling && stopPolling());

  const draw = (data) => {
    // A run that paused itself says why until someone resumes it.
    fill(notices, data.items.filter((r) => r.paused_reason).map((r) =>
      h("p", { class: "state state-unavailable", role: "status", dataset: { runId: r.id } },
        `Run ${r.id} (${r.name}) paused itself: ${r.paused_reason}. Resume it once fixed.`)));
    fill(listArea, table(data.items, [
      ["ID", (r) => r.id],
      ["Name", (r) => h("a", { href: `/calls?run_id=${r.id}`, "data-link": true,
        title: "This run's calls" }, r.name)],
      ["Status", (r) => statusBadge(r.status)],
      ["Progress", (r) => h("div", {},
        progressBar(r.progress.percent, `Run ${r.id} progress`, { status: r.status }),
        h("small", { class: "muted" }, `${r.progress.done} of ${r.progress.total} leads done`))],
      ["Active calls", (r) => r.progress.active_calls],
      ["Outcomes", (r) => outcomes(r.progress.by_status)],
      ["ETA", (r) => (r.progress.eta_s === null ? "—" : duration(r.progress.eta_s))],
      ["Started", (r) => when(r.started_at)],
      ["Finished", (r) => when(r.finished_at)],
      ["Analytics", (r) => h("a", { href: `/analytics?run_id=${r.id}`, "data-link": true,
        "aria-label": `Analytics of run ${r.id}` }, "Figures")],
      ["Actions", (r) => actions(r)],
    ], { empty: "No runs yet: create one above.", row: (r) => ({ dataset: { runId: r.id, status: r.status } }) }),
    pager(data, (p) => { page = p; guard(load); }));
  };

  const actions = (run) => h("div", { class: "row-actions" },
    run.actions.map((action) => {
      const button = h("button", {
        type: "button",
        class: action === "cancel" ? "danger" : action === "start" ? "primary" : false,
        "aria-label": `${LABELS[action]} run ${run.id}`,
      }, LABELS[action]);
      button.addEventListener("click", () => busy(button, () => guard(async () => {
        if (action === "cancel" && !window.confirm(`Cancel run ${run.id}? Queued calls will not be placed.`)) {
          return;
        }
        await api("POST", `/runs/${run.id}/${action}`);
        await load();
      })));
      return button;
    }));

  root.append(h("h2", { class: "page-title" }, "Runs"), notices, createForm(async (run) => {
    showNotice(`Run ${run.id} created with ${run.progress.total} leads. Start it when ready.`);
    page = 1;
    await load();
  }), h("section", { class: "panel", "aria-labelledby": "runs-title" },
    h("h2", { id: "runs-title" }, "All runs"), listArea));
  try {
    await load();
  } catch (err) {
    pageError(root, err);
  }
}

function outcomes(byStatus) {
  const parts = Object.entries(byStatus || {}).filter(([, n]) => n > 0)
    .map(([status, n]) => `${status.replaceAll("_", " ")} ${n}`);
  return parts.length ? parts.join(", ") : "—";
}

function createForm(created) {
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const selection = h("select", { name: "selection" },
    h("option", { value: "all" }, "All leads"),
    h("option", { value: "csv" }, "Leads imported from CSV"),
    h("option", { value: "api" }, "Leads added by hand or API"),
    h("option", { value: "call" }, "Leads created from inbound calls"));
  const search = h("input", { name: "q", autocomplete: "off", placeholder: "optional" });
  const attempts = h("input", { name: "max_attempts", type: "number", min: 1, max: 10, value: 1 });
  const retry = h("input", { name: "retry_delay_s", type: "number", min: 0, max: 604800, value: 3600 });
  const start = h("input", { name: "window_start", type: "time", value: "08:00", required: true });
  const end = h("input", { name: "window_end", type: "time", value: "21:00", required: true });
  const record = h("input", { name: "record", type: "checkbox" });
  const detection = h("select", { name: "amd_detection" },
    [["off", "off"], ["Enable", "Enable (fast verdict)"], ["DetectMessageEnd", "DetectMessageEnd (waits for the beep)"]]
      .map(([value, text]) => h("option", { value }, text)));
  const machineAction = h("select", { name: "amd_action" },
    [["hang_up", "hang up"], ["voicemail", "leave a voicemail after the beep"], ["agent", "let the agent talk"]]
      .map(([value, text]) => h("option", { value }, text)));
  const voicemail = h("input", { name: "voicemail_text", maxlength: 1000, placeholder: "spoken by <Say>" });
  const machineRetry = h("input", { name: "machine_retry_after_s", type: "number", min: 60, placeholder: "not again" });
  const machineCounts = h("input", { name: "machine_counts_as_attempt", type: "checkbox", checked: true });
  // Compliance limits (the API's run.compliance), in percent and minutes here. The abandonment
  // limit may be lowered, never raised: 3 % is the legal limit (the input stops there too).
  const abandonLimit = h("input", { name: "max_abandon_percent", type: "number", min: 0, max: 3, step: 0.1, value: 3, required: true });
  const failureLimit = h("input", { name: "max_failure_percent", type: "number", min: 1, max: 100, step: 1, value: 50, required: true });
  const failureWindow = h("input", { name: "failure_window_min", type: "number", min: 1, max: 1440, value: 10, required: true });
  const failureSample = h("input", { name: "min_failure_sample", type: "number", min: 1, max: 10000, value: 10, required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Create run");
  const form = h("form", { class: "panel", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "Create a run"),
    h("p", { class: "muted" }, "One call job per selected lead; nothing is dialed until you start it."),
    h("div", { class: "form-grid" },
      field("Name", name),
      field("Leads", selection),
      field("Name or phone contains", search),
      field("Attempts per lead", attempts, "busy and no-answer are retried up to this"),
      field("Retry after (seconds)", retry),
      field("Calling window from", start, "in each lead's time zone"),
      field("Calling window until", end),
      field("Record calls", record, "dual channel; kept for the retention period"),
      field("Answering-machine detection", detection),
      field("A machine gets", machineAction, "a fax is always hung up on"),
      field("Voicemail text", voicemail, "needs DetectMessageEnd"),
      field("Call machines again after (seconds)", machineRetry),
      field("A machine counts as an attempt", machineCounts),
      field("Pause before abandoned calls pass (%)", abandonLimit, "30 days, answered by a person; at most 3 (the legal limit)"),
      field("Pause when provider failures pass (%)", failureLimit),
      field("… of the calls ended in the last (minutes)", failureWindow),
      field("… once at least this many calls ended", failureSample)),
    h("div", { class: "actions" }, submit));
  const amdPolicy = () => {
    const policy = { detection: detection.value, action: machineAction.value,
      counts_as_attempt: machineCounts.checked };
    if (voicemail.value.trim()) policy.voicemail_text = voicemail.value.trim();
    if (machineRetry.value) policy.retry_after_s = Number(machineRetry.value);
    return policy;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, () => guard(async () => {
      const filter = {};
      if (selection.value !== "all") filter.source = selection.value;
      if (search.value.trim()) filter.q = search.value.trim();
      const run = await api("POST", "/runs", {
        body: {
          name: name.value.trim(),
          filter,
          max_attempts: Number(attempts.value),
          retry_delay_s: Number(retry.value),
          window: { start: start.value, end: end.value },
          record: record.checked,
          amd: amdPolicy(),
          compliance: {
            max_abandon_rate: Number(abandonLimit.value) / 100,
            max_failure_rate: Number(failureLimit.value) / 100,
            failure_window_s: Number(failureWindow.value) * 60,
            min_failure_sample: Number(failureSample.value),
          },
        },
      });
      form.reset();
      await created(run);
    }));
  });
  return form;
}
