// Daily schedules: create, enable/disable, delete, each one's occurrences, and "check now".

import { api } from "../api.js";
import { fill, h, show, when } from "../dom.js";
import { busy, field, guard, pageError, pager, showNotice, statusBadge, table } from "../ui.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

export async function render(root) {
  let page = 1;
  const listArea = h("div", { id: "schedules-list" });
  const occurrencesArea = h("div", { id: "occurrences", "aria-live": "polite" });

  const load = async () => {
    const data = await api("GET", "/schedules", { query: { page, per_page: 50 } });
    fill(listArea, table(data.items, [
      ["ID", (s) => s.id],
      ["Lead", (s) => s.lead_id],
      ["Local time", (s) => s.local_time],
      ["Time zone", (s) => show(s.timezone)],
      ["Days", (s) => (s.days.length === 7 ? "every day" : s.days.join(", "))],
      ["Enabled", (s) => (s.enabled ? "yes" : "no")],
      ["Next call", (s) => when(s.next_due_at)],
      ["Actions", (s) => h("div", { class: "row-actions" },
        button(s.enabled ? "Disable" : "Enable", `schedule ${s.id}`, async () => {
          await api("PATCH", `/schedules/${s.id}`, { body: { enabled: !s.enabled } });
          await load();
        }),
        button("Occurrences", `of schedule ${s.id}`, () => showOccurrences(s)),
        button("Delete", `schedule ${s.id}`, async () => {
          if (!window.confirm(`Delete schedule ${s.id}? Its lead will no longer be called daily.`)) return;
          await api("DELETE", `/schedules/${s.id}`);
          await load();
        }, "danger"))],
    ], { empty: "No schedules yet." }), pager(data, (p) => { page = p; guard(load); }));
  };

  const showOccurrences = async (schedule) => {
    const data = await api("GET", `/schedules/${schedule.id}/occurrences`, { query: { per_page: 30 } });
    fill(occurrencesArea, h("h3", {}, `Schedule ${schedule.id}: recent days`),
      table(data.items, [
        ["Local date", (o) => o.local_date],
        ["Due", (o) => when(o.due_at)],
        ["Status", (o) => statusBadge(o.status)],
        ["Call job", (o) => show(o.call_job_id)],
        ["Error", (o) => show(o.error)],
      ], { empty: "It has not fired yet." }));
  };

  // Create.
  const lead = h("input", { name: "lead_id", type: "number", min: 1, required: true });
  const time = h("input", { name: "local_time", type: "time", required: true, value: "09:30" });
  const zone = h("input", { name: "timezone", placeholder: "the lead's, else the business's",
    autocomplete: "off" });
  const dayBoxes = DAYS.map((d) => h("input", { type: "checkbox", name: "days", value: d,
    checked: true }));
  const submit = h("button", { type: "submit", class: "primary" }, "Create schedule");
  const form = h("form", { class: "panel", "aria-labelledby": "new-schedule" },
    h("h2", { id: "new-schedule" }, "Call a lead every day"),
    h("div", { class: "form-grid" },
      field("Lead ID", lead), field("Local time", time), field("Time zone (optional)", zone)),
    h("fieldset", { class: "days" }, h("legend", {}, "Days"),
      DAYS.map((d, i) => h("label", { class: "check" }, dayBoxes[i], d))),
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, () => guard(async () => {
      const body = {
        lead_id: Number(lead.value),
        local_time: time.value,
        days: dayBoxes.filter((b) => b.checked).map((b) => b.value),
      };
      if (zone.value.trim()) body.timezone = zone.value.trim();
      const created = await api("POST", "/schedules", { body });
      showNotice(`Schedule ${created.id} created; next call ${when(created.next_due_at)}.`);
      form.reset();
      await load();
    }));
  });

  const trigger = h("button", { type: "button" }, "Check due schedules now");
  trigger.addEventListener("click", () => busy(trigger, () => guard(async () => {
    await api("POST", "/schedules/trigger");
    showNotice("The due check was queued; due calls appear in today's daily run.");
  })));

  root.append(h("h2", { class: "page-title" }, "Schedules"), form,
    h("section", { class: "panel", "aria-labelledby": "schedules-title" },
      h("h2", { id: "schedules-title" }, "All schedules"),
      h("div", { class: "actions" }, trigger), listArea, occurrencesArea));
  try {
    await load();
  } catch (err) {
    pageError(root, err);
  }
}

function button(label, what, action, cls) {
  const el = h("button", { type: "button", class: cls || false, "aria-label": `${label} ${what}` }, label);
  el.addEventListener("click", () => busy(el, () => guard(action)));
  return el;
}
