// Rooms: the list in the sidebar (mine, with unread counts, and public
// rooms to join), creating rooms, opening direct conversations, joining
// and leaving. Unread = the room's last_seq − the last seq this user saw
// there, remembered per user in localStorage.

import { get, post } from "./api.js";
import { $, el, clear, show, toast, keepFocus } from "./ui.js";
import { icon as svgIcon } from "./icons.js";

/** rooms maps room id → {id, name, visibility, kind, last_seq, member, peer}. */
export const rooms = new Map();
/** presence maps username → online (from member lists and presence.update). */
export const presence = new Map();

let ws = null;
let me = "";
let seen = {};
let current = 0;
let saveTimer = 0;
let refreshTimer = 0;
let pollTimer = 0;
let publicSig = "";
const items = new Map(); // room id → its <li> in #room-list

const seenKey = () => `mesh.seen.${me}`;

/** initRooms wires the sidebar forms and the room events. */
export function initRooms(socket) {
  ws = socket;
  $("new-room-form").addEventListener("submit", (e) => { e.preventDefault(); createRoom(); });
  $("dm-form").addEventListener("submit", (e) => { e.preventDefault(); openDirect(); });
  ws.on("room.joined", (env) => { upsert({ ...env.payload.room, member: true }); render(); });
  ws.on("room.left", (env) => onLeft(env.payload.room_id));
  ws.on("room.member.joined", (env) => {
    const { room_id: id, username } = env.payload;
    if (username !== me) return;
    if (rooms.has(id)) { rooms.get(id).member = true; render(); } else scheduleRefresh();
  });
  ws.on("room.member.left", (env) => {
    if (env.payload.username === me) onLeft(env.payload.room_id);
  });
  ws.on("presence.update", (env) => setPresence(env.payload.user, env.payload.online));
}

/** startRooms resets the state for user name (after login). */
export function startRooms(name) {
  me = name;
  rooms.clear();
  presence.clear();
  items.clear();
  clear($("room-list"));
  clear($("public-rooms"));
  publicSig = "";
  current = 0;
  try { seen = JSON.parse(localStorage.getItem(seenKey()) || "{}") || {}; } catch { seen = {}; }
}

/** loadRooms fetches GET /api/rooms and merges it (last_seq only grows). */
export async function loadRooms() {
  const { rooms: list } = await get("/api/rooms");
  const ids = new Set();
  for (const r of list) {
    ids.add(r.id);
    upsert(r);
  }
  for (const id of [...rooms.keys()]) if (!ids.has(id)) rooms.delete(id);
  render();
}

/**
 * pollRooms refreshes the list every 10 s while the page is visible: new
 * public rooms raise no event, and this also corrects any drift in last_seq.
 */
export function pollRooms(on) {
  clearInterval(pollTimer);
  if (on) pollTimer = setInterval(() => { if (document.visibilityState === "visible") loadRooms().catch(() => {}); }, 10000);
}

/** scheduleRefresh reloads the list soon (a message from an unknown room). */
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadRooms().catch(() => {}), 300);
}

function upsert(r) {
  const old = rooms.get(r.id);
  const merged = { ...old, ...r };
  merged.last_seq = Math.max(old?.last_seq || 0, r.last_seq || 0);
  if (!merged.peer && old?.peer) merged.peer = old.peer;
  rooms.set(r.id, merged);
  return merged;
}

/** roomTitle is the room's name, or the other user's for a direct room. */
export function roomTitle(r) {
  if (!r) return "";
  return r.kind === "direct" ? (r.peer || r.name) : r.name;
}

export function unread(r) {
  if (!r || !r.member) return 0;
  return Math.max(0, (r.last_seq || 0) - (seen[r.id] || 0));
}

/** noteMessage records a message's seq; it reports false for an unknown room. */
export function noteMessage(m) {
  const r = rooms.get(m.room_id);
  if (!r) { scheduleRefresh(); return false; }
  if (m.seq > (r.last_seq || 0)) r.last_seq = m.seq;
  if (m.from === me) markSeen(m.room_id, m.seq, false);
  renderItem(r);
  updateTitle();
  return true;
}

/** markSeen records that the user saw room id up to seq. */
export function markSeen(id, seq, rerender = true) {
  if ((seen[id] || 0) >= seq) return;
  seen[id] = seq;
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    try { localStorage.setItem(seenKey(), JSON.stringify(seen)); } catch { /* storage may be off */ }
  }, 200);
  if (rerender && rooms.has(id)) { renderItem(rooms.get(id)); updateTitle(); }
}

/** setCurrent marks room id (0: none) as the open one. */
export function setCurrent(id) {
  current = id;
  for (const [rid, li] of items) {
    if (rid === id) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
  }
}

export function setPresence(user, online) {
  presence.set(user, online);
  for (const r of rooms.values()) if (r.kind === "direct" && r.peer === user) renderItem(r);
  document.dispatchEvent(new CustomEvent("mesh:presence", { detail: { user, online } }));
}

function onLeft(id) {
  const r = rooms.get(id);
  if (!r) return;
  if (r.visibility === "public") r.member = false;
  else rooms.delete(id);
  render();
  if (id === current) location.hash = "#/chat";
}

// ---- rendering ----------------------------------------------------------

function sortKey(r) {
  return `${r.kind === "direct" ? 1 : 0}${roomTitle(r).toLowerCase()}`;
}

/** render redraws both lists, reusing the items that stay. */
export function render() {
  const mine = [...rooms.values()].filter((r) => r.member).sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
  const list = $("room-list");
  for (const [id, li] of items) if (!rooms.get(id)?.member) { li.remove(); items.delete(id); }
  mine.forEach((r, i) => {
    const li = renderItem(r);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  show($("rooms-empty"), mine.length === 0);

  const pub = [...rooms.values()].filter((r) => !r.member && r.visibility === "public")
    .sort((a, b) => a.name.localeCompare(b.name));
  const pl = $("public-rooms");
  const sig = JSON.stringify(pub.map((r) => [r.id, r.name]));
  if (sig !== publicSig) {
    publicSig = sig;
    keepFocus(pl, () => {
      clear(pl);
      for (const r of pub) {
        const btn = el("button", { type: "button", class: "btn btn-small join-btn", "aria-label": `Join ${r.name}` }, "Join");
        btn.addEventListener("click", () => joinRoom(r.id, btn));
        pl.append(el("li", { dataset: { roomId: r.id } },
          el("span", { class: "room-icon", "aria-hidden": "true" }, "#"),
          el("span", { class: "room-name" }, r.name), btn));
      }
    });
  }
  show($("public-empty"), pub.length === 0);
  setCurrent(current);
  updateTitle();
  document.dispatchEvent(new CustomEvent("mesh:rooms"));
}

function renderItem(r) {
  let li = items.get(r.id);
  if (!li) {
    const icon = el("span", { class: "room-icon", "aria-hidden": "true" });
    const link = el("a", { href: `#/chat/${r.id}`, class: "room-link" },
      icon, el("span", { class: "room-name" }), el("span", { class: "unread" }));
    li = el("li", { dataset: { roomId: r.id }, class: "room-item" }, link);
    items.set(r.id, li);
  }
  const direct = r.kind === "direct";
  li.classList.toggle("direct", direct);
  const icon = li.querySelector(".room-icon");
  if (direct) {
    const on = presence.get(r.peer) === true;
    icon.className = `room-icon presence ${on ? "online" : "offline"}`;
    icon.textContent = "";
  } else {
    icon.className = "room-icon";
    icon.replaceChildren(r.visibility === "private" ? svgIcon("lock", 14) : "#");
  }
  li.querySelector(".room-name").textContent = roomTitle(r);
  const n = unread(r);
  const badge = li.querySelector(".unread");
  badge.textContent = n > 0 ? String(n) : "";
  badge.hidden = n === 0;
  if (n > 0) badge.setAttribute("aria-label", `${n} unread`);
  else badge.removeAttribute("aria-label");
  li.classList.toggle("has-unread", n > 0);
  return li;
}

function updateTitle() {
  let total = 0;
  for (const r of rooms.values()) total += unread(r);
  document.title = total > 0 ? `(${total}) mesh` : "mesh";
}

// ---- actions ------------------------------------------------------------

function formError(msg) {
  const e = $("sidebar-error");
  e.textContent = msg || "";
  show(e, !!msg);
}

async function createRoom() {
  const input = $("new-room-name");
  const name = input.value.trim();
  if (!name) { formError("Type a name for the new room."); input.focus(); return; }
  const priv = $("new-room-private").checked;
  formError("");
  try {
    const r = await post("/api/rooms", { name, visibility: priv ? "private" : "public" });
    upsert({ ...r, member: true });
    render();
    input.value = "";
    $("new-room-private").checked = false;
    location.hash = `#/chat/${r.id}`;
  } catch (e) {
    formError(e.message);
  }
}

async function openDirect() {
  const input = $("dm-user");
  const username = input.value.trim().replace(/^@/, "");
  if (!username) { formError("Type the username of the person to message."); input.focus(); return; }
  formError("");
  try {
    await openDirectWith(username);
    input.value = "";
  } catch (e) {
    formError(e.message);
  }
}

/** openDirectWith opens (creating if needed) the direct room with username. */
export async function openDirectWith(username) {
  const r = await post("/api/rooms/direct", { username });
  upsert({ ...r, member: true });
  render();
  location.hash = `#/chat/${r.id}`;
  return r;
}

/** joinRoom joins a public room over the WebSocket and opens it. */
export async function joinRoom(id, btn) {
  if (btn) btn.disabled = true;
  try {
    await ws.request("room.join", { room_id: id });
    location.hash = `#/chat/${id}`;
  } catch (e) {
    toast(`Could not join: ${e.message}`, "error");
  } finally {
    if (btn) btn.disabled = false;
  }
}

/** leaveRoom leaves room id after the user confirms. */
export async function leaveRoom(id) {
  const r = rooms.get(id);
  if (!r || r.kind === "direct") return;
  if (!confirm(`Leave ${r.name}?${r.visibility === "private" ? " Only a member can add you back." : ""}`)) return;
  try {
    await ws.request("room.leave", { room_id: id });
  } catch (e) {
    toast(`Could not leave: ${e.message}`, "error");
  }
}
