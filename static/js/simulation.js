// Settings page, "Simulate before spending": while the simulation is queued or running, ask the
// server for its progress every few seconds and move the bar; when it ends, reload to show the
// results, unless the settings form above has edits that a reload would throw away.
(function () {
  "use strict";
  const card = document.getElementById("simulate");
  if (!card) return;
  const open = ["queued", "running"];
  if (open.indexOf(card.dataset.status) < 0) return;
  const bar = card.querySelector("[role=progressbar]");
  const count = document.getElementById("simulate-count");
  const state = document.getElementById("simulate-state");
  const note = document.getElementById("simulate-note");
  const form = document.getElementById("settings-form");
  let edited = false;
  if (form) form.addEventListener("input", function () { edited = true; });

  function finished() {
    if (edited) {
      note.textContent = "The simulation has ended. Save your settings, then reload the page to see it.";
    } else {
      window.location.reload();
    }
  }

  function poll() {
    fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (String(data.report) !== card.dataset.report || open.indexOf(data.status) < 0) {
          finished();
          return;
        }
        const percent = data.runs_total ? Math.round((100 * data.runs_done) / data.runs_total) : 0;
        bar.setAttribute("aria-valuemax", String(data.runs_total));
        bar.setAttribute("aria-valuenow", String(data.runs_done));
        bar.firstElementChild.style.width = percent + "%";
        count.textContent = data.runs_done + " of " + (data.runs_total || "?");
        state.textContent = data.status === "queued" ? "Queued: waiting for a worker." : "Running.";
        window.setTimeout(poll, 3000);
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }
  window.setTimeout(poll, 3000);
})();
