// Import run page: poll the run's status while it is queued or running and show rows read,
// problems so far and the outcome. Without JavaScript the page shows the state when loaded.
(function () {
  "use strict";
  const box = document.getElementById("import-run");
  if (!box) return;
  const active = ["queued", "running"];
  const text = (id, value) => { document.getElementById(id).textContent = value; };

  function cell(row, value, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = value;
    row.appendChild(td);
  }

  function show(run) {
    text("run-status", run.status);
    text("run-stage", run.stage || "—");
    text("run-rows", String(run.rows_read));
    text("run-problems-total", String(run.problems_total));
    const table = document.getElementById("run-problem-table");
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const p of run.problems) {
      const row = document.createElement("tr");
      cell(row, p.line ? String(p.line) : "archive", "num");
      cell(row, p.field);
      cell(row, p.reason);
      body.appendChild(row);
    }
    table.hidden = run.problems.length === 0;
    table.querySelector("caption").textContent =
      "The first " + run.problems.length + " problems found" +
      (run.problems_total > run.problems.length ? " of " + run.problems_total : "") + ".";
    document.getElementById("run-cancel").hidden = !active.includes(run.status);
    const outcome = document.getElementById("run-outcome");
    const note = document.createElement("p");
    if (run.status === "succeeded") {
      note.className = "notice info";
      note.textContent = "Imported. " + run.queries_created + " queries, " + run.items_created +
        " items and " + run.images_stored + " images were stored.";
    } else if (run.status === "failed") {
      note.className = "notice error";
      note.textContent = run.error;
    } else if (run.status === "cancelled") {
      note.className = "notice";
      note.textContent = "Cancelled. Nothing of this import was stored.";
    } else {
      note.className = "muted";
      note.textContent = run.cancel_requested ? "Cancelling…" :
        (run.stage === "storing" ? "Storing every row in one transaction…" : "Checking every line…");
    }
    outcome.replaceChildren(note);
  }

  function poll() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((run) => {
        show(run);
        if (active.includes(run.status)) setTimeout(poll, 700);
      })
      .catch(() => setTimeout(poll, 3000));
  }
  if (active.includes(document.getElementById("run-status").textContent.trim())) poll();
})();
