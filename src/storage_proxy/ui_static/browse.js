// One vfolder: breadcrumbs, a paged listing, uploads (drop zone, file and folder pickers),
// downloads, links, metadata, and — within the user's permission — new folder, rename, move,
// delete. RO users get no write control at all (and the server refuses writes anyway).

import { call, enc, encPath } from "./api.js";
import { barChart, usageMeter } from "./chart.js";
import { ask, field } from "./dialog.js";
import { clear, formatBytes, formatDate, h, say } from "./dom.js";
import { uploadsPanel } from "./uploads.js";

const PAGE = 100;
const RANK = { ro: 1, rw: 2, rwd: 3 };

function join(dir, name) {
  return dir ? `${dir}/${name}` : name;
}

function browseHref(ctx, path) {
  return `#/browse/${enc(ctx.volume)}/${enc(ctx.vfid)}/${encPath(path)}`;
}

async function download(ctx, entry) {
  const link = await call("POST", `${ctx.base}/links`, { json: { path: entry.path, expires_in: "5m" } });
  const a = h("a", { href: link.path, download: entry.type === "DIRECTORY" ? `${entry.name}.zip` : entry.name });
  document.body.append(a);
  a.click();
  a.remove();
  say(`Downloading ${entry.name}`);
}

async function linkDialog(ctx, entry) {
  const select = h("select", { id: "link-expiry" },
    h("option", { value: "15m" }, "15 minutes"),
    h("option", { value: "1h", selected: true }, "1 hour"),
    h("option", { value: "1d" }, "1 day"),
    h("option", { value: "7d" }, "7 days"));
  const out = h("input", { id: "link-url", readonly: true, "aria-label": "Download link" });
  const expires = h("p", { class: "help", id: "link-expires" });
  const copy = h("button", { type: "button", onclick: async () => {
    out.select();
    try { await navigator.clipboard.writeText(out.value); say("Link copied"); } catch { say("Select the link and copy it"); }
  } }, "Copy");
  const result = h("div", { hidden: true, class: "link-result" }, h("p", { class: "field" }, out, copy), expires);
  await ask(`Download link for ${entry.name}`, [
    h("p", { class: "field" }, h("label", { for: "link-expiry" }, "Expires in"), select),
    h("p", { class: "help" }, "Anyone with the link can download until it expires."),
    result,
  ], {
    ok: "Create link",
    cancel: "Close",
    onOk: async () => {
      const link = await call("POST", `${ctx.base}/links`, { json: { path: entry.path, expires_in: select.value } });
      out.value = new URL(link.path, window.location.origin).href;
      expires.textContent = `Expires ${formatDate(link.expires_at)}`;
      result.hidden = false;
      out.focus();
      return false; // keep the dialog open to copy the link
    },
  });
}

async function detailsDialog(ctx, entry) {
  const meta = await call("GET", `${ctx.base}/metadata/${encPath(entry.path)}`);
  const tags = field("Tags (key=value, one per line)", {
    multiline: true, rows: 4, readonly: !ctx.canWrite,
  });
  tags.input.value = Object.entries(meta.tags || {}).map(([k, v]) => `${k}=${v}`).join("\n");
  const rows = [["Path", meta.path], ["Size", `${formatBytes(meta.size)} (${meta.size} bytes)`],
    ["Modified", formatDate(meta.modified)], ["SHA-256", meta.sha256 || "not recorded"],
    ["Content type", meta.content_type || "—"], ["ETag", meta.etag]];
  const list = h("dl", { class: "meta" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "SHA-256" ? "hash" : "" }, v)]));
  await ask(`Details of ${entry.name}`, [list, tags.node], {
    ok: ctx.canWrite ? "Save tags" : "",
    cancel: "Close",
    onOk: async () => {
      const parsed = {};
      for (const line of tags.input.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
        const eq = line.indexOf("=");
        if (eq < 1) throw new Error(`not key=value: ${line}`);
        parsed[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
      }
      await call("PATCH", `${ctx.base}/metadata/${encPath(entry.path)}`, { json: { tags: parsed } });
      say("Tags saved");
      return true;
    },
  });
}

async function renameDialog(ctx, entry) {
  const name = field("New name", { value: entry.name, required: true });
  const done = await ask(`Rename ${entry.name}`, [name.node], {
    ok: "Rename",
    onOk: async () => {
      const dst = join(ctx.path, name.input.value.trim());
      return call("POST", `${ctx.base}/move`, { json: { src: entry.path, dst } });
    },
  });
  if (done) { say(`Renamed to ${name.input.value}`); ctx.reload(); }
}

async function moveDialog(ctx, entry) {
  const dst = field("Move to (path in this vfolder)", { value: entry.path, required: true });
  const done = await ask(`Move ${entry.name}`, [dst.node], {
    ok: "Move",
    onOk: () => call("POST", `${ctx.base}/move`, { json: { src: entry.path, dst: dst.input.value.trim() } }),
  });
  if (done) { say(`Moved to ${dst.input.value}`); ctx.reload(); }
}

async function deleteDialog(ctx, entry) {
  const what = entry.type === "DIRECTORY" ? "this folder and everything in it" : "this file";
  const done = await ask(`Delete ${entry.name}?`, [h("p", {}, `This deletes ${what}.`)], {
    ok: "Delete",
    danger: true,
    onOk: async () => {
      const recursive = entry.type === "DIRECTORY" ? "?recursive=true" : "";
      await call("DELETE", `${ctx.base}/files/${encPath(entry.path)}${recursive}`);
      return true;
    },
  });
  if (done) { say(`Deleted ${entry.name}`); ctx.reload(); }
}

async function mkdirDialog(ctx) {
  const name = field("Folder name", { required: true });
  const done = await ask("New folder", [name.node], {
    ok: "Create",
    onOk: () => call("POST", `${ctx.base}/mkdir`, { json: { path: join(ctx.path, name.input.value.trim()) } }),
  });
  if (done) { say(`Created ${name.input.value}`); ctx.reload(); }
}

function entryRow(ctx, entry) {
  const isDir = entry.type === "DIRECTORY";
  const actions = [
    h("button", { type: "button", onclick: () => download(ctx, entry).catch((e) => say(e.message)) },
      isDir ? "Download zip" : "Download"),
    h("button", { type: "button", onclick: () => linkDialog(ctx, entry).catch((e) => say(e.message)) }, "Link"),
    !isDir && h("button", { type: "button", onclick: () => detailsDialog(ctx, entry).catch((e) => say(e.message)) }, "Details"),
    ctx.canWrite && h("button", { type: "button", class: "write", onclick: () => renameDialog(ctx, entry) }, "Rename"),
    ctx.canWrite && h("button", { type: "button", class: "write", onclick: () => moveDialog(ctx, entry) }, "Move"),
    ctx.canDelete && h("button", { type: "button", class: "write danger", onclick: () => deleteDialog(ctx, entry) }, "Delete"),
  ];
  const name = isDir
    ? h("a", { href: browseHref(ctx, entry.path), class: "dir" }, `${entry.name}/`)
    : h("span", { class: "file" }, entry.name);
  return h("tr", { "data-name": entry.name },
    h("td", { "data-label": "Name", class: "name" }, name),
    h("td", { "data-label": "Size", class: "num" }, isDir ? "—" : formatBytes(entry.size)),
    h("td", { "data-label": "Modified" }, formatDate(entry.modified)),
    h("td", { "data-label": "Actions", class: "actions" },
      h("div", { role: "group", "aria-label": `Actions for ${entry.name}` }, actions)));
}

function breadcrumbs(ctx) {
  const parts = ctx.path ? ctx.path.split("/") : [];
  const crumbs = [h("li", {}, parts.length ? h("a", { href: browseHref(ctx, "") }, "root") : h("span", { "aria-current": "page" }, "root"))];
  parts.forEach((part, i) => {
    const p = parts.slice(0, i + 1).join("/");
    crumbs.push(h("li", {}, i === parts.length - 1
      ? h("span", { "aria-current": "page" }, part)
      : h("a", { href: browseHref(ctx, p) }, part)));
  });
  return h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, h("ol", {}, crumbs));
}

async function loadPage(ctx, tbody, more, marker) {
  const q = new URLSearchParams({ path: ctx.path, limit: String(ctx.pageSize || PAGE) });
  if (marker) q.set("marker", marker);
  const page = await call("GET", `${ctx.base}/dir?${q}`);
  if (!marker) clear(tbody);
  tbody.append(...page.entries.map((e) => entryRow(ctx, e)));
  if (!tbody.children.length) {
    tbody.append(h("tr", {}, h("td", { colspan: 4, class: "empty" }, ctx.path ? "This folder is empty." : "This vfolder is empty.")));
  }
  more.hidden = !page.truncated;
  more.onclick = () => loadPage(ctx, tbody, more, page.next_marker).catch((e) => say(e.message));
  return page;
}

async function overview(ctx) {
  const q = new URLSearchParams({ volume: ctx.volume, vfid: ctx.vfid });
  const stats = await call("GET", `/api/v1/storage/stats?${q}`);
  const mine = stats.vfolders[0];
  const parts = [h("p", { class: "overview" }, usageMeter(mine.bytes, mine.quota_bytes, "Usage"),
    ` · ${mine.objects} files · ${mine.permission.toUpperCase()}`)];
  if (mine.largest_directories?.length) {
    parts.push(h("details", { class: "largest" }, h("summary", {}, "Largest folders"),
      barChart("Largest folders", mine.largest_directories.map((d) => ({ label: d.path, value: d.bytes })))));
  }
  return parts;
}

export async function browseView({ volume, vfid, path, base, show }) {
  const { vfolders } = await call("GET", "/api/v1/vfolders");
  const me = vfolders.find((v) => v.volume === volume && v.vfid === vfid);
  if (!me) throw new Error("You cannot see this vfolder.");
  const ctx = {
    volume, vfid, path, base,
    permission: me.permission,
    canWrite: RANK[me.permission] >= RANK.rw,
    canDelete: RANK[me.permission] >= RANK.rwd,
    pageSize: Number(new URLSearchParams(window.location.search).get("page")) || PAGE,
  };
  const tbody = h("tbody");
  const more = h("button", { type: "button", hidden: true, class: "more" }, "Load more");
  const summary = h("div", { class: "summary" });
  const refreshSummary = async () => {
    const parts = await overview(ctx).catch(() => []);
    clear(summary).append(...parts);
  };
  ctx.reload = () => {
    refreshSummary();
    return loadPage(ctx, tbody, more).catch((e) => say(e.message));
  };
  const toolbar = ctx.canWrite
    ? h("div", { class: "toolbar", role: "toolbar", "aria-label": "Folder actions" },
      h("button", { type: "button", class: "write", onclick: () => mkdirDialog(ctx) }, "New folder"))
    : h("p", { class: "help" }, "Read-only: you can browse and download.");
  const table = h("table", { class: "list files" },
    h("caption", { class: "visually-hidden" }, `Contents of ${path || "the vfolder root"}`),
    h("thead", {}, h("tr", {}, ...["Name", "Size", "Modified", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  show(vfid.slice(vfid.lastIndexOf("/") + 1),
    breadcrumbs(ctx),
    summary,
    toolbar,
    ctx.canWrite ? uploadsPanel(ctx) : null,
    table,
    more);
  await Promise.all([refreshSummary(), loadPage(ctx, tbody, more)]);
}
