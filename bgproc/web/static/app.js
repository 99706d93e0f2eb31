// bgproc web: the live parts of the pages. Every page works without this script;
// it adds the monitor's refresh, the live Process Log and the request form's preview.
// Untrusted text (logs, parameters) only ever goes in through textContent.
"use strict";

function onReady(fn) {
  if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
}

// -- Process Monitor: refresh the runs table -------------------------------------------
function autoRefresh() {
  const box = document.getElementById("runs");
  const toggle = document.getElementById("auto-refresh");
  if (!box || !toggle) return;
  setInterval(async () => {
    if (!toggle.checked || document.hidden || box.contains(document.activeElement)) return;
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    try {
      const answer = await fetch(url, { credentials: "same-origin" });
      if (answer.ok) box.innerHTML = await answer.text();  // server-rendered, escaped
    } catch (e) { /* the next round tries again */ }
  }, 2000);
}

// -- a run's Process Log, live ---------------------------------------------------------
function liveLog() {
  const pre = document.getElementById("log");
  if (!pre || pre.dataset.live !== "yes") return;
  const state = document.getElementById("log-state");
  let offset = Number(pre.dataset.offset || "0");
  let source = null;
  const open = () => {
    source = new EventSource(`/api/v1/runs/${pre.dataset.run}/log/stream?offset=${offset}`);
    source.addEventListener("log", (event) => {
      const chunk = JSON.parse(event.data);
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      if (chunk.restarted) pre.textContent = chunk.text;
      else pre.appendChild(document.createTextNode(chunk.text));
      offset = chunk.end;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      state.textContent = "";
    });
    source.addEventListener("progress", (event) => {
      const progress = JSON.parse(event.data);
      const bar = document.getElementById("run-progress-bar");
      bar.hidden = false;
      if (progress.percent === null) bar.removeAttribute("value");  // indeterminate
      else bar.value = progress.percent;
      document.getElementById("run-progress-text").textContent = progress.text;
    });
    source.addEventListener("unavailable", (event) => {
      state.textContent = JSON.parse(event.data).error.message;
    });
    source.addEventListener("end", () => {
      source.close();
      state.textContent = "The run has ended.";
      setTimeout(() => window.location.reload(), 300);  // its final status and fields
    });
    source.onerror = () => {  // reopen from where we are, not from the first offset
      source.close();
      setTimeout(open, 1000);
    };
  };
  open();
}

// -- the request form: fields that apply, parameters, and the preview -------------------

function inputOf(field) {
  const name = (field || "").split(":")[0].trim();
  if (name.startsWith("param")) return "params";
  if (name === "process" || name === "group") return "target";
  return name.replace(/-/g, "_");
}

function requestForm() {
  const form = document.getElementById("request-form");
  if (!form) return;
  const PLAN_FIELDS = JSON.parse(form.dataset.plan);  // frequency -> its fields (timing.py's)
  const ALL_PLAN = [...new Set(Object.values(PLAN_FIELDS).flat())];
  const TIMING = ["timing", "start", "tz", "frequency", "finish", ...ALL_PLAN];
  const value = (name) => (form.elements[name] ? form.elements[name].value : "");
  const box = (name) => form.querySelector(`[data-field="${name}"]`);

  const showFields = () => {
    const timing = value("timing");
    const frequency = value("frequency");
    const shown = new Set(["tz"]);
    if (timing !== "immediate") shown.add("start");
    if (timing === "scheduled") {
      ["frequency", "finish", ...(PLAN_FIELDS[frequency] || [])].forEach((f) => shown.add(f));
    }
    for (const name of ["start", "frequency", "finish", ...ALL_PLAN]) {
      const element = box(name);
      if (!element) continue;
      element.hidden = !shown.has(name);
      element.querySelectorAll("input, select").forEach((i) => { i.disabled = element.hidden; });
    }
    const target = value("target");
    form.querySelectorAll("#params-hint [data-for]").forEach((span) => {
      span.hidden = span.dataset.for !== target;
    });
  };

  const clearPreviewErrors = () => {
    form.querySelectorAll(".preview-error").forEach((p) => { p.hidden = true; p.textContent = ""; });
  };
  let timer = null;
  let asked = 0;
  const preview = async () => {
    const words = new URLSearchParams();
    for (const name of TIMING) {
      if (name === "days") continue;
      const input = form.elements[name];
      if (input && !input.disabled && input.value.trim()) words.set(name, input.value.trim());
    }
    const days = [...form.querySelectorAll('input[name="days"]:checked:not(:disabled)')].map((i) => i.value);
    if (days.length) words.set("days", days.join(","));
    words.set("count", "5");
    const mine = ++asked;
    const description = document.getElementById("preview-description");
    const fires = document.getElementById("preview-fires");
    try {
      const answer = await fetch(`/api/v1/preview?${words}`, { credentials: "same-origin" });
      const data = await answer.json();
      if (mine !== asked) return;  // an older answer arriving late
      clearPreviewErrors();
      fires.replaceChildren();
      if (!answer.ok) {
        const error = data.error || {};
        description.textContent = `${error.field ? error.field + ": " : ""}${error.message || "error"}`;
        const where = document.getElementById(`${inputOf(error.field)}-preview-error`);
        if (where) { where.textContent = error.message; where.hidden = false; }
        return;
      }
      description.textContent = data.description;
      for (const fire of data.next_runs) {
        const item = document.createElement("li");
        item.textContent = fire.replace("T", " ");
        fires.appendChild(item);
      }
    } catch (e) {
      description.textContent = "Preview unavailable.";
    }
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(preview, 300); };
  form.addEventListener("input", () => { showFields(); later(); });
  form.addEventListener("change", () => { showFields(); later(); });
  showFields();
  preview();
}

onReady(() => { autoRefresh(); liveLog(); requestForm(); });
