/* Dashboard: fetch each section's figures from /api/dashboard/ and draw them with ECharts.
 *
 * The server has already hidden every small count (it arrives as the marker "<k");
 * here a hidden value is a gap in a chart and the marker in a table, never a number.
 * ECharts is served from /static/vendor/echarts/ (see tools/vendor.py): no CDN.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("dashboard-config");
  if (!configNode || !window.echarts) { return; }
  var cfg = JSON.parse(configNode.textContent);
  var query = new URLSearchParams(cfg.query).toString();
  var fontFamily = window.getComputedStyle(document.body).fontFamily;
  var charts = [];
  var COLORS = ["#0f766e", "#2f6fb3", "#e2a03c", "#b54790", "#6b8e23", "#7c5cc4", "#c2410c", "#0e7490"];
  var HEALTH = { green: "#12b76a", amber: "#f79009", red: "#d92d20", off: "#98a2b3", "": "#98a2b3" };

  function isNumber(v) { return typeof v === "number" && isFinite(v); }
  function num(v) { return isNumber(v) ? v : null; }
  function fmt(v) {
    if (isNumber(v)) { return v.toLocaleString(document.documentElement.lang || undefined); }
    if (typeof v === "string" && v) { return v; }
    return "—";
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function suppressed(v) { return typeof v === "string" && v.charAt(0) === "<"; }

  function drillUrl(uuid) {
    if (!cfg.drill || !uuid) { return ""; }
    var q = new URLSearchParams(cfg.query);
    q.delete("institution");
    return cfg.drill.replace("00000000-0000-0000-0000-000000000000", uuid) + "?" + q.toString();
  }

  function chart(section, key) {
    var node = section.querySelector('[data-chart="' + key + '"]');
    if (!node) { return null; }
    var instance = window.echarts.init(node, null, { renderer: "canvas" });
    charts.push(instance);
    return instance;
  }

  function base(title) {
    return {
      color: COLORS,
      textStyle: { fontFamily: fontFamily },
      title: { text: title, left: 0, top: 0, textStyle: { fontSize: 14, fontWeight: 600, fontFamily: fontFamily } },
      tooltip: { trigger: "axis" },
      grid: { left: 48, right: 48, top: 56, bottom: 32, containLabel: true }
    };
  }

  function empty(instance, title) {
    var option = base(title);
    option.graphic = [{ type: "text", left: "center", top: "middle", style: { text: cfg.text.no_data, fill: "#5f6b7a", fontSize: 14, fontFamily: fontFamily } }];
    instance.setOption(option);
  }

  function allEmpty(values) { return !values.some(function (v) { return isNumber(v) && v > 0; }); }

  function onlyHidden(series) {
    var values = [];
    series.forEach(function (s) { values = values.concat(s.values); });
    return allEmpty(values) && values.some(suppressed);
  }

  function barLine(instance, title, periods, bars, line) {
    if (onlyHidden(bars)) {
      // Every count of the period is below k: say so rather than draw an empty axis.
      var hint = base(title);
      hint.graphic = [{ type: "text", left: "center", top: "middle", style: { text: cfg.text.all_hidden, fill: "#5f6b7a", fontSize: 14, fontFamily: fontFamily } }];
      instance.setOption(hint);
      return;
    }
    var option = base(title);
    option.legend = { top: 0, right: 0 };
    option.xAxis = { type: "category", data: periods };
    option.yAxis = [{ type: "value", minInterval: 1 }];
    option.series = bars.map(function (s) {
      return { name: s.label, type: "bar", data: s.values.map(num), barMaxWidth: 28 };
    });
    if (line) {
      option.yAxis.push({ type: "value", splitLine: { show: false } });
      option.series.push({ name: line.label, type: "line", yAxisIndex: 1, data: line.values.map(num), connectNulls: false, symbolSize: 6 });
    }
    instance.setOption(option);
  }

  function sankey(instance, title, links) {
    if (!links.length) { empty(instance, title); return; }
    var names = {};
    links.forEach(function (l) { names[l.source] = true; names[l.target] = true; });
    var option = base(title);
    option.tooltip = { trigger: "item" };
    option.series = [{
      type: "sankey", top: 40, bottom: 10, left: 10, right: 120, nodeGap: 10,
      emphasis: { focus: "adjacency" },
      label: { fontFamily: fontFamily, fontSize: 12 },
      data: Object.keys(names).map(function (n, i) { return { name: n, itemStyle: { color: COLORS[i % COLORS.length] } }; }),
      links: links.map(function (l) { return { source: l.source, target: l.target, value: l.value, lineStyle: { color: "source", opacity: 0.35 } }; })
    }];
    instance.setOption(option);
  }

  function renderKpis(section, kpis) {
    var list = section.querySelector("[data-kpis]");
    if (!list) { return; }
    list.textContent = "";
    kpis.forEach(function (k) {
      var item = el("li", { "class": "stat", "data-kpi": k.key });
      var value = el("span", { "class": "stat__value" }, fmt(k.value));
      if (suppressed(k.value)) { value.title = cfg.text.suppressed; item.classList.add("stat-suppressed"); }
      if (k.unit && isNumber(k.value)) { value.appendChild(el("small", { "class": "stat__unit" }, " " + k.unit)); }
      item.appendChild(value);
      item.appendChild(el("span", { "class": "stat__label" }, k.label));
      list.appendChild(item);
    });
  }

  function renderTables(section, tables) {
    var holder = section.querySelector("[data-tables]");
    if (!holder) { return; }
    holder.textContent = "";
    tables.forEach(function (t) {
      var wrap = el("div", { "class": "table-wrap dash-table", "data-table": t.key });
      wrap.appendChild(el("h3", {}, t.title));
      if (!t.rows.length) { wrap.appendChild(el("p", { "class": "muted" }, cfg.text.no_data)); holder.appendChild(wrap); return; }
      var table = el("table", { "class": "data" });
      var head = el("tr");
      t.columns.forEach(function (c) { head.appendChild(el("th", { "class": c.kind === "text" || c.kind === "health" ? "" : "num", scope: "col" }, c.label)); });
      table.appendChild(el("thead")).appendChild(head);
      var body = el("tbody");
      t.rows.forEach(function (row) {
        var tr = el("tr");
        var link = drillUrl(row.institution_uuid);
        t.columns.forEach(function (c, i) {
          var v = row[c.key];
          var td = el("td", { "class": c.kind === "text" || c.kind === "health" ? "" : "num", "data-col": c.key });
          if (i === 0 && link) {
            td.appendChild(el("a", { href: link }, fmt(v)));
          } else if (c.kind === "health") {
            td.appendChild(el("span", { "class": "dash-dot dash-dot--" + (row.health || "none") }));
            td.appendChild(document.createTextNode(fmt(v)));
          } else {
            td.textContent = fmt(v);
          }
          if (suppressed(v)) { td.classList.add("dash-suppressed"); td.title = cfg.text.suppressed; }
          tr.appendChild(td);
        });
        if (link) {
          tr.classList.add("dash-drill");
          tr.addEventListener("click", function (event) { if (event.target.tagName !== "A") { window.location.href = link; } });
        }
        body.appendChild(tr);
      });
      table.appendChild(body);
      wrap.appendChild(table);
      holder.appendChild(wrap);
    });
  }

  var draw = {
    volume: function (section, data) {
      var trend = chart(section, "volume-trend");
      if (trend) { barLine(trend, cfg.text.studies, data.trend.periods, data.trend.series); }
      var modality = chart(section, "volume-modality");
      if (modality) {
        var rows = data.tables[1].rows.filter(function (r) { return isNumber(r.studies) && r.studies > 0; });
        if (!rows.length) { empty(modality, cfg.text.by_modality); } else {
          var option = base(cfg.text.by_modality);
          option.tooltip = { trigger: "item" };
          option.legend = { type: "scroll", bottom: 0 };
          option.series = [{ type: "pie", radius: ["35%", "65%"], top: 20, label: { fontFamily: fontFamily },
            data: rows.map(function (r) { return { name: r.modality, value: r.studies }; }) }];
          modality.setOption(option);
        }
      }
      var storage = chart(section, "volume-storage");
      if (storage) {
        var s = base(cfg.text.storage);
        s.xAxis = { type: "category", data: data.storage.periods };
        s.yAxis = { type: "value", scale: true };
        s.series = [{ name: cfg.text.storage, type: "line", areaStyle: { opacity: 0.15 }, data: data.storage.values, symbol: "none" }];
        storage.setOption(s);
      }
    },
    turnaround: function (section, data) {
      var trend = chart(section, "turnaround-trend");
      if (trend) { barLine(trend, cfg.text.reports, data.trend.periods, [data.trend.series[0]], data.trend.series[1]); }
      var buckets = chart(section, "turnaround-buckets");
      if (buckets) {
        if (allEmpty(data.buckets.values)) { empty(buckets, cfg.text.turnaround_buckets); } else {
          var option = base(cfg.text.turnaround_buckets);
          option.xAxis = { type: "category", data: data.buckets.labels };
          option.yAxis = { type: "value", minInterval: 1 };
          option.series = [{ type: "bar", data: data.buckets.values.map(num), barMaxWidth: 40,
            itemStyle: { color: function (p) { return ["#12b76a", "#0f766e", "#e2a03c", "#d92d20"][p.dataIndex]; } } }];
          buckets.setOption(option);
        }
      }
    },
    referrals: function (section, data) {
      var trend = chart(section, "referrals-trend");
      if (trend) { barLine(trend, cfg.text.up + " / " + cfg.text.down, data.trend.periods, data.trend.series); }
      var up = chart(section, "referrals-up");
      if (up) { sankey(up, cfg.text.up, data.flows.up); }
      var down = chart(section, "referrals-down");
      if (down) { sankey(down, cfg.text.down, data.flows.down); }
    },
    recognition: function (section, data) {
      var trend = chart(section, "recognition-trend");
      if (trend) { barLine(trend, data.trend.series[0].label, data.trend.periods, [data.trend.series[0]], data.trend.series[1]); }
    },
    network: function (section, data) {
      var graph = chart(section, "network-graph");
      if (graph) {
        var studies = {};
        data.tables[0].rows.forEach(function (r) { studies[r.institution] = isNumber(r.studies) ? r.studies : 0; });
        var tiers = [];
        data.nodes.forEach(function (n) { if (tiers.indexOf(n.tier) < 0) { tiers.push(n.tier); } });
        var links = data.flows.up.map(function (l) { return { source: l.source, target: l.target, value: l.value, lineStyle: { color: "#0f766e" } }; })
          .concat(data.flows.down.map(function (l) { return { source: l.source, target: l.target, value: l.value, lineStyle: { color: "#e2a03c", curveness: 0.25 } }; }));
        var max = Math.max.apply(null, links.map(function (l) { return l.value; }).concat([1]));
        links.forEach(function (l) { l.lineStyle.width = 1 + 5 * l.value / max; l.lineStyle.opacity = 0.7; });
        var option = base("");
        option.tooltip = { trigger: "item" };
        option.series = [{
          type: "graph", layout: "circular", circular: { rotateLabel: true }, roam: true, top: 50, bottom: 40, left: 80, right: 80,
          label: { show: true, position: "right", fontFamily: fontFamily, fontSize: 11 },
          edgeSymbol: ["none", "arrow"], edgeSymbolSize: 7,
          lineStyle: { curveness: 0.15 },
          data: data.nodes.map(function (n) {
            // colour tells the edge's health, the shape the tier (circle, square, diamond)
            return { name: n.name, uuid: n.uuid, symbol: ["diamond", "rect", "circle", "circle"][tiers.indexOf(n.tier) % 4],
              symbolSize: 10 + Math.min(30, Math.sqrt(studies[n.name] || 0)),
              itemStyle: { color: HEALTH[n.health] || HEALTH[""], borderColor: "#fff", borderWidth: 1 } };
          }),
          links: links
        }];
        graph.setOption(option);
        graph.on("click", function (p) {
          var url = p.dataType === "node" && p.data ? drillUrl(p.data.uuid) : "";
          if (url) { window.location.href = url; }
        });
      }
      var up = chart(section, "referrals-up");
      if (up) { sankey(up, cfg.text.up, data.flows.up); }
      var down = chart(section, "referrals-down");
      if (down) { sankey(down, cfg.text.down, data.flows.down); }
    }
  };

  function exportLinks(section, name) {
    section.querySelectorAll("[data-export] a").forEach(function (a) {
      a.href = cfg.export.replace("SECTION", name).replace("FMT", a.getAttribute("data-format")) + "?" + query;
    });
  }

  function load(section) {
    var name = section.getAttribute("data-section");
    exportLinks(section, name);
    section.setAttribute("aria-busy", "true");
    fetch(cfg.api[name] + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        renderKpis(section, data.kpis);
        renderTables(section, data.tables);
        draw[name](section, data);
        section.setAttribute("data-loaded", "true");
      })
      .catch(function () {
        section.appendChild(el("p", { "class": "alert alert-error", role: "alert" }, cfg.text.load_error));
        section.setAttribute("data-loaded", "error");
      })
      .finally(function () { section.removeAttribute("aria-busy"); });
  }

  document.querySelectorAll("[data-section]").forEach(load);
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
