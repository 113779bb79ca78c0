// Touchpoints and the channel census: the registry (add, edit, retire), the coverage
// of customer needs by touchpoint as a heat map, gaps and recommendations.

import { h, api, number, percent, table, fill } from "/assets/ui.js";

const KINDS = ["web", "app", "email", "sms", "whatsapp", "rcs", "push", "phone", "chat", "chatbot",
  "social", "store", "kiosk", "signage", "iot", "fax", "sales-rep", "survey", "other"];

/** A touchpoint as the API takes it (the listing adds fields of its own). */
function clean(t) {
  const fields = ["id", "name", "channel", "presence", "department", "needs", "status", "cost_per_interaction", "capacity"];
  return Object.fromEntries(fields.filter(f => t[f] !== undefined && t[f] !== null).map(f => [f, t[f]]));
}

function editor(touchpoint, onSaved) {
  const t = touchpoint || { id: "", name: "", channel: "web", department: "", needs: [], status: "active" };
  const field = (label, input) => h("label", {}, h("span", {}, label), input);
  const id = h("input", { name: "id", value: t.id, required: true, readonly: touchpoint ? true : false });
  const name = h("input", { name: "name", value: t.name, required: true });
  const channel = h("select", { name: "channel" }, KINDS.map(k => h("option", { value: k, selected: k === t.channel }, k)));
  const department = h("input", { name: "department", value: t.department || "" });
  const needs = h("input", { name: "needs", value: (t.needs || []).join(", "), placeholder: "support, purchase" });
  const status = h("select", { name: "status" }, ["active", "planned", "retired"].map(s => h("option", { value: s, selected: s === t.status }, s)));
  const problem = h("p", { class: "error", role: "alert" });
  return h("form", { class: "panel editor", onsubmit: async event => {
    event.preventDefault();
    const body = { ...clean(t), id: id.value.trim(), name: name.value.trim(), channel: channel.value,
      department: department.value.trim(), status: status.value,
      needs: needs.value.split(",").map(n => n.trim()).filter(Boolean) };
    // The presence shown is derived from the channel: a new channel derives its own.
    if (body.channel !== t.channel) delete body.presence;
    try {
      await api(touchpoint ? `/api/touchpoints/${encodeURIComponent(t.id)}` : "/api/touchpoints",
        { method: touchpoint ? "PUT" : "POST", body: JSON.stringify(body) });
      onSaved();
    } catch (e) { problem.textContent = e.message; }
  } },
    h("h2", {}, touchpoint ? `Edit ${t.id}` : "Add a touchpoint"),
    h("div", { class: "fields" }, field("Id", id), field("Name", name), field("Channel", channel),
      field("Department", department), field("Needs it serves", needs), field("Status", status)),
    problem, h("button", { type: "submit", class: "primary" }, touchpoint ? "Save" : "Add"));
}

function heatMap(census) {
  const usage = new Map(census.usage.map(u => [u.touchpoint, u]));
  const touchpoints = census.usage.filter(u => u.status !== "retired").map(u => u.touchpoint);
  const max = Math.max(1, ...census.usage.map(u => u.interactions));
  const uncovered = new Set(census.uncovered_needs);
  return h("table", { class: "heat", "aria-label": "Needs by touchpoint" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Need"),
      touchpoints.map(t => h("th", { scope: "col" }, h("span", {}, t))))),
    h("tbody", {}, census.coverage.map(row => h("tr", { class: uncovered.has(row.need) ? "uncovered" : "",
      "data-need": row.need },
      h("th", { scope: "row" }, row.need, uncovered.has(row.need) ? h("span", { class: "pill no" }, "uncovered") : null),
      touchpoints.map(t => {
        const active = row.active.includes(t), planned = row.planned.includes(t);
        const used = usage.get(t)?.interactions || 0;
        const strength = active ? 0.15 + 0.85 * used / max : 0;
        return h("td", { class: planned ? "planned" : active ? "served" : "",
          style: active ? `--heat:${strength.toFixed(2)}` : "",
          title: active ? `${t} serves ${row.need}: ${number(used)} interactions` : planned ? `${t} is planned for ${row.need}` : "" },
          planned ? "planned" : active ? number(used) : "");
      })))));
}

export async function render(main) {
  const [registry, census] = await Promise.all([api("/api/touchpoints"), api("/api/census")]);
  const reload = () => render(main);
  const list = registry.touchpoints.map(t => ({ ...t, needs_text: (t.needs || []).join(", ") }));
  const rows = table(list, [
    ["id", "Id"], ["name", "Name"], ["channel", "Channel"], ["department", "Department"],
    ["needs_text", "Needs"], ["status", "Status"], ["defined_in", "From"],
    ["id", "", (id, t) => t.defined_in === "config" ? h("span", { class: "muted" }, "config file") : h("span", {},
      h("button", { type: "button", onclick: () => fill(main.querySelector(".editor-slot"), editor(t, reload)) }, "Edit"), " ",
      t.status === "retired" ? null : h("button", { type: "button", onclick: async () => {
        await api(`/api/touchpoints/${encodeURIComponent(t.id)}`, { method: "PUT", body: JSON.stringify({ ...clean(t), status: "retired" }) });
        reload();
      } }, "Retire"))],
  ], { sort: "id" });
  fill(main, h("h1", {}, "Touchpoints and census"),
    h("h2", {}, "Which touchpoints serve which customer needs"),
    h("div", { class: "panel scroll" }, census.coverage.length ? heatMap(census)
      : h("p", { class: "empty" }, "No needs declared yet: give touchpoints the needs they serve (below).")),
    h("h2", {}, "Gaps and recommendations"),
    h("div", { class: "panel" }, census.recommendations.length === 0 ? h("p", { class: "empty" }, "Nothing to recommend.")
      : h("ul", { class: "recommendations" }, census.recommendations.map(r =>
          h("li", { "data-kind": r.kind }, h("span", { class: "pill" }, r.kind), " ", r.text)))),
    census.unregistered_channels.length ? [h("h2", {}, "Where customers go that is not registered"),
      table(census.unregistered_channels, [["touchpoint", "Touchpoint"], ["channel", "Channel"],
        ["interactions", "Interactions", number], ["people", "People", number]], { sort: "interactions" })] : null,
    h("h2", {}, "Registry"),
    h("p", {}, h("button", { type: "button", class: "primary", onclick: () =>
      fill(main.querySelector(".editor-slot"), editor(null, reload)) }, "Add a touchpoint")),
    h("div", { class: "editor-slot" }),
    h("div", { class: "panel scroll" }, rows),
    h("h2", {}, "Use and quality"),
    h("div", { class: "panel scroll" }, table(census.usage, [["touchpoint", "Touchpoint"], ["interactions", "Interactions", number],
      ["share_of_customers", "Share of customers", percent], ["csat", "CSAT", percent], ["nps", "NPS", percent],
      ["first_contact_resolution", "First-contact resolution", percent]], { sort: "interactions" })));
}
