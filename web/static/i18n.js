// The page's words in the reader's language: one catalogue per language
// (web/static/i18n/<code>.js), `t(key, params)` to look a message up, and the language
// choice (browser languages first, then the EN / ID switch, remembered in localStorage).
//
// Messages: "{name}" is a named parameter. A number passed as a parameter is written
// with the language's digits and separators (1,234 / 1.234); pass a string to keep it
// as it is (ids, line numbers). A message may be an object of plural forms
// ({one, other}: Intl.PluralRules categories), chosen by the `count` parameter.

import en from "./i18n/en.js";
import id from "./i18n/id.js";

const STORAGE_KEY = "campaignd.lang";

/** [code, switch label, name in its own language, Intl locale]. */
export const LANGUAGES = [
  ["en", "EN", "English", "en"],
  ["id", "ID", "Bahasa Indonesia", "id-ID"],
];
const CATALOGUES = { en, id };

let current = "en";
let intlLocale = "en";
const listeners = new Set();
const cache = new Map(); // per language: PluralRules and NumberFormat, built once

/** The language the browser asks for: any Indonesian entry (id, or the old "in") wins. */
export function browserLanguage(languages = navigator.languages || [navigator.language]) {
  for (const tag of languages || []) {
    const primary = String(tag || "").toLowerCase().split(/[-_]/)[0];
    if (primary === "id" || primary === "in") return "id";
  }
  return "en";
}

function stored() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return value && CATALOGUES[value] ? value : null;
  } catch {
    return null; // storage blocked: the browser's choice still works
  }
}

/** The Intl locale: the browser's own tag when it is of the chosen language (en-GB keeps its dates). */
function localeFor(lang) {
  const fallback = LANGUAGES.find(([code]) => code === lang)[3];
  const tags = navigator.languages || [navigator.language];
  const own = (tags || []).find((tag) => browserLanguage([tag]) === lang && String(tag).toLowerCase().startsWith(lang));
  try {
    return own ? Intl.getCanonicalLocales(own)[0] : fallback;
  } catch {
    return fallback;
  }
}

function tools() {
  let found = cache.get(intlLocale);
  if (!found) {
    found = {
      plural: new Intl.PluralRules(intlLocale),
      number: new Intl.NumberFormat(intlLocale, { maximumFractionDigits: 2 }),
    };
    cache.set(intlLocale, found);
  }
  return found;
}

function apply(lang) {
  current = lang;
  intlLocale = localeFor(lang);
  document.documentElement.lang = lang;
}

/** Pick the language at start: remembered choice, else the browser's. */
export function initLanguage() {
  apply(stored() || browserLanguage());
  return current;
}

export function language() {
  return current;
}

/** The locale every Intl formatter of the page uses. */
export function locale() {
  return intlLocale;
}

/** Switch, remember, and tell the page to draw itself again (no reload). */
export function setLanguage(lang) {
  if (!CATALOGUES[lang]) throw new Error(`no catalogue for language ${lang}`);
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    /* not remembered, still switched */
  }
  if (lang === current) return;
  apply(lang);
  for (const fn of listeners) fn(lang);
}

export function onLanguage(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function lookup(key, params) {
  let message = CATALOGUES[current][key] ?? en[key];
  if (message === undefined) {
    console.warn("campaignd: no message", key);
    return key;
  }
  if (typeof message === "object") {
    const count = Number(params.count);
    const form = Number.isFinite(count) ? tools().plural.select(count) : "other";
    message = message[form] ?? message.other;
  }
  return message;
}

function show(value) {
  return typeof value === "number" ? tools().number.format(value) : String(value ?? "");
}

/** The message `key` in the current language, its {parameters} filled in. */
export function t(key, params = {}) {
  return lookup(key, params).replace(/\{(\w+)\}/g, (whole, name) => (name in params ? show(params[name]) : whole));
}

/**
 * Like t(), but parameters may be DOM nodes (a link, a <code>): returns the pieces
 * (strings and nodes) for h() to append, so a sentence keeps its word order in every language.
 */
export function tn(key, params = {}) {
  const out = [];
  const message = lookup(key, params);
  let last = 0;
  for (const match of message.matchAll(/\{(\w+)\}/g)) {
    out.push(message.slice(last, match.index));
    const value = params[match[1]];
    out.push(value instanceof Node ? value : match[1] in params ? show(value) : match[0]);
    last = match.index + match[0].length;
  }
  out.push(message.slice(last));
  return out.filter((part) => part !== "");
}

/** Fill elements marked data-i18n (text) and data-i18n-title (title) in static HTML. */
export function translateStatic(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = t(el.dataset.i18n)));
  root.querySelectorAll("[data-i18n-title]").forEach((el) => (el.title = t(el.dataset.i18nTitle)));
  root.querySelectorAll("[data-i18n-aria-label]").forEach((el) => el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel)));
}
