import gc
import importlib
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Import the URL patterns (and every view module they import: the charts bring matplotlib) now, in
# each server process as it starts, rather than in its first request (about 1.8 s).
importlib.import_module(settings.ROOT_URLCONF)
# What is loaded by now lives as long as the process: out of the garbage collector's sight, a full
# collection walks only what requests made. It walked ~400,000 objects (Django, torch, matplotlib)
# at 125 ms a time, every thousand requests or so, with the process's other threads stopped.
gc.freeze()
