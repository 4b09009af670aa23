# Test toolchain for the tokenops.entra collection.
#
#   make test            everything: venvs, then sanity + units + integration on every core (the cores side by side), then the simulator suite, molecule, then bench-short
#   make sanity          ansible-test sanity --venv on every core          (SANITY_ARGS="--test pylint")
#   make units           ansible-test units --venv on every core           (UNITS_ARGS=...)
#   make integration     ansible-test integration --venv on every core, against the simulator (INTEGRATION_ARGS=...)
#   make simulator-test  pytest tests/simulator/tests with the 3.11 venv   (PYTEST_ARGS=...)
#   make lint            ruff (lint, format check), mypy and ansible-lint, from the pinned lint venv
#   make sanity-2.19     (or units-2.21, venv-2.21, ...) a single core
#   make venvs           only create the virtual environments
#   make demo            run the example playbook against the local simulator
#   make molecule        the role's molecule scenarios (extensions/molecule/), against the simulator
#   make bench           the benchmark of hardware_oath_inventory (docs/performance.md): bench/results.json, bench/plot.svg
#   make bench-short     its short version (a few dozen tokens, outcomes and request counts only, no timing)
#   make clean           remove .venv/, .tmp/ and other local state
#
# Every core gets a project-local venv (.venv/core-X.Y) made from the pinned
# tests/requirements*.txt; it is rebuilt only when their content changes (stamp
# file named after their sha256).  ansible-test runs on a copy of the
# collection's files (git ls-files -co --exclude-standard) placed at
# .tmp/core-X.Y/ansible_collections/tokenops/entra.  HOME, caches and temp
# dirs all point into .tmp/, so nothing is written to the real home directory.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.SECONDEXPANSION:

ROOT := $(CURDIR)
VENV_DIR := $(ROOT)/.venv
TMP_DIR := $(ROOT)/.tmp
COLLECTION_PATH := ansible_collections/tokenops/entra

# ansible-core versions under test, and the Python versions (in order of
# preference) used for each one's venv.  The pins are in
# tests/requirements-core-<core>.txt.
CORES := 2.19 2.21
PYTHONS_2.19 := 3.11
PYTHONS_2.21 := 3.12 3.13
# The venv that runs the simulator suite.
SIMULATOR_CORE := 2.19
SIMULATOR_TESTS := tests/simulator/tests

SANITY_ARGS ?=
UNITS_ARGS ?=
INTEGRATION_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

# Isolation: keep pip, ansible and ansible-test state out of the real home
# (ANSIBLE_REMOTE_TMP too: ansible writes its module temp files there, not in
# TMPDIR).  The real HOME is kept for
# pyenv, which locates its versions through it when PYENV_ROOT is unset.
REAL_HOME := $(HOME)
export HOME := $(TMP_DIR)/home
export XDG_CACHE_HOME := $(HOME)/.cache
export XDG_CONFIG_HOME := $(HOME)/.config
export XDG_DATA_HOME := $(HOME)/.local/share
export ANSIBLE_HOME := $(HOME)/.ansible
export ANSIBLE_REMOTE_TMP := $(ANSIBLE_HOME)/tmp
export TMPDIR := $(TMP_DIR)/tmp
export PIP_DISABLE_PIP_VERSION_CHECK := 1
ISOLATED_DIRS := $(HOME) $(XDG_CACHE_HOME) $(ANSIBLE_REMOTE_TMP) $(TMPDIR)

# The lint venv (ruff, mypy, ansible-lint: tests/requirements-lint.txt) is built on the pins of core $(LINT_CORE).
LINT_CORE := 2.19
PYTHONS_lint := $(PYTHONS_$(LINT_CORE))
lint_bin = $(VENV_DIR)/lint/bin
venv = $(VENV_DIR)/$(if $(filter lint,$(1)),lint,core-$(1))
req_top = tests/requirements-$(if $(filter lint,$(1)),lint,core-$(1)).txt
req_files = tests/requirements.txt $(if $(filter lint,$(1)),tests/requirements-core-$(LINT_CORE).txt) $(call req_top,$(1))
req_hash = $(firstword $(shell cat $(call req_files,$(1)) 2>/dev/null | sha256sum))
stamp = $(call venv,$(1))/.stamp-$(call req_hash,$(1))
collection = $(TMP_DIR)/core-$(1)/$(COLLECTION_PATH)
# "X.Y" of a core's venv interpreter (shell snippet, evaluated in the recipe).
venv_pyver = $$($(call venv,$(1))/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-test run with the venv's interpreter (its find_python then uses
# sys.executable for the matching --python version).
ansible_test = cd $(call collection,$(1)) && PATH="$(call venv,$(1))/bin:$$PATH" \
	$(call venv,$(1))/bin/python $(call venv,$(1))/bin/ansible-test

# The per-core pattern targets (shim-X.Y, copy-X.Y, sanity-X.Y, units-X.Y,
# integration-X.Y, core-X.Y, pipeline-X.Y) cannot be .PHONY: make skips implicit rule search for phony targets.
.PHONY: help test venvs sanity units integration simulator-test lint clean check-no-ignores dirs \
	$(foreach c,$(CORES) lint,venv-$(c))

help:
	@sed -n '3,14s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))

# The cores' pipelines (sanity, units, integration: in that order within a core) run side by side, one per CPU of
# the 2-core CI machines; each core's output is printed as a block when its pipeline ends (its logs are also in
# .tmp/core-X.Y/*.log). The venvs are built first, one after the other.
test: check-no-ignores venvs lint
	@echo "==> make test: the pipelines of cores $(CORES) side by side (each core's output appears when it ends)"
	@$(MAKE) --no-print-directory -j$(words $(CORES)) --output-sync=recurse $(foreach c,$(CORES),pipeline-$(c))
	@$(MAKE) --no-print-directory simulator-test
	@$(MAKE) --no-print-directory molecule
	@$(MAKE) --no-print-directory bench-short
	@echo "==> make test: all passed"

# One core's sanity, units and integration, one after the other (-j1: the three share the core's collection copy).
pipeline-%:
	@$(MAKE) --no-print-directory -j1 core-$*

venvs: $(foreach c,$(CORES) lint,venv-$(c))
sanity: check-no-ignores $(foreach c,$(CORES),sanity-$(c))
units: $(foreach c,$(CORES),units-$(c))
integration: check-no-ignores $(foreach c,$(CORES),integration-$(c))

dirs:
	@mkdir -p $(ISOLATED_DIRS)

# No ignore files, ever: fix the code instead.
check-no-ignores:
	@if compgen -G 'tests/sanity/ignore-*.txt' >/dev/null; then \
		echo "ERROR: sanity ignore files are not allowed in this collection:" >&2; \
		ls -1 tests/sanity/ignore-*.txt >&2; \
		exit 1; \
	fi

# ---------------------------------------------------------------- venvs
define venv_rules
$(call stamp,$(1)): CORE := $(1)
$(call stamp,$(1)): | dirs $(call req_files,$(1))
	@echo "==> [core $(1)] creating $(call venv,$(1)) (Python $(PYTHONS_$(1)))"
	rm -rf $(call venv,$(1))
	py="$$$$(HOME='$(REAL_HOME)' $(ROOT)/.ci/find-python $(PYTHONS_$(1)))"; \
	echo "    interpreter: $$$$py"; \
	"$$$$py" -m venv $(call venv,$(1)) || { \
		echo "ERROR: '$$$$py -m venv' failed; install the venv module (Debian: apt-get install python3-venv)" >&2; \
		exit 1; }
	$(call venv,$(1))/bin/python -m pip install --quiet --no-input -r $(call req_top,$(1))
	touch $$@
	@echo "==> [core $(1)] ready: $$$$($(call venv,$(1))/bin/ansible --version | head -1)"

venv-$(1): $(call stamp,$(1))
endef
$(foreach c,$(CORES) lint,$(eval $(call venv_rules,$(c))))

# ------------------------------------------------------- get-pip shim
# ansible-test bootstraps pip in each venv it builds from
# ~/.ansible/test/cache/get_pip_<pip version>.py and otherwise downloads it
# from bootstrap.pypa.io, which the CI machines cannot reach.  The pip version is
# the one pinned in the core's ansible_test/_internal/python_requirements.py.
shim-%: venv-% | dirs
	@pipver="$$($(call venv,$*)/bin/python -c "import re, pathlib, ansible_test as a; \
		print(re.search(r\"pip='([^']+)'\", (pathlib.Path(a.__file__).parent / '_internal/python_requirements.py').read_text())[1])")"; \
	dest="$(HOME)/.ansible/test/cache/get_pip_$${pipver//./_}.py"; \
	mkdir -p "$$(dirname "$$dest")"; \
	if ! cmp -s .ci/get_pip_shim.py "$$dest"; then \
		cp .ci/get_pip_shim.py "$$dest.$$$$" && mv -f "$$dest.$$$$" "$$dest"; \
	fi; \
	echo "==> [core $*] get-pip shim for pip $$pipver: $$dest"

# ------------------------------------------- collection copy for ansible-test
copy-%: venv-% check-no-ignores
	@echo "==> [core $*] copying the collection to $(call collection,$*)"
	@# Fresh copy, but keep tests/output/: ansible-test keeps its delegation
	@# venv in tests/output/.tmp/ (rebuilding it costs ~15 s per command).
	@mkdir -p $(call collection,$*)/tests
	@find $(call collection,$*) -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
	@find $(call collection,$*)/tests -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
	@git ls-files -co --exclude-standard -z \
		| while IFS= read -r -d '' f; do if [ -e "$$f" ] || [ -L "$$f" ]; then printf '%s\0' "$$f"; fi; done \
		| tar --null --no-recursion -T - -cf - \
		| tar -xf - -C $(call collection,$*)
	@# A git root of its own: otherwise ansible-test walks up to this repo's
	@# .git, in which .tmp/ is ignored, and skips every target.
	@git -c init.defaultBranch=main init -q $(call collection,$*)
	@if compgen -G '$(call collection,$*)/tests/sanity/ignore-*.txt' >/dev/null; then \
		echo "ERROR: sanity ignore files are not allowed" >&2; exit 1; fi

# ---------------------------------------------------------- ansible-test
# ansible-test only warns (exit 0) when it ignores a broken tests/config.yml
# or finds no targets at all (e.g. a wrong content root): fail on both.
sanity-%: copy-% shim-%
	@log=$(TMP_DIR)/core-$*/sanity.log; \
	echo "==> [core $*] ansible-test sanity --venv --python $(call venv_pyver,$*) $(SANITY_ARGS)"; \
	$(call ansible_test,$*) sanity --venv --python $(call venv_pyver,$*) $(SANITY_ARGS) 2>&1 | tee "$$log"; \
	if grep -E 'All targets skipped|Ignoring config' "$$log" >&2; then \
		echo "ERROR: [core $*] ansible-test sanity skipped everything or ignored tests/config.yml" >&2; \
		exit 1; \
	fi

# With no unit tests, ansible-test units prints "WARNING: All targets
# skipped." and exits 0: skip explicitly (and say so) in that case.  Once a
# test file exists, its failures fail the target, and so does ansible-test
# skipping every target (e.g. all filtered out by Python version).
units-%: copy-% shim-%
	@if [ -z "$$(cd $(call collection,$*) && find tests/unit -name 'test_*.py' 2>/dev/null | head -1)" ]; then \
		echo "==> [core $*] units: SKIPPED, no unit test files (tests/unit/**/test_*.py) yet"; \
	else \
		log=$(TMP_DIR)/core-$*/units.log; \
		echo "==> [core $*] ansible-test units --venv --python $(call venv_pyver,$*)"; \
		$(call ansible_test,$*) units --venv --python $(call venv_pyver,$*) $(UNITS_ARGS) 2>&1 | tee "$$log"; \
		if grep -q 'All targets skipped' "$$log"; then \
			echo "ERROR: [core $*] unit test files exist but ansible-test units skipped all of them" >&2; \
			exit 1; \
		fi; \
	fi

# The integration targets (tests/integration/targets/) run the module against the
# local simulator (tests/simulator), which each target starts and stops itself
# (setup_simulator) with the interpreter of ansible-test's venv; that venv gets
# tests/integration/requirements.txt.  Every target runs even when one fails
# (--continue-on-error).  ansible-test exits 0 when it finds no target to run:
# fail on that, as for sanity.
integration-%: copy-% shim-%
	@log=$(TMP_DIR)/core-$*/integration.log; \
	echo "==> [core $*] ansible-test integration --venv --python $(call venv_pyver,$*) $(INTEGRATION_ARGS)"; \
	$(call ansible_test,$*) integration --venv --python $(call venv_pyver,$*) --continue-on-error $(INTEGRATION_ARGS) 2>&1 | tee "$$log"; \
	if grep -E 'All targets skipped|No test targets|Ignoring config' "$$log" >&2 \
		|| ! grep -q 'Running .* integration test role' "$$log"; then \
		echo "ERROR: [core $*] ansible-test integration ran no target or ignored tests/config.yml" >&2; \
		exit 1; \
	fi

core-%: sanity-% units-% integration-%
	@echo "==> [core $*] sanity, units and integration passed"

# ------------------------------------------------------ simulator suite
# Runs from the repository root.  pytest's exit code 5 (no tests collected)
# fails the target like any other non-zero exit.
# ---------------------------------------------------------------- lint
# mypy reads module_utils as the package Ansible imports it as (ansible_collections.tokenops.entra...), and
# ansible-lint resolves the collection's own modules, through a collections path that links to the repository.
lint: venv-lint | dirs
	@echo "==> lint: ruff check, ruff format --check, mypy, ansible-lint"
	$(call lint_bin)/ruff check --no-cache .
	$(call lint_bin)/ruff format --no-cache --check .
	@mkdir -p $(TMP_DIR)/lint/ansible_collections/tokenops
	@ln -sfn $(ROOT) $(TMP_DIR)/lint/ansible_collections/tokenops/entra
	cd $(TMP_DIR)/lint && MYPYPATH=$(TMP_DIR)/lint $(call lint_bin)/mypy --config-file $(ROOT)/pyproject.toml \
		--cache-dir $(TMP_DIR)/lint/.mypy_cache -p ansible_collections.tokenops.entra.plugins.module_utils
	cd tests/simulator && $(call lint_bin)/mypy --config-file $(ROOT)/pyproject.toml \
		--cache-dir $(TMP_DIR)/lint/.mypy_cache entrasim serve.py hostile.py
	PATH="$(call lint_bin):$$PATH" ANSIBLE_COLLECTIONS_PATH=$(TMP_DIR)/lint $(call lint_bin)/ansible-lint
	@echo "==> lint: clean"

simulator-test: venv-$(SIMULATOR_CORE)
	@if [ ! -d $(SIMULATOR_TESTS) ]; then \
		echo "==> simulator-test: SKIPPED, $(SIMULATOR_TESTS)/ does not exist"; \
	else \
		echo "==> simulator-test: pytest $(SIMULATOR_TESTS) (core $(SIMULATOR_CORE) venv)"; \
		$(call venv,$(SIMULATOR_CORE))/bin/python -m pytest $(SIMULATOR_TESTS) $(PYTEST_ARGS); \
	fi

clean:
	rm -rf $(VENV_DIR) $(TMP_DIR) tests/output .pytest_cache

# ------------------------------------------------------------------ demo
# Starts the simulator on the demo tenant, runs docs/examples/manage_tokens.yml twice and retire_tokens.yml, stops the simulator.
.PHONY: demo
demo: venv-2.19
	@scripts/demo $(call venv,2.19) $(TMP_DIR)/demo

# ------------------------------------------------------------------ bench
# The benchmark of hardware_oath_inventory (docs/performance.md): bench/run.py with the 2.19 venv runs ansible-playbook
# end to end against the simulator. bench-short (part of make test) checks outcomes and request counts, not time.
.PHONY: bench bench-short
bench: venv-2.19 | dirs
	@$(call venv,2.19)/bin/python bench/run.py $(BENCH_ARGS)

bench-short: venv-2.19 | dirs
	@echo "==> bench-short: bench/run.py --short (outcomes and request counts, not timed)"
	@$(call venv,2.19)/bin/python bench/run.py --short $(BENCH_ARGS)

# ------------------------------------------------------------------ molecule
# The role's scenarios (extensions/molecule/): the default driver on localhost, against the simulator each scenario
# starts in prepare and stops in cleanup. The collection is found through a symlink, not installed (prerun: false).
.PHONY: molecule
molecule: venv-2.19 | dirs
	@echo "==> molecule: the scenarios of roles/hardware_oath_tokens"
	@mkdir -p $(TMP_DIR)/molecule/ansible_collections/tokenops
	@ln -sfn $(CURDIR) $(TMP_DIR)/molecule/ansible_collections/tokenops/entra
	@cd $(TMP_DIR)/molecule/ansible_collections/tokenops/entra && PATH="$(call venv,2.19)/bin:$$PATH" \
		ANSIBLE_COLLECTIONS_PATH=$(TMP_DIR)/molecule ANSIBLE_LOCALHOST_WARNING=false \
		ANSIBLE_INVENTORY_UNPARSED_WARNING=false $(call venv,2.19)/bin/molecule test --all
