"""Row 1: single-status webjs webhooks, 32 concurrent senders, durable, vs a bare handler;
and `store.synchronous` FULL against NORMAL (SPEC 10.2), and the signed variant.

Five servers are loaded by the same wrk (1 thread, 32 connections) in alternating
rounds: the bare handler (bench/bare_server.py: uvloop + orjson, as the daemon), a
daemon on NORMAL, one on FULL, one on the default with webhook signatures on, and one
on the default without the webhook front (web/front.py; `server.webhook_front = false`:
aiohttp's request cycle for every request), which shows what the front brings; and the
bare handler again under the signed rounds' own wrk script, for a second reading of
the signed ratio on the same load generator. Every
request raises one message one level (bench/ladder.py: delivered, read, played over
200,000 messages), each round includes the checkpoint of what it took, and the
counters are checked against what was sent (bench/rounds.py). Every other round runs
the servers in the reverse order, and each ratio is the median of the rounds' own
ratios (`paired_ratio`): FULL and NORMAL run next to each other in every round, so a
round's ratio sees one machine, where the ratio of two medians could mix rounds minutes
apart on this noisy machine. The ratio of the medians is kept in the details.
"""

from __future__ import annotations

import os
import shutil

from bench.common import Row, bare_server, create_campaign, daemon, scratch
from bench.ladder import WebjsLadder
from bench.rounds import Target, alternate, paired_ratio
from core.config import KEYS

MESSAGES = int(os.environ.get("BENCH_WEBJS_MESSAGES", "200000"))
# an even number, so that each order of the mirrored rounds runs as often
ROUNDS = int(os.environ.get("BENCH_WEBHOOK_ROUNDS", os.environ.get("BENCH_ROUNDS", "4")))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
SECRET = "bench-webjs-secret"
PATH = "/webhooks/webjs"


def run() -> list[Row]:
    folder = scratch("webhook")
    ladder = WebjsLadder(MESSAGES)
    offsets = ladder.signed_file(folder / "signed.txt", SECRET)
    default = KEYS["store.synchronous"].default
    with bare_server() as bare_url, \
            daemon(**{"store.synchronous": "NORMAL"}) as normal, \
            daemon(**{"store.synchronous": "FULL"}) as full, \
            daemon(**{"webhooks.webjs.secret": SECRET}) as signed, \
            daemon(**{"server.webhook_front": False}) as aiohttp_only:
        targets = [Target("bare", bare_url, PATH, ladder, folder)]
        for name, d in (("normal", normal), ("full", full), ("signed", signed),
                        ("aiohttp", aiohttp_only)):
            uuid = create_campaign(d.url, MESSAGES)
            targets.append(Target(name, d.url, PATH, ladder, folder, d, [uuid]))
        def signed_script(start: int) -> str:
            return WebjsLadder.signed_lua(folder / "signed.txt", offsets[start])

        targets[-2].secret = SECRET
        targets[-2].signed_lua = signed_script
        # The bare handler under the signed rounds' own script (wrk reads each body and
        # its signature from a file there): the same load generator for that ratio too.
        targets.append(Target("bare-signed", bare_url, PATH, ladder, folder,
                              signed_lua=signed_script))
        try:
            alternate(targets, ROUNDS, SECONDS, mirrored=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    bare, by_name = targets[0], {t.name: t for t in targets}
    ours = by_name[default.lower()]
    ratio = paired_ratio(ours, bare)
    full_ratio = paired_ratio(by_name["full"], by_name["normal"])
    signed = by_name["signed"]
    signed_ratio = paired_ratio(signed, bare)
    bare_signed = by_name["bare-signed"]
    signed_same_script = paired_ratio(signed, bare_signed)
    aiohttp_only = by_name["aiohttp"]
    aiohttp_ratio = paired_ratio(aiohttp_only, bare)

    def details(t: Target) -> dict[str, object]:
        return {"rates": t.rates, "checkpoint_s": t.flushes, **t.details,
                "ratio_of_medians_to_bare": t.median / bare.median}

    return [
        Row(f"webhook throughput (webjs, 32 senders, durable, {default})",
            f"{ours.median:,.0f} vs bare {bare.median:,.0f} req/s (medians):"
            f" {ratio:.0%} of bare by round",
            ">= 80% of bare", ratio >= 0.80,
            {"bare_rates": bare.rates, **details(ours), "ratio": ratio}),
        Row("  ... synchronous FULL vs NORMAL (SPEC 10.2)",
            f"FULL {by_name['full'].median:,.0f} vs NORMAL {by_name['normal'].median:,.0f}"
            f" req/s (medians): {full_ratio:.0%} by round", ">= 90% of NORMAL",
            full_ratio >= 0.90,
            {"full": details(by_name["full"]), "normal": details(by_name["normal"]),
             "ratio": full_ratio,
             "ratio_of_medians": by_name["full"].median / by_name["normal"].median}),
        Row(f"  ... with X-Signature HMAC checks on ({default})",
            f"{signed.median:,.0f} req/s (median): {signed_ratio:.0%} of bare by round"
            f" ({signed_same_script:.0%} of bare under the same signed script,"
            f" {bare_signed.median:,.0f} req/s)",
            ">= 80% of bare", signed_ratio >= 0.80,
            {**details(signed), "ratio": signed_ratio,
             "bare_signed_rates": bare_signed.rates,
             "ratio_to_bare_under_signed_script": signed_same_script}),
        Row(f"  ... without the webhook front ({default}, server.webhook_front = false)",
            f"{aiohttp_only.median:,.0f} req/s (median): {aiohttp_ratio:.0%} of bare by round;"
            f" the front {ours.median / aiohttp_only.median:.2f}x", "(aiohttp serves all)",
            None, {**details(aiohttp_only), "ratio": aiohttp_ratio}),
    ]
