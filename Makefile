# imgpipe: `make run` and `make test` set up their own virtual environment first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# Python 3.12, the Lambda runtime the template declares.
PYTHON ?= $(shell for p in python3.12 $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12 2>/dev/null); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
STAMP := $(VENV)/.installed
# checkov pins dependencies the project's own tools conflict with: it lives in a virtualenv of its own.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
# Only PyPI is reachable: no Prisma Cloud download, no update check.
CHECKOV := CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov \
	--framework cloudformation --skip-download --compact --quiet

.PHONY: help venv console-assets console-screenshot lint format typecheck cfn-lint security test test-unit test-sfn-local \
	test-localstack engine-table bench bench-photos bench-local run clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required (the Lambda runtime in template.yaml); set PYTHON=/path/to/python3.12" >&2; exit 2; }
	"$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP) console-assets ## Create .venv with the pinned tools

# The console's browser libraries (htmx, dagre), from the npm registry at build time, pinned by
# package-lock.json; copied with their licences into static/vendor/ (git-ignored; no CDN at run time).
CONSOLE := src/imgpipe/console
CONSOLE_VENDOR := $(CONSOLE)/static/vendor
CONSOLE_ASSETS := $(CONSOLE_VENDOR)/.installed

$(CONSOLE_ASSETS): $(CONSOLE)/package.json $(CONSOLE)/package-lock.json
	@command -v npm >/dev/null || { echo "console-assets needs npm (Node 20 or later)" >&2; exit 2; }
	cd $(CONSOLE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(CONSOLE_VENDOR) && mkdir -p $(CONSOLE_VENDOR)
	cp $(CONSOLE)/node_modules/htmx.org/dist/htmx.min.js $(CONSOLE_VENDOR)/
	cp $(CONSOLE)/node_modules/htmx.org/LICENSE $(CONSOLE_VENDOR)/htmx.LICENSE
	cp $(CONSOLE)/node_modules/@dagrejs/dagre/dist/dagre.min.js $(CONSOLE_VENDOR)/
	cp $(CONSOLE)/node_modules/@dagrejs/dagre/LICENSE $(CONSOLE_VENDOR)/dagre.LICENSE
	cp $(CONSOLE)/node_modules/@dagrejs/graphlib/LICENSE $(CONSOLE_VENDOR)/graphlib.LICENSE
	touch $(CONSOLE_ASSETS)

console-assets: $(CONSOLE_ASSETS) ## The console's htmx and dagre (npm ci) into static/vendor/

console-screenshot: ## docs/images/console-execution.png from the browser tests' out/screenshots/
	@test -f out/screenshots/console-execution.png || { echo "run the console tests first: $(BIN)/pytest tests/console" >&2; exit 2; }
	cp out/screenshots/console-execution.png docs/images/console-execution.png

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy
	$(BIN)/mypy

cfn-lint: $(STAMP) ## Lint template.yaml
	$(BIN)/cfn-lint template.yaml

$(CHECKOV_STAMP):
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required; set PYTHON=/path/to/python3.12" >&2; exit 2; }
	rm -rf $(CHECKOV_VENV)
	"$(PYTHON)" -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $(CHECKOV_STAMP)

security: $(STAMP) $(CHECKOV_STAMP) ## checkov on template.yaml and on its aws-sam-translator output
	$(CHECKOV) --file template.yaml
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(BIN)/python -m localcloud.sam > "$$tmp/transformed.json" && \
	  echo "checkov on the aws-sam-translator output:" && \
	  $(CHECKOV) --file "$$tmp/transformed.json"

test: $(STAMP) console-assets lint typecheck cfn-lint security ## Everything CI runs
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-localstack

test-unit: $(STAMP) ## Unit tests only
	$(BIN)/pytest tests/unit

# LocalStack (localstack-core from PyPI) is the state-machine cases' third engine. It runs on the host, without
# Docker: its Step Functions answers the mocked states from the same MockConfigFile.json (SFN_MOCK_CONFIG), so
# no Lambda runs. It needs Python 3.13 and pins of its own (tests/statemachine/localstack-requirements.txt),
# in a virtualenv of its own.
PYTHON313 ?= $(shell for p in python3.13 $$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13 2>/dev/null); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
LOCALSTACK_VENV := .venv-localstack
LOCALSTACK_REQUIREMENTS := tests/statemachine/localstack-requirements.txt
LOCALSTACK_STAMP := $(LOCALSTACK_VENV)/.installed
LOCALSTACK_LOG := out/logs/localstack.log

$(LOCALSTACK_STAMP): $(LOCALSTACK_REQUIREMENTS)
	@test -n "$(PYTHON313)" || { echo "test-localstack needs Python 3.13 (localstack-core's runtime): install python3.13 \
	(apt-get install python3.13 python3.13-venv, or pyenv install 3.13), or set PYTHON313=/path/to/python3.13" >&2; exit 2; }
	rm -rf $(LOCALSTACK_VENV)
	"$(PYTHON313)" -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCALSTACK_VENV)/bin/python -m pip install --quiet -r $(LOCALSTACK_REQUIREMENTS)
	touch $(LOCALSTACK_STAMP)

# Started on a free loopback port, its state and temporary files in a temporary directory, its log in
# out/logs/localstack.log; stopped (and the directory removed) whatever happens. REQUIRE_LOCALSTACK=1 makes the
# localstack tests fail rather than skip if it cannot be reached.
test-localstack: $(STAMP) $(LOCALSTACK_STAMP) ## The state-machine cases on LocalStack (host mode, no Docker)
	@set -euo pipefail; \
	tmp=$$(mktemp -d); pid=""; \
	stop() { if [ -n "$$pid" ]; then kill "$$pid" 2>/dev/null || true; \
	    for i in $$(seq 100); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.1; done; kill -9 "$$pid" 2>/dev/null || true; fi; \
	  rm -rf "$$tmp"; }; \
	trap stop EXIT; trap 'exit 130' INT TERM; \
	port=$$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	endpoint=http://127.0.0.1:$$port; \
	mkdir -p $(dir $(LOCALSTACK_LOG)) "$$tmp/tmp"; started=$$(date +%s%N); \
	env GATEWAY_LISTEN=127.0.0.1:$$port SERVICES=stepfunctions,s3,sts,events SFN_MOCK_CONFIG=$(CURDIR)/tests/statemachine/MockConfigFile.json \
	  FILESYSTEM_ROOT="$$tmp/filesystem" TMPDIR="$$tmp/tmp" DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
	  $(LOCALSTACK_VENV)/bin/python -m localstack.runtime.main >$(LOCALSTACK_LOG) 2>&1 & pid=$$!; \
	until $(BIN)/python -c 'import json, sys, urllib.request; \
	    health = json.load(urllib.request.urlopen(sys.argv[1] + "/_localstack/health", timeout=2)); \
	    sys.exit(health["services"].get("stepfunctions") not in ("available", "running"))' "$$endpoint" 2>/dev/null; do \
	  kill -0 "$$pid" 2>/dev/null || { echo "LocalStack exited while starting; the end of $(LOCALSTACK_LOG):" >&2; \
	    tail -n 20 $(LOCALSTACK_LOG) >&2; exit 1; }; \
	  [ $$(( $$(date +%s%N) - started )) -lt 60000000000 ] || { echo "LocalStack not ready after 60 s (see $(LOCALSTACK_LOG))" >&2; exit 1; }; \
	  sleep 0.2; \
	done; \
	echo "LocalStack ready at $$endpoint after $$(( ($$(date +%s%N) - started) / 1000000 )) ms (log: $(LOCALSTACK_LOG))"; \
	LOCALSTACK_ENDPOINT=$$endpoint REQUIRE_LOCALSTACK=1 $(BIN)/pytest tests/statemachine -k localstack -rs

engine-table: $(STAMP) ## The engines table of docs/testing.md, from out/statemachine-results/ (after their runs)
	$(BIN)/python tests/statemachine/engine_table.py

SFN_LOCAL_PORT ?= 8083
test-sfn-local: $(STAMP) ## The state-machine cases on Step Functions Local (needs Docker)
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "test-sfn-local needs a running Docker engine" >&2; exit 2; }
	docker compose -f docker-compose.sfn-local.yml up -d
	@for i in $$(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/$(SFN_LOCAL_PORT)) 2>/dev/null && break; sleep 1; done
	SFN_LOCAL_ENDPOINT=http://127.0.0.1:$(SFN_LOCAL_PORT) $(BIN)/pytest tests/statemachine -k "sfn-local" -rs; \
	  status=$$?; docker compose -f docker-compose.sfn-local.yml down; exit $$status

bench: $(STAMP) bench-photos ## Imaging against pyvips and naive Pillow, cold starts, orchestration, throughput
	$(BIN)/imgpipe bench

# Real photographs for the imaging bench: the camera photographs Debian's mate-backgrounds package ships (a
# 17.9 MP one, 5640x3172, and 2560 px nature photographs), fetched with `apt-get download` (no root needed) and
# unpacked with dpkg-deb. Without apt-get, or offline, the bench says so and measures its synthetic cases only.
PHOTOS := out/photos
MATE_BACKGROUNDS := /usr/share/backgrounds/mate
MATE_PHOTOS := abstract/Elephants_5640x3172.jpg $(addprefix nature/,Aqua.jpg Garden.jpg LadyBird.jpg TwoWings.jpg \
	Wood.jpg YellowFlower.jpg)

bench-photos: $(PHOTOS)/Elephants_5640x3172.jpg ## Real photographs for the imaging bench into out/photos (apt-get)

$(PHOTOS)/Elephants_5640x3172.jpg:
	@if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then \
	  echo "bench-photos: no apt-get/dpkg-deb here: the imaging bench runs its synthetic cases only" >&2; exit 0; fi; \
	mkdir -p $(PHOTOS) && rm -rf $(PHOTOS)/.deb && mkdir $(PHOTOS)/.deb && \
	( cd $(PHOTOS)/.deb && apt-get download mate-backgrounds ) && \
	dpkg-deb -x $(PHOTOS)/.deb/mate-backgrounds_*.deb $(PHOTOS)/.deb/root && \
	cp $(addprefix $(PHOTOS)/.deb/root$(MATE_BACKGROUNDS)/,$(MATE_PHOTOS)) $(PHOTOS)/ && \
	rm -rf $(PHOTOS)/.deb && echo "bench-photos: $(words $(MATE_PHOTOS)) photographs in $(PHOTOS)" || \
	{ rm -rf $(PHOTOS)/.deb; echo "bench-photos: apt-get download mate-backgrounds failed: synthetic cases only" >&2; }

bench-local: $(STAMP) ## Local cloud figures: upload-to-notification time, orchestration overhead
	$(BIN)/imgpipe bench local

run: $(STAMP) ## Process the sample images on the embedded local cloud
	$(BIN)/imgpipe demo

clean: ## Remove the venv and outputs
	rm -rf $(VENV) $(CHECKOV_VENV) $(LOCALSTACK_VENV) out .pytest_cache .mypy_cache .ruff_cache $(CONSOLE)/node_modules $(CONSOLE_VENDOR)
