"""A judgment's follow-up leaves the web process in batches, off the annotator's path.

Publishing a Celery message cost a submit about a tenth of its server's CPU, and the annotator
waited for it after the commit (for the broker's retries too, when the broker was down). A submit
now hands the judgment's id to its process's publisher thread and answers at once; woken by an id,
the thread waits `linger` (0.1 s) and sends every id that came in meanwhile as one
`judgments_recorded` message: under load one message carries many (a median of 11 under 20
annotators), and a follow-up starts at most 0.1 s later than it did. An id
that is never sent (the broker down, the process killed first) is the recovery sweep's to redo, as
a lost message always was.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from . import tasks

log = logging.getLogger(__name__)


class BatchPublisher:
    """Calls `send(batch)` from one background thread with the items `add`ed since its last call
    (at most `max_batch` a call), in the order they were added; `flush` sends what is left."""

    def __init__(
        self, send: Callable[[Sequence], None], *, linger: float = 0.0, max_batch: int = 500
    ) -> None:
        self._send = send
        self._linger = linger
        self._max_batch = max_batch
        self._reset()
        # A forked child (Celery's prefork pool, gunicorn) has no publisher thread, and a lock
        # another thread held at the fork would stay taken: it starts afresh, with nothing pending
        # (what was pending is the parent's to send).
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._changed = threading.Condition()
        self._pending: list = []
        self._sending = False  # the thread holds a batch taken off the list and not yet sent
        self._thread: threading.Thread | None = None

    def add(self, item) -> None:
        with self._changed:
            self._pending.append(item)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="follow-up publisher", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Send what is pending from this thread, after the batch being sent (at exit; tests)."""
        with self._changed:
            self._changed.wait_for(lambda: not self._sending, timeout)
            batches = []
            while self._pending:
                batches.append(self._take())
        for batch in batches:
            self._publish(batch)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending)
            if self._linger:
                time.sleep(self._linger)  # let the ids of the next moments join this message
            with self._changed:
                batch = self._take()  # empty if a flush took them meanwhile
                self._sending = bool(batch)
            if not batch:
                continue
            try:
                self._publish(batch)
            finally:
                with self._changed:
                    self._sending = False
                    self._changed.notify_all()

    def _take(self) -> list:
        """The next batch off the pending list (the caller holds the lock)."""
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        return batch

    def _publish(self, batch: list) -> None:
        try:
            self._send(batch)
        except Exception:
            # The commit stands; the sweep redoes the follow-up of these ids (see module doc).
            log.exception("could not send the follow-up of %d judgments", len(batch))


def _send_judgments(judgment_ids: Sequence[int]) -> None:
    # send_task, not delay: a message on the broker whatever the caller's eager setting now is.
    tasks.judgments_recorded.app.send_task(
        tasks.judgments_recorded.name, args=(list(judgment_ids),)
    )


judgments = BatchPublisher(_send_judgments, linger=0.1)
