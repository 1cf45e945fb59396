// The operator's views (授权运营): its licence, the products it may call with a form
// to try one (the same POST /v1/verify/{product} the SDK makes, audited), and its own
// receipts (GET /v1/audit/entries answers an operator its own entries only).
import { fill, h, notice, problem, table, when } from "../ui.js";
import { checkEntry } from "../verify.js";
import { USAGE_LABELS, usagePanel } from "./usage.js";

const LABELS = {
  en: {
    "op.licence": "Licence 许可", "op.products": "Products 产品", "op.receipts": "Receipts 回执",
    "op.status": "Status", "op.valid": "Valid", "op.purposes": "Purposes", "op.try": "Try it",
    "op.key": "Subject key", "op.purpose": "Purpose", "op.send": "Send", "op.noproducts": "The licence covers no product.",
    "op.noreceipts": "No entries yet.", "op.answer": "Answer; audit entry {entry}",
    "op.check": "Check", "op.checked": "Included in the signed log: checked in this browser",
    "op.unchecked": "Proof checked; the head's signature could not be checked here", "op.notin": "Not proven: {steps}",
  },
  zh: {
    "op.licence": "许可 Licence", "op.products": "产品 Products", "op.receipts": "回执 Receipts",
    "op.status": "状态", "op.valid": "有效期", "op.purposes": "用途", "op.try": "试用",
    "op.key": "主体标识", "op.purpose": "目的", "op.send": "发送", "op.noproducts": "许可未覆盖任何产品。",
    "op.noreceipts": "暂无条目。", "op.answer": "结果；审计条目 {entry}",
    "op.check": "校验", "op.checked": "已在本浏览器中验证：条目包含在已签名的日志中",
    "op.unchecked": "证明已校验；签名无法在此校验", "op.notin": "未能证明：{steps}",
  },
};

const SECTIONS = ["licence", "usage", "receipts"];

export async function mount(element, ctx) {
  ctx.t.add(LABELS);
  ctx.t.add(USAGE_LABELS);
  const { t } = ctx;
  const section = SECTIONS.includes(ctx.section) ? ctx.section : "licence";
  const body = h("div", { id: `op-${section}` });
  element.replaceChildren(
    h("h2", {}, t("role.operator"), " ", h("code", {}, ctx.me.subject)),
    h("div", { class: "tabs", role: "navigation", "aria-label": t("role.operator") },
      [["licence", "op.products"], ["usage", "use.title"], ["receipts", "op.receipts"]].map(([s, label]) => h("a", { href: `#/operator/${s}`, "aria-current": s === section ? "page" : null }, t(label)))),
    body,
  );
  await { licence, usage, receipts }[section](body, ctx);
}

// its own usage and budgets only: GET /v1/usage answers for the token's operator
async function usage(body, ctx) {
  const { api, t } = ctx;
  await fill(body, t, async () => [h("p", { class: "muted" }, t("use.source")), usagePanel(await api("/v1/usage"), t)]);
}

async function licence(body, ctx) {
  const { api, t } = ctx;
  await fill(body, t, async () => {
    const listing = await api("/v1/products");
    const l = listing.licence;
    const summary = h("section", { class: "panel", id: "licence" }, h("h3", {}, t("op.licence")),
      l ? table([{ label: t("op.status"), cell: () => h("strong", { class: l.status === "active" ? "allow" : "deny" }, l.status) },
        { label: t("op.valid"), cell: () => `${when(l.valid_from)} → ${when(l.valid_to)}` },
        { label: t("op.purposes"), cell: () => l.purposes.join(", ") }], [l]) : problem({ detail: "no licence" }));
    const products = listing.products.length
      ? listing.products.map((p) => productCard(p, l, ctx))
      : [h("p", { class: "empty" }, t("op.noproducts"))];
    return [summary, h("h3", {}, t("op.products")), ...products];
  });
}

function productCard(product, licence, ctx) {
  const { api, t } = ctx;
  const id = product.id;
  const params = Object.entries(product.parameters || {});
  const key = h("input", { type: "text", id: `key-${id}`, maxlength: 64, autocomplete: "off" });
  const purpose = h("select", { id: `purpose-${id}` }, (licence?.purposes || []).map((p) => h("option", { value: p }, p)));
  const inputs = params.map(([name, spec]) => {
    const input = spec.one_of
      ? h("select", { id: `claim-${id}-${name}` }, spec.one_of.map((v) => h("option", { value: JSON.stringify(v) }, String(v))))
      : h("input", { type: "text", id: `claim-${id}-${name}`, placeholder: spec.type || "" });
    return [name, spec, input];
  });
  const out = h("div", { "aria-live": "polite", id: `answer-${id}` });
  const canTry = product.kind === "verify";
  const form = canTry ? h("form", {
    class: "try", "data-product": id,
    onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      const claims = {};
      for (const [name, spec, input] of inputs) {
        const raw = input.value.trim();
        let value = raw;
        try { value = JSON.parse(raw); } catch { /* a string claim */ }
        claims[name] = spec.type === "string" ? raw : value;
      }
      try {
        const answer = await api(`/v1/verify/${id}`, { method: "POST", body: { purpose: purpose.value, subjects: [{ key: key.value.trim(), claims }] } });
        out.append(notice(t("op.answer", { entry: answer.audit?.entry ?? "—" })), h("pre", {}, JSON.stringify(answer.results, null, 2)));
      } catch (error) {
        out.append(problem(error));
      }
    },
  },
  h("div", { class: "row" },
    h("span", {}, h("label", { for: `key-${id}` }, t("op.key")), key),
    h("span", {}, h("label", { for: `purpose-${id}` }, t("op.purpose")), purpose),
    inputs.map(([name, , input]) => h("span", {}, h("label", { for: input.id }, name), input)),
    h("button", { type: "submit" }, t("op.send")))) : h("p", { class: "muted" }, product.kind);
  return h("section", { class: "panel product", id: `product-${id}` },
    h("h4", {}, `${product.title} `, h("code", {}, id)),
    h("p", { class: "muted" }, `${product.kind} · ${product.dataset} · ${product.answer?.form ?? ""}`),
    canTry ? h("details", {}, h("summary", {}, t("op.try")), form, out) : form);
}

async function receipts(body, ctx) {
  const { api, t } = ctx;
  await fill(body, t, async () => {
    const { entries } = await api("/v1/audit/entries?limit=200");
    const rows = entries.map((e) => ({ index: e.index, leaf: e.leaf_hash, ...(e.entry || e) })).reverse();
    return table(
      [
        { label: "#", cell: (e) => e.index },
        { label: "time", cell: (e) => when(e.time) },
        { label: "operator", cell: (e) => e.operator },
        { label: "operation", cell: (e) => `${e.operation?.kind ?? ""} ${e.operation?.product ?? ""}` },
        { label: "outcome", cell: (e) => h("span", { class: e.outcome === "released" ? "allow" : "deny" }, e.outcome) },
        { label: "leaf", cell: (e) => h("code", {}, String(e.leaf).slice(0, 16) + "…") },
        { label: t("op.check"), cell: (e) => checkButton(e.index, ctx) },
      ],
      rows,
      { emptyText: t("op.noreceipts") },
    );
  });
}

// A receipt checked here, not taken on the gateway's word: the entry's stored bytes
// hashed in the page, the inclusion proof to a signed head, its Ed25519 signature
// (verify.js, WebCrypto)
function checkButton(index, ctx) {
  const { t } = ctx;
  const out = h("span", { class: "check", id: `check-${index}`, "aria-live": "polite" });
  const button = h("button", {
    type: "button", "data-index": index,
    onclick: async () => {
      button.disabled = true;
      out.replaceChildren(t("loading"));
      try {
        const result = await checkEntry(ctx.api, index, { token: ctx.token });
        const failed = result.steps.filter((step) => step.ok === false).map((step) => step.name);
        out.dataset.ok = String(result.ok);
        out.replaceChildren(h("span", { class: result.ok === true ? "allow" : result.ok === false ? "deny" : "muted" },
          result.ok === true ? t("op.checked") : result.ok === false ? t("op.notin", { steps: failed.join(", ") }) : t("op.unchecked")));
      } catch (error) {
        out.replaceChildren(problem(error));
      } finally {
        button.disabled = false;
      }
    },
  }, t("op.check"));
  return h("span", {}, button, " ", out);
}
