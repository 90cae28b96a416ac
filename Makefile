# make site   set up the controller and run ansible-playbook site.yml -i inventory
# make test   set up and run every test level that can run here (see README)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION_LINK := .collections/ansible_collections/homelab/mlflow_k3s
PLAYBOOKS := site.yml $(wildcard playbooks/*.yml)
SCENARIOS := $(notdir $(wildcard molecule/*))

.PHONY: setup site test levels static flow scenarios lint sanity syntax unit images molecule runtime api stack browser build clean cross-arm64

$(VENV)/.installed: requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

# The policy scanner of the manifest tests (tests/unit/test_manifests.py).
.cache/checkov-venv/.installed: tests/requirements-checkov.txt
	$(PYTHON) -m venv .cache/checkov-venv
	.cache/checkov-venv/bin/pip install -q -r tests/requirements-checkov.txt
	touch $@

# The S3 stand-in of the stack tests (moto's server mode), run in a container from this venv.
.cache/moto-venv/.installed: tests/requirements-moto.txt
	$(PYTHON) -m venv .cache/moto-venv
	.cache/moto-venv/bin/pip install -q -r tests/requirements-moto.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

setup: $(VENV)/.installed $(COLLECTION_LINK)

site: setup
	ansible-playbook site.yml -i inventory

# Every level, three jobs at a time (-j3), the longest (the flow scenario) first once the test
# images are there: most of a job's time is one ansible-playbook process or a wait, so two
# cores serve three, and the static checks and the unit tests run while the images are built.
# The output of each job is printed whole when it ends.
test: setup
	$(MAKE) --no-print-directory -j3 --output-sync=target levels
	@echo "make test: every level passed"

levels: flow scenarios api unit runtime stack lint sanity syntax build

static: lint syntax sanity build

# The whole journey on two nodes: the slowest job.
flow: setup images .cache/moto-venv/.installed
	molecule test -s flow

# The other scenarios, one after the other.
scenarios: setup images .cache/moto-venv/.installed
	for s in $(filter-out flow,$(SCENARIOS)); do molecule test -s "$$s"; done

lint: setup
	yamllint -s .
	ansible-lint --profile production

syntax: setup
	for p in $(PLAYBOOKS); do ansible-playbook -i inventory --syntax-check "$$p"; done

unit: setup .cache/checkov-venv/.installed
	pytest -q tests/unit

sanity: setup
	tests/sanity.sh

build: setup
	tests/build_collection.sh

images:
	tests/images/build.sh

molecule: flow scenarios

runtime: setup images
	pytest -q tests/runtime

api: setup
	pytest -q -n 2 tests/api

stack: setup images browser .cache/moto-venv/.installed
	pytest -q tests/stack

# Optional, slow, not in `test`: one real arm64 build of the image under qemu, with its figures.
cross-arm64: setup images
	bash tests/images/cross_arm64.sh

# Debian's Chromium for the UI check of the stack tests (Playwright drives it).
browser:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) .collections build tests/output
