// The department's views (数源部门): the catalog and its classification (分类分级),
// products, the policy bundle with a candidate's diff and what-if, and model review.
// Every change is the audited call the command line makes (PUT /v1/admin/catalog,
// POST /v1/admin/policy, POST /v1/models/{id}/approve|reject).
import { bars, empty, fill, h, notice, problem, table, when } from "../ui.js";
import { USAGE_LABELS, daysChart, usagePanel } from "./usage.js";

const LEVELS = ["L1", "L2", "L3", "L4"];
const USES = ["key", "compare", "aggregate", "feature", "plaintext"];

const LABELS = {
  en: {
    "dept.catalog": "Catalog 分类分级", "dept.products": "Products 产品", "dept.policy": "Policy 策略",
    "dept.models": "Model review 模型审核", "dept.publish": "Publish the catalog",
    "dept.changed": "{n} column(s) changed, not yet published", "dept.published": "Published {digest}; audit entry {entry}",
    "dept.warnings": "Products this classification denies from now on:", "dept.column": "Column", "dept.type": "Type",
    "dept.level": "Level 级别", "dept.uses": "Allowed uses 用途", "dept.errors": "The catalog was refused:",
    "dept.inforce": "Bundle in force", "dept.candidate": "Candidate", "dept.file": "File", "dept.diff": "Diff",
    "dept.whatif": "What-if over recorded traffic", "dept.run": "Run what-if", "dept.publishpolicy": "Publish the candidate",
    "dept.nochange": "The candidate is the bundle in force.", "dept.would": "{changed} of {decisions} recorded decisions would change",
    "dept.whatiffirst": "Run what-if on this candidate before publishing it.",
    "dept.queue": "Review queue", "dept.status": "Status", "dept.operator": "Operator", "dept.submitted": "Submitted",
    "dept.approve": "Approve", "dept.reject": "Reject", "dept.reason": "Reason", "dept.expires": "Expires",
    "dept.maxruns": "Max runs", "dept.forms": "Forms", "dept.note": "Note", "dept.nomodels": "No submissions.",
    "dept.manifest": "Manifest", "dept.graph": "Graph summary", "dept.weights": "Weights summary",
    "dept.probes": "Probes", "dept.leakage": "Leakage report", "dept.reviewed": "{status}; audit entry {entry}",
    "dept.operators": "Operators and licences 授权运营",
    "dept.usage": "Usage 用量", "dept.filings": "HE filings 算法备案",
    "dept.contexts": "Registered contexts (public CKKS) 密态计算上下文", "dept.filedmodels": "Filed models 备案模型",
    "dept.id": "Id", "dept.parameters": "Parameters", "dept.registered": "Registered", "dept.features": "Features",
    "dept.commitment": "Commitment to the weights", "dept.ciphertexts": "Ciphertexts digest", "dept.context": "Context",
    "dept.product": "Product", "dept.nofilings": "Nothing filed yet.",
  },
  zh: {
    "dept.catalog": "分类分级 Catalog", "dept.products": "产品 Products", "dept.policy": "策略 Policy",
    "dept.models": "模型审核 Model review", "dept.publish": "发布目录", "dept.changed": "已修改 {n} 列，尚未发布",
    "dept.published": "已发布 {digest}；审计条目 {entry}", "dept.warnings": "此分级自此拒绝的产品：",
    "dept.column": "列", "dept.type": "类型", "dept.level": "级别 Level", "dept.uses": "用途 Allowed uses",
    "dept.errors": "目录被拒绝：", "dept.inforce": "生效中的策略包", "dept.candidate": "候选", "dept.file": "文件",
    "dept.diff": "差异", "dept.whatif": "基于已记录流量的假设分析", "dept.run": "运行假设分析",
    "dept.publishpolicy": "发布候选策略", "dept.nochange": "候选与生效策略相同。",
    "dept.would": "{decisions} 个已记录决定中有 {changed} 个会改变", "dept.whatiffirst": "发布前请先对此候选运行假设分析。",
    "dept.queue": "审核队列", "dept.status": "状态", "dept.operator": "运营方", "dept.submitted": "提交时间",
    "dept.approve": "批准", "dept.reject": "驳回", "dept.reason": "理由", "dept.expires": "有效期至",
    "dept.maxruns": "最多运行次数", "dept.forms": "形式", "dept.note": "备注", "dept.nomodels": "暂无提交。",
    "dept.manifest": "清单", "dept.graph": "计算图摘要", "dept.weights": "权重摘要", "dept.probes": "探测",
    "dept.leakage": "泄露报告", "dept.reviewed": "{status}；审计条目 {entry}", "dept.operators": "授权运营 Operators and licences",
    "dept.usage": "用量 Usage", "dept.filings": "算法备案 HE filings",
    "dept.contexts": "已登记上下文（公开 CKKS）", "dept.filedmodels": "备案模型", "dept.id": "标识",
    "dept.parameters": "参数", "dept.registered": "登记时间", "dept.features": "特征", "dept.commitment": "权重承诺",
    "dept.ciphertexts": "密文摘要", "dept.context": "上下文", "dept.product": "产品", "dept.nofilings": "尚无备案。",
  },
};

const SECTIONS = ["catalog", "products", "policy", "models", "usage", "filings"];

export async function mount(element, ctx) {
  ctx.t.add(LABELS);
  ctx.t.add(USAGE_LABELS);
  const { t } = ctx;
  const section = SECTIONS.includes(ctx.section.split("/")[0]) ? ctx.section.split("/")[0] : "catalog";
  const body = h("div", { id: `dept-${section}` });
  element.replaceChildren(
    h("h2", {}, t("role.department")),
    h("div", { class: "tabs", role: "navigation", "aria-label": t("role.department") },
      SECTIONS.map((s) => h("a", { href: `#/department/${s}`, "aria-current": s === section ? "page" : null }, t(`dept.${s}`)))),
    body,
  );
  await { catalog, products, policy, models, usage, filings }[section](body, ctx);
}

// -- usage and budgets per operator (GET /v1/admin/usage) ------------------------------

async function usage(body, ctx) {
  const { api, t } = ctx;
  await fill(body, t, async () => {
    const report = await api("/v1/admin/usage");
    const all = report.disclosure_all_operators;
    return [
      h("h3", {}, t("use.title")),
      h("p", { class: "muted" }, t("use.source")),
      h("section", { class: "panel", id: "usage-all" }, h("h4", {}, t("use.all")),
        daysChart(report.days, t, "days-all"),
        all ? h("p", { class: "disclosure" }, t("use.disclosure.text", { subjects: all.subjects, days: all.window_days, near: all.near, at: all.at, bits: all.bits_total })) : null),
      ...report.operators.map((o) => usagePanel(o, t)),
    ];
  });
}

// -- HE filings (算法备案), GET /v1/he/filings -----------------------------------------

async function filings(body, ctx) {
  const { api, t } = ctx;
  const short = (digest) => h("code", { title: digest }, digest ? `${String(digest).slice(0, 23)}…` : "—");
  await fill(body, t, async () => {
    const { contexts, models: filed } = await api("/v1/he/filings");
    return [
      h("h3", {}, t("dept.filedmodels")),
      table([
        { label: t("dept.id"), cell: (m) => short(m.id) },
        { label: t("dept.operator"), cell: (m) => m.operator },
        { label: t("dept.product"), cell: (m) => h("code", {}, m.product) },
        { label: t("dept.features"), cell: (m) => m.features.join(", ") },
        { label: t("dept.commitment"), cell: (m) => short(m.commitment) },
        { label: t("dept.ciphertexts"), cell: (m) => short(m.weights_digest) },
        { label: t("dept.context"), cell: (m) => short(m.context) },
        { label: t("dept.registered"), cell: (m) => `${when(m.registered)} → ${when(m.expires)}` },
      ], filed, { emptyText: t("dept.nofilings") }),
      h("h3", {}, t("dept.contexts")),
      table([
        { label: t("dept.id"), cell: (c) => short(c.id) },
        { label: t("dept.operator"), cell: (c) => c.operator },
        { label: t("dept.parameters"), cell: (c) => c.parameters?.name ?? "" },
        { label: t("dept.registered"), cell: (c) => `${when(c.registered)} → ${when(c.expires)}` },
      ], contexts, { emptyText: t("dept.nofilings") }),
    ];
  });
}

// -- catalog -------------------------------------------------------------------------

async function catalog(body, ctx) {
  const { api, t } = ctx;
  await fill(body, t, async () => {
    const document = await api("/v1/admin/catalog");
    const changed = new Set();
    const status = h("div", { "aria-live": "polite" });
    const counter = h("p", { class: "muted" });
    const publish = h("button", { type: "button", id: "publish-catalog", disabled: true }, t("dept.publish"));
    const mark = () => {
      counter.textContent = changed.size ? t("dept.changed", { n: changed.size }) : "";
      publish.disabled = changed.size === 0;
    };
    const rows = new Map();
    const datasets = document.datasets.map((dataset) => {
      const columns = [
        { label: t("dept.column"), cell: (c) => h("span", {}, h("code", {}, c.name), " ", h("span", { class: "muted" }, c.title || "")) },
        { label: t("dept.type"), cell: (c) => c.type },
        { label: t("dept.level"), cell: (c) => {
          const select = h("select", { "aria-label": `${dataset.id}.${c.name} ${t("dept.level")}`, "data-column": `${dataset.id}.${c.name}`, class: "level-select",
            onchange: () => { c.level = select.value; changed.add(dataset.id + "." + c.name); mark(); } },
          LEVELS.map((l) => h("option", { value: l, selected: l === c.level }, l)));
          return select;
        } },
        { label: t("dept.uses"), cell: (c) => h("span", { class: "row" }, USES.map((use) => {
          const box = h("input", { type: "checkbox", checked: c.uses.includes(use), "data-use": `${dataset.id}.${c.name}.${use}`,
            onchange: () => {
              c.uses = box.checked ? [...new Set([...c.uses, use])].sort((a, b) => USES.indexOf(a) - USES.indexOf(b)) : c.uses.filter((u) => u !== use);
              changed.add(dataset.id + "." + c.name);
              mark();
            } });
          return h("label", { class: "use" }, box, " ", use);
        })) },
        { label: "", cell: (c) => { const slot = h("span", { class: "field-error" }); rows.set(`datasets/${dataset.id}/columns/${c.name}`, slot); return slot; } },
      ];
      return h("section", { class: "panel" }, h("h3", {}, `${dataset.title} `, h("code", {}, dataset.id)),
        h("p", { class: "muted" }, `table ${dataset.table} · key ${dataset.key_column} · version ${dataset.version ?? "—"}`),
        table(columns, dataset.columns, { caption: t("term.classification") }));
    });
    publish.addEventListener("click", async () => {
      status.replaceChildren();
      for (const slot of rows.values()) slot.textContent = "";
      const touched = new Set([...changed].map((key) => key.split(".")[0]));
      const payload = { datasets: document.datasets.filter((d) => touched.has(d.id)) };
      publish.disabled = true;
      try {
        const answer = await api("/v1/admin/catalog", { method: "PUT", body: payload });
        changed.clear();
        mark();
        status.append(notice(t("dept.published", { digest: answer.digest, entry: answer.audit.entry })));
        if (answer.warnings?.length) {
          status.append(h("div", { class: "warning", role: "status", id: "catalog-warnings" },
            h("strong", {}, t("dept.warnings")), h("ul", {}, answer.warnings.map((w) => h("li", {}, h("code", {}, w.at), " ", w.message)))));
        }
      } catch (error) {
        status.append(problem(error));
        const unplaced = [];
        for (const found of error.problem?.errors || []) {
          // a dataset's key column is named at the dataset: shown on that column's row
          const keyed = document.datasets.find((d) => found.at === `datasets/${d.id}/key_column`);
          const at = keyed ? `datasets/${keyed.id}/columns/${keyed.key_column}` : found.at;
          const key = [...rows.keys()].find((k) => at === k || at.startsWith(k + "/"));
          if (key) rows.get(key).textContent = found.message;
          else unplaced.push(found);
        }
        if (unplaced.length) status.append(h("ul", {}, unplaced.map((f) => h("li", {}, h("code", {}, f.at || "/"), " ", f.message))));
        mark();
      }
    });
    const licences = table(
      [
        { label: t("dept.operator"), cell: (l) => l.operator_id },
        { label: "licence", cell: (l) => l.id },
        { label: "products", cell: (l) => l.products.join(", ") },
        { label: "purposes", cell: (l) => l.purposes.join(", ") },
        { label: "valid", cell: (l) => `${when(l.valid_from)} → ${when(l.valid_to)}${l.revoked_at ? ` · revoked ${when(l.revoked_at)}` : ""}` },
      ],
      document.licences || [],
    );
    return [h("div", { class: "row" }, publish, counter), status, ...datasets,
      h("section", { class: "panel" }, h("h3", {}, t("dept.operators")), licences)];
  });
}

// -- products ------------------------------------------------------------------------

async function products(body, ctx) {
  const { api, t } = ctx;
  await fill(body, t, async () => {
    const document = await api("/v1/admin/catalog");
    return table(
      [
        { label: "id", cell: (p) => h("code", {}, p.id) },
        { label: "kind", cell: (p) => p.kind },
        { label: "dataset", cell: (p) => p.dataset },
        { label: "title", cell: (p) => p.title },
        { label: "published", cell: (p) => (p.published ? "✓" : "—") },
        { label: "spec", cell: (p) => h("details", {}, h("summary", {}, (p.spec.checks || []).map((c) => `${c.column} ${c.op}`).join(", ") || "…"), h("pre", {}, JSON.stringify(p.spec, null, 2))) },
      ],
      document.products,
      { emptyText: "—" },
    );
  });
}

// -- policy --------------------------------------------------------------------------

const DATA = "data.json";

/** Line diff by longest common subsequence: fine for the few hundred lines of a module. */
function diffLines(before, after) {
  const a = before.split("\n"), b = after.split("\n");
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { i++; j++; continue; }
    if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(["+", j + 1, b[j++]]);
    else out.push(["-", i + 1, a[i++]]);
  }
  return out;
}

async function policy(body, ctx) {
  const { api, t } = ctx;
  await fill(body, t, async () => {
    const inForce = await api("/v1/admin/policy/bundle");
    const original = { ...inForce.modules, [DATA]: JSON.stringify(inForce.data, null, 2) };
    const candidate = { ...original };
    const names = Object.keys(original).sort();
    const editor = h("textarea", { id: "policy-editor", rows: 18, spellcheck: "false", "aria-label": t("dept.candidate") });
    const picker = h("select", { id: "policy-file", "aria-label": t("dept.file") }, names.map((n) => h("option", { value: n }, n)));
    const diff = h("div", { id: "policy-diff" });
    const report = h("div", { id: "whatif-report", "aria-live": "polite" });
    const status = h("div", { "aria-live": "polite" });
    const run = h("button", { type: "button", id: "run-whatif" }, t("dept.run"));
    const publish = h("button", { type: "button", id: "publish-policy", disabled: true, title: t("dept.whatiffirst") }, t("dept.publishpolicy"));
    let checked = null; // the candidate what-if last ran on: publish waits for it

    const bundle = () => {
      const modules = Object.fromEntries(names.filter((n) => n !== DATA).map((n) => [n, candidate[n]]));
      return { modules, data: JSON.parse(candidate[DATA]) };
    };
    const showDiff = () => {
      const changed = names.filter((n) => candidate[n] !== original[n]);
      publish.disabled = !changed.length || checked !== JSON.stringify(candidate);
      if (!changed.length) { diff.replaceChildren(empty(t("dept.nochange"))); return; }
      diff.replaceChildren(...changed.map((n) => h("div", {}, h("h4", {}, n),
        h("pre", {}, diffLines(original[n], candidate[n]).map(([sign, line, text]) =>
          h("span", { class: sign === "+" ? "diff-add" : "diff-del" }, `${sign} ${String(line).padStart(4)}  ${text}`))))));
    };
    picker.addEventListener("change", () => { editor.value = candidate[picker.value]; });
    editor.addEventListener("input", () => { candidate[picker.value] = editor.value; showDiff(); });
    editor.value = candidate[picker.value];

    run.addEventListener("click", async () => {
      report.replaceChildren(h("p", { class: "loading", role: "status" }, t("loading")));
      status.replaceChildren();
      try {
        const answer = await api("/v1/admin/policy/whatif", { method: "POST", body: bundle() });
        checked = JSON.stringify(candidate);
        report.replaceChildren(whatifReport(answer, t));
        showDiff();
      } catch (error) {
        report.replaceChildren(problem(error instanceof SyntaxError ? { detail: `${DATA}: ${error.message}` } : error));
      }
    });
    publish.addEventListener("click", async () => {
      status.replaceChildren();
      try {
        const answer = await api("/v1/admin/policy", { method: "POST", body: bundle() });
        status.append(notice(t("dept.published", { digest: answer.digest, entry: answer.audit.entry })));
        Object.assign(original, candidate);
        checked = null;
        showDiff();
        current.textContent = answer.digest;
      } catch (error) {
        status.append(problem(error));
      }
    });
    const current = h("code", { id: "policy-digest" }, inForce.digest);
    showDiff();
    return [
      h("p", {}, `${t("dept.inforce")}: `, current),
      h("section", { class: "panel" }, h("h3", {}, t("dept.candidate")), h("label", { for: "policy-file" }, t("dept.file")), picker, editor),
      h("section", { class: "panel" }, h("h3", {}, t("dept.diff")), diff),
      h("section", { class: "panel" }, h("h3", {}, t("dept.whatif")), h("div", { class: "row" }, run, publish), status, report),
    ];
  });
}

function whatifReport(answer, t) {
  const summary = h("p", { id: "whatif-summary" }, h("strong", {}, t("dept.would", answer)));
  const changed = answer.groups.filter((g) => g.allow_to_deny || g.deny_to_allow);
  const chart = changed.length
    ? bars(changed.map((g) => ({ label: `${g.operator} · ${g.product}`, values: { ad: g.allow_to_deny, da: g.deny_to_allow } })),
      [{ key: "ad", label: "allow→deny", cls: "bar-b" }, { key: "da", label: "deny→allow", cls: "bar-c" }], { title: t("dept.whatif") })
    : null;
  const rows = table(
    [
      { label: t("dept.operator"), cell: (g) => g.operator },
      { label: "product", cell: (g) => g.product },
      { label: "decisions", cell: (g) => g.decisions },
      { label: "allow→deny", cell: (g) => h("span", { class: g.allow_to_deny ? "deny" : "" }, g.allow_to_deny) },
      { label: "deny→allow", cell: (g) => h("span", { class: g.deny_to_allow ? "allow" : "" }, g.deny_to_allow) },
      { label: "examples", cell: (g) => h("ul", {}, g.examples.map((e) => h("li", {}, `entry ${e.index} (${when(e.time)}): ${e.was ? "allow" : "deny"}→${e.would_be ? "allow" : "deny"}: ${e.reasons.join("; ") || "—"}`))) },
    ],
    answer.groups,
    { caption: answer.candidate },
  );
  return h("div", {}, summary, chart, rows);
}

// -- models --------------------------------------------------------------------------

async function models(body, ctx) {
  const { api, t } = ctx;
  const detail = h("div", { id: "model-detail" });
  const queue = h("div", { id: "model-queue" });
  body.replaceChildren(h("h3", {}, t("dept.queue")), queue, detail);
  const load = () => fill(queue, t, async () => {
    const { models: rows } = await api("/v1/models");
    return table(
      [
        { label: "id", cell: (m) => h("a", { href: "#", "data-model": m.id, onclick: (e) => { e.preventDefault(); show(m.id); } }, m.id) },
        { label: "name", cell: (m) => `${m.manifest.name} · ${m.manifest.dataset}` },
        { label: t("dept.operator"), cell: (m) => m.operator },
        { label: t("dept.status"), cell: (m) => h("span", { class: m.status === "approved" ? "allow" : m.status === "pending" ? "" : "deny" }, m.status) },
        { label: t("dept.submitted"), cell: (m) => when(m.submitted_at) },
      ],
      rows,
      { emptyText: t("dept.nomodels") },
    );
  });
  const show = (id) => fill(detail, t, async () => {
    const model = await api(`/v1/models/${id}`);
    return modelView(model, ctx, async () => { await load(); await show(id); });
  });
  await load();
}

function kv(object) {
  return table([{ label: "", cell: ([k]) => h("code", {}, k) }, { label: "", cell: ([, v]) => (typeof v === "object" && v !== null ? h("pre", {}, JSON.stringify(v, null, 2)) : String(v)) }], Object.entries(object || {}));
}

function modelView(model, ctx, reload) {
  const { api, t } = ctx;
  const summary = model.summary || {};
  const weights = summary.initializers || [];
  const graph = Object.fromEntries(Object.entries(summary).filter(([k]) => !["initializers", "probe", "probes", "leakage"].includes(k)));
  const status = h("div", { "aria-live": "polite" });
  const parts = [
    h("h3", {}, `${model.manifest.title || model.manifest.name} `, h("code", {}, model.id)),
    h("p", {}, `${t("dept.status")}: `, h("strong", { id: "model-status" }, model.status), model.review ? ` · ${model.review.by} ${when(model.review.at)} ${model.review.reason || ""}` : ""),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h4", {}, t("dept.manifest")), kv(model.manifest)),
      h("section", { class: "panel" }, h("h4", {}, t("dept.graph")), kv(graph))),
    h("section", { class: "panel" }, h("h4", {}, t("dept.weights")), Array.isArray(weights)
      ? table(["name", "shape", "count", "min", "max", "mean", "std"].map((k) => ({ label: k, cell: (w) => (Array.isArray(w[k]) ? `[${w[k].join("×")}]` : typeof w[k] === "number" ? Number(w[k].toPrecision(4)) : String(w[k] ?? "")) })), weights)
      : kv(weights)),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h4", {}, t("dept.probes")), kv({ probe: summary.probe, probes: summary.probes })),
      h("section", { class: "panel", id: "leakage" }, h("h4", {}, t("dept.leakage")), h("pre", {}, JSON.stringify(summary.leakage ?? null, null, 2)))),
    status,
  ];
  if (model.status === "pending") {
    const year = new Date(Date.now() + 365 * 86400e3).toISOString().slice(0, 16);
    const expires = h("input", { type: "datetime-local", id: "approve-expires", value: year });
    const maxRuns = h("input", { type: "number", id: "approve-max-runs", min: 1, value: 1000 });
    const note = h("input", { type: "text", id: "approve-note", maxlength: 500 });
    const forms = (model.manifest.forms || []).map((f) => h("input", { type: "checkbox", value: f, checked: true, "data-form": f }));
    const reason = h("input", { type: "text", id: "reject-reason", maxlength: 500 });
    const act = async (path, payload) => {
      status.replaceChildren();
      try {
        const answer = await api(`/v1/models/${model.id}/${path}`, { method: "POST", body: payload });
        status.append(notice(t("dept.reviewed", { status: answer.status || path, entry: answer.audit?.entry ?? "—" })));
        await reload();
      } catch (error) {
        status.append(problem(error));
      }
    };
    parts.push(h("div", { class: "grid" },
      h("form", { class: "panel", id: "approve-form", onsubmit: (e) => { e.preventDefault();
        act("approve", { expires: new Date(expires.value).toISOString(), max_runs: Number(maxRuns.value) || null,
          forms: forms.filter((f) => f.checked).map((f) => f.value), note: note.value }); } },
      h("h4", {}, t("dept.approve")),
      h("label", { for: "approve-expires" }, t("dept.expires")), expires,
      h("label", { for: "approve-max-runs" }, t("dept.maxruns")), maxRuns,
      h("fieldset", {}, h("legend", {}, t("dept.forms")), forms.map((f) => h("label", {}, f, " ", f.value))),
      h("label", { for: "approve-note" }, t("dept.note")), note,
      h("p", {}, h("button", { type: "submit", id: "approve" }, t("dept.approve")))),
      h("form", { class: "panel", id: "reject-form", onsubmit: (e) => { e.preventDefault(); act("reject", { reason: reason.value }); } },
        h("h4", {}, t("dept.reject")), h("label", { for: "reject-reason" }, t("dept.reason")), reason,
        h("p", {}, h("button", { type: "submit", class: "danger", id: "reject" }, t("dept.reject"))))));
  }
  return parts;
}
