"""The database connection pool: sized from DATABASE_URL, and never drained by ended threads."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections


def checked_out(pool) -> int:
    stats = pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


@pytest.mark.django_db(transaction=True)
def test_the_tests_run_on_the_pool_production_uses() -> None:
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    assert connection.pool is not None
    assert connection.pool.max_size >= 8


@pytest.mark.django_db(transaction=True)
def test_a_thread_that_ends_without_closing_gives_its_connection_back() -> None:
    pool = connection.pool
    connection.close()  # the test's own thread holds nothing either
    errors: list[BaseException] = []

    def query_and_leave() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1")
            # No close(): the thread ends holding its connection, as executor threads do.
        except BaseException as exc:
            errors.append(exc)

    # More threads than the pool has connections: without the guard the ones past
    # max_size would wait pool_timeout and fail.
    for _ in range(pool.max_size + 3):
        thread = threading.Thread(target=query_and_leave)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive()
    assert errors == []
    deadline = time.monotonic() + 5
    while checked_out(pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checked_out(pool) == 0


@pytest.mark.django_db(transaction=True)
def test_a_connection_left_inside_a_transaction_comes_back_rolled_back() -> None:
    from hospitals.models import Region

    pool = connection.pool
    connection.close()

    def write_and_leave() -> None:
        conn = connections["default"]
        conn.set_autocommit(False)
        Region.objects.create(name="never committed", code="nc")

    thread = threading.Thread(target=write_and_leave)
    thread.start()
    thread.join(timeout=20)
    deadline = time.monotonic() + 5
    while checked_out(pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checked_out(pool) == 0
    assert not Region.objects.filter(code="nc").exists()


@pytest.mark.django_db(transaction=True)
def test_a_thread_that_gets_the_same_pooled_connection_again_keeps_it() -> None:
    """The pool hands a returned connection out again, often to the thread that returned it."""
    pool = connection.pool
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the pool is open
    connection.close()
    held = []  # take every idle connection but one, so the same one keeps coming back
    while pool.get_stats()["pool_available"] > 1:
        held.append(pool.getconn())
    try:
        raws = []
        for _ in range(5):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
            raws.append(connection.connection)
            connection.close()
        assert all(raw is raws[0] for raw in raws)
    finally:
        for raw in held:
            pool.putconn(raw)
