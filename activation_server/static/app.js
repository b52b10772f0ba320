// The neuron viewer: reads /datasets, /models, /neuron_record and /activations, and keeps the
// current neuron in the address (/neuron/<dataset>/<type>/<layer>/<neuron>) so it can be shared.
"use strict";

const HOOK_ORDER = ["hook_pre", "hook_pre_linear", "swish", "hook_post"];
const HOOK_LABEL = {
  hook_pre: "gate (hook_pre)",
  hook_pre_linear: "in (hook_pre_linear)",
  swish: "act(gate) (swish)",
  hook_post: "act(gate)·in (hook_post)",
};
const QUADRANT_SHORT = { "gate+_in+": "++", "gate+_in-": "+−", "gate-_in+": "−+", "gate-_in-": "−−" };
const CONTEXT = 12;

const $ = (id) => document.getElementById(id);

const state = {
  datasets: [], // registry metadata from /datasets
  models: {}, // shortName -> model metadata
  shapes: {}, // dataset key -> {layers: [..], nNeurons}
  current: null, // {key, layer, neuron}
  record: null, // the GLU record with examples, for re-colouring
  loadId: 0, // guards against answers to superseded requests
};

// -- small helpers ------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function datasetKey(d) {
  return `${d.shortName}/${d.derivedScalarType}`;
}

function currentDataset() {
  return state.datasets.find((d) => datasetKey(d) === $("dataset").value) || null;
}

function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  return abs >= 1000 || abs < 0.001 ? value.toExponential(2) : value.toPrecision(3);
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(2)}%`;
}

/** The server's `detail`, readable: a string, or FastAPI's list of validation problems. */
function detailText(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return `the server answered ${status}`;
}

async function fetchJson(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error(`could not reach the server (${error.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // an HTML or empty error page: fall back to the status below
  }
  if (!response.ok) throw new Error(detailText(body, response.status));
  return body;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function setStatus(message) {
  $("status").textContent = message || "";
}

// -- colouring ----------------------------------------------------------------------------

/** A text whose tokens are coloured by value: blue positive, red negative, scaled by the
 * largest |value| so that every example uses its full range; the strongest is outlined. */
function colouredTokens(tokens, values, { hook = "", labels = null, maxAt = null } = {}) {
  const box = el("div", { class: labels ? "text live" : "text" });
  const usable = values && values.length === tokens.length;
  const scale = usable ? Math.max(0, ...values.map((v) => Math.abs(v))) : 0;
  let strongest = usable ? maxAt : null;
  if (usable && strongest === null && scale > 0) {
    strongest = values.findIndex((v) => Math.abs(v) === scale);
  }
  tokens.forEach((token, i) => {
    const span = el("span", { class: "tok" });
    span.textContent = token.replace(/\n/g, "↵\n");
    if (usable) {
      const value = values[i];
      const alpha = scale > 0 ? Math.min(1, Math.abs(value) / scale) : 0;
      span.classList.add("coloured");
      span.style.backgroundColor =
        value >= 0 ? `rgba(37, 99, 235, ${alpha * 0.65})` : `rgba(220, 38, 38, ${alpha * 0.65})`;
      let title = `${hook ? `${hook} = ` : ""}${value.toFixed(4)}`;
      if (labels && labels[i]) title += ` · quadrant ${labels[i]}`;
      span.title = title;
      span.dataset.value = String(value);
    }
    if (i === strongest) span.classList.add("max");
    if (labels) {
      const cell = el("span", { class: "cell" }, span);
      const quadrant = labels[i];
      cell.append(
        el("span", {
          class: "quadrant-label",
          text: quadrant ? QUADRANT_SHORT[quadrant] || quadrant : "·",
          title: quadrant || "no quadrant (a zero)",
        }),
      );
      box.append(cell);
    } else {
      box.append(span);
    }
  });
  return box;
}

// -- navigation ---------------------------------------------------------------------------

function neuronPath(key, layer, neuron) {
  const [shortName, dst] = key.split("/");
  return `/neuron/${encodeURIComponent(shortName)}/${encodeURIComponent(dst)}/${layer}/${neuron}`;
}

function parseLocation() {
  const match = window.location.pathname.match(/^\/neuron\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)\/?$/);
  if (!match) return null;
  const [, shortName, dst, layer, neuron] = match.map(decodeURIComponent);
  return { key: `${shortName}/${dst}`, layer, neuron };
}

function wholeNumber(text, what) {
  const trimmed = String(text).trim();
  if (!/^\d+$/.test(trimmed)) throw new Error(`${what} must be a whole number ≥ 0, not "${text}"`);
  return Number(trimmed);
}

/** Go to a neuron: record it in the address (unless it came from there) and load it. */
function go(key, layer, neuron, { push = true } = {}) {
  const dataset = state.datasets.find((d) => datasetKey(d) === key);
  if (!dataset) {
    showError(`unknown dataset "${key}"; choose one of the list`);
    return;
  }
  $("dataset").value = key;
  $("layer").value = layer;
  $("neuron").value = neuron;
  const path = neuronPath(key, layer, neuron);
  if (push && window.location.pathname !== path) {
    window.history.pushState({ key, layer, neuron }, "", path);
  }
  load(dataset, layer, neuron);
}

function goFromForm() {
  const key = $("dataset").value;
  if (!key) {
    showError("choose a dataset first");
    return;
  }
  try {
    go(key, wholeNumber($("layer").value, "layer"), wholeNumber($("neuron").value, "neuron"));
  } catch (error) {
    showError(error.message);
  }
}

function goFromLocation() {
  const wanted = parseLocation();
  if (!wanted) {
    showHome();
    return;
  }
  if (!state.datasets.some((d) => datasetKey(d) === wanted.key)) {
    showError(`unknown dataset "${wanted.key}"; choose one of the list`);
    return;
  }
  try {
    go(wanted.key, wholeNumber(wanted.layer, "layer"), wholeNumber(wanted.neuron, "neuron"), {
      push: false,
    });
  } catch (error) {
    showError(error.message);
  }
}

function showHome() {
  state.loadId += 1;
  state.current = null;
  showError("");
  setStatus("");
  $("record").hidden = true;
  $("intro").hidden = false;
}

/** "0-1", "0,3,5-7" -> [0, 1] / [0, 3, 5, 6, 7], as the server writes layer ranges. */
function parseRanges(text) {
  const out = [];
  for (const part of text.split(",")) {
    const [lo, hi] = part.trim().split("-").map(Number);
    for (let i = lo; i <= (Number.isNaN(hi) || hi === undefined ? lo : hi); i += 1) out.push(i);
  }
  return out;
}

function rememberShape(key, fileMetadata) {
  if (fileMetadata && Array.isArray(fileMetadata.layers) && fileMetadata.n_neurons) {
    state.shapes[key] = {
      layers: fileMetadata.layers.map(Number).sort((a, b) => a - b),
      nNeurons: Number(fileMetadata.n_neurons),
    };
  }
}

/** A dataset's layers and neurons per layer: from a loaded record's file metadata, or else
 * from the range the server names when asked for a layer that does not exist. */
async function shapeOf(dataset) {
  const key = datasetKey(dataset);
  if (state.shapes[key]) return state.shapes[key];
  const url = `/neuron_record/${encodeURIComponent(dataset.shortName)}/${encodeURIComponent(
    dataset.derivedScalarType,
  )}/1000000/0`;
  const response = await fetch(url);
  const body = await response.json().catch(() => null);
  const message = detailText(body, response.status);
  const match = message.match(/valid layers are ([\d,\- ]+); neurons 0-(\d+)/);
  if (!match) {
    throw new Error(
      "Random needs the dataset's layer and neuron ranges, which the server does not give for it",
    );
  }
  state.shapes[key] = { layers: parseRanges(match[1]), nNeurons: Number(match[2]) + 1 };
  return state.shapes[key];
}

async function goRandom() {
  const dataset = currentDataset();
  if (!dataset) {
    showError("choose a dataset first");
    return;
  }
  try {
    const shape = await shapeOf(dataset);
    const layer = shape.layers[Math.floor(Math.random() * shape.layers.length)];
    go(datasetKey(dataset), layer, Math.floor(Math.random() * shape.nNeurons));
  } catch (error) {
    showError(error.message);
  }
}

/** The neighbouring neuron, crossing into the next or previous layer when the shape is known. */
function step(delta) {
  const dataset = currentDataset();
  if (!dataset) {
    showError("choose a dataset first");
    return;
  }
  let layer;
  let neuron;
  try {
    layer = wholeNumber($("layer").value, "layer");
    neuron = wholeNumber($("neuron").value, "neuron") + delta;
  } catch (error) {
    showError(error.message);
    return;
  }
  const shape = state.shapes[datasetKey(dataset)];
  if (shape) {
    const at = shape.layers.indexOf(layer);
    if (neuron >= shape.nNeurons && at >= 0 && at + 1 < shape.layers.length) {
      layer = shape.layers[at + 1];
      neuron = 0;
    } else if (neuron < 0 && at > 0) {
      layer = shape.layers[at - 1];
      neuron = shape.nNeurons - 1;
    }
  }
  if (neuron < 0) {
    showError("this is the first neuron");
    return;
  }
  go(datasetKey(dataset), layer, neuron);
}

// -- the record ---------------------------------------------------------------------------

function recordUrl(dataset, layer, neuron, query) {
  const base = `/neuron_record/${encodeURIComponent(dataset.shortName)}/${encodeURIComponent(
    dataset.derivedScalarType,
  )}/${layer}/${neuron}`;
  return query ? `${base}?${query}` : base;
}

/** Two steps: the summary (no text, fast), then the dst hook's examples with their text and
 * every hook's values, which need the model and the corpus. The other hooks' top examples
 * (four times the work) are fetched only when asked for. */
async function load(dataset, layer, neuron) {
  const loadId = ++state.loadId;
  const key = datasetKey(dataset);
  state.current = { key, layer, neuron };
  state.record = null;
  showError("");
  $("intro").hidden = true;
  $("record").hidden = true;
  $("examples").replaceChildren();
  $("examples-status").textContent = "";
  $("examples-controls").hidden = true;
  $("record").dataset.state = "loading";
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
  if (!summary.quadrants) {
    renderTdb(summary);
    $("record").dataset.state = "done";
    return;
  }
  rememberShape(key, summary.fileMetadata);
  renderMeta(dataset, summary);
  renderSummary(summary);
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
  const meta = record.fileMetadata || {};
  const parts = [`type ${dataset.derivedScalarType} (${record.hook})`];
  if (dataset.model) parts.push(`model ${dataset.model}`);
  const corpus = meta.corpus || dataset.corpus;
  if (corpus) parts.push(`corpus ${corpus}`);
  if (meta.n_documents != null) parts.push(`${meta.n_documents} documents`);
  if (meta.n_tokens != null) parts.push(`${meta.n_tokens} tokens`);
  if (meta.top_k != null) parts.push(`top ${meta.top_k} per quadrant`);
  const shape = state.shapes[datasetKey(dataset)];
  if (shape) parts.push(`${shape.layers.length} layers × ${shape.nNeurons} neurons`);
  $("meta").textContent = parts.join(" · ");
}

function hooksOf(record) {
  const seen = new Set();
  for (const q of record.quadrants) Object.keys(q.means || {}).forEach((h) => seen.add(h));
  const known = HOOK_ORDER.filter((h) => seen.has(h));
  return known.concat([...seen].filter((h) => !HOOK_ORDER.includes(h)));
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
  for (const h of hooks) head.append(el("th", { title: HOOK_LABEL[h] || h, text: `mean ${h}` }));
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
  $("summary").replaceChildren(table, note);
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
    select.replaceChildren(...hooks.map((h) => el("option", { value: h, text: HOOK_LABEL[h] || h })));
    if (hooks.includes(record.hook)) select.value = record.hook;
  };
  fill($("example-hook"), ordered);
  fill($("colour-hook"), HOOK_ORDER.filter((h) => valueHooks.has(h)));
  $("examples-controls").hidden = ordered.length === 0 || valueHooks.size === 0;
}

/** Top examples by another hook: the record with every hook's examples, fetched once. */
async function examplesBy() {
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

function renderExamples() {
  const record = state.record;
  if (!record) return;
  const byHook = $("example-hook").value || record.hook;
  const colourHook = $("colour-hook").value || byHook;
  const sections = [];
  for (const q of record.quadrants) {
    const examples = (q.examples || {})[byHook] || [];
    const section = el("section", { class: "quadrant", "data-quadrant": q.name });
    section.append(
      el(
        "h3",
        {},
        q.name,
        el("span", {
          class: "meta",
          text: ` · freq ${percent(q.freq)} · top ${examples.length} by ${byHook}`,
        }),
      ),
    );
    if (!examples.length) section.append(el("p", { class: "meta", text: "no examples" }));
    for (const e of examples) {
      const label = el(
        "div",
        { class: "example-label" },
        el("b", { text: fmt(e.value) }),
        el("span", {
          class: "meta",
          text: `doc ${e.documentIndex}${e.position != null ? ` · token ${e.position}` : ""}`,
        }),
      );
      const row = el("div", { class: "example" }, label);
      if (e.tokens) {
        const values = (e.activations || {})[colourHook];
        const maxAt = e.position != null && e.windowStart != null ? e.position - e.windowStart : null;
        row.append(colouredTokens(e.tokens, values, { hook: colourHook, maxAt }));
      }
      section.append(row);
    }
    sections.push(section);
  }
  $("examples").replaceChildren(...sections);
  $("examples-status").textContent = record.contextNote
    ? `Example text is not available: ${record.contextNote}`
    : `Each example: ${CONTEXT} tokens either side of the recorded max, coloured by ${colourHook}.`;
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
    const section = el("section", { class: "quadrant" }, el("h3", { text: `${title} (${records.length})` }));
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

// -- live ---------------------------------------------------------------------------------

async function runLive() {
  const dataset = currentDataset();
  const current = state.current;
  $("live-error").hidden = true;
  $("live-output").replaceChildren();
  if (!dataset || !current || current.key !== datasetKey(dataset)) {
    $("live-error").textContent = "open a neuron first";
    $("live-error").hidden = false;
    return;
  }
  if (!dataset.model) {
    $("live-error").textContent = `the dataset "${dataset.shortName}" names no model to run`;
    $("live-error").hidden = false;
    return;
  }
  const text = $("live-text").value;
  if (!text.trim()) {
    $("live-error").textContent = "type some text first";
    $("live-error").hidden = false;
    return;
  }
  $("live-status").textContent = `Running ${dataset.model}…`;
  $("live-run").disabled = true;
  try {
    const body = await fetchJson("/activations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: dataset.model,
        text,
        layer: current.layer,
        neurons: [current.neuron],
        dst: dataset.derivedScalarType,
      }),
    });
    if (state.current !== current) return;
    const result = body.results[0];
    const trace = result.neurons[0];
    $("live-output").replaceChildren(
      colouredTokens(result.tokens, trace.values, { hook: body.hook, labels: trace.quadrants || null }),
    );
    const strongest = Math.max(...trace.values.map(Math.abs));
    $("live-status").textContent = `${result.tokens.length} tokens · max |${body.hook}| ${fmt(strongest)}`;
  } catch (error) {
    $("live-status").textContent = "";
    $("live-error").textContent = error.message;
    $("live-error").hidden = false;
  } finally {
    $("live-run").disabled = false;
  }
}

// -- start --------------------------------------------------------------------------------

function fillDatasets() {
  const select = $("dataset");
  const groups = new Map();
  for (const d of state.datasets) {
    const model = d.model || "(no model)";
    if (!groups.has(model)) groups.set(model, []);
    groups.get(model).push(d);
  }
  const options = [el("option", { value: "", text: "— choose a dataset —" })];
  for (const [model, datasets] of groups) {
    const label = state.models[model] ? state.models[model].userVisibleName : model;
    const group = el("optgroup", { label });
    for (const d of datasets) {
      const format = d.format === "tdb_json" ? " · neuron-explainer" : "";
      const text = `${d.userVisibleName} — ${d.derivedScalarType}${format}`;
      group.append(el("option", { value: datasetKey(d), text }));
    }
    options.push(group);
  }
  select.replaceChildren(...options);
}

async function start() {
  $("nav").addEventListener("submit", (event) => {
    event.preventDefault();
    goFromForm();
  });
  $("dataset").addEventListener("change", () => {
    if ($("dataset").value) goFromForm();
  });
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  $("random").addEventListener("click", goRandom);
  $("example-hook").addEventListener("change", examplesBy);
  $("colour-hook").addEventListener("change", renderExamples);
  $("live-run").addEventListener("click", runLive);
  $("home").addEventListener("click", (event) => {
    event.preventDefault();
    window.history.pushState({}, "", "/");
    showHome();
  });
  window.addEventListener("popstate", goFromLocation);
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "ArrowRight") step(1);
    else if (event.key === "r") goRandom();
  });
  setStatus("Loading datasets…");
  try {
    const [datasets, models] = await Promise.all([fetchJson("/datasets"), fetchJson("/models")]);
    state.datasets = datasets;
    state.models = Object.fromEntries(models.map((m) => [m.shortName, m]));
  } catch (error) {
    setStatus("");
    showError(`could not list the datasets: ${error.message}`);
    return;
  }
  setStatus("");
  fillDatasets();
  goFromLocation();
  document.body.dataset.ready = "true";
}

start();
