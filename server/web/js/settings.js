// Settings (#/settings): where push notifications go (the user's own
// Gotify server and application token), which kinds to push, a test push,
// and muting rooms (the header's bell in a room).

import { api, get, post } from "./api.js";
import { $, el, clear, show, toast } from "./ui.js";
import { rooms, roomTitle } from "./rooms.js";

const kinds = [
  ["dm", "Direct messages"],
  ["mention", "Mentions of me"],
  ["call", "Incoming calls"],
  ["file", "Files received by my devices"],
];

let state = null;        // the last GET /api/notify answer, or null
let available = true;    // false when the server has no /api/notify
const muted = new Set(); // muted room ids

/** initSettings wires the form and the room header's mute button. */
export function initSettings() {
  const box = $("notify-kinds");
  for (const [k, label] of kinds) {
    box.append(el("label", { class: "check", for: `notify-${k}` },
      el("input", { type: "checkbox", id: `notify-${k}`, name: k }), ` ${label}`));
  }
  $("notify-form").addEventListener("submit", (e) => { e.preventDefault(); save(); });
  $("notify-test").addEventListener("click", testPush);
  $("notify-remove").addEventListener("click", removeTarget);
  $("mute-room-btn").addEventListener("click", () => toggleMute(Number($("mute-room-btn").dataset.roomId)));
  document.addEventListener("mesh:room", (e) => renderMuteButton(e.detail.id));
}

/** loadNotify fetches the settings (after login); muted rooms come with them. */
export async function loadNotify() {
  try {
    state = await get("/api/notify");
    available = true;
  } catch (e) {
    if (e.status === 404) available = false; // an older server: no push settings
    state = null;
    return;
  }
  muted.clear();
  for (const id of state.muted_rooms || []) muted.add(id);
}

/** showSettings opens the view. */
export async function showSettings() {
  await loadNotify();
  show($("notify-unavailable"), !available);
  show($("notify-form"), available);
  if (state) fill();
  renderMuted();
}

function fill() {
  $("gotify-url").value = state.gotify_url || "";
  $("gotify-token").value = "";
  $("gotify-token").placeholder = state.token_set
    ? `set (${state.token_hint || "hidden"}); leave empty to keep it`
    : "the application token from Gotify → Apps";
  for (const [k] of kinds) $(`notify-${k}`).checked = state.kinds?.[k] !== false;
  show($("notify-remove"), !!state.gotify_url);
  $("notify-default").textContent = state.server_default
    ? (state.gotify_url ? "Your own target is used instead of the server's default." : "Without a target of your own, pushes go to the server's default Gotify.")
    : "This server has no default Gotify: set yours to get pushes.";
  const err = $("notify-last-error");
  err.textContent = state.last_error ? `Last push failed: ${state.last_error}` : "";
}

function status(text, kind = "") {
  const s = $("notify-status");
  s.textContent = text;
  s.dataset.kind = kind;
}

async function save() {
  const body = { gotify_url: $("gotify-url").value.trim(), kinds: {} };
  const token = $("gotify-token").value.trim();
  if (token) body.gotify_token = token;
  for (const [k] of kinds) body.kinds[k] = $(`notify-${k}`).checked;
  status("Saving…");
  try {
    state = await api("PUT", "/api/notify", body);
    fill();
    status("Saved.", "ok");
  } catch (e) {
    status(e.message, "error");
  }
}

async function testPush() {
  status("Sending a test push…");
  try {
    await post("/api/notify/test", {});
    status("Test push sent: check your Gotify app.", "ok");
  } catch (e) {
    status(e.message, "error");
  }
}

async function removeTarget() {
  if (!confirm("Remove your Gotify target? Pushes then go to the server's default, if it has one.")) return;
  try {
    state = await api("PUT", "/api/notify", { gotify_url: "" });
    fill();
    status("Removed.", "ok");
  } catch (e) {
    status(e.message, "error");
  }
}

// ---- muted rooms ------------------------------------------------------------

/** isMuted reports whether room id is muted for pushes. */
export function isMuted(id) { return muted.has(id); }

async function toggleMute(id) {
  if (!id) return;
  const want = !muted.has(id);
  try {
    await api("PUT", `/api/rooms/${id}/mute`, { muted: want });
    if (want) muted.add(id); else muted.delete(id);
    renderMuteButton(id);
    renderMuted();
    toast(want ? "Room muted: no pushes from it." : "Room unmuted.", "ok", 2500);
  } catch (e) {
    toast(`Could not change the mute: ${e.message}`, "error");
  }
}

/** refreshMute redraws the mute button of room id (the settings arrived). */
export function refreshMute(id) { renderMuteButton(id); }

function renderMuteButton(id) {
  const b = $("mute-room-btn");
  const r = rooms.get(id);
  show(b, available && !!r?.member);
  if (!r) return;
  b.dataset.roomId = String(id);
  const on = muted.has(id);
  b.setAttribute("aria-pressed", String(on));
  b.title = on ? "Muted: no push notifications from this room (click to unmute)" : "Mute push notifications from this room";
  b.setAttribute("aria-label", b.title);
  b.querySelector(".mute-label").textContent = on ? "Muted" : "Mute";
}

function renderMuted() {
  const ul = $("muted-rooms");
  clear(ul);
  for (const id of muted) {
    const r = rooms.get(id);
    const btn = el("button", { type: "button", class: "btn btn-small" }, "Unmute");
    btn.addEventListener("click", () => toggleMute(id));
    ul.append(el("li", { dataset: { roomId: id }, class: "card-row" },
      el("div", { class: "row-main row-title" }, r ? (r.kind === "direct" ? `@${roomTitle(r)}` : `#${r.name}`) : `room ${id}`), btn));
  }
  show($("muted-empty"), muted.size === 0);
}
