// SPDX-License-Identifier: MIT
// The board's one page: plain HTML, CSS and JavaScript, no libraries. It polls the JSON API
// (board.hpp) every second and builds every element with textContent, so job data is never
// read as HTML. The address's hash (#queue=Q&state=S&group=G&job=ID) keeps the place across
// reloads. The "grouped" card shows the queue's groups in place of the job list; a group's row
// lists its line.
#pragma once

#include <string_view>

namespace redkit_queue {

inline constexpr std::string_view board_page = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redkit board</title>
<style>
  :root { --ink: #1d232b; --soft: #5b6673; --line: #dde2e8; --bg: #f5f7f9; --ok: #2f9e5b; --bad: #d2453b;
          --accent: #2f6fd0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); }
  body { margin: 0; background: var(--bg); }
  header { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #1d232b; color: #fff; }
  header h1 { font-size: 18px; margin: 0; font-weight: 600; }
  header .live { font-size: 13px; color: #b8c2cc; margin-left: auto; }
  header .live::before { content: "\25CF "; color: var(--ok); }
  header .live.stale::before { color: var(--bad); }
  main { display: grid; grid-template-columns: 290px minmax(0, 1fr) 360px; gap: 16px; padding: 16px 20px;
         align-items: start; }
  .panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
  h2 { font-size: 17px; margin: 0; }
  h3 { font-size: 14px; margin: 14px 0 8px; color: var(--soft); font-weight: 600; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th { text-align: left; color: var(--soft); font-weight: 500; border-bottom: 1px solid var(--line); padding: 4px 6px; }
  td { border-bottom: 1px solid var(--line); padding: 5px 6px; vertical-align: top; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.pick { cursor: pointer; }
  tr.pick:hover td { background: #eef3fb; }
  tr.chosen td { background: #e3ecfa; }
  .title { display: flex; align-items: center; gap: 10px; }
  .badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #fdecc8; color: #7a5400; }
  .counts { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 8px; margin-top: 12px; }
  .count { border: 1px solid var(--line); background: #fff; border-radius: 8px; padding: 8px 10px; text-align: left;
           cursor: pointer; font: inherit; color: inherit; }
  .count .n { display: block; font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .count .label { font-size: 12px; color: var(--soft); white-space: nowrap; }
  .count.chosen { border-color: var(--accent); box-shadow: 0 0 0 1px var(--accent) inset; }
  .count.failed .n { color: var(--bad); }
  .count.completed .n { color: var(--ok); }
  figure { margin: 12px 0 0; }
  figcaption { font-size: 12px; color: var(--soft); }
  .axis { display: flex; justify-content: space-between; font-size: 11px; color: var(--soft); margin: 2px 0 4px; }
  .swatch { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin: 0 4px 0 10px; }
  svg { width: 100%; height: 150px; display: block; }
  button.act { font: inherit; font-size: 12px; border: 1px solid var(--line); background: #fff; border-radius: 5px;
               padding: 2px 8px; cursor: pointer; margin-right: 4px; }
  button.act:hover { border-color: var(--accent); color: var(--accent); }
  button.act.sure { background: var(--bad); color: #fff; border-color: var(--bad); }
  .muted { color: var(--soft); }
  .pager { display: flex; gap: 8px; align-items: center; margin-top: 8px; font-size: 13px; }
  pre { background: var(--bg); border-radius: 6px; padding: 8px; font-size: 12px; overflow: auto; max-height: 220px;
        white-space: pre-wrap; word-break: break-word; margin: 4px 0; }
  dl { display: grid; grid-template-columns: 110px 1fr; gap: 3px 8px; font-size: 13px; margin: 8px 0; }
  dt { color: var(--soft); }
  dd { margin: 0; word-break: break-all; }
  .error { color: var(--bad); font-size: 13px; min-height: 1em; }
  .cut { max-width: 260px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  #queues .cut { max-width: 120px; }
  #queues td, #queues th { padding: 5px 3px; }
  /* the job list keeps to its panel: fixed columns, long text cut (whole in its tooltip) */
  #jobs { table-layout: fixed; }
  #jobs td, #jobs th { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  #jobs .c-id, #jobs .c-name { width: 11%; } #jobs .c-attempts { width: 62px; } #jobs .c-when { width: 140px; }
  #jobs .c-act { width: 116px; }
  #jobs button.act { padding: 1px 6px; margin-right: 2px; }
  #groups { table-layout: fixed; }
  #groups td, #groups th { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  #groups .c-n { width: 48px; } #groups .c-limit { width: 76px; } #groups .c-held { width: 64px; }
  #groups .c-act { width: 72px; }
  .ts { white-space: nowrap; }
  .rel { display: block; font-size: 12px; color: var(--soft); }
  .list-head { flex-wrap: wrap; row-gap: 0; }
  .list-head select { font: inherit; font-size: 12px; border: 1px solid var(--line); border-radius: 5px;
                      background: #fff; padding: 1px 4px; margin-right: 4px; }
  /* on a narrower screen the side panels narrow, so the job list keeps room for its data */
  @media (max-width: 1380px) {
    main { grid-template-columns: 270px minmax(0, 1fr) 300px; gap: 12px; padding: 12px; }
    #queues { table-layout: fixed; }
    #queues .cut { max-width: none; }
    #queues th.num { width: 40px; }
    #queues th.c-waiting { width: 48px; }
    dl { grid-template-columns: 90px 1fr; }
  }
</style>
</head>
<body>
<header><h1>redkit board</h1><span class="live" id="live">connecting</span></header>
<main>
  <nav class="panel">
    <h3 style="margin-top:0">Queues</h3>
    <table id="queues"><thead><tr><th>queue</th><th class="num c-waiting">waiting</th><th class="num">active</th>
      <th class="num">failed</th></tr></thead><tbody></tbody></table>
  </nav>
  <section class="panel" id="queue">
    <div class="title"><h2 id="queue-name">Pick a queue</h2><span class="badge" id="paused" hidden>paused</span>
      <span style="flex:1"></span><button class="act" id="pause" hidden></button></div>
    <div class="counts" id="counts"></div>
    <figure><svg id="chart" viewBox="0 0 600 150" preserveAspectRatio="none"></svg>
      <div class="axis"><span>60 min ago</span><span><i class="swatch" style="background:#2f9e5b"></i>completed
        <i class="swatch" style="background:#d2453b"></i>failed</span><span>now</span></div>
      <figcaption id="chart-caption">Jobs finished per minute, last 60 minutes</figcaption></figure>
    <div class="title list-head"><h3 id="list-title"></h3><span style="flex:1"></span>
      <button class="act" id="all-groups" hidden>&larr; all groups</button>
      <span id="list-tools" hidden><button class="act" id="retry-all">Retry all</button><select id="clean-grace"
        title="which finished jobs Clean removes"><option value="0">any age</option>
        <option value="3600000">over 1 h ago</option><option value="86400000">over 1 day ago</option>
        <option value="604800000">over 7 days ago</option></select><button class="act" id="clean">Clean</button>
      </span></div>
    <table id="jobs"><thead><tr><th class="c-id">id</th><th class="c-name">name</th>
      <th class="num c-attempts">attempts</th><th class="c-when" id="when-head">when</th>
      <th>data / reason</th><th class="c-act"></th></tr></thead><tbody></tbody></table>
    <table id="groups" hidden><thead><tr><th>group</th><th class="num c-n">waiting</th><th class="num c-n">active</th>
      <th class="c-n">paused</th><th class="num c-limit">limit</th><th class="c-held">held</th>
      <th class="c-act"></th></tr></thead><tbody></tbody></table>
    <div class="pager"><button class="act" id="prev">&larr; newer</button><span id="page" class="muted"></span>
      <button class="act" id="next">older &rarr;</button></div>
    <div class="error" id="error"></div><div class="muted" id="note"></div>
  </section>
  <aside class="panel" id="detail"><h3 style="margin-top:0">Job</h3><p class="muted">Pick a job to see it.</p></aside>
</main>
<script>
"use strict";
const STATES = ["waiting", "active", "delayed", "prioritized", "completed", "failed", "waiting-children", "paused",
                "grouped"];
const token = new URLSearchParams(location.search).get("token");
// state "grouped": the groups, or with a group its line
const view = { queue: null, state: "waiting", offset: 0, job: null, group: null };
const PAGE = 20;
let counts = {};

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  view.queue = h.get("queue");
  view.state = STATES.includes(h.get("state")) ? h.get("state") : "waiting";
  view.job = h.get("job");
  view.group = view.state === "grouped" ? h.get("group") : null;
  view.offset = 0;
}
function writeHash() {
  const h = new URLSearchParams();
  if (view.queue) h.set("queue", view.queue);
  h.set("state", view.state);
  if (view.group) h.set("group", view.group);
  if (view.job) h.set("job", view.job);
  history.replaceState(null, "", "#" + h.toString());
  note("");
}

async function api(path, params, post) {
  const headers = token ? { "Authorization": "Bearer " + token } : {};
  if (post) headers["X-Redkit-Board"] = "1";
  const r = await fetch(path + "?" + new URLSearchParams(params).toString(), { method: post ? "POST" : "GET", headers });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
  return body;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function when(ms) { return ms > 0 ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-"; }
// a time (UTC) that never wraps, the exact instant in its tooltip
function stamp(ms, suffix) {
  const attrs = ms > 0 ? { class: "ts", title: new Date(ms).toISOString() } : { class: "ts" };
  return el("span", attrs, when(ms) + (suffix || ""));
}
// "in 42 s", "in 5 min", "in 3 h", "in 2 d" (or "... ago" once past)
function relative(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  const t = s < 90 ? s + " s" : s < 5400 ? Math.round(s / 60) + " min" : s < 172800 ? Math.round(s / 3600) + " h"
    : Math.round(s / 86400) + " d";
  return ms >= 0 ? "in " + t : t + " ago";
}
function text(v) { return typeof v === "string" ? v : JSON.stringify(v, null, 2); }
function showError(e) { document.getElementById("error").textContent = e ? String(e.message || e) : ""; }
function note(text) { document.getElementById("note").textContent = text; }

async function refreshQueues() {
  const { queues } = await api("/api/queues", {});
  const body = document.querySelector("#queues tbody");
  body.replaceChildren(...queues.map(q => el("tr", {
      class: "pick" + (q.name === view.queue ? " chosen" : ""), "data-queue": q.name,
      on: { click: () => { view.queue = q.name; view.job = null; view.group = null; view.offset = 0; writeHash(); tick(true); } } },
    el("td", { class: "cut", title: q.name }, q.name + (q.paused ? " (paused)" : "")),
    // in line: the queue's own (waiting, or paused with it) and its groups'
    el("td", { class: "num" }, q.counts.waiting + q.counts.paused + q.counts.grouped),
    el("td", { class: "num" }, q.counts.active),
    el("td", { class: "num" }, q.counts.failed))));
  if (!view.queue && queues.length) { view.queue = queues[0].name; writeHash(); }
  const mine = queues.find(q => q.name === view.queue);
  if (!mine) return false;
  counts = mine.counts;
  document.getElementById("queue-name").textContent = mine.name;
  document.getElementById("paused").hidden = !mine.paused;
  const pause = document.getElementById("pause");
  pause.hidden = false;
  pause.textContent = mine.paused ? "Resume" : "Pause";
  pause.onclick = async () => { try { await api(mine.paused ? "/api/resume" : "/api/pause", { queue: mine.name }, true); tick(); } catch (e) { showError(e); } };
  const cards = document.getElementById("counts");
  cards.replaceChildren(...STATES.map(s => el("button", {
      class: "count " + s + (s === view.state ? " chosen" : ""), "data-state": s,
      on: { click: () => { view.state = s; view.group = null; view.offset = 0; writeHash(); tick(); } } },
    el("span", { class: "n", "data-count": s }, mine.counts[s]), el("span", { class: "label" }, s))));
  return true;
}

async function refreshChart() {
  if (!view.queue) return;
  const { minutes } = await api("/api/metrics", { queue: view.queue, minutes: 60 });
  const svg = document.getElementById("chart");
  const ns = "http://www.w3.org/2000/svg";
  const top = Math.max(1, ...minutes.map(m => m.completed + m.failed));
  const w = 600 / minutes.length, h = 130;
  const shapes = [];
  minutes.forEach((m, i) => {
    const ch = h * m.completed / top, fh = h * m.failed / top;
    for (const [height, y, color, what] of [[ch, 140 - ch, "#2f9e5b", "completed"], [fh, 140 - ch - fh, "#d2453b", "failed"]]) {
      if (height <= 0) continue;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", i * w + 1); r.setAttribute("y", y);
      r.setAttribute("width", Math.max(1, w - 2)); r.setAttribute("height", height); r.setAttribute("fill", color);
      const t = document.createElementNS(ns, "title");
      t.textContent = when(m.minute) + ": " + (what === "completed" ? m.completed : m.failed) + " " + what;
      r.append(t);
      shapes.push(r);
    }
  });
  const base = document.createElementNS(ns, "line");
  for (const [k, v] of Object.entries({ x1: 0, x2: 600, y1: 140, y2: 140, stroke: "#dde2e8" })) base.setAttribute(k, v);
  svg.replaceChildren(base, ...shapes);
  const done = minutes.reduce((a, m) => a + m.completed, 0), failed = minutes.reduce((a, m) => a + m.failed, 0);
  document.getElementById("chart-caption").textContent =
    "Jobs finished per minute, last 60 minutes: " + done + " completed, " + failed + " failed (peak " + top + "/min)";
}

function actions(job) {
  const out = [];
  if (job.state === "failed") {
    out.push(el("button", { class: "act", "data-action": "retry", "data-job-id": job.id, on: { click: async ev => {
      ev.stopPropagation();
      try { await api("/api/retry", { queue: view.queue, id: job.id }, true); showError(null); tick(); } catch (e) { showError(e); }
    } } }, "Retry"));
  }
  if (job.state === "active") {
    out.push(el("button", { class: "act", "data-action": "cancel", "data-job-id": job.id, on: { click: async ev => {
      ev.stopPropagation();
      if (!window.confirm("Cancel job " + job.id + "? Its handler is told to stop and the job fails.")) return;
      try { await api("/api/cancel", { queue: view.queue, id: job.id }, true); showError(null); note("cancel requested: the worker learns at its next lease renewal"); tick(); } catch (e) { showError(e); }
    } } }, "Cancel"));
  }
  if (job.state !== "active") {
    // Remove asks first: the second click within 3 s removes (kept across the live redraws)
    const sure = armed.id === job.id && Date.now() < armed.until;
    const b = el("button", { class: "act" + (sure ? " sure" : ""), "data-action": "remove", "data-job-id": job.id },
                 sure ? "Sure?" : "Remove");
    b.addEventListener("click", async ev => {
      ev.stopPropagation();
      if (!(armed.id === job.id && Date.now() < armed.until)) {
        armed = { id: job.id, until: Date.now() + 3000 };
        for (const other of document.querySelectorAll("button[data-action=remove]")) {
          if (other.dataset.jobId === job.id) { other.classList.add("sure"); other.textContent = "Sure?"; }
        }
        return;
      }
      armed = { id: null, until: 0 };
      try { await api("/api/remove", { queue: view.queue, id: job.id }, true); showError(null); tick(); } catch (e) { showError(e); }
    });
    out.push(b);
  }
  return out;
}
let armed = { id: null, until: 0 };

// the job list, or the groups (state "grouped" without a group)
function showList(groups) {
  document.getElementById("jobs").hidden = groups;
  document.getElementById("groups").hidden = !groups;
  document.getElementById("all-groups").hidden = !(view.state === "grouped" && view.group);
}
function pager(total, shown) {
  document.getElementById("page").textContent = total ? (view.offset + 1) + "-" + (view.offset + shown) + " of " + total : "";
  document.getElementById("prev").disabled = view.offset === 0;
  document.getElementById("next").disabled = view.offset + PAGE >= total;
}

async function refreshGroups() {
  const page = await api("/api/groups", { queue: view.queue, offset: view.offset, count: PAGE });
  const shared = [];
  if (page.concurrency !== null) shared.push("default limit " + page.concurrency);
  if (page.rate_limit !== null) shared.push("rate limit " + page.rate_limit.max + " per " + page.rate_limit.per_ms + " ms");
  document.getElementById("list-title").textContent = page.total + " group(s)" + (shared.length ? ": " + shared.join(", ") : "");
  document.getElementById("list-tools").hidden = true;
  showList(true);
  const body = document.querySelector("#groups tbody");
  body.replaceChildren(...page.groups.map(g => el("tr", {
      class: "pick", "data-group": g.name, title: "list group " + g.name + "'s jobs",
      on: { click: () => { view.group = g.name; view.offset = 0; writeHash(); tick(); } } },
    el("td", { title: g.name }, g.name), el("td", { class: "num" }, g.waiting), el("td", { class: "num" }, g.active),
    el("td", { "data-field": "paused" }, g.paused ? "yes" : "no"),
    el("td", { class: "num" }, g.concurrency !== null ? g.concurrency : page.concurrency !== null ? page.concurrency + " (default)" : "-"),
    // held by the rate limit: for how long, the instant (UTC) in its tooltip
    el("td", { "data-field": "held" }, g.held_until !== null
      ? el("span", { class: "ts", title: new Date(g.held_until).toISOString() }, relative(g.held_until - page.now)) : "-"),
    el("td", {}, el("button", { class: "act", "data-action": g.paused ? "resume-group" : "pause-group", "data-group": g.name,
      on: { click: async ev => {
        ev.stopPropagation();
        try { await api(g.paused ? "/api/resume-group" : "/api/pause-group", { queue: view.queue, group: g.name }, true); showError(null); tick(); } catch (e) { showError(e); }
      } } }, g.paused ? "Resume" : "Pause")))));
  pager(page.total, page.groups.length);
}

async function refreshJobs() {
  if (!view.queue) return;
  if (view.state === "grouped" && !view.group) return refreshGroups();
  showList(false);
  const grouped = view.state === "grouped";
  const listed = view.state === "paused" || grouped ? "waiting" : view.state;
  const params = { queue: view.queue, state: listed, offset: view.offset, count: PAGE };
  if (grouped) params.group = view.group;
  const page = await api("/api/jobs", params);
  document.getElementById("list-title").textContent =
    page.total + (grouped ? " job(s) in group " + view.group : " " + view.state + " job(s)") + ", newest first";
  document.getElementById("list-tools").hidden = view.state !== "completed" && view.state !== "failed";
  document.getElementById("retry-all").hidden = view.state !== "failed";
  document.getElementById("clean").textContent = "Clean " + view.state;
  document.getElementById("when-head").textContent = view.state === "delayed" ? "due" : "when";
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...page.jobs.map(j => el("tr", {
      class: "pick" + (j.id === view.job ? " chosen" : ""), "data-job-id": j.id,
      on: { click: () => { view.job = j.id; writeHash(); tick(); } } },
    el("td", { title: j.id }, j.id), el("td", { title: j.name }, j.name),
    el("td", { class: "num" }, j.attempts_made + "/" + j.max_attempts),
    j.due ? el("td", {}, stamp(j.due), el("span", { class: "rel" }, relative(j.due - page.now)))
      : el("td", {}, stamp(j.finished || j.processed || j.created)),
    el("td", { title: j.state === "failed" ? j.reason : j.data }, j.state === "failed" ? j.reason : j.data),
    el("td", {}, ...actions(j)))));
  pager(page.total, page.jobs.length);
}

async function refreshDetail() {
  const box = document.getElementById("detail");
  if (!view.queue || !view.job) return;
  let j;
  try { j = await api("/api/job", { queue: view.queue, id: view.job }); } catch (e) {
    box.replaceChildren(el("h3", { style: "margin-top:0" }, "Job " + view.job), el("p", { class: "muted" }, String(e.message)));
    return;
  }
  const row = (k, ...v) => [el("dt", {}, k), el("dd", { "data-field": k }, ...v)];
  const parts = [el("h3", { style: "margin-top:0" }, "Job " + j.id),
    el("dl", {}, ...row("name", j.name), ...row("state", j.state), ...row("attempts", j.attempts_made + " of " + j.max_attempts),
      ...row("created", stamp(j.created)), ...row("processed", stamp(j.processed)), ...row("finished", stamp(j.finished)),
      ...(j.due ? row("due", stamp(j.due, " UTC,"), " ", el("span", { class: "ts" }, relative(j.due - j.now))) : []),
      ...(j.priority ? row("priority", j.priority) : []), ...(j.group ? row("group", j.group) : []),
      ...(j.stalls ? row("stalls", j.stalls) : []),
      ...(j.scheduler ? row("scheduler", j.scheduler) : []),
      ...(j.deduplication ? row("deduplication", j.deduplication) : []),
      ...(j.parent ? row("parent", j.parent.queue + ":" + j.parent.id) : []),
      ...(j.pending_children ? row("waiting for", j.pending_children + " child job(s)") : [])),
    el("div", {}, ...actions(j)),
    el("h3", {}, "Data"), el("pre", { "data-field": "data" }, text(j.data))];
  if (j.return_value !== null) parts.push(el("h3", {}, "Returned"), el("pre", {}, text(j.return_value)));
  if (j.progress !== null) parts.push(el("h3", {}, "Progress"), el("pre", {}, text(j.progress)));
  if (j.reason) parts.push(el("h3", {}, "Last error"), el("pre", { "data-field": "reason" }, j.reason));
  if (j.trace.length) parts.push(el("h3", {}, "Trace"), el("pre", {}, j.trace.join("\n")));
  if (j.children.length) parts.push(el("h3", {}, "Children"), el("pre", {}, j.children.map(c =>
    c.queue + ":" + c.id + (c.ignored !== undefined ? "  failed, ignored: " + c.ignored : "  -> " + JSON.stringify(c.value))).join("\n")));
  if (j.logs.length) parts.push(el("h3", {}, "Logs (" + j.logs.length + ")"), el("pre", {}, j.logs.join("\n")));
  box.replaceChildren(...parts);
}

let running = false, lastChart = 0;
async function tick(chart) {
  if (running) return;
  running = true;
  const live = document.getElementById("live");
  try {
    if (await refreshQueues()) {
      await refreshJobs();
      await refreshDetail();
      if (chart || Date.now() - lastChart > 5000) { lastChart = Date.now(); await refreshChart(); }
    }
    live.textContent = "live, updated " + new Date().toLocaleTimeString();
    live.classList.remove("stale");
  } catch (e) {
    live.textContent = "not updating: " + e.message;
    live.classList.add("stale");
  } finally {
    running = false;
  }
}

// Retry all and Clean act on the queue shown, then redraw its counts; Clean asks first
document.getElementById("retry-all").onclick = async () => {
  try {
    const r = await api("/api/retry-all", { queue: view.queue }, true);
    showError(null); note(r.retried + " job(s) moved back in line"); tick(true);
  } catch (e) { showError(e); }
};
document.getElementById("clean").onclick = async () => {
  const queue = view.queue, state = view.state, grace = document.getElementById("clean-grace");
  const which = grace.value === "0" ? "" : " finished " + grace.selectedOptions[0].textContent;
  if (!window.confirm("Remove the " + state + " jobs of queue '" + queue + "'" + which + " (" + counts[state] + " " +
                      state + " now)?")) { note("nothing removed"); return; }
  try {
    const r = await api("/api/clean", { queue, state, grace: grace.value }, true);
    showError(null); note(r.removed + " " + state + " job(s) removed"); tick(true);
  } catch (e) { showError(e); }
};
document.getElementById("all-groups").onclick = () => { view.group = null; view.offset = 0; writeHash(); tick(); };
document.getElementById("prev").onclick = () => { view.offset = Math.max(0, view.offset - PAGE); tick(); };
document.getElementById("next").onclick = () => { view.offset += PAGE; tick(); };
window.addEventListener("hashchange", () => { readHash(); tick(true); });
readHash();
tick(true);
setInterval(tick, 1000);
</script>
</body>
</html>
)html";

}  // namespace redkit_queue
