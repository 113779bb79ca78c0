// Journeys and KPIs: the touchpoint KPI table (sortable; time range and segment; CSV),
// the paths as a Sankey diagram, the stage funnel and attribution.

import { h, api, number, percent, table, fill } from "/assets/ui.js";
import { sankey } from "/assets/charts.js";

let filters = { from: "", to: "", segment: "" };

function query(extra = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) params.set(k, v);
  return params.toString();
}

export async function render(main) {
  const from = h("input", { type: "date", name: "from", value: filters.from, "aria-label": "From" });
  const to = h("input", { type: "date", name: "to", value: filters.to, "aria-label": "To" });
  const segment = h("input", { type: "text", name: "segment", value: filters.segment, size: 34,
    placeholder: "segment, e.g. open_cases > 0", "aria-label": "Segment" });
  const form = h("form", { class: "filters", onsubmit: event => {
    event.preventDefault();
    filters = { from: from.value, to: to.value, segment: segment.value.trim() };
    render(main).catch(e => main.append(h("p", { class: "error", role: "alert" }, e.message)));
  } }, h("label", {}, "From ", from), h("label", {}, "To ", to), h("label", {}, "Segment ", segment),
    h("button", { type: "submit", class: "primary" }, "Apply"));
  fill(main, h("h1", {}, "Journeys and KPIs"), form, h("p", { class: "loading" }, "Loading…"));
  const [kpis, paths, funnel, attribution] = await Promise.all([
    api(`/api/kpis/touchpoints?${query()}`),
    api(`/api/journeys/paths?${query({ steps: 4 })}`),
    api(`/api/journeys/funnel?${query()}`),
    api(`/api/journeys/attribution?${query()}`),
  ]);
  const kpiTable = table(kpis.touchpoints, [
    ["touchpoint", "Touchpoint"], ["channel", "Channel"], ["interactions", "Interactions", number],
    ["reach", "People", number], ["share_of_customers", "Share", percent],
    ["conversion_rate", "Conversion", percent], ["cost_per_conversion", "Cost / conversion", v => v == null ? "–" : v.toFixed(2)],
    ["csat", "CSAT", percent], ["nps", "NPS", percent], ["cases", "Cases", number],
    ["first_contact_resolution", "First-contact resolution", percent], ["repeat_contact_rate", "Repeat contact", percent],
  ], { sort: "interactions" });
  const maxFunnel = Math.max(1, ...funnel.stages.map(s => s.people));
  fill(main, h("h1", {}, "Journeys and KPIs"), form,
    kpis.segment ? h("p", { class: "muted" }, `Segment: ${number(kpis.segment.people)} people`) : null,
    h("h2", {}, "Touchpoint KPIs ", h("a", { class: "small", href: `/api/kpis/touchpoints?${query({ format: "csv" })}`, download: "touchpoint-kpis.csv" }, "Export CSV")),
    h("div", { class: "panel scroll kpis" }, kpis.touchpoints.length ? kpiTable : h("p", { class: "empty" }, "No interaction in this period.")),
    h("h2", {}, `Paths across touchpoints (${number(paths.people)} people)`),
    h("div", { class: "panel scroll" }, paths.links.length ? sankey(paths.nodes, paths.links)
      : h("p", { class: "empty" }, "No path in this period.")),
    h("div", { class: "two" },
      h("section", {}, h("h2", {}, `Funnel · ${percent(funnel.overall_conversion)} overall`),
        h("div", { class: "panel funnel" }, funnel.stages.map(s => h("div", { class: "stage" },
          h("span", { class: "name" }, s.stage),
          h("span", { class: "bar", style: `width:${(100 * s.people / maxFunnel).toFixed(1)}%` }),
          h("span", { class: "count" }, `${number(s.people)}${s.conversion_from_previous == null ? "" : ` · ${percent(s.conversion_from_previous)}`}`))))),
      h("section", {}, h("h2", {}, `Attribution of ${number(attribution.conversions)} conversions`),
        h("div", { class: "panel scroll" }, table(attribution.touchpoints.map(t => ({ ...t, touchpoint: t.touchpoint || "(none)" })), [
          ["touchpoint", "Touchpoint"], ["first_touch", "First", v => v.toFixed(1)], ["last_touch", "Last", v => v.toFixed(1)],
          ["linear", "Linear", v => v.toFixed(1)], ["time_decay", "Time decay", v => v.toFixed(1)]], { sort: "linear" })))));
}
