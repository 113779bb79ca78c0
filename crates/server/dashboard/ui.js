// Shared by every page: building elements, calling the API, formatting, channel icons.

export const app = document.getElementById("app");

/** Builds an element: h("a", {href: "#"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    // Through the CSSOM: the Content-Security-Policy refuses inline style attributes.
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export class SignedOut extends Error {}

/** GET (or send) JSON to the API; a 401 means the session is over. */
export async function api(path, options = {}) {
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

export const number = n => (n ?? 0).toLocaleString();
export const when = t => t ? new Date(t).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";

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

export function channelIcon(channel) {
  const [colour, path] = ICONS[channel] || ["#9aa3b5", "M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z"];
  const span = h("span", { class: "icon", style: `--swatch:${colour}`, title: channel || "unknown channel",
    "data-channel": channel || "none" });
  span.innerHTML = `<svg viewBox="0 0 24 24" aria-hidden="true"><path d="${path}"/></svg>`;
  return span;
}


/** A rate (0..1) as a percentage, or a dash. */
export const percent = r => (r === null || r === undefined) ? "–" : `${(r * 100).toFixed(1)}%`;

/** A table from rows: columns are [key, label, format?]; sortable by clicking a header. */
export function table(rows, columns, { caption, sort } = {}) {
  let by = sort || columns[0][0];
  let descending = true;
  const body = h("tbody");
  const head = h("tr");
  const draw = () => {
    const sorted = [...rows].sort((a, b) => {
      const x = a[by], y = b[by];
      const order = (x ?? -Infinity) > (y ?? -Infinity) ? 1 : (x ?? -Infinity) < (y ?? -Infinity) ? -1 : 0;
      return descending ? -order : order;
    });
    body.replaceChildren(...sorted.map(row => h("tr", {}, columns.map(([key, , format]) =>
      h("td", { class: typeof row[key] === "number" ? "num" : "" }, format ? format(row[key], row) : (row[key] ?? "–"))))));
    head.replaceChildren(...columns.map(([key, label]) => h("th", { scope: "col",
      "aria-sort": key === by ? (descending ? "descending" : "ascending") : "none" },
      h("button", { type: "button", onclick: () => { descending = key === by ? !descending : true; by = key; draw(); } }, label))));
  };
  draw();
  return h("table", { class: "data" }, caption ? h("caption", {}, caption) : null, h("thead", {}, head), body);
}

/** Replaces a node's children: nested lists are flattened, empty values skipped. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false));
  return node;
}
