// The relay indicator in the top bar (docs/integration.md): when a webhook source relays
// what it accepts to the app behind campaignd (forward_to), it says whether the relay
// keeps up: "Relay ✓", "Relay: 12 waiting" while a backlog drains, "Relay failing: 340
// waiting" with the last error when the app does not take them. Hidden when nothing is
// relayed, and for a token of one workspace (the relay is the daemon's).
// Reads GET /api/relay: every 15 s, every 3 s while something waits.

import { api } from "./api.js";
import { fmtDuration, fmtInt } from "./util.js";

// Every string this module shows, in one place (ready for the page's message catalogue).
const T = {
  ok: "Relay ✓",
  okTitle: (n, targets) => `${fmtInt(n)} accepted webhooks relayed to ${targets}; nothing waiting`,
  waiting: (n) => `Relay: ${fmtInt(n)} waiting`,
  waitingTitle: (age, targets) => `Passing accepted webhooks on to ${targets}; the oldest has waited ${age}`,
  failing: (n) => `Relay failing: ${fmtInt(n)} waiting`,
  failingTitle: (source, error, retry, age) =>
    `${source}: ${error}. Next try in ${retry}; the oldest request has waited ${age}. ` +
    "Webhooks are still accepted and kept until the app takes them (GET /api/relay).",
  unknownError: "the app does not take them",
};

const SLOW = 15000;
const FAST = 3000;
let timer = null;

function summary(relay) {
  const sources = Object.entries(relay);
  const backlog = sources.reduce((n, [, s]) => n + s.backlog, 0);
  const forwarded = sources.reduce((n, [, s]) => n + s.forwarded, 0);
  const failing = sources.filter(([, s]) => s.failing);
  const oldest = Math.max(0, ...sources.map(([, s]) => s.oldest_age || 0));
  const targets = sources.map(([name, s]) => `${name} → ${s.forward_to || "?"}`).join(", ");
  return { sources, backlog, forwarded, failing, oldest, targets };
}

function show(el, relay) {
  const s = summary(relay);
  if (!s.sources.length) {
    el.hidden = true;
    return false;
  }
  el.hidden = false;
  const text = el.querySelector(".live-text");
  let state = "ok";
  if (s.failing.length) {
    state = "failing";
    const [name, src] = s.failing[0];
    text.textContent = T.failing(s.backlog);
    el.title = T.failingTitle(name, src.last_error || T.unknownError, fmtDuration(src.next_retry_in || 0),
      fmtDuration(s.oldest));
  } else if (s.backlog) {
    state = "waiting";
    text.textContent = T.waiting(s.backlog);
    el.title = T.waitingTitle(fmtDuration(s.oldest), s.targets);
  } else {
    text.textContent = T.ok;
    el.title = T.okTitle(s.forwarded, s.targets);
  }
  el.className = `live relay relay-${state}`;
  el.dataset.state = state;
  el.dataset.backlog = String(s.backlog);
  return state !== "ok";
}

async function refresh() {
  const el = document.getElementById("relay");
  if (!el) return;
  clearTimeout(timer);
  let busy = false;
  try {
    const doc = await api("GET", "/api/relay");
    busy = show(el, doc.relay || {});
  } catch (err) {
    el.hidden = true;
    if (err.status === 403 || err.status === 404) return; // not ours to show: stop asking
  }
  timer = setTimeout(refresh, busy ? FAST : SLOW);
}

export function startRelayIndicator() {
  window.campaigndRelay = { refresh }; // for tests and the curious
  refresh();
}
