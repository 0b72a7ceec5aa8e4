"""Shared fixtures. Tests marked `postgres` / `redis` need the real services, and `browser` tests
need Debian's Chromium; when PAGEWISE_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails
the test instead of skipping."""

from __future__ import annotations

import importlib.util
import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import settings as hypothesis_settings

REQUIRE_SERVICES = os.environ.get("PAGEWISE_REQUIRE_SERVICES") == "1"

# `make test` and CI draw the same examples on every run (derandomized): a suite whose outcome
# depends on the draw is not one to trust. `make fuzz` (PAGEWISE_FUZZ=1) draws new ones, many more.
hypothesis_settings.register_profile("deterministic", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("fuzz", derandomize=False, max_examples=1000, print_blob=True)
hypothesis_settings.load_profile(
    "fuzz" if os.environ.get("PAGEWISE_FUZZ") == "1" else "deterministic"
)


def redis_databases_of_worker(broker_url: str, worker: str | None) -> tuple[str, str] | None:
    """Under pytest-xdist, worker gwI gets the Redis databases N+2I (queues) and N+2I+1 (cache),
    N being the database of CELERY_BROKER_URL: every test clears the cache, and a worker with a
    short visibility timeout requeues every unacknowledged message of its database, so two test
    processes must not share either. None when not under xdist or the broker is not Redis."""
    if not worker or not broker_url.startswith("redis://"):
        return None
    parts = urlsplit(broker_url)
    base = int(parts.path.strip("/") or 0)
    broker_db = base + 2 * int(worker.removeprefix("gw"))

    def url(db: int) -> str:
        return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))

    return url(broker_db), url(broker_db + 1)


def pytest_configure(config):
    # pytest-django has loaded the settings already (before any conftest), but nothing has
    # connected yet: point this process, and the worker and server processes that its tests start
    # (they inherit os.environ), at this worker's own Redis databases.
    own = redis_databases_of_worker(
        os.environ.get("CELERY_BROKER_URL", ""), os.environ.get("PYTEST_XDIST_WORKER")
    )
    if own is None:
        return
    from django.conf import settings
    from django.test.utils import override_settings

    from config.celery import app

    broker, cache = own
    os.environ["CELERY_BROKER_URL"], os.environ["CACHE_URL"] = broker, cache
    caches = {"default": {**settings.CACHES["default"], "LOCATION": cache}}
    override_settings(CELERY_BROKER_URL=broker, CACHES=caches).enable()
    app.conf.broker_url = broker


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PAGEWISE_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _services(request):
    if not request.config.pluginmanager.hasplugin("django"):
        return  # pure cores (ranking/ml, search.py) may run with -p no:django
    from django.db import connection

    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if request.node.get_closest_marker("redis") and not os.environ.get(
        "CELERY_BROKER_URL", ""
    ).startswith("redis://"):
        _missing("needs Redis: set CELERY_BROKER_URL=redis://...")
    if request.node.get_closest_marker("browser"):
        if not shutil.which("chromium"):
            _missing("needs Debian's Chromium on PATH: apt-get install -y chromium")
        if importlib.util.find_spec("playwright") is None:
            _missing("needs the playwright package: pip install -e '.[dev]'")


@pytest.fixture(autouse=True)
def _media_root_and_eager_tasks(request, tmp_path):
    """Each test gets its own media folder; tasks run in-process unless a real worker is tested."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    from django.core.cache import cache

    from config.celery import app

    cache.clear()  # login rate-limit counters must not leak from one test into another
    settings = request.getfixturevalue("settings")
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PAGEWISE_IMPORT_DIR = tmp_path / "imports"
    # Encoding needs the real models (seconds to load): only the tests that ask for it pay.
    settings.PAGEWISE_EMBED_AFTER_IMPORT = request.node.get_closest_marker("embeds") is not None
    eager = request.node.get_closest_marker("redis") is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def project(db):
    from labeling.models import Project

    return Project.objects.create(slug="p", name="Test project", modalities=["text", "image"])


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(
        username: str, *, role: str | None = None, project=None, password: str = "pw-for-tests-1"
    ):
        user = get_user_model().objects.create_user(username=username, password=password)
        if role:
            from labeling.models import Membership

            Membership.objects.create(project=project, user=user, role=role)
        return user

    return make
