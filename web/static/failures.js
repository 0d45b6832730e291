// Failures an operator can act on (docs/failures.md): the breakdown beside the Failed
// card (label, count, codes, what to do), the alert banner, and the sending number's
// health from Meta's account and template webhooks.
//
// The table (labels, explanations, what to do) comes from GET /api/failures, so the page
// never holds a copy of it; statistics.failures says how many failed in each category.

import { api } from "./api.js";
import { fmtAgo, fmtInt, fmtPct, h, pct } from "./util.js";

// Every string this module shows, in one place (ready for the page's message catalogue).
export const T = {
  breakdownTitle: "Why messages failed",
  breakdownHint: "Click a reason to list those recipients.",
  ofFailed: (n, share) => `${fmtInt(n)} · ${share} of failed`,
  codes: "codes",
  noCode: "no code",
  retried: "retried automatically",
  later: "retried later when enabled",
  alertFiring: "Alert",
  alertPaused: "campaign paused",
  alertSince: (ago) => `since ${ago}`,
  healthTitle: "Sending number health",
  healthNumber: (n) => `Number ${n}`,
  healthAccount: (id) => `Account ${id}`,
  healthTemplate: (name, lang) => `Template ${name}${lang ? ` (${lang})` : ""}`,
  healthLimit: "messaging limit",
  healthQuality: "quality",
  healthStatus: "status",
  healthProblems: "problems",
  healthNone: "no problems reported",
  healthAt: (ago) => `reported ${ago}`,
  allFailures: "All failures",
};

let table = null;

/** The failure table, fetched once per page load. */
export async function failureTable() {
  if (!table) {
    table = api("GET", "/api/failures")
      .then((doc) => {
        const categories = new Map(doc.failures.categories.map((c) => [c.category, c]));
        const codes = new Map(doc.failures.codes.map((c) => [c.code, c]));
        return { categories, codes };
      })
      .catch(() => {
        table = null; // an older daemon, or offline for a moment: ask again next time
        return { categories: new Map(), codes: new Map() };
      });
  }
  return table;
}

/** The breakdown panel: one line per category with failed messages. */
export class FailureBreakdown {
  constructor(onPick) {
    this.onPick = onPick; // (category) => void: show those recipients
    this.el = h("section", { class: "panel breakdown", id: "failure-breakdown", hidden: true });
    this.key = "";
  }

  async render(stats) {
    const entries = (stats && stats.failures) || [];
    const key = JSON.stringify(entries);
    if (key === this.key) return;
    this.key = key;
    if (!entries.length) {
      this.el.hidden = true;
      return;
    }
    const { categories, codes } = await failureTable();
    if (key !== this.key) return; // a newer render started meanwhile
    const failed = entries.reduce((n, e) => n + e.count, 0);
    this.el.hidden = false;
    this.el.replaceChildren(
      h("div", { class: "panel-head" }, h("h2", {}, T.breakdownTitle), h("span", { class: "muted small" }, T.breakdownHint)),
      h(
        "ul",
        { class: "breakdown-list" },
        ...entries.map((e) => {
          const c = categories.get(e.category) || {};
          const codeList = Object.entries(e.codes).map(([code, n]) => {
            const known = codes.get(code);
            return h(
              "span",
              { class: "code", title: known ? `${known.title} (${known.family})` : "" },
              code === "none" ? T.noCode : code,
              h("b", {}, ` ${fmtInt(n)}`),
            );
          });
          const retry = c.retry === "backoff" ? T.retried : c.retry === "later" ? T.later : "";
          return h(
            "li",
            {
              class: `breakdown-item cat-${e.category}`,
              dataset: { category: e.category, count: e.count },
              tabindex: "0",
              role: "button",
              onclick: () => this.onPick(e.category),
              onkeydown: (ev) => (ev.key === "Enter" || ev.key === " ") && this.onPick(e.category),
            },
            h(
              "div",
              { class: "breakdown-row" },
              h("span", { class: "breakdown-label" }, e.label),
              h("span", { class: "breakdown-count" }, T.ofFailed(e.count, fmtPct(pct(e.count, failed)))),
            ),
            h("div", { class: "breakdown-bar" }, h("i", { style: `width:${(e.count * 100) / failed}%` })),
            c.action ? h("div", { class: "breakdown-action" }, c.action) : "",
            h("div", { class: "breakdown-codes" }, h("span", { class: "muted" }, `${T.codes}:`), ...codeList, retry ? h("span", { class: "retry-note" }, retry) : ""),
          );
        }),
      ),
    );
  }
}

/** The alerts firing on a campaign, as a banner (campaign.alerts, then campaign.alert). */
export class AlertBanner {
  constructor() {
    this.el = h("div", { class: "banner banner-alert", id: "alert-banner", hidden: true, role: "alert" });
    this.alerts = new Map();
  }

  set(alerts) {
    this.alerts = new Map((alerts || []).map((a) => [a.rule, a]));
    this.render();
  }

  event(alert) {
    if (!alert) return;
    if (alert.state === "cleared") this.alerts.delete(alert.rule);
    else this.alerts.set(alert.rule, alert);
    this.render();
  }

  render() {
    const alerts = [...this.alerts.values()];
    this.el.hidden = !alerts.length;
    this.el.replaceChildren(
      ...alerts.map((a) =>
        h(
          "div",
          { class: "alert-line", dataset: { rule: a.rule } },
          h("strong", {}, `⚠ ${T.alertFiring}: `),
          h("span", { class: "alert-message" }, a.message),
          a.pause ? h("span", { class: "alert-paused" }, T.alertPaused) : "",
          a.at ? h("span", { class: "muted alert-at" }, T.alertSince(fmtAgo(a.at))) : "",
        ),
      ),
    );
  }
}

/** The sending number's health (GET /api/account/health); hidden when nothing is known
 *  or the token may not read it (a token of one workspace). */
export class NumberHealth {
  constructor() {
    this.el = h("section", { class: "panel health", id: "number-health", hidden: true });
  }

  async load() {
    let health;
    try {
      health = (await api("GET", "/api/account/health")).health;
    } catch {
      this.el.hidden = true;
      return;
    }
    const items = [
      ...health.numbers.map((n) =>
        item(T.healthNumber(n.display_phone_number || "?"), [[T.healthLimit, n.max_daily_conversations_per_business || n.current_limit || "—"], ["", n.event]], false, n.at),
      ),
      ...health.accounts.map((a) => {
        const problems = Object.entries(a.problems || {}).filter(([, v]) => v);
        return item(T.healthAccount(a.waba_id || "?"), [[T.healthProblems, problems.length ? problems.map(([k, v]) => `${k}: ${v}`).join(", ") : T.healthNone], ["", a.event]], problems.length > 0, a.at);
      }),
      ...health.templates.map((t) =>
        item(T.healthTemplate(t.name || t.id || "?", t.language), [[T.healthStatus, t.status || "—"], [T.healthQuality, t.quality || "—"]], t.warning, t.at, t.reason && t.reason !== "NONE" ? t.reason : ""),
      ),
    ];
    this.el.hidden = !items.length;
    this.el.replaceChildren(h("div", { class: "panel-head" }, h("h2", {}, T.healthTitle)), h("ul", { class: "health-list" }, ...items));
  }
}

function item(title, pairs, warning, at, extra = "") {
  return h(
    "li",
    { class: warning ? "health-item health-warn" : "health-item" },
    h("div", { class: "health-title" }, warning ? "⚠ " : "", title),
    h(
      "div",
      { class: "health-facts" },
      ...pairs.filter(([, v]) => v).map(([k, v]) => h("span", {}, k ? `${k}: ` : "", h("b", {}, v))),
      extra ? h("span", { class: "muted" }, extra) : "",
    ),
    at ? h("div", { class: "muted small" }, T.healthAt(fmtAgo(at))) : "",
  );
}

/** The category chips above the Failed tab's rows. */
export function categoryChips(stats, current, pick) {
  const entries = (stats && stats.failures) || [];
  if (!entries.length) return null;
  const chip = (key, label, n) =>
    h(
      "button",
      { class: key === current ? "chip active" : "chip", dataset: { category: key || "all" }, onclick: () => pick(key) },
      label,
      n === null ? "" : h("span", { class: "tab-count" }, fmtInt(n)),
    );
  return h("div", { class: "chips", id: "failure-filter" }, chip(null, T.allFailures, null), ...entries.map((e) => chip(e.category, e.label, e.count)));
}
