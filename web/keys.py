"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

import asyncio

from aiohttp import web

from actors.runtime import Runtime
from web.auth import Guard

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
GUARD: web.AppKey[Guard] = web.AppKey("guard")
# The state's recovery after a start, when the app listens before it (web/app.py).
RECOVERY: web.AppKey[asyncio.Task[None]] = web.AppKey("recovery")
