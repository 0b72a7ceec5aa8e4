/* Pagewise judging page, the parts around a task: the guidelines panel (`?` toggles it) and
 * reading an item (whole text in place with `e`, image zoom with `i` or a click).
 * Kept apart from annotate.js, which renders and answers the tasks. */
(function () {
  "use strict";

  const panel = document.getElementById("guidelines");
  const root = document.getElementById("task");
  const zoom = document.getElementById("zoom");
  // Made on first use, so that an empty <img> never counts among the page's images.
  let zoomImage = null;
  const zoomCaption = zoom ? zoom.querySelector(".zoom-caption") : null;
  let zoomIndex = 0;

  function typing(event) {
    return event.target.closest && event.target.closest("input, textarea, select");
  }

  // --- whole text in place ---------------------------------------------------------------

  function toggleExpand(button, open) {
    const body = button.closest(".result-body");
    const snippet = body && body.querySelector(".snippet");
    if (!snippet) return;
    const expand = open === undefined ? !snippet.classList.contains("is-expanded") : open;
    snippet.classList.toggle("is-expanded", expand);
    button.setAttribute("aria-expanded", String(expand));
    button.textContent = expand ? "Show less (e)" : "Show all (e)";
  }

  function focusedButtons() {
    const focused = root.querySelector(".result.is-focused");
    const scope = root.dataset.kind === "compare" ? root : focused;
    return scope ? Array.from(scope.querySelectorAll("button.expand")) : [];
  }

  // --- image zoom --------------------------------------------------------------------------

  function taskImages() {
    return Array.from(root.querySelectorAll(".thumb img"));
  }

  function showZoom(index) {
    const images = taskImages();
    if (!zoom || !images.length) return;
    zoomIndex = (index + images.length) % images.length;
    if (!zoomImage) {
      zoomImage = document.createElement("img");
      zoom.prepend(zoomImage);
    }
    const source = images[zoomIndex];
    zoomImage.src = source.currentSrc || source.src;
    zoomImage.alt = source.alt;
    zoomCaption.textContent =
      `${source.alt} · ${zoomIndex + 1} of ${images.length}` +
      (images.length > 1 ? " · ←/→ other images" : "") + " · Esc closes";
    zoom.hidden = false;
  }

  function closeZoom() {
    if (zoom) zoom.hidden = true;
  }

  if (root) {
    root.addEventListener("click", (event) => {
      const expand = event.target.closest("button.expand");
      if (expand) {
        toggleExpand(expand);
        return;
      }
      const image = event.target.closest(".thumb img");
      if (image) {
        event.stopPropagation();
        showZoom(taskImages().indexOf(image));
      }
    });
  }
  if (zoom) zoom.addEventListener("click", closeZoom);

  // Capture phase: while the zoom is open its keys must not reach the task (← would answer).
  document.addEventListener(
    "keydown",
    (event) => {
      if (!zoom || zoom.hidden) return;
      const key = event.key;
      if (key === "Escape" || key === "i") closeZoom();
      else if (key === "ArrowRight") showZoom(zoomIndex + 1);
      else if (key === "ArrowLeft") showZoom(zoomIndex - 1);
      event.preventDefault();
      event.stopImmediatePropagation();
    },
    true,
  );

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
    if (event.key === "?" && panel) {
      panel.open = !panel.open;
      event.preventDefault();
    } else if (event.key === "e" && root) {
      const buttons = focusedButtons();
      if (!buttons.length) return;
      const open = buttons[0].getAttribute("aria-expanded") !== "true";
      buttons.forEach((button) => toggleExpand(button, open));
      event.preventDefault();
    } else if (event.key === "i" && root) {
      const images = taskImages();
      const focused = root.querySelector(".result.is-focused .thumb img");
      if (!images.length) return;
      showZoom(focused ? images.indexOf(focused) : 0);
      event.preventDefault();
    }
  });
})();
