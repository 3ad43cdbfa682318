// Devices (#/devices): the user's enrolled agents with their online state,
// revoking one, and the command that enrols a new machine.

import { get, del } from "./api.js";
import { $, el, clear, show, toast, ago, fullTime, copyButton, keepFocus } from "./ui.js";

const pollEvery = 10000;
let timer = 0;
let me = "";
let lastSig = "";

/** initDevices wires the device events. */
export function initDevices(ws) {
  ws.on("device.revoked", () => { if (timer) load(); });
  $("enrol-copy").append(copyButton(() => enrolCommand()));
}

function enrolCommand() {
  return `mesh agent login --server ${location.origin} --username ${me}`;
}

/** showDevices opens the view for user name and refreshes it while open. */
export function showDevices(name) {
  me = name;
  lastSig = "";
  $("enrol-command").textContent = enrolCommand();
  load();
  clearInterval(timer);
  timer = setInterval(load, pollEvery);
}

/** hideDevices stops refreshing. */
export function hideDevices() {
  clearInterval(timer);
  timer = 0;
}

async function load() {
  let list;
  try {
    ({ devices: list } = await get("/api/devices"));
    $("devices-error").textContent = "";
  } catch (e) {
    $("devices-error").textContent = `Could not load devices: ${e.message}`;
    return;
  }
  const sig = JSON.stringify(list) + Math.floor(Date.now() / 60000); // "5 min ago" moves on
  if (sig === lastSig) return; // unchanged: keep the DOM (and the focus) as it is
  lastSig = sig;
  keepFocus($("device-list"), () => render(list));
}

function render(list) {
  const ul = $("device-list");
  clear(ul);
  list.sort((a, b) => Number(b.online) - Number(a.online) || a.device_id.localeCompare(b.device_id));
  for (const d of list) {
    const revoke = el("button", { type: "button", class: "btn btn-small btn-danger-ghost revoke-btn", "aria-label": `Revoke ${d.device_id}` }, "Revoke");
    revoke.addEventListener("click", () => revokeDevice(d.device_id, revoke));
    const fp = d.fingerprint || "";
    ul.append(el("li", { dataset: { deviceId: d.device_id }, class: "card-row" },
      el("span", { class: `presence ${d.online ? "online" : "offline"}`, role: "img", "aria-label": d.online ? "online" : "offline" }),
      el("div", { class: "row-main" },
        el("div", { class: "device-name row-title" }, d.device_id),
        el("div", { class: "row-sub" },
          el("span", { class: "last-seen", title: d.last_seen ? fullTime(d.last_seen) : "" },
            d.online ? "online now" : `last seen ${ago(d.last_seen)}`),
          fp ? el("span", { class: "fingerprint mono", title: fp }, ` · ${fp.slice(0, 19)}…`) : null)),
      revoke));
  }
  show($("devices-empty"), list.length === 0);
}

async function revokeDevice(id, btn) {
  if (!confirm(`Revoke device "${id}"? Its agent is disconnected at once and must log in again to come back.`)) return;
  btn.disabled = true;
  try {
    await del(`/api/devices/${encodeURIComponent(id)}`);
    toast(`Device ${id} revoked.`, "ok", 4000);
    await load();
  } catch (e) {
    btn.disabled = false;
    toast(`Could not revoke ${id}: ${e.message}`, "error");
  }
}
