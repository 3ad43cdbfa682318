// 1:1 audio/video calls over WebRTC, signalled through the WebSocket:
// call.invite → call.accept → the caller's call.offer → the callee's
// call.answer, call.ice both ways, call.hangup / call.reject to end.
// Signalling is handled strictly in order (one promise chain) and remote
// ICE candidates wait until the remote description is set.

import { get } from "./api.js";
import { $, show, toast, mmss, randomID } from "./ui.js";

const ringTimeout = 45000;     // an unanswered invite gives up
const endedLinger = 3000;      // "ended" shows this long, then idle
const connectTimeout = 30000;  // accepted but no media path by then: give up
const pathRecheck = 3000;      // how often a connected call looks at its ICE pair again
const pathRetry = 500;         // sooner while no pair is selected yet

let ws = null;
let me = "";
let call = null;               // the current call, or null when idle
let chain = Promise.resolve(); // signalling, one event at a time
let idleTimer = 0;
let ring = null;

/**
 * window.meshCall.pc is the current RTCPeerConnection or null, and
 * window.meshCall.path how a connected call's media goes: "direct",
 * "relayed" (through the server's TURN relay) or "" (not known yet), for tests.
 */
window.meshCall = {
  get pc() { return call?.pc || null; },
  get path() { return call?.state === "connected" ? call.path : ""; },
  get state() { return $("call-panel")?.dataset.state || "idle"; },
};

/** initCall wires the call panel and the call.* events. */
export function initCall(socket) {
  ws = socket;
  for (const t of ["invite", "accept", "reject", "offer", "answer", "ice", "hangup"]) {
    ws.on(`call.${t}`, (env) => {
      chain = chain.then(() => onSignal(t, env)).catch((e) => fail(e));
    });
  }
  ws.on("system.error", (env) => {
    const ref = env.payload.ref_id;
    if (call && ref && call.frames.has(ref)) {
      env.handled = true;
      end(env.payload.message);
    }
  });
  $("call-accept").addEventListener("click", accept);
  $("call-reject").addEventListener("click", () => {
    if (!call) return;
    signal("call.reject", { reason: "declined" });
    end("call declined");
  });
  $("call-hangup").addEventListener("click", hangup);
  $("call-mute").addEventListener("click", () => toggleTrack("audio", "call-mute", "Mute microphone", "Unmute microphone"));
  $("call-camera").addEventListener("click", () => toggleTrack("video", "call-camera", "Turn camera off", "Turn camera on"));
  window.addEventListener("pagehide", () => { if (call && call.state !== "ended") signal("call.hangup", { reason: "left" }); });
  setState("idle");
}

export function setCallUser(name) {
  me = name;
}

/** endCallForLogout hangs up quietly (logging out). */
export function endCallForLogout() {
  if (call && call.state !== "ended") signal("call.hangup", { reason: "left" });
  cleanup();
  call = null;
  setState("idle");
}

/** startCall rings user with a video call. */
export async function startCall(user) {
  if (user === me) return;
  if (call && call.state !== "ended") { toast("Finish the current call first.", "error"); return; }
  if (!ws.online) { toast("Not connected to the server; try again when the connection is back.", "error"); return; }
  if (!mediaOK()) return;
  resetIdle();
  call = newCall(randomID(12), user, "caller");
  setState("outgoing");
  try {
    await getMedia(call);
  } catch (e) {
    end(`Camera or microphone unavailable: ${e.message}`);
    return;
  }
  if (call?.state !== "outgoing") return; // hung up while the camera started
  signal("call.invite", { media: "video" });
  call.ringTimer = setTimeout(() => {
    if (call?.state === "outgoing") { signal("call.hangup", { reason: "no answer" }); end(`${user} did not answer`); }
  }, ringTimeout);
}

function newCall(id, peer, role) {
  return { id, peer, role, state: "", pc: null, local: null, ice: [], remoteSet: false,
    frames: new Set(), connectedAt: 0, tick: 0, ringTimer: 0, connectTimer: 0, config: rtcConfig(),
    path: "", pathTimer: 0 };
}

/**
 * rtcConfig fetches the ICE servers and transport policy for one call (TURN
 * credentials expire, so every call asks again). When the server does not
 * answer the call fails with a CallConfigError: guessing "all" would let a
 * call go direct on a server whose admin wants every call relayed.
 */
function rtcConfig() {
  const p = get("/api/rtc/config").then((c) => ({
    iceServers: (c?.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
    iceTransportPolicy: c?.ice_transport_policy === "relay" ? "relay" : "all",
  }), (e) => {
    const err = new Error(`could not get the call settings from the server (${e.message}); try again`);
    err.name = "CallConfigError";
    throw err;
  });
  p.catch(() => {}); // a call rejected before it connects never awaits it
  return p;
}

function mediaOK() {
  if (navigator.mediaDevices?.getUserMedia && window.RTCPeerConnection) return true;
  toast(window.isSecureContext ? "This browser cannot make calls."
    : "Calls need a secure page: open mesh over HTTPS (or on localhost).", "error");
  return false;
}

async function getMedia(c) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch (e) {
    if (e.name !== "NotFoundError" && e.name !== "NotReadableError" && e.name !== "OverconstrainedError") throw e;
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false }); // no camera: audio only
  }
  if (call !== c || c.state === "ended") { stream.getTracks().forEach((t) => t.stop()); return; }
  c.local = stream;
  $("local-video").srcObject = stream;
  $("call-camera").disabled = stream.getVideoTracks().length === 0;
}

/** signal sends a call.* frame about the current call to its peer. */
function signal(type, extra = {}) {
  if (!call) return;
  const id = ws.send(type, { call_id: call.id, to_user: call.peer, ...extra });
  if (id) call.frames.add(id);
}

async function onSignal(kind, env) {
  const p = env.payload || {};
  const from = env.from;
  if (from === me) return mySessionActed(kind, p);
  if (kind === "invite") return incoming(from, p);
  if (!call || p.call_id !== call.id || from !== call.peer) return; // stale or not ours
  switch (kind) {
    case "accept":
      if (call.role !== "caller" || call.state !== "outgoing") return;
      clearTimeout(call.ringTimer);
      setState("connecting");
      await makePC(call);
      if (!call?.pc) return; // ended meanwhile
      await call.pc.setLocalDescription(await call.pc.createOffer());
      signal("call.offer", { sdp: call.pc.localDescription.sdp });
      return;
    case "offer":
      if (call.role !== "callee" || !call.pc) return;
      await call.pc.setRemoteDescription({ type: "offer", sdp: p.sdp });
      await remoteSet(call);
      await call.pc.setLocalDescription(await call.pc.createAnswer());
      signal("call.answer", { sdp: call.pc.localDescription.sdp });
      return;
    case "answer":
      if (call.role !== "caller" || !call.pc) return;
      await call.pc.setRemoteDescription({ type: "answer", sdp: p.sdp });
      await remoteSet(call);
      return;
    case "ice":
      if (!p.candidate) return;
      if (call.pc && call.remoteSet) await addIce(call.pc, p.candidate);
      else call.ice.push(p.candidate);
      return;
    case "reject":
      end(p.reason === "busy" ? `${from} is busy` : `${from} declined the call`);
      return;
    case "hangup":
      end(call.state === "incoming" ? `missed call from ${from}` : "call ended");
      return;
  }
}

// mySessionActed: the server relays my other sessions' call frames to me,
// so a second tab stops ringing when this user answers elsewhere.
function mySessionActed(kind, p) {
  if (!call || p.call_id !== call.id || call.state !== "incoming") return;
  if (kind === "accept" || kind === "reject" || kind === "hangup") {
    cleanup();
    call = null;
    setState("idle");
    if (kind === "accept") toast("Call answered on another device.", "info", 3000);
  }
}

function incoming(from, p) {
  if (call && call.state !== "ended") {
    if (p.call_id !== call.id) ws.send("call.reject", { call_id: p.call_id, to_user: from, reason: "busy" });
    return;
  }
  resetIdle();
  call = newCall(p.call_id, from, "callee");
  setState("incoming");
  call.ringTimer = setTimeout(() => { if (call?.state === "incoming") end(`missed call from ${from}`); }, ringTimeout + 5000);
}

async function accept() {
  const c = call;
  if (!c || c.state !== "incoming" || !mediaOK()) return;
  clearTimeout(c.ringTimer);
  setState("connecting");
  try {
    await getMedia(c);
    if (call !== c || c.state === "ended") return;
    await makePC(c);
    if (!c.pc) return;
  } catch (e) {
    const config = e.name === "CallConfigError";
    signal("call.reject", { reason: config ? "no call settings" : "media unavailable" });
    end(config ? e.message : `Camera or microphone unavailable: ${e.message}`);
    return;
  }
  if (call === c && c.state === "connecting") signal("call.accept", {});
}

function hangup() {
  if (!call || call.state === "ended") return;
  signal("call.hangup", {});
  end("call ended");
}

async function makePC(c) {
  const config = await c.config;
  if (call !== c || c.state === "ended") return;
  const pc = new RTCPeerConnection(config);
  c.pc = pc;
  for (const t of c.local ? c.local.getTracks() : []) pc.addTrack(t, c.local);
  pc.onicecandidate = (e) => { if (e.candidate && call === c) signal("call.ice", { candidate: e.candidate.toJSON() }); };
  pc.ontrack = (e) => {
    const v = $("remote-video");
    if (e.streams[0]) v.srcObject = e.streams[0];
    else {
      if (!(v.srcObject instanceof MediaStream)) v.srcObject = new MediaStream();
      v.srcObject.addTrack(e.track);
    }
    v.play().catch(() => {}); // autoplay may wait for a gesture; the controls stay usable
  };
  pc.onconnectionstatechange = () => {
    if (call !== c) return;
    const s = pc.connectionState;
    if (s === "connected" && c.state !== "connected") connected(c);
    else if (s === "disconnected") $("call-status").textContent = "connection lost, retrying…";
    else if (s === "failed") { signal("call.hangup", { reason: "failed" }); end("connection failed: no network path between you, not even through the server's relay (its admin may need to forward the TURN ports)"); }
  };
}

async function remoteSet(c) {
  c.remoteSet = true;
  const queued = c.ice.splice(0);
  for (const cand of queued) await addIce(c.pc, cand);
}

async function addIce(pc, cand) {
  try { await pc.addIceCandidate(cand); } catch (e) { console.warn("ICE candidate refused:", e.message); }
}

function connected(c) {
  c.connectedAt = Date.now();
  setState("connected");
  const tick = () => { $("call-duration").textContent = mmss((Date.now() - c.connectedAt) / 1000); };
  tick();
  c.tick = setInterval(tick, 1000);
  watchPath(c);
}

// watchPath shows in #call-path whether c's media goes direct or through
// the relay, and looks again while connected: ICE may switch pairs.
async function watchPath(c) {
  let path = "";
  try { path = await mediaPath(c.pc); } catch (e) { console.warn("call path:", e.message); }
  if (call !== c || c.state !== "connected" || !c.pc) return;
  c.path = path;
  showPath(path);
  c.pathTimer = setTimeout(() => watchPath(c), path ? pathRecheck : pathRetry);
}

/**
 * mediaPath is "relayed" when either end of pc's selected ICE candidate pair
 * is a TURN relay candidate, "direct" when neither is, and "" while no pair
 * is selected.
 */
async function mediaPath(pc) {
  const stats = await pc.getStats();
  const pair = selectedPair(stats);
  if (!pair) return "";
  const types = [pair.localCandidateId, pair.remoteCandidateId].map((id) => stats.get(id)?.candidateType);
  if (types.includes("relay")) return "relayed";
  return types.every(Boolean) ? "direct" : "";
}

/** selectedPair is the transport's selected candidate-pair report, or a nominated succeeded one, or null. */
function selectedPair(stats) {
  for (const r of stats.values()) {
    if (r.type === "transport" && r.selectedCandidatePairId && stats.has(r.selectedCandidatePairId)) return stats.get(r.selectedCandidatePairId);
  }
  for (const r of stats.values()) {
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") return r;
  }
  return null;
}

const pathText = { direct: "direct", relayed: "relayed through the server" };

/** showPath sets #call-path to path ("direct", "relayed" or "" to hide it). */
function showPath(path) {
  const el = $("call-path");
  el.dataset.path = path;
  el.textContent = pathText[path] || "";
  el.title = path === "relayed" ? "No direct network path: the media goes through the mesh server's TURN relay."
    : path === "direct" ? "The media goes straight between you and the other person." : "";
  show(el, !!path);
}

function toggleTrack(kind, btnID, onLabel, offLabel) {
  if (!call?.local) return;
  const tracks = kind === "audio" ? call.local.getAudioTracks() : call.local.getVideoTracks();
  if (!tracks.length) return;
  const off = tracks[0].enabled; // enabled now → turning off
  for (const t of tracks) t.enabled = !off;
  const b = $(btnID);
  b.setAttribute("aria-pressed", String(off));
  b.setAttribute("aria-label", off ? offLabel : onLabel);
  b.title = b.getAttribute("aria-label");
}

function fail(e) {
  console.error("call signalling:", e);
  if (call && call.state !== "ended") { signal("call.hangup", { reason: "error" }); end(`Call failed: ${e.message}`); }
}

function cleanup() {
  if (!call) return;
  clearTimeout(call.ringTimer);
  clearTimeout(call.connectTimer);
  clearInterval(call.tick);
  clearTimeout(call.pathTimer);
  call.local?.getTracks().forEach((t) => t.stop());
  if (call.pc) { call.pc.onconnectionstatechange = null; call.pc.close(); }
  call.pc = null;
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
}

function end(message) {
  if (!call) return;
  cleanup();
  setState("ended", message);
  resetIdle();
  idleTimer = setTimeout(() => { call = null; setState("idle"); }, endedLinger);
}

function resetIdle() {
  clearTimeout(idleTimer);
  if (call?.state === "ended") call = null;
}

const statusText = {
  outgoing: "ringing…",
  incoming: "is calling you (video)",
  connecting: "connecting…",
  connected: "connected",
};

function setState(state, message = "") {
  if (call) {
    call.state = state;
    clearTimeout(call.connectTimer);
    if (state === "connecting") {
      const c = call;
      c.connectTimer = setTimeout(() => {
        if (call === c && c.state === "connecting") { signal("call.hangup", { reason: "timeout" }); end("could not connect: no network path between you, not even through the server's relay (its admin may need to forward the TURN ports)"); }
      }, connectTimeout);
    }
  }
  const panel = $("call-panel");
  panel.dataset.state = state;
  show(panel, state !== "idle");
  $("call-peer").textContent = call?.peer || "";
  $("call-status").textContent = message || statusText[state] || "";
  const active = ["outgoing", "connecting", "connected"].includes(state);
  show($("call-accept"), state === "incoming");
  show($("call-reject"), state === "incoming");
  show($("call-hangup"), active);
  show($("call-mute"), active);
  show($("call-camera"), active);
  show($("call-duration"), state === "connected");
  if (state !== "connected") $("call-duration").textContent = "00:00";
  if (state !== "connected") showPath("");
  if (!active) {
    for (const [id, label] of [["call-mute", "Mute microphone"], ["call-camera", "Turn camera off"]]) {
      $(id).setAttribute("aria-pressed", "false");
      $(id).setAttribute("aria-label", label);
      $(id).title = label;
    }
  }
  ringing(state === "incoming" || state === "outgoing");
  const typingNow = document.activeElement?.matches?.("input, textarea");
  if (state === "incoming" && !typingNow) $("call-accept").focus({ preventScroll: true });
}

// ringing plays a soft two-tone ring while a call rings (Web Audio; silent
// if the browser has not allowed audio yet).
function ringing(on) {
  if (!on) { if (ring) { clearInterval(ring.timer); ring.ctx.close().catch(() => {}); ring = null; } return; }
  if (ring) return;
  try {
    const ctx = new AudioContext();
    const beep = () => {
      for (const [f, t] of [[440, 0], [554, 0.25]]) {
        const o = ctx.createOscillator(), g = ctx.createGain();
        o.frequency.value = f;
        g.gain.setValueAtTime(0.06, ctx.currentTime + t);
        g.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + t + 0.22);
        o.connect(g).connect(ctx.destination);
        o.start(ctx.currentTime + t);
        o.stop(ctx.currentTime + t + 0.25);
      }
    };
    beep();
    ring = { ctx, timer: setInterval(beep, 2500) };
  } catch { ring = null; }
}
