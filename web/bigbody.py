"""Large webhook bodies with flat memory (SPEC 6.1): the seed's whatsapp-service posts
a `message_received` with its media inline (`media.data`, base64, megabytes), and we
need none of it.

The body is read in chunks as it arrives. Each chunk goes to the signature check (an
incremental HMAC: the signature covers the raw bytes) and to `LongStringFilter`, which
copies the JSON text but replaces every string longer than `max_string` bytes with an
empty string. What is left (ids, numbers, the text, a few hundred bytes) is parsed as
usual; the media is never held whole, stored, decoded or journaled. Memory per request
is one chunk plus one string of up to `max_string` bytes, whatever the body's size.
"""

from __future__ import annotations

import re

from aiohttp import web

from web.auth import StreamCheck

CHUNK = 64 * 1024
MAX_STRING = 256 * 1024  # WhatsApp texts are at most 4096 characters; captions shorter
# Inside a JSON string: runs of ordinary bytes or escape pairs, up to a quote, a lone
# trailing backslash or the end of the chunk (C speed over megabytes of base64).
STRING_RUN = re.compile(rb'(?:[^"\\]+|\\.)*', re.DOTALL)
QUOTE, BACKSLASH = 0x22, 0x5C


class BodyTooLarge(Exception):
    pass


class LongStringFilter:
    """A JSON text copied chunk by chunk with its long strings emptied.

    Strings are recognised exactly (escaped quotes included, across chunk boundaries);
    a string over `max_string` bytes becomes `""`. The output is valid JSON when the
    input is, and invalid (refused by the parser with a 400) when it is not. Output
    beyond `max_output` bytes raises `BodyTooLarge`: a body may be huge only in strings.
    """

    def __init__(self, max_string: int = MAX_STRING, max_output: int = 1024 * 1024) -> None:
        self.max_string = max_string
        self.max_output = max_output
        self.out = bytearray()
        self.dropped = 0  # strings emptied
        self._in_string = False
        self._escape = False
        self._string = bytearray()
        self._dropping = False

    def feed(self, chunk: bytes) -> None:
        i, n = 0, len(chunk)
        while i < n:
            if not self._in_string:
                j = chunk.find(b'"', i)
                if j < 0:
                    self._emit(chunk[i:])
                    return
                self._emit(chunk[i:j + 1])
                self._in_string, self._dropping = True, False
                self._string.clear()
                i = j + 1
                continue
            if self._escape:  # the byte after a backslash that ended the last chunk
                self._keep(chunk[i:i + 1])
                self._escape = False
                i += 1
                continue
            end = STRING_RUN.match(chunk, i).end()  # type: ignore[union-attr]
            self._keep(chunk[i:end])
            i = end
            if i >= n:
                return
            if chunk[i] == BACKSLASH:  # a backslash whose pair is in the next chunk
                self._keep(b"\\")
                self._escape = True
                i += 1
                continue
            # the closing quote
            if self._dropping:
                self.dropped += 1
            else:
                self._emit(self._string)
            self._emit(b'"')
            self._in_string = False
            i += 1

    def _keep(self, data: bytes) -> None:
        if self._dropping:
            return
        self._string += data
        if len(self._string) > self.max_string:
            self._dropping = True
            self._string = bytearray()

    def _emit(self, data: bytes | bytearray) -> None:
        self.out += data
        if len(self.out) > self.max_output:
            raise BodyTooLarge(f"more than {self.max_output} bytes outside long strings")

    def result(self) -> bytes:
        if self._in_string:
            self.out += b'"'  # an unterminated string: the parser refuses what follows
        return bytes(self.out)


async def read_streamed(request: web.Request, check: StreamCheck, limit: int,
                        max_output: int) -> tuple[bytes, int]:
    """The body with its long strings emptied, and how many were; the signature fed on
    the way. Raises HTTPRequestEntityTooLarge past `limit` (answered 413)."""
    text = LongStringFilter(max_output=max_output)
    size = 0
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
            check.update(chunk)
            text.feed(chunk)
    except BodyTooLarge:
        raise web.HTTPRequestEntityTooLarge(max_size=max_output, actual_size=size) from None
    return text.result(), text.dropped
