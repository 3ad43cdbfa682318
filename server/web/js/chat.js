// The open room: its messages in seq order, history loaded on scrolling
// up (GET …/messages?before=), live messages, resume after a reconnect
// (room.sync from the last seq held, duplicates dropped by seq), and
// sending with a pending bubble until the server's echo replaces it.

import { get } from "./api.js";
import { $, el, show, toast, shortTime, fullTime, randomID } from "./ui.js";
import { renderText } from "./richtext.js";
import { rooms, roomTitle, noteMessage, markSeen, setCurrent, joinRoom, leaveRoom, scheduleRefresh } from "./rooms.js";
import { showMembers } from "./members.js";
import { startCall } from "./call.js";

const pageSize = 50;
let ws = null;
let me = "";
let current = 0;
const caches = new Map();  // room id → {msgs: [sorted by seq], bySeq: Map, hasMore, loading, loaded}
const pending = new Map(); // client_msg_id → {roomID, text, node, state}

/** initChat wires the message list and the chat events. */
export function initChat(socket) {
  ws = socket;
  ws.on("chat.message.created", (env) => accept(env.payload.message, true));
  ws.on("room.synced", (env) => onSynced(env.payload));
  ws.on("system.welcome", () => resume());
  const list = $("messages");
  list.addEventListener("scroll", () => {
    if (list.scrollTop < 80) loadOlder();
    if (nearBottom()) show($("new-below"), false);
  });
  $("load-older").addEventListener("click", () => loadOlder());
  $("new-below").addEventListener("click", () => scrollToBottom());
  $("leave-room-btn").addEventListener("click", () => leaveRoom(current));
  $("room-call-btn").addEventListener("click", () => {
    const r = rooms.get(current);
    if (r?.peer) startCall(r.peer);
  });
  $("join-current-btn").addEventListener("click", () => joinRoom(current));
  document.addEventListener("mesh:rooms", () => refreshHeader());
}

/** startChat resets the state for user name (after login). */
export function startChat(name) {
  me = name;
  current = 0;
  caches.clear();
  pending.clear();
  clearMessages();
}

// clearMessages empties the list but keeps its #load-older button.
function clearMessages() {
  for (const n of [...$("messages").children]) if (n.id !== "load-older") n.remove();
}

/** currentRoom is the open room's id, or 0. */
export function currentRoom() { return current; }

/** openRoom shows room id (0: the "pick a room" state). */
export async function openRoom(id) {
  current = id;
  setCurrent(id);
  const list = $("messages");
  clearMessages();
  show($("new-below"), false);
  const r = rooms.get(id);
  renderHeader(r);
  document.dispatchEvent(new CustomEvent("mesh:room", { detail: { id } }));
  showMembers(r?.member ? id : 0);
  if (id && !r) scheduleRefresh(); // perhaps a room we were just added to
  if (!r || !r.member) {
    show($("load-older"), false);
    return;
  }
  let c = caches.get(id);
  if (!c) {
    c = { msgs: [], bySeq: new Map(), hasMore: false, loading: false, loaded: false };
    caches.set(id, c);
  }
  for (const m of c.msgs) insertNode(m);
  for (const p of pending.values()) if (p.roomID === id) list.append(p.node);
  updateOlder(c);
  scrollToBottom();
  if (!c.loaded) await loadLatest(id, c);
  markCurrentSeen();
}

function renderHeader(r) {
  const member = !!r?.member;
  $("room-title").textContent = r ? (r.kind === "direct" ? `@${roomTitle(r)}` : `#${r.name}`) : "";
  $("room-topic").textContent = !r ? "" : r.kind === "direct" ? "direct message"
    : `${r.visibility} room`;
  show($("room-header"), !!r);
  show($("chat-empty"), !r);
  $("chat-empty-text").textContent = current && !r
    ? "This room does not exist, or you are not a member of it."
    : "Pick a room on the left, create one, or message someone.";
  show($("join-prompt"), !!r && !member);
  show($("messages"), member);
  show($("composer-form"), member);
  show($("room-call-btn"), r?.kind === "direct" && !!r.peer);
  show($("leave-room-btn"), member && r.kind !== "direct");
  $("composer").placeholder = r ? `Message ${r.kind === "direct" ? "@" + roomTitle(r) : "#" + r.name}` : "";
}

/** refreshHeader redraws the open room's header (its data changed). */
export function refreshHeader() {
  if (current) {
    const r = rooms.get(current);
    const wasShown = !$("messages").hidden;
    renderHeader(r);
    if (r?.member && !wasShown) openRoom(current);
  }
}

// ---- history --------------------------------------------------------------

async function loadLatest(id, c) {
  c.loading = true;
  try {
    const ans = await get(`/api/rooms/${id}/messages?limit=${pageSize}`);
    for (const m of ans.messages) add(c, m, id === current);
    c.hasMore = ans.has_more;
    c.loaded = true;
    if (id === current) { updateOlder(c); scrollToBottom(); }
  } catch (e) {
    if (id === current) toast(`Could not load messages: ${e.message}`, "error");
  } finally {
    c.loading = false;
  }
}

async function loadOlder() {
  const id = current;
  const c = caches.get(id);
  if (!c || c.loading || !c.hasMore || !c.loaded) return;
  c.loading = true;
  $("load-older").disabled = true;
  const list = $("messages");
  const fromBottom = list.scrollHeight - list.scrollTop;
  try {
    const before = c.msgs.length ? c.msgs[0].seq : 0;
    const q = before ? `before=${before}&` : "";
    const ans = await get(`/api/rooms/${id}/messages?${q}limit=${pageSize}`);
    for (const m of ans.messages) add(c, m, id === current);
    c.hasMore = ans.has_more;
    if (id === current) list.scrollTop = list.scrollHeight - fromBottom;
  } catch (e) {
    toast(`Could not load older messages: ${e.message}`, "error");
  } finally {
    c.loading = false;
    $("load-older").disabled = false;
    if (id === current) updateOlder(c);
  }
}

function updateOlder(c) {
  const b = $("load-older");
  show(b, c.loaded && c.hasMore);
  const start = $("history-start");
  const showStart = c.loaded && !c.hasMore;
  if (showStart && !start) {
    const r = rooms.get(current);
    const text = c.msgs.length === 0
      ? "No messages yet. Say hello!"
      : `This is the beginning of ${r?.kind === "direct" ? "your conversation with " + roomTitle(r) : "#" + (r?.name || "")}.`;
    b.after(el("p", { id: "history-start", class: "history-start" }, text));
  } else if (start) {
    if (!showStart) start.remove();
    else if (c.msgs.length > 0) start.textContent = start.textContent.replace("No messages yet. Say hello!", "The conversation starts here.");
  }
}

// ---- resume ---------------------------------------------------------------

// resume asks, for every room whose messages we hold, for what came after
// the last one: room.sync with its seq. Rooms we only list get fresh
// last_seq values from GET /api/rooms (app.js), which sets their unread.
function resume() {
  for (const [id, c] of caches) {
    if (!c.loaded || !rooms.get(id)?.member) continue;
    sync(id, c.msgs.length ? c.msgs[c.msgs.length - 1].seq : 0);
  }
  for (const p of pending.values()) if (p.state !== "failed") transmit(p);
}

function sync(id, since) {
  ws.request("room.sync", { room_id: id, since }).catch((e) => {
    if (e.code !== "offline") console.warn(`room.sync ${id}:`, e.message);
  });
}

function onSynced({ room_id: id, messages, has_more: more }) {
  for (const m of messages) accept(m, false);
  if (more && messages.length) sync(id, messages[messages.length - 1].seq);
}

// ---- incoming messages ------------------------------------------------

function accept(m, live) {
  const known = noteMessage(m);
  const p = pending.get(m.client_msg_id);
  if (p && m.from === me && p.roomID === m.room_id) {
    p.node.remove();
    pending.delete(m.client_msg_id);
  }
  const c = caches.get(m.room_id);
  const isNew = c ? add(c, m, m.room_id === current) : false;
  if (m.room_id === current) {
    if (isNew && (m.from === me || nearBottom(160))) scrollToBottom();
    else if (isNew) show($("new-below"), true);
    markCurrentSeen();
    if (c) updateOlder(c);
  }
  document.dispatchEvent(new CustomEvent("mesh:message", { detail: m }));
  if (live && known && m.from !== me && m.room_id !== current && mentionsMe(m.text)) {
    const r = rooms.get(m.room_id);
    toast(`${m.from} mentioned you in ${r?.kind === "direct" ? "a direct message" : "#" + r?.name}`, "info");
  }
}

function mentionsMe(text) {
  return new RegExp(`(^|[^\\w@.])@${me.replace(/[.]/g, "\\.")}(?![\\w-])`, "i").test(text);
}

// add puts m in c in seq order; it returns false for a duplicate.
function add(c, m, render) {
  if (c.bySeq.has(m.seq)) return false;
  c.bySeq.set(m.seq, m);
  const msgs = c.msgs;
  let i = msgs.length;
  while (i > 0 && msgs[i - 1].seq > m.seq) i--;
  msgs.splice(i, 0, m);
  if (render) insertNode(m);
  return true;
}

function markCurrentSeen() {
  const c = caches.get(current);
  const r = rooms.get(current);
  if (!r) return;
  const last = Math.max(r.last_seq || 0, c?.msgs.length ? c.msgs[c.msgs.length - 1].seq : 0);
  markSeen(current, last);
}

// ---- rendering --------------------------------------------------------

function messageNode(m, { pendingState } = {}) {
  const { frag, mentioned } = renderText(m.text, me);
  const time = pendingState
    ? el("span", { class: "time" }, pendingState)
    : el("time", { class: "time", datetime: m.created_at, title: fullTime(m.created_at) }, shortTime(m.created_at));
  const node = el("div", { class: "message", role: "article", "aria-label": `${m.from}` },
    el("div", { class: "meta" },
      el("span", { class: `from ${colorClass(m.from)}` }, m.from), time),
    el("div", { class: "text" }, frag));
  if (m.from === me) node.classList.add("mine");
  if (mentioned) node.classList.add("mentions-me");
  return node;
}

function insertNode(m) {
  const list = $("messages");
  const node = messageNode(m);
  node.dataset.seq = String(m.seq);
  // Usually the newest: before the pending bubbles, after the rest.
  let after = null;
  for (const n of list.querySelectorAll(".message[data-seq]")) {
    if (Number(n.dataset.seq) > m.seq) { after = n; break; }
  }
  if (!after) after = list.querySelector(".message.pending");
  list.insertBefore(node, after);
}

const palette = ["c-green", "c-pink", "c-blue", "c-orange", "c-purple", "c-yellow"];
function colorClass(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return palette[h % palette.length];
}

function nearBottom(slack = 80) {
  const l = $("messages");
  return l.scrollHeight - l.scrollTop - l.clientHeight < slack;
}

function scrollToBottom() {
  const l = $("messages");
  l.scrollTop = l.scrollHeight;
  show($("new-below"), false);
}

// ---- sending ------------------------------------------------------------

/** sendMessage sends text to the open room; the bubble waits for the echo. */
export function sendMessage(text) {
  const r = rooms.get(current);
  if (!r || !r.member) return false;
  const id = randomID(12);
  const p = { roomID: current, text, clientID: id, state: "sending", node: null };
  p.node = messageNode({ from: me, text }, { pendingState: "sending…" });
  p.node.classList.add("pending");
  p.node.dataset.clientMsgId = id;
  pending.set(id, p);
  $("messages").append(p.node);
  scrollToBottom();
  transmit(p);
  return true;
}

function transmit(p) {
  setPendingState(p, ws.online ? "sending…" : "waiting for connection…");
  if (!ws.online) return;
  ws.request("chat.message.send", { room_id: p.roomID, text: p.text, client_msg_id: p.clientID })
    .catch((e) => {
      if (!pending.has(p.clientID)) return;
      if (e.code === "offline" || e.code === "timeout") {
        setPendingState(p, "waiting for connection…"); // sent again after reconnecting
      } else {
        p.state = "failed";
        setPendingState(p, `not sent: ${e.message}`);
        addRetry(p);
      }
    });
}

function setPendingState(p, text) {
  p.node.querySelector(".time").textContent = text;
  p.node.classList.toggle("failed", p.state === "failed");
}

function addRetry(p) {
  const retry = el("button", { type: "button", class: "btn btn-small" }, "Retry");
  const drop = el("button", { type: "button", class: "btn btn-small btn-ghost" }, "Discard");
  retry.addEventListener("click", () => { p.state = "sending"; retry.remove(); drop.remove(); transmit(p); });
  drop.addEventListener("click", () => { p.node.remove(); pending.delete(p.clientID); });
  p.node.querySelector(".meta").append(retry, drop);
}
