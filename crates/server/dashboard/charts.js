// Small SVG charts, drawn from data with no library: a stacked area chart over days.

const NS = "http://www.w3.org/2000/svg";

/** Distinct, readable colours for up to ten lines. */
export const PALETTE = ["#2457c5", "#1f9d8b", "#e08a1e", "#8b4fc9", "#d04a6a", "#4f8f2f",
  "#7a6a4f", "#2b8fd6", "#9aa3b5", "#c2b02a"];

function el(name, attrs = {}) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/**
 * A stacked area chart: `days` (labels) and `series` ([{name, counts}]), each series a
 * band on top of the ones before. Returns the <svg>.
 */
export function stackedArea(days, series, { width = 900, height = 260 } = {}) {
  const pad = { left: 44, right: 12, top: 10, bottom: 24 };
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Events per day by ${series.map(s => s.name).join(", ")}` });
  const totals = days.map((_, d) => series.reduce((sum, s) => sum + s.counts[d], 0));
  const max = Math.max(1, ...totals);
  const x = d => pad.left + (days.length < 2 ? 0 : d * (width - pad.left - pad.right) / (days.length - 1));
  const y = v => height - pad.bottom - v * (height - pad.top - pad.bottom) / max;
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), stroke: "#e6e9ef" }));
    const label = el("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = v.toLocaleString();
    svg.append(label);
  }
  const below = days.map(() => 0);
  series.forEach((s, i) => {
    const top = s.counts.map((c, d) => below[d] + c);
    const points = top.map((v, d) => `${x(d)},${y(v)}`)
      .concat(below.map((v, d) => `${x(d)},${y(v)}`).reverse());
    svg.append(el("polygon", { points: points.join(" "), fill: PALETTE[i % PALETTE.length],
      "fill-opacity": "0.85", "data-series": s.name }));
    top.forEach((v, d) => { below[d] = v; });
  });
  const step = Math.max(1, Math.ceil(days.length / 8));
  days.forEach((day, d) => {
    if (d % step !== 0 && d !== days.length - 1) return;
    const label = el("text", { x: x(d), y: height - 6, "text-anchor": "middle" });
    label.textContent = day.slice(5);
    svg.append(label);
  });
  return svg;
}

/**
 * A Sankey diagram of paths: `nodes` ([{id, step, touchpoint, people}]) in columns by
 * step, `links` ([{source, target, value}]) as bands as wide as the people they carry.
 */
export function sankey(nodes, links, { width = 960, height = 420 } = {}) {
  const svg = el("svg", { class: "chart sankey", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "Paths across touchpoints" });
  const steps = Math.max(1, ...nodes.map(n => n.step + 1));
  const columns = Array.from({ length: steps }, (_, s) => nodes.filter(n => n.step === s)
    .sort((a, b) => b.people - a.people));
  const gap = 6, nodeWidth = 12, labelRoom = 120;
  const total = Math.max(1, ...columns.map(c => c.reduce((sum, n) => sum + n.people, 0)));
  const usable = height - 20;
  const scale = Math.min(...columns.map(c => (usable - gap * (c.length - 1)) / Math.max(1, c.reduce((s, n) => s + n.people, 0))), usable / total);
  const colX = s => steps === 1 ? 20 : 20 + s * (width - labelRoom - 40) / (steps - 1);
  const place = new Map();
  const colours = new Map();
  columns.forEach((column, s) => {
    let y = 10;
    for (const node of column) {
      const hgt = Math.max(1, node.people * scale);
      if (!colours.has(node.touchpoint)) colours.set(node.touchpoint, PALETTE[colours.size % PALETTE.length]);
      place.set(node.id, { x: colX(s), y, h: hgt, out: y, in: y, node });
      y += hgt + gap;
    }
  });
  for (const link of [...links].sort((a, b) => b.value - a.value)) {
    const from = place.get(link.source), to = place.get(link.target);
    if (!from || !to) continue;
    const w = Math.max(1, link.value * scale);
    const x0 = from.x + nodeWidth, x1 = to.x, mid = (x0 + x1) / 2;
    const y0 = from.out + w / 2, y1 = to.in + w / 2;
    from.out += w; to.in += w;
    svg.append(el("path", { d: `M${x0},${y0} C${mid},${y0} ${mid},${y1} ${x1},${y1}`, fill: "none",
      stroke: colours.get(from.node.touchpoint), "stroke-opacity": "0.35", "stroke-width": w,
      "data-link": `${link.source}>${link.target}` }));
  }
  for (const { x, y, h: hgt, node } of place.values()) {
    svg.append(el("rect", { x, y, width: nodeWidth, height: hgt, fill: colours.get(node.touchpoint), "data-node": node.id }));
    const label = el("text", { x: x + nodeWidth + 4, y: y + Math.min(hgt / 2, 12) + 4 });
    label.textContent = `${node.touchpoint} (${node.people.toLocaleString()})`;
    svg.append(label);
  }
  return svg;
}
