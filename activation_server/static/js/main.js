// The neuron viewer: reads /schema, /datasets, /models, /neuron_record and /activations, and
// keeps the current neuron in the address so it can be shared. ES modules, no build step.

import { el, fetchJson, setStatus, showError } from "./dom.js";
import { fillQuadrants, runIntervention } from "./intervene.js";
import { runLive } from "./live.js";
import { goFromForm, goFromLocation, goRandom, showHome, step } from "./nav.js";
import { watchProgress } from "./progress.js";
import { examplesBy, renderExamples } from "./record.js";
import { $, datasetKey, rememberShape, state } from "./state.js";

function fillDatasets() {
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
  $("dataset").replaceChildren(...options);
}

function listen() {
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
  $("intervene-run").addEventListener("click", runIntervention);
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
}

async function start() {
  listen();
  setStatus("Loading datasets…");
  try {
    const [schema, datasets, models] = await Promise.all([
      fetchJson("/schema"),
      fetchJson("/datasets"),
      fetchJson("/models"),
    ]);
    state.schema = schema;
    state.datasets = datasets;
    state.models = Object.fromEntries(models.map((m) => [m.shortName, m]));
    datasets.forEach(rememberShape);
  } catch (error) {
    setStatus("");
    showError(`could not list the datasets: ${error.message}`);
    return;
  }
  setStatus("");
  fillDatasets();
  fillQuadrants();
  goFromLocation();
  watchProgress();
  document.body.dataset.ready = "true";
}

start();
