// Transfers (#/transfers): what the user's agents reported sending and
// receiving — name, size, devices, the path (direct, through NAT or
// relayed), outcome and speed,
// and for a failed one why, as the sender and the receiver each saw it.

import { get } from "./api.js";
import { $, el, clear, show, humanSize, humanSpeed, ago, fullTime } from "./ui.js";

const pollEvery = 15000;
let timer = 0;
let ws = null;

/** initTransfers wires the form that asks one device to send to another. */
export function initTransfers(socket) {
  ws = socket;
  $("start-transfer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = $("start-status");
    const from = $("start-from").value, to = $("start-to").value;
    const paths = $("start-paths").value.split("\n").map((p) => p.trim()).filter(Boolean);
    if (from === to) { status.textContent = "Pick two different devices."; return; }
    status.textContent = "Asking…";
    try {
      await ws.request("transfer.start", { from_device: from, to_device: to, paths });
      status.textContent = `${from} is sending ${paths.length} path${paths.length === 1 ? "" : "s"} to ${to}; the result appears below.`;
      setTimeout(load, 2000);
    } catch (e) {
      status.textContent = `Not sent: ${e.message}`;
    }
  });
}

async function loadDevices() {
  let devices;
  try {
    ({ devices } = await get("/api/devices"));
  } catch {
    return;
  }
  for (const [id, pick] of [["start-from", 0], ["start-to", 1]]) {
    const sel = $(id), keep = sel.value;
    clear(sel);
    for (const d of devices) {
      sel.append(el("option", { value: d.device_id }, `${d.device_id}${d.online ? "" : " (offline)"}`));
    }
    sel.value = keep || (devices[pick] || devices[0] || {}).device_id || "";
  }
}

/** showTransfers opens the view and refreshes it while open. */
export function showTransfers() {
  loadDevices();
  load();
  clearInterval(timer);
  timer = setInterval(load, pollEvery);
}

/** hideTransfers stops refreshing. */
export function hideTransfers() {
  clearInterval(timer);
  timer = 0;
}

const pathText = { direct: "direct", nat: "through NAT", relay: "relayed" };
const pathTitle = {
  direct: "peer to peer, on the same network",
  nat: "peer to peer, through a NAT",
  relay: "through the server's relay (still end-to-end encrypted)",
};

/** pathLabel says how the agents reached each other; a transfer reported
 * by agents that predate the path says only whether it was direct. */
function pathLabel(t) {
  const p = t.path || "";
  const text = pathText[p] || (t.direct ? "direct (peer to peer)" : "relayed");
  return el("span", { class: "direct path", dataset: { path: p }, title: pathTitle[p] }, text);
}

const outcomeText = { ok: "verified", mismatch: "hash mismatch", failed: "failed", canceled: "canceled" };

/** failure says why a transfer is not ok, and what each side reported
 * when the two differ (a sender that lost its receiver, a receiver that
 * saw the data stop). Null for a transfer that went well. */
function failure(t) {
  if (t.outcome === "ok" && !(t.sender && t.sender.reason)) return null;
  const sides = [["sender", t.sender], ["receiver", t.receiver]].filter(([, s]) => s);
  const said = sides.filter(([, s]) => s.reason && s.reason !== t.reason);
  return el("div", { class: "reason row-sub", title: sides.map(([n, s]) => `${n}: ${s.outcome}${s.reason ? ` (${s.reason})` : ""}`).join("\n") },
    t.reason || (t.outcome === "ok" ? "verified by the receiver, though the sender saw an error" : outcomeText[t.outcome] || t.outcome),
    sides.length === 1 ? el("span", { class: "side" }, ` · reported by the ${sides[0][0]} only`) : null,
    ...said.map(([n, s]) => el("div", { class: "side" }, `${n}: ${s.reason}`)));
}

async function load() {
  let list;
  try {
    ({ transfers: list } = await get("/api/transfers"));
    $("transfers-error").textContent = "";
  } catch (e) {
    $("transfers-error").textContent = `Could not load transfers: ${e.message}`;
    return;
  }
  const ul = $("transfer-list");
  clear(ul);
  for (const t of list) {
    ul.append(el("li", { dataset: { transferId: t.id }, class: "card-row" },
      el("span", { class: `outcome badge outcome-${t.outcome}`, title: t.outcome }, outcomeText[t.outcome] || t.outcome),
      el("div", { class: "row-main" },
        el("div", { class: "name row-title" }, t.name || "(unnamed)"),
        failure(t),
        el("div", { class: "row-sub" },
          el("span", { class: "devices" }, `${t.from_device} → ${t.to_device}`),
          " · ",
          pathLabel(t),
          " · ",
          el("time", { class: "time", datetime: t.created_at, title: fullTime(t.created_at) }, ago(t.created_at)),
          t.blake3 ? el("span", { class: "mono blake3", title: `BLAKE3 ${t.blake3}` }, ` · b3:${t.blake3.slice(0, 12)}…`) : null)),
      el("div", { class: "row-figures" },
        el("span", { class: "size" }, humanSize(t.size)),
        el("span", { class: "speed", title: `${t.duration_ms} ms` }, humanSpeed(t.size, t.duration_ms)))));
  }
  show($("transfers-empty"), list.length === 0);
}
