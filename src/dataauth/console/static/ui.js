// Small DOM helpers the console's views share. Text always goes in as textContent,
// never as HTML, so nothing an API answers can become markup.

const SVG = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      node.textContent = String(value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("td", {class: "x"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, for the charts. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

export function loading(t) {
  return h("p", { class: "loading", role: "status" }, t("loading"));
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

/** A problem as the page shows it: its detail, with its code and status beside. */
export function problem(error) {
  const box = h("div", { class: "problem", role: "alert" });
  box.append(h("strong", {}, error.detail || error.message || String(error)));
  if (error.code) box.append(" ", h("code", {}, `${error.code} · ${error.status}`));
  return box;
}

export function notice(text, kind = "ok") {
  return h("div", { class: kind, role: "status" }, text);
}

/** A table: columns as [{label, cell(row) → node|text}], with an empty state. */
export function table(columns, rows, { caption, emptyText = "—", rowClass } = {}) {
  if (!rows.length) return empty(emptyText);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h("tr", { class: rowClass ? rowClass(row) : null }, columns.map((c) => h("td", {}, c.cell(row)))),
        ),
      ),
    ),
  );
}

/** Replace a container's content with what ``work`` resolves to, showing loading and
 * the problem if it fails. */
export async function fill(container, t, work) {
  container.replaceChildren(loading(t));
  try {
    const node = await work();
    container.replaceChildren(...[node].flat().filter(Boolean));
  } catch (error) {
    container.replaceChildren(problem(error));
  }
}

/** Horizontal bars, one row per item, stacked by series: [{label, values: {key: n}}],
 * series [{key, label, cls}]. Each bar carries a <title>, and the numbers are drawn too. */
export function bars(items, series, { title, width = 560, max } = {}) {
  const rowH = 22;
  const labelW = Math.min(200, Math.max(80, ...items.map((i) => String(i.label).length * 7)));
  const plotW = width - labelW - 60;
  const top = Math.max(1, max ?? Math.max(1, ...items.map((i) => series.reduce((a, k) => a + (i.values[k.key] || 0), 0))));
  const height = items.length * rowH + 8;
  const svg = s("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": title || "chart",
  });
  if (title) svg.append(s("title", {}, title));
  items.forEach((item, row) => {
    const y = 4 + row * rowH;
    svg.append(s("text", { x: 0, y: y + 14 }, String(item.label).slice(0, 32)));
    svg.append(s("rect", { class: "track", x: labelW, y: y + 3, width: plotW, height: rowH - 8 }));
    let x = labelW;
    let total = 0;
    for (const k of series) {
      const value = item.values[k.key] || 0;
      total += value;
      const w = (value / top) * plotW;
      if (w > 0) {
        svg.append(s("rect", { class: k.cls, x, y: y + 3, width: w, height: rowH - 8 },
          s("title", {}, `${item.label}: ${k.label} ${value}`)));
      }
      x += w;
    }
    svg.append(s("text", { x: labelW + plotW + 6, y: y + 14 }, formatNumber(total)));
  });
  return h("figure", { class: "figure" }, svg, legend(series));
}

export function legend(series) {
  return h("div", { class: "legend" }, series.map((k) => h("span", {}, h("span", { class: `swatch ${k.cls}`, "aria-hidden": "true" }), k.label)));
}

export function formatNumber(value) {
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString("en") : value.toFixed(3);
}

export function when(value) {
  if (!value) return "—";
  return String(value).replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
}

/** Columns over time, one per point, stacked by series: [{label, values: {key: n}}] in
 * order (oldest first). Each column carries a <title>; the first and last labels and the
 * highest total are drawn. */
export function columns(points, series, { title, width = 560, height = 140 } = {}) {
  const left = 36;
  const bottom = 18;
  const plotW = width - left - 4;
  const plotH = height - bottom - 6;
  const totals = points.map((p) => series.reduce((a, k) => a + (p.values[k.key] || 0), 0));
  const top = Math.max(1, ...totals);
  const step = plotW / Math.max(1, points.length);
  const svg = s("svg", {
    class: "chart time", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": title || "chart",
  });
  if (title) svg.append(s("title", {}, title));
  svg.append(s("rect", { class: "track", x: left, y: 6, width: plotW, height: plotH }));
  svg.append(s("text", { x: 0, y: 14 }, formatNumber(top)), s("text", { x: 0, y: 6 + plotH }, "0"));
  points.forEach((point, n) => {
    let y = 6 + plotH;
    const x = left + n * step + step * 0.15;
    for (const k of series) {
      const value = point.values[k.key] || 0;
      const hgt = (value / top) * plotH;
      if (hgt > 0) {
        y -= hgt;
        svg.append(s("rect", { class: k.cls, x, y, width: step * 0.7, height: hgt, "data-label": point.label },
          s("title", {}, `${point.label}: ${k.label} ${value}`)));
      }
    }
  });
  if (points.length) {
    svg.append(s("text", { x: left, y: height - 4 }, points[0].label));
    svg.append(s("text", { x: width - 4, y: height - 4, "text-anchor": "end" }, points[points.length - 1].label));
  }
  return h("figure", { class: "figure" }, svg, legend(series));
}
