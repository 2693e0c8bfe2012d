// The emulator page: polls the /_sim/ control API and posts user messages through it.
"use strict";

const POLL_MS = 500;
// The page opens a conversation at once: the one in the URL (#c2c:openid), else the newest, else
// a private chat with this user.
const DEFAULT_CONVERSATION = { scene: "c2c", target: "demo-user" };
const state = { current: null, known: [], transcriptKey: "", busy: false };
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!response.ok) {
    const detail = data && (data.message || data.error || data.detail);
    throw new Error(`${method} ${path}: HTTP ${response.status}${detail ? " " + detail : ""}`);
  }
  return data;
}

// The control API may answer with a bare list or wrap it; accept both.
function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

const keyOf = (c) => `${c.scene}:${c.target}`;

function sceneLabel(scene) {
  return { c2c: "C2C", group: "Group", channel: "Channel", dm: "DM" }[scene] || scene;
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren();
  const all = [...state.known];
  if (state.current && !all.some((c) => keyOf(c) === keyOf(state.current))) all.unshift(state.current);
  for (const conv of all) {
    const li = document.createElement("li");
    li.dataset.key = keyOf(conv);
    li.dataset.scene = conv.scene;
    li.dataset.target = conv.target;
    if (state.current && keyOf(conv) === keyOf(state.current)) li.classList.add("active");
    const badge = document.createElement("span");
    badge.className = `scene ${conv.scene}`;
    badge.textContent = sceneLabel(conv.scene);
    const name = document.createElement("span");
    name.className = "target";
    name.textContent = conv.target;
    const preview = document.createElement("span");
    preview.className = "preview";
    const last = conv.last || conv.last_message || null;
    preview.textContent = typeof last === "string" ? last : (last && last.content) || conv.preview || "";
    li.append(badge, name, preview);
    li.addEventListener("click", () => select({ scene: conv.scene, target: conv.target }));
    list.append(li);
  }
}

function isBot(entry) {
  return entry.direction === "out" || entry.from === "bot" || entry.author === "bot";
}

function failure(entry) {
  const code = entry.code ?? entry.err_code ?? (entry.error && entry.error.code);
  const status = entry.status ?? entry.http_status;
  if (code === undefined && !(typeof status === "number" && status >= 300) && !entry.error && entry.ok !== false) {
    return null;
  }
  if (code === 0 && !(typeof status === "number" && status >= 300)) return null;
  const message = entry.message || (entry.error && (entry.error.message || entry.error)) || "";
  const parts = [];
  if (code !== undefined && code !== null) parts.push(String(code));
  if (typeof message === "string" && message) parts.push(message);
  if (typeof status === "number") parts.push(`HTTP ${status}`);
  return parts.join(" · ") || "failed";
}

function entryText(entry) {
  if (entry.content) return entry.content;
  if (entry.markdown) return typeof entry.markdown === "string" ? entry.markdown : entry.markdown.content || "[markdown]";
  if (entry.recall) return `[recalled ${entry.recall}]`;
  if (entry.media || entry.msg_type === 7) return "[media]";
  if (entry.t && entry.direction === "in") return `[${entry.t}]`;
  return entry.summary || "";
}

// "ROBOT1.0_AbCd…Xy!!": enough to tell anchors apart; the full id is in the title and data-anchor.
function shortId(id) {
  return id.length > 24 ? `${id.slice(0, 14)}…${id.slice(-6)}` : id;
}

// How the emulator saw a bot message arrive: the route (the emulator's own `kind` when accepted,
// else the one the request asked for), the anchor it named, and its msg_seq.
function delivery(entry) {
  if (entry.recall) return null;
  const route = entry.kind || (entry.msg_id ? "passive" : entry.event_id ? "event" : "proactive");
  const anchor = entry.msg_id ? ["msg_id", entry.msg_id] : entry.event_id ? ["event_id", entry.event_id] : null;
  const seq = entry.msg_seq ?? (anchor ? "1 (omitted)" : null);
  const box = document.createElement("span");
  box.className = "delivery";
  box.dataset.route = route;
  const badge = document.createElement("span");
  badge.className = `route ${route}`;
  badge.textContent = route;
  const parts = [badge];
  if (anchor) {
    box.dataset.anchor = anchor[1];
    const id = document.createElement("span");
    id.className = "anchor";
    id.title = anchor[1];
    id.textContent = ` ${anchor[0]} ${shortId(anchor[1])}`;
    parts.push(id);
  }
  if (seq !== null) {
    box.dataset.msgSeq = String(seq);
    const n = document.createElement("span");
    n.className = "msg-seq";
    n.textContent = ` · msg_seq ${seq}`;
    parts.push(n);
  }
  box.append(...parts);
  return box;
}

function renderTranscript(entries) {
  const key = JSON.stringify(entries);
  if (key === state.transcriptKey) return;
  state.transcriptKey = key;
  const box = $("transcript");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren();
  for (const entry of entries) {
    const li = document.createElement("li");
    const bot = isBot(entry);
    const failed = bot ? failure(entry) : null;
    li.className = `msg ${bot ? "bot" : "user"}${failed ? " failed" : ""}`;
    li.dataset.direction = bot ? "out" : "in";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = bot ? "bot" : entry.author || entry.member_openid || "user";
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = entryText(entry);
    li.append(who, bubble);
    const route = bot ? delivery(entry) : null;
    if (route) li.append(route);
    if (failed) {
      const code = document.createElement("span");
      code.className = "code";
      code.textContent = `not delivered: ${failed}`;
      li.append(code);
    }
    box.append(li);
  }
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function select(conv) {
  state.current = conv;
  history.replaceState(null, "", `#${conv.scene}:${encodeURIComponent(conv.target)}`);
  state.transcriptKey = "";
  $("chat-title").textContent = `${sceneLabel(conv.scene)} · ${conv.target}`;
  $("composer").hidden = !(conv.scene === "c2c" || conv.scene === "group");
  $("group-controls").hidden = conv.scene !== "group";
  renderConversations();
  refresh();
}

async function refreshConversations() {
  const data = await api("GET", "/_sim/conversations");
  state.known = listOf(data, "conversations").filter((c) => c && c.scene && c.target !== undefined);
  renderConversations();
}

async function refreshTranscript() {
  if (!state.current) return;
  const { scene, target } = state.current;
  const query = new URLSearchParams({ scene, target });
  const data = await api("GET", `/_sim/transcript?${query}`);
  renderTranscript(listOf(data, "entries").length ? listOf(data, "entries") : listOf(data, "transcript"));
}

async function refreshStatus() {
  try {
    const gw = await api("GET", "/_sim/gateway");
    const online = gw.sessions.filter((s) => s.online).length;
    $("status").textContent = online ? `gateway: ${online} online` : "gateway: offline";
  } catch (_) {
    $("status").textContent = "";
  }
}

// Status lines bots post with PUT /_sim/notices/{source} (e.g. Herald's model state in the demo).
async function refreshNotices() {
  const data = await api("GET", "/_sim/notices");
  const box = $("notices");
  const notices = listOf(data, "notices");
  const key = JSON.stringify(notices.map((n) => [n.source, n.level, n.text]));
  if (key === box.dataset.key) return;
  box.dataset.key = key;
  box.replaceChildren();
  for (const notice of notices) {
    const div = document.createElement("div");
    div.className = `notice ${notice.level}`;
    div.dataset.source = notice.source;
    div.setAttribute("role", notice.level === "error" ? "alert" : "status");
    const source = document.createElement("span");
    source.className = "source";
    source.textContent = notice.source;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = notice.text;
    div.append(source, text);
    box.append(div);
  }
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    await Promise.all([refreshConversations(), refreshTranscript(), refreshStatus(), refreshNotices()]);
    $("error").textContent = "";
  } catch (err) {
    $("error").textContent = String(err.message || err);
  } finally {
    state.busy = false;
  }
}

async function send(event) {
  event.preventDefault();
  const conv = state.current;
  const content = $("content").value;
  if (!conv || !content.trim()) return;
  try {
    if (conv.scene === "c2c") {
      await api("POST", `/_sim/c2c/${encodeURIComponent(conv.target)}/messages`, { content });
    } else {
      await api("POST", `/_sim/groups/${encodeURIComponent(conv.target)}/messages`, {
        member_openid: $("member").value || "member-1",
        content,
        at_bot: $("at-bot").checked,
      });
    }
    $("content").value = "";
    $("error").textContent = "";
    state.transcriptKey = "";
    await refresh();
  } catch (err) {
    $("error").textContent = String(err.message || err);
  }
}

$("composer").addEventListener("submit", send);
$("content").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) send(event);
});
$("new-conversation").addEventListener("submit", (event) => {
  event.preventDefault();
  const target = $("new-target").value.trim();
  if (target) select({ scene: $("new-scene").value, target });
});

function fromHash() {
  const match = /^#(c2c|group|channel|dm):(.+)$/.exec(location.hash);
  return match ? { scene: match[1], target: decodeURIComponent(match[2]) } : null;
}

async function start() {
  let first = fromHash();
  if (!first) {
    try {
      const known = listOf(await api("GET", "/_sim/conversations"), "conversations");
      first = known.length ? { scene: known[0].scene, target: known[0].target } : null;
    } catch (_) {
      first = null;
    }
  }
  select(first || DEFAULT_CONVERSATION);
  setInterval(refresh, POLL_MS);
}

start();
