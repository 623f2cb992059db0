// The pool's pages: dashboard (/), function (/function/{id}), miners (/miners).
// Data from /api/v1 (docs: the pool's JSON API); polled every 5 s and updated in place.
"use strict";

(() => {
  const { h, setText, setNode, syncRows, $, afterLibs, scoreText, scoreClass, ago, dateText, num, addrNode, getJSON, poll, axis, merge, chart } = ncpc;
  const POLL_MS = 5000;
  const fnHref = (id) => `/function/${Number(id)}`;
  const amount = (x) => (x == null ? "—" : Number(x).toLocaleString(undefined, { maximumFractionDigits: 4 }));

  function flash(tr) {
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("flash");
  }

  // ---------------------------------------------------------------- dashboard
  function dashboard() {
    const tbody = document.querySelector("#leaderboard tbody");
    const rows = new Map();
    tbody.addEventListener("click", (ev) => {
      if (ev.target.closest("a") || String(getSelection())) return;
      const tr = ev.target.closest("tr[data-function-id]");
      if (tr) location.href = fnHref(tr.dataset.functionId);
    });

    const makeRow = (f) => h("tr", { class: "link", "data-function-id": f.function_id },
      h("td", { class: "num" }),
      h("td", null, h("a", { href: fnHref(f.function_id) }, `#${f.function_id}`), h("span", { class: "sub" })),
      h("td", null, h("span", { class: "badge" })),
      h("td", { class: "num" }),
      h("td", { class: "num" }),
      h("td"),
      h("td"));
    const fillRow = (tr, f, rank) => {
      const c = tr.cells;
      setText(c[0], rank);
      setText(c[1].lastChild, f.name || "");
      c[1].lastChild.title = f.name || "";
      setText(c[2].firstChild, f.component_type);
      const score = String(f.score);
      if (tr.dataset.score !== undefined && tr.dataset.score !== score) flash(tr);
      tr.dataset.score = score;
      setText(c[3], scoreText(f.score));
      c[3].className = `num ${scoreClass(f.score)}`;
      setText(c[4], num(f.evaluations));
      setNode(c[5], f.evolver, () => addrNode(f.evolver));
      setText(c[6], ago(f.created_at));
      c[6].title = dateText(f.created_at);
    };

    let best = null;
    function renderLeaderboard(lb) {
      const fns = lb.functions || [];
      syncRows(tbody, rows, fns, (f) => f.function_id, makeRow, fillRow);
      $("leaderboard-empty").hidden = fns.length > 0;
      const top = fns.find((f) => f.score != null && f.score > ncpc.FAILED);
      best = top ? top.score : null;
      setText($("t-best"), best == null ? "—" : best.toFixed(4));

      const miners = (lb.miners || []).slice(0, 10);
      $("top-miners").tBodies[0].replaceChildren(...miners.map((m) =>
        h("tr", null, h("td", null, addrNode(m.public_address)), h("td", { class: "num" }, amount(m.balance)))));
      $("top-miners-empty").hidden = miners.length > 0;
    }

    let bestChart = null, activityChart = null;
    function renderStats(st) {
      setText($("t-functions"), num(st.functions));
      setText($("t-consensus"), num(st.consensus));
      setText($("t-evaluations"), num(st.evaluations));
      setText($("t-miners"), num(st.miners));
      if (!window.uPlot) return;
      // best consensus: a step that holds each value until the next rise, drawn up to now
      const pts = (st.best_over_time || []).filter((p) => p[1] != null && p[1] > ncpc.FAILED);
      if (pts.length) pts.push([Math.max(Date.now() / 1000, pts[pts.length - 1][0]), pts[pts.length - 1][1]]);
      const bestData = [pts.map((p) => p[0]), pts.map((p) => p[1])];
      const activity = merge([st.submissions_per_hour, st.evaluations_per_hour], null);
      if (!bestChart) {
        bestChart = chart($("chart-best"), (t) => ({
          scales: { x: { time: true }, y: { range: (u, lo, hi) => (lo == null ? [0, 1] : [Math.max(0, lo - 0.05), Math.min(1, hi + 0.05)]) } },
          series: [{}, { label: "best consensus", stroke: t.s1, width: 2, fill: `${t.s1}1f`,
            paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: (u, v) => (v == null ? "—" : v.toFixed(4)) }],
          axes: [axis(t), axis(t, { values: (u, vals) => vals.map((v) => v.toFixed(2)) })],
        }), bestData);
        const bars = (align) => uPlot.paths.bars({ size: [0.42, 28], align });
        activityChart = chart($("chart-activity"), (t) => ({
          scales: { x: { time: true, range: ncpc.hourRange }, y: { range: (u, lo, hi) => [0, Math.max(1, hi || 0) * 1.1] } },
          series: [{},
            { label: "submissions", stroke: t.s1, fill: `${t.s1}cc`, paths: bars(-1), points: { show: false } },
            { label: "evaluations", stroke: t.s2, fill: `${t.s2}cc`, paths: bars(1), points: { show: false } }],
          axes: [axis(t), axis(t, { values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? v : "")) })],
        }), activity);
      } else {
        bestChart.set(bestData);
        activityChart.set(activity);
      }
    }

    poll(() => Promise.all([
      getJSON("/api/v1/leaderboard").then(renderLeaderboard),
      getJSON("/api/v1/stats").then((st) => afterLibs(() => renderStats(st))),
    ]), POLL_MS);
  }

  // ---------------------------------------------------------------- function page
  function functionPage() {
    const m = location.pathname.match(/^\/function\/(\d+)\/?$/);
    const id = m ? Number(m[1]) : NaN;
    setText($("fn-title"), `Function #${m ? m[1] : "?"}`);
    let shown = false, lineageKey = null, gone = false;

    function renderOnce(f) {
      document.title = `ncpc pool · function #${f.function_id}`;
      setText($("fn-type"), f.component_type);
      setText($("fn-name"), f.name || "—");
      setText($("fn-created"), `${dateText(f.created_at)} (${ago(f.created_at)})`);
      setText($("fn-evolver"), f.evolver == null ? "—" : f.evolver);

      const box = $("formula");
      if (f.formula) {
        if (window.katex && f.formula.latex != null) {
          katex.render(String(f.formula.latex), box, { displayMode: true, throwOnError: false, trust: false, strict: "ignore", maxExpand: 1000, maxSize: 20 });
        } else {
          setText(box, f.formula.plain);
        }
        setText($("formula-plain"), f.formula.plain);
      } else {
        box.hidden = true;
        $("formula-plain").parentNode.hidden = true;
        const err = $("formula-error");
        setText(err, `No formula: ${f.formula_error || "none was derived for this function."}`);
        err.hidden = false;
      }

      const prog = f.function;
      setText($("program"), Array.isArray(prog)
        ? `[\n${prog.map((ins) => `  ${JSON.stringify(ins)}`).join(",\n")}\n]`
        : JSON.stringify(prog, null, 2));
      setText($("ir"), f.ir == null ? "(no IR: the program does not compile)" : f.ir);

      if (f.pytorch != null) {
        const a = $("download");
        const kind = /^[a-z_]+$/.test(f.component_type || "") ? f.component_type : "function";
        a.href = URL.createObjectURL(new Blob([f.pytorch], { type: "text/x-python" }));
        a.download = `${kind}_${f.function_id}.py`;
        a.hidden = false;
      }
    }

    function renderLineage(f) {
      const kids = f.children || [];
      const key = `${f.parent_id}|${kids.join(",")}`;
      if (key === lineageKey) return;
      lineageKey = key;
      const node = (fid) => h("a", { class: "node", href: fnHref(fid) }, `#${fid}`);
      const none = (text) => h("span", { class: "node none" }, text);
      const arrow = () => h("span", { class: "arrow", "aria-hidden": "true" }, "→");
      const max = 30;
      $("lineage").replaceChildren(
        f.parent_id == null ? none("no parent (seed)") : node(f.parent_id),
        arrow(),
        h("span", { class: "node self", "aria-current": "page" }, `#${f.function_id}`),
        arrow(),
        h("div", { class: "group" },
          kids.length ? kids.slice(0, max).map(node) : none("no children yet"),
          kids.length > max ? none(`+${kids.length - max} more`) : null));
    }

    function renderLive(f) {
      const sc = $("fn-score");
      setText(sc, scoreText(f.consensus_score));
      sc.className = scoreClass(f.consensus_score);
      setText($("fn-evals"), num(f.evaluation_count));
      renderLineage(f);
      const evs = f.evaluations || [];
      const cons = f.consensus_score != null && f.consensus_score > ncpc.FAILED ? f.consensus_score : null;
      $("evaluations").tBodies[0].replaceChildren(...evs.map((e) => h("tr", null,
        h("td", { class: "mono" }, e.evaluator == null ? "—" : e.evaluator),
        h("td", { class: `num ${scoreClass(e.score)}` }, scoreText(e.score)),
        h("td", { class: "num muted" }, cons == null || e.score == null || e.score <= ncpc.FAILED
          ? "—" : `${e.score - cons >= 0 ? "+" : "−"}${Math.abs(e.score - cons).toFixed(4)}`),
        h("td", { title: dateText(e.created_at) }, ago(e.created_at)))));
      $("evaluations-empty").hidden = evs.length > 0;
    }

    if (!m) { gone = true; }
    poll(async () => {
      if (gone) return;
      let f;
      try {
        f = await getJSON(`/api/v1/functions/${id}`);
      } catch (e) {
        if (e.status === 404) {
          gone = true;
          const err = $("fn-error");
          setText(err, `This pool has no function #${id}.`);
          err.hidden = false;
        }
        throw e;
      }
      afterLibs(() => {
        if (!shown) { renderOnce(f); shown = true; }
        renderLive(f);
      });
    }, POLL_MS);
  }

  // ---------------------------------------------------------------- miners page
  function minersPage() {
    const tbody = $("miners").tBodies[0];
    const rows = new Map();
    const makeRow = () => h("tr", null,
      h("td", { class: "num" }), h("td", { class: "mono wrap" }),
      h("td", { class: "num" }), h("td", { class: "num" }), h("td", { class: "num" }), h("td", { class: "num" }));
    const fillRow = (tr, m, rank) => {
      const c = tr.cells;
      setText(c[0], rank);
      setText(c[1], m.public_address);
      const bal = String(m.balance);
      if (tr.dataset.balance !== undefined && tr.dataset.balance !== bal) flash(tr);
      tr.dataset.balance = bal;
      setText(c[2], amount(m.balance));
      setText(c[3], num(m.functions_evolved));
      setText(c[4], num(m.evaluations));
      setText(c[5], m.agreement == null ? "—" : `${(m.agreement * 100).toFixed(1)} %`);
    };
    poll(async () => {
      const data = await getJSON("/api/v1/miners");
      const miners = data.miners || [];
      syncRows(tbody, rows, miners, (m) => m.public_address, makeRow, fillRow);
      $("miners-empty").hidden = miners.length > 0;
      setText($("miners-count"), `${miners.length}`);
    }, POLL_MS);
  }

  const page = document.body.dataset.page;
  if (page === "dashboard") dashboard();
  else if (page === "function") functionPage();
  else if (page === "miners") minersPage();
})();
