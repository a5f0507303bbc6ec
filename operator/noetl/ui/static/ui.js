// Live updates (server-sent events) and step selection, on top of pages that work without them.
"use strict";
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
    if (data.finished) {
      const cancel = document.getElementById("cancel-form");
      if (cancel) cancel.remove();
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
