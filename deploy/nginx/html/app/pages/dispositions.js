// Dispositions: the business's list of how a call went, the outcomes that set each by rule,
// and what each does to the lead (retry after hours, never again, move to another run).
// An operator disposes a call on the Calls page.

import { api } from "../api.js";
import { fill, h, show } from "../dom.js";
import { busy, field, guard, pageError, showNotice, table } from "../ui.js";

const OUTCOMES = ["completed", "machine", "fax", "busy", "no-answer", "failed", "canceled"];
const ACTIONS = [
  ["none", "nothing"],
  ["retry", "call again after some hours"],
  ["never", "never call again (do-not-call list)"],
  ["move", "move the lead to another run"],
];

function whatItDoes(d) {
  if (d.action === "retry") return `call again after ${d.retry_after_h} h`;
  if (d.action === "never") return "never call again";
  if (d.action === "move") return d.move_to_run_id ? `move to run ${d.move_to_run_id}` : "move (run deleted)";
  return "nothing";
}

export async function render(root) {
  const listArea = h("div", { id: "dispositions-list" });

  const load = async () => {
    const { items } = await api("GET", "/dispositions");
    fill(listArea, table(items, [
      ["Code", (d) => h("code", {}, d.code)],
      ["Label", (d) => show(d.label)],
      ["Set by rule on", (d) => show(d.outcomes)],
      ["Then", (d) => whatItDoes(d)],
      ["Actions", (d) => h("button", {
        type: "button", class: "danger", "aria-label": `Delete disposition ${d.code}`,
        onclick: () => guard(async () => {
          if (!window.confirm(`Delete disposition ${d.code}? Calls keep it; no rule sets it again.`)) return;
          await api("DELETE", `/dispositions/${d.id}`);
          await load();
        }),
      }, "Delete")],
    ], { empty: "No dispositions yet: add one above.",
      row: (d) => ({ dataset: { code: d.code, action: d.action } }) }));
  };

  const code = h("input", { name: "code", required: true, maxlength: 32, pattern: "[a-z0-9_]+",
    placeholder: "callback" });
  const label = h("input", { name: "label", maxlength: 100, placeholder: "Call back later" });
  const outcomes = h("fieldset", { class: "checks" }, h("legend", {}, "Set by rule on"),
    OUTCOMES.map((o) => h("label", {}, h("input", { type: "checkbox", name: "outcome", value: o }), ` ${o}`)));
  const action = h("select", { name: "action" },
    ACTIONS.map(([value, text]) => h("option", { value }, text)));
  const hours = h("input", { name: "retry_after_h", type: "number", min: 1, max: 720, value: 24 });
  const runId = h("input", { name: "move_to_run_id", type: "number", min: 1 });
  const submit = h("button", { type: "submit", class: "primary" }, "Add disposition");
  const form = h("form", { class: "toolbar", id: "disposition-form" },
    field("Code", code, "what calls hold"), field("Label", label), outcomes,
    field("Then", action), field("Hours (retry)", hours), field("Run (move)", runId), submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guard(() => busy(submit, async () => {
      const body = {
        code: code.value.trim(),
        label: label.value.trim(),
        outcomes: [...outcomes.querySelectorAll("input:checked")].map((i) => i.value),
        action: action.value,
      };
      if (action.value === "retry") body.retry_after_h = Number(hours.value);
      if (action.value === "move") body.move_to_run_id = Number(runId.value);
      await api("POST", "/dispositions", { body });
      showNotice(`Disposition ${body.code} added.`);
      form.reset();
      await load();
    }));
  });

  root.append(h("h2", { class: "page-title" }, "Dispositions"),
    h("section", { class: "panel" }, form), h("section", { class: "panel" }, listArea));
  try {
    await load();
  } catch (err) {
    pageError(root, err);
  }
}
