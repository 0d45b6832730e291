"""The OpenAPI 3.1 document served at GET /api/openapi.json (SPEC 3.2).

Written by hand next to the handlers it describes; tests/test_service_openapi.py checks
that every route of the app is in it and every path in it is a route, so the two cannot
drift apart silently. Only the WebSocket endpoint and the static files are left out
(`UNDOCUMENTED`): neither is an HTTP API a client generator could use.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domain.cluster import NODE_PATTERN
from domain.engagement import ENGAGEMENT_FILTERS
from domain.failures import CATEGORY_NAMES
from domain.skips import SKIP_REASONS, SKIPPED
from domain.status import LEVEL_NAMES, STATUS_FILTERS
from web import openapi_insights
from web.errors import json_response

# Routes deliberately not described: the Pusher WebSocket and the page's static files.
UNDOCUMENTED = (("GET", "/app/{key}"), ("GET", "/static/{filename}"))

CAMPAIGN_STATUSES = ("tracking", "pending", "scheduled", "processing", "paused", "completed",
                     "cancelled", "failed")
SOURCES = ("webjs", "waha", "evolution", "cloud", "twilio")
# web/sending.py's lifecycle actions (actors/sender_service.py TRANSITIONS).
# (`schedule` has a path of its own: it takes a body.)
ACTIONS = ("start", "pause", "resume", "cancel", "retry-failed", "retry-unknown")
GATEWAYS = ("simulator", "http", "waha", "cloud")

J = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def body(schema: dict[str, Any], media: str = J) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def ok(description: str, schema: dict[str, Any] | None = None, media: str = J
       ) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out.update(body(schema, media))
    return out


def err(description: str) -> dict[str, Any]:
    return {"description": description, **body(ref("Error"))}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


TIME = nullable({"type": "string", "format": "date-time"})
COUNT = {"type": "integer", "minimum": 0}
RATE = {"type": "number", "minimum": 0, "maximum": 100}
AUTH_ERRORS = {"401": err("Missing or wrong bearer token.")}
NOT_FOUND = {"404": err("No such campaign, or it belongs to another workspace."),
             "421": err("On a cluster node: the uuid's prefix names another node, where "
                        "the campaign lives (docs/cluster.md); route it there.")}
UUID_PARAM = {"name": "uuid", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


LATENCY = {"type": "object", "required": ["median", "p90"], "properties": {
    "median": nullable({"type": "number"}), "p90": nullable({"type": "number"})}}
SEND_AT = {"type": "string", "format": "date-time", "examples": ["2026-12-01T08:00:00+07:00"],
           "description": "ISO 8601 with an offset; at most 60 s in the past (starts at "
                          "once) and a year ahead."}
WINDOW = {
    "type": "object", "additionalProperties": False,
    "description": "Send window (SPEC 9): the days and local hours sending may happen in. "
                   "Missing fields come from sender.window_*; `to` at or before `from` "
                   "closes the next day.",
    "properties": {
        "days": {"type": "array", "minItems": 1, "items": {
            "type": "string", "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}},
        "from": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
                 "examples": ["08:00"]},
        "to": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$",
               "examples": ["20:00"]},
        "timezone": {"type": "string", "examples": ["Asia/Jakarta"],
                     "description": "IANA time zone name."}}}
ATTEMPT = {
    "type": "object", "description": "An earlier attempt of this recipient (SPEC 9).",
    "required": ["attempt", "message_id", "outcome", "reason", "started_at", "ended_at"],
    "properties": {
        "attempt": {"type": "integer", "minimum": 1},
        "message_id": nullable({"type": "string"}),
        "outcome": {"type": "string",
                    "enum": ["accepted", "failed", "unknown", "retried", "not_sent"]},
        "reason": nullable({"type": "string"}), "started_at": TIME, "ended_at": TIME}}
SEND_PROGRESS = {
    "total_remaining_count": COUNT, "in_flight_count": COUNT, "retrying_count": COUNT,
    "send_rate": {"type": "number"}, "eta_seconds": nullable({"type": "number"}),
    "total_unknown_count": COUNT,
    "account_rate": nullable({"type": "number", "description": "The gateway account's "
                              "effective rate in messages/s (null: no limit), shared by "
                              "its campaigns and lowered on throttling (SPEC 9)."}),
    "waiting_for": nullable({"type": "string", "enum": ["send_window"]}),
    "window_opens_at": TIME,
    "window_opens": nullable({"type": "string", "examples": ["08:00 WIB"]}),
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["invalid_field"]},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "The offending field or query "
                          "parameter, e.g. messages[3].message_id."},
            }}},
    },
    "Statistics": {
        "type": "object",
        "description": "Seed-compatible counters (SPEC 2.2). A read message counts as sent and "
                       "delivered too.",
        "required": ["total_message_count", "total_queued_count", "total_sent_count",
                     "total_delivered_count", "total_read_count", "total_played_count",
                     "total_failed_count", "delivery_rate", "read_rate", "progress"],
        "properties": {
            "total_message_count": COUNT, "total_queued_count": COUNT,
            "total_sent_count": COUNT, "total_delivered_count": COUNT,
            "total_read_count": COUNT, "total_played_count": COUNT,
            "total_failed_count": COUNT,
            "delivery_rate": RATE, "read_rate": RATE, "progress": RATE,
            "time_to_deliver": LATENCY, "time_to_read": LATENCY,
            "updated_at": TIME, **SEND_PROGRESS,
            "failures": {"type": "array", "items": ref("FailureCount"),
                         "description": "The failed messages by category of their failure "
                                        "(docs/failures.md), in the table's order; counts add "
                                        "up to total_failed_count."},
        },
    },
    "Campaign": {
        "type": "object",
        "required": ["uuid", "id", "workspace_id", "name", "status", "created_at",
                     "updated_at", "statistics"],
        "properties": {
            "uuid": {"type": "string"}, "id": {"type": "integer"},
            "workspace_id": {"type": "integer"}, "name": {"type": "string"},
            "status": {"type": "string", "enum": list(CAMPAIGN_STATUSES)},
            "message": nullable({"type": "string"}), "gateway": nullable({"type": "string"}),
            "rate": nullable({"type": "number"}),
            "created_at": TIME, "updated_at": TIME, "statistics": ref("Statistics"),
            "send_at": {**TIME, "description": "When a scheduled campaign starts."},
            "start_note": nullable({"type": "string", "description": "Why it started later "
                                    "than send_at (the daemon was down then)."}),
            "window": nullable(WINDOW),
            "alerts": {"type": "array", "items": ref("Alert"),
                       "description": "Alert rules firing now on this campaign."},
        },
        "additionalProperties": True,
    },
    "CampaignEnvelope": {"type": "object", "required": ["campaign"],
                         "properties": {"campaign": ref("Campaign")}},
    "CampaignList": {
        "type": "object", "required": ["campaigns", "next_cursor"],
        "properties": {"campaigns": {"type": "array", "items": ref("Campaign")},
                       "next_cursor": nullable({"type": "string"})},
    },
    "CreateCampaign": {
        "type": "object", "required": ["workspace_id", "name"],
        "properties": {
            "workspace_id": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "uuid": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
            "recipients": {"type": "array", "minItems": 1, "description": "Numbers campaignd "
                           "sends to (SPEC 3.4; at most sender.max_recipients); omit, with "
                           "message, to register messages sent elsewhere.",
                           "items": {"anyOf": [{"type": "string"}, {
                               "type": "object", "required": ["recipient"], "properties": {
                                   "recipient": {"type": "string"},
                                   "contact_id": {"anyOf": [{"type": "string"},
                                                            {"type": "integer"}]},
                                   "variables": {"type": "object"}}}]}},
            "message": {"type": "string", "minLength": 1, "maxLength": 4096,
                        "description": "Text to send (with recipients)."},
            "gateway": {"type": "string", "enum": list(GATEWAYS),
                        "description": "Default: sender.default_gateway."},
            "rate": {"type": "number", "exclusiveMinimum": 0,
                     "description": "Messages per second, at most sender.max_rate."},
            "start": {"type": "boolean", "default": False, "description": "Start at once."},
            "send_at": {**SEND_AT, "description": "Start then (status scheduled); not with "
                        "start. " + SEND_AT["description"]},
            "window": WINDOW,
            "skip_invalid": {"type": "boolean", "default": False,
                             "description": "Drop invalid numbers instead of refusing."},
            "skip_unreachable": {"type": "boolean", "description": "Skip recipients in the "
                                 "unreachable tier when their turn comes (status skipped, "
                                 "never sent); default sender.skip_unreachable. Suppressed "
                                 "numbers are always skipped."},
            "template": {"type": "object", "required": ["name"],
                         "description": "Cloud API template (gateway cloud only).",
                         "properties": {"name": {"type": "string"},
                                        "language": {"type": "object"},
                                        "components": {"type": "array"}}},
        },
    },
    "RecipientReport": {
        "type": "object", "required": ["accepted", "invalid", "duplicates"],
        "properties": {"accepted": COUNT,
                       "duplicates": {"type": "array", "items": {
                           "type": "object", "properties": {
                               "index": {"type": "integer"}, "recipient": {"type": "string"},
                               "first_index": {"type": "integer"}}}},
                       "invalid": {"type": "array", "items": {
                           "type": "object", "properties": {
                               "index": {"type": "integer"}, "value": {},
                               "reason": {"type": "string"}}}}},
    },
    "CreatedCampaign": {
        "type": "object", "required": ["campaign"],
        "properties": {"campaign": ref("Campaign"),
                       "recipients": {**ref("RecipientReport"),
                                      "description": "Only when recipients were sent."}},
    },
    "InvalidRecipients": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message", "field", "recipients"],
            "properties": {"code": {"const": "invalid_recipients"},
                           "message": {"type": "string"}, "field": {"type": "string"},
                           "recipients": ref("RecipientReport")}}},
    },
    "Sending": {
        "type": "object", "required": ["sending"],
        "properties": {"sending": {"type": "object", "properties": {
            "status": {"type": "string", "enum": list(CAMPAIGN_STATUSES)},
            "status_reason": nullable({"type": "string"}),
            "gateway": nullable({"type": "string"}), "rate": nullable({"type": "number"}),
            "send_at": TIME, "start_note": nullable({"type": "string"}),
            "window": {"type": "object", "description": "The effective send window, whether "
                       "it is open now, when that changes and (closed) its local opening "
                       "time.", "properties": {
                           **WINDOW["properties"], "always_open": {"type": "boolean"},
                           "open": {"type": "boolean"}, "changes_at": TIME,
                           "opens": nullable({"type": "string"})}},
            "account": nullable({"type": "object", "description": "The gateway account "
                                 "this campaign shares its rate with.", "properties": {
                                     "gateway": {"type": "string"},
                                     "configured_rate": nullable({"type": "number"}),
                                     "effective_rate": nullable({"type": "number"}),
                                     "throttled_count": COUNT,
                                     "last_throttled_at": TIME, "held_until": TIME}}),
            "send_states": {"type": "object", "additionalProperties": COUNT},
            "skip_unreachable": {"type": "boolean", "description": "Unreachable recipients "
                                 "are skipped too (suppressed ones always are)."},
            "progress": {"type": "object", "properties": SEND_PROGRESS},
            "unknown": {"type": "array", "description": "Recipients whose "
                        "send outcome is unknown (after a crash)."}}}},
    },
    "Registration": {
        "type": "object", "required": ["messages"],
        "properties": {"messages": {
            "type": "array", "minItems": 1, "maxItems": 10000,
            "items": {
                "type": "object", "required": ["recipient", "message_id"],
                "properties": {
                    "recipient": {"type": "string", "minLength": 1, "maxLength": 64},
                    "message_id": {"type": "string", "minLength": 1, "maxLength": 256},
                    # null is accepted as "not given" for the optional fields
                    "contact_id": {"anyOf": [{"type": "string"}, {"type": "integer"},
                                             {"type": "null"}]},
                    "status": nullable({"type": "string", "enum": list(STATUS_FILTERS)}),
                    "error": {"anyOf": [{"type": "string"}, {"type": "object"},
                                        {"type": "null"}]},
                }}}},
    },
    "RegistrationResult": {
        "type": "object", "required": ["registered", "duplicates"],
        "properties": {"registered": COUNT, "duplicates": COUNT},
    },
    "MessageRow": {
        "type": "object",
        "required": ["row", "message_id", "recipient", "contact_id", "status", "level",
                     "failed", "failure_reason", "timestamps"],
        "properties": {
            "row": {"type": "integer"},
            "message_id": nullable({"type": "string", "description": (
                "The bare id ACKs are matched by (whatsapp-web.js's serialized "
                "true_628…@c.us_3EB0… becomes 3EB0…).")}),
            "raw_message_id": nullable({"type": "string", "description": (
                "The id exactly as registered or as the gateway returned it.")}),
            "recipient": {"type": "string"}, "contact_id": nullable({"type": "string"}),
            "status": {"type": "string", "enum": [*LEVEL_NAMES, "failed", "skipped"]},
            "level": {"type": "string", "enum": list(LEVEL_NAMES)},
            "failed": {"type": "boolean"}, "failure_reason": nullable({"type": "string"}),
            "failure": nullable(ref("Failure")),
            "attempt": nullable({"type": "integer", "description": "The latest attempt's "
                                 "number (null: not sent by campaignd)."}),
            "attempt_started_at": TIME,
            "attempt_note": nullable({"type": "string", "description": "A transient error "
                                      "the latest attempt met."}),
            "previous_attempts": {"type": "array", "items": ATTEMPT},
            "skip": nullable({"type": "object", "description": "Why the sender did not "
                              "send it (status skipped unless an earlier attempt failed).",
                              "required": ["reason", "detail", "source", "at"],
                              "properties": {
                                  "reason": {"type": "string", "enum": list(SKIP_REASONS)},
                                  "detail": nullable({"type": "string"}),
                                  "source": nullable({"type": "string"}), "at": TIME}}),
            "timestamps": {"type": "object", "properties": {
                name: TIME for name in (*LEVEL_NAMES, "failed")}},
        },
    },
    "MessageList": {
        "type": "object", "required": ["messages", "next_cursor"],
        "properties": {"messages": {"type": "array", "items": ref("MessageRow")},
                       "next_cursor": nullable({"type": "string"})},
    },
    "Timeline": {
        "type": "object", "required": ["timeline"],
        "properties": {"timeline": {
            "type": "object", "required": ["resolution", "points"],
            "properties": {
                "resolution": {"type": "integer", "description": "Seconds per point."},
                "points": {"type": "array", "items": {
                    "type": "object", "required": ["t", "sent", "delivered", "read", "failed"],
                    "properties": {"t": TIME, "sent": COUNT, "delivered": COUNT, "read": COUNT,
                                   "failed": COUNT}}},
            }}},
    },
    **{  # --- failures, alerts, account health (SPEC 7; web/failures.py) ---
        "Failure": {
            "type": "object", "required": ["source", "code", "title", "category", "label"],
            "description": "The failure a message keeps: the first by event time, ties "
                           "broken by code.",
            "properties": {
                "source": nullable({"type": "string", "examples": ["cloud", "twilio"]}),
                "code": nullable({"type": "string", "examples": ["131026", "63016",
                                                                 "http_503", "ack_error"]}),
                "title": nullable({"type": "string"}),
                "details": nullable({"type": "string"}),
                "category": {"type": "string", "enum": list(CATEGORY_NAMES)},
                "label": {"type": "string"}, "at": TIME}},
        "FailureCount": {
            "type": "object", "required": ["category", "label", "count", "codes"],
            "properties": {
                "category": {"type": "string", "enum": list(CATEGORY_NAMES)},
                "label": {"type": "string"}, "count": COUNT,
                "codes": {"type": "object", "additionalProperties": COUNT,
                          "description": "Messages per code; \"none\" when no code was "
                                         "given.", "examples": [{"131026": 12}]}}},
        "Alert": {
            "type": "object", "required": ["rule", "metric", "state", "value", "threshold",
                                           "direction", "message"],
            "properties": {
                "rule": {"type": "string"}, "metric": {"type": "string"},
                "category": nullable({"type": "string"}),
                "category_label": nullable({"type": "string"}),
                "threshold": {"type": "number"},
                "direction": {"type": "string", "enum": ["above", "below"]},
                "window": {"type": "number"}, "min_volume": {"type": "integer"},
                "value": nullable({"type": "number"}), "volume": {"type": "integer"},
                "state": {"type": "string", "enum": ["firing", "cleared"]},
                "pause": {"type": "boolean"}, "repeat": {"type": "boolean"},
                "message": {"type": "string"}, "at": TIME}},
        "FailureTable": {
            "type": "object", "required": ["failures"],
            "properties": {"failures": {
                "type": "object", "required": ["categories", "codes"],
                "properties": {
                    "categories": {"type": "array", "items": {
                        "type": "object",
                        "required": ["category", "label", "explanation", "action", "retry",
                                     "retryable", "pauses_campaign"],
                        "properties": {
                            "category": {"type": "string", "enum": list(CATEGORY_NAMES)},
                            "label": {"type": "string"}, "explanation": {"type": "string"},
                            "action": {"type": "string", "description": "What to do."},
                            "retry": {"type": "string", "enum": ["never", "backoff",
                                                                 "later"]},
                            "retryable": {"type": "boolean"},
                            "pauses_campaign": {"type": "boolean"}}}},
                    "codes": {"type": "array", "items": {
                        "type": "object",
                        "required": ["code", "family", "title", "label", "category"],
                        "properties": {
                            "code": {"type": "string", "description": "A code, or a family "
                                     "such as 132xxx."},
                            "family": {"type": "string"}, "title": {"type": "string"},
                            "label": {"type": "string"},
                            "category": {"type": "string",
                                         "enum": list(CATEGORY_NAMES)}}}}}}}},
        "AccountHealth": {
            "type": "object", "required": ["health"],
            "properties": {"health": {
                "type": "object", "required": ["numbers", "accounts", "templates"],
                "properties": {
                    "numbers": {"type": "array", "items": {"type": "object", "properties": {
                        "display_phone_number": nullable({"type": "string"}),
                        "waba_id": nullable({"type": "string"}),
                        "event": nullable({"type": "string"}),
                        "current_limit": nullable({"type": "string"}),
                        "old_limit": nullable({"type": "string"}),
                        "max_daily_conversations_per_business": nullable({"type": "string"}),
                        "summary": {"type": "string"}, "at": TIME}}},
                    "accounts": {"type": "array", "items": {"type": "object", "properties": {
                        "waba_id": nullable({"type": "string"}),
                        "event": nullable({"type": "string"}),
                        "problems": {"type": "object"},
                        "summary": {"type": "string"}, "at": TIME}}},
                    "templates": {"type": "array", "items": {"type": "object", "properties": {
                        "name": nullable({"type": "string"}),
                        "language": nullable({"type": "string"}),
                        "id": nullable({"type": "string"}),
                        "status": nullable({"type": "string"}),
                        "reason": nullable({"type": "string"}),
                        "quality": nullable({"type": "string"}),
                        "previous_quality": nullable({"type": "string"}),
                        "warning": {"type": "boolean"},
                        "summary": {"type": "string"}, "at": TIME}}}}}}},
    },
    "WebhookResult": {
        "type": "object", "required": ["ok", "events"],
        "properties": {"ok": {"type": "boolean", "const": True},
                       "events": {"type": "integer", "description": "Status and inbound "
                                  "events (and, on /webhooks/cloud, account and template "
                                  "changes) stored."},
                       "ignored": {"type": "object", "description": "Events accepted but not "
                                   "used (not delivery statuses nor inbound messages, or our "
                                   "own / a group's message), by name: count.",
                                   "additionalProperties": {"type": "integer"}}},
    },
}


# --- engagement (SPEC 6): replies, button taps, opt-outs, suppression list -------------

BUTTON = {"type": "object", "required": ["payload", "title"],
          "properties": {"payload": nullable({"type": "string"}),
                         "title": nullable({"type": "string"})}}
SCHEMAS["Statistics"]["properties"].update({
    "total_replied_count": {**COUNT, "description": "Messages with a reply (a message or "
                            "button tap that is not a stop / start keyword)."},
    "reply_rate": {**RATE, "description": "replied / delivered x 100, one decimal."},
    "time_to_reply": {**LATENCY, "description": "Seconds from sent to the first reply."},
    "total_opted_out_count": {**COUNT, "description": "Messages answered with a stop."},
    "total_skipped_count": {**COUNT, "description": "Recipients the sender skipped "
                            "(suppressed, or unreachable with skip_unreachable) and never "
                            "sent; not in total_queued_count, done in progress."},
    "buttons": {"type": "array", "description": "Messages per tapped button, most first "
                "(at most 20).", "items": {
                    "type": "object", "required": ["payload", "title", "count"],
                    "properties": {"payload": nullable({"type": "string"}),
                                   "title": nullable({"type": "string"}), "count": COUNT}}},
})
SCHEMAS["MessageRow"]["properties"].update({
    "replied_at": {**TIME, "description": "First reply."},
    "reply_count": COUNT,
    "button": {**nullable(BUTTON), "description": "The last button tapped."},
    "opted_out_at": TIME,
    "reply_text": {**nullable({"type": "string"}), "description": "The latest reply's text, "
                   "only with engagement.keep_reply_text = true."},
})
SCHEMAS["Suppression"] = {
    "type": "object", "required": ["number", "reason", "source", "suppressed_at"],
    "properties": {"number": {"type": "string", "description": "E.164 digits."},
                   "reason": nullable({"type": "string"}),
                   "source": {"type": "string", "description": "Where the stop came from: a "
                              "webhook source, simulator, sender, api or import; "
                              "{source}@{node} when another node of a cluster listed it."},
                   "suppressed_at": TIME}}
SCHEMAS["SuppressionList"] = {
    "type": "object", "required": ["workspace_id", "total", "suppressions", "next_cursor"],
    "properties": {"workspace_id": {"type": "integer"}, "total": COUNT,
                   "suppressions": {"type": "array", "items": ref("Suppression")},
                   "next_cursor": nullable({"type": "string"})}}
SCHEMAS["SuppressionChange"] = {
    "type": "object",
    "properties": {"number": {"type": "string", "examples": ["+6281234567890"]},
                   "numbers": {"type": "array", "minItems": 1, "maxItems": 100000,
                               "items": {"type": "string"}},
                   "reason": {"type": "string", "maxLength": 200}}}


def _suppression_paths() -> dict[str, Any]:
    workspace = {"name": "workspace_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 0}}
    csv_body = {"type": "string", "description": "number[,reason] lines, an optional "
                "header line (number,reason)."}
    return {"/api/workspaces/{workspace_id}/suppressions": {
        "get": {"tags": ["engagement"], "operationId": "list_suppressions",
                "parameters": [workspace,
                               query("format", {"type": "string", "enum": ["json", "csv"]},
                                     "csv: every entry as a CSV file (number, reason, "
                                     "source, suppressed_at)."),
                               query("limit", {"type": "integer", "minimum": 1,
                                               "maximum": 5000, "default": 100}, "Page size."),
                               query("cursor", {"type": "string"}, "next_cursor of the last "
                                     "page.")],
                "summary": "The workspace's suppressed numbers (SPEC 6.4), in number order.",
                "responses": {"200": {"description": "A page (or the CSV file).", "content": {
                    J: {"schema": ref("SuppressionList")}, "text/csv": {"schema": csv_body}}},
                    "400": err("A query parameter is invalid."), **AUTH_ERRORS,
                    "404": err("No such workspace for this token."),
                    "503": err("The list did not answer in time.")}},
        "post": {"tags": ["engagement"], "operationId": "add_suppressions",
                 "parameters": [workspace],
                 "summary": "Suppress numbers (JSON, or a CSV file to import).",
                 "description": "A CSV import is the same POST with Content-Type: text/csv "
                                "and number[,reason] lines (an optional header line "
                                "number,reason); every line must be a phone number or "
                                "nothing is stored (422 names the line).",
                 "requestBody": {"required": True, "content": {
                     J: {"schema": ref("SuppressionChange")}}},
                 "responses": {"201": ok("Stored (durable).", {
                     "type": "object", "required": ["workspace_id", "added"],
                     "properties": {"workspace_id": {"type": "integer"}, "added": COUNT}}),
                     "400": err("Not JSON / not a readable CSV file."), **AUTH_ERRORS,
                     "404": err("No such workspace for this token."),
                     "413": err("More than 100,000 numbers."),
                     "415": err("Neither application/json nor text/csv."),
                     "422": err("A number is not a phone number (named in `field`)."),
                     "503": err("Storage unavailable; retry.")}},
        "delete": {"tags": ["engagement"], "operationId": "remove_suppressions",
                   "parameters": [workspace, query("number", {"type": "string"},
                                                   "The number to lift (or a JSON body).")],
                   "summary": "Lift suppressions (a number, or numbers in the body).",
                   "requestBody": {"required": False,
                                   "content": {J: {"schema": ref("SuppressionChange")}}},
                   "responses": {"200": ok("Lifted (durable); numbers not listed are "
                                           "skipped.", {
                                               "type": "object",
                                               "required": ["workspace_id", "removed"],
                                               "properties": {
                                                   "workspace_id": {"type": "integer"},
                                                   "removed": COUNT}}),
                                 "400": err("Neither ?number nor a JSON body."), **AUTH_ERRORS,
                                 "404": err("No such workspace for this token."),
                                 "422": err("A number is not a phone number."),
                                 "503": err("Storage unavailable; retry.")}}}}


def _webhook(source: str) -> dict[str, Any]:
    media = "application/x-www-form-urlencoded" if source == "twilio" else J
    return {"post": {
        "tags": ["webhooks"], "operationId": f"webhook_{source}", "security": [],
        "summary": f"Receive {source} delivery receipts (SPEC 3.1) and what recipients "
                   "send back (SPEC 6.1).",
        "description": "2xx means every status and inbound message in the request is "
                       "durably stored (and, with forward_to, the request's relay copy "
                       "too). Events that are neither are answered 2xx with `ignored`.",
        "requestBody": {"required": True, **body({"type": "object"}, media)},
        "responses": {
            "200": ok("Stored.", ref("WebhookResult")),
            "400": err("Not valid JSON or form data."),
            "401": err("Missing or invalid signature; nothing changed."),
            "404": err("This source is disabled."),
            "413": err("Body larger than server.max_body_bytes (webjs message_received: "
                       "webhooks.max_inbound_bytes)."),
            "415": err("Wrong Content-Type."),
            "422": err("A field is missing or has the wrong type (named in `field`)."),
            "503": err("Storage unavailable, or this source's relay backlog is full "
                       "(webhooks.forward_max_backlog); nothing stored, retry after "
                       "Retry-After seconds."),
        }}}


def _campaign_paths() -> dict[str, Any]:
    return {
        "/api/campaigns": {
            "post": {"tags": ["campaigns"], "operationId": "create_campaign",
                     "summary": "Create a campaign (to send, or to track sends made elsewhere).",
                     "requestBody": {"required": True, **body(ref("CreateCampaign"))},
                     "responses": {"201": ok("Created.", ref("CreatedCampaign")),
                                   "400": err("Not a JSON object."), **AUTH_ERRORS,
                                   "403": err("The token may not use this workspace."),
                                   "409": err("A campaign with this uuid exists."),
                                   "413": err("More recipients than sender.max_recipients."),
                                   "415": err("Not application/json."),
                                   "422": {"description": "A field is invalid (named in "
                                           "`field`); invalid recipients are reported by "
                                           "index.", **body({"anyOf": [
                                               ref("Error"), ref("InvalidRecipients")]})},
                                   "503": err("Sending requested but the sender is not "
                                              "running.")}},
            "get": {"tags": ["campaigns"], "operationId": "list_campaigns",
                    "summary": "List campaigns, newest first, visible to the token.",
                    "parameters": [
                        query("workspace_id", {"type": "integer"}, "Only this workspace."),
                        query("status", {"type": "string", "enum": list(CAMPAIGN_STATUSES)},
                              "Only campaigns in this status."),
                        query("limit", {"type": "integer", "minimum": 1, "maximum": 500,
                                        "default": 50}, "Page size."),
                        query("cursor", {"type": "string"}, "next_cursor of the last page.")],
                    "responses": {"200": ok("A page of campaigns.", ref("CampaignList")),
                                  "400": err("A query parameter is invalid."), **AUTH_ERRORS}},
        },
        "/api/campaigns/{uuid}": {"get": {
            "tags": ["campaigns"], "operationId": "get_campaign", "parameters": [UUID_PARAM],
            "summary": "A campaign with its live statistics.",
            "responses": {"200": ok("The campaign.", ref("CampaignEnvelope")), **AUTH_ERRORS,
                          **NOT_FOUND, "503": err("The campaign did not answer in time.")}}},
        "/api/campaigns/{uuid}/messages": {
            "post": {"tags": ["campaigns"], "operationId": "register_messages",
                     "parameters": [UUID_PARAM],
                     "summary": "Register messages sent elsewhere (idempotent).",
                     "requestBody": {"required": True, **body(ref("Registration"))},
                     "responses": {
                         "200": ok("Every message was known already.",
                                   ref("RegistrationResult")),
                         "201": ok("New messages registered.", ref("RegistrationResult")),
                         "400": err("Not a JSON object."), **AUTH_ERRORS, **NOT_FOUND,
                         "409": err("A message id belongs to another campaign."),
                         "413": err("More than 10,000 messages."),
                         "422": err("An item is invalid (named in `field`).")}},
            "get": {"tags": ["campaigns"], "operationId": "list_messages",
                    "summary": "Per-recipient rows, cursor paging.",
                    "parameters": [
                        UUID_PARAM,
                        query("status", {"type": "string", "enum": [
                            *STATUS_FILTERS, *ENGAGEMENT_FILTERS, SKIPPED]},
                              "Filter as the cards count (read includes played, ...); "
                              "replied / opted_out: rows with a reply / a stop; skipped: "
                              "rows the sender skipped."),
                        query("search", {"type": "string", "maxLength": 100},
                              "Substring of the recipient or message id."),
                        query("category", {"type": "string", "enum": list(CATEGORY_NAMES)},
                              "Only failed messages whose failure is in this category "
                              "(with status=failed or alone)."),
                        query("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                        "default": 50}, "Page size."),
                        query("cursor", {"type": "string"}, "next_cursor of the last page.")],
                    "responses": {"200": ok("A page of rows.", ref("MessageList")),
                                  "400": err("A query parameter is invalid."), **AUTH_ERRORS,
                                  **NOT_FOUND}},
        },
        "/api/campaigns/{uuid}/timeline": {"get": {
            "tags": ["campaigns"], "operationId": "timeline",
            "summary": "Cumulative counts over time, for the chart.",
            "parameters": [UUID_PARAM, query("points", {"type": "integer", "minimum": 2,
                                                        "maximum": 1000, "default": 120},
                                             "Most points returned.")],
            "responses": {"200": ok("The timeline.", ref("Timeline")),
                          "400": err("points is invalid."), **AUTH_ERRORS, **NOT_FOUND,
                          "503": err("The campaign did not answer in time.")}}},
        "/api/campaigns/{uuid}/export.csv": {"get": {
            "tags": ["campaigns"], "operationId": "export_csv", "parameters": [UUID_PARAM],
            "summary": "Every recipient with status, failure reason and a timestamp per level.",
            "description": "Streamed (chunked). Columns: row, recipient, contact_id, "
                           "message_id (bare), raw_message_id (as registered), status, level, "
                           "failed, failure_reason, failure_code, failure_category, queued_at, "
                           "pending_at, sent_at, delivered_at, read_at, played_at, failed_at, "
                           "replied_at, reply_count, button, opted_out_at, reply_text, "
                           "attempt, previous_attempts, skip_reason, skip_detail, "
                           "skip_source, skipped_at.",
            "responses": {"200": ok("CSV with a header line.", {"type": "string"}, "text/csv"),
                          **AUTH_ERRORS, **NOT_FOUND}}},
    }


def _sending_paths() -> dict[str, Any]:
    action = {"name": "action", "in": "path", "required": True,
              "schema": {"type": "string", "enum": list(ACTIONS)}}
    return {
        "/api/campaigns/{uuid}/{action}": {"post": {
            "tags": ["sending"], "operationId": "campaign_action",
            "parameters": [UUID_PARAM, action],
            "summary": "Start, pause, resume or cancel sending, or requeue the failed / "
                       "unknown recipients (SPEC 3.4, 9). start also starts a scheduled "
                       "campaign now; cancel cancels it.",
            "responses": {
                "200": ok("The campaign after the change.", {
                    "type": "object", "required": ["campaign"],
                    "properties": {"campaign": ref("Campaign"),
                                   "requeued": {**COUNT, "description": "retry-* only."}}}),
                **AUTH_ERRORS,
                "404": err("No such campaign (or another workspace's), or no such action."),
                "409": err("Not possible in the campaign's status, or it is sent elsewhere."),
                "503": err("The sender is not running.")}}},
        "/api/campaigns/{uuid}/schedule": {"post": {
            "tags": ["sending"], "operationId": "schedule_campaign",
            "parameters": [UUID_PARAM],
            "summary": "Start sending at send_at (status scheduled), or move that time "
                       "(SPEC 9). Allowed from pending and scheduled; kept across restarts.",
            "requestBody": {"required": True, **body({
                "type": "object", "required": ["send_at"],
                "properties": {"send_at": SEND_AT}})},
            "responses": {
                "200": ok("The campaign, scheduled.", ref("CampaignEnvelope")),
                "400": err("The body is not a JSON object."), **AUTH_ERRORS, **NOT_FOUND,
                "409": err("Not possible in the campaign's status, or it is sent elsewhere."),
                "415": err("The body is not application/json."),
                "422": err("send_at is missing or invalid (no offset, in the past, more "
                           "than a year ahead)."),
                "503": err("The sender is not running.")}}},
        "/api/campaigns/{uuid}/sending": {"get": {
            "tags": ["sending"], "operationId": "sending", "parameters": [UUID_PARAM],
            "summary": "Send progress, and recipients whose send outcome is unknown.",
            "responses": {"200": ok("Send state.", ref("Sending")), **AUTH_ERRORS,
                          **NOT_FOUND, "503": err("The sender is not running.")}}},
    }


def _service_paths() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "/healthz": {"get": {"tags": ["service"], "operationId": "healthz", "security": [],
                             "summary": "The process is alive.",
                             "responses": {"200": ok("Alive.", {"type": "object"})}}},
        "/readyz": {"get": {
            "tags": ["service"], "operationId": "readyz", "security": [],
            "summary": "Store open, actors up, storage writable.",
            "responses": {
                "200": ok("Ready.", {"type": "object", "properties": {
                    "status": {"const": "ready"}}}),
                "503": ok("Not ready; `problems` says why.", {
                    "type": "object", "required": ["status", "problems"],
                    "properties": {"status": {"const": "not ready"},
                                   "problems": {"type": "array", "items": text}}})}}},
        "/metrics": {"get": {"tags": ["service"], "operationId": "metrics", "security": [],
                             "summary": "Prometheus metrics (text exposition format).",
                             "responses": {"200": ok("Metrics.", text, "text/plain")}}},
        "/api/openapi.json": {"get": {"tags": ["service"], "operationId": "openapi",
                                      "security": [], "summary": "This document.",
                                      "responses": {"200": ok("OpenAPI 3.1.", {
                                          "type": "object"})}}},
        "/": {"get": {"tags": ["page"], "operationId": "page", "security": [],
                      "summary": "The campaign page (HTML).",
                      "responses": {"200": ok("The page.", text, "text/html")}}},
        "/page-config.json": {"get": {
            "tags": ["page"], "operationId": "page_config", "security": [],
            "summary": "How the page reaches the live push; never anything a token protects.",
            "responses": {"200": ok("Page settings.", {"type": "object", "properties": {
                "app_key": text, "ws_path": text, "auth_required": {"type": "boolean"},
                "auth_endpoint": text, "private_channels": {"type": "boolean"},
                "activity_timeout": {"type": "integer"},
                "workspaces": {"type": "array", "items": {"type": "integer"}},
                "default_workspace": {"type": "integer"},
                "gateways": {"type": "array", "items": text}}})}}},
        "/broadcasting/auth": {"post": {
            "tags": ["live"], "operationId": "broadcasting_auth",
            "summary": "Sign a private channel subscription (Pusher protocol, Laravel Echo).",
            "requestBody": {"required": True, "content": {
                media: {"schema": {
                    "type": "object", "required": ["socket_id", "channel_name"],
                    "properties": {"socket_id": {"type": "string", "pattern": r"^\d+\.\d+$"},
                                   "channel_name": {"type": "string", "examples": [
                                       "private-campaign.{uuid}", "private-workspace.{id}"]}}}}
                for media in ("application/x-www-form-urlencoded", J)}},
            "responses": {"200": ok("The signature pusher-js expects.", {
                "type": "object", "required": ["auth"], "properties": {
                    "auth": {"type": "string", "description": "app_key:hex HMAC-SHA256"}}}),
                "400": err("The body is not valid JSON."),
                **AUTH_ERRORS,
                "403": err("Not a private campaign/workspace channel, or the token may not "
                           "see its workspace (same answer for a missing campaign)."),
                "422": err("socket_id or channel_name is missing or malformed.")}}},
    }


def _relay_paths() -> dict[str, Any]:
    """The relay to the app behind campaignd (web/relay.py, actors/relay.py)."""
    number = {"type": "number", "minimum": 0}
    source = {"type": "object", "required": ["backlog", "oldest_age", "forwarded", "failures",
                                             "failing"], "properties": {
        "forward_to": nullable({"type": "string"}), "backlog": COUNT, "oldest_age": number,
        "forwarded": COUNT, "failures": COUNT, "failing": {"type": "boolean"},
        "failing_since": nullable(number), "last_error": nullable({"type": "string"}),
        "last_error_at": nullable(number), "next_retry_in": nullable(number),
        "set_aside": COUNT, "last_set_aside": nullable({"type": "string"})}}
    passthrough = {
        "tags": ["webhooks"], "security": [],
        "summary": "The seed's whatsapp-service's other calls to Laravel (LARAVEL_URL = "
                   "http://campaignd/laravel), passed through to the Laravel app "
                   "(webhooks.webjs.forward_to without /api/whatsapp/webhooks/webjs) and "
                   "answered with its answer. Only /laravel/api/whatsapp/... is passed.",
        "parameters": [{"name": "tail", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"default": {"description": "The Laravel app's own answer."},
                      "404": err("Not an /api/whatsapp/ call, or forward_to is not set."),
                      "502": err("The Laravel app did not answer."),
                      "504": err("The Laravel app did not answer in time.")}}
    seed_webhook = _webhook("webjs")
    seed_webhook["post"] = {**seed_webhook["post"], "operationId": "webhook_webjs_seed_path",
                            "summary": "The webjs webhook where the seed's service posts it "
                                       "(LARAVEL_URL = http://campaignd/laravel)."}
    return {"/laravel/api/whatsapp/webhooks/webjs": seed_webhook,
            "/laravel/{tail}": {method: {**passthrough, "operationId": f"passthrough_{method}"}
                                for method in ("get", "post", "put", "patch", "delete")},
            "/api/relay": {"get": {
        "tags": ["service"], "operationId": "relay_status",
        "summary": "The relay of accepted webhooks to the app behind campaignd, per source "
                   "that relays (forward_to) or still has a backlog.",
        "responses": {"200": ok("Per source.", {
            "type": "object", "required": ["relay"], "properties": {"relay": {
                "type": "object", "additionalProperties": source}}}),
            **AUTH_ERRORS,
            "403": err("A token of one workspace: the relay is the daemon's.")}}},
            "/api/relay/{source}/requeue": {"post": {
        "tags": ["service"], "operationId": "relay_requeue",
        "summary": "Put the source's requests set aside (the app refused them as malformed "
                   "webhooks.forward_set_aside_after times) back at the end of its queue.",
        "parameters": [{"name": "source", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(SOURCES)}}],
        "responses": {"200": ok("How many were put back.", {
            "type": "object", "required": ["source", "requeued"], "properties": {
                "source": {"type": "string"}, "requeued": COUNT}}),
            **AUTH_ERRORS,
            "403": err("A token of one workspace: the relay is the daemon's."),
            "404": err("Not a webhook source.")}}}}


def _failure_paths() -> dict[str, Any]:
    return {
        "/api/failures": {"get": {
            "tags": ["failures"], "operationId": "failure_table",
            "summary": "The failure table: categories (label, explanation, what to do, "
                       "retry) and the codes in each (docs/failures.md).",
            "responses": {"200": ok("The table.", ref("FailureTable")), **AUTH_ERRORS}}},
        "/api/account/health": {"get": {
            "tags": ["failures"], "operationId": "account_health",
            "summary": "The sending numbers' health: the latest Meta account and template "
                       "webhooks (messaging limit, account problems, template status and "
                       "quality).",
            "responses": {"200": ok("What Meta last said.", ref("AccountHealth")),
                          **AUTH_ERRORS,
                          "403": err("A token of one workspace: the sending numbers and "
                                     "the account are the daemon's.")}}},
    }


NODE_PARAM = {"name": "node", "in": "path", "required": True,
              "description": "The node this request is for (cluster.node); nginx routes "
                             "/n/{node}/ by it.",
              "schema": {"type": "string", "pattern": f"^{NODE_PATTERN}$"}}
WRONG_NODE = {"404": err("No node has this name (unknown_node)."),
              "421": err("A valid request for another node (or this is not a cluster "
                         "node): the proxy routed it wrongly; nothing was done.")}


def _on_node(item: dict[str, Any], what: str) -> dict[str, Any]:
    """A route of `item` under /n/{node}/: the same operation for one node."""
    out = {}
    for method, op in item.items():
        out[method] = {**op, "operationId": f"{op['operationId']}_on_node",
                       "summary": f"{op['summary']} {what}",
                       "parameters": [NODE_PARAM, *op.get("parameters", [])],
                       "responses": {**op["responses"], **WRONG_NODE}}
    return out


def _cluster_paths(paths: dict[str, Any]) -> dict[str, Any]:
    """Node paths (docs/cluster.md) and the campaign list across nodes."""
    out = {f"/n/{{node}}{path}": _on_node(paths[path], "On node {node}: Meta's per-number "
                                          "webhook override points each number here.")
           for path in paths if path.startswith("/webhooks/")}
    out["/n/{node}/api/campaigns"] = _on_node(
        paths["/api/campaigns"], "On node {node} (its uuid then starts with {node}-).")
    node_line = {"type": "object", "required": ["node", "ok"], "properties": {
        "node": nullable({"type": "string"}), "ok": {"type": "boolean"},
        "error": {"type": "string", "description": "Why it is missing from the list."}}}
    listed = {"allOf": [ref("Campaign"), {"type": "object", "properties": {
        "node": nullable({"type": "string"})}}]}
    out["/api/cluster/campaigns"] = {"get": {
        "tags": ["campaigns"], "operationId": "list_campaigns_across_nodes",
        "summary": "Campaigns of every node, newest first: this node's and each peer's "
                   "(cluster.peers) GET /api/campaigns with the same token, merged. A node "
                   "that does not answer is reported in `nodes` and its campaigns are "
                   "missing. On a single node: its own list.",
        "parameters": [
            query("workspace_id", {"type": "integer"}, "Only this workspace."),
            query("status", {"type": "string", "enum": list(CAMPAIGN_STATUSES)},
                  "Only campaigns in this status."),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                  "Page size."),
            query("cursor", {"type": "string"}, "next_cursor of the last page.")],
        "responses": {"200": ok("A page of campaigns across nodes.", {
            "type": "object", "required": ["campaigns", "next_cursor", "nodes"],
            "properties": {"campaigns": {"type": "array", "items": listed},
                           "next_cursor": nullable({"type": "string"}),
                           "nodes": {"type": "array", "items": node_line}}}),
            "400": err("A query parameter is invalid."), **AUTH_ERRORS}}}
    return out


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for source in SOURCES:
        paths[f"/webhooks/{source}"] = _webhook(source)
    paths["/webhooks/cloud"]["get"] = {
        "tags": ["webhooks"], "operationId": "cloud_verify", "security": [],
        "summary": "Meta's subscription handshake: echoes hub.challenge.",
        "parameters": [query("hub.mode", {"const": "subscribe"}, "Must be subscribe."),
                       query("hub.verify_token", {"type": "string"},
                             "webhooks.cloud.verify_token."),
                       query("hub.challenge", {"type": "string"}, "Echoed back.")],
        "responses": {"200": ok("The challenge.", {"type": "string"}, "text/plain"),
                      "400": err("Not a subscribe handshake."),
                      "403": err("verify_token does not match.")}}
    paths.update(_campaign_paths())
    paths.update(_sending_paths())
    paths.update(_service_paths())
    paths.update(_relay_paths())
    paths.update(_failure_paths())
    paths.update(_cluster_paths(paths))
    paths.update(_suppression_paths())
    openapi_insights.extend(SCHEMAS, paths)  # analytics (SPEC 8)
    return {
        "openapi": "3.1.0",
        "info": {"title": "campaignd", "version": "0.1.0",
                 "description": "Send WhatsApp broadcast campaigns and track their ACKs "
                                "live. Errors are always {\"error\": {code, message, field?}}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {}],
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "api.tokens: each for one workspace or all. Not needed when "
                           "api.tokens is empty (loopback only)."}}},
        "paths": paths,
    }


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
