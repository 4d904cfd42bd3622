// Agent: the voice agent that answers this business's calls (GET/PUT /api/agent). The model
// key is write-only: the page shows whether one is set, never the key.

import { api } from "../api.js";
import { fill, h, when } from "../dom.js";
import { busy, field, guard, pageError, showNotice } from "../ui.js";

const KINDS = [
  ["keypad", "Keypad (no model): greeting, 1 callback, 2 opt-out"],
  ["realtime", "Speech-to-speech model (realtime)"],
  ["cascaded", "Speech-to-text, chat model, text-to-speech"],
];
const TOOLS = ["update_lead", "request_callback", "opt_out", "transfer", "hang_up",
  "set_disposition"];

export async function render(root) {
  const area = h("div", { id: "agent-settings" });
  root.append(h("h2", { class: "page-title" }, "Voice agent"), h("section", { class: "panel" }, area));
  try {
    fill(area, form(await api("GET", "/agent")));
  } catch (err) {
    pageError(root, err);
  }

  function form(settings) {
    const kind = h("select", { name: "kind" }, KINDS.map(([value, label]) =>
      h("option", { value, selected: value === settings.kind }, label)));
    const model = h("input", { name: "model", maxlength: 100, value: settings.model,
      placeholder: "gpt-realtime" });
    const voice = h("input", { name: "voice", maxlength: 40, value: settings.voice,
      placeholder: "alloy" });
    const instructions = h("textarea", { name: "instructions", maxlength: 20000, rows: 6 },
      settings.instructions);
    const transfer = h("input", { name: "transfer_number", value: settings.transfer_number || "",
      placeholder: "+14155550199" });
    const key = h("input", { name: "api_key", type: "password", autocomplete: "off",
      placeholder: settings.api_key_set ? "a key is set (type to replace it)" : "none: the deployment's" });
    const tools = TOOLS.map((name) => h("input", { type: "checkbox", name: "tools", value: name,
      checked: settings.tools.includes(name) }));
    const save = h("button", { type: "submit" }, "Save");
    const removeKey = h("button", { type: "button", disabled: !settings.api_key_set }, "Remove key");
    const el = h("form", { class: "stack" },
      settings.kind === "default"
        ? h("p", { class: "hint" }, "Nothing chosen yet: the deployment's default agent answers.")
        : h("p", { class: "hint" }, `Saved ${when(settings.updated_at)}.`),
      field("Kind", kind), field("Model", model), field("Voice", voice),
      field("Instructions", instructions, "What the model is told before every call."),
      h("fieldset", {}, h("legend", {}, "Actions the model may take"),
        tools.map((box) => h("label", { class: "check" }, box, " ", box.value))),
      field("Transfer number", transfer, 'Where "transfer to a person" goes.'),
      field("Model API key", key, "Stored encrypted; never shown again."),
      h("div", { class: "toolbar" }, save, removeKey));
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = {
        kind: kind.value, model: model.value, voice: voice.value,
        instructions: instructions.value, transfer_number: transfer.value || null,
        tools: tools.filter((box) => box.checked).map((box) => box.value),
      };
      if (key.value) body.api_key = key.value;
      guard(() => busy(save, async () => {
        fill(area, form(await api("PUT", "/agent", { body })));
        showNotice("Voice agent saved.");
      }));
    });
    removeKey.addEventListener("click", () => guard(() => busy(removeKey, async () => {
      fill(area, form(await api("PUT", "/agent", { body: { api_key: null } })));
      showNotice("Model key removed.");
    })));
    return el;
  }
}
