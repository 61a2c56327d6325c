# photosite: `make run` sets up and starts everything; `make test` sets up and runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
HOST ?= 127.0.0.1
PORT ?= 8000
QUICK ?=
MODULES ?=
# make test runs the suite in this many processes (pytest-xdist), a test file each: most tests wait on
# workers, servers and browsers, so 2 on 2 cores takes about 10 min where 1 took 19.6.
TEST_PROCESSES ?= 2
comma := ,
export HOST PORT

.PHONY: install install-dev run test bench mutation lint format superuser browser axe mosquitto clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip "setuptools<81" wheel
	$(PIP) install --quiet -r requirements.txt
	# dlib comes from dlib-bin, which does not provide the name "dlib": install these without deps.
	$(PIP) install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

var/secret_key:
	mkdir -p var
	$(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > $@

# Cookies are Secure-only unless SECURE_COOKIES=0; runsite turns that off only for plain HTTP on a loopback
# HOST with no HTTPS proxy configured, and prints which it chose (README, "Limits, faults and security").
run: install var/secret_key
	SECRET_KEY="$$(cat var/secret_key)" $(BIN)/python manage.py migrate --noinput
	SECRET_KEY="$$(cat var/secret_key)" $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	SECRET_KEY="$$(cat var/secret_key)" exec $(BIN)/python manage.py runsite

superuser: install var/secret_key
	SECRET_KEY="$$(cat var/secret_key)" $(BIN)/python manage.py migrate --noinput
	SECRET_KEY="$$(cat var/secret_key)" $(BIN)/python manage.py createsuperuser

# The browser test drives Debian's Chromium; install it when missing (root on Debian, as on CI).
browser:
	@test -x /usr/bin/chromium || { \
		echo "Installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# axe-core (accessibility rules) from the npm registry, injected into pages by the browser tests.
AXE_VERSION ?= 4.14.1
AXE := var/axe/node_modules/axe-core/axe.min.js
axe: $(AXE)

$(AXE):
	@command -v npm >/dev/null || { echo "Installing Debian's npm for axe-core"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	mkdir -p var/axe
	cd var/axe && npm install --no-audit --no-fund --silent --save-exact --prefix . axe-core@$(AXE_VERSION)


# The MQTT tests start Debian's mosquitto on a free port of their own; install it when missing.
mosquitto:
	@test -x /usr/sbin/mosquitto || command -v mosquitto >/dev/null || { \
		echo "Installing Debian's mosquitto for the MQTT tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; }

test: install-dev browser $(AXE) mosquitto
	$(BIN)/python -m pytest --numprocesses $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

bench: install-dev
	$(BIN)/python -m benchmarks.run $(if $(QUICK),--quick,)

# Mutation testing of the core (cosmic-ray), module by module with the tests that cover it; MODULES=matching,engine
# for some, MUTATION_ARGS="--jobs 2" for two mutants at a time (--again, --resume, --fresh: see README).
# Writes benchmarks/results/mutation.json and prints the survivors. Not part of CI: about two hours on 2 cores
# (engine and enqueue 45 min each).
mutation: install-dev
	$(BIN)/python -m benchmarks.mutation $(foreach m,$(subst $(comma), ,$(MODULES)),--module $(m)) $(MUTATION_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var/static test-artifacts .pytest_cache
