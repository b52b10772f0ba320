// A model's neurons by IO class and vocabulary family, per layer (GET /classes/<model>): stacked
// bars drawn here as SVG, a fixed colour per class, each bar's count in its <title>. While the
// model's weight views are first computed the server's note is shown and asked again every 2 s.

import { el, fetchJson, setStatus, showError } from "./dom.js";
import { $ } from "./state.js";

const EVERY_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
// strengthening in blues and greens, weakening in reds and oranges, the rest apart
const CLASS_COLOURS = {
  strengthening: "#1f77b4",
  "atypical strengthening": "#9ecae1",
  "conditional strengthening": "#2ca02c",
  "atypical conditional strengthening": "#a1d99b",
  "proportional change": "#9467bd",
  "atypical proportional change": "#cbb8e0",
  "orthogonal output": "#c7c7c7",
  weakening: "#d62728",
  "atypical weakening": "#ff9896",
  "conditional weakening": "#ff7f0e",
  "atypical conditional weakening": "#ffc48a",
};
const FAMILY_COLOURS = { prediction: "#1f6feb", suppression: "#d62728", partition: "#9467bd" };
const SPARE = ["#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#393b79"];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function modelOf() {
  const match = window.location.pathname.match(/^\/plots\/classes\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : null;
}

/** [name, counts, colour] in the fixed order of `colours`, then any other names the server has. */
function series(counts, colours) {
  const names = Object.keys(colours).filter((n) => n in counts);
  const others = Object.keys(counts).filter((n) => !(n in colours));
  return names
    .map((n) => [n, counts[n], colours[n]])
    .concat(others.map((n, i) => [n, counts[n], SPARE[i % SPARE.length]]));
}

/** A round axis top at or above `max`, with its tick step. */
function niceScale(max) {
  if (max <= 0) return { top: 1, step: 1 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const stepped = Math.max(1, step);
  return { top: Math.ceil(max / stepped) * stepped, step: stepped };
}

/** Each name's colour, and its count over all layers. */
function legend(items) {
  return items.map(([name, counts, colour]) => {
    const all = counts.reduce((a, b) => a + b, 0);
    return el(
      "span",
      { class: "legend-item", "data-name": name },
      el("span", { class: "swatch", style: `background: ${colour}` }),
      `${name} (${all.toLocaleString()})`,
    );
  });
}

/** Stacked bars, one per layer: `items` are [name, count per layer, colour]. */
function chart(layers, items, { height, total, kind, full = false }) {
  const width = 1060;
  const [left, right, top, bottom] = [56, 8, 10, 36];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const sums = layers.map((_, i) => items.reduce((s, [, counts]) => s + counts[i], 0));
  // IO classes fill each bar (every neuron has one): their axis ends at the layer's neurons
  const { top: yTop, step } = full ? { top: total, step: total / 4 } : niceScale(Math.max(...sums));
  const y = (value) => top + plotH - (plotH * value) / yTop;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${kind} counts per layer`,
  });
  for (let tick = 0; tick <= yTop; tick += step) {
    root.append(
      svg("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }),
      svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, `${Math.round(tick)}`),
    );
  }
  const slot = plotW / layers.length;
  const barW = Math.min(slot * 0.8, 48);
  const every = Math.ceil(layers.length / 40);
  layers.forEach((layer, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    const bar = svg("g", { class: "bar", "data-layer": layer });
    let base = 0;
    for (const [name, counts, colour] of items) {
      const count = counts[i];
      const share = total ? ` of ${total} (${((100 * count) / total).toFixed(1)}%)` : "";
      const rect = svg(
        "rect",
        {
          x,
          y: y(base + count),
          width: barW,
          height: y(base) - y(base + count),
          fill: colour,
          "data-name": name,
          "data-count": count,
        },
        svg("title", {}, `layer ${layer} · ${name}: ${count}${share}`),
      );
      bar.append(rect);
      base += count;
    }
    root.append(bar);
    if (i % every === 0) {
      const at = { x: x + barW / 2, y: height - bottom + 16, "text-anchor": "middle" };
      root.append(svg("text", at, String(layer)));
    }
  });
  const middle = top + plotH / 2;
  root.append(
    svg("text", { x: left + plotW / 2, y: height - 4, "text-anchor": "middle" }, "layer"),
    svg(
      "text",
      { x: 12, y: middle, transform: `rotate(-90 12 ${middle})`, "text-anchor": "middle" },
      "neurons",
    ),
  );
  return root;
}

function render(answer) {
  const { layers, neuronsPerLayer: total } = answer;
  const classes = series(answer.classes, CLASS_COLOURS);
  const families = series(answer.families, FAMILY_COLOURS);
  $("class-legend").replaceChildren(...legend(classes));
  $("family-legend").replaceChildren(...legend(families));
  $("class-chart").replaceChildren(
    chart(layers, classes, { height: 340, total, kind: "IO class", full: Boolean(total) }),
  );
  $("family-chart").replaceChildren(
    chart(layers, families, { height: 200, total, kind: "vocabulary family" }),
  );
}

async function poll(model) {
  let answer;
  try {
    answer = await fetchJson(`/classes/${encodeURIComponent(model)}`);
  } catch (error) {
    setStatus("");
    showError(error.message);
    $("classes").dataset.state = "error";
    return;
  }
  const progress = $("classes-progress");
  progress.hidden = answer.state === "ready" || !answer.layersTotal;
  if (answer.layersTotal) {
    progress.max = answer.layersTotal;
    progress.value = answer.layersDone || 0;
  }
  if (answer.state !== "ready") {
    setStatus(answer.note || `the weight views of ${model} are being computed…`);
    $("classes").dataset.state = "computing";
    setTimeout(() => poll(model), EVERY_MS);
    return;
  }
  setStatus("");
  const perLayer = answer.neuronsPerLayer;
  $("model-name").textContent =
    `${model} · ${answer.layers.length} layers × ${perLayer} neurons`;
  render(answer);
  $("classes").hidden = false;
  $("classes").dataset.state = "ready";
}

function start() {
  const model = modelOf();
  if (!model) {
    showError("the address names no model: /plots/classes/<model>");
    return;
  }
  document.title = `IO classes of ${model} · GLU neurons`;
  $("model-name").textContent = model;
  setStatus(`Loading the classes of ${model}…`);
  poll(model);
  document.body.dataset.ready = "true";
}

start();
