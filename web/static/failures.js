// Failures an operator can act on (docs/failures.md): the breakdown beside the Failed
// card (label, count, codes, what to do), the alert banner, and the sending number's
// health from Meta's account and template webhooks.
//
// The codes (their providers' titles, whether a retry helps) come from GET /api/failures;
// statistics.failures says how many failed in each category. The categories' words
// (label, explanation, what to do) are the page's, in its message catalogue, in every
// language; the providers' own words are data and stay as they came (translate="no").

import { api } from "./api.js";
import { language, t, tn } from "./i18n.js";
import { fmtAgo, fmtDuration, fmtInt, fmtPct, h, pct } from "./util.js";

// The nine categories' words, from the catalogue (web/static/i18n/*.js; the English is
// domain/failures.py's, so the page and docs/failures.md say the same). Literal keys, so
// tests/test_page_i18n.py sees them. A category the catalogue does not know (a newer
// daemon) falls back to the server's English words, marked lang="en".
const CATEGORY_TEXT = {
  opted_out: () => ({ label: t("failure.opted_out.label"), explanation: t("failure.opted_out.explanation"), action: tn("failure.opted_out.action") }),
  not_on_whatsapp: () => ({ label: t("failure.not_on_whatsapp.label"), explanation: t("failure.not_on_whatsapp.explanation"), action: tn("failure.not_on_whatsapp.action") }),
  limited_by_meta: () => ({
    label: t("failure.limited_by_meta.label"),
    explanation: t("failure.limited_by_meta.explanation"),
    action: tn("failure.limited_by_meta.action", { key: configKey("sender.retry_limited_by_meta") }),
  }),
  throttled: () => ({ label: t("failure.throttled.label"), explanation: t("failure.throttled.explanation"), action: tn("failure.throttled.action") }),
  template: () => ({ label: t("failure.template.label"), explanation: t("failure.template.explanation"), action: tn("failure.template.action") }),
  window_closed: () => ({ label: t("failure.window_closed.label"), explanation: t("failure.window_closed.explanation"), action: tn("failure.window_closed.action") }),
  account: () => ({ label: t("failure.account.label"), explanation: t("failure.account.explanation"), action: tn("failure.account.action") }),
  temporary: () => ({ label: t("failure.temporary.label"), explanation: t("failure.temporary.explanation"), action: tn("failure.temporary.action") }),
  other: () => ({ label: t("failure.other.label"), explanation: t("failure.other.explanation"), action: tn("failure.other.action") }),
};

// Each failure code's own plain label (domain/failures.py CODES, where English is kept:
// tests/test_page_i18n.py checks the catalogue against it). A literal key per code, so the
// catalogue scan sees them all; families ("132xxx", "http_5xx") stand for their codes.
const CODE_LABEL = {
  "131050": () => t("failure.code.131050"),
  "63014": () => t("failure.code.63014"),
  "21610": () => t("failure.code.21610"),
  "131026": () => t("failure.code.131026"),
  "131009": () => t("failure.code.131009"),
  "63003": () => t("failure.code.63003"),
  "63024": () => t("failure.code.63024"),
  "131049": () => t("failure.code.131049"),
  "130472": () => t("failure.code.130472"),
  "63049": () => t("failure.code.63049"),
  "63032": () => t("failure.code.63032"),
  "130429": () => t("failure.code.130429"),
  "131056": () => t("failure.code.131056"),
  "80007": () => t("failure.code.80007"),
  "4": () => t("failure.code.4"),
  "63018": () => t("failure.code.63018"),
  "132000": () => t("failure.code.132000"),
  "132001": () => t("failure.code.132001"),
  "132005": () => t("failure.code.132005"),
  "132007": () => t("failure.code.132007"),
  "132012": () => t("failure.code.132012"),
  "132015": () => t("failure.code.132015"),
  "132016": () => t("failure.code.132016"),
  "132xxx": () => t("failure.code.132xxx"),
  "131008": () => t("failure.code.131008"),
  "100": () => t("failure.code.100"),
  "63021": () => t("failure.code.63021"),
  "131047": () => t("failure.code.131047"),
  "63016": () => t("failure.code.63016"),
  "131042": () => t("failure.code.131042"),
  "131031": () => t("failure.code.131031"),
  "368": () => t("failure.code.368"),
  "131048": () => t("failure.code.131048"),
  "190": () => t("failure.code.190"),
  "0": () => t("failure.code.0"),
  "10": () => t("failure.code.10"),
  "200": () => t("failure.code.200"),
  "131005": () => t("failure.code.131005"),
  "133010": () => t("failure.code.133010"),
  "131045": () => t("failure.code.131045"),
  "133xxx": () => t("failure.code.133xxx"),
  "http_401": () => t("failure.code.http_401"),
  "http_403": () => t("failure.code.http_403"),
  "session_not_working": () => t("failure.code.session_not_working"),
  "131000": () => t("failure.code.131000"),
  "131016": () => t("failure.code.131016"),
  "133004": () => t("failure.code.133004"),
  "131057": () => t("failure.code.131057"),
  "1": () => t("failure.code.1"),
  "2": () => t("failure.code.2"),
  "http_429": () => t("failure.code.http_429"),
  "http_5xx": () => t("failure.code.http_5xx"),
  "http_408": () => t("failure.code.http_408"),
  "timeout": () => t("failure.code.timeout"),
  "connection_error": () => t("failure.code.connection_error"),
  "130403": () => t("failure.code.130403"),
  "130497": () => t("failure.code.130497"),
  "131021": () => t("failure.code.131021"),
  "131051": () => t("failure.code.131051"),
  "131052": () => t("failure.code.131052"),
  "131053": () => t("failure.code.131053"),
  "30003": () => t("failure.code.30003"),
  "30007": () => t("failure.code.30007"),
  "ack_error": () => t("failure.code.ack_error"),
  "http_4xx": () => t("failure.code.http_4xx"),
  "bad_reply": () => t("failure.code.bad_reply"),
};
const CODE_FAMILIES = Object.keys(CODE_LABEL).filter((code) => code.endsWith("x"));

/** A code's label in the page's language, or null for a code the table does not list. */
export function codeLabel(code) {
  if (!code) return null;
  if (Object.hasOwn(CODE_LABEL, code)) return CODE_LABEL[code]();
  const family = CODE_FAMILIES.find((f) => {
    const stem = f.replace(/x+$/, "");
    return code.length === f.length && code.startsWith(stem) && /^\d+$/.test(code.slice(stem.length));
  });
  return family ? CODE_LABEL[family]() : null;
}

// The language of the server's failure table (GET /api/failures, a row's failure.label):
// a code's own plain label is shown as it is only to a reader of this language; others
// see the category's label from the catalogue.
const SERVER_LANGUAGE = "en";

/** A configuration key, written as code in every language. */
function configKey(name) {
  return h("code", { translate: "no" }, name);
}

/** Server words shown only because the catalogue has none: English, and saying so. */
function serverWords(text) {
  return text ? h("span", { lang: SERVER_LANGUAGE }, text) : "";
}

/** The words of a category in the page's language: label and explanation as text, the
 *  action as pieces for h(). `server`: the category as GET /api/failures or the
 *  statistics gave it, for a category the catalogue does not know. */
export function categoryText(category, server = {}) {
  const own = Object.hasOwn(CATEGORY_TEXT, category) ? CATEGORY_TEXT[category]() : null;
  if (own) return { ...own, known: true };
  return { label: server.label || category, explanation: server.explanation || "", action: server.action ? [server.action] : [], known: false };
}

/** A category's label as an element (server words marked as English when they are). */
function categoryLabel(category, server, attrs = {}) {
  const text = categoryText(category, server);
  return h("span", { ...attrs, title: text.explanation || null, lang: text.known ? null : SERVER_LANGUAGE }, text.label);
}

/** The failure of a recipient row, for the table: its code's own label in the page's
 *  language (the server's label, in English, for a code the page does not know; the
 *  category's label to a reader of another language); the code as data. */
export function failureNote(failure, attrs) {
  const own = codeLabel(failure.code);
  const server = !own && language() === SERVER_LANGUAGE && failure.label;
  const text = categoryText(failure.category, { label: failure.label });
  const label = own || server || text.label;
  const lang = own || server || text.known ? null : SERVER_LANGUAGE;
  return h("span", { ...attrs, translate: "no" }, h("span", { translate: "yes", lang }, label), failure.code ? ` (${failure.code})` : "");
}

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

/** A code's hover text in the breakdown: its label in the page's language, then the
 *  provider's own title and whose code it is (data, as the provider wrote it). */
function codeTitle(code, known) {
  const label = codeLabel(code);
  const provider = known ? `${known.title} (${known.family})` : null;
  return [label, provider].filter(Boolean).join(" · ") || null;
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
      h("div", { class: "panel-head" }, h("h2", {}, t("failure.breakdown.title")), h("span", { class: "muted small" }, t("failure.breakdown.hint"))),
      h(
        "ul",
        { class: "breakdown-list" },
        ...entries.map((e) => {
          const c = categories.get(e.category) || {};
          const text = categoryText(e.category, { ...c, label: e.label || c.label });
          // Codes and the provider's titles are data: the same in every language.
          const codeList = Object.entries(e.codes).map(([code, n]) => {
            const known = codes.get(code);
            return code === "none"
              ? h("span", { class: "code" }, t("failure.no_code"), h("b", {}, ` ${fmtInt(n)}`))
              : h("span", { class: "code", translate: "no", title: codeTitle(code, known) }, code, h("b", {}, ` ${fmtInt(n)}`));
          });
          const retry = c.retry === "backoff" ? t("failure.retry.backoff") : c.retry === "later" ? t("failure.retry.later") : "";
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
              categoryLabel(e.category, { ...c, label: e.label || c.label }, { class: "breakdown-label" }),
              h("span", { class: "breakdown-count" }, t("failure.breakdown.count", { count: e.count, share: fmtPct(pct(e.count, failed)) })),
            ),
            h("div", { class: "breakdown-bar" }, h("i", { style: `width:${(e.count * 100) / failed}%` })),
            text.explanation ? h("div", { class: "breakdown-explanation muted small", lang: text.known ? null : SERVER_LANGUAGE }, text.explanation) : "",
            text.action.length ? h("div", { class: "breakdown-action", lang: text.known ? null : SERVER_LANGUAGE }, ...text.action) : "",
            h("div", { class: "breakdown-codes" }, h("span", { class: "muted" }, t("failure.codes")), ...codeList, retry ? h("span", { class: "retry-note" }, retry) : ""),
          );
        }),
      ),
    );
  }
}

const METRIC = {
  failure_rate: () => t("alert.metric.failure_rate"),
  delivery_rate: () => t("alert.metric.delivery_rate"),
  read_rate: () => t("alert.metric.read_rate"),
  reply_rate: () => t("alert.metric.reply_rate"),
};

/** An alert in the page's language, as pieces for h(): what is measured, its value, over
 *  which span, the limit and the volume. The rule's name is the operator's (data); the
 *  server's English sentence (alert.message) stays on hover. */
export function alertText(a) {
  const what =
    a.metric === "category_share"
      ? t("alert.metric.category_share", { category: categoryText(a.category, { label: a.category_label || a.category }).label })
      : Object.hasOwn(METRIC, a.metric)
        ? METRIC[a.metric]()
        : h("code", { translate: "no" }, a.metric); // any statistics key a later release adds
  const span = a.window ? t("alert.window.last", { duration: fmtDuration(a.window) }) : t("alert.window.whole");
  const threshold = fmtPct(a.threshold);
  const limit = a.direction === "below" ? t("alert.limit.below", { threshold }) : t("alert.limit.above", { threshold });
  return [
    h("span", { class: "alert-rule", translate: "no", title: a.message || null }, a.rule),
    ": ",
    ...tn("alert.text", { what, value: fmtPct(a.value), span, limit, count: a.volume }),
  ];
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
          h("strong", {}, `⚠ ${t("alert.label")}: `),
          h("span", { class: "alert-message" }, ...alertText(a)),
          a.pause ? h("span", { class: "alert-paused" }, t("alert.paused")) : "",
          a.at ? h("span", { class: "muted alert-at" }, t("alert.since", { ago: fmtAgo(a.at) })) : "",
        ),
      ),
    );
  }
}

/** Meta's words (events, limits, template names and states): data, in no language of ours. */
function data(value) {
  return h("b", { translate: "no" }, value);
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
        item(tn("health.number", { number: data(n.display_phone_number || "?") }), [[t("health.limit"), n.max_daily_conversations_per_business || n.current_limit || "—"], ["", n.event]], false, n.at),
      ),
      ...health.accounts.map((a) => {
        const problems = Object.entries(a.problems || {}).filter(([, v]) => v);
        const said = problems.length ? data(problems.map(([k, v]) => `${k}: ${v}`).join(", ")) : h("b", {}, t("health.none"));
        return item(tn("health.account", { id: data(a.waba_id || "?") }), [[t("health.problems"), said], ["", a.event]], problems.length > 0, a.at);
      }),
      ...health.templates.map((tpl) => {
        const name = data(tpl.name || tpl.id || "?");
        const title = tpl.language ? tn("health.template_language", { name, language: data(tpl.language) }) : tn("health.template", { name });
        return item(title, [[t("health.status"), tpl.status || "—"], [t("health.quality"), tpl.quality || "—"]], tpl.warning, tpl.at, tpl.reason && tpl.reason !== "NONE" ? tpl.reason : "");
      }),
    ];
    this.el.hidden = !items.length;
    this.el.replaceChildren(h("div", { class: "panel-head" }, h("h2", {}, t("health.title"))), h("ul", { class: "health-list" }, ...items));
  }
}

function item(title, pairs, warning, at, extra = "") {
  return h(
    "li",
    { class: warning ? "health-item health-warn" : "health-item" },
    h("div", { class: "health-title" }, warning ? "⚠ " : "", ...title),
    h(
      "div",
      { class: "health-facts" },
      ...pairs.filter(([, v]) => v).map(([k, v]) => h("span", {}, k ? `${k}: ` : "", v instanceof Node ? v : data(v))),
      extra ? h("span", { class: "muted", translate: "no" }, extra) : "",
    ),
    at ? h("div", { class: "muted small" }, t("health.at", { ago: fmtAgo(at) })) : "",
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
  return h(
    "div",
    { class: "chips", id: "failure-filter" },
    chip(null, t("failure.all"), null),
    ...entries.map((e) => chip(e.category, categoryLabel(e.category, { label: e.label }), e.count)),
  );
}
