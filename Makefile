# One entry point. Every target installs what it needs on a fresh Debian 12 machine (run as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(VPY) -m pytest
LAB_BUILD := tests/lab/build
COLLECTION_LINK := .collections/ansible_collections/tke/kms

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Proxies would capture emulator traffic to 127.0.0.1 (docs/tencent-kms-api.md, "Endpoint, scheme and proxies").
unexport HTTP_PROXY HTTPS_PROXY http_proxy https_proxy

.PHONY: help
help:
	@echo "make demo         the whole rollout on the local lab (README command #1)"
	@echo "make test         everything CI runs (README command #2)"
	@echo "make lint         ruff, vermin, changelog fragments, yamllint, ansible-lint, ansible-test sanity"
	@echo "make molecule     the molecule scenarios (default, lab)"
	@echo "make e2e          end-to-end tests against a real kube-apiserver"
	@echo "make bench        all benchmarks, printing their figures"
	@echo "make reliability  the lab reliability suite"
	@echo "make demo-down    stop the demo lab"

$(STAMP): requirements-dev.txt plugin_server/pyproject.toml plugin_server/emulator/pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements-dev.txt
	$(VPY) -m pip install -q -e plugin_server -e plugin_server/emulator
	touch $@

.PHONY: venv
venv: $(STAMP) $(COLLECTION_LINK)

# Ansible finds this checkout as collection tke.kms through ansible.cfg's collections_path.
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

.PHONY: system-deps
system-deps:
	bash tests/lab/system-deps.sh

.PHONY: lab-binaries
lab-binaries: system-deps
	bash $(LAB_BUILD)/all.sh

.PHONY: lint
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vermin --target=3.10- --violations --no-tips --eval-annotations plugin_server/src
	$(VENV)/bin/antsibull-changelog lint
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/ansible-lint
	bash tests/sanity/run.sh

# Unit, integration (emulator, plugin, modules) and end-to-end tests, then the molecule scenarios.
.PHONY: test
test: venv system-deps lab-binaries lint
	$(PYTEST) tests
	$(MAKE) molecule

# Chroot masters with 1.12/1.20/1.30 manifests on Debian bullseye/bookworm/trixie (default, run against the
# collection built into a tarball and installed read-only elsewhere), and site.yml on the real lab masters (lab).
.PHONY: molecule
molecule: venv system-deps lab-binaries
	bash molecule/shared/installed_collection.sh $(VENV)/bin/molecule test -s default
	$(VENV)/bin/molecule test -s lab

.PHONY: e2e
e2e: venv system-deps lab-binaries
	$(PYTEST) -m e2e tests

# The whole reliability matrix: every starting config alone on three masters, every fault, every refusal
# (`make test` runs the quick matrix; docs/lifecycle.md).
.PHONY: reliability
reliability: venv system-deps lab-binaries
	TKE_KMS_RELIABILITY=full $(PYTEST) -m reliability tests

.PHONY: bench
bench: venv system-deps lab-binaries
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; $(VPY) $$b; done

# make demo KMS=v2: the same on KMS v2 masters (kube-apiserver 1.36, plugin as a static pod).
.PHONY: demo
demo: venv system-deps lab-binaries
	$(VPY) -m tests.lab.demo up $(if $(KMS),--kms=$(KMS))

.PHONY: demo-down
demo-down: venv
	$(VPY) -m tests.lab.demo down
