# assistd: `make run` serves on SQLite, `make test` runs the whole suite. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(wildcard protos/assistd/v1/*.proto)
STAMP := $(VENV)/.installed

.PHONY: install gen lint run test test-cluster bench bench-quick ghz clean cassandra cassandra-stop cassandra-cluster cassandra-cluster-stop

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
	$(VENV)/bin/buf breaking --against "$$(git rev-parse --git-common-dir)#branch=main"

run: install
	$(VENV)/bin/assistd serve

# A real single-node Cassandra 5.0 from Maven Central jars (cached in .cache/cassandra): the store
# contract suite and the e2e modules marked STORES run on it as well as on SQLite.
cassandra:
	tools/cassandra/start.sh start

cassandra-stop:
	tools/cassandra/start.sh stop

# Three nodes on 127.0.0.2-4 from the same jars, beside the single node (tools/cassandra/cluster.sh
# also kills and restarts one node): the replica, store and node-loss suites run on it with
# replication factor 3 and LOCAL_QUORUM.
cassandra-cluster:
	tools/cassandra/cluster.sh start

cassandra-cluster-stop:
	tools/cassandra/cluster.sh stop

CLUSTER_HOSTS := 127.0.0.2,127.0.0.3,127.0.0.4:9042
CLUSTER_OPTIONS := replication_factor=3&consistency=LOCAL_QUORUM
test-cluster: install cassandra-cluster
	ASSISTD_TEST_CLUSTER=1 ASSISTD_TEST_CASSANDRA_HOSTS='$(CLUSTER_HOSTS)' ASSISTD_TEST_CASSANDRA_OPTIONS='$(CLUSTER_OPTIONS)' \
	ASSISTD_TEST_CASSANDRA='cassandra://$(CLUSTER_HOSTS)/assistd_contract?$(CLUSTER_OPTIONS)' \
	$(PY) -m pytest -q -p no:randomly tests/contract/test_store.py tests/e2e/test_replicas.py tests/cluster $(PYTEST_ARGS)

# The order is random (pytest-randomly; the seed is printed): PYTEST_ARGS="-p no:randomly" runs it
# in file order, PYTEST_ARGS="-p randomly --randomly-seed=N" repeats a seed.
test: install cassandra
	$(PY) -m pytest -q $(PYTEST_ARGS)

# ghz (gRPC load tool), pinned, built from the Go module proxy into the project's cache: needs Go.
# The module cache lives in .cache/go too, writable so `make clean` can remove it.
GHZ_VERSION := v0.120.0
GHZ := .cache/ghz/$(GHZ_VERSION)/ghz

$(GHZ):
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) GOPATH=$(CURDIR)/.cache/go GOFLAGS=-modcacherw GOTOOLCHAIN=local \
		go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

ghz: $(GHZ)

# BENCHMARKS.md and its PNG plots, every figure a ratio measured in one run (~20 minutes; sizes
# from BENCH_* env vars, see tests/perf/bench.py). bench-quick: small sizes (a few minutes), written
# the same way, without the three-node cluster.
bench: install cassandra cassandra-cluster $(GHZ)
	GHZ=$(GHZ) $(PY) -m tests.perf.bench

bench-quick: install cassandra $(GHZ)
	BENCH_QUICK=1 GHZ=$(GHZ) $(PY) -m tests.perf.bench

clean:
	rm -rf $(VENV) gen data tests/node/node_modules .cache
