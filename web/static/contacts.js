// The contacts of a workspace (Insights view): each number across its campaigns with its
// tier, filtered by tier, searched by the start of the number, paged, exported as CSV, and "use as
// audience", which opens the New campaign form with those tiers and their numbers.

import { api, errorParts, pageConfig, token } from "./api.js";
import { t } from "./i18n.js";
import { COUNTRY_CODE_KEY, searchDigits } from "./recipients.js";
import { debounce, fmtInt, fmtTime, h, toast } from "./util.js";

export const TIER_ORDER = ["engaged", "unengaged", "new", "unreachable", "opted_out"];

/** A tier's name and what it means (docs/insights.md), in the page's language. */
export function tierText(tier) {
  const names = {
    engaged: [t("tier.engaged"), t("tier.engaged_title")],
    unengaged: [t("tier.unengaged"), t("tier.unengaged_title")],
    unreachable: [t("tier.unreachable"), t("tier.unreachable_title")],
    opted_out: [t("tier.opted_out"), t("tier.opted_out_title")],
    new: [t("tier.new"), t("tier.new_title")],
  };
  return names[tier] || [tier, ""];
}

function tierBadge(tier) {
  const [name, title] = tierText(tier);
  return h("span", { class: `tier tier-${tier}`, title }, name);
}

export function mountContacts(root, workspace) {
  let alive = true;
  let tier = "";
  let search = "";
  let cursor = null;
  const base = `/api/workspaces/${workspace}`;
  const chips = h("div", { class: "tabs", id: "tier-filter" });
  const searchBox = h("input", { class: "input search", type: "search", id: "contact-search", placeholder: t("contacts.search"), "aria-label": t("contacts.search_label"), inputmode: "numeric" });
  const body = h("tbody");
  const more = h("button", { class: "btn", hidden: true, onclick: () => load(false) }, t("list.more"));
  const errorBox = h("div", { class: "banner banner-error", hidden: true });
  const headers = [t("contacts.number"), t("contacts.tier"), t("contacts.received"), t("table.delivered"), t("table.read"), t("table.replied"), t("list.failed"), t("contacts.last_read"), t("contacts.last_reply")];
  root.append(
    h(
      "section",
      { class: "panel", id: "insight-contacts" },
      h(
        "div",
        { class: "panel-head" },
        h("h2", {}, t("contacts.title")),
        h(
          "div",
          { class: "actions" },
          searchBox,
          h("button", { class: "btn btn-small", id: "contacts-csv", onclick: exportCsv }, t("action.export")),
          h("button", { class: "btn btn-small btn-primary", id: "use-audience", title: t("contacts.use_title"), onclick: useAsAudience }, t("contacts.use")),
        ),
      ),
      h("p", { class: "muted small" }, t("contacts.hint")),
      chips,
      errorBox,
      h("div", { class: "table-wrap" }, h("table", { class: "table contacts" }, h("thead", {}, h("tr", {}, ...headers.map((x, i) => h("th", { class: i > 1 && i < 7 ? "num" : "" }, x)))), body)),
      h("div", { class: "center" }, more),
    ),
  );

  function drawChips(counts) {
    const total = counts ? Object.values(counts).reduce((a, b) => a + b, 0) : null;
    const chip = (key, label, n, title) =>
      h("button", { class: key === tier ? "tab active" : "tab", dataset: { tier: key }, title, onclick: () => ((tier = key), load(true)) }, label, n === null ? "" : h("span", { class: "tab-count" }, fmtInt(n)));
    chips.replaceChildren(chip("", t("list.all"), total, ""), ...TIER_ORDER.map((k) => chip(k, tierText(k)[0], counts ? counts[k] : null, tierText(k)[1])));
  }

  function row(c) {
    return h(
      "tr",
      { dataset: { number: c.number, tier: c.tier } },
      h("td", { class: "mono", translate: "no" }, `+${c.number}`),
      h("td", {}, tierBadge(c.tier)),
      ...["received", "delivered", "read", "replied", "failed"].map((k) => h("td", { class: "num" }, fmtInt(c[k]))),
      h("td", {}, fmtTime(c.last_read_at) || "–"),
      h("td", {}, fmtTime(c.last_replied_at) || "–"),
    );
  }

  async function load(reset) {
    if (reset) cursor = null;
    const query = new URLSearchParams({ limit: "50" });
    if (tier) query.set("tier", tier);
    if (search) query.set("search", search);
    if (cursor) query.set("cursor", cursor);
    let doc;
    try {
      doc = await api("GET", `${base}/contacts?${query}`);
    } catch (err) {
      if (!alive) return;
      errorBox.hidden = false;
      errorBox.replaceChildren(...errorParts(t("contacts.load_failed"), err));
      return;
    }
    if (!alive) return;
    errorBox.hidden = true;
    if (reset) {
      body.replaceChildren();
      drawChips(doc.tiers);
    }
    body.append(...doc.contacts.map(row));
    if (!body.children.length) body.append(h("tr", { class: "empty-row" }, h("td", { colspan: 9 }, search ? t("contacts.no_match") : t("contacts.empty"))));
    cursor = doc.next_cursor;
    more.hidden = !cursor;
  }

  const searchSoon = debounce(() => {
    search = searchDigits(searchBox.value, (localStorage.getItem(COUNTRY_CODE_KEY) || "").replace(/\D/g, ""));
    load(true);
  }, 300);
  searchBox.addEventListener("input", searchSoon);

  function csvPath() {
    const query = new URLSearchParams();
    if (tier) query.set("tier", tier);
    if (search) query.set("search", search);
    return `${base}/contacts.csv${query.size ? `?${query}` : ""}`;
  }

  async function exportCsv() {
    const cfg = await pageConfig();
    let href = csvPath();
    if (cfg.auth_required) {
      try {
        const resp = await fetch(href, { headers: { Authorization: `Bearer ${token()}` } });
        if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
        href = URL.createObjectURL(await resp.blob());
        setTimeout(() => URL.revokeObjectURL(href), 10000);
      } catch (err) {
        toast(t("export.failed"), "error", err.message);
        return;
      }
    }
    const a = h("a", { href, download: `contacts-${workspace}${tier ? `-${tier}` : ""}.csv`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  }

  /** The New campaign form with this tier kept (or, for all contacts, the unreachable and opted out left out), filled with these contacts. */
  function useAsAudience() {
    const query = new URLSearchParams({ workspace: String(workspace), contacts: "1" });
    if (tier) query.set("include_tiers", tier);
    else query.set("exclude_tiers", "unreachable,opted_out");
    if (search) query.set("search", search);
    location.hash = `#/new?${query}`;
  }

  drawChips(null);
  load(true);
  return () => {
    alive = false;
  };
}

/** Every number of these tiers (all contacts when none), for the New campaign form. */
export async function contactNumbers(workspace, tiers, search = "") {
  const numbers = [];
  for (const tier of tiers.length ? tiers : [""]) {
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: "1000" });
      if (tier) query.set("tier", tier);
      if (search) query.set("search", search);
      if (cursor) query.set("cursor", cursor);
      const doc = await api("GET", `/api/workspaces/${workspace}/contacts?${query}`);
      numbers.push(...doc.contacts.map((c) => c.number));
      cursor = doc.next_cursor;
    } while (cursor);
  }
  return numbers;
}
