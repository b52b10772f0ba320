// "Intervene": the open neuron zeroed, clamped or scaled on the text of "Try your own text",
// from POST /intervene: per token the next-token prediction before and after, the loss change,
// and the neuron's direct effect on a chosen token's logit.

import { el, fetchJson, fmt } from "./dom.js";
import { $, currentDataset, datasetKey, state } from "./state.js";

function interventionError(message) {
  $("intervene-error").textContent = message;
  $("intervene-error").hidden = false;
}

/** The quadrants of the vocabulary (GET /schema), as "Where" choices. */
export function fillQuadrants() {
  const quadrants = (state.schema && state.schema.quadrants) || [];
  const options = [el("option", { value: "", text: "every token" })];
  for (const q of quadrants) {
    options.push(el("option", { value: q.name, text: `only in ${q.name}` }));
  }
  $("intervene-quadrant").replaceChildren(...options);
}

function predictions(top) {
  return top.map((t) => `${JSON.stringify(t.token)} ${(t.probability * 100).toFixed(1)}%`).join(", ");
}

function row(change, withEffect) {
  const delta = change.lossChange;
  const cells = [
    el("td", { class: "token-cell", text: JSON.stringify(change.token) }),
    el("td", { text: change.quadrant || "—" }),
    el("td", { text: `${fmt(change.activationBefore)} → ${fmt(change.activationAfter)}` }),
    el("td", { text: predictions(change.topBefore) }),
    el("td", { text: predictions(change.topAfter) }),
    el("td", {
      class: delta > 0 ? "worse" : delta < 0 ? "better" : "",
      text: delta === null ? "—" : (delta > 0 ? "+" : "") + fmt(delta),
    }),
  ];
  if (withEffect) cells.push(el("td", { text: fmt(change.directEffect) }));
  return el("tr", { class: change.intervened ? "intervened" : "" }, ...cells);
}

export function renderIntervention(result) {
  const withEffect = result.directEffectToken !== null;
  const heads = ["token", "quadrant", "neuron", "next token before", "after", "loss change"];
  if (withEffect) heads.push(`direct effect on ${JSON.stringify(result.directEffectToken)}`);
  const table = el(
    "table",
    { class: "intervention" },
    el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...result.tokens.map((c) => row(c, withEffect))),
  );
  $("intervene-output").replaceChildren(table);
}

export async function runIntervention() {
  const dataset = currentDataset();
  const current = state.current;
  $("intervene-error").hidden = true;
  $("intervene-output").replaceChildren();
  if (!dataset || !current || current.key !== datasetKey(dataset)) {
    interventionError("open a neuron first");
    return;
  }
  if (!dataset.model) {
    interventionError(`the dataset "${dataset.shortName}" names no model to run`);
    return;
  }
  const text = $("live-text").value;
  if (!text.trim()) {
    interventionError("type some text in “Try your own text” first");
    return;
  }
  const body = {
    model: dataset.model,
    text,
    layer: current.layer,
    neuron: current.neuron,
    mode: $("intervene-mode").value,
    value: Number($("intervene-value").value || 0),
  };
  if ($("intervene-quadrant").value) body.quadrant = $("intervene-quadrant").value;
  if ($("intervene-token").value) body.directEffectToken = $("intervene-token").value;
  $("intervene-status").textContent = `Running ${dataset.model} twice…`;
  $("intervene-run").disabled = true;
  try {
    const result = await fetchJson("/intervene", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (state.current !== current) return;
    renderIntervention(result);
    const changed = result.tokens.filter((t) => t.intervened).length;
    $("intervene-status").textContent =
      `${changed} of ${result.tokens.length} tokens changed · mean loss change ${fmt(result.meanLossChange)}`;
  } catch (error) {
    $("intervene-status").textContent = "";
    interventionError(error.message);
  } finally {
    $("intervene-run").disabled = false;
  }
}
