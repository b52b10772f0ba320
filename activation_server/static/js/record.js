// One neuron's record: the quadrant table, then the top examples with their text.

import { el, fetchJson, fmt, percent, setStatus, showError } from "./dom.js";
import {
  $,
  CONTEXT,
  datasetKey,
  hookLabel,
  hookOrder,
  rememberShape,
  state,
} from "./state.js";
import { histogramFigure } from "./histogram.js";
import { colouredTokens } from "./tokens.js";
import { showExplanations } from "./explanations.js";
import { clearWeights, showWeights } from "./weights.js";

export function recordUrl(dataset, layer, neuron, query) {
  const base = `/neuron_record/${encodeURIComponent(dataset.shortName)}/${encodeURIComponent(
    dataset.derivedScalarType,
  )}/${layer}/${neuron}`;
  return query ? `${base}?${query}` : base;
}

/** A dataset opened by this record may now have a known shape (for Next across layers). */
async function refreshShape(dataset) {
  if (state.shapes[datasetKey(dataset)]) return;
  const query = `model=${encodeURIComponent(dataset.shortName)}&dst=${dataset.derivedScalarType}`;
  try {
    const entries = await fetchJson(`/datasets?${query}`);
    rememberShape(entries.find((d) => d.shortName === dataset.shortName));
  } catch {
    // the shape stays unknown: Next and Prev stay within the layer
  }
}

/** Two steps: the summary (no text, fast), then the dst hook's examples with their text and
 * every hook's values, which need the model and the corpus. The other hooks' top examples
 * (four times the work) are fetched only when asked for. */
export async function load(dataset, layer, neuron) {
  const loadId = ++state.loadId;
  state.current = { key: datasetKey(dataset), layer, neuron };
  state.record = null;
  showError("");
  $("intro").hidden = true;
  $("record").hidden = true;
  $("examples").replaceChildren();
  $("examples-status").textContent = "";
  $("examples-controls").hidden = true;
  $("record").dataset.state = "loading";
  clearWeights();
  $("live-output").replaceChildren();
  $("live-error").hidden = true;
  $("live-status").textContent = "";
  document.title = `${dataset.shortName} ${dataset.derivedScalarType} L${layer} N${neuron}`;
  setStatus(`Loading layer ${layer}, neuron ${neuron}…`);
  let summary;
  try {
    summary = await fetchJson(recordUrl(dataset, layer, neuron));
  } catch (error) {
    if (loadId !== state.loadId) return;
    setStatus("");
    showError(error.message);
    return;
  }
  if (loadId !== state.loadId) return;
  setStatus("");
  $("title").textContent = `${dataset.userVisibleName} · layer ${layer} · neuron ${neuron}`;
  $("record").hidden = false;
  showExplanations(dataset, layer, neuron, loadId);
  if (!summary.quadrants) {
    renderTdb(summary);
    $("record").dataset.state = "done";
    return;
  }
  refreshShape(dataset);
  renderMeta(dataset, summary);
  renderSummary(summary);
  // filled in meanwhile: the record does not wait for the weights
  showWeights((summary.dataset || {}).model || dataset.model, layer, neuron, loadId);
  $("examples-status").textContent = "Loading the top examples with their text…";
  let full;
  try {
    full = await fetchJson(
      recordUrl(dataset, layer, neuron, `context=${CONTEXT}&activations=true`),
    );
  } catch (error) {
    if (loadId !== state.loadId) return;
    $("examples-status").textContent = "";
    showError(`examples: ${error.message}`);
    $("record").dataset.state = "done";
    return;
  }
  if (loadId !== state.loadId) return;
  state.record = full;
  setupHookPickers(full);
  renderExamples();
  $("record").dataset.state = "done";
}

function renderMeta(dataset, record) {
  // what the file says of its collation, camelCase (CollationMetadata in the OpenAPI schema)
  const meta = record.fileMetadata || {};
  const parts = [`type ${dataset.derivedScalarType} (${record.hook})`];
  if (dataset.model) parts.push(`model ${dataset.model}`);
  const corpus = meta.corpus || dataset.corpus;
  if (corpus) parts.push(`corpus ${corpus}`);
  if (meta.partial) {
    const { documentsDone: done, documentsTotal: total } = meta.partial;
    parts.push(`partial: ${done} of ${total} documents so far (a collation is under way)`);
  } else if (meta.nDocuments != null) parts.push(`${meta.nDocuments} documents`);
  if (meta.nTokens != null) parts.push(`${meta.nTokens} tokens`);
  if (meta.topK != null) parts.push(`top ${meta.topK} per quadrant`);
  const shape = state.shapes[datasetKey(dataset)];
  if (shape) parts.push(`${shape.layers.length} layers × ${shape.nNeurons} neurons`);
  $("meta").textContent = parts.join(" · ");
}

function hooksOf(record) {
  const seen = new Set();
  for (const q of record.quadrants) Object.keys(q.means || {}).forEach((h) => seen.add(h));
  const known = hookOrder().filter((h) => seen.has(h));
  return known.concat([...seen].filter((h) => !known.includes(h)));
}

/** The strongest recorded value of the dst's hook in a quadrant (examples are the top-k). */
function quadrantMax(quadrant, hook) {
  const examples = (quadrant.examples || {})[hook] || [];
  let best = null;
  for (const e of examples) if (best === null || Math.abs(e.value) > Math.abs(best)) best = e.value;
  return best;
}

function renderSummary(record) {
  const hooks = hooksOf(record);
  const head = el("tr", {}, el("th", { text: "quadrant" }), el("th", { text: "freq" }));
  for (const h of hooks) head.append(el("th", { title: hookLabel(h), text: `mean ${h}` }));
  head.append(el("th", { text: `max ${record.hook}` }));
  const body = el("tbody");
  for (const q of record.quadrants) {
    const row = el("tr", {}, el("th", { scope: "row", text: q.name }));
    const freq = el("td", { text: percent(q.freq) });
    if (q.count != null) freq.title = `${q.count} tokens`;
    row.append(freq);
    for (const h of hooks) row.append(el("td", { text: fmt((q.means || {})[h]) }));
    row.append(el("td", { text: fmt(quadrantMax(q, record.hook)) }));
    body.append(row);
  }
  const table = el("table", { id: "quadrant-table" }, el("thead", {}, head), body);
  const silent = record.quadrants.every((q) => !q.freq);
  const note = silent
    ? el("p", {
        class: "note",
        text: "This neuron is zero on every token of the corpus: no quadrant has any tokens.",
      })
    : "";
  $("summary").replaceChildren(table, note, histogramFigure(record));
}

function setupHookPickers(record) {
  const ordered = hooksOf(record);
  const valueHooks = new Set();
  for (const q of record.quadrants) {
    for (const list of Object.values(q.examples || {})) {
      for (const e of list) Object.keys(e.activations || {}).forEach((h) => valueHooks.add(h));
    }
  }
  const fill = (select, hooks) => {
    select.replaceChildren(...hooks.map((h) => el("option", { value: h, text: hookLabel(h) })));
    if (hooks.includes(record.hook)) select.value = record.hook;
  };
  fill($("example-hook"), ordered);
  fill($("colour-hook"), hookOrder().filter((h) => valueHooks.has(h)));
  $("examples-controls").hidden = ordered.length === 0 || valueHooks.size === 0;
}

/** Top examples by another hook: the record with every hook's examples, fetched once. */
export async function examplesBy() {
  const record = state.record;
  const hook = $("example-hook").value;
  if (!record || record.quadrants.some((q) => (q.examples || {})[hook])) {
    renderExamples();
    return;
  }
  const { key, layer, neuron } = state.current;
  const dataset = state.datasets.find((d) => datasetKey(d) === key);
  const loadId = state.loadId;
  $("examples-status").textContent = `Loading the top examples by ${hook}…`;
  $("example-hook").disabled = true;
  try {
    const full = await fetchJson(
      recordUrl(dataset, layer, neuron, `hooks=all&context=${CONTEXT}&activations=true`),
    );
    if (loadId !== state.loadId) return;
    state.record = full;
    renderExamples();
  } catch (error) {
    if (loadId !== state.loadId) return;
    $("examples-status").textContent = "";
    showError(`examples by ${hook}: ${error.message}`);
  } finally {
    $("example-hook").disabled = false;
  }
}

function exampleRow(e, colourHook) {
  const label = el(
    "div",
    { class: "example-label" },
    el("b", { text: fmt(e.value) }),
    el("span", {
      class: "meta",
      text: `doc ${e.documentIndex}${
        e.position != null ? ` · token ${e.position}` : e.tokens ? " · its opening" : ""
      }`,
    }),
  );
  const row = el("div", { class: "example" }, label);
  if (e.note) row.append(el("p", { class: "meta example-note", text: e.note }));
  if (e.tokens) {
    const values = (e.activations || {})[colourHook];
    const maxAt = e.position != null && e.windowStart != null ? e.position - e.windowStart : null;
    row.append(colouredTokens(e.tokens, values, { hook: colourHook, maxAt }));
  }
  return row;
}

export function renderExamples() {
  const record = state.record;
  if (!record) return;
  const byHook = $("example-hook").value || record.hook;
  const colourHook = $("colour-hook").value || byHook;
  const sections = [];
  for (const q of record.quadrants) {
    const examples = (q.examples || {})[byHook] || [];
    const section = el("section", { class: "quadrant", "data-quadrant": q.name });
    const title = ` · freq ${percent(q.freq)} · top ${examples.length} by ${byHook}`;
    section.append(el("h3", {}, q.name, el("span", { class: "meta", text: title })));
    if (!examples.length) section.append(el("p", { class: "meta", text: "no examples" }));
    for (const e of examples) section.append(exampleRow(e, colourHook));
    sections.push(section);
  }
  $("examples").replaceChildren(...sections);
  const withText = record.quadrants.some((q) =>
    Object.values(q.examples || {}).some((list) => list.some((e) => e.tokens)),
  );
  const note = record.contextNote ? ` (${record.contextNote})` : "";
  $("examples-status").textContent = withText
    ? `Each example: ${CONTEXT} tokens either side of its max, coloured by ${colourHook}${note}.`
    : `Example text is not available${record.contextNote ? `: ${record.contextNote}` : "."}`;
}

/** neuron-explainer records: top activations and a random sample, coloured the same way. */
function renderTdb(record) {
  $("meta").textContent = `max activation ${fmt(record.maxActivation)}`;
  $("summary").replaceChildren();
  const sections = [];
  for (const [title, records] of [
    ["Top activations", record.topActivations || []],
    ["Random sample", record.randomSample || []],
  ]) {
    const heading = el("h3", { text: `${title} (${records.length})` });
    const section = el("section", { class: "quadrant" }, heading);
    for (const r of records) {
      const values = r.activations || [];
      const row = el("div", { class: "example" });
      // neuron-explainer ranks records by their largest (signed) activation
      const top = values.length ? Math.max(...values) : null;
      row.append(el("div", { class: "example-label" }, el("b", { text: fmt(top) })));
      const maxAt = top === null ? null : values.indexOf(top);
      row.append(colouredTokens(r.tokens || [], values, { hook: "activation", maxAt }));
      if (values.length !== (r.tokens || []).length) {
        row.append(el("p", { class: "meta", text: "values are per token pair; not coloured" }));
      }
      section.append(row);
    }
    sections.push(section);
  }
  $("examples").replaceChildren(...sections);
  $("examples-status").textContent = "";
}
