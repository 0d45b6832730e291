// The relay indicator in the top bar (docs/integration.md): when a webhook source relays
// what it accepts to the app behind campaignd (forward_to), it says whether the relay
// keeps up: "Relay ✓", "Relay: 12 waiting" while a backlog drains, "Relay failing: 340
// waiting" with the last error when the app does not take them, "Relay: 1 set aside" when
// the app refused requests as malformed and the relay went on without them. Hidden when
// nothing is relayed, and for a token of one workspace (the relay is the daemon's).
// Reads GET /api/relay: every 15 s, every 3 s while something waits.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { fmtDuration } from "./util.js";

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
  const setAside = sources.reduce((n, [, s]) => n + (s.set_aside || 0), 0);
  const aside = sources.find(([, s]) => s.set_aside);
  return { sources, backlog, forwarded, failing, oldest, targets, setAside, aside };
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
    text.textContent = t("relay.failing", { count: s.backlog });
    el.title = t("relay.failing_title", {
      source: name, error: src.last_error || t("relay.unknown_error"),
      retry: fmtDuration(src.next_retry_in || 0), age: fmtDuration(s.oldest),
    });
  } else if (s.backlog) {
    state = "waiting";
    text.textContent = t("relay.waiting", { count: s.backlog });
    el.title = t("relay.waiting_title", { age: fmtDuration(s.oldest), targets: s.targets });
  } else if (s.setAside) {
    state = "set-aside";
    const [name, src] = s.aside;
    text.textContent = t("relay.set_aside", { count: s.setAside });
    el.title = t("relay.set_aside_title", {
      count: s.setAside, source: name, error: src.last_set_aside || "?",
    });
  } else {
    text.textContent = t("relay.ok");
    el.title = t("relay.ok_title", { count: s.forwarded, targets: s.targets });
  }
  el.className = `live relay relay-${state}`;
  el.dataset.state = state;
  el.dataset.backlog = String(s.backlog);
  return state === "failing" || state === "waiting";
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
