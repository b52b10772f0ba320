// "Try your own text": the open neuron's values on any text, from POST /activations.

import { fetchJson, fmt } from "./dom.js";
import { $, currentDataset, datasetKey, state } from "./state.js";
import { colouredTokens } from "./tokens.js";

function liveError(message) {
  $("live-error").textContent = message;
  $("live-error").hidden = false;
}

export async function runLive() {
  const dataset = currentDataset();
  const current = state.current;
  $("live-error").hidden = true;
  $("live-output").replaceChildren();
  if (!dataset || !current || current.key !== datasetKey(dataset)) {
    liveError("open a neuron first");
    return;
  }
  if (!dataset.model) {
    liveError(`the dataset "${dataset.shortName}" names no model to run`);
    return;
  }
  const text = $("live-text").value;
  if (!text.trim()) {
    liveError("type some text first");
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
      colouredTokens(result.tokens, trace.values, { hook: body.hook, labels: trace.quadrants }),
    );
    const strongest = Math.max(...trace.values.map(Math.abs));
    $("live-status").textContent = `${result.tokens.length} tokens · max |${body.hook}| ${fmt(strongest)}`;
  } catch (error) {
    $("live-status").textContent = "";
    liveError(error.message);
  } finally {
    $("live-run").disabled = false;
  }
}
