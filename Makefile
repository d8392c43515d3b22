# vk-eci developer commands. Everything the project needs is installed from here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Hermetic network (README, "Hermetic tests"): the tests and the bench run in a private network namespace
# with only lo (127.0.0.1 and 10.250.0.1) and no route out; e2e/netns.py makes it. Builds and installs run
# before it (there is no network inside). PYTEST_ARGS picks tests, e.g. PYTEST_ARGS=tests/unit/test_config.py.
NETNS  := $(PY) -m e2e.netns --
PYTEST_ARGS ?=

.PHONY: dev test unit e2e controlplane helm metrics-server cluster-up cluster-down lint zipapp demo demo-down bench bench-peer peer-build bench-fake fault-run clean

# Re-install only when the dependency list changes, so `make dev` is fast when nothing did.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

dev: $(STAMP)

# Never ask the ECS metadata service (100.100.100.200) for credentials, not even outside the namespace.
test unit e2e bench bench-peer bench-fake fault-run demo: export ALIBABA_CLOUD_ECS_METADATA_DISABLED = true

# The zipapp test (tests/fake/test_fake_zipapp.py) needs dist/vkeci.pyz, whose build downloads dependencies;
# the `kubectl top`/HPA test (tests/e2e/test_metrics_server.py) needs metrics-server. Both build out here.
test: dev controlplane metrics-server dist/vkeci.pyz
	$(NETNS) $(PY) -m pytest $(PYTEST_ARGS)

unit: dev
	$(NETNS) $(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

e2e: dev controlplane metrics-server dist/vkeci.pyz
	$(NETNS) $(PY) -m pytest -m e2e $(PYTEST_ARGS)

# The local control plane (see README, "Local control plane"): build it, or run one in .demo/cluster.
controlplane: dev
	$(PY) -m e2e.build

# helm, built from its Go module (no package provides it) and cached outside the repo (see README, "Install in a cluster").
helm: dev
	$(PY) -m e2e.helm

# metrics-server, built from its Go module and cached outside the repo, the optional control-plane component
# behind `kubectl top` and the HPA (see README, "Local control plane").
metrics-server: dev
	$(PY) -m e2e.metrics_server

cluster-up: dev
	$(PY) -m e2e.cluster up --dir .demo/cluster

cluster-down: dev
	$(PY) -m e2e.cluster down --dir .demo/cluster

# Control plane + fake ECI + `vkeci run` + an nginx Deployment, left running (see README, "Demo").
# On loopback in your own network, so that kubectl from your shell reaches it; DEMO_NETNS=1 runs it in a
# private namespace instead (node IP 10.250.0.1, so kubectl logs/exec work; the demo prints how to enter).
demo: dev controlplane $(if $(filter 1,$(DEMO_NETNS)),metrics-server)
	$(if $(filter 1,$(DEMO_NETNS)),$(NETNS)) $(PY) scripts/demo.py up

demo-down: dev
	$(PY) scripts/demo.py down

# Burst benchmark (issue 7, BENCHMARKS.md): N pods up and down through the daemon. Not part of `make test`.
# Run a part with e.g. BENCH_ARGS="--sizes 100 --mode unlimited --workload bare".
bench: dev
	$(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(PY) -m e2e.build
	$(NETNS) $(PY) scripts/bench.py $(BENCH_ARGS)

# vk-eci against the Go virtual-kubelet v1.13.0 (mock provider, limits lifted) and a bare client, interleaved on
# one control plane (issue 18, BENCHMARKS.md). Default: 1,000 pods x 3 rounds; e.g. BENCH_ARGS="--sizes 200 --rounds 1".
bench-peer: dev
	$(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(PY) -m e2e.build
	$(PY) -m e2e.peer_build
	$(NETNS) $(PY) scripts/bench_peer.py $(BENCH_ARGS)

# Only build (or report the cached) peer and floor binaries of bench-peer (~/.cache/vkeci/vk-peer-*, vk-floor-*).
peer-build: dev
	$(PY) -m e2e.peer_build

# The final fault run of issue 12 (BENCHMARKS.md, "Fault run"): 300 pods while the fake drops, fails and throttles
# replies and the daemon is killed -9 four times; about 5 min (at most 25: the ramp and the scale to 0 time out
# at 15 and 10 min). A quick try: FAULT_RUN_ARGS="--replicas 30 --ramp-kills 0.5 --down-kills 0".
fault-run: dev
	$(PY) -m e2e.build
	$(NETNS) $(PY) scripts/fault_run.py $(FAULT_RUN_ARGS)

# Requests/s of the fake ECI through the real SDK, and the cost of thousands of simulated groups.
bench-fake: dev
	$(NETNS) $(PY) scripts/bench_fake.py

lint: dev
	$(VENV)/bin/ruff check vkeci fakes e2e tests scripts vkeci.py
	$(VENV)/bin/ruff format --check vkeci fakes e2e tests scripts vkeci.py
	$(VENV)/bin/mypy vkeci fakes $(wildcard e2e/*.py scripts/*.py)

# Rebuilt only when a source file changed (what tests/fake/test_fake_zipapp.py checks too). Built for the venv's
# Python (PYTHON=python3.12 with a fresh venv for another one); it refuses to run on any other (scripts/zipapp.py).
ZIPAPP_SOURCES := pyproject.toml scripts/zipapp.py $(shell find vkeci fakes -name '*.py' 2>/dev/null)
dist/vkeci.pyz: $(STAMP) $(ZIPAPP_SOURCES)
	$(PY) scripts/zipapp.py $@

zipapp: dist/vkeci.pyz

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
