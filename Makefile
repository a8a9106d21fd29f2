# ramen-p2p developer entry points. `make test` and `make demo` work on a fresh machine:
# they create the virtualenv and build the local control planes and S3 server on first use.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test lint typecheck unit build env-up env-down env-status demo bench bench-sim clean

$(STAMP): pyproject.toml
	@echo "==> creating virtualenv $(VENV) and installing ramen-p2p with dev tools"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

lint: $(STAMP)
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	@echo "==> mypy"
	@$(VENV)/bin/mypy

build: $(STAMP)
	@echo "==> building kube-apiserver, kube-controller-manager, kubectl, etcd, the S3 server and Ramen's manager (cached outside git)"
	@$(PY) -m e2e.localenv build
	@echo "==> building Flux's source-controller and kustomize-controller (cached outside git)"
	@$(PY) -m e2e.localenv.flux
	@echo "==> building Argo CD's ApplicationSet controller (cached outside git)"
	@$(PY) -m e2e.localenv.argocd
	@echo "==> building the upstream verdict checks: kstatus, Flux CEL, Argo CD health (cached outside git)"
	@$(PY) -m e2e.localenv.verdicts

unit: $(STAMP)
	@$(VENV)/bin/pytest tests/unit

# The unit and simulation tests need CPU, the suites against real servers mostly wait on them: the
# two run side by side, the first niced, its report printed once both are done.
test: lint typecheck build
	@echo "==> pytest: e2e scenarios and integration against real kube-apiservers and S3; beside them, niced, unit and simulation tests (their report follows)"
	@log=$$(mktemp); \
	 nice -n 5 $(VENV)/bin/pytest tests/unit tests/sim >"$$log" 2>&1 & fast=$$!; \
	 $(VENV)/bin/pytest tests/e2e tests/integration; real=$$?; \
	 wait $$fast; quick=$$?; \
	 echo "==> unit and simulation tests"; cat "$$log"; rm -f "$$log"; \
	 test $$real -eq 0 && test $$quick -eq 0

env-up: build
	@$(PY) -m e2e.localenv up --clusters east,west

env-down: $(STAMP)
	@$(PY) -m e2e.localenv down

env-status: $(STAMP)
	@$(PY) -m e2e.localenv status

demo: $(STAMP)
	@$(PY) -m e2e.demo

bench-sim: $(STAMP)
	@$(PY) bench/bench_sim.py --schedules $${SCHEDULES:-100000}

clean: env-down
	rm -rf $(VENV)
