// A small SVG line chart of cumulative sent / delivered / read / failed over time
// (GET /api/campaigns/{uuid}/timeline). Drawn by hand: no library, works offline.

import { locale, t } from "./i18n.js";
import { fmtClock, fmtInt, h } from "./util.js";

const NS = "http://www.w3.org/2000/svg";

/** [key, label, colour] of each line, labelled in the page's language. */
export function series() {
  return [
    ["sent", t("chart.sent"), "var(--c-sent)"],
    ["delivered", t("chart.delivered"), "var(--c-delivered)"],
    ["read", t("chart.read"), "var(--c-read)"],
    ["failed", t("chart.failed_line"), "var(--c-failed)"],
  ];
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

/** A round grid step so that at most 5 lines cover `value` (1, 2, 5 × 10^k). */
function niceScale(value) {
  let step = 1;
  for (let power = 1; ; power *= 10) {
    const found = [1, 2, 5].map((m) => m * power).find((s) => Math.ceil(value / s) <= 5);
    if (found) {
      step = found;
      break;
    }
  }
  const lines = Math.max(1, Math.ceil(value / step));
  return { top: lines * step, lines };
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs > 2 * 86400000) return d.toLocaleDateString(locale(), { day: "numeric", month: "short" });
  const opts = spanMs < 180000 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return d.toLocaleTimeString(locale(), opts);
}

/** The width the chart is drawn at in `el` (its box; at least 320). */
export function chartWidth(el) {
  return Math.max(320, el.clientWidth || 640);
}

/** Render the chart into `el` (replacing what is there), at the box's width, which it
 *  keeps in `el.dataset.width` so a change of the box can be told. */
export function renderChart(el, timeline) {
  const points = [...((timeline && timeline.points) || [])];
  el.replaceChildren();
  if (!points.length) {
    el.append(h("div", { class: "chart-empty" }, t("chart.empty")));
    return;
  }
  const width = chartWidth(el);
  el.dataset.width = String(width);
  const height = 270;
  const pad = { l: 44, r: 14, t: 12, b: 26 };
  const xs = points.map((p) => new Date(p.t).getTime());
  // One point is a flat start: draw from a moment before it.
  if (xs.length === 1) {
    xs.unshift(xs[0] - 1000);
    points.unshift({ sent: 0, delivered: 0, read: 0, failed: 0 });
  }
  const x0 = xs[0];
  const x1 = xs[xs.length - 1];
  const { top, lines } = niceScale(Math.max(1, ...points.map((p) => Math.max(p.sent, p.delivered, p.read, p.failed))));
  const X = (t) => pad.l + ((t - x0) / Math.max(1, x1 - x0)) * (width - pad.l - pad.r);
  const Y = (v) => pad.t + (1 - v / top) * (height - pad.t - pad.b);

  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img" });
  root.append(svg("title", {}, t("chart.svg_title")));
  for (let i = 0; i <= lines; i += 1) {
    const v = (top * i) / lines;
    const y = Y(v);
    root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, class: "chart-grid" }));
    const label = svg("text", { x: pad.l - 8, y: y + 4, class: "chart-axis", "text-anchor": "end" });
    label.textContent = fmtInt(v);
    root.append(label);
  }
  const ticks = Math.min(5, xs.length);
  for (let i = 0; i < ticks; i += 1) {
    const t = x0 + ((x1 - x0) * i) / Math.max(1, ticks - 1);
    const label = svg("text", {
      x: X(t),
      y: height - 6,
      class: "chart-axis",
      "text-anchor": i === 0 ? "start" : i === ticks - 1 ? "end" : "middle",
    });
    label.textContent = timeLabel(t, x1 - x0);
    root.append(label);
  }
  const drawn = series();
  for (const [key, , color] of drawn) {
    const d = points.map((p, i) => `${i ? "L" : "M"}${X(xs[i]).toFixed(1)},${Y(p[key]).toFixed(1)}`).join(" ");
    if (key === "sent") {
      const area = `${d} L${X(x1).toFixed(1)},${Y(0)} L${X(x0).toFixed(1)},${Y(0)} Z`;
      root.append(svg("path", { d: area, fill: color, "fill-opacity": "0.07", stroke: "none" }));
    }
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2.2, "stroke-linejoin": "round", class: `line-${key}` }));
  }
  // Hover: a guide line and the values at that moment.
  const guide = svg("line", { y1: pad.t, y2: height - pad.b, class: "chart-guide", visibility: "hidden" });
  root.append(guide);
  const tip = h("div", { class: "chart-tip", hidden: true });
  root.addEventListener("mousemove", (ev) => {
    const box = root.getBoundingClientRect();
    const mx = ((ev.clientX - box.left) / box.width) * width;
    let best = 0;
    for (let i = 1; i < xs.length; i += 1) if (Math.abs(X(xs[i]) - mx) < Math.abs(X(xs[best]) - mx)) best = i;
    const p = points[best];
    guide.setAttribute("x1", X(xs[best]));
    guide.setAttribute("x2", X(xs[best]));
    guide.setAttribute("visibility", "visible");
    tip.hidden = false;
    tip.replaceChildren(
      h("strong", {}, fmtClock(xs[best])),
      ...drawn.map(([k, label, color]) => h("div", {}, h("i", { style: `background:${color}` }), `${label} ${fmtInt(p[k])}`)),
    );
    const left = (X(xs[best]) / width) * box.width;
    tip.style.left = `${Math.min(left + 12, box.width - 150)}px`;
  });
  root.addEventListener("mouseleave", () => {
    guide.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });
  el.append(root, tip);
}
