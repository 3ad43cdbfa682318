import { icon } from "./icons.js";

// Small DOM and formatting helpers shared by every view. Nothing here
// ever parses HTML: elements are built with createElement and text is set
// with textContent, so user data can never become markup.

/** $ returns the element with the given id (or null). */
export const $ = (id) => document.getElementById(id);

/**
 * el builds an element: el("li", {class: "x", dataset: {id: 1}, onclick: fn}, child, "text").
 * Strings among the children become text nodes; null/false children are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** clear removes every child of node. */
export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

/**
 * keepFocus runs render, which rebuilds list, and gives the focus back to
 * the same control of the same item (matched by the item's data-*
 * attributes and the control's class), so a refresh never throws a
 * keyboard user out of the list.
 */
export function keepFocus(list, render) {
  const a = document.activeElement;
  const li = a && a !== list && list.contains(a) ? a.closest("li") : null;
  const key = li ? JSON.stringify({ ...li.dataset }) : "";
  const cls = a?.className;
  render();
  if (!key) return;
  for (const item of list.querySelectorAll("li")) {
    if (JSON.stringify({ ...item.dataset }) !== key) continue;
    const same = [...item.querySelectorAll(a.tagName)].find((e) => e.className === cls);
    (same || item.querySelector("a, button"))?.focus();
    return;
  }
}

/** show sets whether node is displayed (the hidden attribute). */
export function show(node, visible) {
  if (node) node.hidden = !visible;
}

// ---- toasts ----------------------------------------------------------

/** toast shows a short message; kind is "error", "ok" or "info". */
export function toast(message, kind = "info", ms = 6000) {
  const box = $("toasts");
  if (!box) return;
  const close = el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const t = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    el("span", { class: "toast-text" }, message), close);
  const remove = () => t.remove();
  close.addEventListener("click", remove);
  box.append(t);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(remove, ms);
}

// ---- formatting -------------------------------------------------------

/** humanSize formats a byte count: 1536 → "1.5 KiB". */
export function humanSize(n) {
  if (!Number.isFinite(n) || n < 0) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/** humanSpeed formats bytes over milliseconds as a rate, or "—". */
export function humanSpeed(bytes, ms) {
  if (!ms || ms <= 0 || !bytes) return "—";
  const perSec = bytes / (ms / 1000);
  const units = ["B/s", "KB/s", "MB/s", "GB/s"];
  let v = perSec, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** shortTime is "14:03" for today, "Mar 3, 14:03" otherwise. */
export function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

/** fullTime is a long date and time, for title tooltips. */
export function fullTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : fullFmt.format(d);
}

/** ago is "just now", "5 min ago", "3 h ago", "2 days ago" or a date. */
export function ago(iso) {
  const d = new Date(iso);
  const s = (Date.now() - d.getTime()) / 1000;
  if (Number.isNaN(s) || d.getFullYear() < 2000) return "never";
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 7 * 86400) return `${Math.round(s / 86400)} days ago`;
  return dateTimeFmt.format(d);
}

/** mmss formats seconds as "mm:ss". */
export function mmss(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/** randomID returns a random hex id; works outside secure contexts too. */
export function randomID(bytes = 12) {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** copyButton returns a button that copies text() to the clipboard. */
export function copyButton(text, label = "Copy") {
  const b = el("button", { type: "button", class: "btn btn-small", "aria-label": `${label} to clipboard` }, label);
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      b.textContent = "Copied";
    } catch {
      b.textContent = "Select and copy";
    }
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

// ---- theme --------------------------------------------------------------

const themeKey = "mesh.theme";

/** currentTheme is "dark" (Monokai, the default) or "light". */
export function currentTheme() {
  return document.documentElement.dataset.theme === "light" ? "light" : "dark";
}

/** initTheme applies the remembered theme and wires #theme-toggle. */
export function initTheme(onChange) {
  const apply = (t) => {
    document.documentElement.dataset.theme = t;
    const b = $("theme-toggle");
    b.setAttribute("aria-pressed", String(t === "light"));
    b.setAttribute("aria-label", t === "light" ? "Switch to dark theme" : "Switch to light theme");
    b.title = b.getAttribute("aria-label");
    b.replaceChildren(icon(t === "light" ? "moon" : "sun"));
    onChange?.(t);
  };
  let saved = null;
  try { saved = localStorage.getItem(themeKey); } catch { /* storage may be off */ }
  apply(saved === "light" ? "light" : "dark");
  $("theme-toggle").addEventListener("click", () => {
    const next = currentTheme() === "light" ? "dark" : "light";
    try { localStorage.setItem(themeKey, next); } catch { /* storage may be off */ }
    apply(next);
  });
}
