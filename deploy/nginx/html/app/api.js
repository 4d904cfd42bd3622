// The one way the console talks to the API: bearer token from sessionStorage, JSON in and out,
// and every non-2xx answer turned into an ApiError that carries the API's {"error": {...}}.

const TOKEN_KEY = "switchboard.token";
const ME_KEY = "switchboard.me";

// sessionStorage, not localStorage: the token dies with the tab, and never sits on disk for
// the next person at a shared laptop.
export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  get me() {
    const raw = sessionStorage.getItem(ME_KEY);
    return raw ? JSON.parse(raw) : null;
  },
  save(token, me) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(ME_KEY, JSON.stringify(me));
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ME_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached at all
    this.code = code;
    this.body = body; // the whole JSON answer: a 409 sync_running also names the job
  }
}

// Listeners told about a 401 (token revoked or expired), so the app can go back to sign-in.
const unauthorizedListeners = new Set();
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
}

/**
 * Call the API. `path` starts after /api. `body` is sent as JSON unless it is FormData.
 * Resolves with the parsed JSON (null for 204); rejects with an ApiError otherwise.
 */
export async function api(method, path, { body, token, query } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token ?? session.token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (body instanceof FormData) {
    payload = body; // the browser writes the multipart boundary itself
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let url = `/api${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network_error", `cannot reach the server (${err.message})`, null);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null; // a proxy's HTML error page: described below by its status
    }
  }
  if (!response.ok) {
    const error = data && data.error;
    const code = (error && error.code) || `http_${response.status}`;
    const message =
      (error && error.message) || `HTTP ${response.status} ${response.statusText}`.trim();
    const failure = new ApiError(response.status, code, message, data);
    if (response.status === 401 && !token) {
      for (const listener of unauthorizedListeners) listener(failure);
    }
    throw failure;
  }
  if (data === null && text) {
    throw new ApiError(response.status, "bad_response", "the server answered something not JSON", null);
  }
  return data;
}

/** Download a file that needs the bearer token (a plain link would not send it). */
export async function download(path, filename) {
  const response = await fetch(`/api${path}`, {
    headers: { Authorization: `Bearer ${session.token}` },
  });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).error.message;
    } catch {
      /* not JSON: keep the status */
    }
    throw new ApiError(response.status, `http_${response.status}`, message, null);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
