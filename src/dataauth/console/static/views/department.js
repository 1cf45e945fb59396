// The department's views (placeholder; filled in next).
import { h } from "../ui.js";

export function mount(element, ctx) {
  element.replaceChildren(h("h2", {}, ctx.t("role.department")), h("p", {}, "…"));
}
