"""The SPEC's baseline: a bare aiohttp handler that parses the same JSON and answers 200.

On equal terms with the daemon (SPEC 4): the same event loop implementation (uvloop, as
`campaignd serve` runs it, daemon/serve.py), the same JSON library (orjson), the same
aiohttp server without an access log, and the same answer as a webhook's.
"""

import asyncio
import sys

import orjson
import uvloop
from aiohttp import web


async def handler(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=b'{"ok":true,"events":1}', content_type="application/json")


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/webhooks/{source}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()  # until SIGTERM


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
