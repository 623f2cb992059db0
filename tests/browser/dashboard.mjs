#!/usr/bin/env node
// Browser checks of ncpc's pool dashboard (`ncpc pool serve`) and local miner page (`ncpc mine --ui`),
// driving Debian's chromium with playwright-core. One line per check; exit status 1 if any failed.
//
//   POOL_URL=http://127.0.0.1:8000 FUNCTION_ID=7 MINER_URL='http://127.0.0.1:8100/#token=HEX' \
//   SHOTS=/tmp/shots [API_FUNCTIONS=N] node tests/browser/dashboard.mjs
//
// The check (g) pauses the miner for a few seconds and resumes it. See README.md.
import { chromium } from "playwright-core";
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const env = process.env;
const POOL = (env.POOL_URL || "").replace(/\/+$/, "");
const FID = env.FUNCTION_ID;
const MINER = env.MINER_URL || "";
const SHOTS = resolve(env.SHOTS || "shots");
const API_FUNCTIONS = env.API_FUNCTIONS;
const BUDGET_MS = Number(env.LOAD_BUDGET_MS || 200);
const LOADS = 5;
if (!POOL || !FID || !MINER) {
  console.error("usage: POOL_URL=http://HOST:PORT FUNCTION_ID=ID MINER_URL='http://HOST:PORT/#token=HEX' SHOTS=DIR [API_FUNCTIONS=N] node dashboard.mjs");
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

let failures = 0;
async function check(name, fn) {
  try {
    const note = await fn();
    console.log(`ok   ${name}${note ? `: ${note}` : ""}`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split("\n")[0] : e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const scoreText = (s) => (s == null ? "pending" : s <= -99999 ? "failed" : Number(s).toFixed(4));

const browser = await chromium.launch({ executablePath: env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
const origins = new Set([new URL(POOL).origin, new URL(MINER).origin]);
const problems = []; // script errors, dialogs, console errors, requests that leave the two servers

// A page that records what should never happen. expectHttpErrors: the page itself shows a 4xx on purpose.
async function openPage(label, { expectHttpErrors = false, context = ctx } = {}) {
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`${label}: script error: ${e.message}`));
  page.on("dialog", (d) => { problems.push(`${label}: dialog opened: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on("console", (m) => {
    if (m.type() === "error" && !(expectHttpErrors && /Failed to load resource/.test(m.text()))) problems.push(`${label}: console error: ${m.text()}`);
  });
  page.on("request", (r) => {
    const u = r.url();
    if (!/^(data|blob|about):/.test(u) && !origins.has(new URL(u).origin)) problems.push(`${label}: request outside the servers: ${u}`);
  });
  return page;
}
async function getJSON(url) {
  const r = await ctx.request.get(url, { headers: { Accept: "application/json" } });
  assert(r.ok(), `GET ${url}: HTTP ${r.status()}`);
  return r.json();
}
async function shot(page, name) {
  await page.evaluate(() => document.fonts.ready);
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}
const shots = [];

// ------------------------------------------------------------------ dashboard
const dash = await openPage("dashboard");
await check("(a) dashboard leaderboard rows equal /api/v1/leaderboard (ids, scores, order)", async () => {
  await dash.goto(`${POOL}/`);
  await dash.waitForSelector("#leaderboard tbody tr", { timeout: 10000 });
  let why = "";
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const api = (await getJSON(`${POOL}/api/v1/leaderboard`)).functions;
    const rows = await dash.$$eval("#leaderboard tbody tr", (trs) => trs.map((tr) => ({
      id: Number(tr.dataset.functionId), score: tr.dataset.score, rank: tr.cells[0].textContent.trim(),
      shown: tr.cells[3].textContent.trim(), href: tr.querySelector("a") && tr.querySelector("a").getAttribute("href"),
    })));
    why = "";
    if (rows.length !== api.length) why = `${rows.length} rows, the API has ${api.length}`;
    else {
      for (let i = 0; i < api.length && !why; i += 1) {
        const f = api[i], r = rows[i];
        if (r.id !== f.function_id) why = `row ${i + 1} is #${r.id}, the API's is #${f.function_id}`;
        else if (r.score !== String(f.score) || r.shown !== scoreText(f.score)) why = `row ${i + 1} (#${r.id}) shows ${r.shown}, the API says ${f.score}`;
        else if (r.rank !== String(i + 1)) why = `row ${i + 1} has rank ${r.rank}`;
        else if (r.href !== `/function/${f.function_id}`) why = `row ${i + 1} links to ${r.href}`;
      }
    }
    if (!why) return `${rows.length} rows, first #${rows[0].id} ${rows[0].shown}${attempt ? ` (after ${attempt} poll${attempt > 1 ? "s" : ""}: the pool changed meanwhile)` : ""}`;
    await sleep(5500); // the pool may have changed between the page's poll and ours: wait for the next poll
  }
  throw new Error(why);
});

await check("(b) dashboard charts drawn (uPlot canvases, sized, with the series' pixels)", async () => {
  await dash.waitForFunction(() => document.querySelectorAll(".uplot canvas").length >= 2, null, { timeout: 10000 });
  await sleep(300);
  const charts = await dash.$$eval(".chart", (els) => {
    const cs = getComputedStyle(document.documentElement);
    const rgb = (v) => { const m = v.trim().match(/^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i); return m ? m.slice(1).map((x) => parseInt(x, 16)) : null; };
    const colors = [rgb(cs.getPropertyValue("--series-1")), rgb(cs.getPropertyValue("--series-2"))].filter(Boolean);
    return els.map((el) => {
      const c = el.querySelector(".uplot canvas");
      if (!c) return { id: el.id, missing: true };
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let painted = 0, series = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] === 0) continue;
        painted += 1;
        if (d[i + 3] > 200 && colors.some((k) => Math.abs(d[i] - k[0]) + Math.abs(d[i + 1] - k[1]) + Math.abs(d[i + 2] - k[2]) < 40)) series += 1;
      }
      return { id: el.id, w: c.width, h: c.height, painted, series };
    });
  });
  const stats = await getJSON(`${POOL}/api/v1/stats`);
  const expectData = { "chart-best": (stats.best_over_time || []).length > 0,
    "chart-activity": (stats.submissions_per_hour || []).length + (stats.evaluations_per_hour || []).length > 0 };
  assert(charts.length >= 2, `${charts.length} chart containers`);
  for (const c of charts) {
    assert(!c.missing, `${c.id}: no uPlot canvas`);
    assert(c.w > 0 && c.h > 0, `${c.id}: canvas ${c.w}x${c.h}`);
    assert(c.painted > 0, `${c.id}: nothing painted`);
    if (expectData[c.id]) assert(c.series > 20, `${c.id}: the API has data but only ${c.series} pixels in the series' colours`);
  }
  return charts.map((c) => `${c.id} ${c.w}x${c.h}, ${c.painted} px painted, ${c.series} px of series`).join("; ");
});

if (API_FUNCTIONS != null && API_FUNCTIONS !== "") {
  await check(`(a2) the pool has API_FUNCTIONS=${API_FUNCTIONS} functions (stats, dashboard total, /api/v1/functions pages)`, async () => {
    const n = Number(API_FUNCTIONS);
    const stats = await getJSON(`${POOL}/api/v1/stats`);
    assert(stats.functions === n, `/api/v1/stats says ${stats.functions}`);
    const shown = await dash.$eval("#t-functions", (e) => e.textContent.replace(/[^0-9]/g, ""));
    assert(Number(shown) === n, `the dashboard shows ${shown}`);
    const ids = [];
    let after = null, pages = 0;
    do {
      const page = await getJSON(`${POOL}/api/v1/functions?limit=37${after == null ? "" : `&after=${after}`}`);
      pages += 1;
      for (const f of page.functions) {
        assert(!ids.length || f.function_id > ids[ids.length - 1], `page ${pages}: ids not increasing at #${f.function_id}`);
        ids.push(f.function_id);
      }
      assert(page.next_after == null || page.next_after > (after ?? -Infinity), `page ${pages}: next_after ${page.next_after} does not advance`);
      after = page.next_after;
      assert(pages < 10000, "more than 10000 pages");
    } while (after != null);
    assert(ids.length === n, `/api/v1/functions listed ${ids.length} in ${pages} pages`);
    return `${n} in ${pages} pages of 37`;
  });
}

shots.push(await shot(dash, "dashboard"));
await dash.emulateMedia({ colorScheme: "dark" });
await sleep(400); // the charts redraw in the dark theme's colours
shots.push(await shot(dash, "dashboard-dark"));
await dash.emulateMedia({ colorScheme: "light" });

// ------------------------------------------------------------------ function page
await check(`(c) /function/${FID} renders its formula (KaTeX in .formula) and its IR`, async () => {
  const page = await openPage("function");
  const resp = await page.goto(`${POOL}/function/${FID}`);
  assert(resp.status() === 200, `HTTP ${resp.status()}`);
  const api = await getJSON(`${POOL}/api/v1/functions/${FID}`);
  assert(api.formula, `the API has no formula for #${FID} (formula_error: ${api.formula_error}); pick a FUNCTION_ID with one`);
  await page.waitForSelector(".formula .katex, #formula-error:not([hidden])", { timeout: 10000 }).catch(() => {});
  await sleep(200);
  shots.push(await shot(page, "function"));
  await page.waitForSelector(".formula .katex", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("pre#ir") && document.querySelector("pre#ir").textContent.trim().length > 0, null, { timeout: 10000 });
  const got = await page.evaluate(() => {
    const k = document.querySelector(".formula .katex").getBoundingClientRect();
    const a = document.getElementById("download");
    return { kw: k.width, kh: k.height, ir: document.getElementById("ir").textContent, score: document.getElementById("fn-score").textContent,
      self: (document.querySelector(".lineage .node.self") || {}).textContent, download: a && !a.hidden ? [a.getAttribute("download"), a.href] : null };
  });
  assert(got.kw > 10 && got.kh > 5, `the formula is ${got.kw}x${got.kh} px`);
  if (api.ir != null) assert(got.ir === api.ir, "the IR shown differs from the API's");
  assert(got.self === `#${FID}`, `lineage shows ${got.self} for this function`);
  assert(got.score === scoreText(api.consensus_score), `consensus shows ${got.score}, the API says ${api.consensus_score}`);
  if (api.pytorch != null) {
    assert(got.download && /_\d+\.py$/.test(got.download[0]) && got.download[1].startsWith("blob:"), `download link ${JSON.stringify(got.download)}`);
  }
  await page.close();
  return `formula ${Math.round(got.kw)}x${Math.round(got.kh)} px, IR ${got.ir.split("\n").length} lines${got.download ? `, download ${got.download[0]}` : ""}`;
});

await check("(d) /function/999999999 answers 404 with a readable page", async () => {
  const page = await openPage("404", { expectHttpErrors: true });
  const resp = await page.goto(`${POOL}/function/999999999`);
  await sleep(300);
  shots.push(await shot(page, "404"));
  assert(resp.status() === 404, `HTTP ${resp.status()}`);
  assert(/text\/html/.test(resp.headers()["content-type"] || ""), `content-type ${resp.headers()["content-type"]}`);
  const text = (await page.evaluate(() => document.body ? document.body.innerText : "")).trim();
  assert(text.length >= 10, `the page's text is ${JSON.stringify(text)}`);
  await page.close();
  return JSON.stringify(text.replace(/\s+/g, " ").slice(0, 60));
});

// ------------------------------------------------------------------ miners page, injected HTML
await check("(e) miners' strings shown as text: no <img> injected on the miners page, dashboard and function page", async () => {
  const page = await openPage("miners");
  await page.goto(`${POOL}/miners`);
  await page.waitForSelector("#miners tbody tr", { timeout: 10000 });
  shots.push(await shot(page, "miners"));
  const miners = (await getJSON(`${POOL}/api/v1/miners`)).miners;
  const rows = await page.$$eval("#miners tbody tr", (trs) => trs.length);
  assert(rows === miners.length, `${rows} rows, the API has ${miners.length} miners`);
  const notes = [];
  for (const [label, p] of [["miners", page], ["dashboard", dash]]) {
    const r = await p.evaluate(() => ({ imgs: document.querySelectorAll("img, iframe, object, embed").length, htmlText: document.body.innerText.includes("<img") }));
    assert(r.imgs === 0, `${label}: ${r.imgs} injected elements`);
    if (r.htmlText) notes.push(`${label} shows "<img" as text`);
  }
  const fpage = await openPage("function-xss");
  await fpage.goto(`${POOL}/function/${FID}`);
  await fpage.waitForSelector(".formula .katex, #formula-error:not([hidden])", { timeout: 10000 });
  assert(await fpage.evaluate(() => document.querySelectorAll("img, iframe, object, embed").length) === 0, "function page: injected elements");
  await fpage.close();
  await page.close();
  return `${rows} miners${notes.length ? `; ${notes.join(", ")}` : ""}`;
});

// ------------------------------------------------------------------ load time
// Navigation start to the page's content present, LOADS times in one tab of a fresh context (the first
// with an empty cache); the tab is opened and left to settle first, so that the figures are the page's,
// not the browser's work for a new tab.
async function loadTimes(url, kind) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await openPage(`load ${kind}`, { context });
  await page.addInitScript((k) => {
    const ready = k === "dashboard"
      ? () => document.querySelector("#leaderboard tbody tr")
      : () => { const f = document.querySelector(".formula"); const ir = document.getElementById("ir"); return f && (f.querySelector(".katex") || f.hidden) && ir && ir.textContent; };
    const obs = new MutationObserver(() => { if (!window.__ncpcReady && ready()) { window.__ncpcReady = performance.now(); obs.disconnect(); } });
    obs.observe(document, { childList: true, subtree: true, characterData: true });
  }, kind);
  await page.goto("about:blank");
  await sleep(1000);
  const out = [];
  for (let i = 0; i < LOADS; i += 1) {
    await page.goto(url);
    await page.waitForFunction(() => window.__ncpcReady, null, { timeout: 10000 });
    out.push(await page.evaluate(() => ({ ready: window.__ncpcReady, load: performance.getEntriesByType("navigation")[0].loadEventEnd })));
  }
  await context.close();
  return out;
}
for (const [kind, url] of [["dashboard", `${POOL}/`], ["function", `${POOL}/function/${FID}`]]) {
  await check(`(f) ${kind} load: navigation start to ${kind === "dashboard" ? "leaderboard rows" : "formula and IR"} under ${BUDGET_MS} ms`, async () => {
    const t = await loadTimes(url, kind);
    const ready = t.map((x) => x.ready).sort((a, b) => a - b);
    const median = ready[Math.floor(ready.length / 2)];
    const fmt = (x) => `${x.toFixed(0)} ms`;
    const note = `cold ${fmt(t[0].ready)}, median of ${LOADS} ${fmt(median)}, max ${fmt(ready[ready.length - 1])} (load event: cold ${fmt(t[0].load)})`;
    assert(median < BUDGET_MS && t[0].ready < 2 * BUDGET_MS, note);
    return note;
  });
}

// ------------------------------------------------------------------ miner page
await check("(g) miner page: address shown, wrong token refused (403, shown on the page), Pause holds cycles, Resume", async () => {
  const mu = new URL(MINER);
  const origin = mu.origin;
  const token = new URLSearchParams(mu.hash.slice(1)).get("token");
  assert(token, "MINER_URL has no #token=...");
  const wrong = token.slice(0, -1) + (token.endsWith("0") ? "1" : "0");
  const state = async () => getJSON(`${origin}/api/state`);
  const lastCycle = (st) => Math.max(0, ...(st.cycles || []).map((c) => c.n));
  const waitFor = async (what, pred, ms) => {
    const end = Date.now() + ms;
    for (;;) {
      const st = await state();
      if (pred(st)) return st;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(250);
    }
  };
  const st0 = await state();
  assert(typeof st0.address === "string" && st0.address.length > 0, "no address in /api/state");
  const keys = JSON.stringify(st0, (k, v) => { if (/secret|seed|mnemonic|private/i.test(k)) throw new Error(`/api/state has a key "${k}"`); return v; });
  assert(!keys.includes(token), "/api/state contains the control token");
  const wasPaused = st0.paused;
  const notes = [];
  const page = await openPage("miner");
  await page.goto(MINER);
  await page.waitForFunction((a) => document.getElementById("address").textContent === a, st0.address, { timeout: 10000 });
  await sleep(500); // the charts
  shots.push(await shot(page, "miner"));
  try {
    // the API refuses a wrong or missing token
    for (const [what, headers] of [["wrong", { Authorization: `Bearer ${wrong}` }], ["missing", {}]]) {
      const r = await ctx.request.post(`${origin}/api/control`, { headers, data: { action: wasPaused ? "resume" : "pause" } });
      assert(r.status() === 403, `POST /api/control with a ${what} token: HTTP ${r.status()}, not 403`);
    }
    assert((await state()).paused === wasPaused, "a refused control changed the paused state");

    // the page with a wrong token shows the refusal
    const bad = await openPage("miner (wrong token)", { expectHttpErrors: true });
    await bad.goto(`${origin}/#token=${wrong}`);
    await bad.waitForFunction((a) => document.getElementById("address").textContent === a, st0.address, { timeout: 10000 });
    await bad.click(wasPaused ? "#resume" : "#pause", { timeout: 5000 });
    await bad.waitForSelector("#control-error", { state: "visible", timeout: 5000 });
    const refusal = (await bad.textContent("#control-error")).trim();
    assert(/403/.test(refusal), `the page shows ${JSON.stringify(refusal)}`);
    notes.push(`refusal shown: ${JSON.stringify(refusal)}`);
    await bad.close();
    assert((await state()).paused === wasPaused, "the refused click changed the paused state");

    // the right token: Pause, no new cycle for 3 s, Resume
    await page.reload();
    await page.waitForFunction((a) => document.getElementById("address").textContent === a, st0.address, { timeout: 10000 });
    if (wasPaused) {
      await page.click("#resume");
      await waitFor("paused: false after Resume", (s) => s.paused === false, 5000);
    }
    await page.click("#pause");
    const p = await waitFor("paused: true after Pause", (s) => s.paused === true, 5000);
    await page.waitForFunction(() => /paused/i.test(document.getElementById("state").textContent), null, { timeout: 5000 });
    // the running cycle (if any) finishes; then nothing new starts
    const startN = lastCycle(p);
    const settled = p.progress == null ? p
      : await waitFor("the running cycle to finish after Pause", (s) => s.progress == null || lastCycle(s) > startN, 120000);
    const n0 = lastCycle(settled);
    await sleep(3000);
    const held = await state();
    const n1 = lastCycle(held);
    assert(held.paused === true, "paused went back to false by itself");
    assert(n1 === n0, `paused, yet cycles went from ${n0} to ${n1} in 3 s`);
    notes.push(`paused at cycle ${n0}, still ${n1} after 3 s`);
    await page.click("#resume");
    await waitFor("paused: false after Resume", (s) => s.paused === false, 5000);
    await page.waitForFunction(() => /running/i.test(document.getElementById("state").textContent), null, { timeout: 5000 });
  } finally {
    await page.close();
    // leave the miner as it was found
    const now = await state().catch(() => null);
    if (now && now.paused !== wasPaused) {
      await ctx.request.post(`${origin}/api/control`, { headers: { Authorization: `Bearer ${token}` }, data: { action: wasPaused ? "pause" : "resume" } });
    }
  }
  return `address ${st0.address.slice(0, 8)}…; ${notes.join("; ")}`;
});

// ------------------------------------------------------------------ screenshots, stray behaviour
await check("(h) screenshots (PNG, 1280x800; dashboard also dark)", async () => {
  const want = ["dashboard", "dashboard-dark", "function", "404", "miners", "miner"].map((n) => join(SHOTS, `${n}.png`));
  const missing = want.filter((p) => !shots.includes(p) || !(statSync(p, { throwIfNoEntry: false }) || {}).size);
  assert(!missing.length, `missing: ${missing.join(", ")}`);
  return `${want.length} in ${SHOTS}`;
});

await check("(i) no script errors, dialogs, console errors or requests outside the two servers", async () => {
  assert(problems.length === 0, `${problems.length}: ${problems.slice(0, 3).join(" | ")}`);
});

await browser.close();
console.log(failures ? `${failures} check(s) failed` : "all checks passed");
process.exit(failures ? 1 : 0);
