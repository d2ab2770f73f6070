// kefu agent console. Everything a shopper wrote is put on the page with textContent, never as HTML.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const me = document.querySelector('meta[name="kefu-user"]').content;
const roles = document.querySelector('meta[name="kefu-roles"]').content.split(" ");
const $ = (id) => document.getElementById(id);

let open = null;        // {channel, conversation} shown on the right
let view = null;        // the last view of it from the server
let queue = [];         // the last queue from the event stream
let refreshTimer = null;
let reveal = null;      // the id of the reply the agent just sent: the render that first shows it scrolls to it

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function path(channel, conversation) {
  return "/console/api/conversations/" + encodeURIComponent(channel) + "/" + encodeURIComponent(conversation);
}

async function api(url, options = {}) {
  const init = { method: options.method || "GET", credentials: "same-origin", headers: {} };
  if (init.method !== "GET") init.headers["X-CSRF-Token"] = csrf;
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(url, init);
  if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail || ("request failed: " + response.status));
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

function notice(text, bad) {
  const box = $("notice");
  box.textContent = text || "";
  box.classList.toggle("bad", Boolean(bad));
}

// -- small formatting helpers --------------------------------------------------

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return Math.floor(seconds) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d";
}

function clock(iso) {
  const at = new Date(iso);
  return isNaN(at) ? "" : at.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

function moodTag(mood) {
  if (mood === null || mood === undefined) return null;
  const label = mood <= -0.3 ? "upset" : mood >= 0.3 ? "happy" : "calm";
  return el("span", "tag " + label, label + " " + (mood > 0 ? "+" : "") + Number(mood).toFixed(2));
}

function who(item) {
  return item.display_name || item.user_id || item.conversation;
}

const REASONS = {
  explicit_request: "asked for a person", upset: "upset", unconfident: "the bot was unsure",
  faq_flagged: "a topic for people", keyword: "a keyword", order: "an order needs a person", claimed: "claimed",
  released: "released to the bot",
  closed: "closed", shopper_wrote: "the shopper wrote again", shopper_left: "the shopper went back to the bot",
};

function reasonText(reason) {
  return REASONS[reason] || (reason || "").replace(/_/g, " ");
}

// -- the queue -------------------------------------------------------------------

// Each conversation keeps one button across renders: the queue re-renders on every event, and a click
// that lands while its button is being replaced would otherwise be lost.
const queueButtons = new Map();  // "channel\u0000conversation" -> its button

function renderQueue() {
  const waiting = queue.filter((item) => item.state === "waiting_agent");
  const active = queue.filter((item) => item.state === "agent");
  const shown = new Set();
  for (const [list, items] of [[$("waiting"), waiting], [$("active"), active]]) {
    list.replaceChildren(...items.map((item) => {
      const button = queueButton(item);
      shown.add(button);
      return button.parentElement;
    }));
  }
  for (const [key, button] of queueButtons) if (!shown.has(button)) queueButtons.delete(key);
  $("waiting-count").textContent = String(waiting.length);
  $("active-count").textContent = String(active.length);
  $("queue-empty").hidden = queue.length > 0;
  document.title = (waiting.length ? "(" + waiting.length + ") " : "") + document.title.replace(/^\(\d+\) /, "");
}

function queueButton(item) {
  const key = item.channel + "\u0000" + item.conversation;
  let button = queueButtons.get(key);
  if (!button) {
    button = el("button", "queue-item");
    button.type = "button";
    button.dataset.channel = item.channel;
    button.dataset.conversation = item.conversation;
    button.addEventListener("click", () => openConversation(item.channel, item.conversation));
    el("li").append(button);
    queueButtons.set(key, button);
  }
  button.classList.toggle("selected",
    Boolean(open && open.channel === item.channel && open.conversation === item.conversation));
  const line = el("span", "line");
  line.append(el("span", "tag", item.channel));
  if (item.language) line.append(el("span", "tag", item.language));
  const mood = moodTag(item.mood);
  if (mood) line.append(mood);
  if (item.state === "waiting_agent") {
    line.append(el("span", "tag waiting", "waiting " + ago(item.since)));
    line.append(document.createTextNode(reasonText(item.reason)));
  } else {
    line.append(document.createTextNode((item.agent === me ? "you" : item.agent) + " · " + ago(item.since)));
  }
  const parts = [el("span", "who", who(item)), line];
  if (item.last_shopper_message) parts.push(el("span", "preview", item.last_shopper_message));
  button.replaceChildren(...parts);
  return button;
}

// -- one conversation --------------------------------------------------------------

async function openConversation(channel, conversation) {
  open = { channel, conversation };
  history.replaceState(null, "", "#c=" + encodeURIComponent(channel) + "/" + encodeURIComponent(conversation));
  $("faq-results").replaceChildren();
  $("reply-text").value = "";
  notice("");
  document.body.classList.add("viewing");
  $("placeholder").hidden = true;
  $("conversation-pane").hidden = false;
  renderQueue();
  await refreshConversation();
}

function closeConversation() {
  open = null;
  view = null;
  history.replaceState(null, "", "#");
  document.body.classList.remove("viewing");
  $("conversation-pane").hidden = true;
  $("placeholder").hidden = false;
  renderQueue();
}

async function refreshConversation() {
  if (!open) return;
  const asked = open;
  try {
    const data = await api(path(asked.channel, asked.conversation));
    if (open !== asked) return;  // the agent opened another one meanwhile
    view = data;
    renderConversation();
  } catch (error) {
    if (open === asked) notice(error.message, true);
  }
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshConversation, 100);
}

function renderConversation() {
  const v = view;
  $("conversation-title").textContent = who(v);
  const meta = $("conversation-meta");
  meta.replaceChildren();
  meta.append(el("span", "tag", v.channel));
  meta.append(el("span", "tag", v.language ? "speaks " + v.language : "language unknown"));
  const mood = moodTag(v.mood);
  if (mood) meta.append(mood);
  const state = { bot: "the bot answers", waiting_agent: "waiting for an agent", agent: "with " + (v.agent === me ? "you" : v.agent), closed: "closed" }[v.state] || v.state;
  meta.append(el("span", "tag state", state));
  if (v.reason) meta.append(document.createTextNode(" " + reasonText(v.reason) + (v.detail ? ": " + v.detail : "")));

  const mine = v.state === "agent" && v.agent === me;
  const someoneElse = v.state === "agent" && v.agent !== me;
  $("claim").hidden = v.state !== "waiting_agent";
  $("release").hidden = !mine;
  $("close").hidden = !(mine || v.state === "waiting_agent");
  const canWrite = mine || v.state === "waiting_agent";
  $("reply-text").disabled = !canWrite;
  $("send").disabled = !canWrite;
  $("composer-hint").textContent = mine ? "Your reply goes to the shopper on " + v.channel + "."
    : v.state === "waiting_agent" ? "Replying claims the conversation for you."
    : someoneElse ? v.agent + " is handling this conversation."
    : "The bot answers this conversation; it is not waiting for a person.";

  renderOrders(v.orders || []);
  const list = $("transcript");
  const key = v.channel + "/" + v.conversation;
  // Stay where the agent scrolled to, unless they sent a reply: then it must be in view, even when the open FAQ
  // results made the transcript shorter (and so left the latest message below its fold).
  const sent = reveal !== null && v.messages.some((message) => message.id === reveal);
  if (sent) reveal = null;
  const stay = list.dataset.key === key && !sent && list.scrollHeight - list.scrollTop - list.clientHeight >= 80;
  list.dataset.key = key;
  const items = [];
  for (const message of v.messages) items.push({ at: message.created_at, order: 0, node: messageNode(message) });
  for (const transition of v.transitions || []) items.push({ at: transition.created_at, order: 1, node: eventNode(transition) });
  items.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.order - b.order));
  list.replaceChildren(...items.map((item) => item.node));
  if (!stay) list.scrollTop = list.scrollHeight;  // a new conversation, or the agent was reading the latest
}

// The orders the shopper proved are theirs in this conversation, as the shop's system gave them.
function renderOrders(orders) {
  const box = $("orders");
  box.hidden = orders.length === 0;
  box.replaceChildren(...orders.map((order) => {
    const card = el("div", "order");
    card.append(el("h3", "", "Order " + order.number + " · " + order.status.replace(/_/g, " ")
      + (order.source_status ? " (" + order.source_status + ")" : "")));
    const facts = [];
    if (order.created_at) facts.push("placed " + order.created_at.slice(0, 10));
    if (order.total) facts.push(order.total + " " + (order.currency || ""));
    if (order.looked_up_at) facts.push("looked up " + clock(order.looked_up_at));
    card.append(el("div", "info", facts.join(" · ")));
    for (const item of order.items || []) {
      card.append(el("div", "item", item.quantity + " × " + item.title + (item.variant ? " (" + item.variant + ")" : "")));
    }
    for (const s of order.shipments || []) {
      const line = el("div", "shipment", [s.carrier, s.tracking_number, s.status].filter(Boolean).join(" · ")
        + (s.last_event_at ? " · last scan " + s.last_event_at.slice(0, 10) : ""));
      if (s.tracking_url && /^https?:\/\//.test(s.tracking_url)) {
        const link = el("a", "", "track");
        link.href = s.tracking_url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        line.append(" ", link);
      }
      card.append(line);
    }
    return card;
  }));
}

function messageNode(message) {
  const role = message.role;
  const li = el("li", "msg " + role);
  li.dataset.id = String(message.id);
  li.append(el("div", "text", message.text));
  const info = [clock(message.created_at)];
  if (role === "shopper") {
    if (message.language) info.push(message.language);
    if (message.sentiment !== null && message.sentiment !== undefined) info.push("mood " + Number(message.sentiment).toFixed(2));
    if (message.media) info.push("sent a " + message.media);
  } else if (role === "bot") {
    if (message.kind) info.push(message.kind.replace(/_/g, " "));
    if (message.faq_ids && message.faq_ids.length) info.push("FAQ " + message.faq_ids.join(", "));
    if (message.confidence !== null && message.confidence !== undefined) info.push("score " + Number(message.confidence).toFixed(2));
  } else if (role === "agent") {
    info.push("agent");
  }
  if (message.direction === "out" && message.status) info.push(message.status);
  if (message.direction === "out" && message.error && (message.status === "held" || message.status === "failed")) {
    info.push("not delivered: " + message.error);
  }
  li.append(el("div", "info", info.filter(Boolean).join(" · ")));
  if (message.faq_tried && message.faq_tried.length && role !== "agent") {
    li.append(el("div", "info tried", "FAQ tried: " + message.faq_tried.map((t) => t.faq_id + " (" + Number(t.score).toFixed(2) + ")").join(", ")));
  }
  for (const link of message.links || []) {
    if (!/^https?:\/\//.test(link.url)) continue;
    const a = el("a", "link-button", link.title);
    a.href = link.url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    li.append(a);
  }
  if (role === "bot" && message.why) li.append(el("div", "info why", "why: " + message.why));
  return li;
}

function eventNode(transition) {
  const actor = transition.actor === me ? "you" : transition.actor;
  let text;
  if (transition.to === "waiting_agent") text = "Handed to a person: " + reasonText(transition.reason) + (transition.detail ? " (" + transition.detail + ")" : "");
  else if (transition.to === "agent") text = "Claimed by " + actor;
  else if (transition.to === "bot" && transition.reason === "shopper_left") text = "The shopper went back to the bot (" + (transition.detail || "/bot") + ")";
  else if (transition.to === "bot") text = "Released to the bot by " + actor;
  else if (transition.to === "closed") text = "Closed by " + actor;
  else text = reasonText(transition.reason);
  const li = el("li", "event", text + " · " + clock(transition.created_at));
  li.dataset.event = transition.to;
  return li;
}

// -- actions ----------------------------------------------------------------------------

async function act(action) {
  if (!open) return;
  notice("");
  try {
    await api(path(open.channel, open.conversation) + "/" + action, { method: "POST", body: {} });
  } catch (error) {
    if (error.status === 409) notice(error.data && error.data.agent && error.data.agent !== me
      ? error.data.agent + " already has this conversation." : error.message, true);
    else notice(error.message, true);
  }
  await refreshConversation();
}

async function send(event) {
  event.preventDefault();
  const box = $("reply-text");
  const text = box.value.trim();
  if (!open || !text) return;
  $("send").disabled = true;
  try {
    const sent = await api(path(open.channel, open.conversation) + "/messages", { method: "POST", body: { text } });
    reveal = sent.message ? sent.message.message_id : null;
    box.value = "";
    notice("");
  } catch (error) {
    notice(error.status === 409 ? "Someone else has this conversation now; your reply was not sent." : error.message, true);
  }
  await refreshConversation();
}

async function searchFaq(event) {
  event.preventDefault();
  const query = $("faq-query").value.trim();
  if (!query) return;
  const language = view && view.language ? "&language=" + encodeURIComponent(view.language) : "";
  const results = $("faq-results");
  try {
    const data = await api("/console/api/faq?q=" + encodeURIComponent(query) + language);
    results.replaceChildren(...data.results.map(faqItem));
    if (!data.results.length) results.replaceChildren(el("li", "muted", "No FAQ entry matches."));
  } catch (error) {
    notice(error.message, true);
  }
}

function faqItem(result) {
  const li = el("li");
  li.dataset.faqId = result.faq_id;
  li.append(el("div", "question", result.question));
  li.append(el("div", "answer", result.answer));
  const line = el("div", "info");
  line.append(el("span", "tag", result.faq_id));
  line.append(el("span", "tag", result.language));
  if (view && view.language && view.language !== result.language) {
    line.append(document.createTextNode("not written in " + view.language + " "));
  }
  const insert = el("button", "insert", "Insert");
  insert.type = "button";
  insert.addEventListener("click", () => {
    const box = $("reply-text");
    box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n\n" + result.answer : result.answer;
    box.focus();
  });
  line.append(insert);
  li.append(line);
  return li;
}

// -- live updates -------------------------------------------------------------------

function connect() {
  const live = $("live");
  const stream = new EventSource("/console/api/events");
  stream.addEventListener("open", () => { live.dataset.state = "live"; live.textContent = "live"; });
  stream.addEventListener("queue", (event) => { queue = JSON.parse(event.data).handoffs; renderQueue(); });
  stream.addEventListener("change", () => scheduleRefresh());
  stream.addEventListener("signed_out", () => { stream.close(); window.location.reload(); });
  stream.addEventListener("error", () => { live.dataset.state = "lost"; live.textContent = "reconnecting…"; });
}

function start() {
  if (roles.includes("merchant")) $("insights-link").hidden = false;
  $("claim").addEventListener("click", () => act("claim"));
  $("release").addEventListener("click", () => act("release"));
  $("close").addEventListener("click", () => act("close"));
  $("back").addEventListener("click", closeConversation);
  $("composer").addEventListener("submit", send);
  $("faq-search").addEventListener("submit", searchFaq);
  $("reply-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) send(event);
  });
  setInterval(renderQueue, 30000);  // waiting times grow even when nothing happens
  connect();
  const hash = decodeURIComponent(window.location.hash.replace(/^#c=/, ""));
  const slash = hash.indexOf("/");
  if (window.location.hash.startsWith("#c=") && slash > 0) openConversation(hash.slice(0, slash), hash.slice(slash + 1));
}

start();
