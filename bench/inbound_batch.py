"""Inbound replies (SPEC 6) in Cloud API batches of 100, against statuses in batches of 100:
the per-item cost must be the same (within 20 %).

One daemon, one campaign of 20,000 messages; wrk loads /webhooks/cloud with batches of
100 statuses and with batches of 100 replies (text replies from the campaign's numbers,
a third of them quoting their message, so attribution looks numbers up and credits)
in alternating rounds, and the medians are compared as items per second.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench.common import Row, create_campaign, daemon, median, wrk

MESSAGES = 20_000
PER_REQUEST = 100
BODIES = 600
STATUSES = ("sent", "delivered", "read")


def _envelope(value: dict[str, object]) -> dict[str, object]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}]}]}


def _script(docs: list[dict[str, object]]) -> str:
    lines = ["wrk.method = 'POST'", "wrk.headers['Content-Type'] = 'application/json'",
             "local bodies = {}"]
    for b, doc in enumerate(docs):
        lines.append(f"bodies[{b + 1}] = [[{json.dumps(doc, separators=(',', ':'))}]]")
    lines.append(f"""
local counter = 0
request = function()
  counter = counter % {len(docs)} + 1
  return wrk.format(nil, nil, nil, bodies[counter])
end""")
    return "\n".join(lines)


def statuses_script() -> str:
    docs = []
    for b in range(BODIES):
        docs.append(_envelope({"statuses": [
            {"id": f"wamid.C{(b * PER_REQUEST + i) % MESSAGES}",
             "status": STATUSES[(b * PER_REQUEST + i) // MESSAGES % 3],
             "timestamp": str(1750000000 + b), "recipient_id": "16505551234"}
            for i in range(PER_REQUEST)]}))
    return _script(docs)


def replies_script(at: int) -> str:
    """Replies from the campaign's numbers (bench.common.create_campaign: 62 + 10 digits),
    each with its own id; every third quotes its message (explicit), the others are
    placed by their number within the reply window."""
    docs = []
    for b in range(BODIES):
        messages = []
        for i in range(PER_REQUEST):
            n = (b * PER_REQUEST + i) % MESSAGES
            item: dict[str, object] = {"from": f"62{n:010d}", "id": f"wamid.IN{b}x{i}",
                                       "timestamp": str(at), "type": "text",
                                       "text": {"body": "berapa harganya?"}}
            if n % 3 == 0:
                item["context"] = {"from": "15550783881", "id": f"wamid.C{n}"}
            messages.append(item)
        docs.append(_envelope({"contacts": [{"wa_id": "16505551234"}],
                               "messages": messages}))
    return _script(docs)


def run(rounds: int = 3, seconds: float = 5) -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="campaignd-bench-inbound-"))
    statuses, replies = folder / "statuses.lua", folder / "replies.lua"
    statuses.write_text(statuses_script())
    with daemon() as d:
        create_campaign(d.url, MESSAGES, prefix="wamid.C")
        replies.write_text(replies_script(int(time.time()) + 5))
        status_rates, reply_rates = [], []
        for _ in range(rounds):  # alternating, so drift hits both alike
            status_rates.append(wrk(f"{d.url}/webhooks/cloud", statuses, seconds))
            reply_rates.append(wrk(f"{d.url}/webhooks/cloud", replies, seconds))
    if any(r["non_2xx"] for r in status_rates + reply_rates):
        raise RuntimeError("some Cloud API webhooks were not answered 2xx")
    per_status = median([r["rps"] for r in status_rates]) * PER_REQUEST
    per_reply = median([r["rps"] for r in reply_rates]) * PER_REQUEST
    ratio = per_reply / per_status if per_status else 0.0
    return [Row("inbound replies, Cloud API batches of 100 (vs statuses)",
                f"{per_reply:,.0f} replies/s vs {per_status:,.0f} statuses/s "
                f"= {ratio:.0%}", "same per-item cost (>= 80 %)", ratio >= 0.8,
                {"replies_rps": [r["rps"] for r in reply_rates],
                 "statuses_rps": [r["rps"] for r in status_rates]})]
