// What every page shares: calling the API, keeping tokens, building DOM from text, formatting.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Reads the API's error body ({"error": {code, message}}) into an ApiError.
export async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  const error = body && body.error;
  return new ApiError(
    response.status,
    (error && error.code) || `http_${response.status}`,
    (error && error.message) || `the server answered ${response.status}`,
    response.headers.get("Retry-After"),
  );
}

export async function api(method, path, { token = null, body, headers = {}, signal } = {}) {
  const sent = { ...headers };
  if (token) sent.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: payload, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "cannot reach the server");
  }
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

// localStorage, which a private window or a locked-down browser may refuse.
export const saved = {
  get(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      // kept for this page only
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      // nothing kept
    }
  },
};

// el("li", {className: "x", onclick}, "text", child): strings become text nodes, never markup.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && !key.includes("-")) node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// The last path segment: /watch/{id} and /studio/{id} name their stream there.
export function pathId() {
  const parts = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] || "");
}

const moneyFormats = new Map();
export function money(amount, currency) {
  let format = moneyFormats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    } catch {
      format = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2 });
    }
    moneyFormats.set(currency, format);
  }
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(amount / 10 ** digits);
}

// Minor units from what a person typed in major units ("12.5" USD → 1250).
export function minorUnits(text, currency) {
  const digits = new Intl.NumberFormat(undefined, { style: "currency", currency }).resolvedOptions()
    .maximumFractionDigits;
  const value = Number(String(text).replace(",", "."));
  return Number.isFinite(value) ? Math.round(value * 10 ** digits) : NaN;
}

export function majorUnits(amount, currency) {
  const digits = new Intl.NumberFormat(undefined, { style: "currency", currency }).resolvedOptions()
    .maximumFractionDigits;
  return (amount / 10 ** digits).toFixed(digits);
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

export const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

// A product's thumbnail, or its initial on a tile when it has no image (or the image fails).
export function thumb(product, className = "thumb") {
  const initial = el("div", { className, "aria-hidden": "true" }, (product.title || "?").slice(0, 1).toUpperCase());
  if (!product.image_url) return initial;
  const img = el("img", { className, src: product.image_url, alt: "", loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => img.replaceWith(initial), { once: true });
  return img;
}

// Failures a test (or a curious person) can read: window.e2e.errors.
window.e2e = window.e2e || { errors: [] };
export function report(where, error) {
  window.e2e.errors.push(`${where}: ${error && error.message ? error.message : error}`);
  console.warn(where, error);
}

// Small inline icons (drawn here, so no emoji font is needed and none is fetched).
const ICONS = {
  eye: "M12 5C6 5 2 12 2 12s4 7 10 7 10-7 10-7-4-7-10-7zm0 11a4 4 0 1 1 0-8 4 4 0 0 1 0 8z",
  muted: "M3 9v6h4l5 5V4L7 9H3zm13.6 3 2.7-2.7-1.4-1.4-2.7 2.7-2.7-2.7-1.4 1.4 2.7 2.7-2.7 2.7 1.4 1.4 2.7-2.7 2.7 2.7 1.4-1.4z",
  pin: "M16 3H8v2l1 1v5l-3 3v2h5v5l1 1 1-1v-5h5v-2l-3-3V6l1-1z",
  bag: "M7 7V6a5 5 0 0 1 10 0v1h3l-1 14H5L4 7h3zm2 0h6V6a3 3 0 0 0-6 0v1z",
  bolt: "M13 2 4 14h6l-1 8 9-12h-6z",
  heart: "M12 21s-8-5.3-8-11a4.5 4.5 0 0 1 8-2.8A4.5 4.5 0 0 1 20 10c0 5.7-8 11-8 11z",
};
export function icon(name, className = "icon") {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}
