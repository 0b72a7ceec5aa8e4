"""The PostgreSQL backend's health check (config/postgresql/base.py): no round trip for a healthy
connection, and a connection the server closed is found unusable before a request uses it."""

import time

import pytest
from django.db import connection, connections


def last_statement_of(pid: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row[0] if row else ""


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_healthy_connection_is_checked_without_a_query_and_a_closed_one_is_unusable():
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT 'before the check'")
        pid = other.connection.info.backend_pid

        assert other.is_usable()
        assert last_statement_of(pid) == "SELECT 'before the check'"  # no SELECT 1 was sent

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while other.is_usable() and time.monotonic() < deadline:
            time.sleep(0.02)  # the server's goodbye reaches the socket a moment later
        assert not other.is_usable()

        # What a request does with a kept connection: it is checked, found closed, and replaced.
        other.close_if_unusable_or_obsolete()
        with other.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        other.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the request's autocommit mode
def test_a_request_whose_first_statements_are_pipelined_replaces_a_closed_connection():
    """The next task's first read rides in one pipeline with the token's: the connection is
    checked before the pipeline starts, as before a lone statement."""
    from labeling.prepared import Prepared, pipelined

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pid = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.02)

    connection.close_if_unusable_or_obsolete()  # what a request does first: the check is due
    with pipelined():
        first = Prepared(lambda: ("SELECT 1", [])).send()
        second = Prepared(lambda: ("SELECT 2", [])).send()
    assert (first(), second()) == ([(1,)], [(2,)])
    assert connection.connection.info.backend_pid != pid
