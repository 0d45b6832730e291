"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from actors.runtime import Runtime
from web.auth import Guard

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
GUARD: web.AppKey[Guard] = web.AppKey("guard")
# The state's recovery after a start, when the app listens before it (web/app.py).
RECOVERY: web.AppKey[asyncio.Task[None]] = web.AppKey("recovery")
# The webhook routes by path (web/webhooks.py), for the front that answers them (web/front.py).
WEBHOOK_ROUTES: web.AppKey[dict[bytes, Callable[[Any], Awaitable[web.StreamResponse]]]] = \
    web.AppKey("webhook_routes")
