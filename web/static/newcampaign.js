// "New campaign": name, message, recipients (pasted or a CSV file, checked before
// submit), gateway and rate; POST /api/campaigns with start:true, then the campaign view.

import { api, pageConfig } from "./api.js";
import { parseRecipients } from "./recipients.js";
import { fmtInt, h } from "./util.js";

const CC_KEY = "campaignd.country_code";
const WS_KEY = "campaignd.workspace";

export function mountNew(root) {
  document.title = "New campaign · campaignd";
  let parsed = { valid: [], invalid: [], duplicates: [] };

  const field = (label, input, hint, id) =>
    h("label", { class: "field", for: id }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "field-hint" }, hint) : "", h("span", { class: "field-error", "data-for": id }));

  const name = h("input", { class: "input", id: "f-name", name: "name", required: true, maxlength: 200, placeholder: "November promo" });
  const workspace = h("input", { class: "input", id: "f-workspace", name: "workspace_id", type: "number", min: 1, required: true, value: localStorage.getItem(WS_KEY) || "1" });
  const message = h("textarea", { class: "input", id: "f-message", name: "message", rows: 5, required: true, placeholder: "Hello! Our November promo starts today…" });
  const count = h("span", { class: "field-hint" }, "0 characters");
  message.addEventListener("input", () => {
    count.textContent = `${fmtInt(message.value.length)} characters`;
  });
  const recipients = h("textarea", { class: "input mono", id: "f-recipients", name: "recipients", rows: 7, placeholder: "6281234567890\n+62 812-3456-7891\n…or paste a CSV with a phone column" });
  const file = h("input", { type: "file", accept: ".csv,.txt,text/csv,text/plain", id: "f-file", class: "file" });
  const country = h("input", { class: "input input-short", id: "f-country", placeholder: "e.g. 62", inputmode: "numeric", maxlength: 4, value: localStorage.getItem(CC_KEY) || "" });
  const report = h("div", { class: "report", id: "recipient-report" });
  const gateway = h("select", { class: "input", id: "f-gateway", name: "gateway" });
  const rate = h("input", { class: "input input-short", id: "f-rate", name: "rate", type: "number", min: "0.1", step: "0.1", value: "10" });
  const submit = h("button", { class: "btn btn-primary", type: "submit", disabled: true }, "Start sending");
  const errorBox = h("div", { class: "banner banner-error", hidden: true, id: "form-error" });

  pageConfig().then((cfg) => {
    for (const g of cfg.gateways || ["simulator"]) gateway.append(h("option", { value: g, selected: g === cfg.default_gateway }, g));
    if (!localStorage.getItem(WS_KEY) && cfg.default_workspace) workspace.value = cfg.default_workspace;
    if (cfg.default_rate) rate.value = cfg.default_rate;
    if (cfg.max_rate) rate.max = cfg.max_rate;
  });

  function check() {
    localStorage.setItem(CC_KEY, country.value.trim());
    parsed = parseRecipients(recipients.value, country.value.trim().replace(/^\+/, ""));
    const parts = [];
    if (parsed.valid.length || parsed.invalid.length || parsed.duplicates.length) {
      parts.push(h("div", { class: "report-line ok" }, `✓ ${fmtInt(parsed.valid.length)} recipients` + (parsed.column ? ` (CSV column “${parsed.column}”)` : "")));
    }
    if (parsed.duplicates.length) {
      parts.push(h("div", { class: "report-line warn" }, `${fmtInt(parsed.duplicates.length)} duplicates left out (first kept): ` + parsed.duplicates.slice(0, 5).map((d) => `line ${d.line} ${d.number}`).join(", ") + (parsed.duplicates.length > 5 ? ", …" : "")));
    }
    if (parsed.invalid.length) {
      parts.push(
        h(
          "div",
          { class: "report-line bad" },
          `${fmtInt(parsed.invalid.length)} invalid numbers left out:`,
          h("ul", {}, ...parsed.invalid.slice(0, 8).map((x) => h("li", {}, `line ${x.line}: “${x.value}” — ${x.error}`)), parsed.invalid.length > 8 ? h("li", {}, `and ${parsed.invalid.length - 8} more`) : ""),
        ),
      );
    }
    report.replaceChildren(...parts);
    submit.disabled = parsed.valid.length === 0;
    submit.textContent = parsed.valid.length ? `Start sending to ${fmtInt(parsed.valid.length)}` : "Start sending";
  }

  recipients.addEventListener("input", check);
  country.addEventListener("input", check);
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    recipients.value = await f.text();
    check();
  });

  function showError(err) {
    errorBox.hidden = false;
    errorBox.textContent = err.status === 0 ? err.message : `campaignd refused the campaign: ${err.message}${err.code ? ` (${err.code})` : ""}`;
    form.querySelectorAll(".field-error").forEach((el) => (el.textContent = ""));
    const key = (err.field || "").split(/[.[]/)[0];
    const target = form.querySelector(`.field-error[data-for="f-${key === "workspace_id" ? "workspace" : key}"]`);
    if (target) target.textContent = err.message;
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
          showError({ message: !name.value.trim() ? "give the campaign a name" : !message.value.trim() ? "write the message" : "add at least one valid recipient", field: !name.value.trim() ? "name" : !message.value.trim() ? "message" : "recipients", status: 422 });
          return;
        }
        submit.disabled = true;
        submit.textContent = "Starting…";
        localStorage.setItem(WS_KEY, workspace.value);
        try {
          const doc = await api("POST", "/api/campaigns", {
            workspace_id: Number(workspace.value),
            name: name.value.trim(),
            message: message.value,
            recipients: parsed.valid,
            gateway: gateway.value,
            rate: Number(rate.value),
            start: true,
          });
          location.hash = `#/campaigns/${encodeURIComponent(doc.campaign.uuid)}`;
        } catch (err) {
          showError(err);
          check();
        }
      },
    },
    errorBox,
    h("div", { class: "form-grid" }, field("Name", name, null, "f-name"), field("Workspace", workspace, null, "f-workspace")),
    field("Message", message, count, "f-message"),
    h(
      "div",
      { class: "field" },
      h("span", { class: "field-label" }, "Recipients"),
      recipients,
      h("div", { class: "file-row" }, h("label", { class: "btn btn-small", for: "f-file" }, "Upload CSV…"), file, h("label", { class: "inline", for: "f-country" }, "Country code for numbers starting with 0:", country)),
      h("span", { class: "field-error", "data-for": "f-recipients" }),
      report,
    ),
    h("div", { class: "form-grid" }, field("Gateway", gateway, "simulator sends nothing real: it plays realistic ACKs", "f-gateway"), field("Rate", rate, "messages per second", "f-rate")),
    h("div", { class: "form-actions" }, h("a", { class: "btn", href: "#/" }, "Cancel"), submit),
  );

  root.append(h("a", { href: "#/", class: "back" }, "← All campaigns"), h("div", { class: "head" }, h("h1", { class: "title" }, "New campaign")), form);
  check();
  name.focus();
}
