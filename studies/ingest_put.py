"""The archive put of an instance, run beside the index work of its request.

At one instance per request most of a STOW's wall time was waiting: the
object's fsync, the fsync of its folder, then PostgreSQL's COMMIT, one after
the other. The put now runs in a worker thread while the request looks up
the index and writes its rows; ``studies.ingest`` waits for it before the
COMMIT, so a row is still never committed before its object is durable and
verified (size and SHA-256), and a failed put rolls the rows back.

The worker gets the object's bytes, not the received stream: the multipart
reader closes a part's stream as soon as the next part is asked for (or the
end of the body is found). Objects larger than ``IN_MEMORY_MAX`` are put in
the request's own thread as before, so the memory held stays bounded.
"""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from studies.archive import ArchiveError
from studies.archive.base import ArchiveStore, StoredObject
from studies.ingest_types import ReceivedFile

# Larger objects are written from their stream, in the request's thread.
IN_MEMORY_MAX = 16 * 1024 * 1024
# Puts are I/O (write, fsync) and SHA-256, both outside the GIL; a few threads
# serve every request of a threaded server, and a request waits for its own.
WORKERS = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="archive-put")
        return _pool


def _forget_pool_in_child() -> None:
    # A forked child (gunicorn, Celery prefork) has none of the parent's threads.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


class PendingPut:
    """An archive put under way (or already done); :meth:`wait` tells how it ended."""

    def __init__(
        self, future: Future[StoredObject] | None = None, error: ArchiveError | None = None
    ) -> None:
        self._future = future
        self._error = error

    def wait(self) -> ArchiveError | None:
        """Block until the object is durable and verified; return the archive's error, if any.

        Any other exception (a bug, not the archive) is raised here, as the put raised it.
        """
        if self._future is not None:
            try:
                self._future.result()
            except ArchiveError as exc:
                self._error = exc
            finally:
                self._future = None
        return self._error


def put_started(store: ArchiveStore, key: str, received: ReceivedFile) -> PendingPut:
    """Start putting ``received`` at ``key``; return at once unless the object is large."""
    received.stream.seek(0)
    if received.size > IN_MEMORY_MAX:
        try:
            store.put(key, received.stream, size=received.size, sha256=received.sha256)
        except ArchiveError as exc:
            return PendingPut(error=exc)
        return PendingPut()
    data = received.stream.read()
    future = _executor().submit(
        store.put, key, io.BytesIO(data), size=received.size, sha256=received.sha256
    )
    return PendingPut(future)
