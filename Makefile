# coderops.deploy: one entry point for the test bed, the tests and the demo.
SHELL := /bin/bash
# The default virtualenv runs the newest supported Ansible (ansible 14.5.0, ansible-core 2.21, which
# needs Python 3.12 or newer); .venv-oldest the oldest (ansible 12.3.0, ansible-core 2.19, Python
# 3.11). requirements.txt picks the Ansible by the Python version. pyenv's interpreters are used
# where their shims are not on PATH.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
PYTHON_OLDEST ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) python3.11)
VENV := .venv
VENV_STAMP := $(VENV)/.requirements-stamp
VENV_OLDEST := .venv-oldest
VENV_OLDEST_STAMP := $(VENV_OLDEST)/.requirements-stamp
TESTBED := python3 testbed/testbed.py
PG ?=
# The test bed's state directory (CODER_TESTBED_STATE moves it, e.g. for a second bed).
TESTBED_STATE := $(or $(CODER_TESTBED_STATE),$(CURDIR)/.testbed)

.PHONY: help prereqs venv venv-oldest testbed testbed-down testbed-status testbed-build test test-testbed test-reliability molecule demo bench

help:
	@echo "make testbed        bring the local test bed up (PG=\"main small\" picks servers)"
	@echo "make testbed-down   stop everything the test bed started and remove its state"
	@echo "make testbed-status what runs, with ports"
	@echo "make test           every test, with a summary line"
	@echo "make test-reliability  leak, bad-input and fault suite; writes docs/reliability.md"

prereqs:
	@scripts/prereqs.sh

# The virtualenv is rebuilt when a requirements file changes.
$(VENV_STAMP): requirements.txt requirements-test.txt
	@$(VENV)/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	  || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	@echo "venv: installing pinned requirements"
	@$(VENV)/bin/pip install --quiet -r requirements-test.txt
	@touch $@

$(VENV_OLDEST_STAMP): requirements.txt requirements-test.txt
	@test -x $(VENV_OLDEST)/bin/python || $(PYTHON_OLDEST) -m venv $(VENV_OLDEST)
	@echo "venv-oldest: installing pinned requirements (ansible-core 2.19)"
	@$(VENV_OLDEST)/bin/pip install --quiet -r requirements-test.txt
	@touch $@

venv: $(VENV_STAMP)

venv-oldest: $(VENV_OLDEST_STAMP)

testbed: prereqs
	@$(TESTBED) up $(if $(PG),--pg "$(PG)")

testbed-down:
	@$(TESTBED) down

testbed-status:
	@$(TESTBED) status

testbed-build: prereqs
	@$(TESTBED) build

test-testbed: venv testbed
	@$(VENV)/bin/pytest -p no:cacheprovider tests/testbed

# The main job, end to end, against the local test bed; a second run changes nothing.
demo: prereqs venv testbed
	@. $(TESTBED_STATE)/env.sh && PATH="$(CURDIR)/.venv/bin:$$PATH" \
	  ansible-playbook -i inventories/testbed.yml playbooks/deploy_coder.yml
	@. $(TESTBED_STATE)/env.sh && scripts/demo-summary.sh

test: prereqs venv venv-oldest testbed
	@scripts/run-tests.sh

SCENARIO ?= default
# molecule needs the test bed's environment (the inventory reads it), so load it first.
molecule: venv testbed
	@. $(TESTBED_STATE)/env.sh && PATH="$(CURDIR)/.venv/bin:$$PATH" molecule test -s $(SCENARIO)

# Leaks, bad input, faults (issue 7): reuses the deploy suite's results from `make test`, runs the
# disruptive faults on a private test bed, and writes docs/reliability.md.
test-reliability: venv testbed
	@scripts/test-reliability.sh

bench: venv testbed
	@$(VENV)/bin/pip install --quiet -r requirements-bench.txt
	@. $(TESTBED_STATE)/env.sh && PATH="$(CURDIR)/.venv/bin:$$PATH" $(VENV)/bin/python bench/run.py
