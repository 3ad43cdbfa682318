// The app shell: session (token → /api/me → WebSocket), hash routing
// between the views, the connection indicator, and the small-screen
// drawers. Each view lives in its own module.

import { get, getToken, setToken, setUnauthorizedHandler } from "./api.js";
import { Socket } from "./ws.js";
import { $, show, toast, initTheme } from "./ui.js";
import { fillIcons } from "./icons.js";
import { initAuth, showAuthError, focusLogin } from "./auth.js";
import { initRooms, startRooms, loadRooms, pollRooms, rooms } from "./rooms.js";
import { initChat, startChat, openRoom, refreshHeader, currentRoom } from "./chat.js";
import { initComposer, setComposerUser } from "./composer.js";
import { initMembers, setMe as setMembersUser } from "./members.js";
import { initCall, setCallUser, endCallForLogout } from "./call.js";
import { initDevices, showDevices, hideDevices } from "./devices.js";
import { initTransfers, showTransfers, hideTransfers } from "./transfers.js";
import { initSettings, loadNotify, showSettings, refreshMute } from "./settings.js";
import {
  initTerminals, setTerminalUser, showTerminalList, hideTerminalList,
  openTerminal, closeTerminal, setTerminalTheme, terminalOffline,
} from "./terminal.js";

const expiredMessage = "Your session expired; log in again.";
const views = ["login", "chat", "devices", "transfers", "terminals", "terminal", "settings"];

let me = "";
let afterLogin = "#/chat";
let countdown = 0;
let starting = null;

const socket = new Socket({ onState, onRefused });

function boot() {
  fillIcons();
  initTheme(setTerminalTheme);
  initAuth(async () => {
    await startSession();
    if (location.hash === afterLogin) route();
    else location.hash = afterLogin;
  });
  setUnauthorizedHandler(() => expire());
  // Order matters for system.error: the modules that own a request mark
  // its error handled before the generic toast below sees it.
  initRooms(socket);
  initMembers(socket);
  initChat(socket);
  initComposer(socket);
  initCall(socket);
  initDevices(socket);
  initTransfers(socket);
  initTerminals(socket);
  initSettings();
  socket.on("system.welcome", () => { loadRooms().catch(() => {}); });
  socket.on("system.error", (env) => {
    if (!env.handled) toast(env.payload.message || env.payload.code, "error");
  });
  $("logout-btn").addEventListener("click", () => logout(""));
  $("sidebar-toggle").addEventListener("click", () => setDrawer("sidebar-open", !document.body.classList.contains("sidebar-open")));
  $("members-toggle").addEventListener("click", () => setDrawer("members-open", !document.body.classList.contains("members-open")));
  $("scrim").addEventListener("click", closeDrawers);
  $("conn-retry").addEventListener("click", () => socket.retryNow());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && (document.body.classList.contains("sidebar-open") || document.body.classList.contains("members-open"))) {
      closeDrawers();
    }
  });
  window.addEventListener("hashchange", route);
  if (getToken()) resumeSession();
  else route();
}

// resumeSession brings back this tab's session after a reload; while the
// server cannot be reached it keeps trying (the login view says why).
function resumeSession() {
  startSession().then(route, (e) => {
    route();
    if (e.status !== 401) setTimeout(() => { if (!me && getToken()) resumeSession(); }, 3000);
  });
}

/** startSession checks the token with /api/me and brings the app up. */
function startSession() {
  if (!starting) {
    starting = (async () => {
      const token = getToken();
      const user = await get("/api/me"); // a 401 here runs expire()
      me = user.username;
      $("me").textContent = me;
      document.body.dataset.auth = "in";
      startRooms(me);
      startChat(me);
      setComposerUser(me);
      setMembersUser(me);
      setCallUser(me);
      setTerminalUser(me);
      socket.start(token);
      pollRooms(true);
      loadNotify().then(() => refreshMute(currentRoom()));
      try {
        await loadRooms();
      } catch (e) {
        toast(`Could not load rooms: ${e.message}`, "error");
      }
    })().finally(() => { starting = null; });
  }
  return starting.catch((e) => {
    if (e.status !== 401) showAuthError(e.status === 0 ? "Cannot reach the server; trying again…" : e.message);
    throw e;
  });
}

/** logout ends the session; message (if any) shows on the login form. */
function logout(message) {
  socket.stop();
  pollRooms(false);
  endCallForLogout();
  closeTerminal();
  setToken("");
  me = "";
  document.body.dataset.auth = "out";
  $("me").textContent = "";
  showAuthError(message);
  afterLogin = "#/chat";
  if (location.hash !== "#/login") location.hash = "#/login";
  else route();
}

/** expire: the server refused the token (HTTP 401 or a refused WebSocket). */
function expire() {
  if (!me && !getToken()) return;
  const back = location.hash && location.hash !== "#/login" ? location.hash : "#/chat";
  logout(expiredMessage);
  afterLogin = back;
}

// onRefused: the WebSocket closed before opening. A dead token shows up
// as 401 on /api/me (which runs expire); anything else is the network.
function onRefused() {
  get("/api/me").catch(() => {});
}

function onState(state, info) {
  const s = $("conn-status");
  s.dataset.state = state;
  clearInterval(countdown);
  const text = $("conn-text");
  show($("conn-retry"), state === "offline" && !info.connecting);
  if (state === "online") text.textContent = "online";
  else if (state === "connecting") text.textContent = "connecting…";
  else if (info.connecting) text.textContent = "reconnecting…";
  else {
    const tick = () => {
      const left = Math.max(0, Math.ceil((info.at - Date.now()) / 1000));
      text.textContent = `offline — retrying in ${left} s`;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }
  s.title = state === "online" ? "Connected to the server" : "Not connected; messages you send wait until the connection is back";
  if (state === "offline") terminalOffline();
}

// ---- routing ----------------------------------------------------------------

function route() {
  const hash = location.hash || "";
  const [, name = "", arg = ""] = hash.match(/^#\/([a-z]*)\/?(.*)$/) || [];
  if (!me) {
    if (getToken() && starting) return; // startSession routes when done
    if (name && name !== "login") afterLogin = hash;
    showView("login");
    focusLogin();
    return;
  }
  closeDrawers();
  switch (name) {
    case "chat": return showChat(arg ? Number(arg) : 0);
    case "devices": showView("devices"); return showDevices(me);
    case "transfers": showView("transfers"); return showTransfers();
    case "terminals": showView("terminals"); return showTerminalList();
    case "settings": showView("settings"); return showSettings();
    case "terminal":
      if (arg) { showView("terminal"); return openTerminal(decodeURIComponent(arg)); }
      location.replace("#/terminals");
      return;
    default:
      location.replace("#/chat");
  }
}

function showChat(id) {
  showView("chat");
  const key = `mesh.lastRoom.${me}`;
  if (!id) {
    const last = Number(localStorage.getItem(key));
    if (last && rooms.get(last)?.member) {
      history.replaceState(null, "", `#/chat/${last}`);
      id = last;
    }
  }
  if (id) { try { localStorage.setItem(key, String(id)); } catch { /* storage may be off */ } }
  if (id !== currentRoom() || id === 0) openRoom(id);
  else refreshHeader();
}

function showView(name) {
  for (const v of views) show($(`view-${v}`), v === name);
  const nav = name === "terminal" ? "terminals" : name;
  for (const a of document.querySelectorAll(".nav a")) {
    if (a.id === `nav-${nav}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (name !== "devices") hideDevices();
  if (name !== "transfers") hideTransfers();
  if (name !== "terminals") hideTerminalList();
  if (name !== "terminal") closeTerminal();
  if (name !== "chat" && currentRoom()) openRoom(0);
}

function setDrawer(cls, open) {
  document.body.classList.remove(cls === "sidebar-open" ? "members-open" : "sidebar-open");
  document.body.classList.toggle(cls, open);
  $("sidebar-toggle").setAttribute("aria-expanded", String(document.body.classList.contains("sidebar-open")));
  $("members-toggle").setAttribute("aria-expanded", String(document.body.classList.contains("members-open")));
}

function closeDrawers() {
  setDrawer("sidebar-open", false);
  document.body.classList.remove("members-open");
  $("members-toggle").setAttribute("aria-expanded", "false");
}

boot();
