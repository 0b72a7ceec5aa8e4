// Import page: send the upload with XHR so a progress bar can show it, then go to the page of
// the queued import run (the server redirects there), or show a refusal in place. Without
// JavaScript the form posts normally.
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
        status.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Queueing the import…";
      };
      xhr.onload = function () {
        if (xhr.status === 200 && xhr.responseURL && xhr.responseURL !== window.location.href) {
          window.location.assign(xhr.responseURL);  // the run's page, which follows its progress
          return;
        }
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
