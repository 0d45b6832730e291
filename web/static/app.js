// The page's entry: hash routing between the list, a campaign and the "new" form, and
// the live indicator in the top bar. Views are functions mount(el, params) → unmount.

import { connectLive, onLiveState, pageConfig } from "./api.js";
import { mountCampaign } from "./campaign.js";
import { mountList } from "./list.js";
import { mountNew } from "./newcampaign.js";
import { startRelayIndicator } from "./relay.js";

const routes = [
  [/^#?\/?$/, mountList, "list"],
  [/^#\/campaigns\/?$/, mountList, "list"],
  [/^#\/new\/?$/, mountNew, "new"],
  [/^#\/campaigns\/([^/?]+)\/?$/, (el, m) => mountCampaign(el, decodeURIComponent(m[1])), "campaign"],
];

let unmount = null;

function route() {
  const hash = location.hash || "#/";
  const view = document.getElementById("view");
  if (unmount) {
    try {
      unmount();
    } catch (err) {
      console.error(err);
    }
    unmount = null;
  }
  view.replaceChildren();
  for (const [pattern, mount, name] of routes) {
    const match = hash.match(pattern);
    if (match) {
      document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === name));
      unmount = mount(view, match) || null;
      window.scrollTo(0, 0);
      return;
    }
  }
  view.innerHTML = `<div class="empty"><h2>Not found</h2><p><a href="#/">Back to the campaigns</a></p></div>`;
}

function showLive(state) {
  const el = document.getElementById("live");
  const text = el.querySelector(".live-text");
  const s = state.state;
  let cls = "live-connecting";
  let label = "Connecting…";
  let title = "Connecting to campaignd for live updates";
  if (s === "connected") {
    cls = "live-on";
    label = "Live";
    title = "Numbers update as ACKs arrive";
  } else if (s === "reconnecting") {
    cls = "live-reconnecting";
    label = "Reconnecting…";
    title = "The live connection dropped; retrying with backoff. Numbers are refreshed when it is back.";
  } else if (s === "failed") {
    cls = "live-failed";
    label = "Offline";
    title = `campaignd refused the live connection (${state.code || ""} ${state.reason || ""})`.trim();
  }
  el.className = `live ${cls}`;
  el.dataset.state = s;
  el.title = title;
  text.textContent = label;
}

async function start() {
  window.addEventListener("hashchange", route);
  await pageConfig().catch(() => null);
  onLiveState(showLive);
  route();
  connectLive().catch((err) => console.error("live connection", err));
  startRelayIndicator();
}

start();
