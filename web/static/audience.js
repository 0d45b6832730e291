// "Audience" in the New campaign form (SPEC 8): keep only recipients of some engagement
// tiers and / or leave some tiers out; before anything is sent, the preview says how
// many recipients each rule removes (POST /api/workspaces/{id}/audience/preview).

import { api, describeError } from "./api.js";
import { TIER_ORDER, tierText } from "./contacts.js";
import { t } from "./i18n.js";
import { debounce, h } from "./util.js";

/**
 * The audience field. `workspace()` and `recipients()` give the form's current values;
 * `onKept(n)` hears how many recipients the audience keeps (null: no audience).
 * Returns {el, value(), refresh(), set(include, exclude)}.
 */
export function audienceField(workspace, recipients, onKept = () => {}) {
  const include = new Set();
  const exclude = new Set();
  const rows = h("div", { class: "audience-rows" });
  const preview = h("div", { class: "report", id: "audience-preview" });
  let asked = 0;

  function box(set, other, tier, name) {
    const [label, title] = tierText(tier);
    return h(
      "label",
      { class: "chip-check", title },
      h("input", {
        type: "checkbox",
        name,
        checked: set.has(tier),
        dataset: { tier },
        onchange: (ev) => {
          if (ev.currentTarget.checked) {
            set.add(tier);
            other.delete(tier); // a tier is kept or left out, not both
          } else set.delete(tier);
          draw();
          refresh();
        },
      }),
      label,
    );
  }

  function draw() {
    rows.replaceChildren(
      h("div", { class: "audience-row" }, h("span", { class: "audience-rule" }, t("audience.include")), ...TIER_ORDER.map((k) => box(include, exclude, k, "include_tiers"))),
      h("div", { class: "audience-row" }, h("span", { class: "audience-rule" }, t("audience.exclude")), ...TIER_ORDER.map((k) => box(exclude, include, k, "exclude_tiers"))),
    );
  }

  function value() {
    if (!include.size && !exclude.size) return null;
    return { include_tiers: TIER_ORDER.filter((k) => include.has(k)), exclude_tiers: TIER_ORDER.filter((k) => exclude.has(k)) };
  }

  async function ask() {
    const audience = value();
    const numbers = recipients();
    const mine = ++asked;
    if (!audience || !numbers.length) {
      preview.replaceChildren(audience ? t("audience.waiting") : "");
      onKept(null);
      return;
    }
    let doc;
    try {
      doc = await api("POST", `/api/workspaces/${workspace()}/audience/preview`, { recipients: numbers, audience });
    } catch (err) {
      if (mine === asked) preview.replaceChildren(h("div", { class: "report-line bad" }, `${t("audience.failed")} ${describeError(err).text}`));
      return;
    }
    if (mine !== asked) return; // a newer question is on its way
    const a = doc.audience;
    onKept(a.kept);
    const removed = a.removed.map((r) =>
      h("li", { dataset: { rule: r.rule, tier: r.tier } }, r.rule === "include_tiers" ? t("audience.removed_include", { tier: tierText(r.tier)[0], count: r.count }) : t("audience.removed_exclude", { tier: tierText(r.tier)[0], count: r.count })),
    );
    preview.replaceChildren(
      h("div", { class: a.kept ? "report-line ok" : "report-line bad", id: "audience-kept" }, t("audience.kept", { kept: a.kept, total: a.recipients })),
      removed.length ? h("ul", { class: "audience-removed" }, ...removed) : "",
    );
  }

  const refresh = debounce(ask, 300);

  function set(keep, leave) {
    include.clear();
    exclude.clear();
    keep.filter((k) => TIER_ORDER.includes(k)).forEach((k) => include.add(k));
    leave.filter((k) => TIER_ORDER.includes(k) && !include.has(k)).forEach((k) => exclude.add(k));
    draw();
    refresh();
  }

  draw();
  const el = h("div", { class: "field", id: "audience" }, h("span", { class: "field-label" }, t("audience.title")), h("span", { class: "field-hint" }, t("audience.hint")), rows, preview);
  return { el, value, refresh, set };
}
