# batchdrop: the one entry point. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
SAMPLE := tests/fixtures/samples/langbatch_bedrock.jsonl
DEMO_MODEL ?= us.anthropic.claude-3-5-haiku-20241022-v1:0
DEMO_OUT := target/demo

.PHONY: help demo test lint fmt build bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: ## Validate and translate a sample batch with the CLI (the end-to-end demo arrives with the local stack)
	$(CARGO) build --release --locked --quiet
	@echo "== batchdrop validate: every line checked, nothing sent anywhere"
	./target/release/batchdrop validate $(SAMPLE) --model $(DEMO_MODEL) || true
	@echo
	@echo "== batchdrop translate: Bedrock batch input for $(DEMO_MODEL)"
	./target/release/batchdrop translate $(SAMPLE) --model $(DEMO_MODEL) --out $(DEMO_OUT)
	@echo
	@echo "== first Bedrock record"
	@head -n 1 $(DEMO_OUT)/bedrock/*.jsonl
	@echo
	@echo "The end-to-end demo on a local S3, Step Functions and Bedrock emulator is not built yet."

test: lint ## Run every test (lint first)
	$(CARGO) test --workspace --all-targets --locked

lint: ## Format check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

build: ## Build the release CLI
	$(CARGO) build --release --locked

bench: ## Translate and results throughput and peak memory on generated 75 MB and 200 MB files
	$(CARGO) build --release --locked
	$(CARGO) run --release --locked --example bench

clean: ## Remove build output and generated benchmark data
	$(CARGO) clean
	rm -rf bench-data
