# Two entry points: `make demo` and `make test`. Each creates .venv with the pinned lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

FLOOR_VENV := .venv-floor
FLOOR_STAMP := $(FLOOR_VENV)/.installed

SDK_VENV := .venv-sdks
SDK_STAMP := $(SDK_VENV)/.installed

MUTATION_VENV := .venv-mutation
MUTATION_STAMP := $(MUTATION_VENV)/.installed

.PHONY: demo test test-floor test-real test-sdks mutation lint install clean postgres chromium

# Two distributions: the provider (.) and the reference service it is tested against.
$(STAMP): pyproject.toml reference-service/pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . -e reference-service
	touch $(STAMP)

install: $(STAMP)

# The lowest Airflow the provider declares (requirements/floor.txt): unit and DAG tests run there too.
$(FLOOR_STAMP): pyproject.toml reference-service/pyproject.toml requirements/floor.txt
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -r requirements/floor.txt
	$(FLOOR_VENV)/bin/python -m pip install --quiet --no-deps -e . -e reference-service
	touch $(FLOOR_STAMP)

# The public SDKs (requirements/sdks.txt says why tensorbay goes in without its dependencies).
$(SDK_STAMP): reference-service/pyproject.toml requirements/sdks.txt
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SDK_VENV)/bin/python -m pip install --quiet -r requirements/sdks.txt
	$(SDK_VENV)/bin/python -m pip install --quiet --no-deps tensorbay==1.24.2 -e reference-service
	touch $(SDK_STAMP)

# mutmut and the test stack. The provider is installed for its entry points (Airflow finds its
# hooks and connection types through them); the code imported is the mutated copy, which mutmut
# puts first on sys.path (its forced-fail run checks that).
$(MUTATION_STAMP): pyproject.toml reference-service/pyproject.toml requirements/mutation.txt requirements/lock.txt
	$(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MUTATION_VENV)/bin/python -m pip install --quiet -r requirements/mutation.txt
	$(MUTATION_VENV)/bin/python -m pip install --quiet --no-deps . -e reference-service
	touch $(MUTATION_STAMP)

demo: $(STAMP)
	$(BIN)/python demo.py

# The same checks as .pre-commit-config.yaml: lint, formatting, types of the provider package.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The e2e tests (tests/e2e) start a private PostgreSQL cluster: install the server binaries
# (Debian package) when they are missing. Root installs directly, anyone else through sudo.
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; else \
		echo "installing PostgreSQL (apt-get install postgresql) for the e2e tests"; \
		sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
			>/dev/null && ls /usr/lib/postgresql/*/bin/initdb; fi

# The browser e2e test (tests/e2e/test_browser.py) drives the system Chromium through Playwright,
# which never downloads a browser of its own: install the Debian package when it is missing, as above.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; else \
		echo "installing Chromium (apt-get install chromium) for the browser e2e test"; \
		sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
			>/dev/null && command -v chromium; fi

# Unit and DAG tests on the floor: not the e2e deployment, the soak, the wheel build or the
# reference service's own tests (they do not import Airflow). `tests` is named: --ignore does not
# apply to a testpaths entry, which pytest takes as an argument.
test-floor: $(FLOOR_STAMP)
	$(FLOOR_VENV)/bin/python -m pytest -m "not e2e and not soak" --ignore=tests/e2e --ignore=tests/soak \
		--ignore=tests/test_packaging.py tests

# The provider's tests of submit, wait, cancel, results, the lock rule, squash-and-merge and compute,
# against the reference service's real profile (docs/jobs-api.md §0: no [ext] endpoint or header,
# the results store at its own base path, a rate limit); tests of our extensions are skipped.
REAL_PROFILE_TESTS := tests/test_jobs_hook.py tests/test_job_trigger.py tests/test_trigger_on_kill.py \
	tests/test_create_once.py tests/test_results_hook.py tests/test_results_operators.py \
	tests/test_datasets_hook.py tests/test_compute_hook.py tests/test_dags.py tests/test_dataset_compute_dags.py \
	tests/test_resume_on_retry.py tests/test_connection_types.py tests/test_native_statuses.py

test-real: $(STAMP)
	JOBWAIT_TEST_PROFILE=real $(BIN)/python -m pytest $(REAL_PROFILE_TESTS)

# Modzy's, TensorBay's, Evo's and CHIME's own clients against the reference service, both profiles.
test-sdks: $(SDK_STAMP)
	cd reference-service && ../$(SDK_VENV)/bin/python -m pytest -p no:cacheprovider sdk_tests

test: lint postgres chromium
	$(BIN)/python -m pytest
	$(MAKE) test-real
	$(MAKE) test-sdks
	$(MAKE) test-floor

clean:
	rm -rf $(VENV) $(FLOOR_VENV) $(SDK_VENV) $(MUTATION_VENV) airflow_home

# Mutation testing of the client core and the hooks (not in `make test`: about 30 minutes on 2 cores,
# docs/mutation.md). Figures per module go to build/mutation/report.md; docs/mutation.md records them.
mutation: $(MUTATION_STAMP)
	$(MUTATION_VENV)/bin/python .ci/mutation.py
