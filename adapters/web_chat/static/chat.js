/* kefu chat widget: <script src="https://your-kefu/chat.js" async></script> on any page.
   Optional attributes: data-customer-id and data-customer-hash (a logged-in shopper, the shop's HMAC of the id),
   data-language (else the browser's), data-open="true" (start open).
   A conversation a signed-in shopper had continues only while the page names that shopper: after
   sign-out the next person gets a new one. A single-page shop calls window.kefuChat.reset() at sign-out.
   No build step, no cookies, no third-party requests; everything lives in a shadow root. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__kefuChat) { return; }
  window.__kefuChat = true;
  var base = new URL(script.src).origin;
  var data = script.dataset;
  var storeKey = "kefu-chat:" + base;
  var state = { token: null, visitor: null, settings: null, lastId: 0, shown: {}, pending: {}, stream: null,
                retry: 0, session: null, starting: null, generation: 0 };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function saved() { try { return localStorage.getItem(storeKey); } catch (e) { return null; } }
  function save(token) { try { localStorage.setItem(storeKey, token); } catch (e) { /* private mode: this tab only */ } }
  function forget() { try { localStorage.removeItem(storeKey); } catch (e) { /* nothing kept */ } }
  function newId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function customer(body) {  // the signed-in shopper the page names, read each time (a page may change it)
    if (data.customerId && data.customerHash) {
      body.customer_id = data.customerId;
      body.customer_hash = data.customerHash;
    }
    return body;
  }
  function browserLanguage() { return (data.language || navigator.language || "en").split("-")[0].toLowerCase(); }

  var host = el("div", { id: "kefu-chat" });
  var root = host.attachShadow({ mode: "open" });
  var sheet = el("link", { rel: "stylesheet", href: base + "/chat.css" });
  var launcher = el("button", { type: "button", class: "launcher", "aria-expanded": "false",
                                "aria-controls": "kefu-panel" });
  launcher.appendChild(el("span", { class: "icon", "aria-hidden": "true" }, "\uD83D\uDCAC"));
  var launcherLabel = el("span", { class: "launcher-label" }, "Chat");
  launcher.appendChild(launcherLabel);
  var panel = el("section", { id: "kefu-panel", class: "panel", role: "dialog", "aria-modal": "false",
                              "aria-labelledby": "kefu-title", hidden: "" });
  var header = el("header", { class: "header" });
  var title = el("h2", { id: "kefu-title", class: "title" });
  var close = el("button", { type: "button", class: "close" }, "\u00D7");
  header.appendChild(title);
  header.appendChild(close);
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions" });
  var typing = el("div", { class: "bubble typing", hidden: "" });
  typing.appendChild(el("span", { class: "dots", "aria-hidden": "true" }, "\u2022\u2022\u2022"));
  var typingLabel = el("span", { class: "sr-only" });
  typing.appendChild(typingLabel);
  var status = el("p", { class: "status", role: "status", hidden: "" });
  var quick = el("div", { class: "quick", role: "group" });
  var form = el("form", { class: "composer" });
  var inputLabel = el("label", { for: "kefu-input", class: "sr-only" });
  var input = el("textarea", { id: "kefu-input", rows: "1", maxlength: "2000", autocomplete: "off" });
  var send = el("button", { type: "submit", class: "send" });
  form.appendChild(inputLabel);
  form.appendChild(input);
  form.appendChild(send);
  [header, log, status, quick, form].forEach(function (node) { panel.appendChild(node); });
  log.appendChild(typing);
  [sheet, launcher, panel].forEach(function (node) { root.appendChild(node); });

  function labels() { return (state.settings && state.settings.labels) || {}; }
  function apply(settings) {
    state.settings = settings;
    var words = settings.labels;
    host.style.setProperty("--kefu-accent", settings.colour);
    host.setAttribute("data-position", settings.position);
    panel.setAttribute("dir", settings.direction);
    panel.setAttribute("lang", settings.language);
    title.textContent = settings.title;
    launcherLabel.textContent = words.open;
    launcher.setAttribute("aria-label", words.open);
    close.setAttribute("aria-label", words.close);
    log.setAttribute("aria-label", words.log);
    inputLabel.textContent = words.placeholder;
    input.setAttribute("placeholder", words.placeholder);
    input.setAttribute("maxlength", String(settings.max_text_chars));
    send.textContent = words.send;
    typingLabel.textContent = words.typing;
    if (!log.querySelector(".greeting")) {
      var greeting = bubble("bot", settings.greeting);
      greeting.classList.add("greeting");
      log.insertBefore(greeting, log.firstChild);
    }
  }

  function bubble(from, text) {
    var node = el("div", { class: "bubble from-" + from });
    var who = { shopper: "you", bot: "assistant", agent: "agent", system: "assistant" }[from] || "assistant";
    node.appendChild(el("span", { class: "sr-only" }, (labels()[who] || who) + ": "));
    node.appendChild(el("span", { class: "text" }, text));
    return node;
  }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function showStatus(text) {
    status.textContent = text || "";
    if (text) { status.removeAttribute("hidden"); } else { status.setAttribute("hidden", ""); }
  }

  function showMessage(event) {
    if (state.shown[event.id]) { return; }
    state.shown[event.id] = true;
    state.lastId = Math.max(state.lastId, event.id);
    var mine = event.client_id && state.pending[event.client_id];
    if (mine) {  // our own message, already on screen: now stored
      mine.node.classList.remove("pending", "failed");
      mine.node.setAttribute("data-id", String(event.id));
      delete state.pending[event.client_id];
      return;
    }
    var node = bubble(event.from, event.text);
    node.setAttribute("data-id", String(event.id));
    if (event.kind) { node.setAttribute("data-kind", event.kind); }
    (event.links || []).forEach(function (link) {
      if (!/^https?:\/\//.test(link.url)) { return; }
      var a = el("a", { href: link.url, target: "_blank", rel: "noopener noreferrer", class: "link" }, link.title);
      node.appendChild(a);
    });
    log.insertBefore(node, typing);
    if (event.from !== "shopper") { showQuickReplies(event.quick_replies || []); }
    scroll();
  }

  function showQuickReplies(items) {
    while (quick.firstChild) { quick.removeChild(quick.firstChild); }
    items.forEach(function (text) {
      var button = el("button", { type: "button", class: "chip" }, text);
      button.addEventListener("click", function () { submit(text); });
      quick.appendChild(button);
    });
  }

  function api(path, options) {
    options = options || {};
    var headers = { "Content-Type": "application/json" };
    if (state.token) { headers.Authorization = "Bearer " + state.token; }
    return fetch(base + path, { method: options.method || "POST", headers: headers, body: options.body,
                                credentials: "omit", mode: "cors", cache: "no-store", signal: options.signal });
  }

  // One session request at a time: a message sent while it is on its way waits for it, so it is
  // never stored under a second visitor. "renew" drops a token kefu refused; "rebind" asks again with
  // it for the account the page names now (kefu keeps a guest's chat when they sign in, no other).
  function session(again) {
    if (state.session && !again) { return state.session; }
    if (again === "renew") { forget(); }
    if (again) { state.token = null; }
    var generation = state.generation;
    var request = api("/chat/v1/session", { body: JSON.stringify(customer({ token: saved(),
                                                                             language: browserLanguage() })) })
      .then(function (response) {
        if (!response.ok) { throw new Error("session " + response.status); }
        return response.json();
      })
      .then(function (settings) {
        if (generation !== state.generation) { return; }  // reset() came meanwhile: this one is not ours
        if (state.visitor && state.visitor !== settings.visitor) { clearConversation(true); }
        state.visitor = settings.visitor;
        state.token = settings.token;
        save(settings.token);
        apply(settings);
        showStatus("");
      });
    state.session = request;
    request.catch(function () { if (state.session === request) { state.session = null; } });
    return request;
  }

  function submit(text) {
    text = text.trim();
    if (!text) { return; }
    showQuickReplies([]);
    var clientId = newId();
    var node = bubble("shopper", text);
    node.classList.add("pending");
    log.insertBefore(node, typing);
    scroll();
    state.pending[clientId] = { node: node, text: text, tries: 0 };
    start().then(function () { post(clientId); });
  }

  function post(clientId) {
    var item = state.pending[clientId];
    if (!item) { return; }
    item.tries += 1;
    var body = customer({ text: item.text, client_id: clientId, language: browserLanguage() });
    api("/chat/v1/messages", { body: JSON.stringify(body) }).then(function (response) {
      if (response.status === 202) { return; }
      if ((response.status === 401 || response.status === 409) && item.tries < 3) {  // expired; another account
        return session(response.status === 401 ? "renew" : "rebind").then(function () { listen(); post(clientId); });
      }
      if ((response.status === 429 || response.status >= 500) && item.tries < 6) {
        var wait = Math.min(60, Number(response.headers.get("Retry-After") || item.tries)) * 1000;
        setTimeout(function () { post(clientId); }, wait);
        return;
      }
      failed(clientId);
    }, function () {  // the network: the same client_id makes a resend safe
      if (item.tries < 6) { setTimeout(function () { post(clientId); }, 1000 * item.tries); } else { failed(clientId); }
    }).catch(function () { failed(clientId); });
  }

  function failed(clientId) {
    var item = state.pending[clientId];
    if (!item) { return; }  // the stream already showed it stored
    item.node.classList.add("failed");
    item.node.setAttribute("tabindex", "0");
    item.node.setAttribute("role", "button");
    item.node.setAttribute("title", labels().not_sent);
    var retry = function () {
      item.node.removeEventListener("click", retry);
      item.node.removeEventListener("keydown", key);
      ["tabindex", "role", "title"].forEach(function (name) { item.node.removeAttribute(name); });
      item.tries = 0;
      item.node.classList.remove("failed");
      showStatus("");
      post(clientId);
    };
    var key = function (event) { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); retry(); } };
    item.node.addEventListener("click", retry);
    item.node.addEventListener("keydown", key);
    showStatus(labels().not_sent);
  }

  function listen() {
    if (state.stream) { state.stream.abort(); }
    var controller = new AbortController();
    state.stream = controller;
    api("/chat/v1/events?after=" + state.lastId, { method: "GET", signal: controller.signal }).then(function (response) {
      if (response.status === 401) { return session("renew").then(listen); }
      if (!response.ok || !response.body) { throw new Error("events " + response.status); }
      state.retry = 0;
      showStatus("");
      host.setAttribute("data-live", "true");
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { throw new Error("stream ended"); }
          buffer += decoder.decode(chunk.value, { stream: true });
          var frames = buffer.split("\n\n");
          buffer = frames.pop();
          frames.forEach(frame);
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      if (controller.signal.aborted && state.stream !== controller) { return; }
      host.setAttribute("data-live", "false");
      state.retry = Math.min(state.retry + 1, 5);
      if (state.retry > 1) { showStatus(labels().reconnecting); }
      setTimeout(listen, Math.min(15000, 500 * Math.pow(2, state.retry - 1)));
    });
  }

  function frame(text) {
    var type = "message", payload = "";
    text.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) { type = line.slice(7); }
      if (line.indexOf("data: ") === 0) { payload += line.slice(6); }
    });
    if (!payload) { return; }
    var event = JSON.parse(payload);
    if (type === "message") { showMessage(event); }
    if (type === "typing") {
      if (event.on) { typing.removeAttribute("hidden"); scroll(); } else { typing.setAttribute("hidden", ""); }
    }
  }

  // Another visitor's conversation (a new token, another account): what was shown goes, except the
  // messages of this one still on their way.
  function clearConversation(keepPending) {
    Array.prototype.slice.call(log.querySelectorAll(".bubble")).forEach(function (node) {
      if (node === typing || node.classList.contains("greeting")) { return; }
      if (keepPending && !node.hasAttribute("data-id")) { return; }
      log.removeChild(node);
    });
    if (!keepPending) { state.pending = {}; }
    state.lastId = 0;
    state.shown = {};
    showQuickReplies([]);
  }

  // The shop's sign-out: nothing of this conversation stays in the browser or on the screen.
  function reset() {
    forget();
    state.generation += 1;
    if (state.stream) { state.stream.abort(); state.stream = null; }
    state.token = null; state.visitor = null; state.session = null; state.starting = null;
    clearConversation(false);
    typing.setAttribute("hidden", "");
    host.setAttribute("data-live", "false");
    if (!panel.hasAttribute("hidden")) { start(); }
  }
  window.kefuChat = { reset: reset };

  function start() {
    if (state.starting) { return state.starting; }
    state.starting = session().then(listen, function () {
      state.starting = null;
      showStatus(labels().unavailable || "The chat is unavailable right now.");
      host.setAttribute("data-live", "false");
    });
    return state.starting;
  }

  function open() {
    panel.removeAttribute("hidden");
    launcher.setAttribute("aria-expanded", "true");
    host.setAttribute("data-open", "true");
    start();
    input.focus();
  }
  function shut() {
    panel.setAttribute("hidden", "");
    launcher.setAttribute("aria-expanded", "false");
    host.setAttribute("data-open", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", function () { if (panel.hasAttribute("hidden")) { open(); } else { shut(); } });
  close.addEventListener("click", shut);
  panel.addEventListener("keydown", function (event) { if (event.key === "Escape") { shut(); } });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    submit(text);
  });

  function mount() {
    document.body.appendChild(host);
    host.setAttribute("data-open", "false");
  api("/chat/v1/settings?language=" + encodeURIComponent(browserLanguage()), { method: "GET" })
    .then(function (response) { if (!response.ok) { throw new Error("settings " + response.status); } return response.json(); })
    .then(function (settings) {
      if (!state.settings) { apply(settings); }
      if (saved()) { start(); }  // a returning visitor's conversation is there when they open the panel
      if (data.open === "true") { open(); }
    }, function () { host.setAttribute("data-live", "false"); });
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
