// Import page: send the upload with XHR so a progress bar can show it, then show the server's
// answer (the same HTML page, with counts or the problem table) in place. Without JavaScript
// the form posts normally.
(function () {
  "use strict";
  function attach() {
    const form = document.getElementById("import-form");
    if (!form) return;
    const box = document.getElementById("upload-progress");
    const bar = box.querySelector("[role=progressbar]");
    const status = document.getElementById("upload-status");
    const button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const xhr = new XMLHttpRequest();
      xhr.open("POST", window.location.href);
      box.classList.add("is-active");
      button.disabled = true;
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        const percent = Math.round((e.loaded / e.total) * 100);
        bar.setAttribute("aria-valuenow", String(percent));
        bar.firstElementChild.style.width = percent + "%";
        status.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Checking every line…";
      };
      xhr.onload = function () {
        const fresh = new DOMParser().parseFromString(xhr.responseText, "text/html").querySelector("main");
        if (fresh) {
          document.querySelector("main").replaceWith(fresh);
          attach();
        } else {
          status.textContent = "The server answered " + xhr.status + "; reload the page and try again.";
          button.disabled = false;
        }
      };
      xhr.onerror = function () {
        status.textContent = "The upload failed (network error). Try again.";
        button.disabled = false;
      };
      xhr.send(new FormData(form));
    });
  }
  attach();
})();
