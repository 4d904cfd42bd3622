// Following a BackgroundJob (CSV import, receipts sync): a progress bar fed by /api/jobs/{id}.

import { api } from "./api.js";
import { fill, h, show, when } from "./dom.js";
import { poll, progressBar, statusBadge } from "./ui.js";

const FINAL = new Set(["succeeded", "failed"]);

/**
 * Render `job` into `container` and poll it every second until it is final; `onFinal(job)` is
 * then called once. Returns a stop function (the page calls it when it is left).
 */
export function followJob(container, job, { title, onFinal, describeResult } = {}) {
  const render = (current) => {
    const percent = current.status === "succeeded" ? 100 : current.progress && current.progress.percent;
    const { done, total } = current.progress || {};
    fill(
      container,
      h(
        "div",
        { class: "job", dataset: { jobId: current.id, status: current.status } },
        h("div", { class: "job-head" },
          h("strong", {}, `${title || current.kind} — job ${current.id}`), " ",
          statusBadge(current.status)),
        progressBar(percent, `${title || current.kind} progress`, { status: current.status }),
        h("p", { class: "muted" },
          total ? `${done} of ${total} done` : current.status === "queued" ? "waiting for a worker" : "",
          current.finished_at ? ` · finished ${when(current.finished_at)}` : ""),
        current.error
          ? h("p", { class: "error-text" },
            `Failed: ${current.error.message} (${current.error.code})`)
          : null,
        current.result && FINAL.has(current.status)
          ? (describeResult ? describeResult(current.result) : h("pre", {}, show(current.result)))
          : null,
      ),
    );
  };
  render(job);
  if (FINAL.has(job.status)) {
    if (onFinal) onFinal(job);
    return () => {};
  }
  return poll(async () => {
    const current = await api("GET", `/jobs/${job.id}`);
    render(current);
    if (FINAL.has(current.status)) {
      if (onFinal) onFinal(current);
      return false;
    }
    return true;
  }, 1000);
}
