# Pagewise: `make run` (embedded demo at http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format demo migrate worker bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so nothing else can pull a larger build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

# Web server and a Celery worker side by side; Ctrl-C stops both.
run: demo
	@echo "Pagewise at http://$(HOST):$(PORT)/  (worker log: var/worker.log)"
	$(PY) -m celery -A config worker --loglevel=info --pool=threads --concurrency=2 -B >var/worker.log 2>&1 & \
	worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py runserver $(HOST):$(PORT)

worker: $(STAMP)
	$(PY) -m celery -A config worker --loglevel=info

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) manage.py bench_import --items 100000 --json var/bench_import.json
	$(PY) manage.py bench_reranker --json var/bench_reranker.json

clean:
	rm -rf $(VENV) var
