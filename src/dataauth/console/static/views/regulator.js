// Placeholder: the regulator's views (the log, heads, proofs checked in the browser)
// are written on the console-verify branch, which replaces this file.
export function mount(element, ctx) {
  element.replaceChildren();
  const heading = document.createElement("h2");
  heading.textContent = ctx.t("role.regulator");
  const body = document.createElement("p");
  body.textContent = "…";
  element.append(heading, body);
}
