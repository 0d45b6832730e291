"""The SPEC's baseline: a bare aiohttp handler that parses the same JSON and answers 200."""

import sys

import orjson
from aiohttp import web


async def handler(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=b'{"ok":true}', content_type="application/json")


app = web.Application()
app.router.add_post("/webhooks/{source}", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
