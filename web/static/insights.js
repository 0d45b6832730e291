// The Insights view (#/insights, docs/insights.md): a workspace's campaigns side by side.
// Totals of the last 7 / 30 / 90 days with the change, each campaign's rates over time,
// 2 to 5 campaigns compared, the best time to send (two heatmaps and the advice line),
// and the contacts with their tiers (contacts.js). Every figure comes from the API.

import { api, errorParts, pageConfig } from "./api.js";
import { mountContacts } from "./contacts.js";
import { t } from "./i18n.js";
import { curveColor, rateSeries, renderCurves, renderHeatmap, renderTrend, weekdays } from "./insightcharts.js";
import { fmtInt, fmtPct, h } from "./util.js";

const WS_KEY = "campaignd.workspace";
const PERIODS = ["7", "30", "90"];
let remembered = { days: "90", compare: [], metric: "read", heat: "read" }; // kept across languages

/** A change against the period before: "▲ 3.2 pts" (rates) or "▲ 12%" (counts), coloured by whether it is good. */
function change(value, isRate, good) {
  if (value === null || value === undefined) return h("span", { class: "delta delta-none", title: t("totals.no_change_title") }, "–");
  if (value === 0) return h("span", { class: "delta" }, isRate ? t("totals.points", { value: 0 }) : fmtPct(0));
  const up = value > 0;
  const better = up === good;
  const shown = isRate ? t("totals.points", { value: Math.abs(value) }) : fmtPct(Math.abs(value));
  return h("span", { class: better ? "delta delta-good" : "delta delta-bad" }, `${up ? "▲" : "▼"} ${shown}`);
}

function totalsPanel(totals) {
  const rows = [["sent", t("totals.sent"), false, true], ...rateSeries().map(([key, label, , good]) => [key, label, true, good])];
  return h(
    "section",
    { class: "panel", id: "insight-totals" },
    h("div", { class: "panel-head" }, h("h2", {}, t("totals.title")), h("span", { class: "muted small" }, t("totals.hint"))),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table totals" },
        h("thead", {}, h("tr", {}, h("th", {}, t("totals.figure")), ...PERIODS.map((p) => h("th", { class: "num" }, t("totals.days", { count: Number(p) }))))),
        h(
          "tbody",
          {},
          ...rows.map(([key, label, isRate, good]) =>
            h(
              "tr",
              { dataset: { figure: key } },
              h("td", {}, label),
              ...PERIODS.map((p) => {
                const now = totals[p].current[key];
                return h("td", { class: "num", dataset: { period: p } }, h("b", {}, isRate ? fmtPct(now) : fmtInt(now)), " ", change(totals[p].change[key], isRate, good));
              }),
            ),
          ),
        ),
      ),
    ),
  );
}

function legend() {
  return h("div", { class: "legend" }, ...rateSeries().map(([, label, color]) => h("span", {}, h("i", { style: `background:${color}` }), label)));
}

export function mountInsights(root) {
  document.title = `${t("insights.title")} · campaignd`;
  let alive = true;
  const state = remembered;
  const workspace = h("input", { class: "input input-short", id: "i-workspace", type: "number", min: 1, value: localStorage.getItem(WS_KEY) || "1", "aria-label": t("insights.workspace") });
  const notice = h("div", { class: "banner", id: "insight-counting", hidden: true }, t("insights.counting"));
  const errorBox = h("div", { class: "banner banner-error", hidden: true });
  const totalsBox = h("div", { id: "insight-totals-box" });
  const trendEl = h("div", { class: "chart", id: "trend-chart" });
  const daysSelect = h(
    "select",
    { class: "input input-short", id: "trend-days", "aria-label": t("trend.period"), onchange: () => ((state.days = daysSelect.value), loadTrends()) },
    ...["30", "90", "365"].map((d) => h("option", { value: d, selected: d === state.days }, t("totals.days", { count: Number(d) }))),
  );
  const picker = h("div", { class: "compare-picker", id: "compare-picker" });
  const curveEl = h("div", { class: "chart", id: "compare-chart" });
  const compareTable = h("div", { class: "table-wrap", id: "compare-table" });
  const metricTabs = h("div", { class: "tabs" });
  const advice = h("div", { class: "advice", id: "advice" });
  const heatSent = h("div", { id: "heat-sent" });
  const heatRead = h("div", { id: "heat-read" });
  const heatTabs = h("div", { class: "tabs" });
  const zone = h("span", { class: "muted small" });
  const contactsBox = h("div", { id: "contacts-box" });
  let campaigns = [];
  let stopContacts = null;

  root.append(
    h(
      "div",
      { class: "head" },
      h("div", {}, h("h1", { class: "title" }, t("insights.title")), h("div", { class: "meta" }, t("insights.subtitle"))),
      h("label", { class: "inline", for: "i-workspace" }, t("insights.workspace"), " ", workspace),
    ),
    notice,
    errorBox,
    totalsBox,
    h("section", { class: "panel", id: "insight-trend" }, h("div", { class: "panel-head" }, h("h2", {}, t("trend.title")), daysSelect), legend(), trendEl, h("p", { class: "muted small" }, t("trend.hint"))),
    h(
      "section",
      { class: "panel", id: "insight-compare" },
      h("div", { class: "panel-head" }, h("h2", {}, t("compare.title")), metricTabs),
      h("p", { class: "muted small" }, t("compare.hint")),
      picker,
      curveEl,
      compareTable,
    ),
    h(
      "section",
      { class: "panel", id: "insight-best-time" },
      h("div", { class: "panel-head" }, h("h2", {}, t("best.title")), heatTabs),
      advice,
      h(
        "div",
        { class: "heat-pair" },
        h("div", {}, h("h3", { class: "heat-title" }, t("best.sent_title")), h("p", { class: "muted small" }, t("best.sent_hint")), heatSent),
        h("div", {}, h("h3", { class: "heat-title" }, t("best.read_title")), h("p", { class: "muted small" }, t("best.read_hint")), heatRead),
      ),
      h("div", { class: "heat-legend muted small" }, h("span", { class: "hm-swatch hm-low" }), t("best.low"), h("span", { class: "hm-swatch hm-high" }), t("best.high"), h("span", { class: "hm-swatch hm-thin" }), t("best.thin")),
      h("p", { class: "muted small" }, zone),
    ),
    contactsBox,
  );

  const ws = () => Math.max(1, Number(workspace.value) || 1);
  const base = () => `/api/workspaces/${ws()}`;

  function failed(err) {
    errorBox.hidden = false;
    errorBox.replaceChildren(...errorParts(t("insights.load_failed"), err));
  }

  async function loadTrends() {
    let doc;
    try {
      doc = await api("GET", `${base()}/insights/trends?days=${state.days}`);
    } catch (err) {
      failed(err);
      return;
    }
    if (!alive) return;
    errorBox.hidden = true;
    notice.hidden = !doc.counting;
    totalsBox.replaceChildren(totalsPanel(doc.totals));
    campaigns = doc.campaigns;
    renderTrend(trendEl, campaigns);
    drawPicker();
  }

  function drawPicker() {
    const known = new Set(campaigns.map((c) => c.uuid));
    state.compare = state.compare.filter((u) => known.has(u));
    if (!state.compare.length) state.compare = campaigns.slice(-2).map((c) => c.uuid);
    picker.replaceChildren(
      ...[...campaigns].reverse().slice(0, 30).map((c) =>
        h(
          "label",
          { class: "chip-check" },
          h("input", {
            type: "checkbox",
            checked: state.compare.includes(c.uuid),
            dataset: { uuid: c.uuid },
            onchange: (ev) => {
              const on = ev.currentTarget.checked;
              state.compare = on ? [...state.compare, c.uuid].slice(-5) : state.compare.filter((u) => u !== c.uuid);
              drawPicker();
            },
          }),
          h("span", { translate: "no" }, c.name),
        ),
      ),
    );
    loadCompare();
  }

  async function loadCompare() {
    if (state.compare.length < 2) {
      renderCurves(curveEl, [], state.metric);
      compareTable.replaceChildren();
      return;
    }
    let doc;
    try {
      doc = await api("GET", `${base()}/insights/compare?campaigns=${state.compare.map(encodeURIComponent).join(",")}`);
    } catch (err) {
      failed(err);
      return;
    }
    if (!alive) return;
    renderCurves(curveEl, doc.campaigns, state.metric);
    const rates = rateSeries();
    compareTable.replaceChildren(
      h(
        "table",
        { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, t("compare.campaign")), h("th", { class: "num" }, t("totals.sent")), ...rates.map(([, label]) => h("th", { class: "num" }, label)))),
        h(
          "tbody",
          {},
          ...doc.campaigns.map((c, n) =>
            h("tr", { dataset: { uuid: c.uuid } }, h("td", {}, h("i", { class: "dot", style: `background:${curveColor(n)}` }), h("span", { translate: "no" }, c.name)), h("td", { class: "num" }, fmtInt(c.sent)), ...rates.map(([key]) => h("td", { class: "num" }, fmtPct(c[key])))),
          ),
        ),
      ),
    );
  }

  function drawMetricTabs() {
    const metrics = [["delivered", t("compare.delivered")], ["read", t("compare.read")], ["replied", t("compare.replied")]];
    metricTabs.replaceChildren(
      ...metrics.map(([key, label]) =>
        h("button", { class: key === state.metric ? "tab active" : "tab", dataset: { metric: key }, onclick: () => ((state.metric = key), drawMetricTabs(), loadCompare()) }, label),
      ),
    );
  }

  function drawHeatTabs() {
    const kinds = [["read", t("best.by_read")], ["reply", t("best.by_reply")]];
    heatTabs.replaceChildren(
      ...kinds.map(([key, label]) => h("button", { class: key === state.heat ? "tab active" : "tab", dataset: { heat: key }, onclick: () => ((state.heat = key), drawHeatTabs(), loadBestTime()) }, label)),
    );
  }

  async function loadBestTime() {
    let doc;
    try {
      doc = await api("GET", `${base()}/insights/best-time`);
    } catch (err) {
      failed(err);
      return;
    }
    if (!alive) return;
    const shrunk = state.heat === "read" ? "read_rate_shrunk" : "reply_rate_shrunk";
    const raw = state.heat === "read" ? "read_rate" : "reply_rate";
    const hours = (c) => `${String(c.hour).padStart(2, "0")}–${String((c.hour + 1) % 24).padStart(2, "0")}`;
    renderHeatmap(heatSent, doc.cells, {
      kind: "sent",
      value: (c) => c[shrunk],
      thin: (c) => !c.enough,
      label: (c, day) =>
        c.enough
          ? t("best.cell", { day, hours: hours(c), rate: fmtPct(c[shrunk]), raw: fmtPct(c[raw]), n: c.delivered })
          : t("best.cell_thin", { day, hours: hours(c), n: c.delivered, min: doc.min_cell_messages }),
    });
    renderHeatmap(heatRead, doc.read_times, {
      kind: "read",
      value: (c) => c.reads,
      label: (c, day) => t("best.read_cell", { day, hours: hours(c), count: c.reads, share: fmtPct(c.share) }),
    });
    const a = doc.advice;
    const avg = doc.average;
    advice.className = a ? "advice advice-on" : "advice";
    advice.replaceChildren(
      a
        ? t("best.advice", { day: weekdays()[a.weekday], from: String(a.from_hour).padStart(2, "0"), to: String(a.to_hour).padStart(2, "0"), rate: fmtPct(a.rate), average: fmtPct(a.average), n: a.n })
        : t("best.no_advice", { n: avg.delivered }),
    );
    zone.replaceChildren(t("best.zone", { days: doc.days }), " ", h("code", { translate: "no" }, doc.timezone), ". ", t("best.shrink", { k: doc.prior_strength, min: doc.min_cell_messages }));
  }

  function loadAll() {
    localStorage.setItem(WS_KEY, String(ws()));
    loadTrends();
    loadBestTime();
    if (stopContacts) stopContacts();
    contactsBox.replaceChildren();
    stopContacts = mountContacts(contactsBox, ws());
  }

  workspace.addEventListener("change", loadAll);
  drawMetricTabs();
  drawHeatTabs();
  pageConfig()
    .then((cfg) => {
      if (!localStorage.getItem(WS_KEY) && cfg && cfg.default_workspace) workspace.value = cfg.default_workspace;
    })
    .catch(() => null)
    .finally(() => alive && loadAll());
  return () => {
    alive = false;
    remembered = state;
    if (stopContacts) stopContacts();
  };
}
