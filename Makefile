# Fargate Lab — the two commands of the quick start:
#   make run    creates .venv, installs, migrates, builds the demo image, starts the lab
#               on http://127.0.0.1:$(PORT) (server, control plane, dashboard, API);
#               WORKERS=N serves it from N processes (PostgreSQL: DATABASE_URL, see README)
#   make test   runs the whole test suite (needs a running Docker engine and Chromium)
PYTHON ?= python3
VENV := .venv
PORT ?= 8000
HOST ?= 127.0.0.1
WORKERS ?= 1
STAMP := $(VENV)/.installed

.PHONY: run test controlplane bench clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $(STAMP)

run: $(STAMP)
	HOST=$(HOST) PORT=$(PORT) $(VENV)/bin/python manage.py lab --workers $(WORKERS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

controlplane: $(STAMP)
	$(VENV)/bin/python manage.py controlplane

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var *.egg-info
