"""The SQLite backend's queue for the write lock (config/sqlite3/base.py): the writers of a process
take turns, the writers of other processes are held off by the file lock, a writer that waits past
its timeout is told the database is locked (answered 503), and every way a transaction ends lets
the next writer in. Each test makes its own database file, whatever the default database is."""

import fcntl
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError
from django.db.utils import ConnectionHandler

from config.sqlite3.base import lock_file_name, process_lock
from web.api_errors import is_database_busy


def wrapper(path, timeout: float):
    """A connection of the backend to the file `path`, as settings would make it."""
    options = {"transaction_mode": "IMMEDIATE", "timeout": timeout}
    handler = ConnectionHandler(
        {"default": {"ENGINE": "config.sqlite3", "NAME": str(path), "OPTIONS": options}}
    )
    return handler["default"]


def begin(connection) -> None:
    """What transaction.atomic() does first on SQLite."""
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


def commit(connection) -> None:
    connection.commit()
    connection.set_autocommit(True)


def rollback(connection) -> None:
    connection.rollback()
    connection.set_autocommit(True)


@pytest.fixture(autouse=True)
def own_database_files(django_db_blocker):
    # These connections are to files of the tests' own, never the test database.
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "writers.sqlite3"
    first = wrapper(path, 5)
    with first.cursor() as cursor:
        cursor.execute("CREATE TABLE counter (n INTEGER)")
        cursor.execute("INSERT INTO counter VALUES (0)")
    first.close()
    return path


def in_thread(work):
    """Run `work()` in a new thread (a connection belongs to the thread that made it)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


def test_a_writer_waiting_past_its_timeout_is_told_the_database_is_locked(database):
    holder = wrapper(database, 5)
    begin(holder)
    try:

        def try_to_write():
            waiter = wrapper(database, 0.2)
            try:
                begin(waiter)
            finally:
                waiter.close()

        with pytest.raises(OperationalError) as refused:
            in_thread(try_to_write)
        assert is_database_busy(refused.value)  # answered 503 with Retry-After
        assert "database is locked" in str(refused.value)
    finally:
        rollback(holder)
        holder.close()


def test_the_writers_of_one_process_take_turns_and_none_is_lost(database):
    def add_one(times: int):
        connection = wrapper(database, 20)
        try:
            for _ in range(times):
                begin(connection)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT n FROM counter")
                    (n,) = cursor.fetchone()
                    cursor.execute("UPDATE counter SET n = %s", [n + 1])
                commit(connection)
        finally:
            connection.close()

    threads = [threading.Thread(target=add_one, args=(25,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    reader = wrapper(database, 5)
    with reader.cursor() as cursor:
        cursor.execute("SELECT n FROM counter")
        assert cursor.fetchone() == (200,)
    reader.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_every_end_of_a_transaction_lets_the_next_writer_in(database, end):
    connection = wrapper(database, 5)
    begin(connection)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE counter SET n = 7")
    {"commit": commit, "rollback": rollback, "close": lambda c: c.close()}[end](connection)

    def write():
        other = wrapper(database, 0.2)
        try:
            begin(other)
            commit(other)
        finally:
            other.close()

    in_thread(write)
    connection.close()


def test_a_failed_begin_releases_both_locks(database):
    # A writer outside Django (a shell on the file) holds SQLite's own lock: the backend's BEGIN
    # waits SQLite's busy timeout, fails, and must not keep the queue's locks.
    import sqlite3

    shell = sqlite3.connect(database, isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")
    connection = wrapper(database, 0.2)
    try:
        with pytest.raises(OperationalError):
            begin(connection)
        assert connection._held_process_lock is None
        probe = os.open(lock_file_name(str(database)), os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises if still held
        finally:
            os.close(probe)
    finally:
        shell.execute("ROLLBACK")
        shell.close()
        connection.set_autocommit(True)
        connection.close()


HOLD_THE_FILE_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def test_a_writer_of_another_process_holds_the_others_off_until_it_is_done(database):
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_FILE_LOCK, lock_file_name(str(database))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert other.stdout.readline().strip() == "held"
        impatient = wrapper(database, 0.2)
        with pytest.raises(OperationalError, match="database is locked"):
            begin(impatient)
        impatient.set_autocommit(True)
        impatient.close()
        other.stdin.close()  # the other process ends, and its lock with it
        other.wait(10)
        patient = wrapper(database, 10)
        begin(patient)
        commit(patient)
        patient.close()
    finally:
        if other.poll() is None:
            other.kill()
        other.wait(10)


def test_a_forked_child_is_not_held_off_by_the_locks_its_parent_held_when_it_forked(database):
    # Celery's prefork pool forks workers at any time. If another thread of the parent held the
    # queue's locks at that moment, the child's copy of the process lock would stay taken, and its
    # copy of the lock file's descriptor would keep the file lock held after the parent let go.
    # (The parent holds the backend's two locks here but no SQLite transaction: SQLite's own lock
    # state must not cross a fork at all.)
    name = str(database)
    holding, done = threading.Event(), threading.Event()

    def hold():
        holder = wrapper(database, 5)
        lock = process_lock(name)
        lock.acquire()
        holder._held_process_lock = lock
        holder._lock_file(name, timeout=5, deadline=time.monotonic() + 5)
        holding.set()
        done.wait(10)
        holder._release_write_lock()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait until the parent has let go, then write
        code = 1
        try:
            os.close(ready_write)
            os.read(ready_read, 1)
            child = wrapper(database, 3)
            begin(child)
            commit(child)
            child.close()
            code = 0
        finally:
            os._exit(code)
    os.close(ready_read)
    done.set()
    thread.join(10)
    os.write(ready_write, b"x")
    os.close(ready_write)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
