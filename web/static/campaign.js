// One campaign, live: status and actions, progress, six cards (replies too), chart,
// latencies, the buttons recipients tapped, and the recipient table. Numbers come from
// the API first and then from `campaign.{uuid}`; after every reconnect everything is
// fetched again, so nothing stale stays on screen.

import { api, channelName, connectLive, describeError, errorParts, onReconnect, pageConfig, token } from "./api.js";
import { chartWidth, renderChart, series } from "./chart.js";
import { locale, t, tn } from "./i18n.js";
import { AlertBanner, alertText, FailureBreakdown, NumberHealth } from "./failures.js";
import { RecipientTable } from "./table.js";
import {
  confirmDialog,
  fmtClock,
  fmtDuration,
  fmtInt,
  fmtNum,
  fmtPct,
  fmtDateTime,
  h,
  pct,
  statusLabel,
  throttle,
  toast,
  weekday,
} from "./util.js";

const CARDS = [
  ["total", () => t("card.total"), (s) => s.total_message_count],
  ["sent", () => t("card.sent"), (s) => s.total_sent_count],
  ["delivered", () => t("card.delivered"), (s) => s.total_delivered_count],
  ["read", () => t("card.read"), (s) => s.total_read_count],
  ["failed", () => t("card.failed"), (s) => s.total_failed_count],
  ["replied", () => t("card.replied"), (s) => s.total_replied_count ?? 0],
];

function cardNote(key, s) {
  const total = s.total_message_count;
  switch (key) {
    case "total": {
      // skipped recipients (SPEC 9) are done, not queued: said beside the queued ones
      const skipped = s.total_skipped_count ? ` · ${t("card.total.skipped", { count: s.total_skipped_count })}` : "";
      return (s.total_queued_count ? t("card.total.queued", { count: s.total_queued_count }) : total ? t("card.total.handed") : t("card.total.none")) + skipped;
    }
    case "sent":
      return t("card.sent.note", { pct: fmtPct(pct(s.total_sent_count, total)) });
    case "delivered":
      return t("card.delivered.note", { pct: fmtPct(s.delivery_rate) });
    case "read":
      return t("card.read.note", { pct: fmtPct(s.read_rate) }) + (s.total_played_count ? ` · ${t("card.read.played", { count: s.total_played_count })}` : "");
    case "replied": {
      // replies over delivered (SPEC 6.3), and who asked to stop
      const opted = s.total_opted_out_count || 0;
      return t("card.replied.note", { pct: fmtPct(s.reply_rate || 0) }) + (opted ? ` · ${t("card.replied.opted_out", { count: opted })}` : "");
    }
    default:
      return t("card.failed.note", { pct: fmtPct(pct(s.total_failed_count, total)) });
  }
}

/** The buttons' words: label, the toast when done, the toast when refused. */
function actionText(action) {
  const texts = {
    start: [t("action.start"), t("action.start.done"), t("action.start.failed")],
    pause: [t("action.pause"), t("action.pause.done"), t("action.pause.failed")],
    resume: [t("action.resume"), t("action.resume.done"), t("action.resume.failed")],
    cancel: [t("action.cancel"), t("action.cancel.done"), t("action.cancel.failed")],
    "retry-failed": [t("action.retry_failed"), t("action.retry_failed.done"), t("action.retry_failed.failed")],
    "retry-unknown": [t("action.retry_unknown"), t("action.retry_unknown.done"), t("action.retry_unknown.failed")],
  };
  const [label, done, failed] = texts[action] || [action, action, action];
  return { label, done, failed };
}

function nowStatus(status) {
  const texts = {
    scheduled: t("now.scheduled"),
    processing: t("now.processing"),
    paused: t("now.paused"),
    completed: t("now.completed"),
    cancelled: t("now.cancelled"),
    failed: t("now.failed"),
  };
  return texts[status] || t("now.other", { status: statusLabel(status) });
}
const TARGET = { start: "processing", pause: "paused", resume: "processing", cancel: "cancelled", "retry-failed": "processing", "retry-unknown": "processing" };

export function mountCampaign(root, uuid) {
  const path = `/api/campaigns/${encodeURIComponent(uuid)}`;
  let campaign = null;
  let stats = null;
  // Live frames arrive in order (the daemon keeps its state on subscribe in order with its
  // pushes, docs/live.md), so each one is the newest we know. An API answer is a state
  // read while its request was on its way: once a live frame came in that time, it may be
  // older than what is shown, and the live stream brings anything newer by itself. So an
  // answer's numbers (or status) count only when no live numbers (status) came meanwhile.
  // `updated_at` cannot order them: it is the time of the latest status event, which
  // stays the same when an older event changes the counts, e.g. a late failure.
  let liveStats = 0; // live frames with statistics so far
  let liveStatus = 0; // live status changes so far
  let lastLiveStatus = null;
  let samples = []; // [ms, sent + failed] while sending, for rate and ETA
  let timeline = null;
  let announced = null; // the status our own button just set: its push needs no second toast
  let sendInfo = null; // GET …/sending: server-side rate, ETA, pause reason, unknown outcomes
  let alive = true;
  const cleanups = [];

  const titleEl = h("h1", { class: "title", translate: "no" }, "…");
  const statusEl = h("span", { class: "pill" });
  const metaEl = h("div", { class: "meta" });
  const actionsEl = h("div", { class: "actions" });
  const sendingEl = h("section", { class: "sending", id: "sending", hidden: true });
  const barEl = h("section", { class: "panel spread", id: "delivery-bar" });
  const cardsEl = h("section", { class: "cards", id: "cards" });
  const chartEl = h("div", { class: "chart" });
  const latencyEl = h("div", { class: "latency" });
  const buttonsEl = h("section", { class: "panel", id: "buttons", hidden: true });
  const errorEl = h("div", { class: "banner banner-error", hidden: true });
  const unknownEl = h("div", { class: "banner banner-warn", id: "unknown-banner", hidden: true });
  const table = new RecipientTable(uuid);
  const breakdown = new FailureBreakdown((category) => table.showCategory(category));
  const alerts = new AlertBanner();
  const health = new NumberHealth();

  const cardEls = {};
  for (const [key, label] of CARDS) {
    const value = h("div", { class: "card-value" }, "–");
    const note = h("div", { class: "card-note" }, "");
    const el = h("div", { class: `card card-${key}`, id: `card-${key}` }, h("div", { class: "card-label" }, label()), value, note);
    cardEls[key] = { el, value, note };
    cardsEl.append(el);
  }

  root.append(
    h("a", { href: "#/", class: "back" }, t("nav.back")),
    h("div", { class: "head" }, h("div", {}, h("div", { class: "title-row" }, titleEl, statusEl), metaEl), actionsEl),
    errorEl,
    alerts.el,
    unknownEl,
    sendingEl,
    cardsEl,
    breakdown.el,
    barEl,
    h(
      "div",
      { class: "grid-2" },
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", {}, t("chart.title")), h("div", { class: "legend" }, ...series().map(([, label, color]) => h("span", {}, h("i", { style: `background:${color}` }), label)))),
        chartEl,
      ),
      h("div", {}, h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, t("speed.title"))), latencyEl), health.el),
    ),
    buttonsEl,
    table.el,
  );

  // --- rendering ------------------------------------------------------------------

  /** The send window, as "Mon–Fri 08:00–20:00 (Asia/Jakarta)" in the reader's language. */
  function windowText(w) {
    const names = w.days.map((day) => weekday(day));
    const days = w.days.length === 7 ? t("window.every_day") : new Intl.ListFormat(locale(), { style: "narrow" }).format(names);
    return tn("meta.window", { days, from: w.from, to: w.to, zone: h("span", { translate: "no" }, w.timezone) });
  }

  function renderHead() {
    document.title = `${campaign.name} · campaignd`;
    titleEl.textContent = campaign.name;
    const tracked = isTracked();
    statusEl.className = `pill pill-${tracked && campaign.status === "pending" ? "tracking" : campaign.status}`;
    statusEl.textContent = statusLabel(campaign.status, tracked);
    statusEl.id = "campaign-status";
    metaEl.replaceChildren(
      h("span", {}, t("meta.workspace", { id: String(campaign.workspace_id) })),
      campaign.gateway ? h("span", {}, t("meta.via", { gateway: campaign.gateway })) : h("span", {}, t("meta.tracked")),
      h("span", {}, tn("meta.created", { when: h("time", { datetime: campaign.created_at }, fmtDateTime(campaign.created_at)) })),
      campaign.window ? h("span", { id: "send-window" }, ...windowText(campaign.window)) : "",
      h("span", { class: "mono muted", translate: "no" }, campaign.uuid),
    );
    renderActions();
  }

  /** Sent elsewhere, only tracked here: nothing to pause, resume or retry. */
  function isTracked() {
    return !campaign.message && !campaign.gateway;
  }

  let actionsKey = "";

  function renderActions() {
    const s = campaign.status;
    const failed = stats ? stats.total_failed_count : 0;
    // Rebuild only when something they show changed: a button replaced under the
    // pointer loses its click, and statistics arrive up to ten times a second.
    const key = `${s}|${failed}|${isTracked()}|${Boolean(campaign.message)}|${campaign.send_at}`;
    if (key === actionsKey) return;
    actionsKey = key;
    const buttons = [];
    const exportButton = h("button", { class: "btn", onclick: exportCsv, dataset: { action: "export" } }, t("action.export"));
    if (isTracked()) {
      actionsEl.replaceChildren(exportButton);
      return;
    }
    if (s === "pending" && campaign.message) buttons.push(["start", actionText("start").label, "btn-primary", false]);
    if (s === "scheduled") buttons.push(["start", t("action.start_now"), "btn-primary", false]);
    // A finished campaign (completed, cancelled, failed) has nothing to pause or cancel:
    // those buttons go rather than stay greyed out; Retry failed stays while it can act.
    const finished = ["completed", "cancelled", "failed"].includes(s);
    if (s === "paused") buttons.push(["resume", actionText("resume").label, "btn-primary", false]);
    else if (!finished) buttons.push(["pause", actionText("pause").label, "", s !== "processing"]);
    if (!finished) buttons.push(["cancel", actionText("cancel").label, "btn-danger-ghost", false]);
    const retry = failed ? t("action.retry_failed.count", { count: failed }) : actionText("retry-failed").label;
    if (!finished || failed) buttons.push(["retry-failed", retry, "", !failed || !["processing", "paused", "completed", "failed"].includes(s)]);
    actionsEl.replaceChildren(
      ...buttons.map(([action, label, cls, disabled]) =>
        h("button", { class: `btn ${cls}`, disabled, dataset: { action }, onclick: () => act(action) }, label),
      ),
      exportButton,
    );
  }

  /** A scheduled campaign: when it starts (and in how long). */
  function renderScheduled() {
    const when = campaign.send_at;
    const left = when ? (new Date(when).getTime() - Date.now()) / 1000 : null;
    sendingEl.hidden = false;
    sendingEl.className = "sending sending-scheduled";
    sendingEl.replaceChildren(
      h(
        "div",
        { class: "sending-row" },
        h("strong", { class: "sending-label", id: "scheduled-at" }, ...tn("sending.scheduled", { when: h("time", { datetime: when }, fmtDateTime(when)) })),
        left !== null && left > 0 ? h("span", { class: "sending-speed" }, t("sending.scheduled_in", { duration: fmtDuration(left) })) : "",
      ),
    );
  }

  /** The lines under the progress bar: a late start, the send window, the account's rate. */
  function sendingNotes(s) {
    const notes = [];
    if (campaign.start_note && campaign.send_at) {
      notes.push(h("div", { class: "sending-note", id: "started-late" }, ...tn("sending.started_late", { when: h("time", { datetime: campaign.send_at }, fmtDateTime(campaign.send_at)) })));
    }
    if (s === "processing" && stats.waiting_for === "send_window") {
      notes.push(h("div", { class: "sending-window", id: "window-wait" }, ...tn("sending.waiting_window", { opens: h("span", { translate: "no" }, stats.window_opens || "?") })));
    }
    return notes;
  }

  /** The gateway account's effective rate, shared with its other campaigns. */
  function accountRate() {
    const rate = stats.account_rate ?? (sendInfo && sendInfo.account ? sendInfo.account.effective_rate : null);
    if (rate === null || rate === undefined) return "";
    const account = sendInfo && sendInfo.account;
    const lowered = account && account.throttled_count && account.configured_rate && rate < account.configured_rate;
    return h("span", { id: "account-rate", title: t("sending.account_rate_title") }, t("sending.account_rate", { rate }), lowered ? ` ${t("sending.account_lowered")}` : "");
  }

  function renderSending() {
    const s = campaign.status;
    if (s === "scheduled") {
      renderScheduled();
      return;
    }
    if (!stats || !["processing", "paused"].includes(s)) {
      sendingEl.hidden = true;
      return;
    }
    const skipped = stats.total_skipped_count || 0; // done too: never to be sent (SPEC 9)
    const done = stats.total_sent_count + stats.total_failed_count + skipped;
    const total = stats.total_message_count;
    const progress = stats.progress ?? pct(done, total);
    const counts = { pct: fmtPct(progress), sent: stats.total_sent_count, failed: stats.total_failed_count, total };
    const reason = s === "paused" && sendInfo && sendInfo.status === "paused" ? sendInfo.status_reason : null;
    const { rate, eta } = speed(total - done);
    sendingEl.hidden = false;
    sendingEl.className = `sending sending-${s}`;
    sendingEl.replaceChildren(
      h(
        "div",
        { class: "sending-row" },
        h("strong", { class: "sending-label" }, s === "paused" ? t("sending.paused", counts) : t("sending.progress", counts)),
        h(
          "span",
          { class: "sending-speed" },
          rate ? h("span", { id: "send-rate" }, t("sending.rate", { rate: fmtNum(rate) })) : "",
          s === "processing" ? accountRate() : "",
          eta ? h("span", { id: "send-eta" }, t("sending.eta", { eta: fmtDuration(eta) })) : "",
          skipped ? h("span", { id: "send-skipped" }, t("sending.skipped", { count: skipped })) : "",
        ),
      ),
      h("div", { class: "progress" }, h("div", { class: "progress-fill", style: `width:${Math.min(100, progress)}%` })),
      ...sendingNotes(s),
      reason ? h("div", { class: "sending-reason" }, t("sending.reason"), " ", h("span", { translate: "no" }, reason)) : "",
    );
  }

  function renderUnknown() {
    const unknown = sendInfo && sendInfo.progress ? sendInfo.progress.total_unknown_count : 0;
    unknownEl.hidden = !unknown;
    if (!unknown) return;
    unknownEl.replaceChildren(
      h("span", {}, t("unknown.text", { count: unknown })),
      h("button", { class: "btn btn-small", dataset: { action: "retry-unknown" }, onclick: () => act("retry-unknown") }, actionText("retry-unknown").label),
    );
  }

  /** Sending details (server rate and ETA, pause reason, unknown outcomes) of sent campaigns. */
  const loadSending = throttle(async () => {
    if (!campaign || isTracked()) return;
    try {
      sendInfo = (await api("GET", `${path}/sending`)).sending;
    } catch {
      sendInfo = null; // an older daemon without the route: measure the rate ourselves
    }
    if (!alive) return;
    renderSending();
    renderUnknown();
  }, 3000);

  /** Rate from the server if it sends one, else measured from the last ~30 s. */
  function speed(remaining) {
    const server = sendInfo && sendInfo.status === "processing" && sendInfo.progress ? sendInfo.progress : {};
    let rate = stats.send_rate || server.send_rate || null;
    if (rate === null && samples.length >= 2) {
      const [t0, d0] = samples[0];
      const [t1, d1] = samples[samples.length - 1];
      if (t1 - t0 >= 2000 && d1 > d0) rate = ((d1 - d0) * 1000) / (t1 - t0);
    }
    let eta = stats.eta_seconds ?? server.eta_seconds ?? null;
    if (eta === null && rate) eta = remaining / rate;
    return { rate, eta: remaining > 0 ? eta : null };
  }

  function renderBar() {
    const s = stats;
    const total = s.total_message_count;
    const parts = [
      ["read", s.total_read_count, t("spread.read")],
      ["delivered", s.total_delivered_count - s.total_read_count, t("spread.delivered")],
      ["sent", s.total_sent_count - s.total_delivered_count, t("spread.sent")],
      ["failed", s.total_failed_count, t("spread.failed")],
      ["queued", s.total_queued_count, t("spread.queued")],
    ];
    // skipped by the sender (SPEC 9): shown only when there are any
    if (s.total_skipped_count) parts.push(["skipped", s.total_skipped_count, t("spread.skipped")]);
    const bar = h(
      "div",
      { class: "spread-bar", role: "img", "aria-label": t("spread.title") },
      ...parts.map(([key, n, label]) =>
        h("div", { class: `seg seg-${key}`, style: `width:${total ? (n * 100) / total : 0}%`, title: `${label}: ${fmtInt(n)}`, dataset: { seg: key, count: n } }),
      ),
    );
    const summary = { delivered: fmtPct(pct(s.total_delivered_count, total)), read: fmtPct(pct(s.total_read_count, total)) };
    barEl.replaceChildren(
      h(
        "div",
        { class: "spread-head" },
        h("h2", {}, t("spread.title")),
        h("span", { class: "spread-summary", id: "spread-summary" }, total ? t("spread.summary", summary) : t("spread.none")),
      ),
      bar,
      h("div", { class: "spread-legend" }, ...parts.map(([key, n, label]) => h("span", {}, h("i", { class: `seg-${key}` }), `${label} `, h("b", {}, fmtInt(n))))),
    );
  }

  function renderCards(previous) {
    for (const [key, , get] of CARDS) {
      const card = cardEls[key];
      const value = get(stats);
      card.value.textContent = fmtInt(value);
      card.el.dataset.value = value;
      card.note.textContent = cardNote(key, stats);
      if (previous && get(previous) !== value) {
        const delta = value - get(previous);
        card.el.classList.remove("bump");
        void card.el.offsetWidth; // restart the highlight animation
        card.el.classList.add("bump");
        // One badge per card: changes that come quickly add up instead of piling up.
        card.delta = (card.badge && card.badge.isConnected ? card.delta : 0) + delta;
        if (card.badge) card.badge.remove();
        clearTimeout(card.badgeTimer);
        card.badge = h("span", { class: "card-delta" }, `${card.delta > 0 ? "+" : ""}${fmtInt(card.delta)}`);
        card.el.append(card.badge);
        card.badgeTimer = setTimeout(() => card.badge.remove(), 1600);
      }
    }
  }

  function renderLatency() {
    const block = (title, q, hint) =>
      h(
        "div",
        { class: "lat" },
        h("div", { class: "lat-title" }, title),
        h("div", { class: "lat-values" }, h("div", {}, h("span", { class: "lat-num" }, fmtDuration(q && q.median)), h("span", { class: "lat-cap" }, t("speed.median"))), h("div", {}, h("span", { class: "lat-num" }, fmtDuration(q && q.p90)), h("span", { class: "lat-cap" }, t("speed.p90")))),
        h("div", { class: "lat-hint" }, hint),
      );
    latencyEl.replaceChildren(
      block(t("speed.deliver"), stats.time_to_deliver, t("speed.deliver_hint")),
      block(t("speed.read"), stats.time_to_read, t("speed.read_hint")),
      block(t("speed.reply"), stats.time_to_reply, t("speed.reply_hint")),
      h("div", { class: "lat-updated muted", id: "stats-updated" }, stats.updated_at ? t("speed.updated", { time: fmtClock(stats.updated_at) }) : ""),
    );
  }

  /** Which quick-reply buttons recipients tapped, most tapped first (SPEC 6.3). */
  function renderButtons() {
    const buttons = stats.buttons || [];
    buttonsEl.hidden = !buttons.length;
    if (!buttons.length) return;
    const most = Math.max(...buttons.map((b) => b.count));
    buttonsEl.replaceChildren(
      h("div", { class: "panel-head" }, h("h2", {}, t("buttons.title")), h("span", { class: "muted" }, t("buttons.hint"))),
      h(
        "div",
        { class: "buttons-list" },
        ...buttons.map((b) =>
          h(
            "div",
            { class: "button-row", dataset: { payload: b.payload || "", count: b.count } },
            h("span", { class: "button-title", translate: "no", title: b.payload || "" }, b.title || b.payload || "—"),
            h("span", { class: "button-bar" }, h("i", { style: `width:${most ? (b.count * 100) / most : 0}%` })),
            h("b", { class: "button-count" }, fmtInt(b.count)),
          ),
        ),
      ),
    );
  }

  // --- state ----------------------------------------------------------------------

  const loadTimeline = throttle(async () => {
    try {
      const doc = await api("GET", `${path}/timeline?points=120`);
      timeline = doc.timeline;
      if (alive) renderChart(chartEl, timeline);
    } catch (err) {
      chartEl.replaceChildren(h("div", { class: "chart-empty" }, errorParts(t("chart.load_failed"), err)));
    }
  }, 3000);

  /** What live frames have come so far, taken when an API request is sent: its answer
   *  may set the numbers (the status) only if no live ones came before it. */
  const liveSoFar = () => ({ stats: liveStats, status: liveStatus });

  /** The campaign from an API answer, keeping a live status that came while it was asked. */
  function answered(doc, asked) {
    return liveStatus === asked.status ? doc : { ...doc, status: lastLiveStatus };
  }

  function applyStats(next, source, asked = null) {
    if (!next || !alive) return;
    if (source === "live") liveStats += 1;
    else if (asked && asked.stats !== liveStats) return; // a live frame is as new or newer
    const previous = stats;
    stats = next;
    if (campaign && campaign.status === "processing") {
      samples.push([Date.now(), stats.total_sent_count + stats.total_failed_count]);
      samples = samples.filter(([t]) => Date.now() - t < 30000);
    }
    renderCards(previous);
    breakdown.render(stats);
    renderBar();
    renderLatency();
    renderButtons();
    if (campaign) {
      renderSending();
      renderActions();
    }
    table.renderTabs(stats);
    const moved = previous && CARDS.some(([, , get]) => get(previous) !== get(stats));
    if (moved && source === "live") {
      loadTimeline();
      table.statsChanged();
      if (campaign && campaign.status === "processing") loadSending();
    }
  }

  async function loadAll() {
    try {
      const asked = liveSoFar();
      const doc = await api("GET", path);
      if (!alive) return;
      campaign = answered(doc.campaign, asked);
      errorEl.hidden = true;
      alerts.set(campaign.alerts);
      renderHead();
      applyStats(campaign.statistics, "api", asked);
    } catch (err) {
      errorEl.hidden = false;
      errorEl.replaceChildren(...errorParts(err.status === 404 ? "" : t("campaign.load_failed"), err));
      return;
    }
    table.load();
    loadTimeline();
    loadSending();
    health.load();
  }

  async function act(action) {
    if (action === "cancel" && !(await confirmDialog(t("cancel.title"), t("cancel.text"), t("cancel.ok"), true, t("cancel.back")))) return;
    announced = TARGET[action] || null;
    setTimeout(() => (announced = null), 5000);
    try {
      const asked = liveSoFar();
      const doc = await api("POST", `${path}/${action}`, {});
      if (doc && doc.campaign) {
        campaign = answered({ ...campaign, ...doc.campaign }, asked);
        renderHead();
        if (doc.campaign.statistics) applyStats(doc.campaign.statistics, "api", asked);
        else renderSending();
      }
      loadSending();
      const { done } = actionText(action);
      toast(doc && typeof doc.requeued === "number" ? t("action.requeued", { done, count: doc.requeued }) : done, "ok");
    } catch (err) {
      const { text, detail } = describeError(err);
      toast(`${actionText(action).failed} ${text}`, "error", detail);
    }
  }

  async function exportCsv() {
    const url = `${path}/export.csv`;
    const cfg = await pageConfig();
    let href = url; // without a token the browser fetches (and streams) the file itself
    if (cfg.auth_required) {
      // With a token: fetch it with the Authorization header and hand over the result.
      try {
        const resp = await fetch(url, { headers: { Authorization: `Bearer ${token()}` } });
        if (!resp.ok) {
          let message = resp.status === 404 ? "this daemon has no CSV export (404)" : `HTTP ${resp.status} ${resp.statusText}`;
          try {
            message = (await resp.json()).error.message;
          } catch {
            /* not JSON */
          }
          throw new Error(message);
        }
        href = URL.createObjectURL(await resp.blob());
        setTimeout(() => URL.revokeObjectURL(href), 10000);
      } catch (err) {
        toast(t("export.failed"), "error", err.message);
        return;
      }
    }
    const a = h("a", { href, download: `${uuid}.csv`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  }

  // --- live -----------------------------------------------------------------------

  const mine = (data) => data && (!data.campaign_uuid || data.campaign_uuid === uuid);
  let channel = null;
  connectLive().then((live) => {
    if (!alive) return;
    channel = live.subscribe(channelName(`campaign.${uuid}`));
    channel
      .bind("campaign.statistics.updated", (data) => mine(data) && applyStats(data.statistics, "live"))
      .bind("campaign.status.changed", (data) => {
        if (!mine(data)) return;
        liveStatus += 1;
        lastLiveStatus = data.status;
        if (!campaign) {
          if (data.statistics) applyStats(data.statistics, "live"); // the head comes with the API
          return;
        }
        const before = campaign.status;
        campaign = { ...campaign, status: data.status };
        if (before === "scheduled" && data.status !== "scheduled") loadAll(); // its start note
        renderHead();
        if (data.statistics) applyStats(data.statistics, "live");
        else renderSending();
        loadSending();
        if (data.status === "paused") health.load(); // a template or account may be why
        if (before !== data.status && data.status !== announced) toast(nowStatus(data.status), "info");
      })
      .bind("campaign.messages.updated", (data) => mine(data) && table.patch(data.rows || [], Boolean(data.resync)))
      .bind("campaign.alert", (data) => {
        if (!mine(data)) return;
        alerts.event(data.alert);
        if (data.alert && data.alert.state === "firing" && !data.alert.repeat) toast(["⚠ ", ...alertText(data.alert)], "error");
      })
      // Row pushes start with the subscription: whatever changed before it (e.g. while
      // disconnected) comes from the API. Statistics come with the subscription itself.
      .bind("pusher:subscription_succeeded", () => {
        table.load();
        loadTimeline();
      })
      .bind("pusher:subscription_error", (data) => toast(t("live.refused"), "error", data.message));
  });
  cleanups.push(onReconnect(() => loadAll()));
  // A scheduled campaign's "starts in ..." counts down; its start comes as a status push.
  const ticker = setInterval(() => campaign && campaign.status === "scheduled" && renderSending(), 15000);
  cleanups.push(() => clearInterval(ticker));
  // The chart is drawn for its box's width; when the box changes (a window resize, or the
  // grid settling after the panels beside it filled in) it is drawn again, else the SVG
  // would be stretched and its text scaled with it.
  const redraw = throttle(() => {
    const drawn = Number(chartEl.dataset.width || 0);
    if (timeline && alive && drawn && Math.abs(chartWidth(chartEl) - drawn) > 1) renderChart(chartEl, timeline);
  }, 200);
  const resizes = new ResizeObserver(redraw);
  resizes.observe(chartEl);
  cleanups.push(() => resizes.disconnect());

  table.renderTabs({});
  loadAll();

  return () => {
    alive = false;
    for (const fn of cleanups) fn();
    if (channel) connectLive().then((live) => live.unsubscribe(channel.name));
  };
}
