// The per-recipient table of a campaign: status tabs, search, cursor paging, and live
// patches from `campaign.messages.updated` (rows that change while you look at them).

import { api, errorParts } from "./api.js";
import { t, tn } from "./i18n.js";
import { categoryChips, failureNote } from "./failures.js";
import { debounce, fmtDateTime, fmtInt, fmtTime, h, throttle } from "./util.js";

const PAGE_SIZE = 50;
const CLASSES = ["queued", "pending", "sent", "delivered", "read", "played", "failed"];
// Which classes each tab shows: the API's STATUS_FILTERS, so tabs match the cards.
const TABS = [
  ["all", () => t("tab.all"), null, (s) => s.total_message_count],
  ["sent", () => t("tab.sent"), [1, 5], (s) => s.total_sent_count],
  ["delivered", () => t("tab.delivered"), [3, 5], (s) => s.total_delivered_count],
  ["read", () => t("tab.read"), [4, 5], (s) => s.total_read_count],
  ["failed", () => t("tab.failed"), [6, 6], (s) => s.total_failed_count],
  ["queued", () => t("tab.queued"), [0, 0], (s) => s.total_queued_count],
  // rows with a reply (SPEC 6.3): the API's status=replied
  ["replied", () => t("tab.replied"), "replied", (s) => s.total_replied_count],
  // rows the sender skipped (SPEC 9): the API's status=skipped
  ["skipped", () => t("tab.skipped"), "skipped", (s) => s.total_skipped_count],
];

function inTab(tab, row) {
  const range = TABS.find((t) => t[0] === tab)[2];
  if (!range) return true;
  if (range === "replied") return Boolean(row.replied_at);
  if (range === "skipped") return row.status === "skipped";
  const c = CLASSES.indexOf(row.status);
  return c >= range[0] && c <= range[1];
}

/** What the recipient did: a reply mark and time, the button tapped, or a stop. */
function engagement(row) {
  const parts = [];
  if (row.replied_at) {
    parts.push(
      h(
        "span",
        { class: "reply-mark", title: tn("table.replies", { count: row.reply_count || 1 }) },
        "↩ ",
        stamp(row.replied_at),
        row.reply_count > 1 ? h("small", { class: "muted" }, ` ×${fmtInt(row.reply_count)}`) : "",
      ),
    );
  }
  if (row.button) {
    parts.push(h("span", { class: "chip", translate: "no", title: row.button.payload || "" }, row.button.title || row.button.payload));
  }
  if (row.opted_out_at) {
    parts.push(h("span", { class: "opted-out", title: t("table.opted_out_title") }, `⊘ ${t("table.opted_out")}`));
  }
  return parts.length ? parts : [h("span", { class: "muted" }, "—")];
}

/** The ticks of a row, as WhatsApp shows them. */
export function ticks(row) {
  switch (row.status) {
    case "skipped": // why is in the row's note (SPEC 9)
      return h("span", { class: "tick tick-skipped", title: t("tick.skipped_title") }, "⊘", h("span", { class: "tick-label" }, t("tick.skipped")));
    case "failed": // the reason (the gateway's words) is in the row's note, marked as data
      return h("span", { class: "tick tick-failed", title: t("tick.failed") }, "✗", h("span", { class: "tick-label" }, t("tick.failed")));
    case "played":
      return h("span", { class: "tick tick-read", title: t("tick.played_title") }, "✓✓", h("span", { class: "tick-label" }, t("tick.played")));
    case "read":
      return h("span", { class: "tick tick-read", title: t("tick.read") }, "✓✓", h("span", { class: "tick-label" }, t("tick.read")));
    case "delivered":
      return h("span", { class: "tick tick-grey", title: t("tick.delivered") }, "✓✓", h("span", { class: "tick-label" }, t("tick.delivered")));
    case "sent":
      return h("span", { class: "tick tick-grey", title: t("tick.sent") }, "✓", h("span", { class: "tick-label" }, t("tick.sent")));
    case "pending":
      return h("span", { class: "tick tick-pending", title: t("tick.pending_title") }, "◷", h("span", { class: "tick-label" }, t("tick.pending")));
    default:
      return h("span", { class: "tick tick-queued", title: t("tick.queued_title") }, "•", h("span", { class: "tick-label" }, t("tick.queued")));
  }
}

function stamp(iso) {
  return iso ? h("time", { datetime: iso, title: fmtDateTime(iso) }, fmtTime(iso)) : h("span", { class: "muted" }, "—");
}

const OUTCOMES = {
  accepted: () => t("attempt.accepted"),
  failed: () => t("attempt.failed"),
  unknown: () => t("attempt.unknown"),
  retried: () => t("attempt.retried"),
  not_sent: () => t("attempt.not_sent"),
};

/** A recipient sent more than once: which attempt this is, and every earlier one. Opened
 * histories (`opened`: row numbers) stay open when the row is drawn again: receipts and
 * replies re-render rows while the reader looks at one. */
function attempts(row, opened) {
  if (!row.attempt || row.attempt < 2) return "";
  const earlier = (row.previous_attempts || []).map((a) =>
    h(
      "li",
      { dataset: { attempt: a.attempt, outcome: a.outcome } },
      t("attempt.line", { n: a.attempt, outcome: (OUTCOMES[a.outcome] || (() => a.outcome))() }),
      a.ended_at || a.started_at ? [" ", stamp(a.ended_at || a.started_at)] : "",
      a.reason ? [": ", h("span", { class: "reason reason-old", translate: "no" }, a.reason)] : "",
      a.message_id ? h("small", { class: "mono muted", translate: "no", title: t("attempt.id") }, ` ${a.message_id}`) : "",
    ),
  );
  return h(
    "details",
    { class: "attempts", open: opened.has(row.row) },
    // noted at the click, before the details toggle: a redraw right after keeps it open
    h("summary", { onclick: (e) => (e.currentTarget.parentElement.open ? opened.delete(row.row) : opened.add(row.row)) }, t("attempt.this", { n: row.attempt })),
    h("ol", { class: "attempt-list" }, ...earlier),
  );
}

/** Why the sender skipped the row (SPEC 9): the reason in the page's language, then the
 * suppression's own words and where it came from (data: not translated). */
function skipNote(skip) {
  if (!skip) return "";
  const text = skip.reason === "unreachable" ? t("skip.unreachable") : t("skip.suppressed");
  const words = skip.reason === "suppressed" && skip.detail ? h("q", { class: "skip-detail", translate: "no" }, skip.detail) : "";
  const source = skip.reason === "suppressed" && skip.source ? h("small", { class: "muted" }, ` ${t("skip.source", { source: skip.source })}`) : "";
  return h("span", { class: "skip-note", dataset: { skip: skip.reason } }, text, " ", words, source, skip.at ? h("small", { class: "muted" }, ` ${fmtTime(skip.at)}`) : "");
}

function rowElement(row, opened = new Set()) {
  const ts = row.timestamps || {};
  // The failure's plain label (in the page's language) and code, its own words on hover
  // (the provider's words are data: translate="no").
  const f = row.failure;
  const reasonClass = row.status === "failed" ? "reason" : "reason reason-old";
  const note = f
    ? failureNote(f, { class: reasonClass, title: row.failure_reason || null, dataset: { category: f.category || "" } })
    : row.failure_reason
      ? h("span", { class: reasonClass, title: row.failure_reason, dataset: { category: "" }, translate: "no" }, row.failure_reason)
      : "";
  // what they wrote, only when engagement.keep_reply_text keeps it (their words: data)
  const said = row.reply_text ? h("q", { class: "reply-text", translate: "no", title: row.reply_text }, row.reply_text) : "";
  return h(
    "tr",
    { dataset: { row: row.row, status: row.status } },
    h("td", { class: "recipient", translate: "no" }, h("span", { class: "mono" }, row.recipient || "—"), row.contact_id ? h("small", {}, ` ${row.contact_id}`) : ""),
    h("td", {}, ticks(row)),
    h("td", {}, ts.sent ? stamp(ts.sent) : ts.pending ? h("span", { class: "muted", title: t("tick.pending_title") }, stamp(ts.pending)) : stamp(null)),
    h("td", {}, stamp(ts.delivered)),
    h("td", {}, stamp(ts.read)),
    h("td", { class: "engaged", dataset: { replied: row.replied_at ? "1" : "", opted: row.opted_out_at ? "1" : "" } }, ...engagement(row)),
    h("td", { class: "note" }, skipNote(row.skip), note, row.status === "failed" && ts.failed ? h("small", { class: "muted" }, ` ${fmtTime(ts.failed)}`) : "", said, attempts(row, opened)),
  );
}

export class RecipientTable {
  constructor(uuid) {
    this.uuid = uuid;
    this.tab = "all";
    this.category = null; // the Failed tab's failure category (docs/failures.md)
    this.search = "";
    this.cursors = [null]; // the cursor that starts each page seen so far
    this.rows = new Map();
    this.nextCursor = null;
    this.loading = false;
    this.lastPatchAt = 0;
    this.inflight = 0;
    this.replay = []; // rows pushed while a load was on its way: applied on top of it
    this.opened = new Set(); // rows whose attempt history the reader opened
    this.refresh = throttle(() => this.load(), 1500);
    this.el = this.build();
  }

  build() {
    this.tabsEl = h("div", { class: "tabs", role: "tablist" });
    this.searchEl = h("input", {
      class: "input search",
      type: "search",
      placeholder: t("table.search"),
      "aria-label": t("table.search_label"),
      oninput: debounce(() => {
        this.search = this.searchEl.value.trim();
        this.cursors = [null];
        this.load();
      }, 300),
    });
    this.bodyEl = h("tbody");
    this.infoEl = h("span", { class: "muted pager-info" });
    this.prevEl = h("button", { class: "btn btn-small", onclick: () => this.page(-1) }, t("table.previous"));
    this.nextEl = h("button", { class: "btn btn-small", onclick: () => this.page(1) }, t("table.next"));
    this.errorEl = h("div", { class: "table-error", hidden: true });
    this.chipsEl = h("div", { class: "chips-wrap" });
    return h(
      "section",
      { class: "panel", id: "recipients" },
      h("div", { class: "panel-head" }, h("h2", {}, t("table.title")), this.searchEl),
      this.tabsEl,
      this.chipsEl,
      this.errorEl,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...[t("table.recipient"), t("table.status"), t("table.sent"), t("table.delivered"), t("table.read"), t("table.replied"), t("table.note")].map((label) => h("th", {}, label)),
            ),
          ),
          this.bodyEl,
        ),
      ),
      h("div", { class: "pager" }, this.infoEl, h("div", { class: "pager-buttons" }, this.prevEl, this.nextEl)),
    );
  }

  /** Show the failed recipients of one failure category (null: every failure). */
  showCategory(category) {
    this.tab = "failed";
    this.category = category;
    this.cursors = [null];
    this.renderTabs();
    this.load();
    this.el.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  renderChips() {
    const chips = this.tab === "failed" ? categoryChips(this.stats, this.category, (c) => this.showCategory(c)) : null;
    this.chipsEl.replaceChildren(...(chips ? [chips] : []));
  }

  renderTabs(stats) {
    this.stats = stats || this.stats || {};
    this.renderChips();
    const buttons = this.tabsEl.querySelectorAll(".tab");
    if (buttons.length === TABS.length) {
      // Update in place: a tab rebuilt under the pointer would lose its click.
      TABS.forEach(([key, , , count], i) => {
        buttons[i].classList.toggle("active", key === this.tab);
        buttons[i].setAttribute("aria-selected", key === this.tab ? "true" : "false");
        buttons[i].querySelector(".tab-count").textContent = fmtInt(count(this.stats) || 0);
      });
      return;
    }
    this.tabsEl.replaceChildren(
      ...TABS.map(([key, label, , count]) =>
        h(
          "button",
          {
            class: key === this.tab ? "tab active" : "tab",
            role: "tab",
            "aria-selected": key === this.tab ? "true" : "false",
            dataset: { tab: key },
            onclick: () => {
              this.tab = key;
              this.category = null;
              this.cursors = [null];
              this.renderTabs();
              this.load();
            },
          },
          label(),
          h("span", { class: "tab-count" }, fmtInt(count(this.stats) || 0)),
        ),
      ),
    );
  }

  page(step) {
    if (step > 0 && this.nextCursor) this.cursors.push(this.nextCursor);
    else if (step < 0 && this.cursors.length > 1) this.cursors.pop();
    else return;
    this.load();
  }

  async load() {
    const cursor = this.cursors[this.cursors.length - 1];
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (this.tab !== "all") query.set("status", this.tab);
    if (this.tab === "failed" && this.category) query.set("category", this.category);
    if (this.search) query.set("search", this.search);
    if (cursor) query.set("cursor", cursor);
    const asked = `${this.tab}|${this.category}|${this.search}|${cursor}|${Date.now()}|${Math.random()}`;
    this.asked = asked;
    this.inflight += 1;
    let doc;
    try {
      doc = await api("GET", `/api/campaigns/${encodeURIComponent(this.uuid)}/messages?${query}`);
    } catch (err) {
      this.errorEl.hidden = false;
      this.errorEl.replaceChildren(...errorParts(t("table.load_failed"), err));
      return;
    } finally {
      this.inflight -= 1;
    }
    if (this.asked !== asked) return; // a newer request superseded this one
    this.errorEl.hidden = true;
    this.nextCursor = doc.next_cursor;
    this.rows = new Map(doc.messages.map((r) => [r.row, r]));
    this.bodyEl.replaceChildren(...doc.messages.map((r) => rowElement(r, this.opened)));
    if (!doc.messages.length) {
      const tab = TABS.find(([key]) => key === this.tab);
      const what = this.search
        ? tn("table.no_match", { search: h("span", { translate: "no" }, this.search) })
        : this.tab === "all"
          ? t("table.empty")
          : t("table.empty_tab", { tab: tab[1]() });
      this.bodyEl.append(h("tr", { class: "empty-row" }, h("td", { colspan: 7 }, what)));
    }
    const first = (this.cursors.length - 1) * PAGE_SIZE;
    this.infoEl.textContent = doc.messages.length ? t("table.rows", { first: first + 1, last: first + doc.messages.length }) : "";
    this.prevEl.disabled = this.cursors.length <= 1;
    this.nextEl.disabled = !this.nextCursor;
    // The response may predate rows pushed meanwhile: put those back on top, in order.
    const replay = this.replay;
    this.replay = [];
    if (replay.length) this.patch(replay, false, true);
  }

  /** Rows pushed live: patch those on screen, refetch when the page's set changes. */
  patch(rows, resync = false, replaying = false) {
    this.lastPatchAt = Date.now();
    if (this.inflight && !replaying) this.replay.push(...rows);
    let reload = resync; // more rows changed than one event carries: reload what we show
    for (const update of rows) {
      const old = this.rows.get(update.row);
      if (!old) {
        if (this.tab !== "all" ? inTab(this.tab, update) : !this.nextCursor) reload = true;
        continue;
      }
      const leaves = this.category && update.failure && update.failure.category !== this.category;
      const merged = { ...old, ...update, timestamps: { ...old.timestamps, ...(update.timestamps || {}) } };
      // Failed and no longer: a retry is under way, a new attempt (SPEC 9) the push does
      // not describe; the page reloads its rows to show it with the earlier ones.
      if (old.status === "failed" && merged.status !== "failed") reload = true;
      this.rows.set(update.row, merged);
      const tr = this.bodyEl.querySelector(`tr[data-row="${update.row}"]`);
      if (!tr) continue;
      const fresh = rowElement(merged, this.opened);
      if (!inTab(this.tab, merged) || leaves) fresh.classList.add("row-leaving");
      else if (old.status !== merged.status || old.replied_at !== merged.replied_at || old.opted_out_at !== merged.opted_out_at) fresh.classList.add("row-flash");
      tr.replaceWith(fresh);
    }
    if (reload && !replaying) this.refresh();
  }

  /** Statistics moved but no row patch came (older server): refetch the page. */
  statsChanged() {
    const asOf = Date.now();
    setTimeout(() => {
      if (this.lastPatchAt < asOf) this.refresh();
    }, 1200);
  }
}
