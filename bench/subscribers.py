"""Many Pusher-protocol subscribers in one process, for the fan-out benchmark.

`python -m bench.subscribers URL UUID COUNT`: connects COUNT WebSockets to 127.0.0.1,
subscribes each to campaign.{UUID}, prints {"connected": n} when all are subscribed,
then reads {"delivered": N, "last_ack": t} from stdin and prints when each subscriber
first held statistics with that delivered count (the slowest, relative to last_ack).

When a frame ARRIVED is what counts: each subscriber keeps its last few statistics
frames with their arrival times (no JSON parsed while frames flow, so this process
keeps up), and the first of them holding the final count dates it. Until wave 6 a
subscriber that already held the count when told it was dated by the telling, which
added the load process's exit, an API call and this pipe to every figure
(`told_s` still reports that reading).

Since wave 13 each subscriber is a raw WebSocket reader on uvloop (`Reader`), not an
aiohttp client task: with 2,000 aiohttp clients this process fell up to a second behind
the daemon's writes on a loaded machine, and the figure counted that lag.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable

import uvloop

KEPT = 8  # statistics frames kept per subscriber (the final state is among the last)


class Subscriber:
    def __init__(self) -> None:
        self.frames: deque[tuple[float, bytes]] = deque(maxlen=KEPT)  # (arrived, raw)
        self.reached: float | None = None
        self.told: float | None = None
        self.target: int | None = None

    @property
    def last_raw(self) -> bytes:
        return self.frames[-1][1] if self.frames else b""

    def seen(self, raw: bytes) -> None:
        if b'"campaign.statistics.updated"' not in raw:
            return
        self.frames.append((time.time(), raw))
        if self.target is not None and self.reached is None and \
                _delivered(raw) >= self.target:
            self.reached = self.frames[-1][0]

    def aim(self, target: int) -> None:
        """The final count is known: date the first kept frame that holds it."""
        self.target = target
        for arrived, raw in self.frames:
            if _delivered(raw) >= target:
                self.reached = arrived
                self.told = time.time()
                return

    def _delivered(self) -> int:
        return _delivered(self.last_raw)


def _delivered(raw: bytes) -> int:
    msg = json.loads(raw)
    return int(json.loads(msg["data"])["statistics"]["total_delivered_count"])


class Reader(asyncio.Protocol):
    """One subscriber's socket, read as raw WebSocket frames.

    Why not aiohttp's client: with 2,000 of them in one process every push woke 2,000
    tasks, each through the reader, a queue and `receive()`, and on a loaded 2-core
    machine this process fell up to a second behind the daemon's writes (docs/
    BENCHMARKS.md, "Wave 13 (lead)"): that lag is the client's, not the daemon's. Here a
    push is one `data_received` per socket: the frame is cut out of the bytes (server
    frames are never masked or compressed: no extension is offered) and dated then."""

    def __init__(self, sub: Subscriber, request: bytes, uuid: str,
                 on_subscribed: Callable[[], None]) -> None:
        self.sub = sub
        self.request = request
        self.subscribe = json.dumps({"event": "pusher:subscribe",
                                     "data": {"channel": f"campaign.{uuid}"}}).encode()
        self.on_subscribed = on_subscribed
        self.buffer = bytearray()
        self.upgraded = False
        self.counted = False
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"no WebSocket upgrade: {bytes(buffer[:80])!r}")
            del buffer[:end + 4]
            self.upgraded = True
        while len(buffer) >= 2:
            head, size = buffer[0], buffer[1] & 0x7F
            start = 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + size:
                return
            if not head & 0x80:
                raise SystemExit("a fragmented frame: this reader does not join them")
            payload = bytes(buffer[start:start + size])
            del buffer[:start + size]
            self._frame(head & 0x0F, payload)

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 1:  # text
            if not self.counted:
                if b"connection_established" in payload:
                    self.send(0x1, self.subscribe)
                elif b"subscription_succeeded" in payload:
                    self.counted = True
                    self.on_subscribed()
            self.sub.seen(payload)
        elif opcode == 9:  # ping: answer with the same payload
            self.send(0xA, payload)
        elif opcode == 8 and self.transport is not None:  # close
            self.transport.close()

    def send(self, opcode: int, payload: bytes) -> None:
        """A client frame: masked, as RFC 6455 requires of clients."""
        assert self.transport is not None and len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)


def upgrade_request(host: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /app/campaignd-key?protocol=7&client=js HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


async def main(url: str, uuid: str, count: int) -> None:
    if not url.startswith("http://127.0.0.1"):
        raise SystemExit("127.0.0.1 only")
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].rstrip("/"))
    loop = asyncio.get_running_loop()
    subs = [Subscriber() for _ in range(count)]
    subscribed = asyncio.Event()
    pending = count

    def one_subscribed() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0:
            subscribed.set()

    readers: list[Reader] = []
    for i, sub in enumerate(subs):
        _, reader = await loop.create_connection(
            lambda sub=sub: Reader(sub, upgrade_request(host, port), uuid, one_subscribed),
            host, port)
        readers.append(reader)
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not open 2,000 sockets in one burst
    await asyncio.wait_for(subscribed.wait(), 120)
    print(json.dumps({"connected": count - pending}), flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    order = json.loads(line)
    target = order["delivered"]
    for sub in subs:
        sub.aim(target)
    deadline = time.time() + 30
    while time.time() < deadline and any(s.reached is None for s in subs):
        await asyncio.sleep(0.02)
    exact = [s for s in subs if s.reached is not None and s._delivered() == target]
    slowest = max((s.reached for s in subs if s.reached), default=time.time())
    told = max((s.told or s.reached or 0.0 for s in subs), default=time.time())
    print(json.dumps({"exact": len(exact), "all_exact": len(exact) == count,
                      "slowest_s": max(0.0, slowest - order["last_ack"]),
                      "told_s": max(0.0, told - order["last_ack"])}), flush=True)
    for reader in readers:
        if reader.transport is not None:
            reader.transport.close()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
