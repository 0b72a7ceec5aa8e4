/* Pagewise judging page: fetches tasks from the JSON API and renders them; keyboard first.
 * No build step and no dependencies. Every answer carries a client UUID made once per task, so a
 * retried submit is stored once. Page text is inserted with textContent only (never as HTML). */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("annotate-config").textContent);
  const csrfToken = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const root = document.getElementById("task");
  const notice = document.getElementById("notice");
  const RETRY_DELAYS_MS = [500, 1000, 2000, 4000];
  const EMPTY_RECHECK_MS = 30000;

  const state = {
    task: null, // the task payload from the API
    grades: new Map(), // item id -> grade
    history: [], // [{index, previous}] for undo
    focus: 0,
    clientUuid: null,
    shownAt: 0,
    busy: false,
    emptyTimer: null,
    choice: null, // compare: the side picked with ←/→/=, stored on Enter
    revising: null, // the judgment id being revised, or null for a new task
  };

  // --- helpers -----------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function newUuid() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // crypto.randomUUID needs a secure context; plain-HTTP deployments get a v4 UUID this way.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken,
      },
      body: JSON.stringify(body || {}),
    });
  }

  async function errorMessage(response) {
    try {
      const data = await response.json();
      const fields = data.extra && data.extra.fields;
      const detail = fields && Object.keys(fields).length ? ` (${JSON.stringify(fields)})` : "";
      return (data.message || `Error ${response.status}`) + detail;
    } catch (_) {
      return `Error ${response.status}`;
    }
  }

  function showNotice(message, kind) {
    notice.textContent = message;
    notice.className = `notice ${kind || "error"}`;
    notice.hidden = !message;
  }

  function setStatus(message) {
    const status = document.getElementById("status");
    if (status) status.textContent = message;
  }

  // --- progress ----------------------------------------------------------------------------

  function renderProgress(progress) {
    if (!progress) return;
    const bar = document.getElementById("progress-bar");
    bar.setAttribute("aria-valuenow", progress.percent_done);
    bar.firstElementChild.style.width = `${progress.percent_done}%`;
    document.getElementById("progress-text").textContent =
      `${progress.judgments_today} judged today · ${progress.judgments_total} in total · ` +
      `${progress.tasks_remaining}${progress.is_remaining_capped ? "+" : ""} tasks left · spent ${Number(progress.spend).toFixed(2)} ${progress.currency}`;
  }

  // --- rendering ---------------------------------------------------------------------------

  function taskHeader(task, title) {
    return el(
      "div",
      { class: "task-head" },
      el(
        "div",
        { class: "task-kind" },
        el("span", { class: "badge", text: title }),
        // A comparison stays blind even for a lead who judges it: its reason names the anchor.
        task.reason && task.kind !== "compare"
          ? el("span", { class: "why", text: `Why this task: ${task.reason}` })
          : null,
      ),
      el(
        "div",
        { class: "searchbar", role: "search" },
        el("span", { class: "searchbar-label", text: "Query" }),
        el("span", { class: "searchbar-text", id: "query-text", text: task.query.text }),
      ),
    );
  }

  function itemBody(item) {
    return [
      item.image_url
        ? el("div", { class: "thumb" }, el("img", { src: item.image_url, alt: item.title || "result image" }))
        : null,
      el(
        "div",
        { class: "result-body" },
        el(
          "div",
          { class: "result-title" },
          el("span", { class: `badge modality m-${item.modality}`, text: item.modality }),
          el("h3", { text: item.title || "(untitled)" }),
        ),
        ...readingParts(item),
      ),
    ];
  }

  // --- reading the item (issue 17 point 3): whole text in place, source link, image zoom ------

  function readingParts(item) {
    const text = item.text || item.snippet;
    if (!text && !item.source_url) return [];
    const isLong = Boolean(item.text) && item.text.length > (item.snippet || "").length;
    const safeUrl = /^https?:\/\//i.test(item.source_url || "") ? item.source_url : null;
    return [
      text ? el("p", { class: "snippet", text }) : null,
      isLong || safeUrl
        ? el(
            "div",
            { class: "reading" },
            isLong
              ? el("button", { type: "button", class: "link expand", "aria-expanded": "false", text: "Show all (e)" })
              : null,
            safeUrl
              ? el("a", { class: "source", href: safeUrl, target: "_blank", rel: "noopener noreferrer nofollow", text: "Source ↗" })
              : null,
          )
        : null,
    ];
  }

  function renderGradePage(task) {
    const list = el("ol", { class: "results", "aria-label": "Results to grade" });
    task.items.forEach((item, index) => {
      const buttons = el("div", { class: "grade-buttons", role: "group", "aria-label": "Grade" });
      config.gradeNames.forEach((name, grade) => {
        buttons.append(
          el(
            "button",
            {
              type: "button",
              class: `grade-button g${grade}`,
              "data-grade": grade,
              "aria-pressed": "false",
              title: `${grade}: ${name}`,
              onclick: () => {
                state.focus = index;
                gradeFocused(grade);
              },
            },
            el("kbd", { text: String(grade) }),
            ` ${name}`,
          ),
        );
      });
      const card = el(
        "li",
        {
          class: `result ${item.image_url ? "has-image" : "text-only"}`,
          "data-item-id": item.id,
          "data-index": index,
          tabindex: "-1",
          onclick: (event) => {
            if (!event.target.closest("button")) setFocus(index);
          },
        },
        ...itemBody(item),
      );
      card.querySelector(".result-body").append(buttons);
      list.append(card);
    });
    root.replaceChildren(
      taskHeader(task, "Grade every result on this page"),
      list,
      el(
        "div",
        { class: "actions" },
        el("button", { type: "button", class: "primary", id: "submit", disabled: true, onclick: submitGrades, text: "Submit (Enter)" }),
        el("button", { type: "button", class: "secondary", id: "skip", onclick: skip, text: "Skip (s)" }),
        el("span", { class: "muted", id: "status" }),
      ),
    );
    setFocus(0);
    refreshGrades();
  }

  function renderCompare(task) {
    const [left, right] = task.items;
    const side = (item, name) =>
      el(
        "article",
        { class: `side side-${name} ${item.image_url ? "has-image" : "text-only"}`, "data-item-id": item.id, "data-side": name },
        el("div", { class: "side-label", text: name === "left" ? "Left  ←" : "Right  →" }),
        ...itemBody(item),
      );
    const choice = (value, label) =>
      el("button", { type: "button", class: "secondary choice", "data-choice": value, onclick: () => submitChoice(value), text: label });
    root.replaceChildren(
      taskHeader(task, "Compare two results"),
      el("p", { class: "prompt", text: "Which result is more relevant to the query?" }),
      el("div", { class: "compare" }, side(left, "left"), side(right, "right")),
      el(
        "div",
        { class: "actions compare-actions" },
        choice("left", "← Left is more relevant"),
        choice("equal", "= Equally relevant"),
        choice("right", "Right is more relevant →"),
        el("button", { type: "button", class: "secondary", id: "skip", onclick: skip, text: "Skip (s)" }),
        el("span", { class: "muted", id: "status" }),
      ),
    );
  }

  function renderEmpty(message) {
    root.replaceChildren(
      el(
        "section",
        { class: "empty", id: "empty-state" },
        el("h2", { text: "You are all caught up" }),
        el("p", { text: message || config.emptyMessage }),
        el("p", { class: "muted", text: "This page checks again by itself every 30 seconds." }),
        el("button", { type: "button", class: "primary", id: "check-again", onclick: loadNext, text: "Check again" }),
      ),
    );
    clearTimeout(state.emptyTimer);
    state.emptyTimer = setTimeout(loadNext, EMPTY_RECHECK_MS);
  }

  function render(data) {
    renderProgress(data.progress);
    state.task = data.task;
    state.grades = new Map();
    state.history = [];
    state.focus = 0;
    state.clientUuid = newUuid(); // one per judgment; retries reuse it
    state.shownAt = performance.now();
    state.choice = null;
    state.revising = data.judgment || null;
    clearTimeout(state.emptyTimer);
    if (!data.task) renderEmpty(data.message);
    else if (data.task.kind === "grade_page") renderGradePage(data.task);
    else renderCompare(data.task);
    root.dataset.taskId = data.task ? data.task.id : "";
    root.dataset.kind = data.task ? data.task.kind : "empty";
    if (data.answer) prefillRevision(data);
  }

  // --- grading -----------------------------------------------------------------------------

  function cards() {
    return Array.from(root.querySelectorAll(".result"));
  }

  function setFocus(index) {
    const all = cards();
    if (!all.length) return;
    state.focus = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((card, i) => card.classList.toggle("is-focused", i === state.focus));
    const card = all[state.focus];
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function refreshGrades() {
    cards().forEach((card) => {
      const grade = state.grades.get(Number(card.dataset.itemId));
      card.classList.toggle("is-graded", grade !== undefined);
      if (grade !== undefined) card.dataset.grade = grade;
      else delete card.dataset.grade;
      card.querySelectorAll(".grade-button").forEach((button) => {
        button.setAttribute("aria-pressed", String(Number(button.dataset.grade) === grade));
      });
    });
    const total = state.task ? state.task.items.length : 0;
    const done = state.grades.size;
    const submit = document.getElementById("submit");
    if (submit) submit.disabled = done < total;
    setStatus(done < total ? `${done} of ${total} graded` : "All graded — press Enter to submit");
    if (done === total && notice.classList.contains("info")) showNotice("");
  }

  function gradeFocused(grade) {
    const item = state.task.items[state.focus];
    state.history.push({ index: state.focus, previous: state.grades.get(item.id) });
    state.grades.set(item.id, grade);
    refreshGrades();
    setFocus(state.focus + 1);
  }

  function undo() {
    const last = state.history.pop();
    if (!last) return;
    const item = state.task.items[last.index];
    if (last.previous === undefined) state.grades.delete(item.id);
    else state.grades.set(item.id, last.previous);
    refreshGrades();
    setFocus(last.index);
  }

  function submitGrades() {
    const items = state.task.items;
    const missing = items.findIndex((item) => !state.grades.has(item.id));
    if (missing !== -1) {
      setFocus(missing);
      showNotice(`Grade every result first (${items.length - state.grades.size} left).`, "info");
      return;
    }
    const grades = {};
    for (const [itemId, grade] of state.grades) grades[itemId] = grade;
    submit({ grades });
  }

  function selectChoice(choice) {
    state.choice = choice;
    root.querySelectorAll(".side").forEach((side) => {
      side.classList.toggle("is-chosen", choice === "equal" || side.dataset.side === choice);
    });
    root.querySelectorAll("button.choice").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.choice === choice));
    });
    setStatus(choice ? "Press Enter to save this answer" : "");
  }

  function submitChoice(choice) {
    selectChoice(choice);
    submit({ choice, sides: state.task.sides });
  }

  // --- talking to the API --------------------------------------------------------------------

  async function submit(answer) {
    if (state.busy || !state.task) return;
    state.busy = true;
    showNotice("");
    setStatus("Saving…");
    const task = state.task;
    const body = {
      ...answer,
      client_uuid: state.clientUuid,
      duration_ms: Math.round(performance.now() - state.shownAt),
      guideline_version: config.guidelineVersion, // the version shown beside this task
    };
    let stored = null;
    for (let attempt = 0; ; attempt++) {
      let response = null;
      try {
        response = await postJson(task.submit_url, body);
      } catch (_) {
        response = null; // network error: retry with the same UUID
      }
      if (response && response.ok) {
        stored = await response.json().catch(() => null);
        break;
      }
      const retriable = !response || response.status >= 500 || response.status === 429 || response.status === 408;
      if (!retriable) {
        const message = await errorMessage(response);
        state.busy = false;
        if (response.status === 409) {
          showNotice(`${message}`, "error");
          await loadNext();
        } else {
          showNotice(message, "error");
          setStatus("");
        }
        return;
      }
      if (attempt >= RETRY_DELAYS_MS.length) {
        state.busy = false;
        setStatus("");
        showNotice("Could not save your answer — check the connection and submit again; it will be stored once.", "error");
        return;
      }
      setStatus(`Saving… (retry ${attempt + 1})`);
      await sleep(RETRY_DELAYS_MS[attempt]);
    }
    state.busy = false;
    const wasRevision = Boolean(state.revising);
    leaveRevisionUrl();
    await loadNext();
    if (stored && stored.id) showUndoToast(stored.id, wasRevision);
  }

  // --- undo and revisions (issue 17 point 2) ----------------------------------------------------
  // Undo reopens the answer just stored with that answer filled in; what is submitted then is a
  // revision (a new judgment that supersedes it). The next task stays leased meanwhile.

  const UNDO_MS = 8000;
  const toast = document.getElementById("toast");
  let undoTarget = null;
  let toastTimer = null;

  function showUndoToast(judgmentId, wasRevision) {
    if (!toast) return;
    undoTarget = judgmentId;
    toast.replaceChildren(
      el("span", { text: wasRevision ? "Revision saved." : "Answer saved." }),
      el("button", { type: "button", class: "link", id: "undo", onclick: undoLast, text: "Undo (z)" }),
    );
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(hideToast, UNDO_MS);
  }

  function hideToast() {
    if (toast) toast.hidden = true;
    undoTarget = null;
  }

  function undoLast() {
    if (!undoTarget) return;
    const judgmentId = undoTarget;
    hideToast();
    loadRevision(judgmentId);
  }

  async function loadRevision(judgmentId) {
    if (state.busy) return;
    state.busy = true;
    try {
      const response = await fetch(`${config.judgmentUrl}${encodeURIComponent(judgmentId)}/`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) {
        showNotice(await errorMessage(response), "error");
        return;
      }
      const data = await response.json();
      render({ task: data.task, judgment: data.judgment, answer: data.answer });
    } catch (_) {
      showNotice("Could not open that answer — check the connection and try again.", "error");
    } finally {
      state.busy = false;
    }
  }

  function prefillRevision(data) {
    if (data.task.kind === "grade_page") {
      for (const [itemId, grade] of Object.entries(data.answer.grades || {})) {
        state.grades.set(Number(itemId), grade);
      }
      refreshGrades();
    } else if (data.answer.choice) {
      selectChoice(data.answer.choice);
    }
    const skipButton = document.getElementById("skip");
    if (skipButton) skipButton.hidden = true;
    root.classList.add("is-revising");
    showNotice(
      "Revising your earlier answer: change it and press Enter to save the revision; Esc leaves it as it was.",
      "info",
    );
  }

  function leaveRevisionUrl() {
    const url = new URL(window.location.href);
    if (url.searchParams.has("revise")) {
      url.searchParams.delete("revise");
      window.history.replaceState(null, "", url.pathname + url.search);
    }
  }

  function leaveRevision() {
    state.revising = null;
    root.classList.remove("is-revising");
    showNotice("");
    leaveRevisionUrl();
    loadNext();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    if (event.key === "z" && undoTarget && !state.busy) {
      event.preventDefault();
      undoLast();
    }
  });

  async function skip() {
    if (state.busy || !state.task) return;
    state.busy = true;
    showNotice("");
    try {
      const response = await postJson(state.task.skip_url, {});
      if (!response.ok) showNotice(await errorMessage(response), "error");
    } catch (_) {
      showNotice("Could not skip — check the connection and try again.", "error");
      state.busy = false;
      return;
    }
    state.busy = false;
    await loadNext();
  }

  async function loadNext() {
    if (state.busy) return;
    state.busy = true;
    try {
      for (let attempt = 0; ; attempt++) {
        let response = null;
        try {
          response = await postJson(config.nextUrl, {});
        } catch (_) {
          response = null;
        }
        if (response && response.ok) {
          render(await response.json());
          return;
        }
        if (response && response.status < 500) {
          showNotice(await errorMessage(response), "error");
          return;
        }
        if (attempt >= RETRY_DELAYS_MS.length) {
          showNotice("Could not load the next task — check the connection and reload the page.", "error");
          return;
        }
        await sleep(RETRY_DELAYS_MS[attempt]);
      }
    } finally {
      state.busy = false;
    }
  }

  // --- keyboard ----------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    const task = state.task;
    if (!task || state.busy) return;
    const key = event.key;
    let handled = true;
    if (key === "s" && !state.revising) skip();
    else if (key === "Escape" && state.revising) leaveRevision();
    else if (task.kind === "grade_page") {
      if (/^[0-9]$/.test(key) && Number(key) <= config.maxGrade) gradeFocused(Number(key));
      else if (key === "j" || key === "ArrowDown") setFocus(state.focus + 1);
      else if (key === "k" || key === "ArrowUp") setFocus(state.focus - 1);
      else if (key === "u") undo();
      else if (key === "Enter") submitGrades();
      else handled = false;
    } else {
      // One meaning per key on every task: ←/→/= pick, Enter stores (as on a page).
      if (key === "ArrowLeft") selectChoice("left");
      else if (key === "ArrowRight") selectChoice("right");
      else if (key === "=") selectChoice("equal");
      else if (key === "Enter" && state.choice) submitChoice(state.choice);
      else if (key === "Enter") setStatus("Pick a side first: ← left, → right, = equal");
      else handled = false;
    }
    if (handled) event.preventDefault();
  });

  const reviseId = new URL(window.location.href).searchParams.get("revise");
  if (reviseId) loadRevision(reviseId);
  else loadNext();
})();
