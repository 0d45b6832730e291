"""Median and p90 time-to-deliver and time-to-read (docs/live.md) against values worked
out by hand on constructed data.

Both durations are measured from the message's sent time (the gateway's acceptance,
level pending or above); a `read` without a `delivered` also delivers at its own time.
The campaign actor keeps the durations in log-spaced buckets ~10 % wide, so the figures
are the nearest-rank values to within 5 %. The data is chosen so that every plausible
wrong definition (from registration, read from delivered, the upper or mean middle)
lands outside that band.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tests.conftest import Daemon

# row: (sent after T, seconds to delivered or None, seconds to read or None), from sent
ROWS = [
    (0, 1, 10), (100, 2, 20), (200, 3, 30), (300, 4, 40), (400, 5, 50), (500, 20, 300),
    (600, 30, 400), (700, 40, 500), (800, 50, 600), (900, 60, 700),
    (1000, None, 70),  # read, never reported delivered: delivered at the read, 70 s
]
# By hand, 11 durations each (nearest rank: median the 6th, p90 the 10th smallest):
#   deliver: 1 2 3 4 5 20 30 40 50 60 70           -> median 20, p90 60
#   read:    10 20 30 40 50 70 300 400 500 600 700 -> median 70, p90 600
EXPECTED = {"time_to_deliver": {"median": 20.0, "p90": 60.0},
            "time_to_read": {"median": 70.0, "p90": 600.0}}


def statuses(t0: int) -> list[dict[str, Any]]:
    out = []
    for i, (sent, deliver, read) in enumerate(ROWS):
        mid = f"wamid.LAT{i}"
        out.append((mid, "sent", t0 + sent))
        if deliver is not None:
            out.append((mid, "delivered", t0 + sent + deliver))
        if read is not None:
            out.append((mid, "read", t0 + sent + read))
    out += [("wamid.LATSENT", "sent", t0 + 5),  # sent only: in neither figure
            ("wamid.LATFAIL", "failed", t0 + 9)]  # failed: in neither
    random.Random(5).shuffle(out)  # order never matters
    return [{"id": mid, "status": name, "timestamp": str(at), "recipient_id": "6281200000000",
             **({"errors": [{"code": 131049, "title": "not delivered"}]}
                if name == "failed" else {})}
            for mid, name, at in out]


def close_to(got: dict[str, Any], expected: dict[str, dict[str, float]]) -> bool:
    return all(got[k][q] is not None and abs(got[k][q] - v) <= 0.05 * v + 0.01
               for k, figures in expected.items() for q, v in figures.items())


async def test_median_and_p90_match_hand_computed_values(daemon_factory: Any) -> None:
    daemon: Daemon = await daemon_factory()
    campaign = await daemon.create_campaign()
    uuid = campaign["uuid"]
    ids = [f"wamid.LAT{i}" for i in range(len(ROWS))] + ["wamid.LATSENT", "wamid.LATFAIL",
                                                         "wamid.LATQUEUED"]
    await daemon.register(uuid, [{"recipient": "6281200000000", "message_id": m} for m in ids])
    stats = await daemon.stats(uuid)
    assert stats["time_to_deliver"] == {"median": None, "p90": None}
    assert stats["time_to_read"] == {"median": None, "p90": None}

    t0 = int(time.time()) - 10_000  # before the registration: it must not matter
    status, body = await daemon.post_json("/webhooks/cloud", {
        "object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {"messaging_product": "whatsapp",
                                            "statuses": statuses(t0)}}]}]})
    assert status == 200, body
    stats = await daemon.stats(uuid)
    assert (stats["total_delivered_count"], stats["total_read_count"],
            stats["total_failed_count"]) == (11, 11, 1)
    got = {k: stats[k] for k in EXPECTED}
    assert close_to(got, EXPECTED), got

    # The same figures when the campaign is loaded from SQLite after a restart (another
    # code path: the shares are counted over columns there).
    await daemon.session.close()
    await daemon.server.close()
    again = await daemon_factory()
    stats = await again.stats(uuid)
    assert {k: stats[k] for k in EXPECTED} == got
