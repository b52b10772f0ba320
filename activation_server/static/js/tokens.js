// Text coloured token by token: blue positive, red negative, scaled by the largest |value| so
// that every example uses its full range; the strongest token is outlined.

import { el } from "./dom.js";
import { quadrantShort } from "./state.js";

export function colouredTokens(tokens, values, { hook = "", labels = null, maxAt = null } = {}) {
  const box = el("div", { class: labels ? "text live" : "text" });
  const usable = values && values.length === tokens.length;
  const scale = usable ? Math.max(0, ...values.map((v) => Math.abs(v))) : 0;
  let strongest = maxAt; // outlined where known, with or without values
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
          text: quadrant ? quadrantShort(quadrant) : "·",
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
