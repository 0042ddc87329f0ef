# The two commands of the README: `make demo` and `make test`.
# Both create or refresh the virtual environment from requirements.lock first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv lock clean manifest tools

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# The dbt manifest Dagster loads its assets from, refreshed on every run (about 2 s).
manifest: $(STAMP)
	$(VENV)/bin/dbt parse --quiet --project-dir transformation --profiles-dir transformation

venv: $(STAMP)

demo: manifest
	$(PY) -m orchestration.demo

# System tools the tests need (mosquitto, openssl, docker-compose, chromium; python3-venv while
# there is no venv yet): installed with
# apt-get when run as root on Debian/Ubuntu, else one line naming the install command.
tools:
	@PATH="$$PATH:/usr/sbin:/usr/local/sbin" PYTHON="$(PYTHON)" VENV="$(VENV)" sh deploy/check-tools.sh

# Tests run in parallel, one worker a core (pytest-xdist); TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= auto
test: tools manifest
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# Re-resolve the lock from pyproject.toml (needs the registry).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip
	.lockenv/bin/pip install --quiet '.[test]'
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^printfarm-pipeline' > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) build *.egg-info transformation/target transformation/logs
