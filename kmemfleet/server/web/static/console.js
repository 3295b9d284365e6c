// kmemfleet console: plain JavaScript, no build step. Each page reads the JSON API
// (docs/web.md) and draws its tables and uPlot charts. Every view's state is in its
// URL, so a pasted link reloads the same view. Data reaches the DOM as text only.
"use strict";
(function () {
  const kmf = (window.kmf = { charts: {}, page: document.body.dataset.page, ready: false });
  const app = document.getElementById("app");
  const logBox = document.getElementById("logscale");
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  // ---- small helpers ---------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }
  // A two-column list of facts: [label, value, label, value, ...].
  function kv(id, ...items) {
    return el("div", { class: "kv", id }, items.map((x, i) => el("span", { class: i % 2 ? "v" : "k" }, x)));
  }
  function params() { return new URLSearchParams(location.search); }
  function fmtBytes(n) {
    if (n === null || n === undefined) return "-";
    const a = Math.abs(n), units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = a;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (n < 0 ? "-" : "") + (i ? v.toFixed(1) : String(Math.round(v))) + " " + units[i];
  }
  function fmtRate(n) { return n === null || n === undefined ? "-" : (n / 1024).toFixed(1); }
  function fmtHours(h) {
    if (!h || h <= 0) return "-";
    return h < 96 ? h.toFixed(0) + " h" : (h / 24).toFixed(0) + " d";
  }
  function fmtAge(s) {
    return s < 120 ? Math.round(s) + " s" : s < 7200 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
  }
  function short(sig, n) {
    const s = sig.split(" <- ").slice(0, n || 3).join(" <- ");
    return s.length > 90 ? s.slice(0, 87) + "..." : s;
  }
  function link(path, q, text) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(q || {})) if (v !== "" && v !== undefined) u.set(k, v);
    const qs = u.toString();
    return el("a", { href: path + (qs ? "?" + qs : "") }, text);
  }
  function stackLink(firmware, subject, signature, text) {
    return link("/stack", { firmware, subject, signature }, text || short(signature));
  }
  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("not logged in");
    }
    const doc = await r.json();
    if (!r.ok) throw new Error((doc.error && doc.error.message) || r.statusText);
    return doc;
  }
  function setParams(updates, push) {
    const p = params();
    for (const [k, v] of Object.entries(updates)) {
      if (v === "" || v === null || v === undefined) p.delete(k); else p.set(k, v);
    }
    const url = location.pathname + (p.toString() ? "?" + p : "");
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  }

  // ---- tables: sortable by clicking a header; the main table's sort is in the URL ----
  function table(id, columns, rows, opts) {
    opts = opts || {};
    const state = { key: opts.sort || null, desc: opts.order !== "asc" };
    const tbody = el("tbody");
    const heads = columns.map((c) => el("th", {
      class: (c.num ? "num " : "") + (c.sort === false ? "" : "sortable"),
      "data-key": c.key, text: c.label,
      onclick: c.sort === false ? null : () => {
        state.desc = state.key === c.key ? !state.desc : !!c.num;
        state.key = c.key;
        if (opts.url) setParams({ sort: state.key, order: state.desc ? "desc" : "asc" });
        fill();
      },
    }));
    function value(row, c) { return c.value ? c.value(row) : row[c.key]; }
    function fill() {
      let shown = rows.slice();
      const c = columns.find((x) => x.key === state.key);
      if (c) {
        shown.sort((a, b) => {
          const x = value(a, c), y = value(b, c);
          const r = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
          return state.desc ? -r : r;
        });
      }
      heads.forEach((h) => {
        h.classList.remove("sorted-asc", "sorted-desc");
        if (h.dataset.key === state.key) h.classList.add(state.desc ? "sorted-desc" : "sorted-asc");
      });
      tbody.replaceChildren(...shown.map((row) => {
        const tr = el("tr", { class: opts.rowClass ? opts.rowClass(row) : null,
                              "data-signature": row.signature, "data-key": opts.rowKey ? opts.rowKey(row) : null },
          columns.map((col) => {
            const v = col.render ? col.render(row) : value(row, col);
            return el("td", { class: (col.num ? "num " : "") + (col.cls || "") }, v);
          }));
        return tr;
      }));
      if (opts.after) opts.after();
    }
    fill();
    const t = el("table", { id }, el("thead", {}, el("tr", {}, heads)), tbody);
    t.refill = fill;
    return t;
  }

  // ---- charts (uPlot): drag to zoom, double-click to reset, hover shows values ----
  function chart(id, parent, spec) {
    const log = spec.bytes && logBox.checked;
    const fix = (v) => (v === null || v === undefined || (log && v <= 0) ? null : v);
    const data = [spec.x, ...spec.series.map((s) => s.values.map(fix))];
    const bytesAxis = { values: (u, ticks) => ticks.map((t) => fmtBytes(t)), size: 70 };
    const opts = {
      width: spec.width || 760, height: spec.height || 260,
      title: spec.title,
      scales: { x: { time: !!spec.time }, y: { distr: log ? 3 : 1 } },
      axes: spec.spark ? [{ show: false }, { show: false }]
        : [{ label: spec.xLabel }, Object.assign({ label: spec.yLabel }, spec.bytes ? bytesAxis : {})],
      legend: { show: !spec.spark && !spec.small },
      cursor: spec.spark ? { show: true, x: false, y: false, points: { show: false } } : { drag: { x: true, y: false } },
      series: [{ label: spec.xLabel || "x", value: spec.time ? undefined : (u, v) => (v === null ? "-" : v.toFixed(2)) },
        ...spec.series.map((s, i) => ({
          label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: s.width || 1.5,
          dash: s.dash, spanGaps: true, points: { show: false },
          value: spec.bytes ? (u, v) => fmtBytes(v) : undefined,
        }))],
    };
    // Sparklines and the diff's small charts have no legend: one line under them
    // reads out the values under the cursor instead.
    const readout = spec.spark || spec.small ? el("div", { class: "readout", id: "readout-" + id }) : null;
    // As wide as the chart, never wider: a readout that widened its table column
    // would move the chart from under the cursor.
    if (readout) readout.style.width = opts.width + "px";
    if (readout) opts.hooks = { setCursor: [(u) => { readout.textContent = cursorText(u, spec); }] };
    if (kmf.charts[id]) kmf.charts[id].destroy();
    const box = el("div", { class: spec.spark ? "spark" : "chart", id: "chart-" + id, title: spec.tooltip || null });
    parent.append(box);
    if (readout) parent.append(readout);
    const u = new uPlot(opts, data, box);
    kmf.charts[id] = u;
    return u;
  }
  function cursorText(u, spec) {
    const i = u.cursor.idx;
    if (i === null || i === undefined) return "";
    const x = u.data[0][i];
    const at = spec.time ? new Date(x * 1000).toLocaleString() : (+x).toFixed(1) + " h";
    const values = spec.series.flatMap((s, k) => {
      if (s.readout === false) return [];
      const v = u.data[k + 1][i];
      return [s.label + " " + (v === null || v === undefined ? "-" : spec.bytes ? fmtBytes(v) : String(v))];
    });
    return at + ": " + values.join(", ");
  }
  // Series on different x grids (one per boot or version) on one shared, sorted x.
  function union(curves, xKey, yKey) {
    const xs = Array.from(new Set(curves.flatMap((c) => c[xKey]))).sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const ys = curves.map((c) => {
      const v = new Array(xs.length).fill(null);
      c[xKey].forEach((x, i) => { v[at.get(x)] = c[yKey][i]; });
      return v;
    });
    return { x: xs, ys };
  }

  // ---- pages ------------------------------------------------------------------
  async function fleetPage() {
    const doc = await api("/api/v1/fleet" + (params().get("hours") ? "?hours=" + encodeURIComponent(params().get("hours")) : ""));
    document.title = "kmemfleet: fleet";
    const versions = doc.firmware.map((f) => f.firmware_version);
    app.replaceChildren(el("h1", { text: "Fleet" }));
    app.append(table("firmware", [
      { key: "firmware_version", label: "Firmware", render: (r) => link("/firmware/" + encodeURIComponent(r.firmware_version), {}, r.firmware_version) },
      { key: "devices", label: "Devices", num: true },
      { key: "reporting_last_hour", label: "Reporting (1 h)", num: true },
      { key: "devices_analysed", label: "Analysed", num: true },
      { key: "leaking_stacks", label: "Leaking stacks", num: true },
      { key: "leaking_slab_caches", label: "Leaking caches", num: true },
      { key: "diff", label: "Diff", sort: false, render: (r) => {
        const i = versions.indexOf(r.firmware_version);
        return i + 1 < versions.length ? link("/diff", { base: versions[i + 1], target: r.firmware_version }, "vs " + versions[i + 1]) : "-";
      } },
    ], doc.firmware, { url: true, sort: params().get("sort"), order: params().get("order"), rowKey: (r) => r.firmware_version }));
    app.append(el("h2", { text: "Slab memory per device (meminfo Slab), mean per firmware, last " + doc.slab.hours + " h" }));
    // Computed in the background: say how old it is, and when refreshing it fails.
    app.append(el("p", { class: doc.slab.refresh_failed_at ? "error" : "muted", id: "slab-age",
      text: "Computed " + fmtAge(doc.slab.age_s) + " ago" +
        (doc.slab.refresh_failed_at ? "; refreshing it failed at " + new Date(doc.slab.refresh_failed_at * 1000).toLocaleTimeString() + ", showing the last result" : "") + "." }));
    if (doc.slab.t.length) {
      chart("fleet-slab", app, {
        x: doc.slab.t, time: true, bytes: true, yLabel: "slab bytes",
        series: doc.slab.series.map((s) => ({ label: s.firmware_version, values: s.mean_slab_bytes })),
      });
    } else app.append(el("p", { class: "muted", text: "No snapshots in that window." }));
  }

  function leakColumns(firmware, chartIds) {
    return [
      { key: "rank", label: "#", num: true },
      { key: "signature", label: "Stack / slab cache", cls: "sig", render: (e) =>
        stackLink(firmware, e.subject, e.signature, e.subject === "slab_cache" ? "slab:" + e.slab_cache : short(e.signature)) },
      { key: "kind", label: "Kind", render: (e) => e.kind || "-" },
      { key: "curve", label: "Bytes vs uptime", sort: false, render: (e) => {
        const span = el("span", { class: "spark-cell", "data-rank": e.rank });
        chartIds.push([span, e]);
        return span;
      } },
      { key: "devices_leaking", label: "Devices", num: true, render: (e) =>
        (e.devices_leaking_matching !== undefined ? e.devices_leaking_matching + " of " : "") + e.devices_leaking + "/" + e.devices_observed },
      { key: "share_leaking", label: "Share", num: true, render: (e) => (e.share_leaking * 100).toFixed(0) + "%" },
      { key: "median_slope_bytes_per_hour", label: "KiB/h", num: true, render: (e) => fmtRate(e.median_slope_bytes_per_hour) },
      { key: "p90_slope_bytes_per_hour", label: "p90 KiB/h", num: true, render: (e) => fmtRate(e.p90_slope_bytes_per_hour) },
      { key: "total_leaked_bytes", label: "Leaked", num: true, render: (e) => fmtBytes(e.total_leaked_bytes) },
      { key: "projected_hours_to_exhaust", label: "Exhaust", num: true, value: (e) => e.projected_hours_to_exhaust || 1e12, render: (e) => fmtHours(e.projected_hours_to_exhaust) },
      { key: "first_seen_firmware", label: "First seen" },
      { key: "confidence", label: "Conf", num: true, render: (e) => e.confidence.toFixed(2) },
      { key: "score", label: "Score", num: true, render: (e) => e.score.toFixed(1) },
    ];
  }
  // Curves come after the ranking (a second, cached call): the table shows first.
  // Keyed by Maps, never plain objects: a signature or cache name comes from the
  // devices, and "constructor" or "__proto__" must look up as what they are.
  async function fetchCurves(firmware, entries) {
    const out = new Map();
    for (const subject of ["stack", "slab_cache"]) {
      const sigs = Array.from(new Set(entries.filter((e) => e.subject === subject).map((e) => e.signature)));
      for (let i = 0; i < sigs.length; i += 50) {
        const q = new URLSearchParams({ firmware, subject });
        sigs.slice(i, i + 50).forEach((s) => q.append("signature", s));
        const doc = await api("/api/v1/curves?" + q);
        if (!out.has(subject)) out.set(subject, new Map());
        for (const [sig, c] of Object.entries(doc.curves)) out.get(subject).set(sig, c);
      }
    }
    return out;
  }
  function curveOf(curves, subject, signature) {
    const bySig = curves ? curves.get(subject) : undefined;
    return bySig ? bySig.get(signature) : undefined;
  }
  function sparks(cells, curves) {
    for (const [span, e] of cells) {
      span.replaceChildren();
      if (!curves) { span.append(el("span", { class: "muted", text: "\u2026" })); continue; }
      const c = curveOf(curves, e.subject, e.signature);
      if (!c) { span.append(el("span", { class: "muted", text: "no points" })); continue; }
      chart("spark-" + e.rank, span, {
        spark: true, width: 160, height: 36, bytes: true, x: c.uptime_h,
        tooltip: "median " + fmtBytes(c.median[c.median.length - 1]) + " at " + c.uptime_h[c.uptime_h.length - 1] + " h uptime",
        series: [{ label: "p10", values: c.p10, color: "#9ab", width: 1, readout: false },
                 { label: "median", values: c.median, color: "#d62728", width: 1.5 },
                 { label: "p90", values: c.p90, color: "#9ab", width: 1, readout: false }],
      });
    }
  }

  async function firmwarePage() {
    const firmware = decodeURIComponent(location.pathname.split("/")[2] || "");
    const p = params();
    const q = new URLSearchParams();
    for (const k of ["top", "module", "subject", "label", "hardware_model", "saturating"]) if (p.get(k)) q.set(k, p.get(k));
    const doc = await api("/api/v1/firmware/" + encodeURIComponent(firmware) + "/leaks?" + q);
    document.title = "kmemfleet: " + firmware + " leaks";
    const entries = doc.entries.map((e, i) => Object.assign({ rank: i + 1 }, e));
    app.replaceChildren(el("h1", { text: "Firmware " + firmware + ": leaking stacks and slab caches" }),
      el("p", { class: "muted", text: doc.devices + " devices analysed; rate = median over leaking devices; " +
        entries.length + " rows" }));
    const moduleSel = el("select", { id: "f-module", name: "module" }, el("option", { value: "", text: "any" }),
      doc.modules.filter((m) => m).map((m) => el("option", { value: m, text: m, selected: m === doc.filters.module })));
    const subjectSel = el("select", { id: "f-subject", name: "subject" },
      [["", "any"], ["stack", "stack"], ["slab_cache", "slab cache"]].map(([v, t]) =>
        el("option", { value: v, text: t, selected: v === doc.filters.subject })));
    const labelIn = el("input", { id: "f-label", name: "label", placeholder: "site:lab", value: p.get("label") || "" });
    const modelIn = el("input", { id: "f-model", name: "hardware_model", placeholder: "hardware model", value: doc.filters.hardware_model });
    const form = el("form", { class: "filters", id: "filters", onsubmit: (ev) => {
      ev.preventDefault();
      setParams({ module: moduleSel.value, subject: subjectSel.value, label: labelIn.value.trim(), hardware_model: modelIn.value.trim() }, true);
      render();
    } },
    el("label", {}, "Module", moduleSel), el("label", {}, "Subject", subjectSel),
    el("label", {}, "Device label", labelIn), el("label", {}, "Hardware model", modelIn),
    el("button", { type: "submit", id: "filter-apply", text: "Apply" }),
    link(location.pathname, {}, "clear"));
    app.append(form);
    const cells = [];
    let curves = null;
    const tbl = table("leaks", leakColumns(firmware, cells), entries, {
      url: true, sort: p.get("sort"), order: p.get("order"),
      after: () => sparks(cells.splice(0), curves),
    });
    app.append(tbl);
    if (!entries.length) app.append(el("p", { id: "empty", class: "muted", text: "No leaking subject matches." }));
    curves = await fetchCurves(firmware, entries);
    tbl.refill();
  }

  async function stackPage() {
    const p = params();
    const q = new URLSearchParams({ firmware: p.get("firmware") || "", signature: p.get("signature") || "", subject: p.get("subject") || "stack" });
    if (p.get("limit")) q.set("limit", p.get("limit"));  // verdict rows per page
    const doc = await api("/api/v1/stack?" + q);
    document.title = "kmemfleet: " + short(doc.signature, 1);
    app.replaceChildren(el("h1", { class: "sig", text: short(doc.signature, 2) }));
    app.append(kv("stack-facts",
      "Subject", doc.subject, "Firmware", link("/firmware/" + encodeURIComponent(doc.firmware_version), {}, doc.firmware_version),
      "First seen on", doc.first_seen_firmware || "-", "First leaked on", doc.first_leaking_firmware || "-",
      "Signature", el("span", { class: "sig", id: "signature", text: doc.signature }),
      ...(doc.stack ? ["Stack id", doc.stack.stack_id, "Module", doc.stack.module || "-"] : [])));
    if (doc.stack) {
      app.append(el("h2", { text: "Frames (innermost first)" }),
        el("ol", { class: "frames", id: "frames" }, doc.stack.frames.map((f) => el("li", { text: f }))));
    }
    app.append(el("h2", { text: "Bytes against uptime, one line per boot (" + doc.boots.length + " boots; leaking in red)" }));
    if (doc.boots.length) {
      const u = union(doc.boots, "uptime_h", "bytes");
      chart("boots", app, {
        x: u.x, bytes: true, xLabel: "uptime (h)", yLabel: "outstanding bytes",
        series: doc.boots.map((b, i) => ({ label: b.device_id + (b.leaking ? " (leak)" : ""), values: u.ys[i],
          color: b.leaking ? "#d62728" : "#9aa5b1", width: b.leaking ? 1.6 : 1 })),
      });
    }
    app.append(el("h2", { text: "Per-device verdicts on " + doc.firmware_version }));
    // Pages come in a stable order (device, boot, key); the rows held are drawn
    // leaking first, then the steepest.
    const worstFirst = (a, b) => (b.leaking - a.leaking) || (b.slope_bytes_per_hour - a.slope_bytes_per_hour);
    doc.verdicts.sort(worstFirst);
    const verdicts = table("verdicts", [
      { key: "device_id", label: "Device", render: (r) => link("/device/" + encodeURIComponent(r.device_id), { boot: r.boot_id }, r.device_id) },
      { key: "boot_id", label: "Boot", render: (r) => r.boot_id.slice(0, 8) },
      { key: "hardware_model", label: "Model" },
      { key: "site", label: "Site", value: (r) => r.labels.site || "" },
      { key: "kind", label: "Verdict", render: (r) => el("span", { class: "badge " + (r.leaking ? "leak" : ""), text: r.kind }) },
      { key: "slope_bytes_per_hour", label: "KiB/h", num: true, render: (r) => fmtRate(r.slope_bytes_per_hour) },
      { key: "confidence", label: "Conf", num: true },
      { key: "span_hours", label: "Hours", num: true },
      { key: "last_bytes", label: "Last", num: true, render: (r) => fmtBytes(r.last_bytes) },
    ], doc.verdicts, { rowClass: (r) => (r.leaking ? "leaking" : ""), rowKey: (r) => r.device_id + "/" + r.boot_id });
    app.append(verdicts);
    // The verdicts come a page at a time: more on demand.
    let next = doc.verdicts_next_offset;
    const more = el("button", { id: "verdicts-more", type: "button", hidden: next === null ? "" : null,
      onclick: async () => {
        more.disabled = true;
        try {
          const page = await api("/api/v1/stack/verdicts?" + q + "&offset=" + next);
          doc.verdicts.push(...page.verdicts);  // the table's rows: sorted and drawn again
          doc.verdicts.sort(worstFirst);
          verdicts.refill();
          next = page.verdicts_next_offset;
          more.hidden = next === null;
        } finally { more.disabled = false; }
      } }, "More verdicts");
    app.append(more);
    app.append(el("h2", { text: "The same " + doc.subject.replace("_", " ") + " on every firmware" }));
    app.append(table("per-firmware", [
      { key: "firmware_version", label: "Firmware", render: (r) => stackLink(r.firmware_version, doc.subject, doc.signature, r.firmware_version) },
      { key: "verdict", label: "Verdict" },
      { key: "devices_leaking", label: "Devices", num: true, render: (r) => r.devices_leaking + "/" + r.devices_observed },
      { key: "median_slope_bytes_per_hour", label: "KiB/h", num: true, render: (r) => fmtRate(r.median_slope_bytes_per_hour) },
      { key: "projected_hours_to_exhaust", label: "Exhaust", num: true, render: (r) => fmtHours(r.projected_hours_to_exhaust) },
      { key: "confidence", label: "Conf", num: true },
    ], doc.per_firmware, { rowKey: (r) => r.firmware_version }));
    const withCurves = doc.per_firmware.filter((r) => r.curve);
    if (withCurves.length) {
      const u = union(withCurves.map((r) => r.curve), "uptime_h", "median");
      chart("per-firmware", app, {
        x: u.x, bytes: true, xLabel: "uptime (h)", yLabel: "median bytes",
        series: withCurves.map((r, i) => ({ label: r.firmware_version, values: u.ys[i] })),
      });
    }
  }

  async function diffPage() {
    const p = params();
    let base = p.get("base"), target = p.get("target");
    if (!base || !target) {
      // The two newest versions a cohort was analysed for (>= 2 devices): a version
      // sorted newest but run by one bench device (the demo's "local") is no release.
      const fleet = await api("/api/v1/fleet");
      const all = fleet.firmware.map((f) => f.firmware_version);
      const cohorts = fleet.firmware.filter((f) => f.devices_analysed >= 2).map((f) => f.firmware_version);
      // One analysed cohort: it is the target, against the newest other version.
      const vs = cohorts.length >= 2 ? cohorts
        : cohorts.length === 1 ? [cohorts[0], ...all.filter((v) => v !== cohorts[0])] : all;
      if (vs.length < 2) { app.replaceChildren(el("p", { text: "A diff needs two firmware versions." })); return; }
      target = target || vs[0]; base = base || vs[1];
      setParams({ base, target });
    }
    const q = new URLSearchParams({ base, target });
    if (p.get("top")) q.set("top", p.get("top"));
    const doc = await api("/api/v1/diff?" + q);
    doc.curves = null;
    document.title = "kmemfleet: diff " + base + " -> " + target;
    app.replaceChildren(el("h1", { text: "Diff: " + base + " \u2192 " + target }),
      el("p", { class: "muted", text: "base " + doc.base_cohort.devices + " devices (median " + doc.base_cohort.median_hours +
        " h), target " + doc.target_cohort.devices + " devices (median " + doc.target_cohort.median_hours + " h)" }),
      el("p", { id: "diff-key" }, el("span", { class: "key-base", text: "\u2014 base " + base }), " ",
        el("span", { class: "key-target", text: "\u2014 target " + target }),
        el("span", { class: "muted", text: " (median bytes against uptime; hover a curve for its values)" })));
    const entries = doc.entries.map((d, i) => Object.assign({ rank: i + 1, subject: (d.target || d.base).subject }, d));
    const side = (e, k) => (e ? e[k] : 0);
    const tables = [];
    for (const change of ["regression", "fixed", "unchanged"]) {
      const rows = entries.filter((d) => d.change === change);
      app.append(el("h2", { text: { regression: "Regressions", fixed: "Fixed", unchanged: "Unchanged" }[change] + " (" + rows.length + ")" }));
      if (!rows.length) continue;
      const cells = [];
      tables.push(table("diff-" + change, [
        { key: "rank", label: "#", num: true },
        { key: "change", label: "Change", render: (d) => el("span", { class: "badge " + d.change, text: d.change }) },
        { key: "signature", label: "Stack / slab cache", cls: "sig", render: (d) => stackLink(d.change === "fixed" ? base : target, d.subject, d.signature) },
        { key: "kind", label: "Kind", value: (d) => (d.target || d.base).kind || "-", render: (d) => (d.target || d.base).kind || "-" },
        { key: "base_leaking", label: base, num: true, value: (d) => side(d.base, "devices_leaking"), render: (d) =>
          d.base ? d.base.devices_leaking + "/" + d.base.devices_observed + ", " + fmtRate(d.base.median_slope_bytes_per_hour) + " KiB/h" : "-" },
        { key: "target_leaking", label: target, num: true, value: (d) => side(d.target, "devices_leaking"), render: (d) =>
          d.target ? d.target.devices_leaking + "/" + d.target.devices_observed + ", " + fmtRate(d.target.median_slope_bytes_per_hour) + " KiB/h" : "-" },
        { key: "curves", label: "Median bytes vs uptime", sort: false, render: (d) => { const s = el("span"); cells.push([s, d]); return s; } },
      ], rows, { after: () => {
        for (const [span, d] of cells.splice(0)) {
          span.replaceChildren();
          if (!doc.curves) { span.append(el("span", { class: "muted", text: "\u2026" })); continue; }
          const b = curveOf(doc.curves.base, d.subject, d.signature);
          const t = curveOf(doc.curves.target, d.subject, d.signature);
          const have = [[base, b], [target, t]].filter((x) => x[1]);
          if (!have.length) { span.append(el("span", { class: "muted", text: "no points" })); continue; }
          const u = union(have.map((x) => x[1]), "uptime_h", "median");
          chart("diff-" + d.rank, span, {
            width: 320, height: 160, small: true, bytes: true, x: u.x, xLabel: "uptime (h)",
            tooltip: have.map((x) => x[0] + ": median " + fmtBytes(x[1].median[x[1].median.length - 1]) + " at " + x[1].uptime_h[x[1].uptime_h.length - 1] + " h").join("; "),
            series: have.map((x, i) => ({ label: x[0], values: u.ys[i], color: x[0] === base ? "#1f77b4" : "#d62728" })),
          });
        }
      } }));
      app.append(tables[tables.length - 1]);
    }
    doc.curves = { base: await fetchCurves(base, entries), target: await fetchCurves(target, entries) };
    tables.forEach((t) => t.refill());
  }

  async function devicePage() {
    const id = decodeURIComponent(location.pathname.split("/")[2] || "");
    const p = params();
    const q = new URLSearchParams();
    if (p.get("boot")) q.set("boot", p.get("boot"));
    if (p.get("sort")) q.set("sort", p.get("sort"));
    const doc = await api("/api/v1/devices/" + encodeURIComponent(id) + "?" + q);
    const d = doc.device;
    document.title = "kmemfleet: " + d.device_id;
    app.replaceChildren(el("h1", { text: "Device " + d.device_id }));
    app.append(kv("identity",
      "Firmware", link("/firmware/" + encodeURIComponent(d.firmware_version), {}, d.firmware_version),
      "Kernel", d.kernel_release, "Arch", d.arch, "Hardware model", d.hardware_model, "Boot", d.boot_id,
      "Labels", Object.entries(d.labels).map(([k, v]) => k + "=" + v).join(", ") || "-",
      "Slab memory", fmtBytes(doc.slab_summary.total_size_bytes)));
    app.append(el("h2", { text: "Boots" }), table("boots", [
      { key: "boot_id", label: "Boot", render: (b) => link(location.pathname, { boot: b.boot_id }, b.boot_id) },
      { key: "firmware_version", label: "Firmware" },
      { key: "first_seen", label: "First seen" }, { key: "last_seen", label: "Last seen" },
      { key: "hours", label: "Hours", num: true },
    ], doc.boots, { rowKey: (b) => b.boot_id }));
    const sortSel = el("select", { id: "slab-sort", onchange: () => { setParams({ sort: sortSel.value }, true); render(); } },
      [["c", "c: cache size"], ["a", "a: active objects"], ["l", "l: slabs"], ["n", "n: name"], ["o", "o: objects"],
       ["p", "p: objects per slab"], ["s", "s: object size"], ["u", "u: utilization"], ["g", "g: growth"]]
        .map(([v, t]) => el("option", { value: v, text: t, selected: v === doc.slab_sort })));
    app.append(el("h2", { text: "Slab caches (newest snapshot, growth = trend over the boot)" }),
      el("label", {}, "Sort (showslab keys) ", sortSel));
    app.append(table("slabs", [
      { key: "objs", label: "OBJS", num: true }, { key: "active", label: "ACTIVE", num: true },
      { key: "use_pct", label: "USE", num: true, render: (c) => c.use_pct + "%" },
      { key: "obj_size", label: "OBJ SIZE", num: true }, { key: "slabs", label: "SLABS", num: true },
      { key: "obj_per_slab", label: "OBJ/SLAB", num: true },
      { key: "cache_size_bytes", label: "CACHE SIZE", num: true, render: (c) => fmtBytes(c.cache_size_bytes) },
      { key: "growth_bytes_per_hour", label: "GROWTH/h", num: true, render: (c) => fmtBytes(c.growth_bytes_per_hour) },
      { key: "verdict", label: "VERDICT" }, { key: "name", label: "NAME" },
    ], doc.slab_caches, { rowKey: (c) => c.name }));
    if (doc.slab_history.t.length) {
      chart("slab-history", app, { x: doc.slab_history.t, time: true, bytes: true, yLabel: "bytes", title: "Largest slab caches over the boot",
        series: doc.slab_history.series.map((s) => ({ label: s.cache, values: s.bytes })) });
    }
    app.append(el("h2", { text: "Stacks (" + doc.stacks_total + ", largest first)" }), table("stacks", [
      // A stack with no analysis summary on this firmware yet has no stack page:
      // its signature is shown, not linked to a 404.
      { key: "signature", label: "Stack", cls: "sig", render: (s) => (s.analysed
        ? stackLink(d.firmware_version, "stack", s.signature) : el("span", { text: short(s.signature) })) },
      { key: "bytes", label: "Bytes", num: true, render: (s) => fmtBytes(s.bytes) },
      { key: "objects", label: "Objects", num: true },
      { key: "growth_bytes_per_hour", label: "KiB/h", num: true, render: (s) => fmtRate(s.growth_bytes_per_hour) },
      { key: "verdict", label: "Verdict" },
    ], doc.stacks.slice(0, 50), { rowClass: (s) => (s.leaking ? "leaking" : "") }));
    const t = doc.trends;
    if (t.t.length && Object.keys(t.meminfo).length) {
      app.append(el("h2", { text: "meminfo" }));
      chart("meminfo", app, { x: t.t, time: true, bytes: true, yLabel: "bytes",
        series: Object.entries(t.meminfo).map(([k, v]) => ({ label: k, values: v })) });
    }
    if (t.t.length && t.buddyinfo.length) {
      app.append(el("h2", { text: "buddyinfo: free blocks per order (all zones)" }));
      chart("buddyinfo", app, { x: t.t, time: true, yLabel: "free blocks",
        series: t.buddyinfo.map((v, k) => ({ label: "order " + k, values: v })) });
    }
  }

  const PAGES = { fleet: fleetPage, firmware: firmwarePage, stack: stackPage, diff: diffPage, device: devicePage };
  async function render() {
    kmf.ready = false;
    document.body.dataset.ready = "";
    for (const u of Object.values(kmf.charts)) u.destroy();
    kmf.charts = {};
    try {
      await PAGES[kmf.page]();
    } catch (err) {
      app.replaceChildren(el("p", { class: "error", id: "error", text: "Error: " + err.message }));
    }
    kmf.ready = true;
    document.body.dataset.ready = "1";
    if (window.performance && performance.mark) performance.mark("kmf-ready");
  }
  logBox.checked = params().get("log") === "1";
  logBox.addEventListener("change", () => { setParams({ log: logBox.checked ? "1" : "" }); render(); });
  window.addEventListener("popstate", render);
  kmf.render = render;
  render();
})();
