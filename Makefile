# byok.keyvault: the two commands of the README and their helpers.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help:
	@echo "make demo       install what is needed, start the lab (SoftHSM2 + local Key Vault), transfer keys, print them"
	@echo "make test       everything: sanity, unit, integration against SoftHSM2 and the lab vault, lint"
	@echo "make lab-reset  forget the lab's tokens and vault keys (the next demo transfers again)"
	@echo "make lab-stop   stop the lab vault server"

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
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

.PHONY: help bootstrap demo test lab-reset lab-stop bench docs
