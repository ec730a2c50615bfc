# The two commands: `make run` (demo service on http://127.0.0.1:5000) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# The port `make run` serves on: `make run PORT=5050` when 5000 is taken.
PORT ?= 5000

.PHONY: run test lint translations lock bench bench-patient bench-patient-parts bench-board bench-compliance bench-dispatch bench-idle clean

# Installs the exact versions of requirements-dev.lock (the runtime's of requirements.lock, plus
# the test and lint tools), then the project itself without resolving anything again.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 or python3 on PATH)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed; found $$($(PYTHON) --version)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Refresh both lock files from pyproject.toml (newest versions its ranges allow), then `make test`.
PIP_COMPILE := $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links
lock: $(STAMP)
	$(PIP_COMPILE) --upgrade --output-file requirements.lock pyproject.toml
	$(PIP_COMPILE) --upgrade --extra dev --constraint requirements.lock \
		--output-file requirements-dev.lock pyproject.toml

translations: $(STAMP)
	$(BIN)/pybabel compile -d translations

run: $(STAMP) translations
	$(BIN)/pro-service db upgrade
	PRO_PUBLIC_BASE_URL=$${PRO_PUBLIC_BASE_URL:-http://127.0.0.1:$(PORT)} $(BIN)/pro-service demo
	PRO_PUBLIC_BASE_URL=$${PRO_PUBLIC_BASE_URL:-http://127.0.0.1:$(PORT)} $(BIN)/pro-service dev --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) translations lint
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP) bench-patient bench-patient-parts bench-board bench-compliance bench-dispatch bench-idle
	$(BIN)/python bench/bench_score.py
	$(BIN)/python bench/bench_export.py

# The patient pages under gunicorn on PostgreSQL (PRO_TEST_POSTGRES_URL, as for the tests).
bench-patient: $(STAMP) translations
	$(BIN)/python bench/bench_patient.py

# Where a questionnaire screen costs more than the floor route: Python per request, PostgreSQL per statement.
bench-patient-parts: $(STAMP) translations
	$(BIN)/python bench/bench_patient_parts.py

# The completion board with 5,000 patients on PostgreSQL (PRO_TEST_POSTGRES_URL), against its plain SQL.
bench-board: $(STAMP) translations
	$(BIN)/python bench/bench_board.py

# The compliance report of 5,000 patients against the plain SQL counting the same rows.
bench-compliance: $(STAMP) translations
	$(BIN)/python bench/bench_compliance.py

# The 09:00 blast: 2,000 invitations due at once, the fake Twilio answering in 200 ms.
bench-dispatch: $(STAMP) translations
	$(BIN)/python bench/bench_dispatch.py

# The scheduler's pass with nothing due, 100,000 patients on PostgreSQL (PRO_TEST_POSTGRES_URL).
bench-idle: $(STAMP) translations
	$(BIN)/python bench/bench_idle_pass.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
