// Small DOM and formatting helpers, and the server's JSON with readable errors.

import { $ } from "./state.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  return abs >= 1000 || abs < 0.001 ? value.toExponential(2) : value.toPrecision(3);
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(2)}%`;
}

/** The server's `detail`, readable: a string, or FastAPI's list of validation problems. */
export function detailText(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return `the server answered ${status}`;
}

export async function fetchJson(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (first) {
    // a request that failed before it reached the server (a pooled connection the server had
    // closed, a network blip) is asked once more; a POST only when it carries no side effects,
    // which is true of every request this page makes
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new Error(`could not reach the server (${error.message})`);
    }
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // an HTML or empty error page: fall back to the status below
  }
  if (!response.ok) {
    const error = new Error(detailText(body, response.status));
    error.status = response.status; // e.g. 503 while the server is still computing an answer
    throw error;
  }
  return body;
}

export function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

export function setStatus(message) {
  $("status").textContent = message || "";
}
