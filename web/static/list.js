// The campaign list: every campaign the token may see, with live counters and progress
// (from `workspace.{id}`), a status filter, and "load more" paging.

import { api, channelName, connectLive, errorParts, onReconnect, pageConfig } from "./api.js";
import { t, tn } from "./i18n.js";
import { fmtAgo, fmtInt, fmtPct, h, morph, pct, statusLabel, throttle } from "./util.js";

const FILTERS = ["", "processing", "paused", "scheduled", "pending", "tracking", "completed", "cancelled", "failed"];

function miniBar(s) {
  const total = s.total_message_count || 0;
  const seg = (key, n) => h("div", { class: `seg seg-${key}`, style: `width:${total ? (n * 100) / total : 0}%` });
  return h(
    "div",
    { class: "spread-bar spread-bar-mini" },
    seg("read", s.total_read_count),
    seg("delivered", s.total_delivered_count - s.total_read_count),
    seg("sent", s.total_sent_count - s.total_delivered_count),
    seg("failed", s.total_failed_count),
    seg("queued", s.total_queued_count),
  );
}

function statusPill(c) {
  const tracked = !c.message && !c.gateway && c.status === "pending";
  return h("span", { class: `pill pill-${tracked ? "tracking" : c.status}` }, statusLabel(c.status, tracked));
}

function rowFor(c) {
  const s = c.statistics;
  const total = s.total_message_count;
  const num = (value, cls, title) => h("div", { class: `num ${cls}`, title }, h("b", {}, fmtInt(value)), h("small", {}, title));
  return h(
    "a",
    { class: "camp", href: `#/campaigns/${encodeURIComponent(c.uuid)}`, dataset: { uuid: c.uuid } },
    h(
      "div",
      { class: "camp-main" },
      h("div", { class: "camp-title" }, h("span", { class: "camp-name", translate: "no" }, c.name), statusPill(c)),
      h(
        "div",
        { class: "camp-meta" },
        [
          t("meta.workspace", { id: String(c.workspace_id) }),
          c.gateway ? t("meta.via", { gateway: c.gateway }) : t("list.tracked"),
          t("meta.created", { when: fmtAgo(c.created_at) }),
          ...(c.node ? [t("meta.node", { node: c.node })] : []),
        ].join(" · "),
      ),
      miniBar(s),
    ),
    h(
      "div",
      { class: "camp-nums" },
      num(total, "", t("list.messages")),
      num(s.total_sent_count, "n-sent", t("list.sent")),
      num(s.total_delivered_count, "n-delivered", t("list.delivered")),
      num(s.total_read_count, "n-read", t("list.read")),
      num(s.total_failed_count, "n-failed", t("list.failed")),
    ),
    h(
      "div",
      { class: "camp-rate" },
      h("b", {}, fmtPct(total ? pct(s.total_delivered_count, total) : 0)),
      h("small", {}, c.status === "processing" ? t("list.sending_progress", { progress: fmtPct(s.progress) }) : t("list.delivered_rate")),
    ),
  );
}

export function mountList(root) {
  document.title = `${t("list.title")} · campaignd`;
  let alive = true;
  let status = "";
  let cursor = null;
  const campaigns = new Map();
  const channels = new Set();
  const listEl = h("div", { class: "camp-list", id: "campaign-list" });
  // On a cluster: which nodes did not answer (their campaigns are missing below).
  const nodesEl = h("div", { id: "nodes-missing" });
  const moreEl = h("button", { class: "btn", hidden: true, onclick: () => load(false) }, t("list.more"));
  const filterEl = h(
    "div",
    { class: "tabs" },
    ...FILTERS.map((key) =>
      h("button", { class: key ? "tab" : "tab active", dataset: { filter: key }, onclick: (ev) => setFilter(key, ev.currentTarget) }, key ? statusLabel(key) : t("list.all")),
    ),
  );
  root.append(
    h("div", { class: "head" }, h("div", {}, h("h1", { class: "title" }, t("list.title")), h("div", { class: "meta" }, t("list.subtitle")))),
    filterEl,
    nodesEl,
    listEl,
    h("div", { class: "center" }, moreEl),
  );

  function setFilter(key, button) {
    status = key;
    elsewhere.clear();
    filterEl.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b === button));
    load(true);
  }

  // Live frames arrive in order; a list answer may have been read before the last of
  // them (campaign.js says more): a campaign's live numbers and status that came while
  // the list was asked are kept over the answer's.
  let liveFrames = 0;
  const lastLive = new Map(); // uuid -> { statistics, statisticsAt, status, statusAt }

  function keepNewerLive(c, asked) {
    const live = lastLive.get(c.uuid);
    if (!live) return;
    if (live.statisticsAt > asked) c.statistics = live.statistics;
    if (live.statusAt > asked) c.status = live.status;
  }

  async function load(reset) {
    if (reset) cursor = null;
    const asked = liveFrames;
    const query = new URLSearchParams({ limit: "50" });
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    let doc;
    try {
      // A cluster node lists every node's campaigns (GET /api/cluster/campaigns).
      const cluster = (await pageConfig()).cluster;
      doc = await api("GET", `/api/${cluster ? "cluster/" : ""}campaigns?${query}`);
    } catch (err) {
      listEl.replaceChildren(h("div", { class: "banner banner-error" }, errorParts(t("list.load_failed"), err)));
      return;
    }
    if (!alive) return;
    if (reset) {
      campaigns.clear();
      listEl.replaceChildren();
    }
    for (const c of doc.campaigns) {
      keepNewerLive(c, asked);
      campaigns.set(c.uuid, c);
      listEl.append(rowFor(c));
    }
    cursor = doc.next_cursor;
    moreEl.hidden = !cursor;
    const missing = (doc.nodes || []).filter((n) => !n.ok);
    nodesEl.replaceChildren(
      ...missing.map((n) => h("div", { class: "banner banner-warn", dataset: { node: n.node } }, t("list.node_down", { node: n.node }), n.error ? h("small", { class: "detail", translate: "no" }, n.error) : "")),
    );
    if (!campaigns.size) {
      listEl.replaceChildren(
        h(
          "div",
          { class: "empty" },
          h("h2", {}, status ? t("list.empty_status") : t("list.empty")),
          h("p", {}, tn("list.empty_hint", { form: h("a", { href: "#/new" }, t("list.empty_form")), api: h("code", { translate: "no" }, "POST /api/campaigns") })),
        ),
      );
    }
    listen(doc.campaigns.map((c) => c.workspace_id));
  }

  const reloadSoon = throttle(() => load(true), 2000);

  const elsewhere = new Set(); // campaigns on later pages or in other tabs: no reloads for them

  function update(data) {
    if (data.campaign_uuid && (data.statistics || data.status)) {
      liveFrames += 1;
      const live = lastLive.get(data.campaign_uuid) || {};
      if (data.statistics) Object.assign(live, { statistics: data.statistics, statisticsAt: liveFrames });
      if (data.status) Object.assign(live, { status: data.status, statusAt: liveFrames });
      lastLive.set(data.campaign_uuid, live);
    }
    const c = campaigns.get(data.campaign_uuid);
    if (!c) {
      // A campaign we do not list: a new one (reload once to show it on top), or one
      // that is not on the loaded pages or not in this tab (then ignore its updates).
      if (elsewhere.has(data.campaign_uuid)) return;
      if (status && data.status !== status) return;
      elsewhere.add(data.campaign_uuid);
      reloadSoon();
      return;
    }
    if (data.statistics) c.statistics = data.statistics;
    if (data.status) c.status = data.status;
    const old = listEl.querySelector(`[data-uuid="${CSS.escape(c.uuid)}"]`);
    if (!old) return;
    if (status && c.status !== status) {
      old.remove();
      return;
    }
    const flashedAt = Number(old.dataset.flashedAt || 0);
    morph(old, rowFor(c));
    if (Date.now() - flashedAt > 2500) {
      // A gentle highlight, at most every few seconds even while a campaign is sending.
      void old.offsetWidth;
      old.classList.add("camp-flash");
      old.dataset.flashedAt = String(Date.now());
    } else {
      old.dataset.flashedAt = String(flashedAt);
    }
  }

  async function listen(workspaces) {
    const cfg = await pageConfig();
    const live = await connectLive();
    for (const ws of new Set([...workspaces, ...(cfg.workspaces || [])])) {
      const name = channelName(`workspace.${ws}`);
      if (channels.has(name) || !alive) continue;
      channels.add(name);
      live.subscribe(name).bind("campaign.statistics.updated", update).bind("campaign.status.changed", update);
    }
  }

  const off = onReconnect(() => load(true));
  load(true);
  return () => {
    alive = false;
    off();
    connectLive().then((live) => channels.forEach((name) => live.unsubscribe(name)));
  };
}
