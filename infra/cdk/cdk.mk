# The CDK construct as the npm package @batchdrop/cdk (infra/cdk/README.md); included by the Makefile, whose
# VENV, VENV_STAMP, NODE_STAMP, SAM_OUT and CDK_ENV it uses.
.PHONY: cdk-package cdk-consumer

CDK_PACKAGE_DIR := target/cdk-package
CDK_PACKAGE_VERSION = $(shell node -p "require('./infra/cdk/package.json').version")
CDK_TARBALL = $(CDK_PACKAGE_DIR)/batchdrop-cdk-$(CDK_PACKAGE_VERSION).tgz

# npm pack runs the package's prepack: scripts/bundle.mjs copies the Cargo workspace, the state machine and the
# event files into infra/cdk/assets/, tsc compiles lib/ into infra/cdk/dist/; the tarball holds those two.
cdk-package: $(NODE_STAMP) ## Pack the CDK construct as an npm tarball (target/cdk-package/batchdrop-cdk-<version>.tgz)
	rm -rf $(CDK_PACKAGE_DIR)
	mkdir -p $(CDK_PACKAGE_DIR)
	cd infra/cdk && npm pack --loglevel=warn --pack-destination $(CURDIR)/$(CDK_PACKAGE_DIR)
	@test -f $(CDK_TARBALL) || { echo "cdk-package: npm pack left no $(CDK_TARBALL)" >&2; exit 1; }
	@echo "$(CDK_TARBALL): $$(tar -tzf $(CDK_TARBALL) | wc -l) files, $$(stat -c %s $(CDK_TARBALL)) bytes"

# A throwaway app outside the repository installs the tarball and synthesizes with it, which builds the four
# functions with cargo-lambda (from .venv/bin, with zig) into cargo's cache, CARGO_TARGET_DIR or else target/
# here; then the template checks run on its templates (infra/cdk/test/consumer.sh).
cdk-consumer: cdk-package $(SAM_OUT) $(VENV_STAMP) ## Install the packed construct in a new app outside the repo, synth (building the functions) and check it
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CARGO_TARGET_DIR="$${CARGO_TARGET_DIR:-$(CURDIR)/target}" \
		PYTHON=$(CURDIR)/$(VENV)/bin/python CFN_LINT=$(CURDIR)/$(VENV)/bin/cfn-lint SAM_TEMPLATE=$(CURDIR)/$(SAM_OUT) \
		$(CDK_ENV) infra/cdk/test/consumer.sh $(CDK_TARBALL)
