// domainfit console: the few things a page does without a reload (no framework, no build).
"use strict";

function $(id) { return document.getElementById(id); }

// Uploads: refuse a file over the limit before sending it, and show the server's answer in the page.
function setUpUpload() {
  const form = $("upload-form");
  if (!form) return;
  const status = $("upload-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("file").files[0];
    const limit = Number(form.dataset.maxBytes);
    if (!file) { status.textContent = "Choose a file first."; return; }
    if (file.size > limit) {
      status.className = "error";
      status.textContent = `${file.name} is ${(file.size / 1048576).toFixed(0)} MB, over the console's upload limit of ` +
        `${(limit / 1048576).toFixed(0)} MB: split it, or put it under the console's folder and pick it.`;
      return;
    }
    status.className = "";
    status.textContent = `Uploading ${file.name}…`;
    const body = new FormData(form);
    try {
      const answer = await fetch("/console/api/uploads", { method: "POST", body, headers: { Accept: "application/json" } });
      const data = await answer.json();
      if (answer.ok) { window.location.href = data.page; return; }
      status.className = "error";
      status.textContent = data.error ? data.error.message : `The upload failed (${answer.status}).`;
    } catch (err) {
      status.className = "error";
      status.textContent = `The upload failed: ${err}`;
    }
  });
}

// Learning curves: training loss as a line, the validation metric as dots (its own scale).
function drawCurve(svg, progress) {
  const W = 600, H = 220, L = 44, R = 44, T = 12, B = 28;
  const loss = progress.loss || [], val = progress.validation || [];
  const steps = loss.map((p) => p[0]).concat(val.map((p) => p[0]));
  const maxStep = Math.max(progress.total || 0, ...steps, 1);
  const x = (s) => L + (W - L - R) * s / maxStep;
  const parts = [`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#6e7781"/>`,
                 `<text x="${W / 2}" y="${H - 6}" font-size="12" text-anchor="middle" fill="#1f2328">step (of ${maxStep})</text>`];
  if (loss.length) {
    const top = Math.max(...loss.map((p) => p[1])) || 1;
    const y = (v) => T + (H - T - B) * (1 - v / top);
    parts.push(`<polyline fill="none" stroke="#0b57d0" stroke-width="2" points="${loss.map((p) => `${x(p[0])},${y(p[1])}`).join(" ")}"/>`);
    parts.push(`<text x="4" y="${T + 10}" font-size="12" fill="#0b57d0">${top.toFixed(2)}</text><text x="4" y="${H - B}" font-size="12" fill="#0b57d0">0</text>`);
  }
  if (val.length) {
    const vs = val.map((p) => p[1]);
    let lo = Math.min(...vs), hi = Math.max(...vs);
    if (hi - lo < 1e-9) { lo -= 0.05; hi += 0.05; }
    const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
    for (const p of val) parts.push(`<circle cx="${x(p[0])}" cy="${y(p[1])}" r="4" fill="#b45309"><title>step ${p[0]}: ${p[1].toFixed(4)}</title></circle>`);
    parts.push(`<text x="${W - 4}" y="${T + 10}" font-size="12" text-anchor="end" fill="#7a4b00">${hi.toFixed(3)}</text><text x="${W - 4}" y="${H - B}" font-size="12" text-anchor="end" fill="#7a4b00">${lo.toFixed(3)}</text>`);
  }
  svg.innerHTML = parts.join("");
}

function showJob(job) {
  const status = $("job-status");
  status.textContent = job.status + (job.position ? ` (${job.position} in the queue)` : "");
  status.className = `status status-${job.status}`;
  const p = job.progress;
  const bar = $("job-progress");
  if (p.total) { bar.max = p.total; bar.value = p.step; $("job-steps").textContent = `step ${p.step} of ${p.total}`; }
  if (p.metric) $("val-name").textContent = p.metric;
  drawCurve($("curve"), p);
  const log = $("job-log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  log.textContent = job.log;
  if (atEnd) log.scrollTop = log.scrollHeight;
  if (job.error) $("job-error").innerHTML = "";
  if (job.error) {
    const box = $("job-error");
    box.className = "error";
    box.setAttribute("role", "alert");
    const para = document.createElement("p");
    para.textContent = job.error;
    box.appendChild(para);
  }
}

// A job's page follows the job live (server-sent events); a reload reconnects, nothing is lost.
function setUpJob() {
  const box = $("job");
  if (!box) return;
  drawCurve($("curve"), JSON.parse($("curve").dataset.points));
  const initial = box.dataset.status;
  if (initial !== "queued" && initial !== "running") return;
  const source = new EventSource(`/console/api/jobs/${box.dataset.job}/events`);
  let last = initial;
  source.addEventListener("job", (event) => { const job = JSON.parse(event.data); last = job.status; showJob(job); });
  source.addEventListener("end", () => { source.close(); if (last !== initial) window.location.reload(); });
}

// Review: keys 1-9 choose a label, S skips (not while typing in a field).
function setUpReview() {
  const form = $("label-form");
  if (!form) return;
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    const button = form.querySelector(`button[data-key="${event.key.toLowerCase()}"]`);
    if (button) { event.preventDefault(); button.click(); }
  });
}

document.addEventListener("DOMContentLoaded", () => { setUpUpload(); setUpJob(); setUpReview(); });
