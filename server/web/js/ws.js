// The WebSocket client: one connection to /ws, system.hello on open,
// "online" only after system.welcome, automatic reconnection with backoff,
// request/reply matching by id ↔ payload.ref_id, and a send queue that
// stays under the server's per-connection rate limit (20 frames/s, burst 40).

import { randomID } from "./ui.js";

const minDelay = 1000;
const maxDelay = 30000;
const welcomeTimeout = 10000;
const requestTimeout = 15000;
// Client-side token bucket, a little under the server's limit so a burst
// of room.sync requests after a long outage never gets us disconnected.
const sendRate = 15;   // frames per second
const sendBurst = 30;

/** WSError is a refusal from the server (system.error) or a lost request. */
export class WSError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Socket {
  /**
   * @param {object} hooks
   *   onState(state, info): "connecting" | "online" | "offline" (info.retryIn ms)
   *   onRefused(): the connection closed before opening; decide whether the token is dead
   */
  constructor(hooks = {}) {
    this.hooks = hooks;
    this.handlers = new Map();   // type → Set of fn(envelope)
    this.binaryHandlers = new Set();
    this.pending = new Map();    // frame id → {resolve, reject, timer}
    this.queue = [];             // frames waiting for the rate limiter
    this.tokens = sendBurst;
    this.lastRefill = performance.now();
    this.counter = 0;
    this.attempt = 0;
    this.state = "offline";
    this.ws = null;
    this.token = "";
    this.stopped = true;
    this.retryTimer = 0;
    this.drainTimer = 0;
    this.retryNow = this.retryNow.bind(this);
    window.addEventListener("online", this.retryNow);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
  }

  get online() { return this.state === "online"; }

  /** on subscribes fn to envelopes of type; it returns the unsubscribe function. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }

  /** onBinary subscribes fn(Uint8Array) to binary messages. */
  onBinary(fn) {
    this.binaryHandlers.add(fn);
    return () => this.binaryHandlers.delete(fn);
  }

  /** start connects with token and keeps reconnecting until stop. */
  start(token) {
    this.token = token;
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  /** stop closes the connection for good (logout). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "bye");
    }
    this.dropQueued("logged out");
    this.setState("offline", {});
  }

  /** retryNow skips the current backoff wait. */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(this.token)}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    let opened = false;
    let welcomeTimer = 0;
    this.setState(this.attempt === 0 ? "connecting" : "offline", { retryIn: 0, connecting: true });
    ws.onopen = () => {
      opened = true;
      const id = this.nextID();
      this.helloID = id;
      ws.send(JSON.stringify(this.envelope("system.hello", id, {})));
      welcomeTimer = setTimeout(() => ws.close(4000, "no welcome"), welcomeTimeout);
    };
    ws.onmessage = (ev) => {
      if (ev.data instanceof ArrayBuffer) {
        const bytes = new Uint8Array(ev.data);
        for (const fn of this.binaryHandlers) fn(bytes);
        return;
      }
      let env;
      try { env = JSON.parse(ev.data); } catch { return; }
      if (env.type === "system.welcome" && this.ws === ws) {
        clearTimeout(welcomeTimer);
        this.attempt = 0;
        this.setState("online", {});
      }
      this.dispatch(env);
    };
    ws.onclose = (ev) => {
      clearTimeout(welcomeTimer);
      if (this.ws !== ws) return; // replaced or stopped
      this.ws = null;
      this.dropQueued("the connection dropped");
      if (this.stopped) return;
      if (!opened) this.hooks.onRefused?.();
      this.scheduleRetry(ev.code);
    };
  }

  scheduleRetry(code) {
    if (this.stopped) return;
    const base = Math.min(maxDelay, minDelay * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt++;
    this.setState("offline", { retryIn: delay, code, at: Date.now() + delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state, info) {
    this.state = state;
    this.hooks.onState?.(state, info);
  }

  dispatch(env) {
    const ref = env.payload && env.payload.ref_id;
    if (ref && this.pending.has(ref)) {
      const p = this.pending.get(ref);
      this.pending.delete(ref);
      clearTimeout(p.timer);
      if (env.type === "system.error") p.reject(new WSError(env.payload.code, env.payload.message));
      else p.resolve(env);
      if (env.type === "system.error") return; // the requester reports it
    }
    for (const fn of this.handlers.get(env.type) || []) {
      try { fn(env); } catch (e) { console.error(`handling ${env.type}:`, e); }
    }
  }

  nextID() {
    this.counter++;
    return `w${this.counter}-${randomID(4)}`;
  }

  envelope(type, id, payload) {
    return { type, id, timestamp: new Date().toISOString(), payload };
  }

  /** send queues one frame if online and returns its id, or "" when offline. */
  send(type, payload = {}) {
    if (!this.online) return "";
    const id = this.nextID();
    this.enqueue(JSON.stringify(this.envelope(type, id, payload)));
    return id;
  }

  /**
   * request sends a frame and resolves with the server's reply (the
   * envelope whose payload.ref_id is the frame's id); it rejects with a
   * WSError on system.error, when offline, or after a timeout.
   */
  request(type, payload = {}, timeout = requestTimeout) {
    if (!this.online) return Promise.reject(new WSError("offline", "not connected; waiting to reconnect"));
    const id = this.nextID();
    const p = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WSError("timeout", `no answer to ${type}`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
    });
    this.enqueue(JSON.stringify(this.envelope(type, id, payload)));
    return p;
  }

  /** sendBinary sends a binary message (terminal input) if connected. */
  sendBinary(bytes) {
    if (!this.online) return false;
    this.enqueue(bytes);
    return true;
  }

  enqueue(frame) {
    this.queue.push(frame);
    this.drain();
  }

  drain() {
    clearTimeout(this.drainTimer);
    const now = performance.now();
    this.tokens = Math.min(sendBurst, this.tokens + ((now - this.lastRefill) / 1000) * sendRate);
    this.lastRefill = now;
    while (this.queue.length && this.tokens >= 1 && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(this.queue.shift());
      this.tokens -= 1;
    }
    if (this.queue.length) this.drainTimer = setTimeout(() => this.drain(), Math.ceil(1000 / sendRate));
  }

  dropQueued(why) {
    this.queue = [];
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new WSError("offline", why));
      this.pending.delete(id);
    }
  }
}
