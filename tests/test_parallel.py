"""Two pytest-xdist processes share no Redis database: each has its own queues and cache."""

import os

from tests.conftest import redis_databases_of_worker


def test_each_xdist_worker_gets_two_redis_databases_of_its_own():
    base = "redis://127.0.0.1:6379/5"
    assert redis_databases_of_worker(base, "gw0") == (
        "redis://127.0.0.1:6379/5",
        "redis://127.0.0.1:6379/6",
    )
    assert redis_databases_of_worker(base, "gw1") == (
        "redis://127.0.0.1:6379/7",
        "redis://127.0.0.1:6379/8",
    )
    assert redis_databases_of_worker("redis://:secret@cache:6380", "gw2") == (
        "redis://:secret@cache:6380/4",
        "redis://:secret@cache:6380/5",
    )


def test_a_serial_run_or_another_broker_is_left_alone():
    assert redis_databases_of_worker("redis://127.0.0.1:6379/0", None) is None
    assert redis_databases_of_worker("filesystem://", "gw1") is None
    assert redis_databases_of_worker("", "gw0") is None


def test_this_process_and_the_processes_it_starts_use_the_same_databases(settings):
    from config.celery import app

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    assert app.conf.broker_url == settings.CELERY_BROKER_URL == (broker or "filesystem://")
    if worker and broker.startswith("redis://"):
        own_db = int(broker.rsplit("/", 1)[1])
        assert settings.CACHES["default"]["LOCATION"] == os.environ["CACHE_URL"]
        assert os.environ["CACHE_URL"].endswith(f"/{own_db + 1}")
