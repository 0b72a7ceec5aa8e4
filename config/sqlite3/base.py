"""Django's SQLite backend whose writers queue for the write lock instead of sleeping on it.

Every transaction takes SQLite's one write lock at its start (IMMEDIATE). A writer that finds it
taken is put to sleep by SQLite's busy handler in steps of 1, 2, 5, 10, 15, 20, 25... ms and looks
again only when its step ends, so a lock held for 2 ms could keep a waiter asleep for 25: under 20
annotators the load test's p95 and p99 came from these sleeps. Here a writer first queues behind
the other threads of its process on a lock that hands over the moment it is released, then takes
a file lock (`flock`) that the writers of the other processes (web workers, the Celery worker)
take too, looked at every millisecond at most; SQLite's own wait is left with writers outside
Django (a shell on the file). Both waits end at the connection's `timeout`: then the error is
SQLite's "database is locked", which the views answer 503 with Retry-After.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()
_LONGEST_PAUSE = 0.001  # seconds between two looks at the file lock
_OPEN_LOCK_FILES: set[int] = set()  # descriptors this process holds a lock file open with


def _new_locks_in_child() -> None:
    # A child of fork() runs one thread: a lock another thread of the parent held would stay held
    # in its copy forever (Celery's prefork pool forks workers at any time). And a flock belongs
    # to the open file, not the process: the child's copies of the parent's descriptors would keep
    # the parent's file lock held after the parent lets it go.
    global _PROCESS_LOCKS_GUARD
    _PROCESS_LOCKS.clear()
    _PROCESS_LOCKS_GUARD = threading.Lock()
    for fd in _OPEN_LOCK_FILES:
        os.close(fd)
    _OPEN_LOCK_FILES.clear()


os.register_at_fork(after_in_child=_new_locks_in_child)


def process_lock(database: str) -> threading.Lock:
    """The lock the writers of this process to `database` (a file name) queue on."""
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(database, threading.Lock())


def lock_file_name(database: str) -> str:
    """The file whose lock the writers of every process take, beside the database's -wal."""
    return f"{database}-writer"


def _locked(seconds: float) -> OperationalError:
    return OperationalError(f"database is locked: no write lock within {seconds:.1f} s")


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._held_process_lock: threading.Lock | None = None
        # The lock file's descriptor, opened per transaction (two system calls), with the process
        # that opened it: a forked child has closed its copy (_new_locks_in_child).
        self._lock_fd: tuple[int, int] | None = None

    def _start_transaction_under_autocommit(self):
        if self.is_in_memory_db():
            return super()._start_transaction_under_autocommit()
        name = str(self.settings_dict["NAME"])
        timeout = float(self.settings_dict["OPTIONS"].get("timeout", 5.0))
        started = time.monotonic()
        lock = process_lock(name)
        if not lock.acquire(timeout=timeout):
            raise _locked(timeout)
        self._held_process_lock = lock
        try:
            self._lock_file(name, timeout=timeout, deadline=started + timeout)
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _lock_file(self, name: str, *, timeout: float, deadline: float) -> None:
        fd = os.open(lock_file_name(name), os.O_RDWR | os.O_CREAT, 0o600)
        _OPEN_LOCK_FILES.add(fd)
        self._lock_fd = (os.getpid(), fd)
        pause = _LONGEST_PAUSE / 8
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _locked(timeout) from None
                time.sleep(pause)
                pause = min(2 * pause, _LONGEST_PAUSE)

    def _release_write_lock(self) -> None:
        lock, self._held_process_lock = self._held_process_lock, None
        opened, self._lock_fd = self._lock_fd, None
        try:
            if opened is not None and opened[0] == os.getpid():
                _OPEN_LOCK_FILES.discard(opened[1])
                os.close(opened[1])  # releases its flock
        finally:
            if lock is not None:
                lock.release()

    def _commit(self):
        # A failed COMMIT leaves the transaction open: the rollback that follows releases it.
        result = super()._commit()
        self._release_write_lock()
        return result

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()
