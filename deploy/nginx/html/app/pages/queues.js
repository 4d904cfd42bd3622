// Operator: every queue's depth (ready, delayed, dead letters), refreshed every 2 s.

import { h } from "../dom.js";
import { keyValues, liveView, table } from "./ops.js";

export function render(root, ctx) {
  return liveView(root, ctx, {
    title: "Queues",
    path: "/admin/queues",
    intro: "Messages waiting per queue. Dead letters are listed on the Failed jobs page.",
    view: (data) => [
      keyValues(data),
      table(data.queues, null, { empty: "No queues reported." }),
      h("p", {}, h("a", { href: "/ops/failed", "data-link": true }, "Failed jobs →")),
    ],
  });
}
