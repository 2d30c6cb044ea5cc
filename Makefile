# Night Talk: `make run` starts the whole system locally, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES := intake routing supervision notify
# Each service with its test extra (test servers and property testing tools).
PACKAGES := libs/eventbus libs/servicekit $(foreach s,$(SERVICES),services/$(s)[test])

.PHONY: install run migrate seed test test-sqlite test-postgresql bench bench-scale proof lint format clean

$(STAMP): constraints.txt requirements-dev.txt $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	scripts/ensure-system-packages.sh
	$(BIN)/pip install -q -c constraints.txt $(addprefix -e ,$(PACKAGES)) -r requirements-dev.txt
	touch $@

install: $(STAMP)  ## create the virtualenv and install every package, pinned

migrate: install  ## bring every service's local database to head
	@for s in $(SERVICES); do $(BIN)/nighttalk $$s migrate || exit 1; done

seed: migrate  ## declare the services' queues, then load the unit directory into routing (idempotent)
	$(BIN)/nighttalk broker declare
	$(BIN)/nighttalk routing seed

run: install  ## start every process of every service on SQLite files and the local RabbitMQ
	scripts/ensure-services.sh rabbitmq
	$(MAKE) --no-print-directory seed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f deploy/Procfile -d . start

test: install  ## the whole suite on SQLite, then on PostgreSQL
	scripts/ensure-services.sh rabbitmq postgresql
	$(MAKE) --no-print-directory test-sqlite test-postgresql

test-sqlite: install
	NIGHTTALK_TEST_DB=sqlite $(BIN)/pytest

test-postgresql: install
	NIGHTTALK_TEST_DB=postgresql $(BIN)/pytest

bench: install  ## measure latency and throughput on PostgreSQL; writes bench/results/<date>.*
	scripts/ensure-services.sh rabbitmq postgresql
	$(BIN)/pip install -q -c constraints.txt -r bench/requirements.txt
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.scale $(SCALE_ARGS)

bench-scale: install  ## 1,000,000 cases: ladder sweep, a year's statistics, case queries; bench/results/<date>-scale.*
	scripts/ensure-services.sh rabbitmq postgresql
	$(BIN)/python -m bench.scale $(SCALE_ARGS)

proof: install  ## the proof suite at full size on PostgreSQL; prints its table, writes var/proof/
	scripts/ensure-services.sh rabbitmq postgresql
	NIGHTTALK_TEST_DB=postgresql NIGHTTALK_PROOF=full $(BIN)/pytest tests/proof $(PROOF_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var
