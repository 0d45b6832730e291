// The page's entry: hash routing between the list, a campaign, the "new" form and the
// Insights view (#/insights; #/new?include_tiers=… comes from its contacts), the
// live indicator and the language switch in the top bar. Views are functions
// mount(el, params) → unmount; switching the language mounts the current view again.

import { connectLive, liveState, onLiveState, pageConfig } from "./api.js";
import { mountCampaign } from "./campaign.js";
import { mountInsights } from "./insights.js";
import { initLanguage, language, LANGUAGES, onLanguage, setLanguage, t, translateStatic } from "./i18n.js";
import { mountList } from "./list.js";
import { mountNew } from "./newcampaign.js";
import { startRelayIndicator } from "./relay.js";
import { h } from "./util.js";

const routes = [
  [/^#?\/?$/, mountList, "list"],
  [/^#\/campaigns\/?$/, mountList, "list"],
  [/^#\/new\/?(?:\?(.*))?$/, mountNew, "new"],
  [/^#\/insights\/?$/, mountInsights, "insights"],
  [/^#\/campaigns\/([^/?]+)\/?$/, (el, m) => mountCampaign(el, decodeURIComponent(m[1])), "campaign"],
];

let unmount = null;

/** Mount the view the hash names; `relabel`: the same view again, in another language. */
function route({ relabel = false } = {}) {
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
      const y = window.scrollY;
      unmount = mount(view, match, { relabel }) || null;
      window.scrollTo(0, relabel ? y : 0);
      return;
    }
  }
  document.title = `${t("notfound.title")} · campaignd`;
  view.append(h("div", { class: "empty" }, h("h2", {}, t("notfound.title")), h("p", {}, h("a", { href: "#/" }, t("notfound.back")))));
}

function showLive(state) {
  const el = document.getElementById("live");
  const text = el.querySelector(".live-text");
  const s = state.state;
  let cls = "live-connecting";
  let label = t("live.connecting");
  let title = t("live.connecting_title");
  if (s === "connected") {
    cls = "live-on";
    label = t("live.on");
    title = t("live.on_title");
  } else if (s === "reconnecting") {
    cls = "live-reconnecting";
    label = t("live.reconnecting");
    title = t("live.reconnecting_title");
  } else if (s === "failed") {
    cls = "live-failed";
    label = t("live.failed");
    title = t("live.failed_title", { code: `${state.code || ""} ${state.reason || ""}`.trim() });
  }
  el.className = `live ${cls}`;
  el.dataset.state = s;
  el.title = title;
  text.textContent = label;
}

/** EN | ID: each button names its language in that language (lang attribute for readers). */
function renderSwitch() {
  const box = document.getElementById("lang-switch");
  box.replaceChildren(
    ...LANGUAGES.map(([code, label, name]) =>
      h(
        "button",
        {
          type: "button",
          class: code === language() ? "lang active" : "lang",
          lang: code,
          title: name,
          "aria-pressed": code === language() ? "true" : "false",
          dataset: { lang: code },
          onclick: () => setLanguage(code),
        },
        label,
      ),
    ),
  );
}

function drawChrome() {
  translateStatic();
  renderSwitch();
  showLive(liveState);
}

async function start() {
  initLanguage();
  drawChrome();
  onLanguage(() => {
    drawChrome();
    route({ relabel: true });
  });
  window.addEventListener("hashchange", () => route());
  await pageConfig().catch(() => null);
  onLiveState(showLive);
  route();
  connectLive().catch((err) => console.error("live connection", err));
  startRelayIndicator();
}

start();
