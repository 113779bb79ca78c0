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
