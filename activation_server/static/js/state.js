// What the page knows: the server's vocabulary and catalog, and the neuron on show.

export const state = {
  schema: null, // GET /schema: hooks (with labels) and quadrants, in the server's order
  datasets: [], // GET /datasets: registry entries, each with its shape where known
  models: {}, // shortName -> model metadata
  shapes: {}, // dataset key -> {layers: [..], nNeurons}
  current: null, // {key, layer, neuron}
  record: null, // the GLU record with examples, for re-colouring
  loadId: 0, // guards against answers to superseded requests
};

export const CONTEXT = 12; // tokens shown on each side of an example's max

export const $ = (id) => document.getElementById(id);

/** The hooks in the vocabulary's order. */
export function hookOrder() {
  return state.schema ? state.schema.hooks.map((h) => h.hook) : [];
}

export function hookLabel(hook) {
  const found = state.schema && state.schema.hooks.find((h) => h.hook === hook);
  return found ? found.label : hook;
}

export function quadrantShort(name) {
  const found = state.schema && state.schema.quadrants.find((q) => q.name === name);
  return found ? found.short : name;
}

export function datasetKey(d) {
  return `${d.shortName}/${d.derivedScalarType}`;
}

export function currentDataset() {
  return state.datasets.find((d) => datasetKey(d) === $("dataset").value) || null;
}

/** Remember a dataset's shape (from its /datasets entry), if the entry has one. */
export function rememberShape(entry) {
  if (!entry) return null;
  if (entry.shape) {
    state.shapes[datasetKey(entry)] = {
      layers: entry.shape.layers.map(Number).sort((a, b) => a - b),
      nNeurons: Number(entry.shape.neuronsPerLayer),
    };
  }
  return state.shapes[datasetKey(entry)] || null;
}
