// Engagement: segments with their sizes, journeys with their steps, conversion and
// control group, the definitions' lifecycle (edit, pause, resume, retire), a
// broadcast's dry run, the decision log, the outbox and department subscriptions.

import { h, api, number, percent, when, table, fill } from "/assets/ui.js";
import { definitions } from "/assets/definitions.js";

function reasons(list) {
  return (list || []).map(r => h("div", {}, h("span", { class: "pill" }, r.code), " ", r.detail || ""));
}

function dryRun(messages) {
  const message = h("select", { name: "message", "aria-label": "Message" },
    messages.map(m => h("option", { value: m.id }, m.id)));
  const audience = h("input", { name: "audience", value: "stage != 'lapsed'", size: 32, "aria-label": "Audience" });
  const purpose = h("select", { name: "purpose", "aria-label": "Purpose" },
    ["promotional", "service"].map(p => h("option", { value: p }, p)));
  const out = h("div", { class: "dry-run-result" });
  return h("div", { class: "panel" },
    h("form", { class: "filters", onsubmit: async event => {
      event.preventDefault();
      fill(out, h("p", { class: "loading" }, "Deciding…"));
      try {
        const report = await api("/api/broadcasts", { method: "POST", body: JSON.stringify({
          message: message.value, audience: audience.value, purpose: purpose.value, channel: "auto",
          dry_run: true, list_limit: 5000 }) });
        const held = report.decisions.filter(d => d.outcome === "suppress");
        fill(out, 
          h("p", {}, `${number(report.audience)} people in the audience: `,
            Object.entries(report.outcomes).map(([k, v]) => h("span", { class: "pill" }, `${k} ${number(v)}`)),
            " — nothing is recorded or sent."),
          h("h3", {}, `Suppressed (${number(held.length)})`),
          held.length === 0 ? h("p", { class: "empty" }, "Nobody is held back.") :
            h("table", { class: "data suppressed" }, h("thead", {}, h("tr", {}, h("th", {}, "Customer"), h("th", {}, "Why"))),
              h("tbody", {}, held.slice(0, 50).map(d => h("tr", {},
                h("td", {}, h("a", { href: `#/customers/${d.profile_id}` }, d.profile_id)),
                h("td", {}, reasons(d.reasons)))))),
          held.length > 50 ? h("p", { class: "muted" }, `and ${number(held.length - 50)} more`) : null);
      } catch (e) { fill(out, h("p", { class: "error", role: "alert" }, e.message)); }
    } }, h("label", {}, "Message ", message), h("label", {}, "Audience ", audience),
      h("label", {}, "Purpose ", purpose), h("button", { type: "submit", class: "primary" }, "Dry run")),
    out);
}

export async function render(main) {
  const [segments, journeys, messages, decisions, outbox, entries, subscriptions] = await Promise.all([
    api("/api/segments"), api("/api/journeys"), api("/api/messages"), api("/api/decisions?limit=50&order=newest"),
    api("/api/outbox/summary"), api("/api/outbox?limit=50"), api("/api/subscriptions"),
  ]);
  const journeyCards = journeys.journeys.length === 0 ? h("p", { class: "empty" }, "No journey yet: define one in the config file or with POST /api/journeys.")
    : journeys.journeys.map(j => h("div", { class: "panel journey", "data-journey": j.name },
        h("h3", {}, j.name, " ", h("span", { class: "muted" }, j.description || "")),
        h("p", {}, `${number(j.entered)} entered · ${number(j.active)} active · ${number(j.completed)} completed · ${number(j.exited)} exited`),
        h("ol", { class: "steps" }, j.steps.map((s, i) => {
          const name = s.name || `step-${i + 1}`;
          return h("li", {}, `${name} (${s.type}): ${number(j.in_step[name] || 0)} people now`);
        })),
        h("p", { class: "conversion" }, `Converted: treatment ${percent(j.treatment.conversion_rate)} of ${number(j.treatment.entered)}, `,
          `control group ${percent(j.control.conversion_rate)} of ${number(j.control.entered)}`)));
  const counts = outbox.counts;
  fill(main, h("h1", {}, "Engagement"),
    h("h2", {}, "Segments"),
    h("div", { class: "panel scroll" }, segments.segments.length === 0 ? h("p", { class: "empty" }, "No segment yet.")
      : table(segments.segments, [["name", "Segment"], ["expression", "Who"], ["size", "People", number]], { sort: "size" })),
    h("h2", {}, "Journeys"), h("div", { class: "journeys" }, journeyCards),
    h("h2", {}, "Definitions"),
    definitions({ segments: segments.segments, journeys: journeys.journeys, messages: messages.messages,
      subscriptions: subscriptions.subscriptions }, () => render(main)),
    h("h2", {}, "Broadcast: dry run"), dryRun(messages.messages),
    h("h2", {}, "Outbox and delivery"),
    h("div", { class: "panel" },
      counts.length === 0 ? h("p", { class: "empty" }, "Nothing has been sent yet.")
        : h("p", {}, counts.map(c => h("span", { class: "pill" }, `${c.channel} ${c.status} ${number(c.entries)}`))),
      outbox.lanes.length === 0 ? h("p", { class: "empty" }, "No provider is configured: messages wait in the outbox ([delivery] in the config file).")
        : table(outbox.lanes, [["channel", "Lane"], ["provider", "Provider"], ["per_second", "Per second", v => v > 1e6 ? "∞" : number(v)],
            ["concurrency", "In flight"], ["sent", "Sent", number], ["retried", "Retried", number], ["dead", "Dead letters", number]]),
      h("h3", {}, "Latest entries"),
      table(entries.entries.slice(-50).reverse(), [["id", "#"], ["channel", "Channel"], ["message", "Message"],
        ["profile_id", "Customer", v => h("a", { href: `#/customers/${v}` }, v)], ["status", "Status"],
        ["delivery", "Reported"], ["attempts", "Attempts"], ["last_error", "Last error"]], { sort: "id" })),
    h("h2", {}, "Decision log"),
    h("div", { class: "panel scroll" }, decisions.decisions.length === 0 ? h("p", { class: "empty" }, "No decision yet.")
      : table(decisions.decisions, [["id", "#"], ["decided_at", "When", when], ["profile_id", "Customer", v => h("a", { href: `#/customers/${v}` }, v)],
          ["message", "Message"], ["channel", "Channel"], ["outcome", "Outcome"], ["reasons", "Why", reasons]], { sort: "id" })),
    h("h2", {}, "Department subscriptions"),
    h("div", { class: "panel scroll" }, subscriptions.subscriptions.length === 0 ? h("p", { class: "empty" }, "No subscription: route insights with [[subscriptions]].")
      : table(subscriptions.subscriptions, [["name", "Name"], ["department", "Department"], ["description", "What"],
          ["webhook", "Webhook"], ["digest", "Digest to"], ["every", "Every"]], { sort: "name" })));
}
