// The local miner page (ncpc mine --ui): state from GET /api/state (polled), controls by
// POST /api/control with the token from this page's fragment (#token=HEX), which never reaches a server log.
"use strict";

(() => {
  const { h, setText, syncRows, $, afterLibs, ago, dateText, num, getJSON, poll, axis, chart, detailText } = ncpc;
  const POLL_MS = 2000;
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  $("token-hint").hidden = token !== "";

  let state = null, busy = false, dirty = false;
  const form = $("settings");

  function showError(text) {
    const el = $("control-error");
    setText(el, text || "");
    el.hidden = !text;
  }

  function buttons() {
    const paused = !!(state && state.paused);
    $("pause").disabled = busy || !state || paused;
    $("resume").disabled = busy || !state || !paused;
    $("s-apply").disabled = busy || !state;
  }

  async function control(body) {
    busy = true;
    buttons();
    showError(null);
    try {
      const r = await fetch("/api/control", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
        cache: "no-store",
      });
      let data = null;
      try { data = await r.json(); } catch (_) { /* not JSON */ }
      if (!r.ok) {
        showError(`Refused (${r.status}): ${detailText(data) || r.statusText || "no reason given"}`);
        return false;
      }
      render(data);
      return true;
    } catch (e) {
      showError(`The miner did not answer: ${e.message}`);
      return false;
    } finally {
      busy = false;
      buttons();
    }
  }

  $("pause").addEventListener("click", () => control({ action: "pause" }));
  $("resume").addEventListener("click", () => control({ action: "resume" }));
  form.addEventListener("input", () => { dirty = true; $("s-saved").hidden = true; });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { action: "set", task_type: $("s-task").value, alternate: $("s-alternate").checked };
    if ($("s-delay").value !== "") body.delay = Number($("s-delay").value);
    const ok = await control(body);
    if (ok) {
      dirty = false;
      render(state);
      $("s-saved").hidden = false;
      setTimeout(() => { $("s-saved").hidden = true; }, 2500);
    }
  });

  const OUTCOME = { evolved: "good", evaluated: "good", not_submitted: "warn", released: "warn", abandoned: "bad", error: "bad" };
  const cycleRows = new Map();
  const makeCycleRow = () => h("tr", null,
    h("td", { class: "num" }), h("td"), h("td", null, h("span", { class: "badge" })),
    h("td", { class: "num" }), h("td", { class: "num" }), h("td"), h("td", { class: "mono line" }));
  const fillCycleRow = (tr, c) => {
    const td = tr.cells;
    setText(td[0], c.n);
    setText(td[1], c.task_type);
    setText(td[2].firstChild, String(c.outcome).replace(/_/g, " "));
    td[2].firstChild.className = `badge ${OUTCOME[c.outcome] || ""}`;
    setText(td[3], num(c.seconds, 1));
    setText(td[4], c.fitness == null ? "—" : Number(c.fitness).toFixed(4));
    setText(td[5], ago(c.finished_at));
    td[5].title = dateText(c.finished_at);
    setText(td[6], c.line);
    td[6].title = c.line || "";
  };

  let balanceChart = null, cyclesChart = null;
  function charts(st) {
    if (!window.uPlot) return;
    const bal = (st.balance || []).slice();
    if (bal.length) bal.push([Math.max(Date.now() / 1000, bal[bal.length - 1][0]), bal[bal.length - 1][1]]);
    const balData = [bal.map((p) => p[0]), bal.map((p) => p[1])];
    const cyc = (st.cycles || []).slice().sort((a, b) => a.n - b.n).slice(-200);
    const cycData = [cyc.map((c) => c.n), cyc.map((c) => c.seconds), cyc.map((c) => (c.fitness == null ? null : c.fitness))];
    if (balanceChart) {
      balanceChart.set(balData);
      cyclesChart.set(cycData);
      return;
    }
    balanceChart = chart($("chart-balance"), (t) => ({
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi || 0) * 1.1] } },
      series: [{}, { label: "balance", stroke: t.s1, width: 2, fill: `${t.s1}1f`, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
      axes: [axis(t), axis(t)],
    }), balData);
    cyclesChart = chart($("chart-cycles"), (t) => ({
      scales: { x: { time: false, range: (u, lo, hi) => (lo == null ? [0, 1] : [lo - 0.5, hi + 0.5]) }, s: { range: (u, lo, hi) => [0, Math.max(1, hi || 0) * 1.1] }, fit: { range: [0, 1] } },
      series: [{ label: "cycle" },
        { label: "seconds", scale: "s", stroke: t.s1, fill: `${t.s1}aa`, paths: uPlot.paths.bars({ size: [0.6, 18] }), points: { show: false } },
        { label: "fitness", scale: "fit", stroke: t.s2, width: 0, paths: () => null, points: { show: true, size: 7, fill: t.s2 } }],
      axes: [axis(t, { label: "cycle", labelSize: 18, values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? v : "")) }),
        axis(t, { scale: "s", label: "seconds", labelSize: 18 }),
        axis(t, { scale: "fit", side: 1, label: "fitness", labelSize: 18, grid: { show: false } })],
    }), cycData);
  }

  function render(st) {
    if (!st) return;
    state = st;
    setText($("address"), st.address);
    setText($("pool-url"), st.pool_url);
    const link = $("pool-link");
    if (/^https?:\/\//i.test(st.pool_url || "")) { link.href = st.pool_url; link.hidden = false; } else link.hidden = true;
    const badge = $("state");
    setText(badge, st.paused ? "paused" : "running");
    badge.className = `badge ${st.paused ? "warn" : "good"}`;
    buttons();

    const s = st.settings || {};
    if (!dirty) {
      $("s-task").value = s.task_type === "evaluate" ? "evaluate" : "evolve";
      $("s-alternate").checked = !!s.alternate;
      $("s-delay").value = s.delay == null ? "" : String(s.delay);
    }

    const p = st.progress;
    const bar = $("progress-bar");
    if (p) {
      setText($("progress-line"), p.line);
      setText($("p-cycle"), num(p.cycle));
      setText($("p-task"), p.task_type);
      setText($("p-generation"), p.generation != null && p.generations ? `${p.generation} / ${p.generations}` : "—");
      setText($("p-best"), p.best == null ? "—" : Number(p.best).toFixed(4));
      setText($("p-rate"), p.candidates_per_s == null ? "—" : Number(p.candidates_per_s).toFixed(1));
      if (p.generation != null && p.generations) { bar.max = p.generations; bar.value = p.generation; } else bar.removeAttribute("value");
    } else {
      setText($("progress-line"), st.paused ? "paused: no cycle running" : "waiting for the next cycle");
      for (const id of ["p-cycle", "p-task", "p-generation", "p-best", "p-rate"]) setText($(id), "—");
      bar.max = 1;
      bar.value = 0;
    }

    const cycles = (st.cycles || []).slice().sort((a, b) => b.n - a.n).slice(0, 100);
    syncRows($("cycles").tBodies[0], cycleRows, cycles, (c) => c.n, makeCycleRow, fillCycleRow);
    $("cycles-empty").hidden = cycles.length > 0;
    charts(st);
  }

  poll(async () => { const st = await getJSON("/api/state"); afterLibs(() => render(st)); }, POLL_MS);
})();
