// kefu merchant dashboard: figures from /console/api/insights, drawn with plain DOM and a little SVG.
"use strict";

const $ = (id) => document.getElementById(id);
const roles = document.querySelector('meta[name="kefu-roles"]').content.split(" ");
const SVG = "http://www.w3.org/2000/svg";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : (100 * rate).toFixed(1) + " %";
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1000 ? (value / 1000).toFixed(1) + " s" : Math.round(value) + " ms";
}

function mood(value) {
  return value === null || value === undefined ? "–" : (value > 0 ? "+" : "") + Number(value).toFixed(2);
}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 401 || response.status === 403) { window.location.href = "/console/insights"; throw new Error("signed out"); }
  const data = await response.json();
  if (!response.ok) throw new Error(data.detail || "request failed");
  return data;
}

function card(label, value, id) {
  const box = el("div", "card");
  box.dataset.figure = id;
  box.append(el("div", "value", value), el("div", "label", label));
  return box;
}

// The headline and its definition come from the server, which decides what counts (bot/insights.py).
function renderHeadline(report) {
  const totals = report.totals, definitions = report.definitions || {};
  $("automated").textContent = percent(totals.automation_rate);
  if (definitions.automation_rate) $("automated-definition").textContent = definitions.automation_rate;
  const beside = [["Not sure", totals.not_sure_rate, "not_sure_rate"], ["No match", totals.no_match_rate, "no_match_rate"],
                  ["Handed over", totals.handoff_rate, "handoff_rate"], ["Errors", totals.error_rate, "error_rate"]];
  $("beside").replaceChildren(...beside.map(([label, rate, id]) => {
    const span = el("span", "share", label + ": " + percent(rate));
    span.dataset.figure = id;
    if (definitions[id]) span.title = definitions[id];
    return span;
  }));
  $("not-enabled").replaceChildren(...(report.not_enabled || []).map((language) => {
    const line = el("div", null, "Shoppers wrote in " + language.name + " (not enabled): " + percent(language.share));
    line.dataset.language = language.language;
    return line;
  }));
}

function renderCards(totals) {
  $("cards").replaceChildren(
    card("shopper messages", totals.turns, "turns"),
    card("questions (commands aside)", totals.questions, "questions"),
    card("commands", totals.commands, "commands"),
    card("reply time p50", ms(totals.latency_p50_ms), "latency_p50_ms"),
    card("reply time p95", ms(totals.latency_p95_ms), "latency_p95_ms"),
  );
}

function renderDays(days) {
  const rows = days.map((day) => {
    const tr = el("tr");
    tr.dataset.day = day.day;
    const automated = day.questions ? day.automated + " (" + percent(day.automation_rate) + ")" : "0";
    for (const value of [day.day, day.turns, automated, day.handoffs, day.not_sure, day.no_match, day.with_agent,
                         day.errors, day.commands, ms(day.latency_p50_ms), ms(day.latency_p95_ms), mood(day.mood_average), day.upset]) {
      tr.append(el("td", null, value));
    }
    return tr;
  });
  $("days").tBodies[0].replaceChildren(...rows);
}

function renderBars(list, counts) {
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  const top = entries.length ? entries[0][1] : 0;
  list.replaceChildren(...entries.map(([name, count]) => {
    const li = el("li");
    li.dataset.key = name;
    const fill = el("div", "bar-fill");
    fill.style.width = (top ? (100 * count) / top : 0) + "%";
    const track = el("div", "bar-track");
    track.append(fill);
    li.append(el("span", "name", name.replace(/_/g, " ")), track, el("span", "num", count));
    return li;
  }));
  if (!entries.length) list.replaceChildren(el("li", "muted", "none in this period"));
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function renderMood(days) {
  const width = 600, height = 180, pad = 24;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "average mood per day" });
  const y = (value) => pad + ((1 - value) / 2) * (height - 2 * pad);
  const x = (index) => pad + (days.length > 1 ? (index * (width - 2 * pad)) / (days.length - 1) : (width - 2 * pad) / 2);
  for (const level of [1, 0, -1]) {
    chart.append(svg("line", { x1: pad, x2: width - pad, y1: y(level), y2: y(level), class: "axis" }));
    const label = svg("text", { x: pad - 4, y: y(level) + 3, "text-anchor": "end" });
    label.textContent = level > 0 ? "+1" : String(level);
    chart.append(label);
  }
  const points = days.map((day, index) => [day, index]).filter(([day]) => day.mood_average !== null && day.mood_average !== undefined);
  if (points.length) {
    chart.append(svg("polyline", { class: "line", points: points.map(([day, i]) => x(i) + "," + y(day.mood_average)).join(" ") }));
    for (const [day, i] of points) {
      const dot = svg("circle", { cx: x(i), cy: y(day.mood_average), r: 3, class: "dot" });
      const title = svg("title", {});
      title.textContent = day.day + ": " + mood(day.mood_average);
      dot.append(title);
      chart.append(dot);
    }
  }
  if (days.length) {
    for (const [index, anchor] of [[0, "start"], [days.length - 1, "end"]]) {
      const label = svg("text", { x: x(index), y: height - 4, "text-anchor": anchor });
      label.textContent = days[index].day;
      chart.append(label);
    }
  }
  $("mood-chart").replaceChildren(chart);
}

function languagesText(languages) {
  return Object.entries(languages || {}).sort((a, b) => b[1] - a[1]).map(([code, n]) => code + " " + n).join(", ");
}

function renderClusters(clusters) {
  const rows = clusters.map((cluster, index) => {
    const tr = el("tr");
    const others = (cluster.examples || []).filter((text) => text !== cluster.representative);
    for (const value of [index + 1, cluster.count, cluster.representative, others.join(" · "),
                         languagesText(cluster.languages), (cluster.last_seen || "").slice(0, 10)]) {
      tr.append(el("td", null, value));
    }
    return tr;
  });
  $("clusters").tBodies[0].replaceChildren(...rows);
  if (!clusters.length) {
    const tr = el("tr");
    const td = el("td", "muted", "No unanswered questions in this period.");
    td.colSpan = 6;
    tr.append(td);
    $("clusters").tBodies[0].replaceChildren(tr);
  }
}

async function load(from, to) {
  const query = from && to ? "?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to) : "";
  $("notice").textContent = "";
  try {
    const report = await getJson("/console/api/insights" + query);
    $("from").value = report.start;
    $("to").value = report.end;
    renderHeadline(report);
    renderCards(report.totals);
    renderDays(report.days);
    renderMood(report.days);
    renderBars($("languages"), report.languages);
    renderBars($("reasons"), report.handoff_reasons);
    $("csv").href = "/console/insights/unanswered.csv?from=" + report.start + "&to=" + report.end;
    const unanswered = await getJson("/console/api/insights/unanswered?from=" + report.start + "&to=" + report.end);
    renderClusters(unanswered.clusters);
    document.body.dataset.loaded = report.start + ".." + report.end;
  } catch (error) {
    $("notice").textContent = error.message;
  }
}

function start() {
  if (roles.includes("agent")) $("console-link").hidden = false;
  $("period").addEventListener("submit", (event) => {
    event.preventDefault();
    load($("from").value, $("to").value);
  });
  for (const button of document.querySelectorAll("[data-days]")) {
    button.addEventListener("click", () => {
      const end = $("to").value || new Date().toISOString().slice(0, 10);
      const start = new Date(Date.parse(end + "T00:00:00Z") - (Number(button.dataset.days) - 1) * 86400000);
      load(start.toISOString().slice(0, 10), end);
    });
  }
  load();
}

start();
