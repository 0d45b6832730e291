"""SPEC 6.1: a whatsapp-web.js `message_received` with tens of megabytes of inline media
is accepted with flat memory, and its media is never stored or decoded.

The filter that reads past long strings is checked against a plain JSON parse over
random documents cut at random places; a real daemon process then takes several 32 MiB
bodies (signed, chunked and with a Content-Length) while its resident memory is read
from /proc, and the journal is searched for the media.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.examples import examples
from tests.proc import write_config
from tests.reliability_helpers import call, start, terminate
from web.bigbody import LongStringFilter

MIB = 1024 * 1024
SECRET = "media-test-secret"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40)
    | st.text(min_size=300, max_size=600),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def emptied(value: Any, limit: int, ascii_only: bool) -> Any:
    """What the filter should make of a document: strings longer than `limit` bytes as
    written in the body (escapes included, UTF-8 when not `ascii_only`) become ""."""
    def long(text: str) -> bool:
        return len(json.dumps(text, ensure_ascii=ascii_only).encode()) - 2 > limit

    if isinstance(value, str):
        return "" if long(value) else value
    if isinstance(value, list):
        return [emptied(v, limit, ascii_only) for v in value]
    if isinstance(value, dict):
        return {"" if long(k) else k: emptied(v, limit, ascii_only) for k, v in value.items()}
    return value


@settings(max_examples=examples(300), deadline=None)
@given(doc=json_values, cuts=st.lists(st.integers(1, 64), max_size=40),
       ascii_only=st.booleans())
# 129 bytes as UTF-8, 201 with \u escapes: kept (the oracle once measured the escaped form)
@example(doc="0" * 9 + "\x1f" * 13 + "\x07" + "\U00010000" * 9, cuts=[], ascii_only=False)
def test_long_strings_are_emptied_wherever_the_chunks_are_cut(doc, cuts, ascii_only):
    text = json.dumps(doc, ensure_ascii=ascii_only).encode()
    limit = 200
    filt = LongStringFilter(max_string=limit)
    i = 0
    for cut in cuts:
        filt.feed(text[i:i + cut])
        i += cut
    filt.feed(text[i:])
    assert json.loads(filt.result()) == emptied(doc, limit, ascii_only)


def test_escaped_quotes_and_backslashes_across_chunks():
    doc = {"a": 'x\\"y' * 100, "b": "k\\", "media": {"data": "QUJD" * 1000}}
    text = json.dumps(doc).encode()
    for size in (1, 2, 3, 7, 64):
        filt = LongStringFilter(max_string=1000)
        for i in range(0, len(text), size):
            filt.feed(text[i:i + size])
        assert json.loads(filt.result()) == {"a": doc["a"], "b": "k\\", "media": {"data": ""}}
        assert filt.dropped == 1


# --- a real daemon -------------------------------------------------------------------


def rss(pid: int) -> tuple[int, int]:
    """(resident, peak resident) bytes of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def media_message(n: int, size: int) -> tuple[bytes, bytes, bytes]:
    """A message_received with `size` bytes of base64 media: (head, media chunk, tail);
    the body is head + chunk * k + tail."""
    head = json.dumps({"event": "message_received", "data": {
        "workspace_id": 1, "session_id": "webjs_1",
        "message": {"id": f"false_6281200000001@c.us_3EB0MEDIA{n:010d}",
                    "from": "6281200000001@c.us", "to": "6285100000001@c.us",
                    "body": "bukti transfer", "timestamp": int(time.time()) + 1, "from_me": False,
                    "type": "image", "has_media": True, "chat_type": "private",
                    "media": {"mimetype": "image/jpeg", "filename": "x.jpg",
                              "data": "@@"}}}}).encode()
    before, after = head.split(b"@@")
    chunk = base64.b64encode(bytes(range(256)) * (3 * 1024))  # 1 MiB of base64
    assert len(chunk) == MIB
    return before, chunk, after


async def post_media(session: aiohttp.ClientSession, url: str, n: int, mib: int,
                     chunked: bool, secret: str = SECRET) -> tuple[int, Any]:
    head, chunk, tail = media_message(n, mib)
    mac = hmac.new(secret.encode(), digestmod="sha256")
    for part in (head, *([chunk] * mib), tail):
        mac.update(part)
    headers = {"Content-Type": "application/json",
               "X-Signature": "sha256=" + mac.hexdigest()}

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(mib):
            yield chunk
        yield tail

    data: Any = body() if chunked else head + chunk * mib + tail
    return await call(session, "POST", f"{url}/webhooks/webjs", data=data, headers=headers)


async def test_32_mib_media_bodies_keep_memory_flat(tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"webhooks.webjs.secret": SECRET,
                                       "store.checkpoint_interval": 0.2})
    daemon = await start(config)
    try:
        async with aiohttp.ClientSession() as session:
            url = daemon.url
            status, body = await call(session, "POST", f"{url}/api/campaigns", json={
                "workspace_id": 1, "name": "media", "uuid": "media"})
            assert status == 201, body
            status, _ = await call(session, "POST", f"{url}/api/campaigns/media/messages",
                                   json={"messages": [{"recipient": "6281200000001",
                                                       "message_id": "MEDIA-CAMPAIGN-1"}]})
            assert status == 201
            # warm up: the first request of each kind allocates what it keeps anyway
            assert (await post_media(session, url, 0, 1, chunked=True))[0] == 200
            assert (await post_media(session, url, 1, 1, chunked=False))[0] == 200
            await asyncio.sleep(0.5)
            resident_before, peak_before = rss(daemon.proc.pid)
            for n, chunked in ((2, True), (3, False), (4, True)):
                status, body = await post_media(session, url, n, 31, chunked)  # ~31 MiB bodies
                assert status == 200, body
                assert body["events"] == 1
            resident_after, peak_after = rss(daemon.proc.pid)
            # A body read whole would raise the peak by 32 MiB at least (64 with its
            # decoded string); streamed past, the daemon holds a chunk at a time.
            assert peak_after - peak_before < 12 * MIB, (peak_before, peak_after)
            assert resident_after - resident_before < 12 * MIB
            # the replies count (they are replies to the campaign message)

            async def replied() -> bool:
                status, doc = await call(session, "GET", f"{url}/api/campaigns/media")
                return doc["campaign"]["statistics"]["total_replied_count"] == 1

            for _ in range(100):
                if await replied():
                    break
                await asyncio.sleep(0.05)
            assert await replied()
            # bigger than webhooks.max_inbound_bytes (32 MiB): 413, nothing applied
            status, body = await post_media(session, url, 5, 33, chunked=True)
            assert status == 413, body
            # a wrong signature over a streamed body: 401
            status, body = await post_media(session, url, 6, 2, chunked=True, secret="wrong")
            assert status == 401, body
    finally:
        assert await terminate(daemon) == 0
    # the media was never stored: not in the journal, not in the inbound table
    db = sqlite3.connect(tmp_path / "campaignd.sqlite3")
    chunk = media_message(0, 1)[1][:64]
    for (blob,) in db.execute("SELECT events FROM journal"):
        assert chunk not in blob
    stored = db.execute("SELECT COUNT(*), MAX(LENGTH(COALESCE(body, ''))) FROM inbound"
                        ).fetchone()
    assert stored[0] >= 1 and stored[1] == 0  # no text kept (keep_reply_text is off)


async def test_streamed_bodies_take_the_seeds_signature_and_relay_without_media(
        daemon_factory: Any) -> None:
    """The seed's own scheme (X-Timestamp + X-HMAC-Signature over timestamp + body) is
    checked over a streamed body too; what is relayed to the app behind (forward_to) is
    the body as campaignd kept it: the media blanked, signed again for the app."""
    from tests.conftest import eventually
    from tests.fakes.seed import FakeLaravel, seed_headers

    seed_secret = "seed-hmac-secret-0123456789"
    app = await FakeLaravel(secret="laravel-side-secret").start()
    try:
        daemon = await daemon_factory(**{
            "webhooks.webjs.secret": seed_secret,
            "webhooks.webjs.forward_to": app.webhook_url,
            "webhooks.webjs.forward_secret": app.secret, "webhooks.forward_retry_max": 0.2})
        head, chunk, tail = media_message(7, 2)
        body = head + chunk * 2 + tail  # 2 MiB with a Content-Length: streamed
        status, answer = await daemon.request("POST", "/webhooks/webjs", data=body,
                                              headers=seed_headers(seed_secret, body))
        assert (status, answer["events"]) == (200, 1), answer
        for headers, code in ((seed_headers("wrong", body), "bad_signature"),
                              (seed_headers(seed_secret, body, int(time.time()) - 3600),
                               "stale_timestamp")):
            status, answer = await daemon.request("POST", "/webhooks/webjs", data=body,
                                                  headers=headers)
            assert (status, answer["error"]["code"]) == (401, code), answer

        async def relayed() -> Any:
            return app.received or None

        [copy] = await eventually(relayed)
        doc = json.loads(copy.body)
        assert doc["data"]["message"]["media"]["data"] == ""  # never passed on either
        assert doc["data"]["message"]["id"].endswith("3EB0MEDIA0000000007")
        assert len(copy.body) < 2048
    finally:
        await app.stop()
