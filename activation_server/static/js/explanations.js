// A neuron's explanations and their scores (GET /explanations/...): the best of each
// explanation dataset (the positive activations', each GLU quadrant's, published ones), an
// "Explain" button (POST /explain, as TDB's viewer asks) and a box to score your own text
// (POST /score), whose simulated values are drawn under the real ones, token by token.

import { el, fetchJson, fmt } from "./dom.js";
import { $, quadrantShort, state } from "./state.js";
import { colouredTokens } from "./tokens.js";

let shown = null; // {dataset, layer, neuron, loadId}

function node(extra = {}) {
  const { dataset, layer, neuron } = shown;
  return {
    dst: dataset.derivedScalarType,
    layerIndex: layer,
    activationIndex: neuron,
    datasets: [dataset.shortName],
    ...extra,
  };
}

function post(url, body) {
  const headers = { "Content-Type": "application/json" };
  return fetchJson(url, { method: "POST", headers, body: JSON.stringify(body) });
}

function targetName(view) {
  if (view.quadrant) return `quadrant ${quadrantShort(view.quadrant)}`;
  return view.name.endsWith("-explanations") ? "positive activations" : view.name;
}

function render(views) {
  const body = $("explanations-body");
  if (!views.length) {
    const none = "No explanation yet: Explain asks the model.";
    body.replaceChildren(el("p", { class: "meta", text: none }));
    return;
  }
  const rows = views.map((view) => {
    const [best, ...others] = view.explanations;
    const text = el("td", { class: "explanation" }, el("em", { text: best.explanation }));
    if (others.length) {
      const more = others.map((o) => `${o.explanation} (${fmt(o.score)})`).join(" · ");
      text.append(el("div", { class: "meta", text: `also: ${more}` }));
    }
    return el(
      "tr",
      {},
      el("td", { text: targetName(view) }),
      text,
      el("td", { class: "value", text: fmt(best.score), title: "correlation of the simulation" }),
    );
  });
  const head = el(
    "tr",
    {},
    el("th", { text: "of" }),
    el("th", { text: "explanation" }),
    el("th", { text: "score" }),
  );
  const table = el("table", { class: "hits" }, el("thead", {}, head), el("tbody", {}, ...rows));
  body.replaceChildren(table);
}

async function refresh() {
  const { dataset, layer, neuron, loadId } = shown;
  const name = encodeURIComponent(dataset.shortName);
  const url = `/explanations/${name}/${dataset.derivedScalarType}/${layer}/${neuron}`;
  try {
    const views = await fetchJson(url);
    if (loadId === state.loadId) render(views);
  } catch (error) {
    if (loadId === state.loadId) $("explanations-body").textContent = error.message;
  }
}

export function showExplanations(dataset, layer, neuron, loadId) {
  shown = { dataset, layer, neuron, loadId };
  $("explanations").hidden = false;
  $("explain-status").textContent = "";
  $("score-output").replaceChildren();
  const quadrants = (state.schema && state.schema.quadrants) || [];
  const options = [el("option", { value: "", text: "positive activations" })];
  if (dataset.format === "glu_parquet") {
    for (const q of quadrants) {
      options.push(el("option", { value: q.name, text: `quadrant ${q.short}` }));
    }
  }
  $("score-quadrant").replaceChildren(...options);
  $("explanations-body").textContent = "Loading explanations…";
  refresh();
}

async function explain() {
  if (!shown) return;
  const { loadId } = shown;
  $("explain").disabled = true;
  $("explain-status").textContent = "Explaining (candidates written and scored by simulation)…";
  try {
    await post("/explain", node());
    if (loadId === state.loadId) $("explain-status").textContent = "";
    await refresh();
  } catch (error) {
    if (loadId === state.loadId) $("explain-status").textContent = error.message;
  } finally {
    $("explain").disabled = false;
  }
}

function drawSequences(sequences) {
  return sequences.map((s) =>
    el(
      "div",
      { class: "simulated" },
      el("div", { class: "meta", text: "real" }),
      colouredTokens(s.tokens, s.trueActivations),
      el("div", { class: "meta", text: "simulated (0-10)" }),
      colouredTokens(s.tokens, s.expectedActivations),
    ),
  );
}

async function score(event) {
  event.preventDefault();
  if (!shown) return;
  const { loadId } = shown;
  const text = $("score-text").value;
  const quadrant = $("score-quadrant").value || undefined;
  $("score-output").replaceChildren(el("p", { class: "meta", text: "Scoring…" }));
  try {
    const result = await post("/score", node({ explanation: text, quadrant }));
    if (loadId !== state.loadId) return;
    const line = el("p", {}, el("em", { text }), ` score ${fmt(result.score)}`);
    $("score-output").replaceChildren(line, ...drawSequences(result.sequences || []));
    refresh();
  } catch (error) {
    if (loadId !== state.loadId) return;
    $("score-output").replaceChildren(el("p", { class: "error", text: error.message }));
  }
}

$("explain").addEventListener("click", explain);
$("score-form").addEventListener("submit", score);
