// The web file browser: sign-in, the vfolders a user can see, statistics; browsing lives in
// browse.js. Views are chosen by the URL fragment (#/, #/browse/…, #/stats).

import { ApiError, call, session, vfolderBase } from "./api.js";
import { barChart, usageMeter } from "./chart.js";
import { append, clear, formatBytes, h, say } from "./dom.js";
import { browseView } from "./browse.js";

const main = () => document.getElementById("main");

function takeTokenFromLink() {
  // A sign-in link carries the token in the fragment (#token=…): never sent to the server.
  const match = window.location.hash.match(/^#token=([A-Za-z0-9._-]+)$/);
  if (!match) return;
  session.token = match[1];
  history.replaceState(null, "", `${window.location.pathname}${window.location.search}#/`);
}

function showView(title, ...children) {
  const root = clear(main());
  append(root, [h("h1", { tabindex: "-1", id: "view-title" }, title), ...children]);
  document.title = `${title} — storage-proxy`;
  document.getElementById("view-title").focus();
  return root;
}

function signInView(message) {
  document.getElementById("nav").hidden = true;
  const input = h("input", {
    id: "token", name: "token", type: "password", required: true,
    autocomplete: "off", spellcheck: "false", "aria-describedby": "token-help",
  });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "card signin", "aria-label": "Sign in" },
    h("p", { class: "field" }, h("label", { for: "token" }, "User token"), input),
    h("p", { id: "token-help", class: "help" },
      "Ask an operator for a token or a sign-in link (storage-proxy token issue --user ID --link)."),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    session.token = input.value.trim();
    try {
      await call("GET", "/api/v1/vfolders");
      window.location.hash = "#/";
      route();
    } catch (e) {
      session.token = null;
      error.textContent = e instanceof ApiError && e.status === 401
        ? "This token is not valid (or has expired)." : e.message;
    }
  });
  showView("Sign in", form);
  input.focus();
}

async function vfoldersView() {
  const [{ vfolders }, stats] = await Promise.all([
    call("GET", "/api/v1/vfolders"),
    call("GET", "/api/v1/storage/stats"),
  ]);
  const usage = new Map(stats.vfolders.map((v) => [`${v.volume}/${v.vfid}`, v]));
  if (!vfolders.length) {
    showView("Your vfolders", h("p", { class: "empty" }, "You cannot see any vfolder yet."));
    return;
  }
  const rows = vfolders.map((v) => {
    const s = usage.get(`${v.volume}/${v.vfid}`) || {};
    const href = `#/browse/${encodeURIComponent(v.volume)}/${encodeURIComponent(v.vfid)}/`;
    return h("tr", {},
      h("td", { "data-label": "VFolder" }, h("a", { href, class: "vfolder-link" }, v.vfid)),
      h("td", { "data-label": "Volume" }, v.volume),
      h("td", { "data-label": "Permission" }, h("span", { class: `perm perm-${v.permission}` }, v.permission.toUpperCase())),
      h("td", { "data-label": "Usage" }, usageMeter(s.bytes || 0, s.quota_bytes, v.vfid)),
      h("td", { "data-label": "Files", class: "num" }, String(s.objects ?? "—")));
  });
  showView("Your vfolders", h("table", { class: "list" },
    h("caption", { class: "visually-hidden" }, "VFolders you can access"),
    h("thead", {}, h("tr", {}, ...["VFolder", "Volume", "Permission", "Usage", "Files"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

async function statsView() {
  const [stats, health] = await Promise.all([
    call("GET", "/api/v1/storage/stats"),
    fetch("/api/v1/storage/health", { headers: { Authorization: `Bearer ${session.token}` } })
      .then((r) => r.json()),
  ]);
  const volumes = stats.volumes.map((v) => h("section", { class: "card", "aria-label": `Volume ${v.name}` },
    h("h2", {}, `Volume ${v.name} (${v.backend})`),
    v.status === "ok"
      ? h("p", {}, usageMeter(v.used_bytes, v.capacity_bytes, `Volume ${v.name}`),
        ` — ${formatBytes(v.free_bytes)} free`)
      : h("p", { class: "error" }, `Down: ${v.detail}`)));
  const chart = barChart("Bytes per vfolder", stats.vfolders.map((v) => ({
    label: v.vfid.slice(v.vfid.lastIndexOf("/") + 1, v.vfid.lastIndexOf("/") + 9), value: v.bytes,
  })));
  showView("Statistics",
    h("p", { class: health.status === "ok" ? "ok" : "error" },
      health.status === "ok" ? "All your volumes answer." : `Down: ${health.down.join(", ")}`),
    ...volumes,
    stats.vfolders.length ? chart : h("p", { class: "empty" }, "No vfolders."));
}

export async function route() {
  takeTokenFromLink();
  if (!session.token) {
    signInView();
    return;
  }
  document.getElementById("nav").hidden = false;
  const hash = window.location.hash || "#/";
  try {
    if (hash.startsWith("#/browse/")) {
      const [volume, vfid, ...rest] = hash.slice("#/browse/".length).split("/");
      await browseView({
        volume: decodeURIComponent(volume),
        vfid: decodeURIComponent(vfid),
        path: rest.filter(Boolean).map(decodeURIComponent).join("/"),
        base: vfolderBase(decodeURIComponent(volume), decodeURIComponent(vfid)),
        show: showView,
      });
    } else if (hash === "#/stats") {
      await statsView();
    } else {
      await vfoldersView();
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.token = null;
      signInView("Your session has ended; sign in again.");
      return;
    }
    showView("Something went wrong", h("p", { class: "error", role: "alert" }, e.message));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", () => {
    session.token = null;
    say("Signed out.");
    window.location.hash = "#/";
    route();
  });
  window.addEventListener("hashchange", route);
  route();
});
