// The console's entry: routes (history API; nginx answers index.html for every path), the
// navigation, sign-in state, and the last-resort error handlers.

import { onUnauthorized, session } from "./api.js";
import { fill, h } from "./dom.js";
import { hideBanner, showError, showNotice } from "./ui.js";
import * as signin from "./pages/signin.js";
import * as leads from "./pages/leads.js";
import * as runs from "./pages/runs.js";
import * as calls from "./pages/calls.js";
import * as dispositions from "./pages/dispositions.js";
import * as analytics from "./pages/analytics.js";
import * as agent from "./pages/agent.js";
import * as schedules from "./pages/schedules.js";
import * as receipts from "./pages/receipts.js";
import * as webhooks from "./pages/webhooks.js";
import * as queues from "./pages/queues.js";
import * as workers from "./pages/workers.js";
import * as failed from "./pages/failed.js";

// Every page is listed for both roles: the API decides who may see what, and a page refused
// with 403 says why, rather than being hidden without a word.
const PAGES = [
  { path: "/leads", title: "Leads", group: "Business", page: leads },
  { path: "/runs", title: "Runs", group: "Business", page: runs },
  { path: "/calls", title: "Calls", group: "Business", page: calls },
  { path: "/dispositions", title: "Dispositions", group: "Business", page: dispositions },
  { path: "/analytics", title: "Analytics", group: "Business", page: analytics },
  { path: "/agent", title: "Voice agent", group: "Business", page: agent },
  { path: "/schedules", title: "Schedules", group: "Business", page: schedules },
  { path: "/receipts", title: "Receipts", group: "Business", page: receipts },
  { path: "/webhooks", title: "Webhooks", group: "Business", page: webhooks },
  { path: "/ops/queues", title: "Queues", group: "Operator", page: queues },
  { path: "/ops/workers", title: "Workers", group: "Operator", page: workers },
  { path: "/ops/failed", title: "Failed jobs", group: "Operator", page: failed },
];

let leaveCurrentPage = [];

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

function homeFor(me) {
  return me && me.role === "operator" ? "/ops/queues" : "/leads";
}

function route() {
  for (const leave of leaveCurrentPage) leave();
  leaveCurrentPage = [];
  const url = new URL(window.location.href);
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const me = session.me;
  if (path === "/signin" || !session.token) {
    if (path !== "/signin") {
      // Remember where the person was going; sign-in sends them there afterwards.
      history.replaceState(null, "", `/signin?next=${encodeURIComponent(path + url.search)}`);
    }
    return show(signin, "Sign in", new URL(window.location.href));
  }
  if (path === "/") return navigate(homeFor(me), { replace: true });
  const entry = PAGES.find((p) => p.path === path);
  if (!entry) {
    renderChrome(null);
    fill(document.getElementById("page"),
      h("section", { class: "panel" }, h("h2", {}, "Page not found"),
        h("p", {}, `Nothing lives at ${path}. `, h("a", { href: homeFor(me), "data-link": true },
          "Go to the start page"))));
    return undefined;
  }
  return show(entry.page, entry.title, url, entry);
}

function show(page, title, url, entry = null) {
  renderChrome(entry);
  document.title = `${title} · Switchboard`;
  const root = fill(document.getElementById("page"));
  const ctx = {
    query: url.searchParams,
    navigate,
    signedIn,
    onLeave: (fn) => leaveCurrentPage.push(fn),
  };
  Promise.resolve()
    .then(() => page.render(root, ctx))
    .catch(showError);
  root.focus({ preventScroll: true });
}

function renderChrome(current) {
  const me = session.me;
  const nav = document.getElementById("nav");
  const whoami = document.getElementById("whoami");
  if (!me) {
    fill(nav);
    fill(whoami);
    return;
  }
  const groups = ["Business", "Operator"].map((group) =>
    h("div", { class: "nav-group" }, h("span", { class: "nav-title" }, group),
      h("ul", {}, PAGES.filter((p) => p.group === group).map((p) =>
        h("li", {}, h("a", {
          href: p.path,
          "data-link": true,
          "aria-current": current && current.path === p.path ? "page" : false,
        }, p.title))))));
  fill(nav, groups);
  const who = me.business ? `${me.business.name} (business token)` : "operator token";
  fill(whoami, h("span", { class: "muted" }, "Signed in: ", h("strong", {}, who)), " ",
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
}

function signOut() {
  session.clear();
  hideBanner();
  navigate("/signin");
}

// In-app links go through the router; anything else (new tab, other origin) is left alone.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  hideBanner();
  navigate(link.getAttribute("href"));
});

window.addEventListener("popstate", route);
// Errors nobody caught still reach the person, not only the devtools console.
window.addEventListener("error", (event) => showError(event.error || event.message));
window.addEventListener("unhandledrejection", (event) => showError(event.reason));

onUnauthorized((err) => {
  session.clear();
  navigate(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`,
    { replace: true });
  showNotice(`Signed out: ${err.message}. Sign in again.`);
});

function signedIn(next) {
  hideBanner();
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
  navigate(target, { replace: true });
}

route();
