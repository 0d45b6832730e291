// The JSON API and the live connection, shared by every view.
//
// Tokens: when the daemon has api.tokens configured, the page asks once for a token,
// keeps it in localStorage ("campaignd.token") and sends it as a bearer token; a 401
// asks again. With no tokens (the loopback default) nothing is asked.

import { t, tn } from "./i18n.js";
import { PusherLite, pusherUrl } from "./pusher-lite.js";
import { h, toast } from "./util.js";

const TOKEN_KEY = "campaignd.token";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/**
 * What the page says about a refusal, in the reader's language: its own sentence for
 * the codes a user meets, and the server's message (English, for developers and logs)
 * as the detail. → {text, detail}
 */
export function describeError(err) {
  const code = (err && err.code) || "";
  const known = {
    network: () => t("error.network"),
    unauthorized: () => t("error.unauthorized"),
    forbidden: () => t("error.forbidden"),
    campaign_not_found: () => t("error.campaign_not_found"),
    not_found: () => t("error.not_found"),
    invalid_field: () => t("error.invalid_field"),
    invalid_recipients: () => t("error.invalid_recipients"),
    too_many_recipients: () => t("error.too_many_recipients"),
    campaign_exists: () => t("error.campaign_exists"),
    invalid_query: () => t("error.invalid_query"),
    busy: () => t("error.busy"),
    storage_unavailable: () => t("error.storage_unavailable"),
    sending_unavailable: () => t("error.sending_unavailable"),
    invalid_transition: () => t("error.invalid_transition"),
    nothing_to_retry: () => t("error.nothing_to_retry"),
    not_sendable: () => t("error.not_sendable"),
    page_config: () => t("error.page_config"),
    body_too_large: () => t("error.body_too_large"),
    internal_error: () => t("error.internal_error"),
    wrong_node: () => t("error.wrong_node"),
  };
  const text = known[code] ? known[code]() : t("error.other", { status: String((err && err.status) || "?") });
  const message = (err && err.message) || "";
  const detail = code && code !== "network" ? `${message} (${code})` : message;
  return { text, detail: detail.trim() };
}

/** `lead` (e.g. "Could not load the campaign:") + the page's sentence, then the detail in small print. */
export function errorParts(lead, err) {
  const { text, detail } = describeError(err);
  return [lead ? `${lead} ${text}` : text, detail ? h("small", { class: "detail", translate: "no" }, detail) : ""];
}

let config = null;
let tokenPrompt = null;

export async function pageConfig() {
  if (!config) {
    const resp = await fetch("/page-config.json", { cache: "no-store" });
    if (!resp.ok) throw new ApiError(resp.status, "page_config", "page-config.json is not available");
    config = await resp.json();
  }
  return config;
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

/** Ask for a token in a small dialog (once at a time); resolves when one is stored. */
export function askForToken(reason) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const input = h("input", {
      type: "password",
      class: "input",
      placeholder: t("token.placeholder"),
      autocomplete: "current-password",
      required: true,
      id: "token-input",
    });
    const form = h(
      "form",
      { method: "dialog", class: "dialog", id: "token-dialog" },
      h("h3", {}, t("token.title")),
      h(
        "p",
        {},
        reason ||
          tn("token.why", {
            setting: h("code", { translate: "no" }, "api.tokens"),
            file: h("code", { translate: "no" }, "daemon.toml"),
          }),
      ),
      input,
      h("div", { class: "dialog-actions" }, h("button", { class: "btn btn-primary", type: "submit" }, t("token.save"))),
    );
    const dialog = h("dialog", { class: "dialog-shell" }, form);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      localStorage.setItem(TOKEN_KEY, value);
      dialog.close();
      dialog.remove();
      tokenPrompt = null;
      resolve(value);
    });
    dialog.addEventListener("cancel", (ev) => ev.preventDefault());
    document.body.append(dialog);
    dialog.showModal();
  });
  return tokenPrompt;
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

/** fetch + JSON + the API's error shape; a 401 asks for a token and retries once. */
export async function api(method, path, body, retried = false) {
  const init = { method, headers: headers(body !== undefined ? { "Content-Type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", `campaignd is not reachable (${err.message || "network error"})`);
  }
  const text = await resp.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (resp.status === 401 && !retried) {
    const refused = Boolean(token());
    forgetToken();
    await askForToken(refused ? t("token.refused") : undefined);
    return api(method, path, body, true);
  }
  if (!resp.ok) {
    const err = (doc && doc.error) || {};
    throw new ApiError(resp.status, err.code || `http_${resp.status}`, err.message || resp.statusText || "request failed", err.field);
  }
  return doc;
}

/** The channel prefix: private- (auth through /broadcasting/auth) when public ones are off. */
export function channelName(base) {
  return config && config.private_channels ? `private-${base}` : base;
}

async function authorize(socketId, channel, retried = false) {
  const resp = await fetch(config.auth_endpoint, {
    method: "POST",
    headers: headers({ "Content-Type": "application/x-www-form-urlencoded" }),
    body: new URLSearchParams({ socket_id: socketId, channel_name: channel }).toString(),
  });
  if (resp.status === 401 && !retried) {
    // No token yet (or a refused one): wait for the prompt, then sign again.
    const refused = Boolean(token());
    forgetToken();
    await askForToken(refused ? t("token.refused") : undefined);
    return authorize(socketId, channel, true);
  }
  if (resp.status === 401 || resp.status === 403) {
    throw new Error(t("live.not_allowed", { channel }));
  }
  if (!resp.ok) throw new Error(t("live.auth_failed", { status: String(resp.status) }));
  return (await resp.json()).auth;
}

// --- the one live connection of the page -----------------------------------------

const stateListeners = new Set();
const reconnectListeners = new Set();
let live = null;
export let liveState = { state: "connecting" };

/** The page's one connection (every caller gets the same one, even when racing). */
export function connectLive() {
  if (!live) {
    live = (async () => {
      for (;;) {
        try {
          return openLive(await pageConfig());
        } catch {
          // The daemon went away between the page and its config: try again shortly.
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
      }
    })();
  }
  return live;
}

function openLive(cfg) {
  const client = new PusherLite(pusherUrl(cfg.ws_path), {
    authorize,
    onState(state, detail) {
      if (state === "error") {
        toast(t("live.error"), "error", detail && detail.message);
        return;
      }
      liveState = { state, ...(detail || {}) };
      for (const fn of stateListeners) fn(liveState);
    },
    onReconnect() {
      for (const fn of reconnectListeners) fn();
    },
  });
  window.campaigndLive = client; // for the curious, and for tests
  client.connect();
  return client;
}

export function onLiveState(fn) {
  stateListeners.add(fn);
  fn(liveState);
  return () => stateListeners.delete(fn);
}

export function onReconnect(fn) {
  reconnectListeners.add(fn);
  return () => reconnectListeners.delete(fn);
}
