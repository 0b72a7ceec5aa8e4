"""A real Celery worker process over the real broker and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url_of_test_db() -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


class Workers:
    """Starts `celery worker` processes on one queue of the test's own; stops them at the end."""

    def __init__(self, queue: str, tmp_path: Path, settings) -> None:
        self.queue = queue
        self.tmp_path = tmp_path
        self.settings = settings
        self.processes: list[subprocess.Popen] = []

    def start(
        self, *, visibility_timeout: int = 3600, extra_env=None, beat: bool = False
    ) -> subprocess.Popen:
        return start_worker(self, visibility_timeout, extra_env or {}, beat)

    def kill(self, worker: subprocess.Popen) -> None:
        """SIGKILL the worker and its children (e.g. the embedded beat of -B), as a crash would."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    def stop_all(self) -> None:
        for worker in self.processes:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.processes:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
            try:  # whatever the worker started must not outlive the test
                os.killpg(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def celery_workers(transactional_db, tmp_path, settings):
    from active_selection import follow_up
    from config.celery import app

    workers = Workers(f"test-{uuid.uuid4().hex[:10]}", tmp_path, settings)
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = workers.queue
    yield workers
    follow_up.judgments.flush()  # this test's judgments go to this test's queue
    app.conf.task_default_queue = previous_queue
    workers.stop_all()


@pytest.fixture
def celery_worker_process(celery_workers):
    """One running worker; yields the queue name that it consumes."""
    celery_workers.start()
    return celery_workers.queue


def start_worker(
    workers: Workers, visibility_timeout: int, extra_env: dict, beat: bool
) -> subprocess.Popen:
    queue, tmp_path, settings = workers.queue, workers.tmp_path, workers.settings
    log = tmp_path / f"worker{len(workers.processes)}.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_db(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PYTHONUNBUFFERED": "1",
        # Tasks the worker itself queues (e.g. a retrain) stay on this test's queue.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout),
        # A message of a killed worker comes back within a second of its visibility timeout,
        # not kombu's ~100 s.
        "CELERY_UNACKED_RESTORE_SECONDS": "1",
        "PAGEWISE_VAR_DIR": str(tmp_path / "var"),
        **extra_env,
    }
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue,
             "--without-gossip", "--without-mingle", "--loglevel=info", "-n", f"{queue}-{len(workers.processes)}@%h",
             *(["-B"] if beat else [])],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    workers.processes.append(worker)
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail(f"Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    worker.log_path = log
    return worker


def wait_for(predicate, *, timeout: float = 30, every: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
