// The audit log (owners): who changed what and who read whose data, newest first,
// filtered by key, person or action; older records a page at a time.

import { h, api, when, table, fill } from "/assets/ui.js";

export async function render(main) {
  const filters = { actor: "", profile_id: "", action: "" };
  const input = (name, label) => h("input", { type: "search", name, placeholder: label, "aria-label": label,
    oninput: event => { filters[name] = event.target.value.trim(); } });
  const list = h("div", { class: "panel" });
  const show = async () => {
    const records = [];
    let cursor = "";
    const query = () => new URLSearchParams({ ...Object.fromEntries(
      Object.entries(filters).filter(([, v]) => v)), limit: "100", ...(cursor ? { cursor } : {}) });
    const draw = () => fill(list,
      records.length === 0 ? h("p", { class: "empty" }, "No record matches.")
        : table(records, [
          ["seq", "#"], ["at", "Time", when], ["actor", "Key"], ["role", "Role"], ["action", "Action"],
          ["profile_id", "Person", id => id ? h("a", { href: `#/customers/${id}` }, id) : "–"],
          ["outcome", "Outcome"],
        ], { sort: "seq", caption: `${records.length} records` }),
      cursor ? h("button", { type: "button", class: "more", onclick: more }, "Older records") : null);
    const more = async () => {
      const page = await api(`/api/audit?${query()}`);
      records.push(...page.records);
      cursor = page.next_cursor || "";
      draw();
      main.dataset.records = String(records.length);
    };
    await more();
  };
  fill(main, h("h1", {}, "Audit log"),
    h("p", { class: "muted" }, "Every change made through the API, every read of one person's data and every refused call. ",
      "Each record's hash covers the one before; ", h("code", {}, "unavoce audit verify"), " checks the chain."),
    h("form", { class: "filters", onsubmit: event => { event.preventDefault(); show(); } },
      input("actor", "Key name"), input("profile_id", "Person (p-…)"), input("action", "Action, e.g. POST"),
      h("button", { type: "submit", class: "primary" }, "Filter")),
    list);
  await show();
}
