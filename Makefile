# vk-eci developer commands. Everything the project needs is installed from here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: dev test unit e2e controlplane cluster-up cluster-down lint zipapp demo demo-down bench bench-peer peer-build bench-fake clean

# Re-install only when the dependency list changes, so `make dev` is fast when nothing did.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

dev: $(STAMP)

test: dev
	$(PY) -m pytest

unit: dev
	$(PY) -m pytest -m "not e2e"

e2e: dev
	$(PY) -m pytest -m e2e

# The local control plane (see README, "Local control plane"): build it, or run one in .demo/cluster.
controlplane: dev
	$(PY) -m e2e.build

cluster-up: dev
	$(PY) -m e2e.cluster up --dir .demo/cluster

cluster-down: dev
	$(PY) -m e2e.cluster down --dir .demo/cluster

# Control plane + fake ECI + `vkeci run` + an nginx Deployment, left running (see README, "Demo").
demo: dev
	$(PY) scripts/demo.py up

demo-down: dev
	$(PY) scripts/demo.py down

# Burst benchmark (issue 7, BENCHMARKS.md): N pods up and down through the daemon. Not part of `make test`.
# Run a part with e.g. BENCH_ARGS="--sizes 100 --mode unlimited --workload bare".
bench: dev
	$(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(PY) scripts/bench.py $(BENCH_ARGS)

# vk-eci against the Go virtual-kubelet v1.13.0 (mock provider, limits lifted) and a bare client, interleaved on
# one control plane (issue 18, BENCHMARKS.md). Default: 1,000 pods x 3 rounds; e.g. BENCH_ARGS="--sizes 200 --rounds 1".
bench-peer: dev
	$(PY) scripts/bench_peer.py $(BENCH_ARGS)

# Only build (or report the cached) peer and floor binaries of bench-peer (~/.cache/vkeci/vk-peer-*, vk-floor-*).
peer-build: dev
	$(PY) -m e2e.peer_build

# Requests/s of the fake ECI through the real SDK, and the cost of thousands of simulated groups.
bench-fake: dev
	$(PY) scripts/bench_fake.py

lint: dev
	$(VENV)/bin/ruff check vkeci fakes e2e tests scripts vkeci.py
	$(VENV)/bin/ruff format --check vkeci fakes e2e tests scripts vkeci.py
	$(VENV)/bin/mypy vkeci fakes $(wildcard e2e/*.py scripts/*.py)

zipapp: dev
	@mkdir -p dist
	$(VENV)/bin/shiv --compressed -q -c vkeci -o dist/vkeci.pyz .
	@echo "built dist/vkeci.pyz"

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
