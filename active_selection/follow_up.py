"""A judgment's follow-up leaves the web process in batches, off the annotator's path.

Publishing a Celery message cost a submit about a tenth of its server's CPU, and the annotator
waited for it after the commit (for the broker's retries too, when the broker was down). A submit
now hands the judgment's id to its process's publisher thread and answers at once; the thread sends
every id that came in while it sent the last message as one `judgments_recorded` message. So when
the server is quiet each id goes out at once, alone, and under load one message carries many. An id
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
        self._sending = 0  # batches taken off the list and not yet sent
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
        deadline = time.monotonic() + timeout
        with self._changed:
            self._changed.wait_for(lambda: not self._sending, max(0.0, deadline - time.monotonic()))
            batches = self._take(everything=True)
        for batch in batches:
            self._publish(batch)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending)
            if self._linger:
                time.sleep(self._linger)  # let the ids of the next moments join this message
            with self._changed:
                batches = self._take(everything=False)  # none if a flush took them meanwhile
            for batch in batches:
                try:
                    self._publish(batch)
                finally:
                    with self._changed:
                        self._sending -= 1
                        self._changed.notify_all()

    def _take(self, *, everything: bool) -> list[list]:
        """Batches off the pending list (the caller holds the lock): one, or all of them."""
        batches = []
        while self._pending and (everything or not batches):
            batches.append(self._pending[: self._max_batch])
            del self._pending[: self._max_batch]
        if not everything:
            self._sending += len(batches)
        return batches

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
