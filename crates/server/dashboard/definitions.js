// The lifecycle of definitions made through the API — segments, journeys, messages,
// subscriptions: edit (a new version, checked by a dry run first), pause, resume and
// retire. Those from the config file are read-only here, as in the API.

import { h, api, table, fill } from "/assets/ui.js";

const KINDS = { segments: "Segment", journeys: "Journey", messages: "Message", subscriptions: "Subscription" };

const path = (kind, name) => `/api/${kind}/${encodeURIComponent(name)}`;

/** The body of a PUT: a journey's carries what happens to its runs. */
function revision(kind, definition, runs, mapping) {
  if (kind !== "journeys") return definition;
  return { definition, runs: runs === "move" ? { move: mapping } : runs };
}

/** What a dry run or a saved edit tells, in words. */
function outcome(answer) {
  const changes = (answer.changes || []).map(c => h("li", {}, h("code", {}, c.path || "(all)"), ": ",
    c.before === undefined ? "—" : JSON.stringify(c.before), " → ", c.after === undefined ? "—" : JSON.stringify(c.after)));
  const lines = [];
  if (answer.entering !== undefined) lines.push(`${answer.entering} would enter, ${answer.leaving} would leave`);
  if (answer.runs) {
    const moved = Object.entries(answer.runs.moved || {}).map(([k, v]) => `${v} moved ${k}`);
    lines.push([...moved, `${answer.runs.finishing} finish on their version`, `${answer.runs.exited} exit`].join(", "));
  }
  const head = answer.dry_run ? "Dry run — nothing changed." : `Saved as version ${answer.version}.`;
  return [h("p", { class: "muted" }, head, " ", lines.join("; ")),
    changes.length ? h("ul", { class: "changes" }, changes) : h("p", { class: "muted" }, "No field changes.")];
}

async function editor(kind, name, onSaved) {
  const history = await api(`${path(kind, name)}/versions`);
  const current = history.versions[history.versions.length - 1].config;
  const definition = h("textarea", { name: "definition", rows: 10, cols: 70, spellcheck: "false",
    "aria-label": `${KINDS[kind]} definition` }, JSON.stringify(current, null, 2));
  const problem = h("p", { class: "error field-error", role: "alert" });
  const result = h("div", { class: "edit-result" });
  const runs = h("select", { name: "runs", "aria-label": "Runs in progress" },
    h("option", { value: "finish" }, "finish on their version"), h("option", { value: "exit" }, "exit the journey"),
    h("option", { value: "move" }, "move by step mapping"));
  const mapping = h("textarea", { name: "mapping", rows: 3, cols: 40, "aria-label": "Step mapping",
    placeholder: '{"old step": "new step"}' }, "{}");
  const send = async dryRun => {
    problem.textContent = "";
    let body;
    try {
      body = revision(kind, JSON.parse(definition.value), runs.value, JSON.parse(mapping.value || "{}"));
    } catch (e) { problem.textContent = `Not valid JSON: ${e.message}`; return; }
    try {
      const answer = await api(`${path(kind, name)}${dryRun ? "?dry_run=true" : ""}`,
        { method: "PUT", body: JSON.stringify(body) });
      fill(result, outcome(answer));
      if (!dryRun) onSaved();
    } catch (e) { problem.textContent = e.message; }
  };
  return h("form", { class: "panel editor definition-editor", "data-kind": kind, "data-name": name,
    onsubmit: event => { event.preventDefault(); send(false); } },
    h("h3", {}, `Edit ${KINDS[kind].toLowerCase()} ${name} (version ${history.versions.length})`),
    h("label", {}, h("span", {}, "Definition (JSON)"), definition), problem,
    kind === "journeys" ? h("div", { class: "fields" },
      h("label", {}, h("span", {}, "People in its runs"), runs),
      h("label", {}, h("span", {}, "Step mapping (old → new)"), mapping)) : null,
    h("button", { type: "button", onclick: () => send(true) }, "Dry run"), " ",
    h("button", { type: "submit", class: "primary" }, "Save"), result);
}

/** Every definition of the four kinds with its version, status and what can be done. */
export function definitions(lists, reload) {
  const rows = Object.entries(lists).flatMap(([kind, items]) => items.map(item => ({
    kind, name: item.name || item.id, version: item.version, status: item.status, origin: item.origin,
  })));
  const open = h("div", { class: "definition-editor-slot" });
  const act = async (row, method, suffix) => {
    try {
      await api(`${path(row.kind, row.name)}${suffix}`, { method });
      reload();
    } catch (e) { fill(open, h("p", { class: "error", role: "alert" }, e.message)); }
  };
  const actions = (_, row) => row.origin !== "api"
    ? h("span", { class: "muted" }, "config file")
    : row.status === "retired" ? h("span", { class: "muted" }, "retired")
    : h("span", { class: "actions" },
        h("button", { type: "button", onclick: async () => fill(open, await editor(row.kind, row.name, reload)) }, "Edit"), " ",
        row.status === "paused"
          ? h("button", { type: "button", onclick: () => act(row, "POST", "/resume") }, "Resume")
          : h("button", { type: "button", onclick: () => act(row, "POST", "/pause") }, "Pause"), " ",
        h("button", { type: "button", onclick: () => act(row, "DELETE", "") }, "Retire"));
  return h("div", { class: "panel definitions" },
    rows.length === 0 ? h("p", { class: "empty" }, "Nothing defined yet.")
      : table(rows, [["kind", "Kind", k => KINDS[k]], ["name", "Name"], ["version", "Version", v => v || "–"],
          ["status", "Status", s => h("span", { class: `pill status-${s}` }, s)], ["origin", "Defined in"],
          ["actions", "", actions]], { sort: "name" }),
    open);
}
