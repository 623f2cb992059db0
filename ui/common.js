// Helpers shared by pool.js and miner.js. Everything the servers send is untrusted text:
// it reaches the page through textContent / text nodes only, never innerHTML.
"use strict";

const ncpc = (() => {
  // h("a", {href: "/x", class: "c"}, "text", childNode): strings become text nodes.
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) if (kid != null) e.append(kid instanceof Node ? kid : String(kid));
    return e;
  }

  // Set text only when it changed (keeps selections and avoids needless layout).
  function setText(el, text) {
    const s = text == null ? "" : String(text);
    if (el.textContent !== s) el.textContent = s;
  }

  const $ = (id) => document.getElementById(id);

  // The pages load their libraries (uPlot, KaTeX) after pool.js/miner.js, all deferred, so that the
  // first API request starts early; code that needs a library runs through afterLibs.
  let loaded = false;
  document.addEventListener("DOMContentLoaded", () => { loaded = true; }, { once: true });
  const afterLibs = (fn) => (loaded ? fn() : document.addEventListener("DOMContentLoaded", fn, { once: true }));

  // Replace a cell's single child node when its key changed (for nodes richer than text).
  function setNode(td, key, make) {
    const k = String(key);
    if (td.dataset.key !== k || !td.firstChild) { td.replaceChildren(make()); td.dataset.key = k; }
  }

  // Keep tbody's rows equal to items (in order), reusing rows by key.
  function syncRows(tbody, rows, items, keyOf, makeRow, fillRow) {
    const seen = new Set();
    items.forEach((item, i) => {
      const key = String(keyOf(item));
      seen.add(key);
      let tr = rows.get(key);
      if (!tr) { tr = makeRow(item); rows.set(key, tr); }
      fillRow(tr, item, i + 1);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    for (const [key, tr] of rows) if (!seen.has(key)) { tr.remove(); rows.delete(key); }
  }

  const FAILED = -99999;
  function scoreText(s) {
    if (s == null) return "pending";
    if (s <= FAILED) return "failed";
    return Number(s).toFixed(4);
  }
  function scoreClass(s) {
    return s == null ? "score-pending" : s <= FAILED ? "score-failed" : "";
  }

  function ago(t) {
    if (t == null) return "";
    const d = Date.now() / 1000 - t;
    if (d < 45) return "just now";
    if (d < 90) return "1 min ago";
    if (d < 3600) return `${Math.round(d / 60)} min ago`;
    if (d < 1.5 * 86400) return `${Math.round(d / 3600)} h ago`;
    return `${Math.round(d / 86400)} d ago`;
  }
  const dateText = (t) => (t == null ? "" : new Date(t * 1000).toLocaleString());
  const shortAddr = (a) => (a == null ? "—" : a.length <= 14 ? a : `${a.slice(0, 6)}…${a.slice(-5)}`);
  const num = (n, digits) => (n == null ? "—" : digits == null ? Number(n).toLocaleString() : Number(n).toFixed(digits));

  // An address cell: shortened, the full text in the title.
  function addrNode(a) {
    return h("span", { class: "mono", title: a == null ? null : a }, shortAddr(a));
  }

  function detailText(body) {
    if (body == null) return "";
    const d = typeof body === "object" && "detail" in body ? body.detail : body;
    return typeof d === "string" ? d : JSON.stringify(d);
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const err = new Error(`${r.status} ${detailText(body) || r.statusText}`);
      err.status = r.status;
      throw err;
    }
    return body;
  }

  // The header's live indicator.
  function live(ok, err) {
    const el = $("live");
    if (!el) return;
    el.classList.toggle("ok", ok);
    el.classList.toggle("down", !ok);
    setText(el, ok ? `live · ${new Date().toLocaleTimeString()}` : `offline · ${err && err.message ? err.message : "no answer"}`);
  }

  // Run fn now and every ms milliseconds after it finishes; paused while the tab is hidden.
  function poll(fn, ms) {
    let timer = 0, busy = false;
    const run = async () => {
      timer = 0;
      if (busy) return;
      busy = true;
      try { await fn(); live(true); } catch (e) { live(false, e); }
      busy = false;
      if (!document.hidden) timer = setTimeout(run, ms);
    };
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) { clearTimeout(timer); timer = 0; }
      else if (!timer && !busy) run();
    });
    run();
  }

  // ---- charts (uPlot) ----
  function theme() {
    const cs = getComputedStyle(document.documentElement);
    const v = (n) => cs.getPropertyValue(n).trim();
    return { fg: v("--muted"), grid: v("--grid"), s1: v("--series-1"), s2: v("--series-2") };
  }
  function axis(t, extra) {
    return Object.assign({
      stroke: t.fg, font: "12px system-ui, sans-serif",
      grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.grid, width: 1 },
    }, extra);
  }
  // Union of the x values of several [[x, y], ...] lists; missing y as fill.
  function merge(lists, fill) {
    const xs = [...new Set(lists.flatMap((l) => (l || []).map((p) => p[0])))].sort((a, b) => a - b);
    const maps = lists.map((l) => new Map(l || []));
    return [xs, ...maps.map((m) => xs.map((x) => (m.has(x) ? m.get(x) : fill)))];
  }
  // A chart that fills its container's width, follows the colour scheme and takes new data with set().
  // makeOpts(theme) returns uPlot options without width/height.
  function chart(container, makeOpts, data, height) {
    let u = null, last = data;
    const build = () => {
      if (u) u.destroy();
      const opts = makeOpts(theme());
      opts.width = Math.max(200, container.clientWidth);
      opts.height = height || 240;
      u = new uPlot(opts, last, container);
    };
    build();
    if (window.ResizeObserver) {
      new ResizeObserver(() => {
        const w = Math.max(200, container.clientWidth);
        if (u && w !== u.width) u.setSize({ width: w, height: u.height });
      }).observe(container);
    }
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", build);
    return { set(d) { last = d; u.setData(d); } };
  }
  const hourRange = (u, min, max) => (min == null ? [0, 3600] : [min - 1800, max + 1800]);

  return { h, setText, setNode, syncRows, $, afterLibs, FAILED, scoreText, scoreClass, ago, dateText, shortAddr, num, addrNode,
           detailText, getJSON, live, poll, theme, axis, merge, chart, hourRange };
})();
