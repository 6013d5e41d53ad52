# byok.keyvault: the two commands of the README and their helpers.
SHELL := /bin/bash
.DEFAULT_GOAL := help
LAB_DIR ?= $(or $(BYOK_LAB_DIR),$(CURDIR)/.lab)

help:
	@echo "make demo       install what is needed, start the lab (SoftHSM2 + local Key Vault), transfer keys, print them"
	@echo "                (the lab's ports: LAB_PORT=N to choose; a busy default is replaced by free ones, and said)"
	@echo "make test       everything: sanity, lint, galaxy build, units, integration and end-to-end tests against the lab"
	@echo "make lab-reset  forget the lab's tokens and vault keys (the next demo transfers again; port and manifests kept)"
	@echo "make lab-stop   stop the lab vault server"
	@echo "make bench      measure a transfer of many keys against the floors (docs/performance.md)"
	@echo "make docs       build the HTML docsite into build/docsite/build/html"

lab-port:
	@BYOK_LAB_DIR="$(LAB_DIR)" python3 scripts/lab-port.py "$(LAB_DIR)" >/dev/null

bootstrap:
	@scripts/bootstrap.sh

demo: lab-port bootstrap
	@scripts/demo.sh

test: bootstrap
	@scripts/test.sh

lab-reset: bootstrap
	@scripts/lab.sh reset

lab-stop: bootstrap
	@scripts/lab.sh stop

bench: bootstrap
	@bench/run.sh

docs: bootstrap
	@scripts/docs.sh

.PHONY: help lab-port bootstrap demo test lab-reset lab-stop bench docs
