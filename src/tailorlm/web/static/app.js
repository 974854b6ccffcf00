/* TailorLM dashboard: loss charts (live over server-sent events), job progress, the playground.
   Written for this project (Apache-2.0), no third-party code; no inline script is needed (strict CSP). */
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f5fbf", "#b3261e", "#1e7a3c", "#8a4fbf", "#b36b00", "#00707a", "#5c5c5c", "#c2185b"];

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function el(name, attributes, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function ticks(min, max, count) {
  if (max === min) return [min];
  const step = (max - min) / (count - 1);
  return Array.from({ length: count }, (_, i) => min + i * step);
}

function fmt(value) {
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

/* A line chart of named series [{name, colour, dashed, points: [[x, y], ...]}] drawn as SVG. */
function drawChart(area, series) {
  const width = 720, height = 300, left = 56, right = 16, top = 26, bottom = 40;
  area.textContent = "";
  const all = series.flatMap((s) => s.points);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "loss-chart", "aria-hidden": "true" }, area);
  if (!all.length) return 0;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const X = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const Y = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  const axes = el("g", { class: "axes" }, svg);
  for (const y of ticks(y0, y1, 5)) {
    el("line", { x1: left, x2: width - right, y1: Y(y), y2: Y(y), class: "grid" }, axes);
    el("text", { x: left - 6, y: Y(y) + 4, "text-anchor": "end" }, axes).textContent = fmt(y);
  }
  for (const x of ticks(x0, x1, 6)) {
    el("text", { x: X(x), y: height - bottom + 16, "text-anchor": "middle" }, axes).textContent = Math.round(x);
  }
  el("text", { x: (left + width) / 2, y: height - 6, "text-anchor": "middle" }, axes).textContent = "step";
  el("text", { x: 8, y: 14, "text-anchor": "start" }, axes).textContent = "loss";
  series.forEach((s) => {
    if (!s.points.length) return;
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    el("path", { d, class: "series" + (s.dashed ? " dashed" : ""), stroke: s.colour }, svg);
    const dots = el("g", { class: "points", fill: s.colour, "data-series": s.name }, svg);
    s.points.forEach((p) => el("circle", { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 3, class: "point" }, dots));
  });
  const legend = document.createElement("ul");
  legend.className = "chart-legend";
  series.forEach((s) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch" + (s.dashed ? " dashed" : "");
    swatch.dataset.colour = s.colour;
    swatch.style.setProperty("--swatch", s.colour);
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(`${s.name} (${s.points.length} points)`));
    legend.appendChild(item);
  });
  area.appendChild(legend);
  return all.length;
}

class LossChart {
  constructor(figure) {
    this.figure = figure;
    this.area = figure.querySelector(".chart-area");
    this.status = figure.querySelector(".chart-status");
    this.rows = {};
    this.sources = [];
  }

  series() {
    const runs = Object.keys(this.rows);
    return runs.flatMap((run, i) => {
      const colour = COLOURS[(2 * i) % COLOURS.length], other = COLOURS[(2 * i + 1) % COLOURS.length];
      const label = runs.length > 1 ? `${run} ` : "";
      const rows = this.rows[run];
      return [
        { name: `${label}train loss`, colour, points: rows.filter((r) => typeof r.loss === "number").map((r) => [r.step, r.loss]) },
        { name: `${label}validation loss`, colour: other, dashed: true, points: rows.filter((r) => typeof r.val_loss === "number").map((r) => [r.step, r.val_loss]) },
      ];
    });
  }

  draw(message) {
    const points = drawChart(this.area, this.series());
    this.figure.dataset.points = String(points);
    this.status.textContent = message || (points ? `${points} points` : "No loss logged yet.");
  }

  async load(run, live) {
    const response = await fetch(`/api/runs/${encodeURIComponent(run)}/metrics`, { headers: { accept: "application/json" } });
    const data = await response.json();
    if (!response.ok) { this.status.textContent = data.error || "could not load the metrics"; return; }
    this.rows[run] = data.rows;
    this.draw();
    if (live && data.status === "running") this.follow(run, data.offset);
    else if (live) this.figure.dataset.done = "yes";
  }

  follow(run, offset) {
    const source = new EventSource(`/api/runs/${encodeURIComponent(run)}/stream?offset=${offset}`);
    this.sources.push(source);
    this.figure.dataset.live = "streaming";
    source.addEventListener("metrics", (event) => {
      this.rows[run].push(JSON.parse(event.data));
      this.draw(`live: ${this.rows[run].length} lines`);
    });
    source.addEventListener("done", (event) => {
      const status = JSON.parse(event.data).status;
      source.close();
      this.figure.dataset.done = "yes";
      this.draw(`run ${status}`);
      const badge = document.getElementById("run-status");
      if (badge) { badge.textContent = status; badge.className = `badge ${status}`; }
    });
  }

  start() {
    const runs = (this.figure.dataset.runs || "").split(",").filter(Boolean);
    const live = this.figure.dataset.live === "yes";
    runs.forEach((run) => this.load(run, live));
    return runs.length;
  }
}

function watchJob(box) {
  const id = box.dataset.job;
  const figure = box.querySelector("figure.chart");
  const chart = figure ? new LossChart(figure) : null;
  let started = chart ? chart.start() > 0 : false;
  const tick = async () => {
    const response = await fetch(`/api/jobs/${encodeURIComponent(id)}`, { headers: { accept: "application/json" } });
    if (!response.ok) return setTimeout(tick, 2000);
    const job = await response.json();
    const badge = box.querySelector(".job-status");
    badge.textContent = job.status;
    badge.className = `badge ${job.status} job-status`;
    box.querySelector(".log").textContent = job.log;
    if (job.error) {
      const alert = box.querySelector(".job-error");
      alert.hidden = false;
      alert.querySelector(".error-message").textContent = job.error;
    }
    if (job.run) {
      const link = box.querySelector(".job-run");
      link.hidden = false;
      link.querySelector("a").href = `/runs/${job.run}`;
      link.querySelector("a").textContent = job.run;
      if (chart && !started) { figure.dataset.runs = job.run; started = chart.start() > 0; }
    }
    if (!job.finished) setTimeout(tick, 1000);
    else {
      box.dataset.finished = "yes";
      const cancel = box.querySelector(".job-cancel");
      if (cancel) cancel.hidden = true;
    }
  };
  if (box.dataset.finished !== "yes" || (figure && !started)) tick();
}

/* The playground: one streamed answer per side, then rate or correct it. */
async function streamAnswer(box, body, onDone) {
  const bubble = document.createElement("div");
  bubble.className = "bubble assistant streaming";
  box.appendChild(bubble);
  const response = await fetch("/api/playground/chat", {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrfToken(), accept: "text/event-stream" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({ error: response.statusText }));
    bubble.classList.add("error");
    bubble.textContent = data.error || response.statusText;
    bubble.classList.remove("streaming");
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = (block.match(/^event: (.*)$/m) || [null, "message"])[1];
      const data = JSON.parse((block.match(/^data: (.*)$/m) || [null, "{}"])[1]);
      if (event === "error") { bubble.classList.add("error"); bubble.textContent = data.error; }
      else if (event === "context") {
        const note = document.createElement("p");
        note.className = "muted context";
        note.textContent = data.sources.length ? `Retrieved: ${data.sources.join("; ")}` : "Retrieved: nothing matched";
        bubble.before(note);
      }
      else if (data.text) { text += data.text; bubble.textContent = text; bubble.dataset.chunks = String(Number(bubble.dataset.chunks || 0) + 1); }
    }
  }
  bubble.classList.remove("streaming");
  bubble.dataset.done = "yes";
  onDone(bubble, text);
}

function feedbackControls(bubble, payload) {
  const row = document.createElement("div");
  row.className = "rate";
  const send = async (extra) => {
    const response = await fetch("/api/playground/feedback", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrfToken(), accept: "application/json" },
      body: JSON.stringify({ ...payload, ...extra }),
    });
    const data = await response.json();
    note.textContent = response.ok ? "Saved as feedback." : data.error;
  };
  const button = (label, handler) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.addEventListener("click", handler); row.appendChild(b);
    return b;
  };
  button("Good answer", () => send({ rating: "up" }));
  button("Bad answer", () => send({ rating: "down" }));
  const label = document.createElement("label");
  const id = `fix-${Math.random().toString(36).slice(2)}`;
  label.htmlFor = id; label.textContent = "Corrected answer";
  const fix = document.createElement("textarea");
  fix.id = id; fix.rows = 2;
  row.appendChild(label); row.appendChild(fix);
  button("Save correction", () => send({ corrected: fix.value, rating: "down" }));
  const note = document.createElement("p");
  note.className = "muted"; note.setAttribute("role", "status");
  row.appendChild(note);
  bubble.after(row);
}

function playground(form) {
  const canRate = form.dataset.canRate === "yes";
  const history = { model: [], base: [] };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = form.querySelector("#p-prompt").value.trim();
    if (!prompt) return;
    const model = form.querySelector("#p-model").value;
    const system = form.querySelector("#p-system").value.trim();
    const maxTokens = Number(form.querySelector("#p-max").value) || 96;
    const sides = form.querySelector("#p-base").checked ? ["model", "base"] : ["model"];
    const pair = sides.length > 1 ? `pair-${Date.now()}` : null;
    for (const side of sides) {
      const box = document.querySelector(`.answer[data-side="${side}"] .conversation`);
      const you = document.createElement("div");
      you.className = "bubble user"; you.textContent = prompt; box.appendChild(you);
      history[side].push({ role: "user", content: prompt });
      const messages = [...(system ? [{ role: "system", content: system }] : []), ...history[side]];
      const reference = side === "base" ? `base:${model}` : model;
      const decoding = { max_tokens: maxTokens, temperature: 0 };
      const retrieval = form.querySelector("#p-rag").checked;
      streamAnswer(box, { model: reference, messages, retrieval, ...decoding }, (bubble, text) => {
        history[side].push({ role: "assistant", content: text });
        if (canRate && text) feedbackControls(bubble, { model: reference, messages, answer: text, decoding, pair });
      });
    }
    form.querySelector("#p-prompt").value = "";
  });
  form.querySelector("#p-model").addEventListener("change", () => { history.model = []; history.base = []; });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".job[data-job]").forEach(watchJob);
  document.querySelectorAll("figure.chart:not([data-wait-job])").forEach((figure) => new LossChart(figure).start());
  const form = document.getElementById("playground");
  if (form) playground(form);
});
