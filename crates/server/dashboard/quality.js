// Data quality: the quarantine (with replay), identifiers flagged as shared, and the
// probabilistic-match review queue (accept or reject).

import { h, api, number, when, table, fill } from "/assets/ui.js";

export async function render(main) {
  const [quarantine, flagged, review] = await Promise.all([
    api("/api/quarantine?status=pending&limit=100"), api("/api/identity/flagged"), api("/api/identity/review?status=pending"),
  ]);
  const again = () => render(main);
  // Replay as stored; when it is still invalid, fix the message in place and replay that.
  const replay = entry => {
    const cell = h("div", { class: "replay" });
    const send = async fixed => {
      try {
        await api(`/api/quarantine/${entry.id}/replay`, { method: "POST",
          body: JSON.stringify(fixed ? { message: fixed } : {}) });
        again();
      } catch (e) {
        const text = h("textarea", { rows: 6, cols: 60, "aria-label": `Message ${entry.id}, to fix` },
          JSON.stringify(entry.payload, null, 2));
        fill(cell, h("div", { class: "error", role: "alert" }, e.message), text,
          h("button", { type: "button", class: "primary", onclick: () => {
            let message;
            try { message = JSON.parse(text.value); } catch (parse) {
              return cell.prepend(h("div", { class: "error", role: "alert" }, `Not JSON: ${parse.message}`));
            }
            send(message);
          } }, "Replay fixed"));
      }
    };
    return fill(cell, h("button", { type: "button", onclick: () => send(null) }, "Replay"));
  };
  const decide = (item, decision) => h("button", { type: "button", class: decision === "accept" ? "primary" : "",
    "data-decision": decision, onclick: async () => {
      await api(`/api/identity/review/${item.id}/${decision}`, { method: "POST", body: "{}" });
      again();
    } }, decision === "accept" ? "Same person" : "Different people");
  const side = (identifier, traits) => h("div", {}, h("strong", {}, `${identifier.type}: ${identifier.value}`),
    h("div", { class: "muted" }, Object.entries(traits).map(([k, v]) => `${k}: ${v}`).join(" · ")));
  fill(main, h("h1", {}, "Data quality"),
    h("h2", {}, `Review queue (${number(review.items.length)} possible matches)`),
    h("div", { class: "panel" }, review.items.length === 0 ? h("p", { class: "empty" }, "Nothing to review. Run matching with POST /api/identity/matching or unavoce link.")
      : h("table", { class: "data review" }, h("thead", {}, h("tr", {}, ["One", "Other", "Probability", ""].map(t => h("th", {}, t)))),
          h("tbody", {}, review.items.map(item => h("tr", { "data-review": item.id },
            h("td", {}, side(item.a, item.traits_a)), h("td", {}, side(item.b, item.traits_b)),
            h("td", { class: "num" }, `${(item.probability * 100).toFixed(1)}%`),
            h("td", {}, decide(item, "accept"), " ", decide(item, "reject"))))))),
    h("h2", {}, `Quarantine (${number(quarantine.entries.length)} waiting)`),
    h("div", { class: "panel scroll" }, quarantine.entries.length === 0 ? h("p", { class: "empty" }, "Nothing in quarantine: every message was accepted.")
      : table(quarantine.entries, [["id", "#"], ["received_at", "Received", when], ["source", "Source"], ["code", "Code"],
          ["reason", "Why"], ["id", "", (id, entry) => replay(entry)]], { sort: "id" })),
    h("h2", {}, `Flagged identifiers (${number(flagged.flagged?.length ?? 0)})`),
    h("div", { class: "panel scroll" }, (flagged.flagged || []).length === 0 ? h("p", { class: "empty" }, "No identifier is shared by implausibly many people.")
      : table(flagged.flagged.map(f => ({ ...f, value: `${f.identifier.type}: ${f.identifier.value}` })),
          [["value", "Identifier"], ["seen_with_count", "Seen with", number], ["reason", "Why"], ["flagged_at", "Since", when]], { sort: "seen_with_count" })));
}
