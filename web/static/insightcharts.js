// The Insights view's charts, drawn as SVG by hand (no library, works offline): rates
// per campaign over time, cumulative curves since sending, and weekday x hour heatmaps.

import { locale, t } from "./i18n.js";
import { fmtPct, h } from "./util.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

function text(attrs, value) {
  const el = svg("text", attrs);
  el.textContent = value;
  return el;
}

/** The five rates, labelled and coloured; `good`: up is better. */
export function rateSeries() {
  return [
    ["delivery_rate", t("rate.delivery"), "var(--c-delivered)", true],
    ["read_rate", t("rate.read"), "var(--c-read)", true],
    ["reply_rate", t("rate.reply"), "var(--c-reply)", true],
    ["failure_rate", t("rate.failure"), "var(--c-failed)", false],
    ["opt_out_rate", t("rate.opt_out"), "var(--c-optout)", false],
  ];
}

/** A y axis of 0-100 % with grid lines; returns Y(value). */
function percentAxis(root, width, height, pad) {
  const Y = (v) => pad.t + (1 - v / 100) * (height - pad.t - pad.b);
  for (const v of [0, 25, 50, 75, 100]) {
    root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v), class: "chart-grid" }));
    root.append(text({ x: pad.l - 8, y: Y(v) + 4, class: "chart-axis", "text-anchor": "end" }, fmtPct(v)));
  }
  return Y;
}

function tooltip(root, width, tip, xs, X, lines) {
  const guide = svg("line", { y1: 0, y2: 0, class: "chart-guide", visibility: "hidden" });
  root.append(guide);
  root.addEventListener("mousemove", (ev) => {
    const box = root.getBoundingClientRect();
    const mx = ((ev.clientX - box.left) / box.width) * width;
    let best = 0;
    for (let i = 1; i < xs.length; i += 1) if (Math.abs(X(xs[i]) - mx) < Math.abs(X(xs[best]) - mx)) best = i;
    guide.setAttribute("x1", X(xs[best]));
    guide.setAttribute("x2", X(xs[best]));
    guide.setAttribute("y2", root.viewBox.baseVal.height);
    guide.setAttribute("visibility", "visible");
    tip.hidden = false;
    tip.replaceChildren(...lines(best));
    const left = (X(xs[best]) / width) * box.width;
    tip.style.left = `${Math.min(left + 12, box.width - 190)}px`;
  });
  root.addEventListener("mouseleave", () => {
    guide.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });
}

/** Each campaign's rates (y) at its creation time (x), one line per rate. */
export function renderTrend(el, campaigns) {
  el.replaceChildren();
  if (!campaigns.length) {
    el.append(h("div", { class: "chart-empty" }, t("trend.empty")));
    return;
  }
  const width = Math.max(320, el.clientWidth || 720);
  const height = 260;
  const pad = { l: 46, r: 14, t: 12, b: 26 };
  const xs = campaigns.map((c) => new Date(c.created_at).getTime());
  const x0 = xs[0];
  const x1 = Math.max(xs[xs.length - 1], x0 + 1);
  const X = (v) => (xs.length === 1 ? (pad.l + width - pad.r) / 2 : pad.l + ((v - x0) / (x1 - x0)) * (width - pad.l - pad.r));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img" });
  root.append(svg("title", {}, t("trend.svg_title")));
  const Y = percentAxis(root, width, height, pad);
  const ticks = Math.min(5, xs.length);
  for (let i = 0; i < ticks; i += 1) {
    const at = x0 + ((x1 - x0) * i) / Math.max(1, ticks - 1);
    const label = new Date(at).toLocaleDateString(locale(), { day: "numeric", month: "short" });
    root.append(text({ x: X(at), y: height - 6, class: "chart-axis", "text-anchor": i === 0 ? "start" : i === ticks - 1 ? "end" : "middle" }, label));
  }
  const series = rateSeries();
  for (const [key, , color] of series) {
    const d = campaigns.map((c, i) => `${i ? "L" : "M"}${X(xs[i]).toFixed(1)},${Y(c[key]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round", class: `trend-${key}` }));
    campaigns.forEach((c, i) => root.append(svg("circle", { cx: X(xs[i]).toFixed(1), cy: Y(c[key]).toFixed(1), r: 3, fill: color })));
  }
  const tip = h("div", { class: "chart-tip", hidden: true });
  tooltip(root, width, tip, xs, X, (i) => [
    h("strong", { translate: "no" }, campaigns[i].name),
    ...series.map(([k, label, color]) => h("div", {}, h("i", { style: `background:${color}` }), `${label} ${fmtPct(campaigns[i][k])}`)),
  ]);
  el.append(root, tip);
}

/** "10 s", "5 min", "3 h", "2 d" for a delay in seconds; null (everything) is "all". */
export function delayLabel(seconds) {
  if (seconds === null) return t("compare.all");
  if (seconds < 60) return t("duration.s", { s: seconds });
  if (seconds < 3600) return t("compare.min", { min: seconds / 60 });
  if (seconds < 86400) return t("compare.hours", { h: seconds / 3600 });
  return t("compare.days", { d: seconds / 86400 });
}

const PALETTE = ["#0f766e", "#2f80ed", "#d97706", "#9333ea", "#e5484d"];

/** Cumulative `metric` % against time since sending, one line per campaign. */
export function renderCurves(el, campaigns, metric) {
  el.replaceChildren();
  if (!campaigns.length) {
    el.append(h("div", { class: "chart-empty" }, t("compare.pick")));
    return;
  }
  const points = campaigns[0].curve.points;
  const width = Math.max(320, el.clientWidth || 720);
  const height = 240;
  const pad = { l: 46, r: 14, t: 12, b: 26 };
  const xs = points.map((_, i) => i);
  const X = (i) => pad.l + (i / Math.max(1, points.length - 1)) * (width - pad.l - pad.r);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img" });
  root.append(svg("title", {}, t("compare.svg_title")));
  const Y = percentAxis(root, width, height, pad);
  const every = Math.ceil(points.length / 8);
  points.forEach((p, i) => {
    if (i % every && i !== points.length - 1) return;
    root.append(text({ x: X(i), y: height - 6, class: "chart-axis", "text-anchor": i === 0 ? "start" : i === points.length - 1 ? "end" : "middle" }, delayLabel(p.after)));
  });
  campaigns.forEach((c, n) => {
    const d = c.curve.points.map((p, i) => `${i ? "L" : "M"}${X(i).toFixed(1)},${Y(p[metric]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: PALETTE[n % PALETTE.length], "stroke-width": 2.2, "stroke-linejoin": "round", class: "curve" }));
  });
  const tip = h("div", { class: "chart-tip", hidden: true });
  tooltip(root, width, tip, xs, X, (i) => [
    h("strong", {}, t("compare.after", { time: delayLabel(points[i].after) })),
    ...campaigns.map((c, n) => h("div", {}, h("i", { style: `background:${PALETTE[n % PALETTE.length]}` }), h("span", { translate: "no" }, c.name), ` ${fmtPct(c.curve.points[i][metric])}`)),
  ]);
  el.append(root, tip);
}

export function curveColor(n) {
  return PALETTE[n % PALETTE.length];
}

/** Monday-first weekday names of the catalogue (literal keys: the catalogue test reads them). */
export function weekdays() {
  return [t("day.mon"), t("day.tue"), t("day.wed"), t("day.thu"), t("day.fri"), t("day.sat"), t("day.sun")];
}

/**
 * A weekday x hour grid: `value(cell)` in 0..1 colours a cell, `thin(cell)` hatches it
 * (too little data), `label(cell)` is its tooltip. Cells are [{weekday, hour, ...}] x 168.
 */
export function renderHeatmap(el, cells, { value, thin = () => false, label, kind }) {
  const days = weekdays();
  const max = Math.max(0.0001, ...cells.map((c) => (thin(c) ? 0 : value(c))));
  const grid = h("div", { class: `heatmap heatmap-${kind}`, role: "grid" });
  grid.append(h("div", { class: "hm-corner" }));
  for (let hour = 0; hour < 24; hour += 1) grid.append(h("div", { class: "hm-hour" }, hour % 3 === 0 ? String(hour).padStart(2, "0") : ""));
  for (let d = 0; d < 7; d += 1) {
    grid.append(h("div", { class: "hm-day" }, days[d]));
    for (let hour = 0; hour < 24; hour += 1) {
      const c = cells[d * 24 + hour];
      const share = thin(c) ? 0 : value(c) / max;
      grid.append(
        h("div", {
          class: thin(c) ? "hm-cell hm-thin" : "hm-cell",
          style: thin(c) ? "" : `--v:${share.toFixed(3)}`,
          title: label(c, days[d]),
          dataset: { weekday: String(d), hour: String(hour) },
        }),
      );
    }
  }
  el.replaceChildren(grid);
}
