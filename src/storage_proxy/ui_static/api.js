// The client API as the page uses it: a user token in Authorization, problem+json errors.

const TOKEN_KEY = "storage-proxy.token";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${session.token}`, ...extra };
}

export async function problemOf(resp) {
  let code = `http-${resp.status}`;
  let detail = resp.statusText;
  try {
    const body = await resp.json();
    code = body.code || code;
    detail = body.detail || detail;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(resp.status, code, detail);
}

export async function call(method, url, { json, headers } = {}) {
  const init = { method, headers: authHeaders(headers), cache: "no-store" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const resp = await fetch(url, init);
  if (!resp.ok) throw await problemOf(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

export function enc(segment) {
  return encodeURIComponent(segment);
}

export function encPath(path) {
  return path.split("/").filter(Boolean).map(enc).join("/");
}

/** Routes of one vfolder: ``/api/v1/vfolders/<volume>/<scope>/<folder>``. */
export function vfolderBase(volume, vfid) {
  const cut = vfid.lastIndexOf("/");
  return `/api/v1/vfolders/${enc(volume)}/${enc(vfid.slice(0, cut))}/${enc(vfid.slice(cut + 1))}`;
}
