"""Stream synchronous response bodies under ASGI instead of gathering them first.

Django's ASGI handler reads a ``StreamingHttpResponse`` built on a synchronous
iterator (every WADO-RS retrieval, frames, streamed JSON, file downloads) into
one list before it sends a byte (``sync_to_async(list)`` in
``StreamingHttpResponse.__aiter__``): a whole series in memory, and the first
byte only after the last was read. :class:`StreamingASGIHandler` gives such a
response an asynchronous iterator instead, which advances the synchronous one
in the request's own thread (``thread_sensitive``: the thread that ran the
view, so a generator that reads the database keeps its connection) about a
megabyte at a time, so the thread hop costs little per byte.

Production serves HTTP through gunicorn (WSGI), which streams synchronous
iterators as they are; this keeps the demo's daphne honest too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpResponseBase, StreamingHttpResponse

BATCH_BYTES = 1024 * 1024


def iterate_in_thread(
    chunks: Iterable[bytes], *, batch_bytes: int = BATCH_BYTES
) -> AsyncIterator[bytes]:
    """Return an async iterator over ``chunks``, pulled in ~``batch_bytes`` batches."""
    iterator = iter(chunks)

    def pull() -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        for chunk in iterator:
            batch.append(chunk)
            size += len(chunk)
            if size >= batch_bytes:
                break
        return batch

    async def generate() -> AsyncIterator[bytes]:
        try:
            while batch := await sync_to_async(pull)():
                for chunk in batch:
                    yield chunk
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                await sync_to_async(close)()

    return generate()


class StreamingASGIHandler(ASGIHandler):
    """Django's ASGI handler, streaming synchronous iterators (see the module's docstring)."""

    # Messages handed to the server: the default 64 kB slices every megabyte into 16.
    chunk_size = BATCH_BYTES

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            content: Iterator[bytes] = response.streaming_content  # type: ignore[assignment]
            response.streaming_content = iterate_in_thread(content)
        await super().send_response(response, send)
