# The two commands: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo test dev migrate prices lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt $(wildcard sdk_client/pyproject.toml sdk_client/requirements-test.txt)
	$(PIP) install --quiet -r requirements-dev.txt
	@if [ -f sdk_client/pyproject.toml ]; then $(PIP) install --quiet -e "sdk_client[cli]"; fi
	@touch $(STAMP)

# The OTLP request's protobuf decoding in C (ingestion/upb_build.py; without a C compiler, skipped with a warning).
UPB_EXT := ingestion/_otlp_upb$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
$(UPB_EXT): $(STAMP) ingestion/_otlp_upb.c ingestion/upb_build.py
	$(PY) -m ingestion.upb_build

install: $(STAMP) $(UPB_EXT)

migrate: install
	$(PY) manage.py migrate --noinput

prices: migrate
	$(PY) manage.py sync_prices

# Embedded mode: SQLite file, Celery tasks run eagerly in-process, console email.
demo: prices
	$(PY) manage.py load_demo
	@echo "Serving on http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(PY) manage.py runserver 127.0.0.1:8000

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Web + Celery worker + beat against DATABASE_URL / REDIS_URL (see Procfile). Every process writes its
# Prometheus metrics into one directory, emptied before any starts, which /metrics sums (docs/operations.md).
PROMETHEUS_MULTIPROC_DIR ?= /tmp/llmobserve-prometheus
dev: migrate
	rm -rf "$(PROMETHEUS_MULTIPROC_DIR)" && mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)"
	PROMETHEUS_MULTIPROC_DIR="$(PROMETHEUS_MULTIPROC_DIR)" $(VENV)/bin/honcho start

clean:
	rm -rf $(VENV) .pytest_cache ingestion/_otlp_upb*.so
