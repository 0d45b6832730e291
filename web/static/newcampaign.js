// "New campaign": name, message, recipients (pasted or a CSV file, checked before
// submit), gateway and rate; POST /api/campaigns with start:true, then the campaign view.

import { api, describeError, pageConfig } from "./api.js";
import { audienceField } from "./audience.js";
import { contactNumbers } from "./contacts.js";
import { t, tn } from "./i18n.js";
import { COUNTRY_CODE_KEY as CC_KEY, parseRecipients } from "./recipients.js";
import { h } from "./util.js";

const WS_KEY = "campaignd.workspace";

let draft = null; // what was typed, kept when the form is drawn again in another language

/** Why a recipient line was left out (recipients.js gives a code). */
function problem(code) {
  const texts = {
    empty: t("recipients.empty"),
    local: t("recipients.local"),
    not_phone: t("recipients.not_phone"),
    too_short: t("recipients.too_short"),
    too_long: t("recipients.too_long"),
  };
  return texts[code] || code;
}

/** The page's sentence for a field the API refused (the API's own words go in small print). */
function fieldText(field, cfg) {
  const texts = {
    name: () => t("form.invalid.name"),
    workspace_id: () => t("form.invalid.workspace"),
    message: () => t("form.invalid.message"),
    recipients: () => t("form.invalid.recipients"),
    gateway: () => t("form.invalid.gateway"),
    rate: () => (cfg && cfg.max_rate ? t("form.invalid.rate", { max: Number(cfg.max_rate) }) : t("form.invalid.rate_any")),
  };
  return (texts[field] || (() => t("form.invalid.other")))();
}

export function mountNew(root, match, { relabel = false } = {}) {
  document.title = `${t("form.title")} · campaignd`;
  let parsed = { valid: [], invalid: [], duplicates: [] };
  let cfg = null;
  let sent = false; // created: nothing to keep

  const field = (label, input, hint, id) =>
    h("label", { class: "field", for: id }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "field-hint" }, hint) : "", h("span", { class: "field-error", "data-for": id }));

  const name = h("input", { class: "input", id: "f-name", name: "name", required: true, maxlength: 200, placeholder: t("form.name_placeholder") });
  const workspace = h("input", { class: "input", id: "f-workspace", name: "workspace_id", type: "number", min: 1, required: true, value: localStorage.getItem(WS_KEY) || "1" });
  const message = h("textarea", { class: "input", id: "f-message", name: "message", rows: 5, required: true, placeholder: t("form.message_placeholder") });
  const count = h("span", { class: "field-hint" });
  const countChars = () => (count.textContent = t("form.characters", { count: message.value.length }));
  message.addEventListener("input", countChars);
  const recipients = h("textarea", { class: "input mono", id: "f-recipients", name: "recipients", rows: 7, placeholder: `6281234567890\n+62 812-3456-7891\n${t("form.recipients_placeholder")}` });
  const file = h("input", { type: "file", accept: ".csv,.txt,text/csv,text/plain", id: "f-file", class: "file" });
  const country = h("input", { class: "input input-short", id: "f-country", placeholder: t("form.country_placeholder"), inputmode: "numeric", maxlength: 4, value: localStorage.getItem(CC_KEY) || "" });
  const report = h("div", { class: "report", id: "recipient-report" });
  const gateway = h("select", { class: "input", id: "f-gateway", name: "gateway" });
  // On a cluster (docs/cluster.md): the node that owns the sending number; the campaign lives there.
  const node = h("select", { class: "input", id: "f-node", name: "node" });
  const nodeField = h("div", { hidden: true }, field(t("form.node"), node, t("form.node_hint"), "f-node"));
  const rate = h("input", { class: "input input-short", id: "f-rate", name: "rate", type: "number", min: "0.1", step: "0.1", value: "10" });
  const submit = h("button", { class: "btn btn-primary", type: "submit", disabled: true }, t("form.submit"));
  const errorBox = h("div", { class: "banner banner-error", hidden: true, id: "form-error" });
  // Analytics (SPEC 8): filter the recipients by engagement tier (audience.js).
  const audience = audienceField(() => Math.max(1, Number(workspace.value) || 1), () => parsed.valid, (kept) => {
    // what the audience keeps is what will be sent
    if (!submit.disabled && parsed.valid.length) submit.textContent = t("form.submit_count", { count: kept ?? parsed.valid.length });
  });

  const kept = relabel ? draft : null;
  draft = null;
  if (kept) {
    name.value = kept.name;
    workspace.value = kept.workspace;
    message.value = kept.message;
    recipients.value = kept.recipients;
    country.value = kept.country;
  }

  pageConfig().then((config) => {
    cfg = config;
    for (const g of cfg.gateways || ["simulator"]) gateway.append(h("option", { value: g, selected: g === cfg.default_gateway, translate: "no" }, g));
    if (!kept && !localStorage.getItem(WS_KEY) && cfg.default_workspace) workspace.value = cfg.default_workspace;
    if (cfg.default_rate) rate.value = cfg.default_rate;
    if (cfg.max_rate) rate.max = cfg.max_rate;
    if (!kept) audience.setSkipUnreachable(cfg.skip_unreachable); // sender.skip_unreachable
    if (cfg.cluster) {
      for (const n of cfg.cluster.nodes) node.append(h("option", { value: n, selected: n === cfg.cluster.node, translate: "no" }, n));
      nodeField.hidden = cfg.cluster.nodes.length < 2;
      if (kept && [...node.options].some((o) => o.value === kept.node)) node.value = kept.node;
    }
    if (kept) {
      if ([...gateway.options].some((o) => o.value === kept.gateway)) gateway.value = kept.gateway;
      rate.value = kept.rate;
    }
  });

  function check() {
    localStorage.setItem(CC_KEY, country.value.trim());
    parsed = parseRecipients(recipients.value, country.value.trim().replace(/^\+/, ""));
    const parts = [];
    if (parsed.valid.length || parsed.invalid.length || parsed.duplicates.length) {
      const valid = t("form.report.valid", { count: parsed.valid.length });
      const column = parsed.column ? [" ", tn("form.report.column", { column: h("span", { translate: "no" }, parsed.column) })] : "";
      parts.push(h("div", { class: "report-line ok" }, `✓ ${valid}`, column));
    }
    if (parsed.duplicates.length) {
      const lines = parsed.duplicates.slice(0, 5).map((d) => t("form.report.duplicate", { line: String(d.line), number: d.number }));
      parts.push(h("div", { class: "report-line warn" }, `${t("form.report.duplicates", { count: parsed.duplicates.length })} ` + lines.join(", ") + (parsed.duplicates.length > 5 ? ", …" : "")));
    }
    if (parsed.invalid.length) {
      const more = parsed.invalid.length - 8;
      parts.push(
        h(
          "div",
          { class: "report-line bad" },
          t("form.report.invalid", { count: parsed.invalid.length }),
          h(
            "ul",
            {},
            ...parsed.invalid.slice(0, 8).map((x) =>
              h("li", {}, tn("form.report.invalid_line", { line: String(x.line), value: h("span", { translate: "no" }, x.value), problem: problem(x.error) })),
            ),
            more > 0 ? h("li", {}, t("form.report.more", { count: more })) : "",
          ),
        ),
      );
    }
    report.replaceChildren(...parts);
    audience.refresh();
    submit.disabled = parsed.valid.length === 0;
    submit.textContent = parsed.valid.length ? t("form.submit_count", { count: parsed.valid.length }) : t("form.submit");
  }

  recipients.addEventListener("input", check);
  country.addEventListener("input", check);
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    recipients.value = await f.text();
    check();
  });

  /** A refusal: the page's words at the top (the API's in small print) and next to the field. */
  function showError(err, local = false) {
    const key = (err.field || "").split(/[.[]/)[0];
    const { text, detail } = describeError(err);
    const near = local ? err.message : err.code === "invalid_field" ? fieldText(key, cfg) : text;
    errorBox.hidden = false;
    if (local) errorBox.replaceChildren(err.message);
    else if (err.status === 0) errorBox.replaceChildren(text, h("small", { class: "detail", translate: "no" }, detail));
    else errorBox.replaceChildren(`${t("form.refused")} ${err.code === "invalid_field" ? near : text}`, h("small", { class: "detail", translate: "no" }, detail));
    form.querySelectorAll(".field-error").forEach((el) => (el.textContent = ""));
    const target = form.querySelector(`.field-error[data-for="f-${key === "workspace_id" ? "workspace" : key}"]`);
    if (target) target.textContent = near;
    errorBox.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  const form = h(
    "form",
    {
      class: "panel form",
      id: "new-campaign",
      novalidate: true,
      onsubmit: async (ev) => {
        ev.preventDefault();
        check();
        if (!name.value.trim() || !message.value.trim() || !parsed.valid.length) {
          const missing = !name.value.trim() ? "name" : !message.value.trim() ? "message" : "recipients";
          const says = { name: t("form.missing.name"), message: t("form.missing.message"), recipients: t("form.missing.recipients") };
          showError({ message: says[missing], field: missing, status: 422 }, true);
          return;
        }
        submit.disabled = true;
        submit.textContent = t("form.starting");
        localStorage.setItem(WS_KEY, workspace.value);
        try {
          const path = cfg && cfg.cluster ? `/n/${encodeURIComponent(node.value)}/api/campaigns` : "/api/campaigns";
          const doc = await api("POST", path, {
            workspace_id: Number(workspace.value),
            name: name.value.trim(),
            message: message.value,
            recipients: parsed.valid,
            gateway: gateway.value,
            rate: Number(rate.value),
            start: true,
            ...(audience.value() ? { audience: audience.value() } : {}),
            skip_unreachable: audience.skipUnreachable(),
          });
          sent = true;
          location.hash = `#/campaigns/${encodeURIComponent(doc.campaign.uuid)}`;
        } catch (err) {
          showError(err);
          check();
        }
      },
    },
    errorBox,
    h("div", { class: "form-grid" }, field(t("form.name"), name, null, "f-name"), field(t("form.workspace"), workspace, null, "f-workspace")),
    field(t("form.message"), message, count, "f-message"),
    h(
      "div",
      { class: "field" },
      h("span", { class: "field-label" }, t("form.recipients")),
      recipients,
      h("div", { class: "file-row" }, h("label", { class: "btn btn-small", for: "f-file" }, t("form.upload")), file, h("label", { class: "inline", for: "f-country" }, t("form.country"), country)),
      h("span", { class: "field-error", "data-for": "f-recipients" }),
      report,
    ),
    audience.el,
    h("div", { class: "form-grid" }, field(t("form.gateway"), gateway, t("form.gateway_hint"), "f-gateway"), field(t("form.rate"), rate, t("form.rate_hint"), "f-rate")),
    nodeField,
    h("div", { class: "form-actions" }, h("a", { class: "btn", href: "#/" }, t("form.cancel")), submit),
  );

  root.append(h("a", { href: "#/", class: "back" }, t("nav.back")), h("div", { class: "head" }, h("h1", { class: "title" }, t("form.title"))), form);
  countChars();
  fromInsights(new URLSearchParams((match && match[1]) || ""));
  if (kept && kept.audience) audience.set(kept.audience.include_tiers, kept.audience.exclude_tiers);
  if (kept) audience.setSkipUnreachable(kept.skipUnreachable);
  workspace.addEventListener("input", () => audience.refresh());
  check();
  name.focus();
  /** Opened by "use as audience" (#/new?include_tiers=…&contacts=1): those tiers set, and
   * the recipients filled with the workspace's contacts of them. */
  function fromInsights(query) {
    const list = (key) => (query.get(key) || "").split(",").filter(Boolean);
    if (!query.has("include_tiers") && !query.has("exclude_tiers")) return;
    if (query.get("workspace")) workspace.value = query.get("workspace");
    audience.set(list("include_tiers"), list("exclude_tiers"));
    if (query.get("contacts") !== "1" || kept) return;
    recipients.placeholder = t("audience.loading");
    contactNumbers(Number(workspace.value), list("include_tiers"), query.get("search") || "")
      .then((numbers) => {
        if (!recipients.value.trim()) recipients.value = numbers.join("\n");
        recipients.placeholder = "";
        check();
      })
      .catch((err) => showError(err));
  }

  return () => {
    if (sent) return;
    draft = {
      name: name.value,
      workspace: workspace.value,
      message: message.value,
      recipients: recipients.value,
      country: country.value,
      gateway: gateway.value,
      rate: rate.value,
      node: node.value,
      audience: audience.value(),
      skipUnreachable: audience.skipUnreachable(),
    };
  };
}
