// What a neuron reads and writes, from its model's weights alone (GET /weights/...): its IO
// class and vocabulary family, the three cosines, and the tokens it promotes and suppresses
// through the unembedding, and whose embeddings open its gate and drive its in. Filled in after
// the record, at once (the server computes one neuron's view alone); gate and in are read through
// the pre-MLP norm's scale ("folded"), the raw rows' cosines and class on a second row. Should
// the server answer 503, its note is shown and asked again every 2 s, until another neuron opens.

import { el, fetchJson, fmt } from "./dom.js";
import { $, state } from "./state.js";

const EVERY_MS = 2000;
const LISTS = [
  ["promotes", "Promotes", "logits it raises when positive"],
  ["suppresses", "Suppresses", "logits it lowers when positive"],
  ["opensGate", "Opens its gate", "embeddings"],
  ["closesGate", "Closes its gate", "embeddings"],
  ["drivesInUp", "Drives its in up", "embeddings"],
  ["drivesInDown", "Drives its in down", "embeddings"],
];
const COSINES = [
  ["cosGateIn", "cos(gate, in)"],
  ["cosGateOut", "cos(gate, out)"],
  ["cosInOut", "cos(in, out)"],
];
let timer = null;

export function classesPath(model) {
  return `/plots/classes/${encodeURIComponent(model)}`;
}

/** A token readable in a list: line breaks and tabs as signs, spaces kept (white-space: pre). */
export function shownToken(token) {
  return token.replaceAll("\n", "↵").replaceAll("\t", "⇥") || "∅";
}

/** Hide the panel and stop asking for the neuron that was on show. */
export function clearWeights() {
  clearTimeout(timer);
  timer = null;
  $("weights").hidden = true;
  $("weights").dataset.state = "";
  $("weights-body").replaceChildren();
}

function say(node, panelState) {
  $("weights").hidden = false;
  $("weights").dataset.state = panelState;
  $("weights-body").replaceChildren(node);
}

/** Fetch and show the weight views of the record's neuron; `loadId` is the record's load. */
export async function showWeights(model, layer, neuron, loadId) {
  clearTimeout(timer);
  if (loadId !== state.loadId) return;
  $("weights-model").textContent = model ? ` · from the weights of ${model}` : "";
  if (!model) {
    say(el("p", { class: "note", text: "The dataset names no model." }), "error");
    return;
  }
  if ($("weights").dataset.state !== "computing") {
    say(el("p", { class: "meta", text: "Reading the weights…" }), "loading");
  }
  const path = `/weights/${encodeURIComponent(model)}/${layer}/${neuron}`;
  let view;
  try {
    view = await fetchJson(path);
  } catch (error) {
    if (loadId !== state.loadId) return;
    if (error.status === 503) {
      say(el("p", { class: "note", role: "status", text: error.message }), "computing");
      timer = setTimeout(() => showWeights(model, layer, neuron, loadId), EVERY_MS);
    } else {
      say(el("p", { class: "error", text: error.message }), "error");
    }
    return;
  }
  if (loadId !== state.loadId) return;
  say(render(view), "done");
}

function render(view) {
  const family = view.family || "none";
  const line = el(
    "p",
    { id: "weights-class" },
    "IO class ",
    el("b", { "data-io-class": view.ioClass, text: view.ioClass }),
    " · vocabulary family ",
    el("b", { "data-family": view.family || "", text: family }),
    el("span", {
      class: "meta",
      text: ` (skew ${fmt(view.skew)}, kurtosis ${fmt(view.kurtosis)}) · `,
    }),
    el("a", { href: classesPath(view.model), text: "classes of every layer" }),
  );
  const head = el("tr", {}, el("th", { text: "" }));
  const row = el("tr", {}, el("th", { text: view.folded ? "folded" : "weights" }));
  const raw = el("tr", { class: "meta" }, el("th", { text: "raw rows" }));
  for (const [key, label] of COSINES) {
    head.append(el("th", { text: label }));
    row.append(el("td", { "data-cos": key, text: fmt(view[key]) }));
    raw.append(el("td", { "data-raw-cos": key, text: fmt(view.raw[key]) }));
  }
  head.append(el("th", { text: "IO class" }));
  row.append(el("td", { text: view.ioClass }));
  raw.append(el("td", { "data-raw-class": view.raw.ioClass, text: view.raw.ioClass }));
  const cosines = el(
    "table",
    { id: "weights-cosines" },
    el("thead", {}, head),
    el("tbody", {}, row, ...(view.folded ? [raw] : [])),
  );
  const folded = el("p", {
    class: "meta",
    text: view.folded
      ? "Gate and in as the neuron reads them: through the scale of the norm before its MLP " +
        "(folded, as TransformerLens's fold_ln and the IO classes' authors read them)."
      : "The model has no learned scale before its MLPs: the raw rows.",
  });
  const lists = el("div", { class: "wlists" });
  for (const [key, title, what] of LISTS) {
    const items = view[key] || [];
    const list = el("ol", { class: "wtokens", "data-list": key });
    for (const t of items) {
      list.append(
        el(
          "li",
          { title: `token ${t.tokenId}: ${t.value}` },
          el("code", { text: shownToken(t.token) }),
          el("span", { class: "meta", text: ` ${fmt(t.value)}` }),
        ),
      );
    }
    if (!items.length) list.append(el("li", { class: "meta", text: "none (no such weights)" }));
    const heading = el("h4", {}, title, el("span", { class: "meta", text: ` · ${what}` }));
    lists.append(el("div", {}, heading, list));
  }
  const refactored = view.refactored
    ? el("p", { class: "meta", text: "in and out are those of the refactored model" })
    : "";
  return el("div", {}, line, cosines, folded, lists, refactored);
}
