// kefu privacy page: export or erase a shopper's data and read the audit log (text rendered with textContent only).
"use strict";

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const roles = document.querySelector('meta[name="kefu-roles"]').content.split(" ");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function call(method, url, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = csrf;
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(url, init);
  if (response.status === 401) { window.location.href = "/console/privacy"; throw new Error("signed out"); }
  const data = await response.json();
  if (!response.ok) throw new Error(data.detail || "request failed");
  return data;
}

function subject() {
  const value = $("target").value.trim();
  return $("kind").value === "user" ? { user: value } : { conversation: value };
}

function say(text, bad) {
  $("notice").textContent = text;
  $("notice").classList.toggle("bad", Boolean(bad));
}

function download(document_, name) {
  const blob = new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" });
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function exportData() {
  try {
    const found = await call("POST", "/console/api/privacy/export", subject());
    const stamp = found.exported_at.slice(0, 19).replace(/[:T]/g, "-");
    download(found, "kefu-export-" + found.subject.channel + "-" + stamp + ".json");
    say("Exported " + found.counts.messages + " messages of " + found.counts.conversations + " conversation(s).");
    document.body.dataset.exported = String(found.counts.messages);
  } catch (error) {
    say(error.message, true);
  }
  loadAudit();
}

async function eraseData() {
  $("confirm").hidden = true;
  try {
    const done = await call("POST", "/console/api/privacy/erase", { ...subject(), force: $("force").checked });
    say("Erased " + (done.erased.messages || 0) + " messages of " + (done.erased.conversations || 0) +
        " conversation(s).");
    document.body.dataset.erased = String(done.erased.conversations || 0);
  } catch (error) {
    say(error.message, true);
  }
  $("force").checked = false;
  loadAudit();
}

function countsText(counts) {
  return Object.entries(counts || {}).filter(([, n]) => n).map(([name, n]) => name.replace(/_/g, " ") + " " + n)
    .join(", ");
}

async function loadAudit() {
  try {
    const found = await call("GET", "/console/api/audit?limit=200");
    const rows = found.entries.map((entry) => {
      const tr = el("tr");
      tr.dataset.action = entry.action;
      const target = entry.target || (entry.target_kind === "older_than" ? "idle since " + entry.target_ref
        : entry.target_kind + " on " + (entry.channel || "?") + " #" + (entry.target_ref || "").slice(0, 12));
      for (const value of [entry.at.slice(0, 19).replace("T", " "), entry.actor, entry.action, target,
                           countsText(entry.counts)]) {
        tr.append(el("td", null, value));
      }
      return tr;
    });
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "muted", "Nothing recorded yet.");
      td.colSpan = 5;
      tr.append(td);
      rows.push(tr);
    }
    $("audit").tBodies[0].replaceChildren(...rows);
  } catch (error) {
    say(error.message, true);
  }
}

function start() {
  if (roles.includes("agent")) $("console-link").hidden = false;
  $("kind").addEventListener("change", () => {
    $("target").placeholder = $("kind").value === "user" ? "telegram:123456789" : "webhook/order-123";
  });
  $("subject").addEventListener("submit", (event) => { event.preventDefault(); exportData(); });
  $("erase-button").addEventListener("click", () => {
    if (!$("subject").reportValidity()) return;
    $("confirm-target").textContent = $("target").value.trim();
    $("confirm").hidden = false;
  });
  $("cancel-erase").addEventListener("click", () => { $("confirm").hidden = true; });
  $("confirm-erase").addEventListener("click", eraseData);
  loadAudit();
}

start();
