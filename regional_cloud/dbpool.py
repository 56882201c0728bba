"""Give a pooled database connection back when the thread holding it ends.

Django returns a pooled connection to psycopg's pool when it closes it: at the
end of every request (CONN_MAX_AGE is 0) and after every
``database_sync_to_async`` call. A thread that ends without closing — an
executor's worker, a test's helper thread, the consultation consumer's posting
threads when their event loop shuts down — would otherwise keep its connection
checked out forever: the pool counts it as busy, and after ``pool_max_size``
such threads every request waits ``pool_timeout`` and fails.

So each pooled connection gets a guard in a thread-local slot. The slot is
freed the moment its thread ends (thread-local storage holds no cycles), and
the guard's finalizer hands the connection back — unless the wrapper has closed
it by then. A thread's next connection detaches its previous guard.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)
_guards = threading.local()


class _Guard:
    """Lives in the thread-local slot; its finalizer runs when the thread ends."""


def guard_pooled_connection(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: watch the new connection if it came from a pool."""
    if getattr(connection, "pool", None) is None or connection.connection is None:
        return
    # The thread's earlier guard for this alias is spent: its connection was
    # closed before this one was opened. Detach it rather than let it fire: the
    # pool often hands the same connection back, and firing would take it away.
    earlier = getattr(_guards, connection.alias, None)
    if earlier is not None:
        earlier[1].detach()
    guard = _Guard()
    finalizer = weakref.finalize(guard, _give_back, connection, connection.connection)
    setattr(_guards, connection.alias, (guard, finalizer))


def _give_back(wrapper: Any, raw: Any) -> None:
    if wrapper.connection is not raw:
        return  # closed (returned) already, or replaced
    wrapper.connection = None
    try:
        raw._pool.putconn(raw)  # rolls back an open transaction, or discards a broken one
    except Exception:  # a finalizer must not raise; the pool replaces what it lost
        logger.warning("could not return a pooled connection of an ended thread", exc_info=True)
