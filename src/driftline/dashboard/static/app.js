// The live page: Server-Sent Events from /events drawn with the vendored uPlot. No other origin.
"use strict";
(function () {
  const MAX = 3600;                       // points kept per chart (an hour at one a second)
  const $ = (id) => document.getElementById(id);
  const state = {
    t: [], pred: [], learned: [], backF: [], backL: [], lag: [],
    variants: [], metric: null, mvals: {}, drifts: [], versions: [],
  };
  const width = (el) => Math.max(320, el.clientWidth - 8);

  function markers(u) {                  // drift markers and version changes on the metric chart
    const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
    ctx.save();
    for (const [list, colour, dash] of [[state.versions, "#888", [4, 4]], [state.drifts, "#d33", []]]) {
      ctx.strokeStyle = colour; ctx.setLineDash(dash); ctx.lineWidth = 2;
      for (const m of list) {
        const x = u.valToPos(m.t, "x", true);
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
      }
    }
    ctx.restore();
  }

  function make(el, series, hooks) {
    return new uPlot({
      width: width(el), height: 200, series: [{}, ...series], scales: { x: { time: true } },
      hooks: hooks || {}, legend: { live: false },
    }, [[]].concat(series.map(() => [])), el);
  }

  const colours = ["#3465a4", "#e0884a", "#2a7", "#a4a", "#c33", "#777"];
  const charts = {
    throughput: make($("throughput"), [{ label: "predictions/s", stroke: colours[0] }, { label: "learned/s", stroke: colours[1] }]),
    backlog: make($("backlog"), [{ label: "pending features", stroke: colours[0] },
                                 { label: "pending labels", stroke: colours[1] }, { label: "lag", stroke: colours[4] }]),
    metrics: null,
  };

  function metricChart() {
    const el = $("metrics");
    if (charts.metrics) charts.metrics.destroy();
    charts.metrics = make(el, state.variants.map((v, i) => ({ label: v, stroke: colours[i % colours.length] })),
                          { draw: [markers] });
  }

  function trim(arr) { if (arr.length > MAX) arr.splice(0, arr.length - MAX); }

  function onTick(d) {
    const s = state;
    s.t.push(d.t); s.pred.push(d.predictions_per_s); s.learned.push(d.learned_per_s);
    s.backF.push(d.backlog.features); s.backL.push(d.backlog.labels); s.lag.push(d.lag);
    const champion = d.metrics.champion || {};
    if (s.metric === null) {
      s.metric = ["accuracy", "mae", "rmse"].find((m) => m in champion) || Object.keys(champion)[0] || null;
      $("metric-name").textContent = s.metric || "metric";
    }
    let rebuilt = false;
    for (const v of Object.keys(d.metrics)) {
      if (!s.variants.includes(v)) { s.variants.push(v); s.mvals[v] = s.t.slice(0, -1).map(() => null); rebuilt = true; }
    }
    for (const v of s.variants) {
      const m = d.metrics[v]; s.mvals[v].push(m && s.metric in m ? m[s.metric] : null);
    }
    for (const a of [s.t, s.pred, s.learned, s.backF, s.backL, s.lag, ...Object.values(s.mvals)]) trim(a);
    if (rebuilt || !charts.metrics) metricChart();
    charts.throughput.setData([s.t, s.pred, s.learned]);
    charts.backlog.setData([s.t, s.backF, s.backL, s.lag]);
    charts.metrics.setData([s.t, ...s.variants.map((v) => s.mvals[v])]);
    for (const id of ["throughput", "backlog", "metrics"]) $(id).dataset.points = String(s.t.length);
    $("learned").textContent = d.n_learned + " examples learned";
    $("model").textContent = d.model;
  }

  function item(list, text, attrs) {
    const li = document.createElement("li");
    li.textContent = text;
    for (const [k, v] of Object.entries(attrs)) li.setAttribute(k, v);
    $(list).prepend(li);
  }

  function onVersion(d) {
    $("version-badge").textContent = "v" + d.to;
    if (d.from !== null) {
      state.versions.push({ t: d.t, to: d.to });
      item("version-list", new Date(d.t * 1000).toLocaleTimeString() + "  v" + d.from + " → v" + d.to,
           { "class": "version-change", "data-version": String(d.to) });
    }
    if (charts.metrics) charts.metrics.redraw();
  }

  function onDrift(d) {
    state.drifts.push({ t: d.t, id: d.id });
    const feats = d.features && d.features.length ? " [" + d.features.join(", ") + "]" : "";
    item("drift-list", d.id + ": " + d.kind + " by " + d.detector + " at " + d.position + ", v" + d.model_version
         + ", action " + d.action + feats, { "class": "drift-marker", "data-drift-id": d.id, title: JSON.stringify(d.statistic) });
    if (charts.metrics) charts.metrics.redraw();
  }

  function fmt(x) { return x === null || x === undefined ? "-" : (Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(2) : (+x).toPrecision(3)); }

  function onFeatures(d) {
    const body = $("feature-table").tBodies[0];
    body.textContent = "";
    const rows = Object.entries(d.features).sort((a, b) => b[1].statistic - a[1].statistic);
    for (const [name, f] of rows) {
      const tr = body.insertRow();
      tr.className = f.drift ? "drift" : "";
      tr.dataset.feature = name;
      for (const v of [name, f.test, fmt(f.statistic), fmt(f.p_adjusted), fmt(f.psi), f.drift ? "drifting" : "ok"]) {
        tr.insertCell().textContent = v;
      }
    }
  }

  function onImportance(d) {
    const el = $("importance");
    el.textContent = "";
    const rows = Object.entries(d.importances).sort((a, b) => b[1] - a[1]).slice(0, 12);
    const top = rows.length ? Math.max(...rows.map((r) => Math.abs(r[1])), 1e-12) : 1;
    for (const [name, v] of rows) {
      const div = document.createElement("div");
      div.className = "imp";
      div.textContent = name + " " + fmt(v);
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = Math.round(200 * Math.abs(v) / top) + "px";
      div.appendChild(bar);
      el.appendChild(div);
    }
  }

  const source = new EventSource("/events");
  const handlers = { tick: onTick, version: onVersion, drift: onDrift, features: onFeatures, importance: onImportance };
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  source.onopen = () => { $("status").textContent = "live"; $("status").className = "badge live"; };
  source.onerror = () => { $("status").textContent = "reconnecting…"; $("status").className = "badge"; };
  window.addEventListener("resize", () => {
    for (const c of Object.values(charts)) if (c) c.setSize({ width: width(c.root.parentNode), height: 200 });
  });
})();
