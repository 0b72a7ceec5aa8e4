// Lists the endpoints of /api/schema/ with their methods, parameters and descriptions.
(function () {
  "use strict";
  const root = document.getElementById("endpoints");
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  fetch("/api/schema/?format=json", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then((schema) => {
      document.getElementById("title").textContent = schema.info.title + " " + schema.info.version;
      document.getElementById("description").textContent = schema.info.description || "";
      root.replaceChildren();
      for (const [path, ops] of Object.entries(schema.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          if (method === "parameters") continue;
          const box = el("section", "endpoint");
          const head = el("div");
          head.append(el("span", "method " + method, method.toUpperCase()), el("code", "", path));
          if (op.summary) head.append(el("span", "muted", " — " + op.summary));
          box.append(head);
          if (op.description) box.append(el("p", "params", op.description));
          const params = (op.parameters || []).concat(ops.parameters || []);
          if (params.length) {
            const list = el("ul", "params");
            for (const p of params) {
              const schemaBits = p.schema && p.schema.enum ? " (" + p.schema.enum.join(", ") + ")" : "";
              list.append(el("li", "", p.name + " in " + p.in + (p.required ? ", required" : "") + schemaBits + (p.description ? ": " + p.description : "")));
            }
            box.append(list);
          }
          const body = op.requestBody && op.requestBody.content;
          if (body) box.append(el("div", "params muted", "Body: " + Object.keys(body).join(", ")));
          root.append(box);
        }
      }
    })
    .catch((err) => { root.replaceChildren(el("p", "notice error", "Could not load the schema: " + err.message)); });
})();
