# batchdrop: the one entry point. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
SAMPLE := tests/fixtures/samples/langbatch_bedrock.jsonl
DEMO_MODEL ?= us.anthropic.claude-3-5-haiku-20241022-v1:0
DEMO_OUT := target/demo

.PHONY: help demo stack-up stack-status stack-down e2e chaos latency cli-demo test lint validate fmt build build-functions sam-build deploy \
	tools bench bench-hostile bench-cold-start bench-queue clean

# Tools live inside the repo (ignored): Python ones in .venv/ from infra/requirements.txt (checkov in
# .tools/checkov/ from infra/checks/requirements-checkov.txt), Node ones in node_modules/ from
# package-lock.json. A stamp file per folder makes a second run instant; editing the pins reinstalls.
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
# The template checks (infra/checks/): the SAM template after the SAM transform, the CDK synth of
# infra/cdk/test/checks-app.ts, and checkov's report on them. cdk runs offline: the app names its account and
# Region, and the CLI checks for no new version, sends no telemetry and fetches no notices.
SAM_OUT := target/sam/template.json
CDK_OUT := target/cdk/cdk.out
CDK_STAMP := $(CDK_OUT)/.synthesized
CDK_SOURCES := $(wildcard infra/cdk/*.json infra/cdk/bin/*.ts infra/cdk/lib/*.ts infra/cdk/test/*.ts)
CDK_TEMPLATES := $(CDK_OUT)/BatchdropDefaults.template.json $(CDK_OUT)/BatchdropKms.template.json
CDK_ENV := CDK_DISABLE_VERSION_CHECK=true CDK_DISABLE_CLI_TELEMETRY=true
CHECKOV_VENV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
SCAN_REPORT := target/checks/checkov.json
# The checks import each other (infra/checks/cfn.py): no __pycache__ left in the tree.
CHECK_PY := PYTHONDONTWRITEBYTECODE=1 $(VENV)/bin/python
# The three Lambda crates (folder = crate = binary) and where their bootstrap binaries go.
FUNCTIONS := submit check-jobs finalize wake
LAMBDA_DIR := target/lambda
LAMBDA_TARGET := aarch64-unknown-linux-gnu

include infra/cdk/cdk.mk

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

FILE ?=
MODEL ?=
demo: $(LOCAL_STAMP) ## Run a sample batch (or FILE=my.jsonl, MODEL=<model id>) end to end on the local stack and show the OpenAI results
	$(LOCAL_VENV)/bin/python infra/local/demo.py $(if $(FILE),"$(FILE)") $(if $(MODEL),--model "$(MODEL)")

stack-up: $(LOCAL_STAMP) ## Start the local stack (moto, Bedrock emulator, functions) on 127.0.0.1
	$(LOCAL_VENV)/bin/python infra/local/stack.py start

stack-status: $(LOCAL_STAMP) ## Which of the local stack's processes run, its endpoints and buckets
	$(LOCAL_VENV)/bin/python infra/local/stack.py status

stack-down: ## Stop the local stack's processes, by PID
	@if [ -x $(LOCAL_VENV)/bin/python ]; then $(LOCAL_VENV)/bin/python infra/local/stack.py stop; fi

# The client tests (infra/local/tests/test_client.py) run the CLI's debug binary, built here with the workspace's
# features, so that after `cargo test --workspace` it is already up to date.
e2e: $(LOCAL_STAMP) ## End-to-end tests on the local stack (started and stopped here), then short seeds of make latency and make bench-queue
	$(CARGO) build --locked --workspace --bin batchdrop
	MOTO_SERVER=$(CURDIR)/$(LOCAL_VENV)/bin/moto_server $(LOCAL_VENV)/bin/python -m pytest -q -p no:cacheprovider infra/local/tests
	$(LOCAL_VENV)/bin/python infra/local/latency.py --batches 1 --check
	$(LOCAL_VENV)/bin/python infra/local/queue_bench.py --batches 4 --quota 2 --step-ms 300 --check

LATENCY_BATCHES ?= 5
QUEUE_BATCHES ?= 20
QUEUE_QUOTA ?= 5
bench-queue: $(LOCAL_STAMP) ## The account-wide job queue: N batches at once on a quota of Q (QUEUE_BATCHES=20, QUEUE_QUOTA=5): peak in flight, refusals, makespan against the ideal, waits against the fair share
	$(LOCAL_VENV)/bin/python infra/local/queue_bench.py --batches $(QUEUE_BATCHES) --quota $(QUEUE_QUOTA)

latency: $(LOCAL_STAMP) ## Results latency with Bedrock's job events delivered, dropped and duplicated, production poll settings (LATENCY_BATCHES=)
	$(LOCAL_VENV)/bin/python infra/local/latency.py --batches $(LATENCY_BATCHES)

CHAOS_SEED ?= 1
CHAOS_BATCHES ?= 30
chaos: $(LOCAL_STAMP) ## Seeded soak: 30 batches under random faults on the local stack, every promise checked (CHAOS_SEED=, CHAOS_BATCHES=)
	$(LOCAL_VENV)/bin/python infra/local/chaos.py --seed $(CHAOS_SEED) --batches $(CHAOS_BATCHES)

cli-demo: ## Validate and translate a sample batch with the CLI alone
	$(CARGO) build --release --locked --quiet
	./target/release/batchdrop validate $(SAMPLE) --model $(DEMO_MODEL) || true
	./target/release/batchdrop translate $(SAMPLE) --model $(DEMO_MODEL) --out $(DEMO_OUT)
	@head -n 1 $(DEMO_OUT)/bedrock/*.jsonl

test: lint validate sam-build cdk-consumer $(LOCAL_STAMP) ## Run every test: lint, template checks, the SAM build, the packed CDK construct in a new app, unit and integration tests, end to end
	MOTO_SERVER=$(CURDIR)/$(LOCAL_VENV)/bin/moto_server $(CARGO) test --workspace --all-targets --locked
	$(MAKE) --no-print-directory e2e

lint: ## Format check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

validate: tools $(SAM_OUT) $(CDK_STAMP) $(SCAN_REPORT) ## Check the state machine, the SAM template and the CDK synth (lint, parity, security, checkov)
	node_modules/.bin/asl-validator --json-path statemachine/batch.asl.json
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(SAM_ENV) $(VENV)/bin/sam validate -t infra/template.yaml --region us-east-1
	$(SAM_ENV) $(VENV)/bin/sam validate --lint -t infra/template.yaml --region us-east-1
	$(VENV)/bin/cfn-lint $(SAM_OUT)
	$(VENV)/bin/python infra/checks/check_asl.py statemachine/batch.asl.json infra/template.yaml
	$(CHECK_PY) infra/checks/check_parity.py
	$(CHECK_PY) infra/checks/check_security.py
	$(CHECK_PY) infra/checks/check_operations.py
	$(CHECK_PY) infra/checks/check_event_schema.py
	$(CHECK_PY) infra/checks/scan_templates.py $(SCAN_REPORT)
	$(CHECK_PY) -m unittest discover -s infra/checks -p 'test_*.py'
	cd infra/cdk && ../../node_modules/.bin/tsx --test test/props.test.ts > ../../target/checks/cdk-props.tap \
		|| { cat ../../target/checks/cdk-props.tap; exit 1; }
	@grep -E '^# (tests|pass|fail)' target/checks/cdk-props.tap | tr '\n' ' '; echo '(infra/cdk/test/props.test.ts)'

# The checks' inputs are files made only when what they are made from changes, so that a second
# `make validate` skips the CDK synth (about 8 s) and checkov (about 6 s).
$(SAM_OUT): infra/template.yaml statemachine/batch.asl.json infra/checks/sam_translate.py $(VENV_STAMP)
	$(VENV)/bin/python infra/checks/sam_translate.py infra/template.yaml $@

# The CDK app of the checks: the example stack with the defaults, and with a KMS key and an alarm topic. It uses
# target/lambda/*/bootstrap when built, else placeholders (infra/cdk/test/checks-app.ts).
$(CDK_STAMP): $(CDK_SOURCES) statemachine/batch.asl.json infra/events/batch-event.schema.json \
		infra/events/bedrock-job-events.pattern.json $(NODE_STAMP) $(VENV_STAMP)
	node_modules/.bin/tsc -p infra/cdk
	rm -rf $(CDK_OUT)
	cd infra/cdk && $(CDK_ENV) ../../node_modules/.bin/cdk synth --quiet --no-notices \
		--app "../../node_modules/.bin/tsx test/checks-app.ts" --output ../../$(CDK_OUT)
	$(VENV)/bin/cfn-lint $(CDK_TEMPLATES)
	touch $@

$(SCAN_REPORT): $(SAM_OUT) $(CDK_STAMP) $(CHECKOV_STAMP)
	mkdir -p $(@D)
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --soft-fail --framework cloudformation \
		--output json $(addprefix --file ,$(SAM_OUT) $(CDK_TEMPLATES)) > $@.tmp
	mv $@.tmp $@

tools: $(VENV_STAMP) $(NODE_STAMP) $(LOCAL_STAMP) $(CHECKOV_STAMP) ## Install the Python and Node tools into .venv/, .tools/ and node_modules/

$(VENV_STAMP): infra/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

$(LOCAL_STAMP): infra/local/requirements.txt
	test -x $(LOCAL_VENV)/bin/python || $(PYTHON) -m venv $(LOCAL_VENV)
	$(LOCAL_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/requirements.txt
	touch $@

# checkov pins boto3 and others below what aws-sam-cli needs, so it has a venv of its own.
$(CHECKOV_STAMP): infra/checks/requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/checks/requirements-checkov.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json infra/cdk/package.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

fmt: ## Format the code
	$(CARGO) fmt --all

build: build-functions ## Build the release CLI and the Lambda functions
	$(CARGO) build --release --locked

# cargo-lambda cross-compiles with zig, both from .venv/. The aarch64 standard library comes from rustup,
# which cargo-lambda would otherwise add by itself; adding it first says so.
build-functions: $(VENV_STAMP) ## Build the four Lambda functions for arm64 (target/lambda/<name>/bootstrap)
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --locked \
		$(addprefix -p ,$(FUNCTIONS)) --lambda-dir $(LAMBDA_DIR)
	@for f in $(FUNCTIONS); do \
		machine=$$(od -An -tx1 -j18 -N2 $(LAMBDA_DIR)/$$f/bootstrap | tr -d ' \n'); \
		if [ "$$machine" != b700 ]; then echo "$(LAMBDA_DIR)/$$f/bootstrap is not an arm64 ELF binary" >&2; exit 1; fi; \
		echo "$(LAMBDA_DIR)/$$f/bootstrap: arm64, $$(stat -c %s $(LAMBDA_DIR)/$$f/bootstrap) bytes"; \
	done

# The SAM path as a user runs it: `sam build` builds each function by the template's own Metadata (BuildMethod
# rust-cargolambda: cargo lambda, arm64, release profile of Cargo.toml) into .aws-sam/build/, which `sam deploy`
# uploads. check_build.py then checks what would be uploaded: an aarch64 ELF bootstrap per function, each zip
# under its size budget (printed). sam runs offline here: no credentials, no telemetry.
SAM_BUILD_DIR := .aws-sam/build
SAM_CONFIG := infra/samconfig.toml
SAM_CONFIG_ENV ?= default
sam-build: $(VENV_STAMP) $(SAM_OUT) ## sam build of the four arm64 functions, then checked: aarch64 bootstraps, zip sizes against budgets
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM_ENV) $(VENV)/bin/sam build -t infra/template.yaml \
		--config-file $(CURDIR)/$(SAM_CONFIG) --config-env $(SAM_CONFIG_ENV)
	$(CHECK_PY) infra/checks/check_build.py $(SAM_BUILD_DIR) $(SAM_OUT)

# The first deploy is guided (stack name, Region, parameters) and saves its answers in infra/samconfig.toml
# under [$(SAM_CONFIG_ENV).deploy.parameters]; once a Region is saved there, deploys reuse the answers. Uses your
# AWS credentials and Region (profile or environment), unlike the offline targets above.
SAM_DEPLOY := SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam deploy -t $(SAM_BUILD_DIR)/template.yaml \
	--config-file $(CURDIR)/$(SAM_CONFIG) --config-env $(SAM_CONFIG_ENV)
SAVED_REGION := $(VENV)/bin/python -c 'import sys, tomllib; c = tomllib.load(open(sys.argv[1], "rb")); \
	sys.exit(0 if c.get(sys.argv[2], {}).get("deploy", {}).get("parameters", {}).get("region") else 1)'
deploy: sam-build ## Build with SAM, then deploy (guided the first time; SAM_CONFIG_ENV= picks a saved set of answers)
	@if $(SAVED_REGION) $(SAM_CONFIG) $(SAM_CONFIG_ENV); then \
		echo "$(SAM_DEPLOY)"; $(SAM_DEPLOY); \
	else \
		echo "first deploy of [$(SAM_CONFIG_ENV)]: guided; the answers are saved in $(SAM_CONFIG)"; $(SAM_DEPLOY) --guided; \
	fi

COLD_START_ROUNDS ?= 3
bench-cold-start: $(LOCAL_STAMP) ## Time from start to the first handled event of each function (release, cargo lambda watch)
	$(LOCAL_VENV)/bin/python infra/local/coldstart.py --rounds $(COLD_START_ROUNDS)

BENCH_ARGS ?=
bench: ## Translate and results throughput and peak memory per family (Claude, Nova, Converse, Titan embeddings), 75 MB and 200 MB files, next to serde_json on the same files (BENCH_ARGS=--quick: 75 MB only)
	$(CARGO) build --release --locked
	$(CARGO) run --release --locked --example bench -- $(BENCH_ARGS)

BENCH_HOSTILE_ARGS ?=
bench-hostile: ## Peak memory on hostile files: 1M and 4M tiny lines, distinct names (BENCH_HOSTILE_ARGS=--quick: 250k and 1M)
	$(CARGO) build --release --locked
	$(CARGO) run --release --locked --example bench -- --hostile $(BENCH_HOSTILE_ARGS)

clean: ## Remove build output and generated benchmark data
	$(CARGO) clean
	rm -rf bench-data
