# assistd: `make run` serves on SQLite, `make test` runs the whole suite. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(wildcard protos/assistd/v1/*.proto)
STAMP := $(VENV)/.installed

.PHONY: install gen lint breaking run test bench clean cassandra cassandra-stop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP) gen/.stamp tests/node/node_modules/.stamp

# The Node openai SDK, a second real client in the e2e tests (pinned by package-lock.json).
tests/node/node_modules/.stamp: tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

# Stubs are generated, never edited: gen/ is rebuilt from protos/ whenever a .proto changes,
# then the project is re-registered so the editable install also maps the generated package.
gen/.stamp: $(PROTOS) $(STAMP)
	rm -rf gen/assistd
	mkdir -p gen
	$(PY) -m grpc_tools.protoc -I protos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

gen: gen/.stamp

# Python: ruff (lint + format) and mypy, generated code fenced off in pyproject.toml. Protos: buf lint,
# buf format, and buf breaking against the main branch (a breaking change must be made on purpose).
lint: install
	$(VENV)/bin/ruff check service edge tests
	$(VENV)/bin/ruff format --check service edge tests
	$(VENV)/bin/mypy
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf format --diff --exit-code
	$(MAKE) --no-print-directory breaking

# The one way past buf breaking is on purpose and in review: protos/EPOCH names the API's epoch, and
# a change that breaks v1 before 1.0 bumps it. While main still has the older epoch, the comparison
# with main is skipped (and says so); once the break is on main, the guard is back by itself.
MAIN_EPOCH = $$(git show main:protos/EPOCH 2>/dev/null || echo 1)
breaking:
	@if [ "$(MAIN_EPOCH)" = "$$(cat protos/EPOCH)" ]; then \
		$(VENV)/bin/buf breaking --against "$$(git rev-parse --git-common-dir)#branch=main"; \
	else \
		echo "buf breaking: skipped: protos/EPOCH is $$(cat protos/EPOCH), main's is $(MAIN_EPOCH) (a deliberate v1 break)"; \
	fi

run: install
	$(VENV)/bin/assistd serve

# A real single-node Cassandra 5.0 from Maven Central jars (cached in .cache/cassandra): the store
# contract suite and the e2e modules marked STORES run on it as well as on SQLite.
cassandra:
	tools/cassandra/start.sh start

cassandra-stop:
	tools/cassandra/start.sh stop

# The order is random (pytest-randomly; the seed is printed): PYTEST_ARGS="-p no:randomly" runs it
# in file order, PYTEST_ARGS="-p randomly --randomly-seed=N" repeats a seed.
test: install cassandra
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install cassandra
	$(PY) -m tests.perf.bench

clean:
	rm -rf $(VENV) gen data tests/node/node_modules .cache
