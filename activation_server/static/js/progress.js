// A collation under way (the default dataset that `neurons run` builds in the background): its
// progress above the page, polled while it runs; the open neuron is loaded again when records
// first appear (its first checkpoint) and when the run ends.

import { el, fetchJson } from "./dom.js";
import { goFromLocation } from "./nav.js";
import { $ } from "./state.js";

const EVERY_MS = 3000;
let seen = ""; // what the open page was loaded with: "" none, "partial", "done"

function minutes(seconds) {
  if (seconds == null) return "";
  return seconds < 90 ? `about ${Math.round(seconds)} s left` : `about ${Math.round(seconds / 60)} min left`;
}

function line(p) {
  const what = `${p.model || "a model"} over ${p.corpus || "its corpus"}`;
  if (p.state === "failed" || p.state === "stopped") {
    return `The collation of ${what} ${p.state}${p.why ? `: ${p.why}` : ""}. Run \`neurons run\` again to resume it.`;
  }
  if (p.state !== "collating") return `Collating ${what} in the background: ${p.state}…`;
  const done = p.documentsDone ?? 0;
  const total = p.documentsTotal ?? 0;
  const pct = total ? ` (${Math.floor((100 * done) / total)} %)` : "";
  const rate = p.tokensPerS ? `, ${Math.round(p.tokensPerS)} tokens/s` : "";
  const records = p.partial
    ? "Records over the documents so far are shown."
    : "Records appear at its first checkpoint.";
  return `Collating ${what} in the background: ${done} of ${total} documents${pct}${rate}, ${minutes(p.secondsLeft)}. ${records}`;
}

async function poll() {
  let runs;
  try {
    runs = await fetchJson("/progress");
  } catch {
    runs = null; // the server is busy or gone: try again later
  }
  if (runs) {
    const box = $("progress");
    box.replaceChildren(...runs.map((p) => el("p", { text: line(p) })));
    box.hidden = runs.length === 0;
    const now = runs.length === 0 ? "done" : runs.some((p) => p.partial) ? "partial" : "";
    const waiting = !$("error").hidden || $("record").dataset.state === "done";
    if (now !== seen && seen !== "done" && waiting && now) goFromLocation();
    seen = now;
    if (runs.length === 0) return; // nothing under way: stop asking
  }
  setTimeout(poll, EVERY_MS);
}

export function watchProgress() {
  seen = "";
  poll();
}
