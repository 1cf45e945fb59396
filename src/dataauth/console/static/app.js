// The console's shell: sign-in, the role's views, labels in two languages, and the one
// way the console reaches the gateway: api(), a fetch of the public API with the token.
import { h, problem } from "./ui.js";

const STRINGS = {
  en: {
    loading: "Loading…",
    signin: "Sign in",
    signout: "Sign out",
    "signin.intro": "Sign in with a bearer token from your issuer. Every action here is the same audited API call the command line makes.",
    "signin.token": "Bearer token",
    "signin.demo": "Demo identities",
    "signin.demo.intro": "This gateway runs with --demo: pick who to be.",
    "signin.as": "Sign in as",
    "signin.bad": "That does not look like a token (three base64url parts joined by dots).",
    "role.department": "Department 数源部门",
    "role.regulator": "Regulator 监管方",
    "role.operator": "Operator 授权运营",
    "none.role": "This token holds no role the console has views for.",
    "term.classification": "Classification 分类分级",
    "term.verification": "Verification 核验",
    "term.operation": "Authorised operation 授权运营",
    "term.filing": "Filing 算法备案",
    "term.department": "Department 数源部门",
    "term.regulator": "Regulator 监管方",
    lang: "中文",
  },
  zh: {
    loading: "加载中…",
    signin: "登录",
    signout: "退出",
    "signin.intro": "使用身份签发方提供的 bearer 令牌登录。此处每个操作都是与命令行相同、有审计记录的 API 调用。",
    "signin.token": "Bearer 令牌",
    "signin.demo": "演示身份",
    "signin.demo.intro": "本网关以 --demo 运行：选择一个身份。",
    "signin.as": "以此身份登录",
    "signin.bad": "这不像一个令牌（应为以点连接的三段 base64url）。",
    "role.department": "数源部门 Department",
    "role.regulator": "监管方 Regulator",
    "role.operator": "授权运营 Operator",
    "none.role": "此令牌没有控制台可展示的角色。",
    "term.classification": "分类分级 Classification",
    "term.verification": "核验 Verification",
    "term.operation": "授权运营 Authorised operation",
    "term.filing": "算法备案 Filing",
    "term.department": "数源部门 Department",
    "term.regulator": "监管方 Regulator",
    lang: "English",
  },
};

let language = localStorage.getItem("dataauth.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");

/** The label of ``key`` in the chosen language (English where the language lacks it,
 * the key itself where neither has it); ``{name}`` takes ``vars.name``. */
export function t(key, vars = {}) {
  const text = STRINGS[language][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Views add their own labels: t.add({en: {...}, zh: {...}}). */
t.add = (more) => {
  for (const [lang, entries] of Object.entries(more)) Object.assign(STRINGS[lang] ||= {}, entries);
};
t.language = () => language;

/** A problem+json answer (or a failure to reach the gateway) as an Error. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || null;
    this.detail = body?.detail || this.message;
    this.problem = body || null;
  }
}

let token = sessionStorage.getItem("dataauth.token");

/** fetch() of the public API with the signed-in token: the parsed JSON, or an ApiError
 * carrying the problem's detail, code and status. */
export async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const bearer = options.token ?? token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let body = options.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, { method: options.method || "GET", headers, body });
  } catch (error) {
    throw new ApiError(0, { code: "unreachable", detail: `the gateway did not answer: ${error.message}` });
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { detail: text.slice(0, 300) };
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

function claimsOf(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

const VIEWS = {
  department: () => import("./views/department.js"),
  regulator: () => import("./views/regulator.js"),
  operator: () => import("./views/operator.js"),
};

let me = null;

/** The roles the console has views for, from the gateway's own answer about the token. */
function rolesOf(who) {
  const roles = [];
  if (who.roles.includes("department")) roles.push("department");
  if (who.roles.includes("regulator")) roles.push("regulator");
  if (who.operator) roles.push("operator");
  return roles;
}

function route() {
  const [role, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { role, section: rest.join("/") };
}

function navigate(role, section = "") {
  const next = `#/${role}${section ? `/${section}` : ""}`;
  if (location.hash === next) render();
  else location.hash = next;
}

const main = () => document.getElementById("main");

function header() {
  document.getElementById("lang").textContent = t("lang");
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  const out = document.getElementById("signout");
  out.textContent = t("signout");
  out.hidden = !me;
  const who = document.getElementById("who");
  who.textContent = me ? `${me.subject}${me.operator ? ` · ${me.operator.name}` : ""} · ${rolesOf(me).map((r) => t(`role.${r}`)).join(", ")}` : "";
}

async function signIn(candidate, status) {
  status.replaceChildren();
  const value = candidate.trim().replace(/^Bearer\s+/i, "");
  if (value.split(".").length !== 3) {
    status.append(problem({ detail: t("signin.bad") }));
    return;
  }
  try {
    me = await api("/v1/me", { token: value });
  } catch (error) {
    status.append(problem(error));
    return;
  }
  token = value;
  sessionStorage.setItem("dataauth.token", value);
  const roles = rolesOf(me);
  navigate(roles[0] || "none");
}

async function signInPage() {
  const status = h("div", { "aria-live": "polite" });
  const field = h("textarea", { id: "token", rows: 4, autocomplete: "off", spellcheck: "false" });
  const form = h(
    "form",
    { class: "panel", onsubmit: (e) => { e.preventDefault(); signIn(field.value, status); } },
    h("label", { for: "token" }, t("signin.token")),
    field,
    h("p", {}, h("button", { type: "submit", id: "signin" }, t("signin"))),
  );
  const demo = h("div");
  const page = h("section", { class: "signin", "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, t("signin")), h("p", {}, t("signin.intro")), status, form, demo);
  main().replaceChildren(page);
  try {
    const { identities } = await api("/v1/demo/identities", { token: "" });
    const select = h("select", { id: "identity" }, identities.map((i) => h("option", { value: i.subject }, `${i.name} (${i.subject})`)));
    demo.append(h("form", {
      class: "panel",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const issued = await api("/v1/demo/tokens", { method: "POST", body: { subject: select.value }, token: "" });
          await signIn(issued.token, status);
        } catch (error) {
          status.replaceChildren(problem(error));
        }
      },
    }, h("h3", {}, t("signin.demo")), h("p", { class: "muted" }, t("signin.demo.intro")),
    h("label", { for: "identity" }, t("signin.demo")), select, " ",
    h("button", { type: "submit", id: "demo-signin" }, t("signin.as"))));
  } catch {
    // not a demo gateway: the pasted token is the only way in
  }
}

function renderNav(roles, current) {
  const nav = document.getElementById("nav");
  nav.replaceChildren(...roles.map((r) => h("a", { href: `#/${r}`, "aria-current": r === current ? "page" : null }, t(`role.${r}`))));
}

let mounted = 0;

async function render() {
  header();
  const nav = document.getElementById("nav");
  if (!token) {
    nav.replaceChildren();
    await signInPage();
    return;
  }
  if (!me) {
    try {
      me = await api("/v1/me");
    } catch (error) {
      // an expired or rejected token: back to the sign-in page, saying why
      signOut();
      main().prepend(problem(error));
      return;
    }
    header();
  }
  const roles = rolesOf(me);
  let { role, section } = route();
  if (!roles.includes(role)) {
    if (!roles.length) {
      nav.replaceChildren();
      main().replaceChildren(problem({ detail: t("none.role") }));
      return;
    }
    navigate(roles[0]);
    return;
  }
  renderNav(roles, role);
  const ticket = ++mounted;
  const element = h("div", { class: "view", id: `view-${role}` });
  main().replaceChildren(element);
  try {
    const view = await VIEWS[role]();
    if (ticket !== mounted) return;
    await view.mount(element, {
      api, t, token, role, claims: claimsOf(token), me, section,
      navigate: (next) => navigate(role, next),
    });
  } catch (error) {
    element.replaceChildren(problem(error));
  }
}

function signOut() {
  token = null;
  me = null;
  sessionStorage.removeItem("dataauth.token");
  history.replaceState(null, "", location.pathname);
  render();
}

document.getElementById("signout").addEventListener("click", signOut);
document.getElementById("lang").addEventListener("click", () => {
  language = language === "zh" ? "en" : "zh";
  localStorage.setItem("dataauth.lang", language);
  render();
});
window.addEventListener("hashchange", render);
render();
