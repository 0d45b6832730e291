"""CSV downloads streamed page by page (contacts, suppressions): the whole list is never
held in memory, and the first bytes leave before the last page is read."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from aiohttp import web


async def stream_csv(request: web.Request, filename: str, header: Sequence[str],
                     pages: AsyncIterator[Iterable[Sequence[Any]]]) -> web.StreamResponse:
    """Send `header`, then every page's rows as they come. Each value is written as
    given: the caller makes it spreadsheet-safe (its own columns know what may start
    with a formula character)."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    out = io.StringIO()
    csv.writer(out).writerow(header)
    async for rows in pages:
        csv.writer(out).writerows(rows)
        await response.write(out.getvalue().encode())
        out = io.StringIO()
    if out.tell():  # no page at all: the header alone
        await response.write(out.getvalue().encode())
    await response.write_eof()
    return response
