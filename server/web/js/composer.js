// The composer (Enter sends, Shift+Enter is a new line) and the typing
// indicator: chat.typing goes out at most every 3 s while typing, and
// "NAME is typing…" shows for 5 s after one arrives.

import { $, toast } from "./ui.js";
import { currentRoom, sendMessage } from "./chat.js";

const typingEvery = 3000;
const typingShown = 5000;
const maxRunes = 4000;

let ws = null;
let me = "";
let lastTypingSent = 0;
const typers = new Map(); // room id → Map username → expiry (ms)
let typingTimer = 0;

/** initComposer wires the composer and the typing events. */
export function initComposer(socket) {
  ws = socket;
  const box = $("composer");
  $("composer-form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  let sentAt = 0;
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sentAt = performance.now();
      submit();
    }
  });
  // Some input paths (automation, a few IMEs) deliver Enter's line break as
  // a separate event even though its keydown was cancelled: drop it.
  box.addEventListener("beforeinput", (e) => {
    if ((e.inputType === "insertLineBreak" || e.inputType === "insertParagraph") && performance.now() - sentAt < 250) {
      e.preventDefault();
    }
  });
  box.addEventListener("input", () => {
    autosize();
    updateCounter();
    if (box.value.trim()) typing();
  });
  ws.on("chat.typing", (env) => {
    const { room_id: id, username } = env.payload;
    const who = username || env.from;
    if (!who || who === me) return;
    if (!typers.has(id)) typers.set(id, new Map());
    typers.get(id).set(who, Date.now() + typingShown);
    renderTyping();
  });
  document.addEventListener("mesh:message", (e) => {
    const m = e.detail;
    if (typers.get(m.room_id)?.delete(m.from)) renderTyping();
  });
  document.addEventListener("mesh:room", () => {
    lastTypingSent = 0;
    renderTyping();
  });
}

export function setComposerUser(name) {
  me = name;
  typers.clear();
  renderTyping();
}

function submit() {
  const box = $("composer");
  const text = box.value.replace(/^(\s*\n)+/, "").trimEnd(); // no blank lines around it
  if (!text.trim()) { box.focus(); return; }
  if ([...text].length > maxRunes) {
    toast(`A message holds at most ${maxRunes} characters; this one has ${[...text].length}.`, "error");
    return;
  }
  if (sendMessage(text)) {
    box.value = "";
    lastTypingSent = 0;
    autosize();
    updateCounter();
  }
  box.focus();
}

function typing() {
  const id = currentRoom();
  const now = Date.now();
  if (!id || !ws.online || now - lastTypingSent < typingEvery) return;
  lastTypingSent = now;
  ws.send("chat.typing", { room_id: id });
}

function autosize() {
  const box = $("composer");
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, 200)}px`;
}

function updateCounter() {
  const n = [...$("composer").value].length;
  const c = $("composer-count");
  c.hidden = n < maxRunes - 500;
  c.textContent = `${n}/${maxRunes}`;
  c.classList.toggle("over", n > maxRunes);
}

function renderTyping() {
  clearTimeout(typingTimer);
  const now = Date.now();
  const names = [];
  let next = Infinity;
  for (const [user, until] of typers.get(currentRoom()) || []) {
    if (until > now) { names.push(user); next = Math.min(next, until); }
    else typers.get(currentRoom()).delete(user);
  }
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  $("typing").textContent = text;
  if (next !== Infinity) typingTimer = setTimeout(renderTyping, next - now + 20);
}
