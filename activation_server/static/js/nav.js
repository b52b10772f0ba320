// Which neuron is on show: the address (/neuron/<dataset>/<type>/<layer>/<neuron>), the form,
// Prev / Next across layers, and Random within the dataset's shape.

import { fetchJson, setStatus, showError } from "./dom.js";
import { load } from "./record.js";
import { $, currentDataset, datasetKey, rememberShape, state } from "./state.js";

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

export function goFromForm() {
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

export function goFromLocation() {
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

export function showHome() {
  state.loadId += 1;
  state.current = null;
  showError("");
  setStatus("");
  $("record").hidden = true;
  $("intro").hidden = false;
}

/** A dataset's layers and neurons per layer, from the catalog; a remote dataset not opened
 * yet is opened for it (GET /datasets?open=true). */
async function shapeOf(dataset) {
  const key = datasetKey(dataset);
  if (state.shapes[key]) return state.shapes[key];
  const query = `model=${encodeURIComponent(dataset.shortName)}&dst=${dataset.derivedScalarType}`;
  const entries = await fetchJson(`/datasets?${query}&open=true`);
  const entry = entries.find((d) => d.shortName === dataset.shortName);
  const shape = rememberShape(entry);
  if (!shape) {
    const why = (entry && entry.shapeNote) || "the server does not know its layers and neurons";
    throw new Error(`Random needs the dataset's shape: ${why}`);
  }
  return shape;
}

export async function goRandom() {
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
export function step(delta) {
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
