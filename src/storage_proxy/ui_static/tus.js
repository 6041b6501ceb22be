// A small tus 1.0.0 client: creation, resumable PATCHes with a sha256 per chunk (checksum
// extension), progress, and resumption after a dropped connection or a reload of the page.
//
// The upload's URL is remembered in localStorage under a fingerprint of target and file (name,
// size, last modification), so choosing the same file again after a reload asks the server for
// its offset (HEAD) and goes on from there.

import { authHeaders, problemOf } from "./api.js";

const TUS = { "Tus-Resumable": "1.0.0" };
const STORE_PREFIX = "storage-proxy.upload:";
export const CHUNK = 8 * 1024 * 1024;
const RETRY_DELAYS = [500, 1000, 2000, 4000, 8000];
const MAX_RETRIES = 30;

function b64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function online() {
  if (navigator.onLine) return Promise.resolve();
  return new Promise((resolve) => window.addEventListener("online", resolve, { once: true }));
}

/** Uploads left unfinished in this browser (for "resume" after a reload). */
export function pendingUploads() {
  const found = [];
  for (let i = 0; i < localStorage.length; i += 1) {
    const key = localStorage.key(i);
    if (!key || !key.startsWith(STORE_PREFIX)) continue;
    try {
      found.push({ key, ...JSON.parse(localStorage.getItem(key)) });
    } catch {
      localStorage.removeItem(key);
    }
  }
  return found;
}

export function forgetUpload(key) {
  localStorage.removeItem(key);
}

class NetworkError extends Error {}

export class Upload {
  /**
   * @param {File} file
   * @param {{volume: string, vfid: string, path: string}} target
   * @param {{onProgress?: Function, onState?: Function}} hooks
   */
  constructor(file, target, hooks = {}) {
    this.file = file;
    this.target = target;
    this.hooks = hooks;
    this.offset = 0;
    this.url = null;
    this.cancelled = false;
    this.xhr = null;
    this.key = STORE_PREFIX + [target.volume, target.vfid, target.path, file.size,
      file.lastModified, file.name].join("\u0000");
  }

  state(text) { this.hooks.onState?.(text); }

  progress(sent) { this.hooks.onProgress?.(sent, this.file.size); }

  async start() {
    const saved = localStorage.getItem(this.key);
    if (saved) {
      const { url } = JSON.parse(saved);
      const offset = await this.headOffset(url).catch(() => null);
      if (offset !== null) {
        this.url = url;
        this.offset = offset;
        this.state(`Resuming at ${this.offset} of ${this.file.size} bytes`);
        this.resumedAt = offset;
      } else {
        localStorage.removeItem(this.key);
      }
    }
    if (!this.url) await this.create();
    await this.sendAll();
    localStorage.removeItem(this.key);
    this.state("Done");
  }

  async create() {
    const meta = [
      ["volume", this.target.volume],
      ["vfid", this.target.vfid],
      ["path", this.target.path],
      ["filename", this.file.name],
    ].map(([k, v]) => `${k} ${b64(v)}`).join(",");
    const resp = await fetch("/upload", {
      method: "POST",
      headers: authHeaders({
        ...TUS,
        "Upload-Length": String(this.file.size),
        "Upload-Metadata": meta,
      }),
    });
    if (resp.status !== 201) throw await problemOf(resp);
    this.url = new URL(resp.headers.get("Location"), window.location.href).pathname;
    this.offset = 0;
    localStorage.setItem(this.key, JSON.stringify({
      url: this.url,
      name: this.file.name,
      size: this.file.size,
      volume: this.target.volume,
      vfid: this.target.vfid,
      path: this.target.path,
      savedAt: Date.now(),
    }));
  }

  /** The server's offset, or null when the upload is gone (expired, finished, refused). */
  async headOffset(url) {
    const resp = await fetch(url, { method: "HEAD", headers: authHeaders(TUS), cache: "no-store" });
    if (resp.status === 200) return Number(resp.headers.get("Upload-Offset"));
    if ([403, 404, 410].includes(resp.status)) return null;
    throw new NetworkError(`HEAD answered ${resp.status}`);
  }

  async sendAll() {
    let failures = 0;
    while (this.offset < this.file.size || (this.file.size === 0 && this.offset === 0 && !this.sentEmpty)) {
      if (this.cancelled) throw new Error("cancelled");
      try {
        await this.sendChunk();
        failures = 0;
        if (this.file.size === 0) this.sentEmpty = true;
      } catch (e) {
        if (this.cancelled || !(e instanceof NetworkError)) throw e;
        failures += 1;
        if (failures > MAX_RETRIES) throw new Error("the connection kept failing; try again later");
        const delay = RETRY_DELAYS[Math.min(failures - 1, RETRY_DELAYS.length - 1)];
        this.state(`Connection lost — retrying in ${Math.round(delay / 1000) || 1} s`);
        await sleep(delay);
        await online();
        const offset = await this.headOffset(this.url).catch(() => undefined);
        if (offset === null) throw new Error("the server no longer has this upload");
        if (offset !== undefined) {
          this.offset = offset;
          this.state(`Resuming at ${this.offset} of ${this.file.size} bytes`);
        }
      }
    }
  }

  async sendChunk() {
    const end = Math.min(this.offset + CHUNK, this.file.size);
    const blob = this.file.slice(this.offset, end);
    const headers = authHeaders({
      ...TUS,
      "Upload-Offset": String(this.offset),
      "Content-Type": "application/offset+octet-stream",
    });
    if (globalThis.crypto?.subtle) {
      const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
      headers["Upload-Checksum"] = `sha256 ${btoa(String.fromCharCode(...new Uint8Array(digest)))}`;
    }
    const base = this.offset;
    const { status, offset, problem } = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open("PATCH", this.url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (ev) => this.progress(base + ev.loaded);
      xhr.onload = () => resolve({
        status: xhr.status,
        offset: xhr.getResponseHeader("Upload-Offset"),
        problem: xhr.responseText,
      });
      xhr.onerror = () => reject(new NetworkError("network error"));
      xhr.onabort = () => reject(this.cancelled ? new Error("cancelled") : new NetworkError("aborted"));
      xhr.send(blob);
    });
    this.xhr = null;
    if (status === 204) {
      this.offset = Number(offset);
      this.progress(this.offset);
      this.state("Uploading");
      return;
    }
    if (status === 409 || status === 460 || status >= 500) {
      throw new NetworkError(`PATCH answered ${status}`); // resync with HEAD and go on
    }
    let detail = `HTTP ${status}`;
    try { detail = JSON.parse(problem).detail || detail; } catch { /* not JSON */ }
    throw new Error(detail);
  }

  async cancel() {
    this.cancelled = true;
    this.xhr?.abort();
    localStorage.removeItem(this.key);
    if (this.url) {
      await fetch(this.url, { method: "DELETE", headers: authHeaders(TUS) }).catch(() => {});
    }
    this.state("Cancelled");
  }
}
