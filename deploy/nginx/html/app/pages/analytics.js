// Analytics: a run's figures (or every run's, for the last 30 days) computed by the API from
// the calls' rows, with a plain SVG chart per day: attempts, split into humans, machines, fax
// and not answered. /analytics?run_id=ID opens a run's.

import { api } from "../api.js";
import { duration, fill, h, show } from "../dom.js";
import { field, guard, pageError, table } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";
const SERIES = [
  ["humans", "Humans", "#2da44e"],
  ["machines", "Machines", "#bf8700"],
  ["fax", "Fax", "#8250df"],
  ["unanswered", "Not answered", "#afb8c1"],
];

function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child);
  return element;
}

function percent(rate) {
  return rate === null ? "—" : `${(rate * 100).toFixed(1)} %`;
}

// One stacked bar per day; each segment says what it counts (a <title> is its tooltip).
export function dayChart(days) {
  if (days.length === 0) return h("p", { class: "empty" }, "No calls yet.");
  const width = 640, height = 200, pad = 28;
  const most = Math.max(...days.map((d) => d.attempts), 1);
  const step = (width - pad) / days.length;
  const bar = Math.max(Math.min(step * 0.7, 48), 2);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 24}`, class: "chart", role: "img",
    "aria-label": `Calls per day, ${days.length} days` });
  chart.append(svg("line", { x1: pad, y1: height, x2: width, y2: height, stroke: "#8c959f" }),
    svg("text", { x: 0, y: 12, "font-size": 11 }, String(most)));
  days.forEach((day, i) => {
    const x = pad + i * step + (step - bar) / 2;
    let y = height;
    const values = { ...day, unanswered: day.attempts - day.answered };
    for (const [key, label, color] of SERIES) {
      const size = ((values[key] || 0) / most) * (height - 16);
      if (size <= 0) continue;
      y -= size;
      chart.append(svg("rect", { x, y, width: bar, height: size, fill: color, "data-series": key },
        svg("title", {}, `${day.date}: ${values[key]} ${label.toLowerCase()}`)));
    }
    chart.append(svg("text", { x: x + bar / 2, y: height + 16, "font-size": 10, "text-anchor": "middle" },
      day.date.slice(5)));
  });
  const legend = h("ul", { class: "legend" }, SERIES.map(([, label, color]) =>
    h("li", {}, svgSwatch(color), ` ${label}`)));
  return h("figure", { class: "chart-figure", id: "day-chart" }, chart, legend);
}

function svgSwatch(color) {
  return svg("svg", { width: 10, height: 10, "aria-hidden": "true" },
    svg("rect", { width: 10, height: 10, fill: color }));
}

function totalsList(t, currency) {
  const rows = [
    ["Attempts", t.attempts], ["Answered", t.answered], ["Answer rate", percent(t.answer_rate)],
    ["Humans", t.humans], ["Machines", t.machines], ["Machine rate", percent(t.machine_rate)],
    ["Fax", t.fax], ["Abandoned", `${t.abandoned} (${percent(t.abandon_rate)} of calls judged)`],
    ["Talk time", duration(t.talk_time_s)],
    ["Cost estimate", `${t.cost_estimate.toFixed(4)} ${currency} (${t.priced_calls} calls priced)`],
    ["Dispositions", show(t.dispositions)],
  ];
  return h("dl", { class: "kv", id: "analytics-totals" },
    rows.map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { figure: k } }, String(v))]));
}

export async function render(root, ctx) {
  const area = h("div", { id: "analytics" });
  const runInput = h("input", { name: "run_id", type: "number", min: 1,
    value: ctx.query.get("run_id") || "", placeholder: "every run" });
  const form = h("form", { class: "toolbar" }, field("Run", runInput, "empty: the last 30 days"),
    h("button", { type: "submit" }, "Show"));

  const load = async () => {
    const runId = runInput.value;
    const data = runId ? await api("GET", `/runs/${runId}/analytics`)
      : await api("GET", "/analytics/daily", { query: { days: 30 } });
    fill(area,
      h("h2", {}, runId ? `Run ${runId}` : "Every run, last 30 days"),
      totalsList(data.totals, data.currency),
      dayChart(data.days),
      table(data.days, [
        ["Day", (d) => d.date], ["Attempts", (d) => d.attempts],
        ["Answer rate", (d) => percent(d.answer_rate)], ["Machine rate", (d) => percent(d.machine_rate)],
        ["Talk time", (d) => duration(d.talk_time_s)], ["Cost", (d) => d.cost_estimate.toFixed(4)],
        ["Dispositions", (d) => show(d.dispositions)],
      ], { empty: "No calls yet." }));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = runInput.value ? `?run_id=${encodeURIComponent(runInput.value)}` : "";
    history.replaceState(null, "", `/analytics${query}`);
    guard(load);
  });

  root.append(h("h2", { class: "page-title" }, "Analytics"),
    h("section", { class: "panel" }, form), h("section", { class: "panel" }, area));
  try {
    await load();
  } catch (err) {
    pageError(root, err);
  }
}
