// A neuron's value histogram: every token's count per bin (the record's `histogram`), each bar
// split by quadrant (the quadrants' own histograms). Bins are signed powers of two
// (docs/histogram.md); bar heights are on a log scale, as counts span orders of magnitude.

import { el, fmt } from "./dom.js";
import { quadrantShort } from "./state.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 140;
const COLOURS = ["#2b6cb0", "#dd6b20", "#805ad5", "#38a169"]; // the quadrants, in record order
const NONE_COLOUR = "#a0aec0"; // tokens in no quadrant (a gate or in of exactly 0)

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

/** Bin i's values, for people: [a, b), or 0 for the bin of exact zeros. */
export function binLabel(histogram, i) {
  if (i === histogram.zeroBin) return "exactly 0";
  const edges = [-Infinity, ...histogram.innerEdges, Infinity];
  let low = edges[i];
  const high = edges[i + 1];
  if (i === histogram.zeroBin + 1) low = 0; // from the least float above 0
  const end = i === edges.length - 2 ? "]" : ")";
  const show = (v) => (Number.isFinite(v) ? fmt(v) : v > 0 ? "∞" : "−∞");
  return `${i === histogram.zeroBin + 1 ? "(" : "["}${show(low)}, ${show(high)}${end}`;
}

/** Each bin's counts: per quadrant, then the tokens in none. */
function split(record) {
  const total = record.histogram.counts;
  const quadrants = record.quadrants.filter((q) => Array.isArray(q.histogram));
  const parts = total.map((count, i) => {
    const each = quadrants.map((q) => q.histogram[i]);
    return [...each, count - each.reduce((a, b) => a + b, 0)];
  });
  return { total, quadrants, parts };
}

/** The histogram figure of a GLU record, or "" where its file holds none. */
export function histogramFigure(record) {
  const histogram = record.histogram;
  if (!histogram || !histogram.counts.some((c) => c > 0)) return "";
  const { total, quadrants, parts } = split(record);
  const used = total.map((c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0);
  const first = Math.min(used[0], histogram.zeroBin);
  const last = Math.max(used[used.length - 1], histogram.zeroBin);
  const bins = last - first + 1;
  const barWidth = WIDTH / bins;
  const top = Math.log10(1 + Math.max(...total));
  const plot = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT + 18}`,
    class: "histogram",
    role: "img",
    "aria-label": `histogram of ${histogram.hook} over ${total.reduce((a, b) => a + b, 0)} tokens`,
  });
  const colours = [...quadrants.map((_, i) => COLOURS[i % COLOURS.length]), NONE_COLOUR];
  for (let i = first; i <= last; i++) {
    const x = (i - first) * barWidth;
    const height = (HEIGHT * Math.log10(1 + total[i])) / top;
    const lines = [`${binLabel(histogram, i)}: ${total[i]} tokens`];
    const group = svg("g", { "data-bin": String(i) });
    let y = HEIGHT;
    parts[i].forEach((count, j) => {
      if (!count) return;
      const h = (height * count) / total[i];
      y -= h;
      const name = j < quadrants.length ? quadrantShort(quadrants[j].name) : "none";
      lines.push(`${name}: ${count}`);
      group.append(svg("rect", { x, y, width: Math.max(barWidth - 1, 1), height: h, fill: colours[j] }));
    });
    group.prepend(svg("title", {}, lines.join("\n")));
    plot.append(group);
  }
  const zeroX = (histogram.zeroBin - first + 0.5) * barWidth;
  plot.append(svg("line", { x1: zeroX, x2: zeroX, y1: 0, y2: HEIGHT, class: "zero-line" }));
  plot.append(svg("text", { x: zeroX, y: HEIGHT + 14, "text-anchor": "middle" }, "0"));
  const ends = [
    [0, "start", binLabel(histogram, first)],
    [WIDTH, "end", binLabel(histogram, last)],
  ].filter(([, , text]) => text !== "exactly 0");
  for (const [x, anchor, text] of ends) {
    plot.append(svg("text", { x, y: HEIGHT + 14, "text-anchor": anchor }, text));
  }
  const legend = el("p", { class: "meta histogram-legend" });
  quadrants.forEach((q, j) => {
    legend.append(el("span", { class: "swatch", style: `background:${colours[j]}` }), ` ${q.name} `);
  });
  legend.append(el("span", { class: "swatch", style: `background:${NONE_COLOUR}` }), " in none");
  const caption = el("p", {
    class: "meta",
    text:
      `Distribution of ${histogram.hook} over every token: one bar per power of two of |value|, ` +
      "negative on the left, exact zeros at the line; heights on a log scale. Hover a bar.",
  });
  return el("figure", { id: "histogram" }, caption, plot, legend);
}
