/* Pagewise judging page, the parts around a task: the guidelines panel (`?` toggles it).
 * Kept apart from annotate.js, which renders and answers the tasks. */
(function () {
  "use strict";

  const panel = document.getElementById("guidelines");

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    if (event.key === "?" && panel) {
      panel.open = !panel.open;
      event.preventDefault();
    }
  });
})();
