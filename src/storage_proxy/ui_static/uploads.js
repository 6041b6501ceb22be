// Uploads into the folder on screen: a drop zone (files and folders), pickers for both, a
// progress bar per file (tus, resumable), and the uploads a reload interrupted.

import { forgetUpload, pendingUploads, Upload } from "./tus.js";
import { formatBytes, h, say } from "./dom.js";

const PARALLEL = 2;

function join(dir, name) {
  return dir ? `${dir}/${name}` : name;
}

/** Files below a dropped directory entry, with their paths relative to the drop. */
async function walkEntry(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, rel: join(prefix, entry.name) });
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const child of batch) await walkEntry(child, join(prefix, entry.name), out);
  }
}

async function droppedFiles(dataTransfer) {
  const out = [];
  const entries = [...(dataTransfer.items || [])]
    .map((item) => (item.kind === "file" && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (entries.length && entries.every(Boolean)) {
    for (const entry of entries) await walkEntry(entry, "", out);
    return out;
  }
  return [...dataTransfer.files].map((file) => ({ file, rel: file.name }));
}

export function uploadsPanel(ctx) {
  const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const queue = [];
  let running = 0;

  function row(item) {
    const bar = h("progress", { max: item.file.size || 1, value: 0, "aria-label": `Upload of ${item.rel}` });
    const text = h("span", { class: "upload-state" }, "Waiting");
    const pct = h("span", { class: "upload-pct" }, "0%");
    const cancel = h("button", { type: "button", class: "link" }, "Cancel");
    const li = h("li", { class: "upload", "data-path": item.rel },
      h("span", { class: "upload-name" }, item.rel), bar, pct, text, cancel);
    list.prepend(li);
    return { li, bar, text, pct, cancel };
  }

  async function run(item) {
    const ui = row(item);
    const target = { volume: ctx.volume, vfid: ctx.vfid, path: join(ctx.path, item.rel) };
    const upload = new Upload(item.file, target, {
      onProgress: (sent, total) => {
        ui.bar.value = sent;
        ui.pct.textContent = `${total ? Math.floor((sent * 100) / total) : 100}%`;
      },
      onState: (state) => { ui.text.textContent = state; },
    });
    ui.cancel.onclick = () => upload.cancel();
    try {
      await upload.start();
      ui.li.classList.add("done");
      ui.pct.textContent = "100%";
      ui.bar.value = ui.bar.max;
      ui.cancel.remove();
      document.querySelectorAll(".pending li").forEach((li) => {
        if (li.dataset.path === target.path) li.remove();
      });
      say(`Uploaded ${item.rel}`);
      ctx.reload();
    } catch (e) {
      ui.li.classList.add("failed");
      ui.text.textContent = upload.cancelled ? "Cancelled" : `Failed: ${e.message}`;
      ui.cancel.remove();
      if (!upload.cancelled) say(`Upload of ${item.rel} failed: ${e.message}`);
    }
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      const item = queue.shift();
      running += 1;
      run(item).finally(() => { running -= 1; pump(); });
    }
  }

  function add(items) {
    if (!items.length) return;
    queue.push(...items);
    say(`${items.length} file(s) queued, ${formatBytes(items.reduce((n, i) => n + i.file.size, 0))}`);
    pump();
  }

  const fileInput = h("input", { type: "file", multiple: true, id: "pick-files", class: "visually-hidden" });
  fileInput.addEventListener("change", () => {
    add([...fileInput.files].map((file) => ({ file, rel: file.name })));
    fileInput.value = "";
  });
  const dirInput = h("input", { type: "file", id: "pick-folder", class: "visually-hidden", webkitdirectory: true });
  dirInput.addEventListener("change", () => {
    add([...dirInput.files].map((file) => ({ file, rel: file.webkitRelativePath || file.name })));
    dirInput.value = "";
  });
  const zone = h("div", { class: "dropzone", id: "dropzone" },
    h("p", {}, "Drop files or folders here, or "),
    h("label", { for: "pick-files", class: "button" }, "Choose files"),
    " ",
    h("label", { for: "pick-folder", class: "button" }, "Choose a folder"),
    fileInput, dirInput);
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    add(await droppedFiles(ev.dataTransfer));
  });

  const pending = pendingUploads().filter((p) => p.volume === ctx.volume && p.vfid === ctx.vfid);
  const resume = pending.length
    ? h("div", { class: "card pending", role: "region", "aria-label": "Interrupted uploads" },
      h("h2", {}, "Interrupted uploads"),
      h("p", { class: "help" }, "Choose or drop the same file again to resume where it stopped."),
      h("ul", {}, pending.map((p) => h("li", { "data-path": p.path },
        `${p.path} (${formatBytes(p.size)}) `,
        h("button", { type: "button", class: "link", onclick: (ev) => {
          forgetUpload(p.key);
          ev.target.closest("li").remove();
        } }, "Forget")))))
    : null;
  return h("section", { class: "upload-panel", "aria-label": "Upload" }, zone, resume, list);
}
