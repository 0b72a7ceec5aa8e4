"""A short load test in CI: annotators over HTTP against gunicorn + PostgreSQL + a worker on Redis."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command

from .conftest import ROOT, database_url_of_test_db

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_short_load_test_loses_nothing_and_assigns_no_task_twice(
    celery_worker_process, tmp_path, settings
):
    port = free_port()
    env = {
        **os.environ, "DATABASE_URL": database_url_of_test_db(), "CELERY_TASK_DEFAULT_QUEUE": celery_worker_process,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT), "PAGEWISE_EMBED_AFTER_IMPORT": "0",
    }  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "3", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gunicorn.log", "wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.3)
        out = tmp_path / "load.json"
        call_command(
            "loadtest", "--annotators", "12", "--seconds", "8", "--queries", "400",
            "--url", f"http://127.0.0.1:{port}", "--json", str(out),
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=20)
    figures = json.loads(out.read_text())
    assert figures["judgments"] > 20
    assert figures["double_assignments"] == 0
    assert figures["lost_judgments"] == 0
    assert figures["duplicated_judgments"] == 0
    assert figures["budget_mismatch"] == 0
    assert figures["next_task_ms"]["p50"] > 0
    assert figures["machine"]["reference_loop_ms"] > 0
    if Path("/proc/stat").exists():  # what the run cost the machine, per judgment
        assert 0 < figures["machine"]["cpu_ms_per_judgment"] < 10_000
        assert 0 < figures["machine"]["busy_percent"] <= 100
