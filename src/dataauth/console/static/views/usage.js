// One operator's usage and budgets, as GET /v1/admin/usage (a department, each operator)
// and GET /v1/usage (an operator, its own) answer them: quotas used and left, ε spent and
// left, how many subjects stand near or at their disclosure budget (counts, never who),
// and entries per day. Shared by the department's and the operator's views.
import { bars, columns, empty, formatNumber, h, table } from "../ui.js";

export const USAGE_LABELS = {
  en: {
    "use.title": "Usage and budgets 用量与预算", "use.product": "Product", "use.purpose": "Purpose",
    "use.rate": "Requests this minute", "use.quota": "Subjects today (daily quota 日配额)",
    "use.persubject": "Per subject per day", "use.left": "left", "use.nolimit": "no limit",
    "use.noscopes": "No counted calls and no limits on record.", "use.quotachart": "Daily quota: used and left",
    "use.used": "used", "use.free": "left", "use.epsilon": "ε budget 差分隐私预算", "use.dataset": "Dataset",
    "use.spent": "ε spent", "use.total": "ε total", "use.eleft": "ε left", "use.noepsilon": "No ε spent.",
    "use.disclosure": "Subject disclosure budgets 主体披露预算",
    "use.disclosure.text": "{subjects} subjects told about in the last {days} days; {near} near (≥ 80 %) and {at} at the budget of {bits} bits each.",
    "use.nodisclosure": "No subject budget on record.",
    "use.today": "{subjects} subjects asked about today; the most any one was asked: {most} (limit {allowed}).",
    "use.days": "Entries per day 每日条目", "use.allowed": "allowed", "use.denied": "denied",
    "use.all": "All operators", "use.source": "Limits are those the policy applied in the operator's latest allowed decisions; counters are the current windows; days are counted from the audit log.",
  },
  zh: {
    "use.title": "用量与预算 Usage and budgets", "use.product": "产品", "use.purpose": "目的",
    "use.rate": "本分钟请求数", "use.quota": "今日主体数（日配额）", "use.persubject": "每主体每日",
    "use.left": "剩余", "use.nolimit": "无限制", "use.noscopes": "暂无计数的调用或限制记录。",
    "use.quotachart": "日配额：已用与剩余", "use.used": "已用", "use.free": "剩余",
    "use.epsilon": "差分隐私预算 ε budget", "use.dataset": "数据集", "use.spent": "已用 ε", "use.total": "ε 总额",
    "use.eleft": "剩余 ε", "use.noepsilon": "尚未消耗 ε。", "use.disclosure": "主体披露预算 Subject disclosure budgets",
    "use.disclosure.text": "近 {days} 天内涉及 {subjects} 个主体；{near} 个接近（≥ 80 %）、{at} 个已达每主体 {bits} 比特的预算。",
    "use.nodisclosure": "暂无主体预算记录。",
    "use.today": "今日查询 {subjects} 个主体；单个主体最多被查询 {most} 次（上限 {allowed}）。",
    "use.days": "每日条目 Entries per day", "use.allowed": "允许", "use.denied": "拒绝", "use.all": "全部运营方",
    "use.source": "限制取自策略在该运营方最近允许的决定中所施加的值；计数为当前窗口；每日条目取自审计日志。",
  },
};

const limit = (c, t) => (c.allowed === null ? `${c.used} · ${t("use.nolimit")}` : `${c.used} / ${c.allowed} (${c.left} ${t("use.left")})`);

export function daysChart(days, t, id) {
  return h("div", { class: "days", id },
    h("h5", {}, t("use.days")),
    columns(days.map((d) => ({ label: d.day.slice(5), values: { a: d.allowed, d: d.denied } })),
      [{ key: "a", label: t("use.allowed"), cls: "bar-c" }, { key: "d", label: t("use.denied"), cls: "bar-b" }],
      { title: t("use.days") }));
}

/** The panel of one operator's report. */
export function usagePanel(report, t) {
  const scopes = table([
    { label: t("use.product"), cell: (s) => h("code", {}, s.product) },
    { label: t("use.purpose"), cell: (s) => s.purpose },
    { label: t("use.rate"), cell: (s) => limit(s.rate_per_minute, t) },
    { label: t("use.quota"), cell: (s) => limit(s.daily_quota, t) },
    { label: t("use.persubject"), cell: (s) => s.subject_per_day ?? t("use.nolimit") },
  ], report.scopes, { emptyText: t("use.noscopes") });
  const quotas = report.scopes.filter((s) => s.daily_quota.allowed !== null);
  const quotaChart = quotas.length ? bars(quotas.map((s) => ({ label: `${s.product} · ${s.purpose}`, values: { u: s.daily_quota.used, l: s.daily_quota.left } })),
    [{ key: "u", label: t("use.used"), cls: "bar-a" }, { key: "l", label: t("use.free"), cls: "bar-d" }], { title: t("use.quotachart") }) : null;
  const today = report.subjects_today;
  const epsilon = report.privacy.length ? [
    table([
      { label: t("use.dataset"), cell: (p) => h("code", {}, p.dataset) },
      { label: t("use.spent"), cell: (p) => formatNumber(p.epsilon_spent) },
      { label: t("use.total"), cell: (p) => (p.epsilon_total === null ? "—" : formatNumber(p.epsilon_total)) },
      { label: t("use.eleft"), cell: (p) => (p.epsilon_left === null ? "—" : formatNumber(p.epsilon_left)) },
    ], report.privacy),
    bars(report.privacy.filter((p) => p.epsilon_total !== null).map((p) => ({ label: p.dataset, values: { s: p.epsilon_spent, l: p.epsilon_left } })),
      [{ key: "s", label: t("use.spent"), cls: "bar-a" }, { key: "l", label: t("use.eleft"), cls: "bar-d" }], { title: t("use.epsilon") }),
  ] : [empty(t("use.noepsilon"))];
  const d = report.disclosure;
  return h("section", { class: "panel usage", id: `usage-${report.operator}`, "data-operator": report.operator },
    h("h4", {}, `${report.name} `, h("code", {}, report.operator)),
    scopes, quotaChart,
    today.subjects ? h("p", { class: "today" }, t("use.today", { subjects: today.subjects, most: today.most, allowed: today.allowed ?? t("use.nolimit") })) : null,
    h("h5", {}, t("use.epsilon")), ...epsilon,
    h("h5", {}, t("use.disclosure")),
    d ? h("p", { class: "disclosure" }, t("use.disclosure.text", { subjects: d.subjects, days: d.window_days, near: d.near, at: d.at, bits: formatNumber(d.bits_per_operator) }))
      : empty(t("use.nodisclosure")),
    daysChart(report.days, t, `days-${report.operator}`));
}
