// Small helpers shared by the views: DOM building, number and time formatting, toasts.

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
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function fmtInt(n) {
  return n === null || n === undefined ? "–" : integer.format(n);
}

export function fmtPct(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return `${Number(n).toFixed(n >= 99.95 || n === 0 ? 0 : 1)}%`;
}

export function pct(part, whole) {
  return whole ? Math.round((part * 1000) / whole) / 10 : 0;
}

/** Seconds as "850 ms", "4.2 s", "3 min 20 s", "1 h 5 min". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** A timestamp as local time: "14:03:12" today, "21 Nov 14:03" before. */
export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  return d.toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

export function fmtDateTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** "3 min ago" style, for the list. */
export function fmtAgo(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
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

export function toast(message, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const el = h("div", { class: `toast toast-${kind}` }, message);
  box.append(el);
  setTimeout(() => el.classList.add("toast-out"), 5200);
  setTimeout(() => el.remove(), 5600);
}

/** A small confirm dialog that matches the page (window.confirm looks foreign). */
export function confirmDialog(title, text, okLabel = "Confirm", danger = false) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "dialog" },
      h("h3", {}, title),
      h("p", {}, text),
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { class: "btn", onclick: () => close(false) }, "Keep going"),
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

export const STATUS_LABELS = {
  tracking: "Tracking",
  pending: "Pending",
  processing: "Sending",
  paused: "Paused",
  completed: "Completed",
  cancelled: "Cancelled",
  failed: "Failed",
};

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
