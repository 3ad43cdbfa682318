// The login / register form (#/login).

import { api, setToken } from "./api.js";
import { $ } from "./ui.js";

let onLoggedIn = () => {};

/** initAuth wires the form; loggedIn(token) runs after a success. */
export function initAuth(loggedIn) {
  onLoggedIn = loggedIn;
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    submit("login");
  });
  $("register-btn").addEventListener("click", () => submit("register"));
}

/** showAuthError puts message in #auth-error ("" clears it). */
export function showAuthError(message) {
  const e = $("auth-error");
  e.textContent = message || "";
  e.hidden = !message;
}

/** focusLogin focuses the first empty field of the form. */
export function focusLogin() {
  const u = $("username");
  (u.value ? $("password") : u).focus();
}

async function submit(kind) {
  const username = $("username").value.trim();
  const password = $("password").value;
  const invite = $("invite-code").value.trim();
  if (!username || !password) {
    showAuthError("Enter a username and a password.");
    (username ? $("password") : $("username")).focus();
    return;
  }
  const body = { username, password };
  if (kind === "register" && invite) body.invite_code = invite;
  setBusy(true);
  showAuthError("");
  try {
    const ans = await api("POST", `/api/auth/${kind}`, body, { auth: false });
    setToken(ans.access_token);
    $("password").value = "";
    $("invite-code").value = "";
    await onLoggedIn(ans.access_token);
  } catch (e) {
    showAuthError(explain(kind, e));
    if (e.code === "invite_required" || e.code === "invite_invalid") $("invite-code").focus();
    else $("password").focus();
  } finally {
    setBusy(false);
  }
}

function explain(kind, e) {
  switch (e.code) {
    case "invalid_credentials": return "Wrong username or password.";
    case "rate_limited":
      return `Too many attempts. Wait${e.retryAfter ? ` ${Math.ceil(e.retryAfter / 60)} min` : " a while"} and try again.`;
    case "invite_required": return "This server needs an invite code to register: ask its admin for one (mesh user invite).";
    case "invite_invalid": return "That invite code is not valid (used, expired or mistyped).";
    case "registration_closed": return "Registration is closed on this server; ask its admin for an account.";
    case "username_taken": return "That username is taken. Pick another, or log in.";
    default: return e.message || `Could not ${kind === "login" ? "log in" : "register"}.`;
  }
}

function setBusy(busy) {
  for (const id of ["login-btn", "register-btn"]) $(id).disabled = busy;
  $("auth-form").setAttribute("aria-busy", String(busy));
}
