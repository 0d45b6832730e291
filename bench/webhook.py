"""Row 1: single-status webjs webhooks, 32 concurrent senders, durable, vs a bare handler.

Both servers are loaded by the same wrk (1 thread, 32 connections) in alternating
rounds; the figure is the ratio of the medians. Then again with webhook signatures on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import tempfile
from pathlib import Path

from bench.common import Row, create_campaign, daemon, free_port, median, process, wrk

MESSAGES = 10_000
ROUNDS = 3
SECONDS = 5
SECRET = "bench-webjs-secret"

UNSIGNED_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"event":"message_status_updated","data":{"workspace_id":1,' ..
    '"session_id":"s1","message_id":"true_6281@c.us_M' .. (counter % %(n)d) ..
    '","status":"delivered","ack_level":' .. (1 + counter %% 3) .. ',"timestamp":1763600000}}'
  return wrk.format(nil, nil, nil, body)
end
"""


def body(i: int) -> str:
    return json.dumps({"event": "message_status_updated", "data": {
        "workspace_id": 1, "session_id": "s1", "message_id": f"true_6281@c.us_M{i % MESSAGES}",
        "status": "delivered", "ack_level": 1 + i % 3, "timestamp": 1763600000}},
        separators=(",", ":"))


def signed_lua(count: int = 3000) -> str:
    """wrk's Lua has no HMAC: precompute signed bodies and cycle through them."""
    lines = ["wrk.method = 'POST'", "local bodies = {}", "local sigs = {}"]
    for i in range(count):
        b = body(i)
        sig = hmac.new(SECRET.encode(), b.encode(), hashlib.sha256).hexdigest()
        lines.append(f"bodies[{i + 1}] = [[{b}]]; sigs[{i + 1}] = 'sha256={sig}'")
    lines.append(f"""
local counter = 0
request = function()
  counter = counter % {count} + 1
  return wrk.format(nil, nil, {{["Content-Type"] = "application/json",
                               ["X-Signature"] = sigs[counter]}}, bodies[counter])
end""")
    return "\n".join(lines)


def measure(bare_url: str, daemon_url: str, script: Path) -> tuple[float, float, float]:
    bare, ours, errors = [], [], 0.0
    for _ in range(ROUNDS):
        bare.append(wrk(f"{bare_url}/webhooks/webjs", script, SECONDS)["rps"])
        result = wrk(f"{daemon_url}/webhooks/webjs", script, SECONDS)
        ours.append(result["rps"])
        errors += result["non_2xx"]
    if errors:
        raise RuntimeError(f"{errors:.0f} webhook requests were not answered 2xx")
    return median(bare), median(ours), median(ours) / median(bare)


def run() -> list[Row]:
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="campaignd-bench-wrk-"))
    unsigned = folder / "unsigned.lua"
    unsigned.write_text(UNSIGNED_LUA.replace("%(n)d", str(MESSAGES)).replace("%%", "%"))
    signed = folder / "signed.lua"
    signed.write_text(signed_lua())
    port = free_port()
    with process([sys.executable, "-m", "bench.bare_server", str(port)], port):
        bare_url = f"http://127.0.0.1:{port}"
        variants = (("webhook throughput (webjs, 32 senders, durable)", {}, unsigned),
                    ("  ... with X-Signature HMAC checks on",
                     {"webhooks.webjs.secret": SECRET}, signed))
        for name, settings, script in variants:
            with daemon(**settings) as d:
                create_campaign(d.url, MESSAGES)
                bare, ours, ratio = measure(bare_url, d.url, script)
            rows.append(Row(name, f"{ours:,.0f} req/s = {ratio:.0%} of bare {bare:,.0f} req/s",
                            ">= 70% of bare", ratio >= 0.70,
                            {"bare_rps": bare, "daemon_rps": ours, "ratio": ratio}))
    return rows
