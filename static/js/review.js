/* The lead's review queue, keyboard first: j/k move between entries, a digit sets the focused
 * entry's final grade and submits it (the page comes back on the next entry), e shows the whole
 * text, ? toggles the guidelines. */
(function () {
  "use strict";

  const entries = Array.from(document.querySelectorAll(".review-entry"));
  const panel = document.getElementById("guidelines");
  let focus = 0;

  function setFocus(index) {
    if (!entries.length) return;
    focus = Math.max(0, Math.min(index, entries.length - 1));
    entries.forEach((entry, i) => entry.classList.toggle("is-focused", i === focus));
    entries[focus].focus({ preventScroll: true });
    entries[focus].scrollIntoView({ block: "nearest" });
  }

  const at = Number(new URL(window.location.href).searchParams.get("at"));
  setFocus(Number.isInteger(at) ? at : 0);
  entries.forEach((entry, i) => entry.addEventListener("click", () => setFocus(i)));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    const key = event.key;
    const entry = entries[focus];
    let handled = true;
    if (key === "j" || key === "ArrowDown") setFocus(focus + 1);
    else if (key === "k" || key === "ArrowUp") setFocus(focus - 1);
    else if (key === "?" && panel) panel.open = !panel.open;
    else if (key === "e" && entry) {
      const text = entry.querySelector(".review-text");
      if (text) text.classList.toggle("is-expanded");
    } else if (/^[0-9]$/.test(key) && entry) {
      const select = entry.querySelector("select[name=grade]");
      if (!select || !select.querySelector(`option[value="${key}"]`)) return;
      select.value = key;
      entry.querySelector("form.decide").requestSubmit();
    } else handled = false;
    if (handled) event.preventDefault();
  });
})();
