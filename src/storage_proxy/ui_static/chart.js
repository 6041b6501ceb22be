// Small SVG charts: a usage meter and horizontal bars. Each has a text equivalent for screen
// readers (the SVG is hidden from them; a table or a label carries the same numbers).

import { formatBytes, h, svg } from "./dom.js";

/** "used of quota" as a <meter> with a readable label. */
export function usageMeter(used, quota, label) {
  const text = quota ? `${formatBytes(used)} of ${formatBytes(quota)}` : `${formatBytes(used)} (no quota)`;
  const meter = h("meter", {
    min: 0,
    max: quota || Math.max(used, 1),
    value: used,
    high: quota ? quota * 0.9 : undefined,
    "aria-label": `${label}: ${text}`,
  });
  return h("span", { class: "usage" }, meter, h("span", { class: "usage-text" }, text));
}

/**
 * Horizontal bars: rows of {label, value, detail}. Returns a figure with the chart and a table.
 */
export function barChart(title, rows, { format = formatBytes } = {}) {
  const width = 600;
  const bar = 22;
  const gap = 8;
  const labelWidth = 200;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const height = rows.length * (bar + gap) + gap;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-hidden": "true",
    preserveAspectRatio: "xMinYMin meet",
  });
  rows.forEach((row, i) => {
    const y = gap + i * (bar + gap);
    const w = Math.max(2, ((width - labelWidth - 90) * row.value) / max);
    const label = row.label.length > 28 ? `…${row.label.slice(-27)}` : row.label;
    chart.append(
      svg("text", { x: 0, y: y + bar * 0.7, class: "chart-label" }, label),
      svg("rect", { x: labelWidth, y, width: w, height: bar, rx: 3, class: "chart-bar" },
        svg("title", {}, `${row.label}: ${format(row.value)}`)),
      svg("text", { x: labelWidth + w + 6, y: y + bar * 0.7, class: "chart-value" }, format(row.value)),
    );
  });
  const table = h("table", { class: "visually-hidden" },
    h("caption", {}, title),
    h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value")),
    rows.map((r) => h("tr", {}, h("td", {}, r.label), h("td", {}, format(r.value)))));
  return h("figure", { class: "figure" }, h("figcaption", {}, title), chart, table);
}
