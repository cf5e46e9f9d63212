// The JSON API, called with the key from this browser's localStorage in the
// Authorization header only: never in a URL, a cookie or the page's HTML.

const STORAGE_KEY = "kinema.apiKey";

export const keyStore = {
  get() {
    try {
      return localStorage.getItem(STORAGE_KEY) || "";
    } catch {
      return "";
    }
  },
  set(value) {
    localStorage.setItem(STORAGE_KEY, value);
  },
  clear() {
    localStorage.removeItem(STORAGE_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && typeof body.message === "string" && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.details = Array.isArray(body?.details) ? body.details : [];
  }
}

const listeners = new Set();
/** Called with every 401: the key was refused (revoked, or mistyped). */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

function headers(key, extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const secret = key ?? keyStore.get();
  if (secret) out.Authorization = `Bearer ${secret}`;
  return out;
}

function urlOf(path, query) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

/** fetch + JSON; a non-2xx answer throws ApiError with the server's message/details. */
export async function api(method, path, { body, query, key, signal } = {}) {
  const init = {
    method,
    headers: headers(key),
    signal,
    credentials: "omit", // no cookies: the bearer header is the only credential
    cache: "no-store",
    referrerPolicy: "no-referrer",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(urlOf(path, query), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { message: "The Kinema server cannot be reached." });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && key === undefined) listeners.forEach((fn) => fn(error));
    throw error;
  }
  return data;
}

export const GENERATIONS = "/v2/video/generations";
export const TERMINAL = new Set(["completed", "error"]);

export const poll = (id, signal) => api("GET", GENERATIONS, { query: { generation_id: id }, signal });

/**
 * Follow a generation's Server-Sent Events (GET .../events) with fetch, so the key goes
 * in a header (EventSource cannot send one). Calls onUpdate(generation) per event.
 * Resolves when the stream ends; rejects when there is no stream (older server, too
 * many streams): the caller then polls.
 */
export async function streamEvents(id, onUpdate, signal) {
  const response = await fetch(urlOf(`${GENERATIONS}/events`, { generation_id: id }), {
    headers: headers(undefined, { Accept: "text/event-stream" }),
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 204) return;
  const type = response.headers.get("content-type") || "";
  if (!response.ok || !response.body || !type.startsWith("text/event-stream")) {
    throw new ApiError(response.status, { message: "no event stream" });
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) onUpdate(JSON.parse(data));
    }
  }
}
