// Live updates (server-sent events), step selection and actions in place, on top of pages that
// work without them.
"use strict";

// The list of executions: its rows as the server sends them again, whenever they change. Only
// the cells that differ are replaced while the rows stay the same ones, so that a link in focus
// keeps the focus; a new or gone row redraws the rows.
(function () {
  const table = document.querySelector("[data-live-list]");
  if (!table || !window.EventSource) return;
  const body = document.getElementById("rows");
  const key = (row) => row.dataset.key || "";
  function update(html) {
    const fresh = document.createElement("tbody");
    fresh.innerHTML = html;
    const rows = Array.from(fresh.children), current = Array.from(body.children);
    if (rows.length !== current.length || rows.some((row, i) => key(row) !== key(current[i]))) {
      body.replaceChildren(...rows);
      return;
    }
    rows.forEach((row, i) => {
      Array.from(row.children).forEach((cell, j) => {
        const shown = current[i].children[j];
        if (shown.innerHTML !== cell.innerHTML) shown.innerHTML = cell.innerHTML;
      });
    });
  }
  const source = new EventSource(table.dataset.liveList + location.search);
  source.addEventListener("rows", (event) => update(JSON.parse(event.data)));
})();

// An execution's page.
(function () {
  const root = document.querySelector("[data-live]");
  if (!root) return;
  const base = root.dataset.base;
  const detail = document.getElementById("detail");
  let selected = null;
  let follow = null;

  function restyle(element, state) {
    for (const name of Array.from(element.classList)) {
      if (name.startsWith("s-")) element.classList.remove(name);
    }
    element.classList.add(state.css);
  }

  function apply(data) {
    const phase = document.getElementById("phase");
    phase.textContent = data.phase.symbol + " " + data.phase.label;
    restyle(phase, data.phase);
    document.getElementById("duration").textContent = data.duration;
    const error = document.getElementById("error");
    error.textContent = data.error || "";
    error.hidden = !data.error;
    for (const [name, state] of Object.entries(data.steps)) {
      for (const node of document.querySelectorAll('svg .node[data-step="' + CSS.escape(name) + '"]')) {
        restyle(node, state);
        node.querySelector(".symbol").textContent = state.symbol;
        node.querySelector(".label").textContent = state.label;
        node.setAttribute("aria-label", name + ": " + state.label);
      }
      const row = document.querySelector('tr[data-step="' + CSS.escape(name) + '"]');
      if (row) {
        const badge = row.querySelector(".state .badge");
        badge.textContent = state.symbol + " " + state.label;
        restyle(badge, state);
        row.querySelector(".message").textContent = state.message || "";
      }
    }
    for (const form of document.querySelectorAll("form[data-action]")) {
      form.hidden = !data.actions.includes(form.dataset.action);
    }
    if (selected && data.steps[selected]) show(selected, false);
  }

  async function show(name, focus) {
    selected = name;
    for (const node of document.querySelectorAll("svg .node")) {
      node.classList.toggle("selected", node.dataset.step === name);
    }
    const url = base + "/steps/" + encodeURIComponent(name);
    const response = await fetch(url + "?partial=1");
    if (!response.ok || selected !== name) return;
    detail.innerHTML = await response.text();
    if (focus) {
      detail.focus();
      history.replaceState(null, "", "?step=" + encodeURIComponent(name));
    }
    // A running step's logs grow without the execution changing: look again while it runs.
    clearTimeout(follow);
    const shown = detail.querySelector(".step-detail");
    if (shown && ["Running", "Retrying"].includes(shown.dataset.state)) {
      follow = setTimeout(() => selected === name && show(name, false), 2000);
    }
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-step]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    show(link.dataset.step, true);
  });

  // Actions post in place: the page stays (live updates show the effect) unless the answer is
  // another execution's page (a retry's); a refusal is shown beside the buttons.
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-action]");
    if (!form) return;
    event.preventDefault();
    const button = form.querySelector("button");
    const error = document.getElementById("action-error");
    button.disabled = true;
    try {
      const body = new URLSearchParams(new FormData(form));
      const response = await fetch(form.action, { method: "POST", body: body });
      if (!response.ok) throw new Error(await response.text());
      error.hidden = true;
      if (new URL(response.url).pathname !== location.pathname) location.assign(response.url);
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });

  // Arrow keys move between steps in the graph: to the nearest box that way.
  const directions = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
  function centre(node) {
    const box = node.querySelector("rect");
    return [+box.getAttribute("x") + box.getAttribute("width") / 2,
            +box.getAttribute("y") + box.getAttribute("height") / 2];
  }
  document.addEventListener("keydown", (event) => {
    const from = event.target.closest && event.target.closest("svg .node");
    const way = directions[event.key];
    if (!from || !way) return;
    const [x, y] = centre(from);
    let best = null, bestScore = Infinity;
    for (const node of document.querySelectorAll("svg .node")) {
      const [nx, ny] = centre(node);
      const along = (nx - x) * way[0] + (ny - y) * way[1];
      if (node === from || along <= 0) continue;
      const across = Math.abs((nx - x) * way[1] + (ny - y) * way[0]);
      const score = along + 2 * across;
      if (score < bestScore) { best = node; bestScore = score; }
    }
    if (best) {
      event.preventDefault();
      best.focus();
      best.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  });

  const initial = new URLSearchParams(location.search).get("step");
  if (initial) selected = initial;

  if (window.EventSource) {
    const source = new EventSource(base + "/live");
    source.addEventListener("state", (event) => {
      const data = JSON.parse(event.data);
      apply(data);
      if (data.finished) source.close();
    });
  }
})();
