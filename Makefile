PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv chromium postgresql run run-sso test test-fast lint format bench clean-db coverage mutate

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian chromium for browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# A throwaway PostgreSQL server for the tests (started by the test fixture, never as a service).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		echo "Installing Debian postgresql for the PostgreSQL half of the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# UI and API on one port; the server's lifespan starts the demo's emulated license servers on
# 7071-7073, seeds data/vlm.duckdb and runs the sync scheduler until Ctrl+C.
run: venv
	VLM_DEMO=1 VLM_DEMO_EMULATOR_PORT=7071 VLM_DB_PATH=data/vlm.duckdb \
		VLM_SYNC_INTERVAL=$${VLM_SYNC_INTERVAL:-30} \
		$(PY) -m streamlit run server.py --server.port=8501 --server.headless=true \
		--browser.gatherUsageStats=false

# The demo with single sign-on: a mock OpenID provider (oidc-provider-mock) on 127.0.0.1:9400
# offers the identities sam (admin group), kim (managers), lee (analysts) and noah (no VLM group);
# "Sign in with Demo IdP" on http://localhost:8501. The demo's password accounts still work.
run-sso: venv
	VLM_SYNC_INTERVAL=$${VLM_SYNC_INTERVAL:-30} $(PY) -m vlm sso-demo --port 8501 --provider-port 9400

test: venv chromium postgresql
	$(PY) -m ruff check .
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not e2e"

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# BACKEND=duckdb (default), postgres (a throwaway server of its own) or both (one report).
bench: venv
	$(PY) -m bench --size $(or $(BENCH_SIZE),full) --backend $(or $(BACKEND),duckdb) --scale

clean-db:
	rm -f data/vlm.duckdb data/vlm.duckdb.wal

coverage: venv
	$(PY) -m pytest -q -m "not e2e" --cov=vlm/services --cov=vlm/sync --cov-branch \
		--cov-report=term-missing:skip-covered --cov-fail-under=90

mutate: venv
	rm -rf mutants
	VLM_TEST_BACKENDS=duckdb $(PY) -m mutmut run --max-children 2 || true
	$(PY) -m mutmut export-cicd-stats >/dev/null
	@$(PY) -c "import json; s = json.load(open('mutants/mutmut-cicd-stats.json')); \
		t = s['killed'] + s['survived'] + s['timeout'] + s['suspicious'] + s['no_tests']; \
		print(f\"mutation score: {100 * (s['killed'] + s['timeout']) / max(t, 1):.1f}% \
		({s['killed'] + s['timeout']} killed of {t}; {s['survived']} survived)\")"
