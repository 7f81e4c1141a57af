# batchdrop: the one entry point. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
SAMPLE := tests/fixtures/samples/langbatch_bedrock.jsonl
DEMO_MODEL ?= us.anthropic.claude-3-5-haiku-20241022-v1:0
DEMO_OUT := target/demo

.PHONY: help demo stack-up stack-down e2e cli-demo test lint validate fmt build build-functions tools bench clean

# Tools live inside the repo (ignored): Python ones in .venv/ from infra/requirements.txt, Node ones in
# node_modules/ from package-lock.json. A stamp file per folder makes a second run instant; editing the pins
# reinstalls.
VENV := .venv
# The local stack's own venv (moto, boto3, pytest, cargo-lambda), apart from the SAM tools' pins.
LOCAL_VENV := .venv-local
LOCAL_STAMP := $(LOCAL_VENV)/.installed
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTHON ?= python3
# sam and cfn-lint run offline: a Region on the command line and dummy credentials, no telemetry.
SAM_ENV := AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_DEFAULT_REGION=us-east-1 \
	AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
# The three Lambda crates (folder = crate = binary) and where their bootstrap binaries go.
FUNCTIONS := submit check-jobs finalize
LAMBDA_DIR := target/lambda
LAMBDA_TARGET := aarch64-unknown-linux-gnu

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

demo: $(LOCAL_STAMP) ## Run a sample batch end to end on the local stack and show the OpenAI results
	$(LOCAL_VENV)/bin/python infra/local/demo.py

stack-up: $(LOCAL_STAMP) ## Start the local stack (moto, Bedrock emulator, functions) on 127.0.0.1
	$(LOCAL_VENV)/bin/python infra/local/stack.py start

stack-down: ## Stop the local stack's processes, by PID
	@if [ -x $(LOCAL_VENV)/bin/python ]; then $(LOCAL_VENV)/bin/python infra/local/stack.py stop; fi

e2e: $(LOCAL_STAMP) ## End-to-end tests on the local stack (started and stopped here)
	MOTO_SERVER=$(CURDIR)/$(LOCAL_VENV)/bin/moto_server $(LOCAL_VENV)/bin/python -m pytest -q -p no:cacheprovider infra/local/tests

cli-demo: ## Validate and translate a sample batch with the CLI alone
	$(CARGO) build --release --locked --quiet
	./target/release/batchdrop validate $(SAMPLE) --model $(DEMO_MODEL) || true
	./target/release/batchdrop translate $(SAMPLE) --model $(DEMO_MODEL) --out $(DEMO_OUT)
	@head -n 1 $(DEMO_OUT)/bedrock/*.jsonl

test: lint validate $(LOCAL_STAMP) ## Run every test: lint, template checks, unit and integration tests, end to end
	MOTO_SERVER=$(CURDIR)/$(LOCAL_VENV)/bin/moto_server $(CARGO) test --workspace --all-targets --locked
	$(MAKE) --no-print-directory e2e

lint: ## Format check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

validate: tools ## Check the state machine and the SAM template (asl-validator, cfn-lint, sam validate, our own rules)
	node_modules/.bin/asl-validator --json-path statemachine/batch.asl.json
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(SAM_ENV) $(VENV)/bin/sam validate -t infra/template.yaml --region us-east-1
	$(SAM_ENV) $(VENV)/bin/sam validate --lint -t infra/template.yaml --region us-east-1
	$(VENV)/bin/python infra/checks/sam_translate.py infra/template.yaml target/sam/template.json
	$(VENV)/bin/cfn-lint target/sam/template.json
	$(VENV)/bin/python infra/checks/check_asl.py statemachine/batch.asl.json infra/template.yaml

tools: $(VENV_STAMP) $(NODE_STAMP) $(LOCAL_STAMP) ## Install the Python and Node tools into .venv/ and node_modules/

$(VENV_STAMP): infra/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

$(LOCAL_STAMP): infra/local/requirements.txt
	test -x $(LOCAL_VENV)/bin/python || $(PYTHON) -m venv $(LOCAL_VENV)
	$(LOCAL_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/requirements.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

fmt: ## Format the code
	$(CARGO) fmt --all

build: build-functions ## Build the release CLI and the Lambda functions
	$(CARGO) build --release --locked

# cargo-lambda cross-compiles with zig, both from .venv/. The aarch64 standard library comes from rustup,
# which cargo-lambda would otherwise add by itself; adding it first says so.
build-functions: $(VENV_STAMP) ## Build the three Lambda functions for arm64 (target/lambda/<name>/bootstrap)
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --locked \
		$(addprefix -p ,$(FUNCTIONS)) --lambda-dir $(LAMBDA_DIR)
	@for f in $(FUNCTIONS); do \
		machine=$$(od -An -tx1 -j18 -N2 $(LAMBDA_DIR)/$$f/bootstrap | tr -d ' \n'); \
		if [ "$$machine" != b700 ]; then echo "$(LAMBDA_DIR)/$$f/bootstrap is not an arm64 ELF binary" >&2; exit 1; fi; \
		echo "$(LAMBDA_DIR)/$$f/bootstrap: arm64, $$(stat -c %s $(LAMBDA_DIR)/$$f/bootstrap) bytes"; \
	done

bench: ## Translate and results throughput and peak memory on generated 75 MB and 200 MB files
	$(CARGO) build --release --locked
	$(CARGO) run --release --locked --example bench

clean: ## Remove build output and generated benchmark data
	$(CARGO) clean
	rm -rf bench-data
