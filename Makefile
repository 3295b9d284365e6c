# kmemfleet — top-level tasks. Everything Python runs from a local virtualenv
# (.venv) that the first target needing it creates, so a fresh clone needs
# nothing but python3 (with venv) and make.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_SRC := $(wildcard proto/kmemfleet/v1/*.proto)

.PHONY: all demo test lint format proto grafana kmod kmod-test bench bundle bundle-all image-amd64 bench-query bench-console bench-kmod bench-heldout-e bench-heldout-f bench-heldout-g clean distclean help

all: help

help:
	@echo "make demo     run the end-to-end demo (embedded PostgreSQL, server, agents)"
	@echo "make test     run the whole test suite"
	@echo "make lint     ruff + mypy"
	@echo "make proto    regenerate Python code from proto/"
	@echo "make kmod     build the kernel module (kmod/)"
	@echo "make bench    run the benchmarks under bench/ (bench-query, bench-kmod too)"
	@echo "make bundle ARCH=x86_64|aarch64|armv7l  self-contained agent tarball in build/bundle/ (KDIR= adds mlt.ko)"

# The virtualenv is rebuilt when the dependency list changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# From a terminal the demo keeps its server and web console up until Ctrl-C;
# from a script it runs through and stops (DEMO_ARGS= overrides either way).
# stdin and stderr: $(shell) captures stdout, so `test -t 1` is never true here.
DEMO_ARGS ?= $(shell test -t 0 && test -t 2 && echo --serve)

demo: $(BIN)/.installed
	$(BIN)/kmemfleet demo $(DEMO_ARGS)

# -rs lists every skipped test with the reason and the install hint.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -rs $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check kmemfleet tests bench deploy/grafana
	$(BIN)/ruff format --check kmemfleet tests bench deploy/grafana
	$(BIN)/mypy kmemfleet

format: $(BIN)/.installed
	$(BIN)/ruff check --fix kmemfleet tests bench deploy/grafana
	$(BIN)/ruff format kmemfleet tests bench deploy/grafana

# Generated code lives in kmemfleet/v1 and is committed; a test regenerates it
# into a scratch folder and fails when the committed copy is stale.
# The Grafana dashboard, from its builder (a test fails when it is stale).
grafana: $(BIN)/.installed
	$(BIN)/python deploy/grafana/build_dashboard.py

proto: $(BIN)/.installed
	$(BIN)/python -m kmemfleet.protogen kmemfleet/v1

kmod:
	$(MAKE) -C kmod

kmod-test:
	$(MAKE) -C kmod test

# Self-contained agent bundle for a device architecture: x86_64, aarch64, armv7l.
ARCH ?= x86_64
bundle:
	bash deploy/bundle/build.sh $(ARCH)

bundle-all:
	for a in x86_64 aarch64 armv7l; do bash deploy/bundle/build.sh $$a || exit 1; done

# The amd64 server image without a Docker engine (buildah + debootstrap).
image-amd64:
	bash deploy/container/build-amd64-here.sh server

# Each benchmark prints its figures beside a baseline measured in the same run.
bench: $(BIN)/.installed
	$(BIN)/python bench/agent.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/analysis.py --keyframe-every 12

# Query latency at 10,000 devices x 500 stacks: slow to populate, so on its own.
bench-query: $(BIN)/.installed
	$(BIN)/python bench/query.py
	$(BIN)/python bench/release.py

# Web console API latency and page paint at the same size (needs .ci/install-web.sh).
bench-console: $(BIN)/.installed
	nice $(BIN)/python bench/console.py

# Held-out set E (issue 12): a real server scored on a blind labelled fleet
# (bench/heldout_e/PREREGISTRATION.md); log every run in bench/heldout_e/RUNS.md.
bench-heldout-e: $(BIN)/.installed
	nice $(BIN)/python -m bench.heldout_e.score $(HELDOUT_E_ARGS)

# Held-out set F (issue 12): a second blind fleet, its own laws and firmware layout
# (bench/heldout_f/PREREGISTRATION.md); seeds 1-10 are a look: log it in bench/heldout_f/RUNS.md.
bench-heldout-f: $(BIN)/.installed
	nice $(BIN)/python -m bench.heldout_f.score $(HELDOUT_F_ARGS)

# Held-out set G (issue 12): a third blind fleet, three firmware (aarch64, x86_64 heavily
# sampled, armv7 5.10), 72 h on one (bench/heldout_g/PREREGISTRATION.md); seeds 1-10 are a
# look: log it in bench/heldout_g/RUNS.md. Debug on a seed outside 1-10:
# make bench-heldout-g HELDOUT_G_ARGS="--quick --seeds 99"
bench-heldout-g: $(BIN)/.installed
	nice $(BIN)/python -m bench.heldout_g.score $(HELDOUT_G_ARGS)

# kmalloc+kfree cost of mlt.ko under QEMU (needs .ci/install-kmod.sh).
# Wall clock under QEMU TCG, then the same in instructions (QEMU -icount:
# deterministic, immune to the host's load; 5 repetitions are plenty).
bench-kmod:
	bash bench/kmod/run-bench.sh
	ICOUNT=0 bash bench/kmod/run-bench.sh 5

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
	-$(MAKE) -C kmod clean

distclean: clean
	rm -rf $(VENV)
