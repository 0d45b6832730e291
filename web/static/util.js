// Small helpers shared by the views: DOM building, number and time formatting (in the
// page's language), toasts, the confirm dialog.

import { locale, t } from "./i18n.js";

/** h("div", {class: "x", onclick: fn}, child, "text") → an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "html") {
      el.innerHTML = value;
    } else {
      el.setAttribute(key, value === true ? "" : value);
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Formatters follow the page's language (i18n.js locale()); built once per locale.
const formats = new Map();

function format(kind, options) {
  const key = `${locale()}|${kind}`;
  let found = formats.get(key);
  if (!found) {
    found = kind === "relative" ? new Intl.RelativeTimeFormat(locale(), options) : new Intl.NumberFormat(locale(), options);
    formats.set(key, found);
  }
  return found;
}

export function fmtInt(n) {
  return n === null || n === undefined ? "–" : format("int", { maximumFractionDigits: 0 }).format(n);
}

/** A number with one decimal under 10 (4.2 / 4,2), none above. */
export function fmtNum(n) {
  const digits = n < 10 ? 1 : 0;
  return format(`num${digits}`, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

/** A percentage (0-100) with one decimal ("1.7%" / "1,7%"), none at 0 and 100. */
export function fmtPct(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const digits = n >= 99.95 || n === 0 ? 0 : 1;
  return format(`pct${digits}`, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n / 100);
}

export function pct(part, whole) {
  return whole ? Math.round((part * 1000) / whole) / 10 : 0;
}

/** Seconds as "850 ms", "4.2 s", "3 min 20 s", "1 h 5 min" (in the page's language). */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return t("duration.ms", { ms: Math.round(seconds * 1000) });
  if (seconds < 60) return t("duration.s", { s: fmtNum(seconds) });
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return t("duration.min_s", { min: minutes, s: Math.round(seconds % 60) });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return t("duration.h_min", { h: hours, min: minutes % 60 });
  return t("duration.d_h", { d: Math.floor(hours / 24), h: hours % 24 });
}

/** A timestamp as local time: "14:03:12" today, "21 Nov 14:03" before. */
export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  return d.toLocaleString(locale(), { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

export function fmtDateTime(iso) {
  return iso ? new Date(iso).toLocaleString(locale()) : "";
}

/** A day of the send window ("mon" ... "sun") by its short name in the reader's locale. */
export function weekday(day) {
  const monday = new Date(Date.UTC(2024, 0, 1)); // a Monday
  const offset = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].indexOf(day);
  const date = new Date(monday.getTime() + Math.max(0, offset) * 86400000);
  return date.toLocaleDateString(locale(), { weekday: "short", timeZone: "UTC" });
}

export function fmtClock(msOrIso) {
  return new Date(msOrIso).toLocaleTimeString(locale());
}

/** "3 minutes ago" style (Intl.RelativeTimeFormat), for the list. */
export function fmtAgo(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 45) return t("time.just_now");
  const relative = format("relative", { numeric: "auto" });
  if (s < 3600) return relative.format(-Math.max(1, Math.round(s / 60)), "minute");
  if (s < 86400) return relative.format(-Math.round(s / 3600), "hour");
  return new Date(iso).toLocaleDateString(locale());
}

/** Call fn at most once per `ms`, always with a final trailing call. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const wait = last + ms - Date.now();
    if (wait <= 0 && !timer) {
      last = Date.now();
      fn(...args);
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn(...args);
      }, Math.max(wait, 0));
    }
  };
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A note at the bottom right for a few seconds; `detail` (the server's words) in small print. */
export function toast(message, kind = "info", detail = null) {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const el = h("div", { class: `toast toast-${kind}` }, message, detail ? h("small", { class: "detail", translate: "no" }, detail) : "");
  box.append(el);
  setTimeout(() => el.classList.add("toast-out"), 5200);
  setTimeout(() => el.remove(), 5600);
}

/** A small confirm dialog that matches the page (window.confirm looks foreign). */
export function confirmDialog(title, text, okLabel, danger = false, backLabel = t("dialog.back")) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "dialog" },
      h("h3", {}, title),
      h("p", {}, text),
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { class: "btn", onclick: () => close(false) }, backLabel),
        h("button", { class: danger ? "btn btn-danger" : "btn btn-primary", onclick: () => close(true) }, okLabel),
      ),
    );
    function close(value) {
      dialog.close();
      dialog.remove();
      resolve(value);
    }
    dialog.addEventListener("cancel", () => close(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A campaign's status in words; a campaign only tracked here (sent elsewhere) says so while pending. */
export function statusLabel(status, tracked = false) {
  if (tracked && status === "pending") return t("status.tracking");
  const labels = {
    tracking: t("status.tracking"),
    pending: t("status.pending"),
    scheduled: t("status.scheduled"),
    processing: t("status.processing"),
    paused: t("status.paused"),
    completed: t("status.completed"),
    cancelled: t("status.cancelled"),
    failed: t("status.failed"),
  };
  return labels[status] || status;
}

/**
 * Make `el` look like `fresh` while keeping its nodes where they match, so a live update
 * never swaps an element out from under the pointer (which would lose a click).
 */
export function morph(el, fresh) {
  if (el.nodeType !== fresh.nodeType || el.nodeName !== fresh.nodeName) {
    el.replaceWith(fresh);
    return;
  }
  if (el.nodeType === Node.TEXT_NODE) {
    if (el.nodeValue !== fresh.nodeValue) el.nodeValue = fresh.nodeValue;
    return;
  }
  for (const { name } of [...el.attributes]) if (!fresh.hasAttribute(name)) el.removeAttribute(name);
  for (const { name, value } of [...fresh.attributes]) if (el.getAttribute(name) !== value) el.setAttribute(name, value);
  const a = [...el.childNodes];
  const b = [...fresh.childNodes];
  if (a.length !== b.length) {
    el.replaceChildren(...b);
    return;
  }
  a.forEach((child, i) => morph(child, b[i]));
}
