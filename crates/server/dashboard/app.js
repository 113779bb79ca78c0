// The Unavoce dashboard: a small app over the REST API. Pages are routed by the URL
// hash (#/overview, #/customers, #/customers/p-42); every number comes from /api/.

import { stackedArea, PALETTE } from "/assets/charts.js";

const app = document.getElementById("app");

/** Builds an element: h("a", {href: "#"}, "text", child, ...). */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class SignedOut extends Error {}

/** GET (or send) JSON to the API; a 401 means the session is over. */
async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: options.body ? { "Content-Type": "application/json" } : {},
    ...options,
  });
  if (response.status === 401) throw new SignedOut();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body?.error?.message || `${response.status} ${response.statusText}`);
  return body;
}

const number = n => (n ?? 0).toLocaleString();
const when = t => t ? new Date(t).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";

// ---- Channel icons ---------------------------------------------------------------

const ICONS = {
  email: ["#2457c5", "M3 6h18v12H3z M3 6l9 7 9-7"],
  sms: ["#1f9d8b", "M4 5h16v11H9l-5 4z"],
  whatsapp: ["#25a35a", "M12 3a9 9 0 0 0-7.8 13.5L3 21l4.6-1.2A9 9 0 1 0 12 3z"],
  rcs: ["#1f9d8b", "M4 5h16v11H9l-5 4z M8 10h8"],
  push: ["#8b4fc9", "M6 16V11a6 6 0 0 1 12 0v5l2 2H4z M10 21h4"],
  phone: ["#d04a6a", "M5 4h4l2 5-3 2a11 11 0 0 0 5 5l2-3 5 2v4a2 2 0 0 1-2 2A17 17 0 0 1 3 6a2 2 0 0 1 2-2z"],
  web: ["#2b8fd6", "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z M3 12h18 M12 3c3 3 3 15 0 18 M12 3c-3 3-3 15 0 18"],
  app: ["#4f8f2f", "M8 2h8a2 2 0 0 1 2 2v16a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2z M11 18h2"],
  chat: ["#e08a1e", "M4 4h16v12H8l-4 4z"],
  chatbot: ["#e08a1e", "M5 8h14v10H5z M12 4v4 M9 13h.01 M15 13h.01"],
  store: ["#7a6a4f", "M3 9l2-5h14l2 5 M4 9v11h16V9 M9 20v-6h6v6"],
  social: ["#c2497f", "M18 8a3 3 0 1 0-3-3 M6 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z M18 22a3 3 0 1 0 0-6 3 3 0 0 0 0 6z M8.6 13.5l6.8 4 M15.4 6.5l-6.8 4"],
  kiosk: ["#5b6475", "M6 3h12v12H6z M9 21h6 M12 15v6"],
  iot: ["#2b8fd6", "M9 9h6v6H9z M4 12h2 M18 12h2 M12 4v2 M12 18v2"],
  survey: ["#c2b02a", "M9 11l2 2 4-4 M5 4h14v16H5z"],
};

function channelIcon(channel) {
  const [colour, path] = ICONS[channel] || ["#9aa3b5", "M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z"];
  const span = h("span", { class: "icon", style: `--swatch:${colour}`, title: channel || "unknown channel",
    "data-channel": channel || "none" });
  span.innerHTML = `<svg viewBox="0 0 24 24" aria-hidden="true"><path d="${path}"/></svg>`;
  return span;
}

// ---- Sign-in -------------------------------------------------------------------

function signIn(problem) {
  const input = h("input", { type: "password", name: "key", autocomplete: "current-password",
    "aria-label": "Admin key", placeholder: "Admin key", required: true, autofocus: true });
  const message = h("p", { class: "error", role: "alert" }, problem || "");
  const form = h("form", { class: "signin", onsubmit: async event => {
    event.preventDefault();
    try {
      await api("/session", { method: "POST", body: JSON.stringify({ key: input.value }) });
      location.hash = location.hash && location.hash !== "#/" ? location.hash : "#/overview";
      route();
    } catch (e) {
      message.textContent = e instanceof SignedOut ? "That is not the admin key." : e.message;
      input.select();
    }
  } },
    h("h1", {}, "Unavoce"),
    h("p", {}, "Sign in with the admin key (printed when the server starts, kept in the data folder's keys.json)."),
    input, message, h("button", { type: "submit" }, "Sign in"));
  app.replaceChildren(form);
  input.focus();
}

// ---- Layout --------------------------------------------------------------------

const PAGES = [
  ["overview", "Overview"],
  ["customers", "Customers"],
];

function layout(current, ...content) {
  const nav = h("nav", { class: "side", "aria-label": "Sections" },
    h("div", { class: "brand" }, "Unavoce"),
    PAGES.map(([id, label]) => h("a", { href: `#/${id}`, "aria-current": id === current ? "page" : false }, label)),
    h("button", { class: "signout", onclick: async () => {
      await fetch("/session/end", { method: "POST", credentials: "same-origin" });
      signIn();
    } }, "Sign out"));
  const main = h("main", {}, ...content);
  app.replaceChildren(h("div", { class: "shell" }, nav, main));
  return main;
}

/** Marks a page as drawn (the browser test times pages to this). */
function ready(page) {
  app.dataset.ready = page;
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · Unavoce`;
}

// ---- Overview ------------------------------------------------------------------

async function overview() {
  const main = layout("overview", h("h1", {}, "Overview"), h("p", { class: "loading" }, "Loading…"));
  const [stats, activity] = await Promise.all([api("/api/stats"), api("/api/activity?by=channel")]);
  const decisions = stats.decisions || {};
  const tiles = [
    ["events", "Events", stats.events],
    ["people", "People", stats.profiles],
    ["merges", "Profiles merged", stats.merges],
    ["quarantined", "In quarantine", stats.quarantined],
    ["flagged", "Flagged identifiers", stats.flagged_identifiers],
    ["sent", "Messages sent", stats.messages_sent],
    ["suppressed", "Messages suppressed", decisions.suppress],
  ].map(([id, label, value]) => h("div", { class: "tile", "data-tile": id },
    h("div", { class: "value" }, number(value)), h("div", { class: "label" }, label)));
  const chart = h("div", { class: "panel" });
  const draw = async by => {
    const report = by === "channel" ? activity : await api(`/api/activity?by=${by}`);
    chart.replaceChildren(
      h("div", { class: "toggle", role: "group", "aria-label": "Break down by" },
        ["channel", "touchpoint"].map(b => h("button", { type: "button", "aria-pressed": String(b === by),
          onclick: () => draw(b) }, `By ${b}`))),
      report.days.length === 0
        ? h("p", { class: "empty" }, h("strong", {}, "No events yet. "),
            "Send some with the Segment API (POST /v1/batch) or import a file (unavoce import).")
        : stackedArea(report.days, report.series),
      h("div", { class: "legend" }, report.series.map((s, i) =>
        h("span", { style: `--swatch:${PALETTE[i % PALETTE.length]}` }, `${s.name} ${number(s.total)}`))));
  };
  await draw("channel");
  main.replaceChildren(h("h1", {}, "Overview"), h("div", { class: "tiles" }, tiles),
    h("h2", {}, `Events per day (${activity.days[0] || "–"} to ${activity.days.at(-1) || "–"})`), chart);
  ready("overview");
}

// ---- Customers -----------------------------------------------------------------

let lastQuery = "";

async function customers() {
  const input = h("input", { type: "search", value: lastQuery, placeholder: "Search by e-mail, phone, id or name",
    "aria-label": "Search customers", autofocus: true });
  const results = h("ul", { class: "results", "aria-label": "Customers found" });
  const main = layout("customers", h("h1", {}, "Customers"), h("div", { class: "search" }, input), results);
  let timer;
  const search = async () => {
    lastQuery = input.value.trim();
    if (lastQuery.length < 2) {
      results.replaceChildren(h("li", { class: "empty" }, "Type at least two characters of an identifier or a name."));
      return;
    }
    const found = await api(`/api/profiles/search?q=${encodeURIComponent(lastQuery)}&limit=20`);
    results.replaceChildren(...(found.profiles.length === 0
      ? [h("li", { class: "empty" }, `Nobody matches “${lastQuery}”.`)]
      : found.profiles.map(p => h("li", {}, h("a", { href: `#/customers/${p.id}` },
          h("span", {}, p.name || p.identifiers[0]?.value || p.id),
          h("span", { class: "ids" }, p.identifiers.map(i => i.value).slice(0, 3).join(" · "),
            ` · ${number(p.events)} events`))))));
    app.dataset.results = String(found.profiles.length);
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => search().catch(fail), 150); });
  input.addEventListener("keydown", event => {
    if (event.key === "Enter") results.querySelector("a")?.click();
    if (event.key === "ArrowDown") { event.preventDefault(); results.querySelector("a")?.focus(); }
  });
  await search();
  input.focus();
  main.dataset.page = "customers";
  ready("customers");
}

function consentPills(consents) {
  if (!consents.length) return h("span", { class: "empty" }, "No consent recorded.");
  return consents.map(c => h("span", { class: `pill ${c.granted ? "yes" : "no"}`,
    title: `${c.granted ? "given" : "withdrawn"} ${when(c.at)} at ${c.source}` },
    `${c.purpose}${c.channel ? ` · ${c.channel}` : ""}`));
}

async function customer(id) {
  const main = layout("customers", h("p", { class: "loading" }, "Loading…"));
  const [card, timeline] = await Promise.all([
    api(`/api/profiles/${encodeURIComponent(id)}/context`),
    api(`/api/profiles/${encodeURIComponent(id)}/timeline?limit=100`),
  ]);
  const nba = card.next_best_action;
  const cases = card.open_cases.length === 0
    ? h("p", { class: "empty" }, "No open case.")
    : card.open_cases.map(c => h("div", { class: "case", "data-case": c.id },
        h("strong", {}, c.subject || c.id), " ",
        h("span", { class: "pill no" }, `open since ${when(c.opened_at)}`),
        h("div", {}, "Across: ", c.channels.map(ch => [channelIcon(ch), " "])),
        h("ul", {}, c.touches.map(t => h("li", {}, `${when(t.at)} · ${t.event}`,
          t.touchpoint ? ` · ${t.touchpoint}` : "", t.note ? ` — ${t.note}` : "")))));
  const engagement = Object.entries(card.engagement || {});
  const cardPanel = h("section", { class: "panel card", "aria-label": "Context card" },
    h("h2", {}, card.name || "Unnamed customer"),
    h("dl", {},
      h("dt", {}, "Profile"), h("dd", {}, card.profile_id),
      card.identifiers.map(i => [h("dt", {}, i.type), h("dd", {}, i.value)]),
      h("dt", {}, "Stage"), h("dd", {}, card.lifecycle_stage),
      h("dt", {}, "Prefers"), h("dd", {}, card.preferred_channel || "—")),
    h("h2", {}, "Next best action"),
    h("div", { class: "nba" }, h("strong", {}, nba.summary), h("div", {}, nba.reason)),
    h("h2", {}, "Open cases"), cases,
    h("h2", {}, "Consents"), h("div", {}, consentPills(card.consents)),
    engagement.length ? [h("h2", {}, "Engagement"),
      h("dl", {}, engagement.map(([ch, e]) => [h("dt", {}, ch),
        h("dd", {}, `${e.sent} sent · ${e.opened} opened · ${e.clicked} clicked · ${e.replied} replied · ${e.interactions} visits`)]))] : null);
  const items = timeline.timeline;
  const timelinePanel = h("section", { class: "panel", "aria-label": "Timeline" },
    h("h2", {}, `Timeline · ${number(timeline.total)} interactions`),
    items.length === 0 ? h("p", { class: "empty" }, "No interaction yet.") :
      h("ol", { class: "timeline" }, items.map(e => h("li", { "data-channel": e.channel || "none" },
        channelIcon(e.channel), h("time", { datetime: e.at }, when(e.at)),
        h("div", {}, h("div", {}, e.name || e.type),
          h("div", { class: "where" }, [e.touchpoint, e.channel].filter(Boolean).join(" · ") || "—"))))));
  main.replaceChildren(h("p", {}, h("a", { href: "#/customers" }, "← Customers")),
    h("div", { class: "person" }, cardPanel, timelinePanel));
  ready("customer");
}

// ---- Routing -------------------------------------------------------------------

function fail(error) {
  if (error instanceof SignedOut) return signIn();
  const main = app.querySelector("main") || app;
  main.append(h("p", { class: "error", role: "alert" }, `Could not load this page: ${error.message}`));
}

async function route() {
  const [, page = "overview", id] = location.hash.replace(/^#/, "").split("/");
  delete app.dataset.ready;
  try {
    if (page === "customers" && id) await customer(decodeURIComponent(id));
    else if (page === "customers") await customers();
    else await overview();
  } catch (error) {
    fail(error);
  }
}

document.addEventListener("keydown", event => {
  if (event.key === "/" && document.activeElement?.tagName !== "INPUT") {
    event.preventDefault();
    location.hash = "#/customers";
  }
});
window.addEventListener("hashchange", route);
route();
