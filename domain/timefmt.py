"""Timestamps as the API and the WebSocket show them: ISO 8601, UTC, milliseconds."""

from __future__ import annotations

import time


def iso_time(ts: float | None) -> str | None:
    if not ts:
        return None
    millis = round(ts * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"
