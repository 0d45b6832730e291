"""JSON errors: `{"error": {"code", "message", "field"?}}` for every refusal.

The middleware turns aiohttp's own refusals (404, 405, 413) and storage failures (503
with Retry-After) into the same shape, and logs anything unexpected without leaking it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

from core.aio import Busy
from store.db import StoreUnavailable

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json", headers=headers)


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return json_response({"error": error}, status=status, headers=headers)


HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        return error_answer(request, exc)


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The JSON answer to an exception a handler raised (re-raised when it is not ours
    to answer: a redirect, a WebSocket upgrade, a client that went away)."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
    if isinstance(exc, StoreUnavailable):
        return error_response(
            503, "storage_unavailable",
            f"storage is unavailable ({exc}); nothing was stored, retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, Busy):
        return error_response(503, "busy", f"{exc}; retry later",
                              headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, "body_too_large",
                              f"the body is larger than the limit ({exc.text})")
    if isinstance(exc, web.HTTPException):
        if exc.status < 400 or exc.status == 101:
            raise exc
        code = HTTP_CODES.get(exc.status, "http_error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, code, exc.reason or code, headers=headers)
    if isinstance(exc, (ConnectionResetError, TimeoutError)):
        log.info("http.client_gone", path=request.path, error=str(exc))
        raise exc
    log.exception("http.unhandled", path=request.path, method=request.method, exc_info=exc)
    return error_response(500, "internal_error", "an internal error occurred; it is logged")
