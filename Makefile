# assistd: `make run` serves on SQLite, `make test` runs the whole suite. Both set up what they need:
# `make run` only Python (the runtime dependencies, and grpcio-tools for the stubs); `make install`
# (for lint and test) adds the dev extras, Node packages and the Go toolchain.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(wildcard protos/assistd/v1/*.proto)
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# ghz, the gRPC load tool (make ghz), pinned.
GHZ_VERSION := v0.120.0
GHZ := .cache/ghz/$(GHZ_VERSION)/ghz

.PHONY: install sandbox gen lint breaking run test test-cluster bench bench-quick ghz clean cassandra cassandra-stop
.PHONY: cassandra-cluster cassandra-cluster-stop go-client go-client-check java-example

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[gen]'
	touch $@

$(STAMP): $(RUNTIME)
	$(PY) -m pip install -q -e '.[gen,dev]'
	touch $@

# code_interpreter's sandbox: bubblewrap (the Debian package; installed here when make runs as root)
# and the sandbox's own Python with the data stack, built on the system Python under /usr (a box
# sees /usr, this venv and its work dir, nothing else of the machine).
SANDBOX_PYTHON ?= /usr/bin/python3
SANDBOX_VENV := .cache/sandbox/venv
SANDBOX := $(SANDBOX_VENV)/.installed

$(SANDBOX): service/sandbox/requirements.txt
	@command -v bwrap >/dev/null || [ "$$(id -u)" != 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap \
		|| (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap)
	@command -v bwrap >/dev/null || echo "code_interpreter needs bubblewrap: apt-get install bubblewrap"
	$(SANDBOX_PYTHON) -m venv $(SANDBOX_VENV)
	$(SANDBOX_VENV)/bin/python -m pip install -q -r service/sandbox/requirements.txt
	# matplotlib's font cache, built once: each session copies it instead of building it (~2 s)
	MPLCONFIGDIR=$(SANDBOX_VENV)/mplconfig $(SANDBOX_VENV)/bin/python -c "import matplotlib.font_manager"
	touch $@

sandbox: $(SANDBOX)

install: $(STAMP) $(SANDBOX) gen/.stamp tests/node/node_modules/.stamp go-deps examples/grpc/node/node_modules/.stamp $(GHZ) java-example

# The Node openai SDK, a second real client in the e2e tests (pinned by package-lock.json).
tests/node/node_modules/.stamp: tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

# The Node gRPC example (@grpc/grpc-js), run by tests/e2e/test_clients.py.
examples/grpc/node/node_modules/.stamp: examples/grpc/node/package.json examples/grpc/node/package-lock.json
	npm ci --prefix examples/grpc/node --no-audit --no-fund
	touch $@

# The Java gRPC example (grpc-java; Maven generates its classes from protos/): one runnable jar, run
# by tests/e2e/test_clients.py. Maven's repository is the project's cache, so a fresh clone
# downloads the plugins, protoc and the jars once (~70 MB; the first build took 2.5 minutes on a
# busy 2-core machine) and the test runs offline. Its .mvn/jvm.config runs Maven's JVM with C1 only:
# javac on the ~6.6 MB of generated code then takes half the CPU time.
JAVA_EXAMPLE := examples/grpc/java
JAVA_JAR := $(JAVA_EXAMPLE)/target/round-trip.jar
MVN := mvn -q -B -Dmaven.repo.local=$(CURDIR)/.cache/m2

$(JAVA_JAR): $(JAVA_EXAMPLE)/pom.xml $(shell find $(JAVA_EXAMPLE)/src -name '*.java') $(PROTOS)
	cd $(JAVA_EXAMPLE) && $(MVN) package

java-example: $(JAVA_JAR)

# Go: the toolchain and every module come from the Go proxy, pinned, cached in .cache/go (a
# toolchain on PATH is not used, so every machine builds with the same one).
GO_VERSION := 1.26.8
GO_CACHE := $(CURDIR)/.cache/go
GO := $(GO_CACHE)/toolchain/bin/go
GO_ENV := GOMODCACHE=$(GO_CACHE)/mod GOCACHE=$(GO_CACHE)/build GOTOOLCHAIN=local GOBIN=$(GO_CACHE)/bin GOFLAGS='-mod=readonly -modcacherw'
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0

$(GO):
	mkdir -p $(GO_CACHE)
	curl -fsSL -o $(GO_CACHE)/toolchain.zip \
		https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$(GO_VERSION).linux-amd64.zip
	rm -rf $(GO_CACHE)/toolchain $(GO_CACHE)/golang.org
	cd $(GO_CACHE) && $(PYTHON) -m zipfile -e toolchain.zip . && rm toolchain.zip
	mv $(GO_CACHE)/golang.org/toolchain@v0.0.1-go$(GO_VERSION).linux-amd64 $(GO_CACHE)/toolchain
	rm -rf $(GO_CACHE)/golang.org
	chmod +x $(GO_CACHE)/toolchain/bin/* $(GO_CACHE)/toolchain/pkg/tool/*/*  # module zips keep no modes

# The Go client's and examples' modules (go.sum pins them), and the protoc plugins buf.gen.yaml uses.
go-deps: $(GO_CACHE)/.deps
$(GO_CACHE)/.deps: $(GO) clients/go/go.sum examples/grpc/go/go.sum
	cd clients/go && $(GO_ENV) $(GO) mod download
	cd examples/grpc/go && $(GO_ENV) $(GO) mod download
	$(GO_ENV) $(GO) install $(PROTOC_GEN_GO)
	$(GO_ENV) $(GO) install $(PROTOC_GEN_GO_GRPC)
	touch $@

# clients/go/assistd/v1 is generated from protos/ by buf (buf.gen.yaml) and committed, so
# `go get` works; go-client-check (in make lint) fails when it is not what the protos give.
go-client: $(STAMP) go-deps
	rm -f clients/go/assistd/v1/*.pb.go
	PATH=$(GO_CACHE)/bin:$$PATH $(VENV)/bin/buf generate --template buf.gen.yaml

go-client-check: go-client
	git diff --exit-code --stat -- clients/go
	test -z "$$(git status --porcelain -- clients/go)"

# Stubs are generated, never edited: gen/ is rebuilt from protos/ whenever a .proto changes,
# then the project is re-registered so the editable install also maps the generated package.
gen/.stamp: $(PROTOS) $(RUNTIME)
	rm -rf gen/assistd
	mkdir -p gen
	$(PY) -m grpc_tools.protoc -I protos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

gen: gen/.stamp

# Python: ruff (lint + format) and mypy, generated code fenced off in pyproject.toml. Protos: buf lint,
# buf format, and buf breaking against the epoch's earlier states (a breaking change must be made on purpose).
lint: install
	$(VENV)/bin/ruff check service edge tests
	$(VENV)/bin/ruff format --check service edge tests
	$(VENV)/bin/mypy
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf format --diff --exit-code
	$(MAKE) --no-print-directory breaking
	$(MAKE) --no-print-directory go-client-check
	for dir in clients/go examples/grpc/go; do \
		(cd $$dir && $(GO_ENV) $(GO) vet ./... && test -z "$$($(GO_CACHE)/toolchain/bin/gofmt -l .)") || exit 1; \
	done

# buf breaking against the earlier states of the API's epoch, not against main alone (on main that
# compares main with itself): see tools/buf/breaking.sh. The one way past it is on purpose and in
# review: a change that breaks v1 before 1.0 bumps protos/EPOCH in the same commit.
breaking:
	BUF=$(VENV)/bin/buf tools/buf/breaking.sh

run: $(RUNTIME) gen/.stamp
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

# ghz (gRPC load tool), pinned, built with the project's Go toolchain into the project's cache.
$(GHZ): $(GO)
	mkdir -p $(@D)
	$(GO_ENV) GOBIN=$(CURDIR)/$(@D) $(GO) install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

ghz: $(GHZ)

# BENCHMARKS.md and its PNG plots, every figure a ratio measured in one run (~20 minutes; sizes
# from BENCH_* env vars, see tests/perf/bench.py). bench-quick: small sizes (a few minutes), written
# the same way, without the three-node cluster. `make bench` first runs the cluster suite
# (test-cluster, ~17 minutes), which does not fit beside `make test` in CI's time.
bench: install cassandra cassandra-cluster $(GHZ)
	$(MAKE) --no-print-directory test-cluster
	GHZ=$(GHZ) $(PY) -m tests.perf.bench

bench-quick: install cassandra $(GHZ)
	BENCH_QUICK=1 GHZ=$(GHZ) $(PY) -m tests.perf.bench

clean:
	rm -rf $(VENV) gen data tests/node/node_modules examples/grpc/node/node_modules $(JAVA_EXAMPLE)/target .cache
