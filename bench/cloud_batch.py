"""Row 2: batched Cloud API webhooks, 100 statuses per request, durable: statuses/s."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.common import Row, create_campaign, daemon, wrk

MESSAGES = 20_000
PER_REQUEST = 100
STATUSES = ("sent", "delivered", "read")


def lua(bodies: int = 600) -> str:
    lines = ["wrk.method = 'POST'", "wrk.headers['Content-Type'] = 'application/json'",
             "local bodies = {}"]
    for b in range(bodies):
        statuses = [{"id": f"wamid.C{(b * PER_REQUEST + i) % MESSAGES}",
                     "status": STATUSES[(b * PER_REQUEST + i) // MESSAGES % 3],
                     "timestamp": str(1750000000 + b), "recipient_id": "16505551234"}
                    for i in range(PER_REQUEST)]
        doc = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {"messaging_product": "whatsapp",
                                            "statuses": statuses}}]}]}
        lines.append(f"bodies[{b + 1}] = [[{json.dumps(doc, separators=(',', ':'))}]]")
    lines.append(f"""
local counter = 0
request = function()
  counter = counter % {bodies} + 1
  return wrk.format(nil, nil, nil, bodies[counter])
end""")
    return "\n".join(lines)


def run() -> list[Row]:
    script = Path(tempfile.mkdtemp(prefix="campaignd-bench-cloud-")) / "cloud.lua"
    script.write_text(lua())
    with daemon() as d:
        create_campaign(d.url, MESSAGES, prefix="wamid.C")
        results = [wrk(f"{d.url}/webhooks/cloud", script, 5) for _ in range(2)]
    if any(r["non_2xx"] for r in results):
        raise RuntimeError("some Cloud API webhooks were not answered 2xx")
    rate = max(r["rps"] for r in results) * PER_REQUEST
    return [Row("batched Cloud API webhooks (100 statuses/request, durable)",
                f"{rate:,.0f} statuses/s", ">= 100,000 statuses/s", rate >= 100_000,
                {"requests_per_s": [r["rps"] for r in results]})]
