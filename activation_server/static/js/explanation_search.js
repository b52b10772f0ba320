// Search over explanation texts (GET /search/explanations?q=): the stored explanations of every
// registered dataset's neurons holding the query's words, most first, then by score; each row
// opens its neuron's page. The query is kept in the address (?explanations=<text>) to share.

import { el, fetchJson, fmt } from "./dom.js";
import { $, quadrantShort } from "./state.js";

function label(hit) {
  return `${hit.shortName} L${hit.layer} N${hit.neuron}`;
}

async function search(query) {
  $("explanation-status").textContent = "Searching…";
  $("explanation-error").hidden = true;
  try {
    const found = await fetchJson(`/search/explanations?q=${encodeURIComponent(query)}&top=50`);
    const rows = found.hits.map((hit) =>
      el(
        "tr",
        {},
        el("td", {}, el("a", { href: hit.page, text: label(hit) })),
        el("td", { text: hit.quadrant ? quadrantShort(hit.quadrant) : "+" }),
        el("td", { class: "explanation", text: hit.explanation }),
        el("td", { class: "value", text: fmt(hit.score) }),
      ),
    );
    $("explanation-table").querySelector("tbody").replaceChildren(...rows);
    $("explanation-results").hidden = false;
    $("explanation-status").textContent = `${found.hits.length} of ${found.searched} explanations`;
  } catch (error) {
    $("explanation-status").textContent = "";
    $("explanation-error").textContent = error.message;
    $("explanation-error").hidden = false;
  }
}

$("explanation-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = $("explanation-query").value.trim();
  if (!query) return;
  const url = new URL(window.location.href);
  url.searchParams.set("explanations", query);
  window.history.replaceState({}, "", url);
  search(query);
});

const asked = new URLSearchParams(window.location.search).get("explanations");
if (asked) {
  $("explanation-query").value = asked;
  search(asked);
}
