"""Meta account and template webhooks (SPEC 7.2): what they say about the sending number.

Meta posts them to the app's callback URL (/webhooks/cloud) beside the status webhooks:
`phone_number_quality_update` (messaging limit / throughput tier of a number),
`account_update` (violations, bans, restrictions of the WhatsApp Business Account),
`message_template_status_update` (APPROVED, PAUSED, DISABLED, ...) and
`message_template_quality_update` (GREEN / YELLOW / RED). Each change becomes one
`AccountEvent`; `health` folds the stored events into the number's health as the page
shows it. Payload shapes: Meta's webhook references (fields listed in
../shared/reference/analytics_anchors.md section 4.2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

PHONE_QUALITY = "phone_number_quality_update"
ACCOUNT_UPDATE = "account_update"
TEMPLATE_STATUS = "message_template_status_update"
TEMPLATE_QUALITY = "message_template_quality_update"
ACCOUNT_FIELDS = (PHONE_QUALITY, ACCOUNT_UPDATE, TEMPLATE_STATUS, TEMPLATE_QUALITY)

# Template statuses that stop sends with it: the campaigns using it are paused.
TEMPLATE_STOPPED = ("PAUSED", "DISABLED")
# Template statuses and quality scores worth a warning on the page.
TEMPLATE_WARNINGS = ("FLAGGED", "PAUSED", "DISABLED", "REJECTED", "LOCKED", "DELETED",
                     "PENDING_DELETION", "LIMIT_EXCEEDED", "RED", "YELLOW")
MAX_VALUE_BYTES = 8192


@dataclass(frozen=True, slots=True)
class AccountEvent:
    field: str  # one of ACCOUNT_FIELDS (told by the value's contents when Meta mislabels)
    waba_id: str | None
    at: float  # entry.time (seconds), else the receive time
    event: str | None  # the event name, or the new quality score
    phone: str | None = None  # display_phone_number
    template_id: str | None = None
    template_name: str | None = None
    template_language: str | None = None
    value: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        """The same webhook delivered twice (Meta retries) is stored once."""
        raw = orjson.dumps([self.field, self.waba_id, self.at, self.value],
                           option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()[:32]

    def stops_template(self) -> bool:
        return self.field == TEMPLATE_STATUS and (self.event or "").upper() in TEMPLATE_STOPPED

    def bans_account(self) -> bool:
        ban = self.value.get("ban_info")
        return (self.field == ACCOUNT_UPDATE and isinstance(ban, dict)
                and str(ban.get("waba_ban_state", "")).upper() == "DISABLE")

    def summary(self) -> str:
        """One line for the log, the page and a pause reason."""
        v = self.value
        if self.field == PHONE_QUALITY:
            limit = v.get("max_daily_conversations_per_business") or v.get("current_limit")
            return (f"number {self.phone or '?'}: {self.event or 'update'}"
                    + (f", messaging limit {limit}" if limit else ""))
        if self.field == ACCOUNT_UPDATE:
            extra = ""
            if isinstance(v.get("violation_info"), dict):
                extra = f" ({v['violation_info'].get('violation_type')})"
            elif isinstance(v.get("ban_info"), dict):
                extra = f" ({v['ban_info'].get('waba_ban_state')})"
            return f"account {self.waba_id or '?'}: {self.event or 'update'}{extra}"
        template = f"template {self.template_name or self.template_id or '?'}" + (
            f" ({self.template_language})" if self.template_language else "")
        if self.field == TEMPLATE_QUALITY:
            return (f"{template}: quality {v.get('previous_quality_score') or '?'} -> "
                    f"{self.event or '?'}")
        reason = v.get("reason")
        other = v.get("other_info")
        title = other.get("title") if isinstance(other, dict) else None
        tail = ", ".join(str(x) for x in (title, reason) if x and x != "NONE")
        return f"{template}: {self.event or 'update'}" + (f" ({tail})" if tail else "")


def field_of(change_field: Any, value: dict[str, Any]) -> str | None:
    """Which account webhook a change is, or None. Meta's own example of a quality update
    carries `field: message_template_status_update`, so the value's keys decide too."""
    if "new_quality_score" in value:
        return TEMPLATE_QUALITY
    if change_field in ACCOUNT_FIELDS:
        return str(change_field)
    return None


def _text(value: Any, limit: int = 200) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:limit] or None


def event_from_change(kind: str, waba_id: str | None, at: float, value: dict[str, Any]
                      ) -> AccountEvent:
    """One account change as an event (the value kept, bounded in size)."""
    if len(orjson.dumps(value)) > MAX_VALUE_BYTES:
        value = {k: v for k, v in value.items() if not isinstance(v, dict | list)}
    event = value.get("new_quality_score") if kind == TEMPLATE_QUALITY else value.get("event")
    return AccountEvent(
        field=kind, waba_id=waba_id, at=at, event=_text(event, 64),
        phone=_text(value.get("display_phone_number"), 32),
        template_id=_text(value.get("message_template_id"), 64),
        template_name=_text(value.get("message_template_name")),
        template_language=_text(value.get("message_template_language"), 32),
        value=value)


def same_language(a: str | None, b: str | None) -> bool:
    """Webhooks say en-US where sends say en_US; no language on one side matches any."""
    if not a or not b:
        return True
    return a.replace("-", "_").lower() == b.replace("-", "_").lower()


def health(events: list[AccountEvent]) -> dict[str, Any]:
    """The latest word on every number, account and template, from events oldest first."""
    numbers: dict[str, dict[str, Any]] = {}
    accounts: dict[str, dict[str, Any]] = {}
    templates: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        v = e.value
        if e.field == PHONE_QUALITY:
            numbers[e.phone or "?"] = {
                "display_phone_number": e.phone, "waba_id": e.waba_id, "event": e.event,
                "current_limit": _text(v.get("current_limit"), 32),
                "old_limit": _text(v.get("old_limit"), 32),
                "max_daily_conversations_per_business": _text(
                    v.get("max_daily_conversations_per_business"), 32),
                "at": e.at, "summary": e.summary()}
        elif e.field == ACCOUNT_UPDATE:
            entry = accounts.setdefault(e.waba_id or "?", {"waba_id": e.waba_id,
                                                           "problems": {}})
            entry.update(event=e.event, at=e.at, summary=e.summary())
            if isinstance(v.get("violation_info"), dict):
                entry["problems"]["violation"] = _text(v["violation_info"].get("violation_type"))
            if isinstance(v.get("ban_info"), dict):
                state = _text(v["ban_info"].get("waba_ban_state"), 32)
                if state == "REINSTATE":
                    entry["problems"].pop("ban", None)
                else:
                    entry["problems"]["ban"] = state
            if isinstance(v.get("restriction_info"), list):
                entry["problems"]["restrictions"] = [
                    _text(r.get("restriction_type")) for r in v["restriction_info"]
                    if isinstance(r, dict)] or None
        else:
            key = (e.template_name or e.template_id or "?",
                   (e.template_language or "").replace("-", "_").lower())
            entry = templates.setdefault(key, {
                "name": e.template_name, "language": e.template_language,
                "id": e.template_id, "status": None, "reason": None, "quality": None,
                "previous_quality": None})
            if e.field == TEMPLATE_QUALITY:
                entry.update(quality=e.event, previous_quality=_text(
                    v.get("previous_quality_score"), 32))
            else:
                entry.update(status=e.event, reason=_text(v.get("reason")))
            entry.update(at=e.at, summary=e.summary(), warning=any(
                x in TEMPLATE_WARNINGS for x in (entry["status"], entry["quality"])))
    return {"numbers": sorted(numbers.values(), key=lambda n: n["display_phone_number"] or ""),
            "accounts": sorted(accounts.values(), key=lambda a: a["waba_id"] or ""),
            "templates": sorted(templates.values(), key=lambda t: (t["name"] or "", t["id"]
                                                                    or ""))}
