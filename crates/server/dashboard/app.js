// The Unavoce dashboard: a small app over the REST API. Pages are routed by the URL
// hash (#/overview, #/customers, #/customers/p-42); every number comes from /api/.

import { stackedArea, PALETTE } from "/assets/charts.js";
import { app, h, api, SignedOut, number, when, channelIcon, fill } from "/assets/ui.js";
import * as touchpoints from "/assets/touchpoints.js";
import * as kpis from "/assets/kpis.js";
import * as engagement from "/assets/engagement.js";
import * as quality from "/assets/quality.js";
import * as audit from "/assets/audit.js";

/** Pages drawn by their own module: id, menu label, module. */
const MODULES = { touchpoints, kpis, engagement, quality, audit };

// ---- Who is signed in -------------------------------------------------------------

/** The signed-in key's name, role and the routes it may use (from /api/me). */
let me = null;

async function who() {
  me ||= await api("/api/me");
  return me;
}

/** Whether the signed-in key may use a route ("GET /api/census"). */
const may = route => Boolean(me?.routes.includes(route));

// ---- Sign-in -------------------------------------------------------------------

function signIn(problem) {
  me = null;
  const input = h("input", { type: "password", name: "key", autocomplete: "current-password",
    "aria-label": "API key", placeholder: "API key", required: true, autofocus: true });
  const message = h("p", { class: "error", role: "alert" }, problem || "");
  const form = h("form", { class: "signin", onsubmit: async event => {
    event.preventDefault();
    try {
      await api("/session", { method: "POST", body: JSON.stringify({ key: input.value }) });
      location.hash = location.hash && location.hash !== "#/" ? location.hash : "#/overview";
      route();
    } catch (e) {
      message.textContent = e instanceof SignedOut
        ? "That is not the admin key nor another API key (or it was revoked)." : e.message;
      input.select();
    }
  } },
    h("h1", {}, "Unavoce"),
    h("p", {}, "Sign in with an API key: the admin key (printed when the server starts, kept in the data folder's keys.json) or a key made with unavoce keys create. You see what its role may use."),
    input, message, h("button", { type: "submit" }, "Sign in"));
  fill(app, form);
  input.focus();
}

// ---- Layout --------------------------------------------------------------------

/** Pages: id, menu label, the route a key must be allowed to see it. */
const PAGES = [
  ["overview", "Overview", "GET /api/stats"],
  ["customers", "Customers", "GET /api/profiles/search"],
  ["touchpoints", "Touchpoints and census", "GET /api/census"],
  ["kpis", "Journeys and KPIs", "GET /api/kpis/touchpoints"],
  ["engagement", "Engagement", "GET /api/decisions"],
  ["quality", "Data quality", "GET /api/quarantine"],
  ["audit", "Audit log", "GET /api/audit"],
];

const allowed = id => PAGES.some(([page, , needs]) => page === id && may(needs));

function layout(current, ...content) {
  const nav = h("nav", { class: "side", "aria-label": "Sections" },
    h("div", { class: "brand" }, "Unavoce"),
    PAGES.filter(([id]) => allowed(id)).map(([id, label]) =>
      h("a", { href: `#/${id}`, "aria-current": id === current ? "page" : false }, label)),
    h("div", { class: "whoami muted small", "data-role": me.role },
      `${me.name} · ${me.role}${me.people === "masked" ? " (people masked)" : ""}`),
    h("button", { class: "signout", onclick: async () => {
      await fetch("/session/end", { method: "POST", credentials: "same-origin" });
      signIn();
    } }, "Sign out"));
  const main = h("main", {}, ...content);
  const footer = h("footer", { class: "muted small" },
    h("a", { href: "/api/openapi.json", target: "_blank", rel: "noopener" }, "API reference (OpenAPI 3.1)"));
  fill(app, h("div", { class: "shell" }, nav, h("div", { class: "page" }, main, footer)));
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
  const showActivity = may("GET /api/activity");
  const [stats, activity] = await Promise.all([api("/api/stats"),
    showActivity ? api("/api/activity?by=channel") : { days: [], series: [] }]);
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
    fill(chart, 
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
  if (showActivity) await draw("channel");
  fill(main, h("h1", {}, "Overview"), h("div", { class: "tiles" }, tiles),
    showActivity ? [h("h2", {}, `Events per day (${activity.days[0] || "–"} to ${activity.days.at(-1) || "–"})`), chart] : null);
  ready("overview");
}

// ---- Customers -----------------------------------------------------------------

let lastQuery = "";

async function customers() {
  const input = h("input", { type: "search", value: lastQuery, placeholder: "Search by e-mail, phone, id or name",
    "aria-label": "Search customers", autofocus: true });
  const results = h("ul", { class: "results", "aria-label": "Customers found" });
  const hint = h("p", { class: "muted small" }, "Press ", h("kbd", {}, "/"), " anywhere to search, ",
    h("kbd", {}, "Enter"), " to open the first match, ", h("kbd", {}, "↓"), " to move through the results.");
  const main = layout("customers", h("h1", {}, "Customers"), h("div", { class: "search" }, input), hint, results);
  let timer;
  const search = async () => {
    lastQuery = input.value.trim();
    if (lastQuery.length < 2) {
      fill(results, h("li", { class: "empty" }, "Type at least two characters of an identifier or a name."));
      return;
    }
    const found = await api(`/api/profiles/search?q=${encodeURIComponent(lastQuery)}&limit=20`);
    fill(results, ...(found.profiles.length === 0
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
  results.addEventListener("keydown", event => {
    const item = event.target.closest("li");
    if (!item || !["ArrowDown", "ArrowUp"].includes(event.key)) return;
    event.preventDefault();
    const next = event.key === "ArrowDown" ? item.nextElementSibling : item.previousElementSibling;
    (next?.querySelector("a") || (event.key === "ArrowUp" ? input : null))?.focus();
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
  const [card, timeline, profile] = await Promise.all([
    api(`/api/profiles/${encodeURIComponent(id)}/context`),
    api(`/api/profiles/${encodeURIComponent(id)}/timeline?limit=100`),
    api(`/api/profiles/${encodeURIComponent(id)}`),
  ]);
  const unmerge = (identifier, problem) => !may("POST /api/profiles/{id}/unmerge") ? null : h("button", { type: "button", "data-unmerge": identifier.value,
    title: `Cut ${identifier.type} ${identifier.value} off this profile, with the events that came with it`,
    onclick: async () => {
      try {
        const result = await api(`/api/profiles/${encodeURIComponent(card.profile_id)}/unmerge`,
          { method: "POST", body: JSON.stringify({ identifier }) });
        const stays = result.profiles.find(p => p.id === card.profile_id) || result.profiles[0];
        location.hash = `#/customers/${stays.id}`;
        route();
      } catch (e) { problem.textContent = e.message; }
    } }, "Unmerge");
  const problem = h("p", { class: "error", role: "alert" });
  const merges = profile.merges || [];
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
    h("h2", {}, `Merge history (${merges.length})`),
    merges.length === 0 ? h("p", { class: "empty" }, "Never merged: one identity from the start.")
      : h("ul", { class: "merges" }, merges.map(m => h("li", { "data-merge": m.from, "data-decided": String(m.decided),
          title: m.reason }, `${when(m.at)}: ${m.from} joined ${m.decided ? "(matched on traits)" : ""}, through `,
          m.via.map(v => h("span", {}, h("code", {}, `${v.type} ${v.value}`), " ", unmerge(v, problem), " "))))),
    problem,
    h("h2", {}, "Next best action"),
    h("div", { class: "nba" }, h("strong", {}, nba.summary), h("div", {}, nba.reason)),
    h("h2", {}, "Open cases"), cases,
    h("h2", {}, "Journeys"),
    card.active_journeys.length === 0 ? h("p", { class: "empty" }, "In no journey.")
      : h("ul", { class: "journeys" }, card.active_journeys.map(j => h("li", { "data-journey": j.journey },
          h("strong", {}, j.journey), ` · ${j.step_name} since ${when(j.since)}`,
          j.control ? " (control group)" : "",
          h("div", {}, j.next, j.next_at ? ` — ${when(j.next_at)}` : "")))),
    h("h2", {}, "Consents"), h("div", {}, consentPills(card.consents)),
    engagement.length ? [h("h2", {}, "Engagement"),
      h("dl", {}, engagement.map(([ch, e]) => [h("dt", {}, ch),
        h("dd", {}, `${e.sent} sent · ${e.opened} opened · ${e.clicked} clicked · ${e.replied} replied · ${e.interactions} visits`)]))] : null);
  const entry = e => h("li", { "data-channel": e.channel || "none" },
    channelIcon(e.channel), h("time", { datetime: e.at }, when(e.at)),
    h("div", {}, h("div", {}, e.name || e.type),
      h("div", { class: "where" }, [e.touchpoint, e.channel].filter(Boolean).join(" · ") || "—")));
  const list = h("ol", { class: "timeline" }, timeline.timeline.map(entry));
  let cursor = timeline.next_cursor;
  const more = h("button", { type: "button", class: "more", onclick: async () => {
    const page = await api(`/api/profiles/${encodeURIComponent(id)}/timeline?limit=100&cursor=${cursor}`);
    list.append(...page.timeline.map(entry));
    cursor = page.next_cursor;
    if (!cursor) more.remove();
  } }, "Show older interactions");
  const timelinePanel = h("section", { class: "panel", "aria-label": "Timeline" },
    h("h2", {}, `Timeline · ${number(timeline.total)} interactions`),
    timeline.timeline.length === 0 ? h("p", { class: "empty" }, "No interaction yet.") : list,
    cursor ? more : null);
  fill(main, h("p", {}, h("a", { href: "#/customers" }, "← Customers")),
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
    await who();
    if (!allowed(page)) {
      const first = PAGES.find(([p]) => allowed(p));
      if (!first) throw new Error(`the ${me.role} role may use no page of the dashboard`);
      if (page !== first[0]) {
        location.hash = `#/${first[0]}`;
        return;
      }
    }
    if (page === "customers" && id) await customer(decodeURIComponent(id));
    else if (page === "customers") await customers();
    else if (MODULES[page]) {
      const main = layout(page, h("p", { class: "loading" }, "Loading…"));
      await MODULES[page].render(main);
      ready(page);
    } else await overview();
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
