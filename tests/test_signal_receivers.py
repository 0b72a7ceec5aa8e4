"""The apps' receivers of labeling's signals stay connected in a process started the way gunicorn,
runserver and the Celery worker start (django.setup(), nothing else). Under pytest, and with
DEBUG on, they lived either way; with DEBUG=0 (production) the weakly connected closures were
collected as ready() returned, so a judgment's follow-up, an import's planning and embedding
waited for the recovery sweep."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LIVE_RECEIVERS = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
import gc, weakref
gc.collect()
from labeling import signals

def alive(receiver):  # a weak reference to a collected function is dead; a strong one lives
    return not isinstance(receiver, weakref.ReferenceType) or receiver() is not None

print(json.dumps({
    name: sorted(key[0] for key, receiver, *_ in getattr(signals, name).receivers if alive(receiver))
    for name in ("judgment_recorded", "items_imported", "project_settings_changed")
}))
"""


@pytest.mark.parametrize("debug", ["0", "1"])  # production runs DEBUG=0, where they had died
def test_every_receiver_is_alive_in_a_fresh_process(tmp_path, debug):
    env = {
        **os.environ, "PAGEWISE_VAR_DIR": str(tmp_path), "DATABASE_URL": "", "DEBUG": debug,
        "SECRET_KEY": "signal-receivers-test", "ALLOWED_HOSTS": "127.0.0.1",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", LIVE_RECEIVERS], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    live = json.loads(done.stdout.strip().splitlines()[-1])
    assert live == {
        "judgment_recorded": ["active_selection.judgment_recorded", "webhooks.judgment"],
        "items_imported": [
            "active_selection.items_imported", "ranking.items_imported",
            "ranking.vlm.items_imported", "webhooks.import",
        ],
        "project_settings_changed": [
            "active_selection.project_settings_changed", "ranking.vlm.project_settings_changed",
        ],
    }  # fmt: skip
