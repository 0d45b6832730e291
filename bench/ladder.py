"""Workloads that keep changing state, as real traffic does, and what they must leave.

A ladder over `n` registered messages: request k raises some messages one level, and
message i reaches level L after the request that carries step `L * n + i`. Rounds go on
where the previous one stopped (`start`), so no request repeats an earlier one and
every answered request is work: the duplicate counter must stay at 0. After the rounds
the tail that wrk may have left in flight is posted again (idempotent), and the counters
must be exactly what the generated prefix implies (`expected`).

The same ladder feeds wrk (as a Lua script that builds request k) and the replay in
Python (the same events in bigger batches).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from bench.common import LUA_REPORT

CLOUD_HEAD = ('{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{'
              '"field":"messages","value":{"messaging_product":"whatsapp","statuses":[')
CLOUD_TAIL = "]}}]}]}"
STATS = ("total_delivered_count", "total_read_count", "total_played_count")


def lua_preamble(start: int, n: int, per_request: int | None = None, wrap: int = 0) -> str:
    """What every ladder's wrk script starts with: POSTs of JSON, the count of requests
    made (`generated`, which LUA_REPORT prints) and the ladder's position k of n (and p
    statuses or replies per request). `wrap` > 0: k goes back to 0 there (NEXT_K), for
    the bare handler, which keeps no state and on a quiet machine can outrun a ladder
    sized for the daemon."""
    batch = f"local p = {per_request}\n" if per_request is not None else ""
    return ('\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"generated = 0\nlocal k = {start}\nlocal n = {n}\nlocal wrap = {wrap}\n{batch}")


# The step to the next request in every ladder's script (see lua_preamble's `wrap`).
NEXT_K = "k = k + 1\n  if wrap > 0 and k >= wrap then k = 0 end"


def reached(total_steps: int, n: int, step: int, lo: int, hi: int) -> int:
    """Messages i in [lo, hi) whose step `step * n + i` is below `total_steps`."""
    return max(0, min(hi, total_steps - step * n) - lo)


@dataclass
class Split:
    """The ladder's messages split into campaigns of equal size (rows lo..hi-1)."""

    n: int
    parts: int = 1

    def ranges(self) -> list[tuple[int, int]]:
        size = self.n // self.parts
        return [(p * size, (p + 1) * size) for p in range(self.parts)]


class WebjsLadder:
    """Single-status webjs requests: step k is message k mod n at ack 2 + k div n
    (delivered, read, played: three visible levels per message, registered pending)."""

    ACKS = (2, 3, 4)

    def __init__(self, n: int, prefix: str = "M", parts: int = 1) -> None:
        self.n = n
        self.prefix = prefix
        self.split = Split(n, parts)

    @property
    def capacity(self) -> int:
        """Requests before the ladder runs out."""
        return self.n * len(self.ACKS)

    def event(self, k: int) -> dict[str, object]:
        return {"event": "message_status_updated", "data": {
            "workspace_id": 1, "session_id": "s1",
            "message_id": f"true_6281@c.us_{self.prefix}{k % self.n}",
            "status": "delivered", "ack_level": self.ACKS[k // self.n],
            "timestamp": 1763600000}}

    def body(self, k: int) -> bytes:
        return json.dumps(self.event(k), separators=(",", ":")).encode()

    def lua(self, start: int, wrap: int = 0) -> str:
        """Request k for k = start, start + 1, ...; past the ladder a body the daemon
        refuses (the row then fails on its non-2xx answer)."""
        return lua_preamble(start, self.n, wrap=wrap) + f"""\
request = function()
  local ack = 2 + math.floor(k / n)
  local body = '{{"event":"message_status_updated","data":{{"workspace_id":1,' ..
    '"session_id":"s1","message_id":"true_6281@c.us_{self.prefix}' .. (k % n) ..
    '","status":"delivered","ack_level":' .. ack .. ',"timestamp":1763600000}}}}'
  if ack > 4 then body = "{{" end
  {NEXT_K}
  generated = generated + 1
  return wrk.format(nil, nil, nil, body)
end
""" + LUA_REPORT

    def replay_bodies(self, steps: range, per_request: int = 1000) -> list[bytes]:
        """The steps again as webjs arrays (the tail wrk may have left in flight)."""
        steps = range(max(0, steps.start), min(self.capacity, steps.stop))
        return [json.dumps([self.event(k) for k in steps[i:i + per_request]],
                           separators=(",", ":")).encode()
                for i in range(0, len(steps), per_request)]

    def expected(self, steps: int) -> list[dict[str, int]]:
        """Per campaign: the delivered / read / played counts after `steps` steps."""
        return [{name: reached(steps, self.n, level, lo, hi)
                 for level, name in enumerate(STATS)}
                for lo, hi in self.split.ranges()]

    def signed_file(self, path: Path, secret: str) -> array[int]:
        """Every step as a line `<hex HMAC-SHA256> <body>`; the byte offset of each line."""
        offsets = array("Q")
        position = 0
        key = secret.encode()
        with path.open("wb") as out:
            for k in range(self.capacity):
                body = self.body(k)
                line = hmac.new(key, body, hashlib.sha256).hexdigest().encode() + b" " + \
                    body + b"\n"
                offsets.append(position)
                out.write(line)
                position += len(line)
        return offsets

    @staticmethod
    def signed_lua(path: Path, offset: int) -> str:
        """Lines of `signed_file` from a byte offset, with their X-Signature."""
        return f"""
wrk.method = "POST"
generated = 0
local bodies = io.open("{path}", "rb")
bodies:seek("set", {offset})
request = function()
  local line = bodies:read("*l")
  generated = generated + 1
  if line == nil then
    return wrk.format(nil, nil, {{["Content-Type"] = "application/json"}}, "{{")
  end
  local space = line:find(" ", 1, true)
  return wrk.format(nil, nil, {{["Content-Type"] = "application/json",
                               ["X-Signature"] = "sha256=" .. line:sub(1, space - 1)}},
                    line:sub(space + 1))
end
""" + LUA_REPORT


class CloudLadder:
    """Cloud API batches: request k carries steps k*p .. k*p + p - 1; step j is message
    j mod n with status sent, delivered, read for j div n = 0, 1, 2 (registered pending:
    three levels per message)."""

    STATUSES = ("sent", "delivered", "read")

    def __init__(self, n: int, prefix: str = "wamid.C", per_request: int = 100,
                 parts: int = 1, timestamp: int | None = None) -> None:
        if n % per_request:
            raise ValueError("n must be a multiple of the batch size")
        self.n = n
        self.prefix = prefix
        self.per_request = per_request
        self.split = Split(n, parts)
        # a time inside the messages' life: they are registered just before
        self.timestamp = timestamp or int(time.time())

    @property
    def capacity(self) -> int:
        """Requests before the ladder runs out."""
        return self.n * len(self.STATUSES) // self.per_request

    def status(self, j: int) -> dict[str, str]:
        return {"id": f"{self.prefix}{j % self.n}", "status": self.STATUSES[j // self.n],
                "timestamp": str(self.timestamp), "recipient_id": "16505551234"}

    def lua(self, start: int, wrap: int = 0) -> str:
        return lua_preamble(start, self.n, self.per_request, wrap=wrap) + f"""\
local names = {{"sent", "delivered", "read"}}
local head = '{CLOUD_HEAD}'
local tail = '{CLOUD_TAIL}'
request = function()
  local parts = {{}}
  local first = k * p
  local body
  if math.floor((first + p - 1) / n) > 2 then
    body = "{{"
  else
    for j = first, first + p - 1 do
      parts[#parts + 1] = '{{"id":"{self.prefix}' .. (j % n) .. '","status":"' ..
        names[math.floor(j / n) + 1] .. '","timestamp":"{self.timestamp}",' ..
        '"recipient_id":"16505551234"}}'
    end
    body = head .. table.concat(parts, ",") .. tail
  end
  {NEXT_K}
  generated = generated + 1
  return wrk.format(nil, nil, nil, body)
end
""" + LUA_REPORT

    def replay_bodies(self, requests: range, statuses_per_body: int = 1000) -> list[bytes]:
        first = max(0, requests.start) * self.per_request
        last = min(self.capacity, requests.stop) * self.per_request
        bodies = []
        for lo in range(first, last, statuses_per_body):
            statuses = [self.status(j) for j in range(lo, min(last, lo + statuses_per_body))]
            bodies.append(cloud_envelope({"statuses": statuses}))
        return bodies

    def expected(self, requests: int) -> list[dict[str, int]]:
        """Per campaign: the delivered / read counts after `requests` requests."""
        steps = requests * self.per_request
        return [{"total_delivered_count": reached(steps, self.n, 1, lo, hi),
                 "total_read_count": reached(steps, self.n, 2, lo, hi)}
                for lo, hi in self.split.ranges()]

    def expected_levels(self, requests: int) -> list[dict[int, int]]:
        """Per campaign: messages per stored level (1 pending .. 4 read)."""
        steps = requests * self.per_request
        out = []
        for lo, hi in self.split.ranges():
            at_least = [hi - lo, *(reached(steps, self.n, s, lo, hi) for s in range(3))]
            levels = {1 + i: at_least[i] - (at_least[i + 1] if i < 3 else 0)
                      for i in range(4)}
            out.append({level: count for level, count in levels.items() if count})
        return out


def cloud_envelope(value: dict[str, object]) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}]}]},
        separators=(",", ":")).encode()


class ReplyLadder:
    """Cloud API batches of text replies, each with its own id (never a duplicate):
    step j comes from message j mod n's number (bench.common.create_campaign: 62 + ten
    digits); every third quotes its message (explicit credit), the others are placed by
    their number within the reply window."""

    def __init__(self, n: int, prefix: str = "wamid.C", per_request: int = 100,
                 timestamp: int | None = None) -> None:
        self.n = n
        self.prefix = prefix
        self.per_request = per_request
        self.timestamp = timestamp or int(time.time())
        self.capacity = 10**9

    def item(self, j: int) -> dict[str, object]:
        i = j % self.n
        item: dict[str, object] = {"from": f"62{i:010d}", "id": f"wamid.IN{j}",
                                   "timestamp": str(self.timestamp), "type": "text",
                                   "text": {"body": "berapa harganya?"}}
        if j % 3 == 0:
            item["context"] = {"from": "15550783881", "id": f"{self.prefix}{i}"}
        return item

    def lua(self, start: int, wrap: int = 0) -> str:
        return lua_preamble(start, self.n, self.per_request, wrap=wrap) + f"""\
local head = '{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{' ..
  '"field":"messages","value":{{"messaging_product":"whatsapp",' ..
  '"contacts":[{{"wa_id":"16505551234"}}],"messages":['
local tail = ']}}}}]}}]}}'
request = function()
  local parts = {{}}
  for j = k * p, k * p + p - 1 do
    local i = j % n
    local context = ""
    if j % 3 == 0 then
      context = ',"context":{{"from":"15550783881","id":"{self.prefix}' .. i .. '"}}'
    end
    parts[#parts + 1] = '{{"from":"62' .. string.format("%010d", i) .. '","id":"wamid.IN' ..
      j .. '","timestamp":"{self.timestamp}","type":"text",' ..
      '"text":{{"body":"berapa harganya?"}}' .. context .. '}}'
  end
  {NEXT_K}
  generated = generated + 1
  return wrk.format(nil, nil, nil, head .. table.concat(parts, ",") .. tail)
end
""" + LUA_REPORT

    def replay_bodies(self, requests: range, items_per_body: int = 1000) -> list[bytes]:
        first, last = requests.start * self.per_request, requests.stop * self.per_request
        return [cloud_envelope({"contacts": [{"wa_id": "16505551234"}], "messages": [
            self.item(j) for j in range(lo, min(last, lo + items_per_body))]})
            for lo in range(first, last, items_per_body)]

    def expected(self, requests: int) -> list[dict[str, int]]:
        return []  # checked by the inbound counts (bench/inbound_batch.py)
