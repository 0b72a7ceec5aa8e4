# Pagewise: `make run` (embedded demo at http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test fuzz lint format demo migrate worker bench clean

# Installs are quiet: one line per step, the full pip output in var/install.log (shown on failure).
$(STAMP): pyproject.toml
	@mkdir -p var
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python packages (log: var/install.log) ..."
	@$(PY) -m pip install --quiet --upgrade pip >var/install.log 2>&1 || { tail -n 30 var/install.log; exit 1; }
	@# torch first and pinned, so nothing else can pull a larger build.
	@echo "  torch 2.13.0 (CPU build)"
	@$(PY) -m pip install --quiet torch==2.13.0 >>var/install.log 2>&1 || { tail -n 30 var/install.log; exit 1; }
	@echo "  pagewise and its dependencies"
	@$(PY) -m pip install --quiet -e ".[dev]" >>var/install.log 2>&1 || { tail -n 30 var/install.log; exit 1; }
	@touch $(STAMP)
	@echo "Installed."

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

# Web server and a Celery worker side by side; Ctrl-C stops both. gunicorn, 2 processes of 4
# threads: runserver is one process, and under 20 annotators it served a quarter to two fifths
# fewer judgments a second (README, Scale). A server that reloads on code changes: runserver.
WEB_WORKERS ?= 2
WEB_THREADS ?= 4
run: demo
	@echo "Pagewise at http://$(HOST):$(PORT)/  (worker log: var/worker.log)"
	$(PY) -m celery -A config worker --loglevel=info --pool=threads --concurrency=2 -B >var/worker.log 2>&1 & \
	worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(PY) -m gunicorn config.wsgi:application --bind $(HOST):$(PORT) \
		--workers $(WEB_WORKERS) --threads $(WEB_THREADS) --access-logfile -

worker: $(STAMP)
	$(PY) -m celery -A config worker --loglevel=info

# Two test processes (pytest-xdist); tests sharing an `xdist_group` mark run in the same one.
# PYTEST_WORKERS=0 runs the suite in this process, one test after another.
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Long random runs (new draws every time); `make test` and CI replay fixed ones.
fuzz: $(STAMP)
	PAGEWISE_FUZZ=1 PAGEWISE_FUZZ_EXAMPLES=$${PAGEWISE_FUZZ_EXAMPLES:-1000} $(PY) -m pytest $(PYTEST_ARGS) \
		tests/labeling/test_fuzz.py tests/labeling/test_schemathesis.py tests/active_selection/test_search.py \
		tests/ranking/test_losses.py tests/ranking/test_metrics.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bench_import --items 100000 --json var/bench_import.json
	$(PY) manage.py bench_reranker --json var/bench_reranker.json

clean:
	rm -rf $(VENV) var
