// The regulator's views (监管方): the log with its filters, the signed heads, one entry
// with its proof checked here in the browser, consistency between two heads, replay, and
// traffic. Every proof and signature is checked by verify.js, not taken from the gateway.
import { bars, empty, fill, h, notice, problem, s, table, when } from "../ui.js";
import { byKeyId, checkChain, checkConsistency, checkEntry, checkSigned } from "../verify.js";

const LABELS = {
  en: {
    "reg.log": "Log 审计日志",
    "reg.heads": "Signed heads 签名树头",
    "reg.replay": "Replay 重放",
    "reg.traffic": "Traffic 流量",
    "reg.operator": "Operator",
    "reg.kind": "Kind",
    "reg.outcome": "Outcome",
    "reg.since": "From (time)",
    "reg.until": "Until (time)",
    "reg.any": "any",
    "reg.filter": "Filter",
    "reg.more": "More",
    "reg.index": "Entry",
    "reg.time": "Time",
    "reg.check": "Check in the browser",
    "reg.none": "No entries match.",
    "reg.entry": "Entry {index}",
    "reg.checking": "Checking in the browser…",
    "reg.verified": "Verified in this browser: the entry is in the log the signed head commits to.",
    "reg.failed": "Verification FAILED in this browser.",
    "reg.unchecked": "The proof holds, but this browser cannot check the head's signature.",
    "reg.step.entry": "Stored bytes",
    "reg.step.leaf": "Leaf hash",
    "reg.step.path": "Inclusion path to the root",
    "reg.step.signature": "Tree head signature",
    "reg.step.old head": "Older head's signature",
    "reg.step.new head": "Newer head's signature",
    "reg.step.consistency": "Consistency proof",
    "reg.size": "Size",
    "reg.root": "Root",
    "reg.algorithm": "Algorithm",
    "reg.signature": "Signature (checked here)",
    "reg.chain": "Follows the head before",
    "reg.witnesses": "Witnesses",
    "reg.consistency": "Consistency between two heads",
    "reg.from": "Older size",
    "reg.to": "Newer size",
    "reg.prove": "Check consistency",
    "reg.consistent": "Consistent, checked in this browser: the newer head's tree extends the older one's.",
    "reg.inconsistent": "NOT consistent: checked in this browser.",
    "reg.replay.intro": "Each recorded decision re-decided against the policy bundle that was in force (as `dataauth audit replay` does offline).",
    "reg.verdict": "Replay",
    "reg.byKind": "Traffic by kind and outcome",
    "reg.byHour": "Traffic by hour",
    "reg.yes": "yes",
    "reg.no": "no",
    "reg.entryJson": "The entry as stored",
  },
  zh: {
    "reg.log": "审计日志 Log",
    "reg.heads": "签名树头 Signed heads",
    "reg.replay": "重放 Replay",
    "reg.traffic": "流量 Traffic",
    "reg.operator": "运营方",
    "reg.kind": "类型",
    "reg.outcome": "结果",
    "reg.since": "起始时间",
    "reg.until": "截止时间",
    "reg.any": "全部",
    "reg.filter": "筛选",
    "reg.more": "更多",
    "reg.index": "条目",
    "reg.time": "时间",
    "reg.check": "在浏览器中验证",
    "reg.none": "没有匹配的条目。",
    "reg.entry": "条目 {index}",
    "reg.checking": "正在浏览器中验证…",
    "reg.verified": "已在本浏览器中验证：该条目在签名树头所承诺的日志中。",
    "reg.failed": "本浏览器验证失败。",
    "reg.unchecked": "证明成立，但本浏览器无法验证树头签名。",
    "reg.step.entry": "存储的字节",
    "reg.step.leaf": "叶哈希",
    "reg.step.path": "到根的包含路径",
    "reg.step.signature": "树头签名",
    "reg.step.old head": "较早树头的签名",
    "reg.step.new head": "较新树头的签名",
    "reg.step.consistency": "一致性证明",
    "reg.size": "大小",
    "reg.root": "根",
    "reg.algorithm": "算法",
    "reg.signature": "签名（本地验证）",
    "reg.chain": "与前一树头相链",
    "reg.witnesses": "见证方",
    "reg.consistency": "两个树头之间的一致性",
    "reg.from": "较早的大小",
    "reg.to": "较新的大小",
    "reg.prove": "验证一致性",
    "reg.consistent": "一致（已在本浏览器中验证）：较新树头的树扩展了较早的树。",
    "reg.inconsistent": "不一致（已在本浏览器中验证）。",
    "reg.replay.intro": "按当时生效的策略包重新判定每个记录的决定（与离线的 `dataauth audit replay` 相同）。",
    "reg.verdict": "重放",
    "reg.byKind": "按类型和结果的流量",
    "reg.byHour": "按小时的流量",
    "reg.yes": "是",
    "reg.no": "否",
    "reg.entryJson": "存储的条目",
  },
};

const OUTCOMES = ["released", "denied", "limited", "refused", "failed", "rejected"];
const KINDS = ["verify", "aggregate", "model", "encrypted"];
const OUTCOME_SERIES = [
  { key: "released", label: "released", cls: "bar-c" },
  { key: "denied", label: "denied", cls: "bar-b" },
  { key: "limited", label: "limited", cls: "bar-d" },
  { key: "other", label: "other", cls: "bar-a" },
];
const HEAD_FIELDS = new Set(["size", "root", "time", "key_id", "algorithm", "prev", "signature"]);

const short = (hex, n = 16) => (hex && hex.length > n ? `${hex.slice(0, n)}…` : hex || "—");
const code = (text) => h("code", { title: text }, short(text));

function mark(ok, t) {
  if (ok === true) return h("span", { class: "allow", "data-ok": "true" }, `✓ ${t("reg.yes")}`);
  if (ok === false) return h("span", { class: "deny", "data-ok": "false" }, `✗ ${t("reg.no")}`);
  return h("span", { class: "muted", "data-ok": "unknown" }, "—");
}

function query(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) search.set(k, v);
  return search.toString();
}

function tabs(ctx, current) {
  const sections = [["log", "reg.log"], ["heads", "reg.heads"], ["replay", "reg.replay"], ["traffic", "reg.traffic"]];
  return h("div", { class: "tabs", role: "navigation", "aria-label": ctx.t("role.regulator") },
    sections.map(([id, key]) => h("a", { href: `#/${ctx.role}/${id}`, "aria-current": id === current ? "page" : null }, ctx.t(key))));
}

/** The regulator's view. Sections: log, entry/N, heads, replay, traffic. */
export async function mount(element, ctx) {
  ctx.t.add(LABELS);
  const [section, arg] = (ctx.section || "log").split("/");
  const body = h("div", { id: `reg-${section}` });
  element.replaceChildren(h("h2", {}, ctx.t("role.regulator")), tabs(ctx, section === "entry" ? "log" : section), body);
  const views = { log: logView, entry: entryView, heads: headsView, replay: replayView, traffic: trafficView };
  await (views[section] || logView)(body, ctx, arg);
}

// -- the log --------------------------------------------------------------------------

function selectOf(id, label, values, t) {
  return h("div", {}, h("label", { for: id }, label),
    h("select", { id }, h("option", { value: "" }, t("reg.any")), values.map((v) => h("option", { value: v }, v))));
}

function inputOf(id, label, attrs = {}) {
  return h("div", {}, h("label", { for: id }, label), h("input", { id, ...attrs }));
}

/** The log, filtered: exported so an operator's view can show its own entries (the
 * gateway answers an operator's token with its own entries only). */
export async function logView(container, ctx) {
  const { t } = ctx;
  const results = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "panel row", id: "log-filter" },
    inputOf("f-operator", t("reg.operator"), { size: 14, placeholder: "demo-bank" }),
    selectOf("f-kind", t("reg.kind"), KINDS, t),
    selectOf("f-outcome", t("reg.outcome"), OUTCOMES, t),
    inputOf("f-since", t("reg.since"), { type: "datetime-local" }),
    inputOf("f-until", t("reg.until"), { type: "datetime-local" }),
    h("div", {}, h("button", { type: "submit" }, t("reg.filter"))));
  const value = (id) => form.querySelector(`#${id}`).value.trim();
  const iso = (local) => (local ? new Date(local).toISOString() : "");
  const filters = () => ({
    operator: value("f-operator"), kind: value("f-kind"), outcome: value("f-outcome"),
    since: iso(value("f-since")), until: iso(value("f-until")),
  });
  const rows = [];
  const columns = [
    { label: t("reg.index"), cell: (e) => h("a", { href: `#/${ctx.role}/entry/${e.index}`, class: "entry-link" }, String(e.index)) },
    { label: t("reg.time"), cell: (e) => when(e.entry.time) },
    { label: t("reg.operator"), cell: (e) => e.entry.operator },
    { label: t("reg.kind"), cell: (e) => e.entry.operation?.kind || "—" },
    { label: t("reg.outcome"), cell: (e) => h("span", { class: e.entry.outcome === "released" ? "allow" : "deny" }, e.entry.outcome) },
    { label: "", cell: (e) => h("a", { href: `#/${ctx.role}/entry/${e.index}` }, t("reg.check")) },
  ];
  async function load(start, params) {
    const page = await ctx.api(`/v1/audit/entries?${query({ ...params, from: start, limit: 50 })}`);
    rows.push(...page.entries);
    const more = page.next === null ? null
      : h("button", { type: "button", class: "quiet", id: "log-more", onclick: () => fill(results, t, () => load(page.next, params)) }, t("reg.more"));
    return [table(columns, rows, { emptyText: t("reg.none"), caption: t("reg.log") }), more];
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    rows.length = 0;
    fill(results, t, () => load(0, filters()));
  });
  container.replaceChildren(form, results);
  await fill(results, t, () => load(0, {}));
}

// -- one entry, checked ---------------------------------------------------------------

function stepValues(item) {
  const rows = [];
  if (item.computed) rows.push(["computed here", code(item.computed)], ["the log's", code(item.claimed)]);
  if (item.proof) rows.push(["path", item.proof.length ? h("ol", {}, item.proof.map((p) => h("li", {}, code(p)))) : "(empty)"]);
  if (item.root) rows.push(["root", code(item.root)], ["size", String(item.size)]);
  if (item.algorithm) rows.push(["algorithm", item.algorithm], ["key", code(item.key_id)]);
  return rows.length ? h("dl", {}, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])) : null;
}

function stepsList(steps, t) {
  return h("ol", { class: "steps" }, steps.map((item) =>
    h("li", { class: "panel", "data-step": item.name, "data-ok": String(item.ok) },
      h("strong", {}, t(`reg.step.${item.name}`)), " ", mark(item.ok, t), h("p", {}, item.detail), stepValues(item))));
}

function verdict(ok, t, yes, no, unknown) {
  const box = notice(t(ok === true ? yes : ok === false ? no : unknown), ok === true ? "ok" : ok === false ? "problem" : "warning");
  box.id = "verdict";
  box.dataset.ok = String(ok);
  return box;
}

async function entryView(container, ctx, arg) {
  const { t } = ctx;
  const index = Number(arg);
  if (!Number.isSafeInteger(index) || index < 0) {
    container.replaceChildren(problem({ detail: `no entry ${arg}` }));
    return;
  }
  container.replaceChildren(h("h3", {}, t("reg.entry", { index })));
  const out = h("div", { "aria-live": "polite" });
  container.append(out);
  await fill(out, t, async () => {
    const result = await checkEntry(ctx.api, index, { token: ctx.token });
    return [
      verdict(result.ok, t, "reg.verified", "reg.failed", "reg.unchecked"),
      stepsList(result.steps, t),
      result.entry ? h("details", {}, h("summary", {}, t("reg.entryJson")), h("pre", {}, JSON.stringify(result.entry, null, 2))) : null,
    ];
  });
}

// -- heads and consistency ------------------------------------------------------------

function extras(head) {
  const more = Object.entries(head).filter(([k]) => !HEAD_FIELDS.has(k));
  if (!more.length) return "—";
  return h("details", {}, h("summary", {}, more.map(([k]) => k).join(", ")), h("pre", {}, JSON.stringify(Object.fromEntries(more), null, 2)));
}

async function headsView(container, ctx) {
  const { t } = ctx;
  const list = h("div", { "aria-live": "polite" });
  const check = h("div", { "aria-live": "polite", id: "consistency-result" });
  const from = h("input", { id: "c-from", type: "number", min: 1, required: true });
  const to = h("input", { id: "c-to", type: "number", min: 1, required: true });
  const form = h("form", { class: "panel", id: "consistency" },
    h("h3", {}, t("reg.consistency")),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "c-from" }, t("reg.from")), from),
      h("div", {}, h("label", { for: "c-to" }, t("reg.to")), to),
      h("div", {}, h("button", { type: "submit" }, t("reg.prove")))),
    check);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    fill(check, t, async () => {
      const result = await checkConsistency(ctx.api, Number(from.value), Number(to.value));
      return [verdict(result.ok, t, "reg.consistent", "reg.inconsistent", "reg.unchecked"), stepsList(result.steps, t)];
    });
  });
  container.replaceChildren(list, form);
  await fill(list, t, async () => {
    const [{ tree_heads: heads }, { keys }] = await Promise.all([ctx.api("/v1/audit/tree-heads?limit=20"), ctx.api("/v1/audit/keys")]);
    if (!heads.length) return empty("—");
    const byId = byKeyId(keys);
    const signed = await Promise.all(heads.map((head) => checkSigned(head, byId)));
    const links = Object.fromEntries((await checkChain(heads)).map((link) => [link.size, link.ok]));
    const rows = heads.map((head, i) => ({ head, signed: signed[i], link: links[head.size] }));
    if (heads.length > 1) {
      from.value = String(heads[heads.length - 1].size);
      to.value = String(heads[0].size);
    }
    return table([
      { label: t("reg.size"), cell: (r) => String(r.head.size) },
      { label: t("reg.time"), cell: (r) => when(r.head.time) },
      { label: t("reg.root"), cell: (r) => code(r.head.root) },
      { label: t("reg.algorithm"), cell: (r) => r.head.algorithm },
      { label: t("reg.signature"), cell: (r) => h("span", { title: r.signed.detail, class: "head-signature" }, mark(r.signed.ok, t), r.signed.ok === null ? ` ${r.signed.detail}` : "") },
      { label: t("reg.chain"), cell: (r) => (r.link === undefined ? "—" : mark(r.link, t)) },
      { label: t("reg.witnesses"), cell: (r) => extras(r.head) },
    ], rows, { caption: t("reg.heads") });
  });
}

// -- replay ---------------------------------------------------------------------------

async function replayView(container, ctx) {
  const { t } = ctx;
  const out = h("div", { "aria-live": "polite" });
  container.replaceChildren(h("p", { class: "muted" }, t("reg.replay.intro")), out);
  const shown = [];
  async function load(start) {
    const page = await ctx.api(`/v1/audit/replay?from=${start}&limit=200`);
    shown.push(...page.results);
    const counts = {};
    for (const r of shown) counts[r.verdict] = (counts[r.verdict] || 0) + 1;
    const summary = h("p", { id: "replay-counts" }, Object.entries(counts).map(([k, n]) => `${k}: ${n}`).join(" · "));
    const more = page.next === null ? null
      : h("button", { type: "button", class: "quiet", onclick: () => fill(out, t, () => load(page.next)) }, t("reg.more"));
    return [
      counts.differs ? problem({ detail: `${counts.differs} decisions differ on replay` }) : null,
      summary,
      table([
        { label: t("reg.index"), cell: (r) => h("a", { href: `#/${ctx.role}/entry/${r.index}` }, String(r.index)) },
        { label: t("reg.kind"), cell: (r) => r.kind || "—" },
        { label: t("reg.verdict"), cell: (r) => h("span", { class: r.verdict === "differs" ? "deny" : r.verdict === "matched" ? "allow" : "muted" }, r.verdict) },
        { label: "", cell: (r) => (r.verdict === "differs" ? h("pre", {}, JSON.stringify({ recorded: r.recorded, replayed: r.replayed }, null, 1)) : "") },
      ], shown, { caption: t("reg.replay") }),
      more,
    ];
  }
  await fill(out, t, () => load(0));
}

// -- traffic --------------------------------------------------------------------------

function byOutcome(rows, keyOf) {
  const items = new Map();
  for (const row of rows) {
    const key = keyOf(row);
    if (!items.has(key)) items.set(key, { label: key, values: {} });
    const bucket = ["released", "denied", "limited"].includes(row.outcome) ? row.outcome : "other";
    const values = items.get(key).values;
    values[bucket] = (values[bucket] || 0) + row.count;
  }
  return [...items.values()];
}

/** Columns over time, stacked by outcome: a small hand-drawn SVG. */
function columnsChart(items, series, title) {
  const width = 560;
  const height = 160;
  const plot = height - 30;
  const top = Math.max(1, ...items.map((i) => series.reduce((a, k) => a + (i.values[k.key] || 0), 0)));
  const step = width / Math.max(1, items.length);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title }, s("title", {}, title));
  items.forEach((item, n) => {
    let y = plot;
    for (const k of series) {
      const value = item.values[k.key] || 0;
      const bar = (value / top) * (plot - 10);
      if (bar > 0) {
        y -= bar;
        svg.append(s("rect", { class: k.cls, x: n * step + 2, y, width: Math.max(1, step - 4), height: bar }, s("title", {}, `${item.label}: ${k.label} ${value}`)));
      }
    }
  });
  if (items.length) {
    svg.append(s("text", { x: 0, y: height - 8 }, when(items[0].label)));
    svg.append(s("text", { x: width, y: height - 8, "text-anchor": "end" }, when(items[items.length - 1].label)));
  }
  return h("figure", { class: "figure" }, svg);
}

async function trafficView(container, ctx) {
  const { t } = ctx;
  const out = h("div", { "aria-live": "polite" });
  container.replaceChildren(out);
  await fill(out, t, async () => {
    const counts = await ctx.api("/v1/audit/traffic");
    if (!counts.total) return empty(t("reg.none"));
    return [
      h("p", { id: "traffic-total" }, `${counts.total}`),
      h("h3", {}, t("reg.byKind")),
      h("div", { id: "chart-kind" }, bars(byOutcome(counts.by_kind, (r) => r.kind || "—"), OUTCOME_SERIES, { title: t("reg.byKind") })),
      h("h3", {}, t("reg.byHour")),
      h("div", { id: "chart-hour" }, columnsChart(byOutcome(counts.by_hour, (r) => r.hour), OUTCOME_SERIES, t("reg.byHour"))),
    ];
  });
}
