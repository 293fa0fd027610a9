// medtune web page: calls POST /v1/analyze with the token the user enters and shows the result.
// Note text is only ever put into the page as text nodes (textContent): never as HTML.
"use strict";

(function () {
  const FLAGS = ["negated", "uncertain", "hypothetical", "family", "historical", "conditional"];
  const PALETTE_SIZE = 9;
  const state = { models: {}, result: null, fileText: null, labels: [] };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function authHeaders() {
    const token = $("token").value.trim();
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function setStatus(message) { $("status").textContent = message; }

  function showError(code, message, fix) {
    const box = $("error");
    clear(box);
    box.appendChild(el("strong", { text: code ? "[" + code + "] " : "Error: " }));
    box.appendChild(document.createTextNode(message || "the request failed"));
    if (fix) box.appendChild(el("div", { class: "fix", text: "Fix: " + fix }));
    box.hidden = false;
  }

  function hideError() { clear($("error")); $("error").hidden = true; }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (e) { /* not JSON */ }
    return { code: "", message: "the service answered " + response.status, fix: "" };
  }

  // ------------------------------------------------------------------ models
  async function loadModels() {
    let response;
    try {
      response = await fetch("/v1/models", { headers: authHeaders(), cache: "no-store" });
    } catch (e) {
      showError("", "the service cannot be reached", "check that `medtune serve` is running");
      return;
    }
    if (response.status === 401) {
      setStatus("Enter the API token to list the pipelines and models.");
      return;
    }
    if (!response.ok) {
      const err = await errorOf(response);
      showError(err.code, err.message, err.fix);
      return;
    }
    const body = await response.json();
    const select = $("model");
    const previous = select.value;
    clear(select);
    state.models = {};
    for (const info of body.models) {
      state.models[info.name] = info;
      const what = info.kind === "pipeline" ? "pipeline" : (info.task || "model");
      select.appendChild(el("option", { value: info.name, text: info.name + " (" + what + ")" }));
    }
    if (previous && state.models[previous]) select.value = previous;
    hideError();
    setStatus(body.ready ? "Ready." : "The models are still loading.");
  }

  // ----------------------------------------------------------------- analyze
  function noteText() {
    const value = $("note").value;
    // a dropped file keeps its own line endings (the text box shows them as \n)
    if (state.fileText !== null && value === state.fileText.replace(/\r\n?/g, "\n")) return state.fileText;
    return value;
  }

  async function analyze() {
    hideError();
    const text = noteText();
    if (!text.trim()) {
      showError("", "the note is empty", "paste a note or open a .txt file first");
      return;
    }
    const body = { text: text };
    if ($("model").value) body.model = $("model").value;
    const button = $("analyze");
    button.disabled = true;
    setStatus("Analyzing…");
    const started = performance.now();
    let response;
    try {
      response = await fetch("/v1/analyze", {
        method: "POST", cache: "no-store",
        headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
        body: JSON.stringify(body),
      });
    } catch (e) {
      button.disabled = false;
      setStatus("");
      showError("", "the service cannot be reached", "check that `medtune serve` is running");
      return;
    }
    button.disabled = false;
    if (!response.ok) {
      const err = await errorOf(response);
      setStatus("");
      showError(err.code, err.message, err.fix);
      return;
    }
    state.result = await response.json();
    $("download").disabled = false;
    render(state.result);
    const doc = state.result.documents[0];
    setStatus(doc.spans.length + " entities, " + (doc.relations || []).length + " relations (" +
              Math.round(performance.now() - started) + " ms).");
    if (!Object.keys(state.models).length) loadModels();
  }

  // ------------------------------------------------------------------ render
  function labelClass(label) {
    let k = state.labels.indexOf(label);
    if (k < 0) { state.labels.push(label); k = state.labels.length - 1; }
    return "lab-" + (k % PALETTE_SIZE);
  }

  function flagsOf(span) {
    const attrs = span.attributes || {};
    return FLAGS.filter(function (f) { return attrs[f] === true; });
  }

  function describe(span) {
    const parts = [span.label];
    if (typeof span.score === "number") parts.push("score " + span.score.toFixed(2));
    const flags = flagsOf(span);
    if (flags.length) parts.push(flags.join(", "));
    if (span.ids && span.ids.length) parts.push(span.ids.join(", "));
    return parts.join(" · ");
  }

  function showDetails(span, mark) {
    for (const node of document.querySelectorAll(".ent.selected")) node.classList.remove("selected");
    if (mark) mark.classList.add("selected");
    const box = $("details");
    clear(box);
    const attrs = Object.assign({}, span.attributes || {});
    const rows = [["type", span.label], ["offsets", span.start + "–" + span.end], ["text", span.text || ""]];
    if (typeof span.score === "number") rows.push(["score", span.score.toFixed(3)]);
    if (span.ids && span.ids.length) rows.push(["ids", span.ids.join(", ")]);
    if (attrs.assertion !== undefined) rows.push(["assertion", String(attrs.assertion)]);
    const flags = flagsOf(span);
    rows.push(["flags", flags.length ? flags.join(", ") : "none"]);
    for (const key of Object.keys(attrs)) {
      if (FLAGS.indexOf(key) >= 0 || key === "assertion" || key === "assertion_cues") continue;
      rows.push([key, typeof attrs[key] === "object" ? JSON.stringify(attrs[key]) : String(attrs[key])]);
    }
    const dl = el("dl");
    for (const [k, v] of rows) { dl.appendChild(el("dt", { text: k })); dl.appendChild(el("dd", { text: v })); }
    box.appendChild(dl);
  }

  function chooseVisible(spans) {
    // non-overlapping spans to highlight: the longer one wins an overlap (all are in the table)
    const chosen = [];
    const order = spans.slice().sort(function (a, b) { return (b.end - b.start) - (a.end - a.start) || a.start - b.start; });
    for (const span of order) {
      if (chosen.every(function (c) { return span.end <= c.start || span.start >= c.end; })) chosen.push(span);
    }
    return chosen.sort(function (a, b) { return a.start - b.start; });
  }

  function renderText(doc) {
    const box = $("text");
    clear(box);
    const chars = Array.from(doc.text); // offsets count Unicode code points, as in Python
    let cursor = 0;
    for (const span of chooseVisible(doc.spans)) {
      if (span.start > cursor) box.appendChild(document.createTextNode(chars.slice(cursor, span.start).join("")));
      const flags = flagsOf(span);
      const mark = el("mark", {
        class: ["ent", labelClass(span.label)].concat(flags.filter(function (f) { return f === "negated" || f === "uncertain"; })).join(" "),
        tabindex: "0", role: "button", title: describe(span),
        "data-start": String(span.start), "data-end": String(span.end), "data-label": span.label,
      }, [el("span", { class: "mention", text: chars.slice(span.start, span.end).join("") }),
          el("span", { class: "lbl", text: span.label })]);
      for (const flag of flags) mark.appendChild(el("span", { class: "tag", text: flag }));
      mark.addEventListener("click", function () { showDetails(span, mark); });
      mark.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); showDetails(span, mark); }
      });
      box.appendChild(mark);
      cursor = span.end;
    }
    if (cursor < chars.length) box.appendChild(document.createTextNode(chars.slice(cursor).join("")));
  }

  function renderLegend(doc) {
    const box = $("legend");
    clear(box);
    const info = state.models[state.result.model] || {};
    const labels = (info.labels || []).slice();
    for (const span of doc.spans) if (labels.indexOf(span.label) < 0) labels.push(span.label);
    for (const label of labels) box.appendChild(el("span", { class: "ent " + labelClass(label), text: label }));
    box.appendChild(el("span", { class: "ent negated" }, [el("span", { class: "mention", text: "negated" })]));
    box.appendChild(el("span", { class: "ent uncertain" }, [el("span", { class: "mention", text: "uncertain" })]));
    box.appendChild(el("span", {}, [el("span", { class: "tag", text: "family" }), " hypothetical, family, historical, conditional"]));
  }

  function cell(text) { return el("td", { text: text === undefined || text === null ? "" : String(text) }); }

  function renderTables(doc) {
    const byId = {};
    for (const span of doc.spans) if (span.id) byId[span.id] = span;
    const rel = $("relations").tBodies[0];
    clear(rel);
    for (const r of doc.relations || []) {
      const head = byId[r.head] || {}, tail = byId[r.tail] || {};
      rel.appendChild(el("tr", {}, [cell((head.text || r.head) + " (" + (head.label || "?") + ")"), cell(r.label),
        cell((tail.text || r.tail) + " (" + (tail.label || "?") + ")"),
        cell(typeof r.score === "number" ? r.score.toFixed(2) : "")]));
    }
    if (!(doc.relations || []).length) rel.appendChild(el("tr", {}, [el("td", { colspan: "4", text: "none" })]));
    const ents = $("entities").tBodies[0];
    clear(ents);
    for (const span of doc.spans) {
      const attrs = span.attributes || {};
      ents.appendChild(el("tr", {}, [cell(span.start), cell(span.end), cell(span.label), cell(span.text),
        cell(attrs.assertion !== undefined ? attrs.assertion : flagsOf(span).join(", ")), cell((span.ids || []).join(", ")),
        cell(typeof span.score === "number" ? span.score.toFixed(2) : "")]));
    }
    const labels = $("doc-labels");
    clear(labels);
    if (doc.labels && doc.labels.length) {
      const scores = doc.label_scores || {};
      labels.appendChild(el("p", { text: "Document labels: " + doc.labels.map(function (l) {
        return typeof scores[l] === "number" ? l + " (" + scores[l].toFixed(2) + ")" : l;
      }).join(", ") }));
    }
  }

  function render(result) {
    const doc = result.documents[0];
    renderLegend(doc);
    renderText(doc);
    renderTables(doc);
    clear($("details"));
    $("details").textContent = "Select a highlighted entity (click, or Tab then Enter) for its details.";
  }

  // ------------------------------------------------------------- file, JSON
  async function readFile(file) {
    if (!file) return;
    if (!/\.txt$/i.test(file.name) && file.type !== "text/plain") {
      showError("", "only plain-text (.txt) files can be opened here", "save the note as a .txt file");
      return;
    }
    const text = await file.text();
    state.fileText = text;
    $("note").value = text;
    hideError();
    setStatus("Opened a file of " + Array.from(text).length + " characters.");
  }

  function download() {
    if (!state.result) return;
    const blob = new Blob([JSON.stringify(state.result, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: "medtune-" + state.result.model + ".json" });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("analyze").addEventListener("click", analyze);
    $("download").addEventListener("click", download);
    $("token").addEventListener("change", loadModels);
    $("file").addEventListener("change", function (event) { readFile(event.target.files[0]); });
    const note = $("note");
    note.addEventListener("input", function () { if (state.fileText !== null && note.value === "") state.fileText = null; });
    note.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); analyze(); }
    });
    note.addEventListener("dragover", function (event) { event.preventDefault(); note.classList.add("dragging"); });
    note.addEventListener("dragleave", function () { note.classList.remove("dragging"); });
    note.addEventListener("drop", function (event) {
      event.preventDefault();
      note.classList.remove("dragging");
      readFile(event.dataTransfer.files[0]);
    });
    loadModels();
  });
})();
