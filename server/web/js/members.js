// The members pane of the open room: who is in it, who is online
// (presence dots), a call button for everyone but me, and adding a member
// to a named room.

import { get, post } from "./api.js";
import { $, el, clear, show, toast, keepFocus } from "./ui.js";
import { rooms, presence, setPresence, openDirectWith } from "./rooms.js";
import { startCall } from "./call.js";
import { icon } from "./icons.js";

let me = "";
let roomID = 0;
let members = []; // [{username, online}] of the open room
let loadSeq = 0;

/** initMembers wires the member events and the add-member form. */
export function initMembers(ws) {
  ws.on("room.joined", (env) => {
    const { room, members: list } = env.payload;
    for (const m of list) presence.set(m.username, m.online);
    if (room.id === roomID) { members = list; render(); }
  });
  ws.on("room.member.joined", (env) => {
    const { room_id: id, username } = env.payload;
    if (id !== roomID || members.some((m) => m.username === username)) return;
    members.push({ username, online: presence.get(username) ?? true });
    render();
  });
  ws.on("room.member.left", (env) => {
    if (env.payload.room_id !== roomID) return;
    members = members.filter((m) => m.username !== env.payload.username);
    render();
  });
  document.addEventListener("mesh:presence", () => render());
  // Presence changes while we were disconnected raised no event for us.
  ws.on("system.welcome", () => { if (roomID) reload(roomID); });
  $("add-member-form").addEventListener("submit", (e) => { e.preventDefault(); addMember(); });
}

export function setMe(name) { me = name; }

/** showMembers loads and shows the members of room id (0 clears the pane). */
export async function showMembers(id) {
  roomID = id;
  members = [];
  render();
  if (id) await reload(id);
}

async function reload(id) {
  const mySeq = ++loadSeq;
  try {
    const ans = await get(`/api/rooms/${id}`);
    if (mySeq !== loadSeq) return;
    members = ans.members || [];
    for (const m of members) if (presence.get(m.username) !== m.online) setPresence(m.username, m.online);
    render();
  } catch (e) {
    if (mySeq === loadSeq) $("members-error").textContent = `Could not load members: ${e.message}`;
  }
}

function render() {
  keepFocus($("members"), draw);
}

function draw() {
  const list = $("members");
  clear(list);
  $("members-error").textContent = "";
  const room = rooms.get(roomID);
  const sorted = [...members].sort((a, b) => {
    const oa = isOnline(a) ? 0 : 1, ob = isOnline(b) ? 0 : 1;
    return oa - ob || a.username.localeCompare(b.username);
  });
  for (const m of sorted) {
    const on = isOnline(m);
    const li = el("li", { dataset: { username: m.username }, class: "member" },
      el("span", { class: `presence ${on ? "online" : "offline"}`, title: on ? "online" : "offline",
        role: "img", "aria-label": on ? "online" : "offline" }),
      el("span", { class: "member-name" }, m.username, m.username === me ? el("span", { class: "muted" }, " (you)") : null));
    if (m.username !== me) {
      const actions = el("span", { class: "member-actions" });
      if (room && room.kind !== "direct") {
        const dm = el("button", { type: "button", class: "icon-btn dm-btn", "aria-label": `Message ${m.username}`, title: `Message ${m.username}` }, icon("mail", 16));
        dm.addEventListener("click", () => openDirectWith(m.username).catch((e) => toast(e.message, "error")));
        actions.append(dm);
      }
      const call = el("button", { type: "button", class: "icon-btn call-btn", "aria-label": `Call ${m.username}`, title: `Call ${m.username}` }, icon("phone", 16));
      call.addEventListener("click", () => startCall(m.username));
      actions.append(call);
      li.append(actions);
    }
    list.append(li);
  }
  const count = members.length;
  $("members-count").textContent = count ? String(count) : "";
  show($("add-member-form"), !!room && room.kind !== "direct");
}

function isOnline(m) {
  if (m.username === me) return true;
  return presence.has(m.username) ? presence.get(m.username) : !!m.online;
}

async function addMember() {
  const input = $("add-member-name");
  const username = input.value.trim().replace(/^@/, "");
  if (!username || !roomID) return;
  try {
    await post(`/api/rooms/${roomID}/members`, { username });
    input.value = "";
    toast(`Added ${username}.`, "ok", 3000);
  } catch (e) {
    toast(`Could not add ${username}: ${e.message}`, "error");
  }
}
