// Operator: live workers (from their heartbeats), refreshed every 2 s.

import { keyValues, liveView, table } from "./ops.js";

export function render(root, ctx) {
  return liveView(root, ctx, {
    title: "Workers",
    path: "/admin/workers",
    intro: "Worker processes with a live heartbeat; one that stops beating disappears here.",
    view: (data) => [
      keyValues(data),
      table(data.workers, null, { empty: "No worker is running." }),
    ],
  });
}
