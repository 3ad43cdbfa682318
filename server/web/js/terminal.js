// Shared terminals: the list (#/terminals) and the live view
// (#/terminal/ID). Watching sends terminal.watch; the server answers
// terminal.open, then binary frames (protocol.TermFrame):
//   kind u8 | n u8 | share_id | [offset u64 BE, output only] | bytes
// Output goes to an xterm.js terminal kept at the share's size; keystrokes
// go back as kind-2 frames only when the share allows this user to type.

import { get } from "./api.js";
import { $, el, clear, show, ago, currentTheme, keepFocus } from "./ui.js";

const kindOutput = 1;
const kindInput = 2;
const maxInputChunk = 32 << 10;
const baseFont = 14;
const minFont = 8;

let ws = null;
let me = "";
let xterm = null;       // the loaded modules {Terminal, FitAddon}
let view = null;        // the open view: {id, term, fit, cols, rows, allowInput, ended, watchID, early}
let listTimer = 0;
const enc = new TextEncoder();

/** window.meshTerm.text() is the terminal's buffer as text (for tests). */
window.meshTerm = {
  text() {
    if (!view?.term) return "";
    const b = view.term.buffer.active;
    const lines = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? "");
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  },
};

export const themes = {
  dark: { background: "#272822", foreground: "#f8f8f2", cursor: "#f8f8f0", cursorAccent: "#272822",
    selectionBackground: "#49483e", black: "#272822", red: "#f92672", green: "#a6e22e", yellow: "#e6db74",
    blue: "#66d9ef", magenta: "#ae81ff", cyan: "#a1efe4", white: "#f8f8f2", brightBlack: "#75715e",
    brightRed: "#f92672", brightGreen: "#a6e22e", brightYellow: "#fd971f", brightBlue: "#66d9ef",
    brightMagenta: "#ae81ff", brightCyan: "#a1efe4", brightWhite: "#f9f8f5" },
  light: { background: "#fafaf6", foreground: "#272822", cursor: "#272822", cursorAccent: "#fafaf6",
    selectionBackground: "#d8d6c8", black: "#272822", red: "#c4245c", green: "#5f8a00", yellow: "#9a7d00",
    blue: "#1f7f99", magenta: "#7a4fd6", cyan: "#2a8a80", white: "#75715e", brightBlack: "#75715e",
    brightRed: "#f92672", brightGreen: "#7ea81a", brightYellow: "#c76b00", brightBlue: "#2c9ac0",
    brightMagenta: "#9467e8", brightCyan: "#3aa89c", brightWhite: "#272822" },
};

/** initTerminals wires the terminal events. */
export function initTerminals(socket) {
  ws = socket;
  ws.on("terminal.open", (env) => onOpen(env.payload, env.from));
  ws.on("terminal.resize", (env) => {
    if (view && env.payload.share_id === view.id) setSize(env.payload.cols, env.payload.rows);
  });
  ws.on("terminal.exit", (env) => {
    if (!view || env.payload.share_id !== view.id) return;
    const { code, reason } = env.payload;
    view.ended = true;
    if (view.term) view.term.options.disableStdin = true;
    status(`ended (exit code ${code})`, "ended");
    $("terminal-reason").textContent = reason || "";
  });
  ws.on("system.error", (env) => {
    if (!view || !env.payload.ref_id || env.payload.ref_id !== view.watchID) return;
    env.handled = true;
    view.ended = true;
    status(env.payload.message, "error");
  });
  ws.on("system.welcome", () => { if (view && !view.ended && xterm) watch(); }); // else openTerminal watches
  ws.onBinary(onFrame);
  window.addEventListener("resize", () => fitFont());
  // A click anywhere in the view (not only on the screen's cells) types into it.
  $("terminal-view").addEventListener("click", () => { if (view?.term && view.allowInput && !view.ended) view.term.focus(); });
}

export function setTerminalUser(name) { me = name; }

// ---- the list -------------------------------------------------------------

/** showTerminalList opens #/terminals and refreshes it while open. */
export function showTerminalList() {
  $("share-help").textContent = `mesh agent share-terminal --allow ${me || "USER"} -- bash`;
  loadList();
  clearInterval(listTimer);
  listTimer = setInterval(loadList, 5000);
}

export function hideTerminalList() {
  clearInterval(listTimer);
  listTimer = 0;
}

async function loadList() {
  let list;
  try {
    ({ terminals: list } = await get("/api/terminals"));
    $("terminals-error").textContent = "";
  } catch (e) {
    $("terminals-error").textContent = `Could not load terminals: ${e.message}`;
    return;
  }
  keepFocus($("terminal-list"), () => renderList(list));
}

function renderList(list) {
  const ul = $("terminal-list");
  clear(ul);
  for (const t of list) {
    const viewers = t.viewers?.length ? ` · watching: ${t.viewers.join(", ")}` : "";
    ul.append(el("li", { dataset: { shareId: t.share_id }, class: "card-row" },
      el("span", { class: `badge ${t.allow_input ? "badge-green" : "badge-blue"}` }, t.allow_input ? "interactive" : "read-only"),
      el("div", { class: "row-main" },
        el("a", { href: `#/terminal/${encodeURIComponent(t.share_id)}`, class: "row-title mono" }, t.command || t.share_id),
        el("div", { class: "row-sub" },
          `${t.user} on ${t.device_id} · ${t.cols}×${t.rows} · started ${ago(t.started_at)}${viewers}`)),
      el("a", { href: `#/terminal/${encodeURIComponent(t.share_id)}`, class: "btn btn-small", "aria-label": `Watch ${t.share_id}` }, "Watch")));
  }
  show($("terminals-empty"), list.length === 0);
}

// ---- the view ---------------------------------------------------------------

async function loadXterm() {
  if (!xterm) {
    const [{ Terminal }, { FitAddon }] = await Promise.all([
      import("../vendor/xterm/xterm.mjs"), import("../vendor/xterm/addon-fit.mjs")]);
    xterm = { Terminal, FitAddon };
  }
  return xterm;
}

/** openTerminal shows share id and starts watching it. */
export async function openTerminal(id) {
  if (view?.id === id) return;
  closeTerminal();
  view = { id, term: null, fit: null, cols: 80, rows: 24, allowInput: false, ended: false, watchID: "", early: [] };
  const box = $("terminal-view");
  box.dataset.shareId = id;
  clear(box);
  $("terminal-title").textContent = id;
  $("terminal-reason").textContent = "";
  status("connecting…", "");
  try {
    await loadXterm();
  } catch (e) {
    status(`Could not load the terminal emulator: ${e.message}`, "error");
    return;
  }
  if (view?.id !== id) return;
  if (ws.online) watch();
  else status("waiting for the connection…", "");
}

/** closeTerminal stops watching and frees the terminal. */
export function closeTerminal() {
  if (!view) return;
  if (!view.ended && ws.online) ws.send("terminal.unwatch", { share_id: view.id });
  view.term?.dispose();
  view = null;
  const box = $("terminal-view");
  clear(box);
  delete box.dataset.shareId;
}

function watch() {
  view.awaitOpen = true;
  view.watchID = ws.send("terminal.watch", { share_id: view.id });
}

function onOpen(p, from) {
  if (!view || p.share_id !== view.id || !xterm) return;
  const fresh = view.awaitOpen; // a watch's answer: the replay of recent output follows
  view.awaitOpen = false;
  view.allowInput = !!p.allow_input;
  if (!view.term) makeTerm(p.cols, p.rows);
  else if (fresh) view.term.reset();
  setSize(p.cols, p.rows);
  view.term.options.disableStdin = !view.allowInput;
  view.term.options.cursorBlink = view.allowInput;
  $("terminal-title").textContent = `${p.command || view.id}`;
  $("terminal-owner").textContent = from ? `shared by ${from}` : "";
  if (view.allowInput) {
    status("live — you may type", "live");
    view.term.focus();
  } else {
    status("read-only — the sharer did not allow input", "readonly");
  }
  for (const f of view.early.splice(0)) view.term.write(f);
}

function makeTerm(cols, rows) {
  const term = new xterm.Terminal({
    cols, rows, disableStdin: true, scrollback: 5000, fontSize: baseFont,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
    theme: themes[currentTheme()], allowTransparency: false, convertEol: false,
  });
  const fit = new xterm.FitAddon();
  term.loadAddon(fit);
  term.open($("terminal-view"));
  term.onData((d) => sendInput(enc.encode(d)));
  term.onBinary((d) => sendInput(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
  view.term = term;
  view.fit = fit;
}

function setSize(cols, rows) {
  view.cols = cols;
  view.rows = rows;
  if (!view.term) return;
  view.term.resize(cols, rows);
  $("terminal-size").textContent = `${cols}×${rows}`;
  fitFont();
}

// fitFont keeps the share's columns and rows but shrinks the font (down to
// minFont) so the share's width fits the container; past that it scrolls.
function fitFont() {
  if (!view?.term || !view.fit) return;
  const term = view.term;
  term.options.fontSize = baseFont;
  const dims = view.fit.proposeDimensions();
  if (dims && dims.cols < view.cols) {
    term.options.fontSize = Math.max(minFont, Math.floor((baseFont * dims.cols) / view.cols));
  }
}

/** setTerminalTheme recolours an open terminal. */
export function setTerminalTheme(name) {
  if (view?.term) view.term.options.theme = themes[name];
}

function onFrame(b) {
  if (!view || b.length < 2 || b[0] !== kindOutput) return;
  const n = b[1];
  if (b.length < 2 + n + 8) return;
  const id = new TextDecoder().decode(b.subarray(2, 2 + n));
  if (id !== view.id) return;
  const data = b.subarray(2 + n + 8);
  if (!view.term) view.early.push(data);
  else view.term.write(data);
}

function sendInput(bytes) {
  if (!view || !view.allowInput || view.ended || !ws.online) return;
  const idBytes = enc.encode(view.id);
  for (let off = 0; off < bytes.length; off += maxInputChunk) {
    const chunk = bytes.subarray(off, off + maxInputChunk);
    const f = new Uint8Array(2 + idBytes.length + chunk.length);
    f[0] = kindInput;
    f[1] = idBytes.length;
    f.set(idBytes, 2);
    f.set(chunk, 2 + idBytes.length);
    ws.sendBinary(f);
  }
}

function status(text, state) {
  const s = $("terminal-status");
  s.textContent = text;
  s.dataset.state = state;
}

/** terminalOffline notes a dropped connection in the open view. */
export function terminalOffline() {
  if (view && !view.ended) status("connection lost — reconnecting…", "offline");
}
