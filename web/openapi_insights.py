"""The OpenAPI description of the analytics routes (SPEC 8, web/insights.py), added to
web/openapi.py's document by `extend`. Kept apart so that the analytics' part of the
document sits beside nothing else; the few helpers below mirror web/openapi.py's."""

from __future__ import annotations

from typing import Any

from domain.insights import DELAY_EDGES
from domain.tiers import TIERS

J = "application/json"
COUNT = {"type": "integer", "minimum": 0}
RATE = {"type": "number", "minimum": 0, "maximum": 100}
CHANGE = {"anyOf": [{"type": "number"}, {"type": "null"}]}
TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
TIER = {"type": "string", "enum": list(TIERS)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: dict[str, Any], media: str = J) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _ok(description, _ref("Error"))


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


COUNTS = {name: COUNT for name in ("sent", "delivered", "read", "replied", "failed",
                                   "opted_out")}
RATES = {name: RATE for name in ("delivery_rate", "read_rate", "reply_rate", "failure_rate",
                                 "opt_out_rate")}
FIGURES = {"type": "object", "required": [*COUNTS, *RATES],
           "properties": {**COUNTS, **RATES}}
CAMPAIGN_POINT = {"type": "object", "required": ["uuid", "name", "created_at", *COUNTS, *RATES],
                  "properties": {"uuid": {"type": "string"}, "name": {"type": "string"},
                                 "status": {"type": "string"}, "created_at": TIME,
                                 **COUNTS, **RATES}}
AUDIENCE = {
    "type": "object", "additionalProperties": False,
    "description": "Keep only recipients in an included tier (all when none is named), "
                   "then drop those in an excluded tier (docs/insights.md).",
    "properties": {"include_tiers": {"type": "array", "items": TIER},
                   "exclude_tiers": {"type": "array", "items": TIER}}}
AUDIENCE_REPORT = {
    "type": "object",
    "required": ["include_tiers", "exclude_tiers", "recipients", "kept", "removed_count",
                 "removed", "tiers"],
    "properties": {
        "include_tiers": {"type": "array", "items": TIER},
        "exclude_tiers": {"type": "array", "items": TIER},
        "recipients": COUNT, "kept": COUNT, "removed_count": COUNT,
        "removed": {"type": "array", "description": "What each rule removed, per tier.",
                    "items": {"type": "object", "required": ["rule", "tier", "count"],
                              "properties": {"rule": {"enum": ["include_tiers",
                                                               "exclude_tiers"]},
                                             "tier": TIER, "count": COUNT}}},
        "tiers": {"type": "object", "description": "Recipients per tier.",
                  "properties": {t: COUNT for t in TIERS}}}}

SCHEMAS: dict[str, Any] = {
    "Trends": {
        "type": "object", "required": ["workspace_id", "days", "campaigns", "totals"],
        "properties": {
            "workspace_id": {"type": "integer"}, "days": {"type": "integer"}, "now": TIME,
            "campaigns": {"type": "array", "items": CAMPAIGN_POINT,
                          "description": "Campaigns created in the last `days`, oldest "
                                         "first: the x of the trend chart is created_at."},
            "totals": {"type": "object", "description": "Keys 7, 30, 90: messages SENT in "
                       "the last N days, the N days before, and the change (points for "
                       "rates, percent for counts; null with nothing to compare).",
                       "additionalProperties": {
                           "type": "object", "required": ["current", "previous", "change"],
                           "properties": {"current": FIGURES, "previous": FIGURES,
                                          "change": {"type": "object",
                                                     "additionalProperties": CHANGE}}}}}},
    "Comparison": {
        "type": "object", "required": ["workspace_id", "delays", "campaigns"],
        "properties": {
            "workspace_id": {"type": "integer"},
            "delays": {"type": "array", "items": {"type": "integer"},
                       "description": "Seconds since sending of the curve points (the last "
                                      "point, after: null, is everything)."},
            "campaigns": {"type": "array", "items": {**CAMPAIGN_POINT, "properties": {
                **CAMPAIGN_POINT["properties"],
                "curve": {"type": "object", "properties": {
                    "sent": COUNT, "delivered": COUNT, "read": COUNT, "replied": COUNT,
                    "points": {"type": "array", "items": {"type": "object", "properties": {
                        "after": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                        "delivered": RATE, "read": RATE, "replied": RATE}}}}}}}}}},
    "BestTime": {
        "type": "object",
        "required": ["workspace_id", "timezone", "days", "average", "cells", "read_times",
                     "advice"],
        "properties": {
            "workspace_id": {"type": "integer"}, "timezone": {"type": "string"},
            "days": {"type": "integer"}, "min_cell_messages": COUNT,
            "prior_strength": {"type": "number"},
            "average": {"type": "object"},
            "cells": {"type": "array", "description": "168 cells, weekday (0 = Monday) x "
                      "hour of SENDING in the time zone.", "items": {
                          "type": "object", "properties": {
                              "weekday": {"type": "integer"}, "hour": {"type": "integer"},
                              "sent": COUNT, "delivered": COUNT, "read": COUNT,
                              "replied": COUNT,
                              "read_rate": {"anyOf": [RATE, {"type": "null"}]},
                              "reply_rate": {"anyOf": [RATE, {"type": "null"}]},
                              "read_rate_shrunk": RATE, "reply_rate_shrunk": RATE,
                              "enough": {"type": "boolean"}}}},
            "read_times": {"type": "array", "description": "168 cells: when reads and "
                           "replies happened.", "items": {"type": "object"}},
            "advice": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
                "weekday": {"type": "integer"}, "from_hour": {"type": "integer"},
                "to_hour": {"type": "integer"}, "metric": {"type": "string"},
                "rate": RATE, "average": RATE, "n": COUNT, "text": {"type": "string"}}}]}}},
    "Contact": {
        "type": "object",
        "required": ["number", "tier", "received", "delivered", "read", "replied", "failed",
                     "last_read_at", "last_replied_at"],
        "properties": {"number": {"type": "string", "description": "E.164 digits."},
                       "tier": TIER, "received": COUNT, "delivered": COUNT, "read": COUNT,
                       "replied": COUNT, "failed": COUNT, "last_read_at": TIME,
                       "last_replied_at": TIME}},
    "ContactList": {
        "type": "object", "required": ["workspace_id", "contacts", "next_cursor"],
        "properties": {"workspace_id": {"type": "integer"},
                       "tier": {"anyOf": [TIER, {"type": "null"}]},
                       "search": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                       "contacts": {"type": "array", "items": _ref("Contact")},
                       "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                       "tiers": {"anyOf": [
                           {"type": "object", "properties": {t: COUNT for t in TIERS}},
                           {"type": "null"}],
                           "description": "First page only: contacts per tier (of those "
                           "matching search). With a search, null when more than 5,000 "
                           "contacts match and not every contact of the workspace."}}},
    "Audience": AUDIENCE,
    "AudienceReport": AUDIENCE_REPORT,
}


def paths() -> dict[str, Any]:
    workspace = {"name": "workspace_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 0}}
    auth = {"401": _err("Missing or wrong bearer token."),
            "404": _err("No such workspace for this token.")}
    bad = {"400": _err("A query parameter is invalid (named in `field`).")}
    days = _query("days", {"type": "integer", "minimum": 1, "maximum": 3650},
                  "Days to look back over.")
    contact_filters = [
        _query("tier", TIER, "Only contacts in this tier."),
        _query("search", {"type": "string", "maxLength": 32},
               "The start of the number, as stored (E.164 digits): spaces, dashes, dots "
               "and brackets are ignored, a leading + or 00 is the international prefix "
               "(+62 812, 0062812 and 62812 are the same). Digits inside or at the end "
               "of a number do not match; a national 0812 finds only numbers registered "
               "without their country code.")]
    base = "/api/workspaces/{workspace_id}"
    return {
        f"{base}/insights/trends": {"get": {
            "tags": ["insights"], "operationId": "insight_trends", "parameters": [
                workspace, days],
            "summary": "Each campaign's rates over time, and 7 / 30 / 90-day totals with the "
                       "change against the period before.",
            "responses": {"200": _ok("The trends.", _ref("Trends")), **bad, **auth}}},
        f"{base}/insights/compare": {"get": {
            "tags": ["insights"], "operationId": "insight_compare", "parameters": [
                workspace, {**_query("campaigns", {"type": "string"},
                                     "2 to 5 campaign uuids, comma separated."),
                            "required": True}],
            "summary": "Campaigns side by side, with cumulative delivered / read / replied "
                       f"percentages at {len(DELAY_EDGES)} points of time since sending.",
            "responses": {"200": _ok("The comparison.", _ref("Comparison")), **bad, **auth}}},
        f"{base}/insights/best-time": {"get": {
            "tags": ["insights"], "operationId": "insight_best_time", "parameters": [
                workspace, days, _query("timezone", {"type": "string"},
                                        "IANA zone; default analytics.timezone.")],
            "summary": "Weekday x hour of sending with read and reply rates (shrunk toward "
                       "the average), when people read, and advice when the data has it.",
            "responses": {"200": _ok("The heatmaps.", _ref("BestTime")), **bad, **auth}}},
        f"{base}/contacts": {"get": {
            "tags": ["insights"], "operationId": "list_contacts", "parameters": [
                workspace, *contact_filters,
                _query("cursor", {"type": "string"}, "next_cursor of the last page."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                 "default": 50}, "Page size.")],
            "summary": "Each number across the workspace's campaigns, with its tier.",
            "responses": {"200": _ok("A page, in number order.", _ref("ContactList")),
                          **bad, **auth}}},
        f"{base}/contacts.csv": {"get": {
            "tags": ["insights"], "operationId": "export_contacts", "parameters": [
                workspace, *contact_filters],
            "summary": "The contacts (of a tier, matching a search) as a CSV file.",
            "responses": {"200": _ok("number, tier, received, delivered, read, replied, "
                                     "failed, last_read_at, last_replied_at",
                                     {"type": "string"}, "text/csv"), **bad, **auth}}},
        f"{base}/audience/preview": {"post": {
            "tags": ["insights"], "operationId": "preview_audience", "parameters": [workspace],
            "summary": "What an audience would remove from these recipients, per rule and "
                       "tier, before a campaign is created.",
            "requestBody": {"required": True, "content": {J: {"schema": {
                "type": "object", "required": ["recipients"],
                "properties": {"recipients": {"type": "array", "minItems": 1},
                               "audience": _ref("Audience")}}}}},
            "responses": {"200": _ok("The counts.", {
                "type": "object", "required": ["workspace_id", "audience", "recipients"],
                "properties": {"workspace_id": {"type": "integer"},
                               "audience": _ref("AudienceReport"),
                               "recipients": _ref("RecipientReport")}}),
                "400": _err("Not a JSON object."), **auth,
                "413": _err("More recipients than sender.max_recipients."),
                "415": _err("Not application/json."),
                "422": _err("recipients or audience is invalid (named in `field`).")}}},
    }


def extend(schemas: dict[str, Any], document_paths: dict[str, Any]) -> None:
    """Add the analytics to web/openapi.py's schemas and paths; a new campaign takes an
    `audience` and answers with what it removed."""
    schemas.update(SCHEMAS)
    schemas["CreateCampaign"]["properties"]["audience"] = {
        **_ref("Audience"), "description": "With recipients: filter them by engagement "
        "tier before the campaign is created."}
    schemas["CreatedCampaign"]["properties"]["audience"] = {
        **_ref("AudienceReport"), "description": "Only when an audience was given."}
    document_paths.update(paths())
