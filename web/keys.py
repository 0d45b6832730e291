"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from actors.runtime import Runtime
from web.auth import Guard

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
GUARD: web.AppKey[Guard] = web.AppKey("guard")
