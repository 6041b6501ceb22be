// Renders the listener's own /openapi.json as a reference page; all data inserted as text.

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function resolve(doc, schema) {
  if (schema && schema.$ref) return doc.components.schemas[schema.$ref.split("/").pop()] || {};
  return schema || {};
}

function typeOf(doc, schema, depth = 0) {
  const s = resolve(doc, schema);
  if (s.oneOf) return s.oneOf.map((x) => typeOf(doc, x, depth)).join(" | ");
  if (s.enum) return s.enum.map((x) => JSON.stringify(x)).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === "array") return `${typeOf(doc, s.items, depth)}[]`;
  if (s.type === "object" && s.properties && depth < 3) {
    const req = new Set(s.required || []);
    return `{ ${Object.entries(s.properties).map(([k, v]) => `${k}${req.has(k) ? "" : "?"}: ${typeOf(doc, v, depth + 1)}`).join(", ")} }`;
  }
  return s.type || "any";
}

function operation(doc, path, method, op) {
  const id = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  const params = (op.parameters || []).map((p) => h("li", {}, h("code", {}, p.name), ` (${p.in}${p.required ? ", required" : ""}): ${p.description || ""}`));
  const body = op.requestBody ? Object.entries(op.requestBody.content).map(([media, c]) => h("li", {}, h("code", {}, media), " ", h("code", { class: "schema" }, typeOf(doc, c.schema)))) : [];
  const responses = Object.entries(op.responses).map(([code, r]) => {
    const resp = r.$ref ? doc.components.responses[r.$ref.split("/").pop()] : r;
    const content = Object.entries(resp.content || {}).map(([media, c]) => h("div", {}, h("code", {}, media), " ", h("code", { class: "schema" }, typeOf(doc, c.schema))));
    return h("li", {}, h("strong", {}, code), ` ${resp.description || ""}`, content);
  });
  const open = Array.isArray(op.security) && op.security.length === 0;
  return h("section", { class: "op", id },
    h("h3", {}, h("span", { class: `method m-${method}` }, method.toUpperCase()), " ", h("code", {}, path), open ? h("span", { class: "open" }, " no credentials") : null),
    h("p", {}, op.summary || ""), op.description ? h("p", { class: "help" }, op.description) : null,
    params.length ? [h("h4", {}, "Parameters"), h("ul", {}, params)] : null,
    body.length ? [h("h4", {}, "Request body"), h("ul", {}, body)] : null,
    h("h4", {}, "Responses"), h("ul", {}, responses));
}

async function main() {
  const doc = await (await fetch("/openapi.json")).json();
  document.getElementById("title").textContent = `${doc.info.title} ${doc.info.version}`;
  document.title = `${doc.info.title} — reference`;
  const intro = document.getElementById("intro");
  intro.textContent = `${doc.info.description} OpenAPI ${doc.openapi}: `;
  intro.append(h("a", { href: "/openapi.json" }, "/openapi.json"));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(doc, path, method, op));
    }
  }
  const toc = document.getElementById("toc");
  const ops = document.getElementById("ops");
  const list = h("ul");
  for (const [tag, sections] of byTag) {
    const id = `tag-${tag.replace(/[^A-Za-z0-9]+/g, "-")}`;
    list.append(h("li", {}, h("a", { href: `#${id}` }, tag)));
    ops.append(h("h2", { id }, tag), ...sections);
  }
  toc.append(list);
}

main().catch((e) => { document.getElementById("intro").textContent = `Cannot load /openapi.json: ${e.message}`; });
