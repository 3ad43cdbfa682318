// The HTTP API client: JSON in and out, the bearer token from
// sessionStorage, and one place that notices a refused token.

const tokenKey = "mesh.token";

/** ApiError is a failed request: status, the server's code and message. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let onUnauthorized = () => {};

/** setUnauthorizedHandler sets what a 401 on an authenticated call does. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** getToken returns this tab's token, or "". */
export function getToken() {
  try { return sessionStorage.getItem(tokenKey) || ""; } catch { return ""; }
}

/** setToken keeps token for this tab ("" forgets it). */
export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(tokenKey, token);
    else sessionStorage.removeItem(tokenKey);
  } catch { /* storage may be off: the session then lasts until reload */ }
}

/**
 * api sends one request and returns the decoded JSON answer (null for 204).
 * It throws ApiError for a 4xx/5xx answer or a network failure (status 0).
 * A 401 on a call made with a token also runs the unauthorized handler.
 */
export async function api(method, path, body, { auth = true } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "cannot reach the server; check your connection and try again");
  }
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
  }
  if (res.ok) return data;
  const err = data && data.error ? data.error : {};
  const e = new ApiError(res.status, err.code || `http_${res.status}`,
    err.message || `the server answered ${res.status} ${res.statusText}`, Number(res.headers.get("Retry-After")) || 0);
  if (res.status === 401 && auth && token) onUnauthorized(e);
  throw e;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const del = (path) => api("DELETE", path);
