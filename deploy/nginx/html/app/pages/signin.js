// Sign in: the token is checked against /api/me before it is kept.

import { ApiError, api, session } from "../api.js";
import { h } from "../dom.js";
import { busy, field, showError } from "../ui.js";

export function render(root, ctx) {
  const input = h("input", {
    type: "password",
    name: "token",
    id: "token",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "sb_…",
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Paste an API token. Business tokens open the business pages (leads, runs, calls, ",
      "schedules, receipts); operator tokens open the operator pages (queues, workers, failed jobs)."),
    field("Token", input, "Create one with: switchboard token create --business-id N (or --operator)"),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    await busy(submit, async () => {
      try {
        const me = await api("GET", "/me", { token });
        session.save(token, me);
        input.value = "";
        ctx.signedIn(ctx.query.get("next"));
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          err.message = `Sign-in refused: ${err.message}`;
        }
        showError(err);
      }
    });
  });
  root.append(form);
  input.focus();
}
