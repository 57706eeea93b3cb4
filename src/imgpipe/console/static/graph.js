// The execution page's state-machine graph: laid out by dagre, drawn as SVG, every state coloured by
// what happened to it in this execution, each state a button (click, or Tab and Enter) showing its
// details. Live updates (htmx replacing #execution-live) recolour it.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var WORDS = {
    succeeded: "succeeded",
    retried: "retried",
    caught: "failed, caught",
    failed: "failed",
    running: "running",
    "not-entered": "not entered",
  };
  var shape = null;
  var live = null;
  var selected = null;
  var nodes = {};
  var edges = [];

  function readJson(id) {
    var found = document.getElementById(id);
    return found ? JSON.parse(found.textContent) : null;
  }

  function svg(name, attributes, parent) {
    var made = document.createElementNS(SVG, name);
    Object.keys(attributes || {}).forEach(function (key) {
      made.setAttribute(key, attributes[key]);
    });
    if (parent) parent.appendChild(made);
    return made;
  }

  function html(name, text, parent, className) {
    var made = document.createElement(name);
    if (text !== undefined && text !== null) made.textContent = text;
    if (className) made.className = className;
    if (parent) parent.appendChild(made);
    return made;
  }

  var measure = (function () {
    var context = document.createElement("canvas").getContext("2d");
    return function (text, font) {
      context.font = font;
      return context.measureText(text).width;
    };
  })();

  function layout() {
    var g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: "TB", nodesep: 18, ranksep: 34, edgesep: 8, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(function () { return {}; });
    shape.nodes.forEach(function (n) {
      var terminal = n.type === "start" || n.type === "end";
      var width = Math.max(124, measure(n.label, "600 13px system-ui, sans-serif") + 30);
      g.setNode(n.id, { width: terminal ? 64 : width, height: terminal ? 28 : 46 });
    });
    shape.edges.forEach(function (e, i) {
      if (!g.hasNode(e.from) || !g.hasNode(e.to)) return;
      var label = e.kind === "catch" ? "" : e.label || "";  // Catch edges are dashed instead
      var width = label ? measure(label, "11px system-ui, sans-serif") + 8 : 0;
      g.setEdge(e.from, e.to, { label: label, width: width, height: label ? 16 : 0, index: i }, "e" + i);
    });
    dagre.layout(g);
    return g;
  }

  function drawEdges(g, root) {
    g.edges().forEach(function (ref) {
      var e = g.edge(ref);
      var kind = shape.edges[e.index].kind;
      var d = e.points.map(function (p, i) { return (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1); });
      var edge = shape.edges[e.index];
      var group = svg("g", { class: "edge kind-" + kind, "data-edge": e.index, "data-from": edge.from, "data-to": edge.to }, root);
      svg("path", { d: d.join(" "), "marker-end": "url(#arrow)" }, group);
      if (e.label) {
        var text = svg("text", { x: e.x, y: e.y + 4, "text-anchor": "middle", class: "edge-label" }, group);
        text.textContent = e.label;
      }
      edges[e.index] = group;
    });
  }

  function drawNodes(g, root) {
    var ordered = shape.nodes.slice().sort(function (a, b) {
      var pa = g.node(a.id), pb = g.node(b.id);
      return pa.y - pb.y || pa.x - pb.x;
    });
    ordered.forEach(function (n) {
      var p = g.node(n.id);
      var terminal = n.type === "start" || n.type === "end";
      var attributes = { class: "node" + (terminal ? " terminal" : ""), "data-state": n.id, transform: "translate(" + (p.x - p.width / 2) + "," + (p.y - p.height / 2) + ")" };
      if (!terminal) {
        attributes.tabindex = "0";
        attributes.role = "button";
        attributes["aria-pressed"] = "false";
      }
      var group = svg("g", attributes, root);
      svg("rect", { width: p.width, height: p.height, rx: terminal ? 14 : 8 }, group);
      var name = svg("text", { x: p.width / 2, y: terminal ? 18 : 19, "text-anchor": "middle", class: "name" }, group);
      name.textContent = n.label;
      if (!terminal) {
        var sub = svg("text", { x: p.width / 2, y: 35, "text-anchor": "middle", class: "sub" }, group);
        if (n.comment) svg("title", {}, group).textContent = n.comment;
        group.addEventListener("click", function () { select(n.id, false); });
        group.addEventListener("keydown", function (event) { onKey(event, n.id, ordered); });
        nodes[n.id] = { group: group, sub: sub, node: n };
      }
    });
  }

  function draw(container) {
    var g = layout();
    var size = g.graph();
    container.textContent = "";
    var root = svg("svg", { viewBox: "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height), width: Math.ceil(size.width), height: Math.ceil(size.height), class: "state-graph" }, container);
    var defs = svg("defs", {}, root);
    var marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "9", markerHeight: "9", markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, defs);
    svg("path", { d: "M0 0 L10 5 L0 10 z", class: "arrowhead" }, marker);
    drawEdges(g, root);
    drawNodes(g, root);
  }

  function onKey(event, id, ordered) {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      select(id, false);
      return;
    }
    var moves = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    var states = ordered.filter(function (n) { return nodes[n.id]; });
    var at = states.findIndex(function (n) { return n.id === id; });
    var next = states[(at + moves[event.key] + states.length) % states.length];
    nodes[next.id].group.focus();
  }

  function word(view) {
    if (!view) return WORDS["not-entered"];
    if (view.outcome === "retried") return "retried " + view.retries + "×";
    return WORDS[view.outcome] || view.outcome;
  }

  function colour() {
    var states = live.states || {};
    Object.keys(nodes).forEach(function (id) {
      var view = states[id] || { outcome: "not-entered", retries: 0 };
      var item = nodes[id];
      item.group.setAttribute("class", "node outcome-" + view.outcome + (id === selected ? " selected" : ""));
      item.group.setAttribute("data-outcome", view.outcome);
      item.group.setAttribute("data-retries", String(view.retries || 0));
      item.group.setAttribute("aria-label", id + " (" + item.node.type + "): " + word(view));
      item.sub.textContent = word(view);
    });
    var taken = {};
    (live.taken || []).forEach(function (i) { taken[i] = true; });
    edges.forEach(function (group, i) {
      if (!group) return;
      group.classList.toggle("taken", !!taken[i]);
      group.setAttribute("data-taken", taken[i] ? "true" : "false");
    });
  }

  function fact(list, term, value) {
    if (value === undefined || value === null || value === "") return;
    var row = html("div", null, list);
    html("dt", term, row);
    html("dd", String(value), row);
  }

  function clock(iso) {
    if (!iso) return null;
    var when = new Date(iso);
    return isNaN(when.getTime()) ? iso : when.toISOString().slice(11, 23) + " UTC";
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    return value < 1000 ? value + " ms" : (value / 1000).toFixed(2) + " s";
  }

  function attemptsTable(view, panel) {
    if (!view.attempts || !view.attempts.length) return;
    html("h4", "Attempts", panel);
    var wrap = html("div", null, panel, "table-wrap");
    var table = html("table", null, wrap, "attempts");
    var head = html("tr", null, html("thead", null, table));
    ["#", "Result", "Started (UTC)", "Duration", "Error"].forEach(function (t) { html("th", t, head).setAttribute("scope", "col"); });
    var body = html("tbody", null, table);
    view.attempts.forEach(function (a) {
      var row = html("tr", null, body);
      [a.number, a.result, (clock(a.started) || "").replace(" UTC", ""), ms(a.ms)].forEach(function (t) { html("td", t, row); });
      var error = html("td", null, row);
      if (a.error) html("strong", a.error, error);
      if (a.cause) html("span", a.cause.length > 120 ? a.cause.slice(0, 120) + "…" : a.cause, error, "cause");
    });
  }

  function payload(panel, title, text) {
    if (!text) return;
    var box = html("details", null, panel);
    box.open = text.length < 4000;
    html("summary", title, box);
    html("pre", text, box).tabIndex = 0;
  }

  function showDetails() {
    var panel = document.getElementById("state-details");
    if (!panel || !selected) return;
    var view = (live.states || {})[selected] || { name: selected, outcome: "not-entered", attempts: [] };
    var node = nodes[selected] ? nodes[selected].node : { type: "?" };
    panel.textContent = "";
    var heading = html("h3", selected + " ", panel);
    html("span", word(view), heading, "badge outcome-" + view.outcome);
    var list = html("dl", null, panel, "facts");
    fact(list, "Type", node.type);
    fact(list, "Entered", clock(view.entered));
    fact(list, "Duration", view.ms !== null && view.ms !== undefined ? ms(view.ms) : null);
    fact(list, "Visits", view.visits > 1 ? view.visits : null);
    fact(list, "Retries", view.retries || null);
    if (view.error) html("p", null, panel, "error state-error").append(html("strong", view.error), view.cause ? ": " + view.cause : "");
    if (view.outcome === "not-entered") html("p", "This execution never entered this state.", panel, "muted");
    attemptsTable(view, panel);
    payload(panel, "Input", view.input);
    payload(panel, "Output", view.output);
  }

  function select(id, quiet) {
    selected = id;
    Object.keys(nodes).forEach(function (other) {
      nodes[other].group.setAttribute("aria-pressed", other === id ? "true" : "false");
    });
    colour();
    showDetails();
    if (!quiet) document.getElementById("state-details").scrollIntoView({ block: "nearest" });
  }

  function refresh() {
    var next = readJson("live-data");
    if (!next || !shape) return;
    live = next;
    colour();
    if (selected) showDetails();
    var container = document.getElementById("graph");
    container.setAttribute("data-refreshes", String(Number(container.getAttribute("data-refreshes") || 0) + 1));
  }

  function start() {
    var container = document.getElementById("graph");
    shape = readJson("graph-data");
    live = readJson("live-data");
    if (!container || !shape || !live || typeof dagre === "undefined") return;
    draw(container);
    colour();
    container.setAttribute("data-ready", "true");
    document.body.addEventListener("htmx:afterSettle", refresh);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
