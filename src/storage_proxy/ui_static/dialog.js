// One modal <dialog> for every question the page asks (native: focus stays inside, Escape
// closes). ``ask`` resolves with the callback's result, or null when cancelled.

import { clear, h } from "./dom.js";

export function field(label, attrs = {}) {
  const id = `f-${Math.random().toString(36).slice(2)}`;
  const input = h(attrs.multiline ? "textarea" : "input", { id, ...attrs, multiline: undefined });
  return { input, node: h("p", { class: "field" }, h("label", { for: id }, label), input) };
}

/**
 * @param {string} title
 * @param {Node[]} body
 * @param {{ok?: string, onOk?: () => Promise<any>, danger?: boolean, cancel?: string}} opts
 */
export function ask(title, body, { ok = "OK", onOk = async () => true, danger = false, cancel = "Cancel" } = {}) {
  const dialog = document.getElementById("dialog");
  const form = document.getElementById("dialog-form");
  const okButton = document.getElementById("dialog-ok");
  const cancelButton = document.getElementById("dialog-cancel");
  const error = document.getElementById("dialog-error");
  document.getElementById("dialog-title").textContent = title;
  clear(document.getElementById("dialog-body")).append(...body);
  error.textContent = "";
  okButton.textContent = ok;
  okButton.hidden = !ok;
  okButton.className = danger ? "danger" : "primary";
  cancelButton.textContent = cancel;
  return new Promise((resolve) => {
    const onSubmit = async (ev) => {
      const submitter = ev.submitter;
      if (!submitter || submitter.value !== "ok") return; // Cancel: the dialog closes itself
      ev.preventDefault();
      okButton.disabled = true;
      try {
        const result = await onOk();
        if (result === undefined || result === false) return;
        finish(result);
        dialog.close();
      } catch (e) {
        error.textContent = e.message;
      } finally {
        okButton.disabled = false;
      }
    };
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      form.removeEventListener("submit", onSubmit);
      resolve(value);
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", () => finish(null), { once: true });
    dialog.showModal();
    const first = dialog.querySelector("#dialog-body input, #dialog-body textarea, #dialog-body select");
    (first || okButton).focus();
  });
}
