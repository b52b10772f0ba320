// Finding neurons: the strongest neurons of all layers on a text or at one of its tokens
// (POST /search/prompt), and the neurons whose stored top examples peak on a token (GET
// /search/token/<dataset>/<type>). A search is kept in the address,
// /search?dataset=<short>&dst=<type>&text=<text>&token=<i>&top=<n>&find=<token>, to share.

import { el, fetchJson, fmt, setStatus, showError } from "./dom.js";
import { $, datasetKey } from "./state.js";

const TOP = 20; // neurons a prompt search lists unless told otherwise

const page = {
  datasets: [], // the GLU datasets whose model can run
  prompt: null, // the prompt search on show: {text, tokenIndex, top}
  find: null, // the token searched for, as typed
  promptId: 0, // guards against answers to superseded searches
  tokenId: 0,
};

function searchable(d) {
  return d.format === "glu_parquet" && Boolean(d.model);
}

function selected() {
  return page.datasets.find((d) => datasetKey(d) === $("dataset").value) || null;
}

function fillDatasets(models) {
  const groups = new Map();
  for (const d of page.datasets) {
    if (!groups.has(d.model)) groups.set(d.model, []);
    groups.get(d.model).push(d);
  }
  const options = [el("option", { value: "", text: "— choose a dataset —" })];
  for (const [model, datasets] of groups) {
    const label = models[model] ? models[model].userVisibleName : model;
    const group = el("optgroup", { label });
    for (const d of datasets) {
      const text = `${d.userVisibleName} — ${d.derivedScalarType}`;
      group.append(el("option", { value: datasetKey(d), text }));
    }
    options.push(group);
  }
  $("dataset").replaceChildren(...options);
}

/** A token as it reads: spaces kept, a newline shown as ↵. */
function shown(token) {
  return token.replace(/\n/g, "↵");
}

/** A value's cell, blue positive and red negative, as strong as its |value| in the table. */
function valueCell(value, scale) {
  const alpha = scale > 0 ? Math.min(1, Math.abs(value) / scale) : 0;
  const cell = el("td", { class: `value ${value >= 0 ? "pos" : "neg"}`, text: fmt(value) });
  cell.style.backgroundColor =
    value >= 0 ? `rgba(37, 99, 235, ${alpha * 0.65})` : `rgba(220, 38, 38, ${alpha * 0.65})`;
  cell.title = String(value);
  return cell;
}

/** The neuron's number, linking to its page where there is one. */
function neuronCell(hit) {
  const cell = el("td", { class: "neuron" });
  if (hit.page) {
    cell.append(el("a", { href: hit.page, title: "open this neuron", text: hit.neuron }));
  } else {
    const why = "no dataset of this model and type is registered";
    cell.append(el("span", { title: why, text: hit.neuron }));
  }
  return cell;
}

function row(hit) {
  const attrs = { "data-layer": hit.layer, "data-neuron": hit.neuron };
  return el("tr", attrs, el("td", { text: hit.layer }), neuronCell(hit));
}

// --- the address ----------------------------------------------------------------------------

function writeAddress() {
  const query = new URLSearchParams();
  const dataset = selected();
  if (dataset) {
    query.set("dataset", dataset.shortName);
    query.set("dst", dataset.derivedScalarType);
  }
  if (page.prompt) {
    query.set("text", page.prompt.text);
    if (page.prompt.tokenIndex !== null) query.set("token", page.prompt.tokenIndex);
    if (page.prompt.top !== TOP) query.set("top", page.prompt.top);
  }
  if (page.find !== null) query.set("find", page.find);
  const search = query.toString();
  const address = search ? `/search?${search}` : "/search";
  if (address !== window.location.pathname + window.location.search) {
    window.history.replaceState(null, "", address);
  }
}

function wholeNumber(text, what, { min = 0, max = Infinity } = {}) {
  const trimmed = String(text).trim();
  const value = Number(trimmed);
  if (!/^-?\d+$/.test(trimmed) || value < min || value > max) {
    const range = max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`;
    throw new Error(`${what} must be a whole number ${range}, not "${text}"`);
  }
  return value;
}

/** The search in the address, if any, run as if typed. */
function fromAddress() {
  const query = new URLSearchParams(window.location.search);
  const short = query.get("dataset");
  if (short !== null) {
    const ofName = page.datasets.filter((d) => d.shortName === short);
    const dst = query.get("dst");
    const found = dst ? ofName.find((d) => d.derivedScalarType === dst) : ofName[0];
    if (!found) {
      showError(`unknown dataset "${short}${dst ? `/${dst}` : ""}"; choose one of the list`);
      return;
    }
    $("dataset").value = datasetKey(found);
  } else if (page.datasets.length) {
    // a dataset whose file is here (its shape is known) first
    $("dataset").value = datasetKey(page.datasets.find((d) => d.shape) || page.datasets[0]);
  }
  const text = query.get("text");
  if (query.has("top")) $("top").value = query.get("top");
  if (text !== null) {
    $("text").value = text;
    let tokenIndex = null;
    try {
      if (query.has("token")) tokenIndex = wholeNumber(query.get("token"), "token", { min: -1e6 });
    } catch (error) {
      showError(error.message);
      return;
    }
    runPrompt(text, tokenIndex);
  }
  const find = query.get("find");
  if (find !== null) {
    $("token").value = find;
    runToken();
  }
}

// --- prompt search --------------------------------------------------------------------------

function chip(label, pressed, onClick, attrs = {}) {
  const button = el("button", {
    type: "button",
    class: "chip",
    "aria-pressed": String(pressed),
    ...attrs,
  });
  button.textContent = label;
  button.addEventListener("click", onClick);
  return button;
}

function renderChips(body, text, top) {
  const peaks = new Map(); // position -> how many listed neurons peak there (whole text)
  if (body.tokenIndex === null) {
    for (const hit of body.neurons) peaks.set(hit.position, (peaks.get(hit.position) || 0) + 1);
  }
  const chips = [
    chip("whole text", body.tokenIndex === null, () => runPrompt(text, null, top), {
      class: "chip whole",
      title: "the strongest neurons over the whole text",
    }),
  ];
  body.tokens.forEach((token, i) => {
    const button = chip(shown(token), body.tokenIndex === i, () => runPrompt(text, i, top), {
      "data-index": i,
      title: `token ${i} (id ${body.tokenIds[i]})`,
    });
    if (peaks.has(i)) {
      button.classList.add("peak");
      button.title += ` · ${peaks.get(i)} of the listed neurons peak here`;
    }
    chips.push(button);
  });
  $("chips").replaceChildren(...chips);
}

function renderPrompt(body, text, top) {
  renderChips(body, text, top);
  const where =
    body.tokenIndex === null
      ? "over the whole text"
      : `at token ${body.tokenIndex} “${shown(body.tokens[body.tokenIndex])}”`;
  const pages = body.dataset
    ? `; each neuron links to its page in ${body.dataset}`
    : "; no dataset of this model and type is registered, so no pages";
  $("prompt-meta").textContent =
    `${body.neurons.length} neurons of ${body.model} by |${body.hook}| ${where}, ` +
    `strongest first (${body.tokens.length} tokens)${pages}.`;
  const scale = Math.max(0, ...body.neurons.map((h) => Math.abs(h.value)));
  const rows = body.neurons.map((hit) => {
    const tr = row(hit);
    tr.append(
      valueCell(hit.value, scale),
      el("td", { class: "token" }, el("code", { text: shown(hit.token) })),
      el("td", { class: "quadrant", text: hit.quadrant || "—" }),
    );
    return tr;
  });
  $("prompt-table").tBodies[0].replaceChildren(...rows);
  const results = $("prompt-results");
  results.dataset.tokenIndex = body.tokenIndex === null ? "" : String(body.tokenIndex);
  results.hidden = false;
}

async function runPrompt(text, tokenIndex = null, top = null) {
  showError("");
  const dataset = selected();
  if (!dataset) {
    showError("choose a dataset first");
    return;
  }
  if (!text.trim()) {
    showError("type some text first");
    return;
  }
  try {
    top = top ?? wholeNumber($("top").value, "top", { min: 1, max: 1000 });
  } catch (error) {
    showError(error.message);
    return;
  }
  const id = ++page.promptId;
  const results = $("prompt-results");
  results.dataset.state = "loading";
  setStatus(`Searching… (${dataset.model})`);
  $("search").disabled = true;
  try {
    const body = await fetchJson("/search/prompt", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: dataset.model,
        text,
        dst: dataset.derivedScalarType,
        tokenIndex,
        topNeurons: top,
        skipFirst: $("skip-first").checked,
        dataset: dataset.shortName,
      }),
    });
    if (id !== page.promptId) return;
    page.prompt = { text, tokenIndex: body.tokenIndex, top };
    renderPrompt(body, text, top);
    results.dataset.state = "done";
    setStatus("");
    writeAddress();
  } catch (error) {
    if (id !== page.promptId) return;
    results.dataset.state = "error";
    setStatus("");
    showError(error.message);
  } finally {
    if (id === page.promptId) $("search").disabled = false;
  }
}

// --- token search ---------------------------------------------------------------------------

function tokenError(message) {
  $("token-error").textContent = message || "";
  $("token-error").hidden = !message;
}

function renderToken(body) {
  const quadrants = (counts) =>
    Object.entries(counts)
      .map(([name, n]) => `${name} ${n}`)
      .join(" · ");
  $("token-meta").textContent =
    `${body.examples.toLocaleString("en")} of the ${body.indexed.toLocaleString("en")} stored ` +
    `top examples of ${body.dataset}'s ${body.hook} peak on “${shown(body.token)}” ` +
    `(id ${body.tokenId}); ` +
    `${body.neurons.length} neurons, most such examples first.`;
  const scale = Math.max(0, ...body.neurons.map((h) => Math.abs(h.maxValue)));
  const rows = body.neurons.map((hit) => {
    const tr = row(hit);
    tr.append(
      el("td", { class: "count", text: hit.count }),
      valueCell(hit.maxValue, scale),
      el("td", { class: "quadrant", text: quadrants(hit.quadrants) }),
    );
    return tr;
  });
  $("token-table").tBodies[0].replaceChildren(...rows);
  $("token-results").hidden = false;
}

async function runToken() {
  tokenError("");
  const dataset = selected();
  const token = $("token").value;
  if (!dataset) {
    tokenError("choose a dataset first");
    return;
  }
  if (!token) {
    tokenError("type a token first, e.g. ' king'");
    return;
  }
  const id = ++page.tokenId;
  const results = $("token-results");
  results.dataset.state = "loading";
  $("token-status").textContent = "Searching…";
  $("find").disabled = true;
  const short = encodeURIComponent(dataset.shortName);
  const dst = encodeURIComponent(dataset.derivedScalarType);
  try {
    const query = `token=${encodeURIComponent(token)}`;
    const body = await fetchJson(`/search/token/${short}/${dst}?${query}`);
    if (id !== page.tokenId) return;
    page.find = token;
    renderToken(body);
    results.dataset.state = "done";
    writeAddress();
  } catch (error) {
    if (id !== page.tokenId) return;
    results.dataset.state = "error";
    results.hidden = true;
    tokenError(error.message);
  } finally {
    if (id === page.tokenId) {
      $("token-status").textContent = "";
      $("find").disabled = false;
    }
  }
}

// --- the page -------------------------------------------------------------------------------

function listen() {
  $("prompt-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runPrompt($("text").value, null);
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      runPrompt($("text").value, null);
    }
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runToken();
  });
  $("dataset").addEventListener("change", () => {
    // the answers on show belong to the dataset before
    page.promptId += 1;
    page.tokenId += 1;
    page.prompt = null;
    page.find = null;
    $("prompt-results").hidden = true;
    $("token-results").hidden = true;
    showError("");
    tokenError("");
    writeAddress();
  });
}

async function start() {
  listen();
  setStatus("Loading datasets…");
  let datasets;
  let models;
  try {
    [datasets, models] = await Promise.all([fetchJson("/datasets"), fetchJson("/models")]);
  } catch (error) {
    setStatus("");
    showError(`could not list the datasets: ${error.message}`);
    return;
  }
  setStatus("");
  page.datasets = datasets.filter(searchable);
  fillDatasets(Object.fromEntries(models.map((m) => [m.shortName, m])));
  if (!page.datasets.length) {
    showError("no GLU dataset with a model to run is registered");
  } else {
    fromAddress();
  }
  document.body.dataset.ready = "true";
}

start();
