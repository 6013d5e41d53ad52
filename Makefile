# byok.keyvault: the commands of the README and their helpers (make help lists them).
SHELL := /bin/bash
.DEFAULT_GOAL := help
# the lab of this checkout, or the BYOK_LAB_DIR you set (not one scripts/env.sh of another checkout set: BYOK_LAB_DIR_OF)
LAB_DIR ?= $(if $(and $(BYOK_LAB_DIR),$(filter-out $(BYOK_LAB_DIR_OF)/.lab,$(BYOK_LAB_DIR))),$(BYOK_LAB_DIR),$(CURDIR)/.lab)

help:
	@echo "make demo          install what is needed, start the lab (SoftHSM2 + local Key Vault), transfer keys, print them"
	@echo "                   (the lab's ports: LAB_PORT=N to choose; a busy default is replaced by free ones, and said)"
	@echo "make test          everything below, all or nothing (what CI runs), in three lanes at once on two or more cores"
	@echo "make unit          the unit tests (tests/unit, pytest; under a minute)"
	@echo "make integration   the ansible-test integration targets against SoftHSM2 and a lab vault of their own"
	@echo "make e2e           the end-to-end tests: playbooks, faults, kills, secrets against SoftHSM2 and lab vaults"
	@echo "                   (BYOK_E2E_ARGS='-k name' picks tests; BYOK_TEST_WORKERS=N pytest processes, default 2, 0 for one)"
	@echo "make matrix        hsm_keygen and byok_wrap on each HSM-host Python (3.6 to 3.13); a lab transfer and a re-run"
	@echo "                   that changes nothing on each controller ansible-core (2.16 to 2.20)"
	@echo "make sanity        ansible-test sanity, ansible-lint, galaxy build and importer, docs lint, EE definition"
	@echo "make lab-reset     forget the lab's tokens and vault keys (the next demo transfers again; port and manifests kept)"
	@echo "make lab-stop      stop the lab vault server"
	@echo "make lab-port      choose the lab's ports (make demo does it first)"
	@echo "make bench         measure a transfer of many keys against the floors (docs/performance.md)"
	@echo "make docs          build the HTML docsite into build/docsite/build/html"
	@echo "make bootstrap     install the system packages and the .venv every target needs (each target does it first)"

lab-port:
	@BYOK_LAB_DIR="$(LAB_DIR)" python3 scripts/lab-port.py "$(LAB_DIR)" >/dev/null

bootstrap:
	@scripts/bootstrap.sh

demo: lab-port bootstrap
	@scripts/demo.sh

test: bootstrap
	@scripts/test.sh

unit integration e2e matrix sanity: bootstrap
	@scripts/test.sh $@

lab-reset: bootstrap
	@scripts/lab.sh reset

lab-stop: bootstrap
	@scripts/lab.sh stop

bench: bootstrap
	@bench/run.sh

docs: bootstrap
	@scripts/docs.sh

.PHONY: help lab-port bootstrap demo test unit integration e2e matrix sanity lab-reset lab-stop bench docs
