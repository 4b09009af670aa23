# Test toolchain for the tokenops.entra collection.
#
#   make test            everything, three stages at a time (TEST_JOBS), then a table of each stage's time:
#                        the venvs, lint, sanity, units and integration on every core, the simulator suite,
#                        the conformance tests, molecule, bench-short, soak-short, ee-check and release-check
#   make sanity          ansible-test sanity --venv on every core                 (SANITY_ARGS="--test pylint")
#   make units           the unit tests (pytest) on every core, in the core's venv (UNITS_ARGS=...)
#   make integration     ansible-test integration on every core, in the core's venv, against the simulator
#                                                                                 (INTEGRATION_ARGS=target ...)
#   make simulator-test  pytest tests/simulator/tests with the 2.19 venv          (PYTEST_ARGS=...)
#   make conformance-test  pytest tests/conformance: the fixtures against the simulator and the modules' parsers
#   make conformance     the real-tenant check (docs/real-tenant.md); AZURE_* and TOKENOPS_* from the environment
#                                                       (CONFORMANCE_REPORT=file, CONFORMANCE_ARGS="--cleanup PREFIX")
#   make lint            ruff (lint, format check), mypy, ansible-lint, CI examples' schemas, the AWX example's
#                        configure.yml against awx.awx (.ci/awx_configure_check.py), from the 2.19 venv
#   make ee-check        the execution environment metadata through ansible-builder create and introspect
#   make sanity-2.19     (or units-2.21, integration-2.21, venv-2.21, ...) a single core
#   make venvs           only create the virtual environments
#   make demo            the role hardware_oath_tokens on a YAML and a CSV inventory, against the local simulator
#   make demo-lifecycle  the token lifecycle one module at a time (docs/examples/manage_tokens.yml), the same way
#   make molecule        the role's molecule scenarios (extensions/molecule/), against the simulator
#   make bench           the benchmark of hardware_oath_inventory (docs/performance.md): bench/results.json, bench/plot.svg
#   make bench-short     its short version (a few dozen tokens, outcomes and request counts only, no timing)
#   make bench-quota     the benchmark's target 7 alone: 10,000 new tokens at Graph's real write quota
#                        (BENCH_ARGS="--quota-model sliding_window --throttled-requests free": another way to count it)
#   make soak            the worst-day soak of hardware_oath_inventory (docs/reliability.md): 2,000 tokens, every fault
#                        at once, 3 fault seeds, 20 kills, two runs at once (SOAK_ARGS="--seeds 4 --kills 7")
#   make soak-short      its short version (200 tokens, one fault seed, 3 kills): .tmp/soak-short/report.md
#   make release-check   build the artifact; Galaxy's import checks (galaxy-importer), antsibull-docs' lint and the
#                        docsite rendered to HTML from it (the guides' pages up to date with their Markdown)
#   make docsite         after editing a guide of the docsite: render docs/<name>.md to docs/docsite/rst/<name>.rst
#   make clean           remove .venv/, .tmp/ and other local state
#
# Every core gets a project-local venv (.venv/core-X.Y) made from the pinned tests/requirements*.txt; it is rebuilt
# only when their content changes (stamp file named after their sha256). It holds everything the core's tests run
# with: ansible-core, the modules' libraries, the simulator's, pytest; the 2.19 venv also molecule and the lint
# tools. The unit tests and ansible-test integration run in it (--local: no second venv); sanity makes its own venvs,
# as it must. Each test run works on its own copy of the collection's files (git ls-files -co --exclude-standard) at
# .tmp/<run>/ansible_collections/tokenops/entra, so that runs can go side by side. HOME, caches and temp dirs all
# point into .tmp/, so nothing is written to the real home directory.

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
# The core whose venv runs the lint, the simulator suite, molecule, the demo and the benchmark.
MAIN_CORE := 2.19
SIMULATOR_TESTS := tests/simulator/tests
CONFORMANCE_TESTS := tests/conformance

SANITY_ARGS ?=
UNITS_ARGS ?=
INTEGRATION_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
SOAK_ARGS ?=

# make test: how many stages run at once, and the integration targets of each core in parts of about the same CPU
# time, run side by side, each in its own copy against its own simulators. A target that no part names is in the last
# one. Three stages at once on the 2-core CI machines: the integration targets and the short soak spend a third of
# their time waiting (for a TOTP time step, a Retry-After, a paced run to show its progress, a killed run to stop),
# and a third stage fills those waits. Measured on clean clones of one commit: 15:35 in all against 17:06 with two at
# once, for 5 % more CPU time. The CPU time of each stage: the table at the end of make test.
TEST_JOBS ?= 3
INTEGRATION_TARGETS := $(filter-out setup_%,$(notdir $(wildcard tests/integration/targets/*)))
INTEGRATION_PART_1 := awx_credential_injectors hardware_oath_token_info credential_destinations
INTEGRATION_PART_2 := hardware_oath_assignment hardware_oath_token hardware_oath_inventory
INTEGRATION_PART_3 := $(filter-out $(INTEGRATION_PART_1) $(INTEGRATION_PART_2),$(INTEGRATION_TARGETS))
INTEGRATION_PARTS := 1 2 3
# The targets that run an example (its playbooks, as AWX or a CI pipeline runs them) test the same modules as every
# other target does on each core: make test runs each on one core, the one its example is meant for (the AWX example's
# execution environment pins 2.21). Two more run on one core each, one on each core's Python: their subject is the
# collection's own code under Graph's behaviours (faults; the other plausible answers of real_service_fidelity), the
# same code on every core, while how each core runs the modules is what every module's own target tests on both.
# make integration-X.Y runs them all.
INTEGRATION_ON_ONE_CORE := awx_credential_injectors@2.21 gitops_example@2.19 hardware_oath_assignment_faults@2.21 \
	real_service_fidelity@2.19
# $(call part_targets,PART,CORE): the targets of that part, less those meant for another core.
part_targets = $(filter-out $(foreach t,$(INTEGRATION_ON_ONE_CORE),$(if $(filter-out $(2),$(lastword $(subst @, ,$(t)))),$(firstword $(subst @, ,$(t))))),$(INTEGRATION_PART_$(1)))
# The stages of make test, in the order make starts them once both venvs are ready: the longest first, then those that
# mostly wait (the short soak and benchmark, the simulator's suite: the other stages use the time), and last the short
# ones that keep a core busy, so that the stages end together.
TEST_STAGES := $(foreach p,$(INTEGRATION_PARTS),$(foreach c,$(CORES),integration-$(p)-$(c))) \
	$(foreach c,$(CORES),sanity-$(c)) molecule release-check soak-short simulator-test bench-short lint \
	$(foreach c,$(CORES),units-$(c)) conformance-test ee-check
STAGES_DIR := $(TMP_DIR)/stages

# Isolation: keep pip, ansible and ansible-test state out of the real home
# (ANSIBLE_REMOTE_TMP too: ansible writes its module temp files there, not in
# TMPDIR).  The real HOME is kept for
# pyenv, which locates its versions through it when PYENV_ROOT is unset (exported: a make below sees only ours).
ifndef REAL_HOME
REAL_HOME := $(HOME)
endif
export REAL_HOME
export HOME := $(TMP_DIR)/home
export XDG_CACHE_HOME := $(HOME)/.cache
export XDG_CONFIG_HOME := $(HOME)/.config
export XDG_DATA_HOME := $(HOME)/.local/share
export ANSIBLE_HOME := $(HOME)/.ansible
export ANSIBLE_REMOTE_TMP := $(ANSIBLE_HOME)/tmp
export TMPDIR := $(TMP_DIR)/tmp
export PIP_DISABLE_PIP_VERSION_CHECK := 1
ISOLATED_DIRS := $(HOME) $(XDG_CACHE_HOME) $(ANSIBLE_REMOTE_TMP) $(TMPDIR)

venv = $(VENV_DIR)/core-$(1)
bin = $(call venv,$(MAIN_CORE))/bin
req_top = tests/requirements-core-$(1).txt
req_files = tests/requirements.txt $(if $(filter $(MAIN_CORE),$(1)),tests/requirements-lint.txt) $(call req_top,$(1))
req_hash = $(firstword $(shell cat $(call req_files,$(1)) 2>/dev/null | sha256sum))
stamp = $(call venv,$(1))/.stamp-$(call req_hash,$(1))
# An ansible-test run's copy of the collection: $(call copy_dir,RUN), RUN such as sanity-2.19 or integration-1-2.21.
copy_dir = $(TMP_DIR)/$(1)/$(COLLECTION_PATH)
# "X.Y" of a core's venv interpreter (shell snippet, evaluated in the recipe).
venv_pyver = $$($(call venv,$(1))/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-test of core $(1) in the copy of run $(2), with the venv's interpreter (its find_python then uses
# sys.executable for the matching --python version); $(3): more environment (NAME=value ...).
ansible_test = cd $(call copy_dir,$(2)) && $(3) PATH="$(call venv,$(1))/bin:$$PATH" \
	$(call venv,$(1))/bin/python $(call venv,$(1))/bin/ansible-test

# The per-core pattern targets (shim-X.Y, sanity-X.Y, units-X.Y, integration-X.Y, integration-N-X.Y, core-X.Y)
# cannot be .PHONY: make skips implicit rule search for phony targets.
.PHONY: help test venvs sanity units integration simulator-test conformance-test conformance lint ee-check clean \
	check-no-ignores dirs release-check docsite venv-galaxy \
	$(foreach c,$(CORES),venv-$(c))

help:
	@sed -n '3,/^#$$/{/^#$$/d;s/^# \{0,1\}//p}' $(firstword $(MAKEFILE_LIST))

# ---------------------------------------------------------------- make test
# Every stage is run by .ci/stages.py, which keeps its output until it ends (then prints it as one block) and records
# its wall and CPU time; -k: a failed stage does not stop the others, and the table shows every result.
test: check-no-ignores | dirs
	@rm -rf $(STAGES_DIR)
	@echo "==> make test: $(words $(TEST_STAGES)) stages after the venvs, $(TEST_JOBS) at a time (each stage's output appears when it ends)"
	@status=0; $(MAKE) --no-print-directory -k -j$(TEST_JOBS) $(addprefix stage-,$(TEST_STAGES)) || status=$$?; \
	python3 .ci/stages.py table $(STAGES_DIR); \
	if [ "$$status" -ne 0 ]; then echo "==> make test: FAILED" >&2; exit "$$status"; fi; \
	echo "==> make test: all passed"

stage-%:
	@python3 .ci/stages.py run $(STAGES_DIR) $* -- $(MAKE) --no-print-directory $*

# Every stage waits for both venvs (stages of their own, timed like the others): make then starts the stages in the
# order of TEST_STAGES, the longest first, whichever venv is ready first.
$(foreach s,$(TEST_STAGES),$(eval stage-$(s): $(foreach c,$(CORES),stage-venv-$(c))))

venvs: $(foreach c,$(CORES),venv-$(c))
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
	@echo "==> [core $(1)] ready: ansible-core $$$$($(call venv,$(1))/bin/python -c 'import ansible.release as r; print(r.__version__)')"

venv-$(1): $(call stamp,$(1))
endef
$(foreach c,$(CORES),$(eval $(call venv_rules,$(c))))

# ------------------------------------------------------- get-pip shim
# ansible-test bootstraps pip in each venv it builds (sanity's) from
# ~/.ansible/test/cache/get_pip_<pip version>.py and otherwise downloads it
# from bootstrap.pypa.io, which the CI machines cannot reach.  The pip version is
# the one pinned in the core's ansible_test/_internal/python_requirements.py; its
# wheel, beside the shim, lets each venv get pip in one step (see .ci/get_pip_shim.py).
shim-%: venv-% | dirs
	@pipver="$$($(call venv,$*)/bin/python -c "import re, pathlib, ansible_test as a; \
		print(re.search(r\"pip='([^']+)'\", (pathlib.Path(a.__file__).parent / '_internal/python_requirements.py').read_text())[1])")"; \
	dest="$(HOME)/.ansible/test/cache/get_pip_$${pipver//./_}.py"; \
	mkdir -p "$$(dirname "$$dest")"; \
	if ! cmp -s .ci/get_pip_shim.py "$$dest"; then \
		cp .ci/get_pip_shim.py "$$dest.$$$$" && mv -f "$$dest.$$$$" "$$dest"; \
	fi; \
	if [ ! -f "$$(dirname "$$dest")/pip-$$pipver-py3-none-any.whl" ]; then \
		$(call venv,$*)/bin/python -m pip download --quiet --no-deps --only-binary :all: \
			--dest "$$(dirname "$$dest")" "pip==$$pipver"; \
	fi; \
	echo "==> [core $*] get-pip shim for pip $$pipver, with its wheel: $$dest"

# ------------------------------------------- collection copy for ansible-test
# $(call fresh_copy,RUN): the collection's files at $(call copy_dir,RUN). Its tests/output/ is kept: sanity's
# delegation venv lives in it (rebuilding it costs ~15 s per command).
define fresh_copy
@echo "==> [$(1)] copying the collection to $(call copy_dir,$(1))"
@mkdir -p $(call copy_dir,$(1))/tests
@find $(call copy_dir,$(1)) -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
@find $(call copy_dir,$(1))/tests -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
@git ls-files -co --exclude-standard -z \
	| while IFS= read -r -d '' f; do if [ -e "$$f" ] || [ -L "$$f" ]; then printf '%s\0' "$$f"; fi; done \
	| tar --null --no-recursion -T - -cf - \
	| tar -xf - -C $(call copy_dir,$(1))
@# A git root of its own: otherwise ansible-test walks up to this repo's .git, in which .tmp/ is ignored, and skips
@# every target.
@git -c init.defaultBranch=main init -q $(call copy_dir,$(1))
@if compgen -G '$(call copy_dir,$(1))/tests/sanity/ignore-*.txt' >/dev/null; then \
	echo "ERROR: sanity ignore files are not allowed" >&2; exit 1; fi
endef

# ---------------------------------------------------------- ansible-test
# ansible-test only warns (exit 0) when it ignores a broken tests/config.yml
# or finds no targets at all (e.g. a wrong content root): fail on both.
sanity-%: venv-% shim-% check-no-ignores
	$(call fresh_copy,sanity-$*)
	@log=$(TMP_DIR)/sanity-$*/sanity.log; \
	echo "==> [sanity-$*] ansible-test sanity --venv --python $(call venv_pyver,$*) $(SANITY_ARGS)"; \
	$(call ansible_test,$*,sanity-$*) sanity --venv --python $(call venv_pyver,$*) $(SANITY_ARGS) 2>&1 | tee "$$log"; \
	if grep -E 'All targets skipped|Ignoring config' "$$log" >&2; then \
		echo "ERROR: [core $*] ansible-test sanity skipped everything or ignored tests/config.yml" >&2; \
		exit 1; \
	fi

# The unit tests: pytest in the core's venv, on the run's copy of the collection (importable from .tmp/units-X.Y as
# ansible_collections.tokenops.entra), with the options ansible-test's pytest configuration sets (xfail_strict, strict
# markers). Not ansible-test units: it runs every test in a process forked for it (its ansible_forked plugin), which
# took 69 s of CPU against pytest's 18 s on core 2.19, for the same 2,395 tests passing. UNITS_ARGS: pytest's
# arguments instead of tests/unit (a file, -k ...).
units-%: venv-% check-no-ignores
	$(call fresh_copy,units-$*)
	@echo "==> [units-$*] pytest $(or $(UNITS_ARGS),tests/unit), Python $(call venv_pyver,$*)"
	@cd $(call copy_dir,units-$*) && PYTHONPATH=$(TMP_DIR)/units-$* $(call venv,$*)/bin/python -m pytest \
		-p no:cacheprovider --import-mode=importlib -o xfail_strict=true --strict-markers -r a -q \
		$(or $(UNITS_ARGS),tests/unit)

# The integration targets (tests/integration/targets/) run the module against the local simulator
# (tests/simulator), which each target starts and stops itself (setup_simulator) with the interpreter that runs
# ansible-playbook: the core's venv, which has tests/integration/requirements.txt. Every target runs even when one
# fails (--continue-on-error). ansible-test exits 0 when it finds no target to run: fail on that, as for sanity.
# Each run has a home of its own: ansible-test makes its SSH key in ~/.ansible/test/, and two runs side by side must
# not both make it. $(call integration,CORE,RUN,TARGETS)
define integration
$(call fresh_copy,$(2))
@mkdir -p $(TMP_DIR)/$(2)/home
@log=$(TMP_DIR)/$(2)/integration.log; \
echo "==> [$(2)] ansible-test integration --local --python $(call venv_pyver,$(1)) $(3)"; \
$(call ansible_test,$(1),$(2),HOME=$(TMP_DIR)/$(2)/home) integration --local --python $(call venv_pyver,$(1)) \
	--continue-on-error $(3) 2>&1 | tee "$$log"; \
if grep -E 'All targets skipped|No test targets|Ignoring config' "$$log" >&2 \
	|| ! grep -q 'Running .* integration test role' "$$log"; then \
	echo "ERROR: [$(2)] ansible-test integration ran no target or ignored tests/config.yml" >&2; \
	exit 1; \
fi
endef

# Every target of one core (INTEGRATION_ARGS: some), or one part of them: integration-N-X.Y (make test runs the
# parts side by side).
integration-%: venv-% check-no-ignores
	$(call integration,$*,integration-$*,$(INTEGRATION_ARGS))

define integration_part
integration-$(1)-%: venv-% check-no-ignores
	$$(call integration,$$*,integration-$(1)-$$*,$$(call part_targets,$(1),$$*))
endef
$(foreach p,$(INTEGRATION_PARTS),$(eval $(call integration_part,$(p))))

core-%: sanity-% units-% integration-%
	@echo "==> [core $*] sanity, units and integration passed"

# ---------------------------------------------------------------- awx.awx
# awx.awx, which the AWX example's configure.yml uses: ansible-lint's syntax check resolves its modules through it,
# and .ci/awx_configure_check.py validates each of configure.yml's tasks against their argument specs and
# documentation (no AWX needed). It comes from PyPI's community `ansible` package, pinned here, which ships it: the
# wheel alone is downloaded (--no-deps) and only ansible_collections/awx/awx is extracted from it (98 files of
# 21,000), once per pin. `make awx-collection` makes it alone.
AWX_ANSIBLE_VERSION := 12.3.0
AWX_COLLECTIONS := $(TMP_DIR)/awx-collection/ansible-$(AWX_ANSIBLE_VERSION)
AWX_COLLECTION := $(AWX_COLLECTIONS)/ansible_collections/awx/awx/MANIFEST.json
.PHONY: awx-collection
awx-collection: $(AWX_COLLECTION)
$(AWX_COLLECTION): | venv-$(MAIN_CORE) dirs
	@echo "==> awx.awx from ansible $(AWX_ANSIBLE_VERSION) (PyPI), into $(AWX_COLLECTIONS)"
	@rm -rf $(AWX_COLLECTIONS) $(AWX_COLLECTIONS).download
	@$(bin)/python -m pip download --quiet --no-deps --only-binary :all: --no-cache-dir \
		--dest $(AWX_COLLECTIONS).download "ansible==$(AWX_ANSIBLE_VERSION)"
	@$(bin)/python -c 'import sys, zipfile; wheel = zipfile.ZipFile(sys.argv[1]); \
		wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith("ansible_collections/awx/awx/")])' \
		$(AWX_COLLECTIONS).download/*.whl $(AWX_COLLECTIONS)
	@rm -rf $(AWX_COLLECTIONS).download
	@test -f $@

# ---------------------------------------------------------------- lint
# mypy reads module_utils as the package Ansible imports it as (ansible_collections.tokenops.entra...), and
# ansible-lint resolves the collection's own modules, through a collections path that links to the repository.
# check-jsonschema validates the GitOps example's GitHub Actions workflows and GitLab CI file against the schemas it
# ships (SchemaStore's, vendored in the pinned release: no download, offline); a newer pin brings newer schemas.
EXAMPLE_GITHUB_WORKFLOWS := $(wildcard docs/examples/gitops/.github/workflows/*.yml)
EXAMPLE_GITLAB_CI := docs/examples/gitops/.gitlab-ci.yml
lint: venv-$(MAIN_CORE) $(AWX_COLLECTION) | dirs
	@echo "==> lint: ruff check, ruff format --check, mypy, ansible-lint, check-jsonschema, the AWX configure.yml"
	$(bin)/ruff check --no-cache .
	$(bin)/ruff format --no-cache --check .
	@mkdir -p $(TMP_DIR)/lint/ansible_collections/tokenops
	@ln -sfn $(ROOT) $(TMP_DIR)/lint/ansible_collections/tokenops/entra
	cd $(TMP_DIR)/lint && MYPYPATH=$(TMP_DIR)/lint $(bin)/mypy --config-file $(ROOT)/pyproject.toml \
		--cache-dir $(TMP_DIR)/lint/.mypy_cache -p ansible_collections.tokenops.entra.plugins.module_utils
	cd tests/simulator && $(bin)/mypy --config-file $(ROOT)/pyproject.toml \
		--cache-dir $(TMP_DIR)/lint/.mypy_cache entrasim serve.py hostile.py
	cd tests/conformance && MYPYPATH=$(TMP_DIR)/lint $(bin)/mypy --config-file $(ROOT)/pyproject.toml \
		--cache-dir $(TMP_DIR)/lint/.mypy_cache conformance_check.py conformance_shapes.py collection_path.py
	$(bin)/mypy --config-file $(ROOT)/pyproject.toml --cache-dir $(TMP_DIR)/lint/.mypy_cache .ci/ee_check.py \
		.ci/awx_configure_check.py .ci/docsite.py
	PATH="$(bin):$$PATH" ANSIBLE_COLLECTIONS_PATH=$(TMP_DIR)/lint:$(AWX_COLLECTIONS) $(bin)/ansible-lint
	$(bin)/python .ci/awx_configure_check.py --collections $(AWX_COLLECTIONS)
	$(bin)/check-jsonschema --builtin-schema vendor.github-workflows $(EXAMPLE_GITHUB_WORKFLOWS)
	$(bin)/check-jsonschema --builtin-schema vendor.gitlab-ci $(EXAMPLE_GITLAB_CI)
	@echo "==> lint: clean"

# ------------------------------------------------------------- ee-check
# The collection's execution environment metadata as ansible-builder uses it (.ci/ee_check.py, no container engine,
# offline): the collection's artifact beside the AWX example's execution-environment.yml, ansible-builder create (the
# build context), the collection installed from that context and ansible-builder introspect on it, as the image's
# build would; every package the collection's code imports must be among the Python requirements the image gets, in
# a range that holds the version the tests run with. A few seconds. ansible-builder is pinned in
# tests/requirements-lint.txt; ANSIBLE_BUILDER=path runs another one.
ANSIBLE_BUILDER ?= $(bin)/ansible-builder
ee-check: venv-$(MAIN_CORE) | dirs
	@$(bin)/python .ci/ee_check.py --ansible-builder $(ANSIBLE_BUILDER) --ansible-galaxy $(bin)/ansible-galaxy \
		--work-dir $(TMP_DIR)/ee-check

# ------------------------------------------------------ simulator suite
# Runs from the repository root.  pytest's exit code 5 (no tests collected)
# fails the target like any other non-zero exit.
simulator-test: venv-$(MAIN_CORE)
	@if [ ! -d $(SIMULATOR_TESTS) ]; then \
		echo "==> simulator-test: SKIPPED, $(SIMULATOR_TESTS)/ does not exist"; \
	else \
		echo "==> simulator-test: pytest $(SIMULATOR_TESTS) (core $(MAIN_CORE) venv)"; \
		$(bin)/python -m pytest $(SIMULATOR_TESTS) $(PYTEST_ARGS); \
	fi

clean:
	rm -rf $(VENV_DIR) $(TMP_DIR) tests/output .pytest_cache

# ------------------------------------------------------------------ conformance
# tests/conformance (docs/real-tenant.md, "The conformance check"): what Microsoft documents for each Graph operation
# the modules use (tests/conformance/fixtures/), checked against the simulator's default answers and fed to the
# modules' parsers; the real-tenant check run against the simulator in the documented shapes and in the others. A
# pytest run of its own: its pytest.ini is not the simulator suite's. A few CPU-seconds (one simulator).
conformance-test: venv-$(MAIN_CORE)
	@echo "==> conformance-test: pytest $(CONFORMANCE_TESTS) (core $(MAIN_CORE) venv)"
	@$(bin)/python -m pytest $(CONFORMANCE_TESTS) $(PYTEST_ARGS)

# The real-tenant check: it writes to the tenant the environment names (throwaway tokens, removed at the end), so it
# refuses to run without TOKENOPS_CONFORMANCE_WRITES=yes. The collection is imported from this checkout through
# .tmp/conformance/ansible_collections/tokenops/entra, a link to it. Exit status: 0 no difference, 1 differences,
# 2 the run failed.
CONFORMANCE_REPORT ?= $(TMP_DIR)/conformance/report.json
CONFORMANCE_ARGS ?=
conformance: venv-$(MAIN_CORE) | dirs
	@mkdir -p $(TMP_DIR)/conformance/ansible_collections/tokenops
	@ln -sfn $(ROOT) $(TMP_DIR)/conformance/ansible_collections/tokenops/entra
	@PYTHONPATH=$(TMP_DIR)/conformance $(bin)/python tests/conformance/conformance_check.py \
		--report $(CONFORMANCE_REPORT) $(CONFORMANCE_ARGS)

# ------------------------------------------------------------------ demo
# Starts the simulator on the demo tenant and runs the role hardware_oath_tokens of docs/examples/role/ against it: the
# YAML inventory, the admin center's CSV (planned with --check, then applied), then both again (nothing changes; the
# script fails otherwise), each followed by its Markdown report. demo-lifecycle runs docs/examples/manage_tokens.yml
# twice and retire_tokens.yml instead (the single-token modules). Not part of make test.
.PHONY: demo demo-lifecycle
demo: venv-$(MAIN_CORE)
	@scripts/demo $(call venv,$(MAIN_CORE)) $(TMP_DIR)/demo role

demo-lifecycle: venv-$(MAIN_CORE)
	@scripts/demo $(call venv,$(MAIN_CORE)) $(TMP_DIR)/demo lifecycle

# ------------------------------------------------------------------ bench
# The benchmark of hardware_oath_inventory (docs/performance.md): bench/run.py with the 2.19 venv runs ansible-playbook
# end to end against the simulator. bench-short (part of make test) checks outcomes and request counts, not time.
# bench-quota is target 7 alone (part of bench): Graph's real write quota, some minutes.
.PHONY: bench bench-short bench-quota
bench: venv-$(MAIN_CORE) | dirs
	@$(call venv,$(MAIN_CORE))/bin/python bench/run.py $(BENCH_ARGS)

bench-quota: venv-$(MAIN_CORE) | dirs
	@$(call venv,$(MAIN_CORE))/bin/python bench/run.py --only 7 $(BENCH_ARGS)

bench-short: venv-$(MAIN_CORE) | dirs
	@echo "==> bench-short: bench/run.py --short (outcomes and request counts, not timed)"
	@$(call venv,$(MAIN_CORE))/bin/python bench/run.py --short $(BENCH_ARGS)

# ------------------------------------------------------------------ soak
# The worst-day soak of hardware_oath_inventory (docs/reliability.md): tests/soak/run.py with the 2.19 venv runs
# ansible-playbook against the simulator with every fault on at once, kills runs at random moments, runs two at once,
# and judges each phase from the simulator's state and request log. soak-short is part of make test.
.PHONY: soak soak-short
soak: venv-$(MAIN_CORE) | dirs
	@$(bin)/python -m pytest -q -p no:cacheprovider tests/soak
	@$(bin)/python tests/soak/run.py $(SOAK_ARGS)

soak-short: venv-$(MAIN_CORE) | dirs
	@$(bin)/python -m pytest -q -p no:cacheprovider tests/soak
	@$(bin)/python tests/soak/run.py --short $(SOAK_ARGS)

# ------------------------------------------------------------------ molecule
# The role's scenarios (extensions/molecule/): the default driver on localhost, against the simulator each scenario
# starts in prepare and stops in cleanup. The collection is found through a symlink, not installed (prerun: false).
.PHONY: molecule
molecule: venv-$(MAIN_CORE) | dirs
	@echo "==> molecule: the scenarios of roles/hardware_oath_tokens"
	@mkdir -p $(TMP_DIR)/molecule/ansible_collections/tokenops
	@ln -sfn $(CURDIR) $(TMP_DIR)/molecule/ansible_collections/tokenops/entra
	@cd $(TMP_DIR)/molecule/ansible_collections/tokenops/entra && PATH="$(call venv,$(MAIN_CORE))/bin:$$PATH" \
		ANSIBLE_COLLECTIONS_PATH=$(TMP_DIR)/molecule ANSIBLE_LOCALHOST_WARNING=false \
		ANSIBLE_INVENTORY_UNPARSED_WARNING=false $(call venv,$(MAIN_CORE))/bin/molecule test --all

# ------------------------------------------------------------------ release-check
# The artifact as Galaxy and the Ansible docsite take it. `ansible-galaxy collection build` (the $(MAIN_CORE) venv)
# builds it from a copy of the files git sees (tracked, or new and not ignored: no cache, venv or output of a local
# run) and writes it to .tmp/release-check/, which is the artifact to publish; it must hold no tests/ and no
# extensions/ (they cannot run from it: galaxy.yml's build_ignore keeps them out). galaxy-importer then runs Galaxy's own import checks on it (the metadata, every
# plugin's documentation through ansible-doc, each role's README, ansible-lint on the content; not its ansible-test,
# which needs a container: .ci/galaxy-importer.cfg) and must report no warning and no error: it exits 0 on warnings,
# so any WARNING or ERROR line fails the target. antsibull-docs lint-collection-docs checks docs/docsite/ and the
# documentation of every plugin and role, as the docsite renders them, on the artifact unpacked; then antsibull-docs
# and Sphinx render that docsite to HTML (.tmp/release-check/docsite/build/html), with no warning but the links into
# Ansible's own docs (offline). Before the build, the guides' pages (docs/docsite/rst/) must be what `make docsite`
# renders from their Markdown (.ci/docsite.py). The tools run from a venv of their own (.venv/galaxy,
# tests/requirements-galaxy.txt, rebuilt when that file changes): galaxy-importer bounds ansible-lint and its other
# tools with ranges of its own, which must not move the pins of the other venvs.
GALAXY_VENV := $(VENV_DIR)/galaxy
GALAXY_REQUIREMENTS := tests/requirements-galaxy.txt
GALAXY_STAMP := $(GALAXY_VENV)/.stamp-$(firstword $(shell cat $(GALAXY_REQUIREMENTS) 2>/dev/null | sha256sum))
RELEASE_CHECK_DIR := $(TMP_DIR)/release-check

$(GALAXY_STAMP): | dirs $(GALAXY_REQUIREMENTS)
	@echo "==> creating $(GALAXY_VENV) (Python $(PYTHONS_$(MAIN_CORE)))"
	rm -rf $(GALAXY_VENV)
	py="$$(HOME='$(REAL_HOME)' $(ROOT)/.ci/find-python $(PYTHONS_$(MAIN_CORE)))"; "$$py" -m venv $(GALAXY_VENV)
	$(GALAXY_VENV)/bin/python -m pip install --quiet --no-input -r $(GALAXY_REQUIREMENTS)
	touch $@

venv-galaxy: $(GALAXY_STAMP)

docsite: venv-galaxy
	@$(GALAXY_VENV)/bin/python .ci/docsite.py write

release-check: venv-$(MAIN_CORE) venv-galaxy | dirs
	@echo "==> release-check: the docsite's guides (docs/docsite/rst/) rendered from their Markdown"
	@$(GALAXY_VENV)/bin/python .ci/docsite.py check
	@rm -rf $(RELEASE_CHECK_DIR)
	@mkdir -p $(RELEASE_CHECK_DIR)/source $(RELEASE_CHECK_DIR)/unpacked/$(COLLECTION_PATH)
	@git ls-files -co --exclude-standard -z \
		| while IFS= read -r -d '' f; do if [ -e "$$f" ] || [ -L "$$f" ]; then printf '%s\0' "$$f"; fi; done \
		| tar --null --no-recursion -T - -cf - | tar -xf - -C $(RELEASE_CHECK_DIR)/source
	@echo "==> release-check: ansible-galaxy collection build (core $(MAIN_CORE)), of the files git sees"
	@$(bin)/ansible-galaxy collection build --output-path $(RELEASE_CHECK_DIR) $(RELEASE_CHECK_DIR)/source
	@artifact="$$(echo $(RELEASE_CHECK_DIR)/tokenops-entra-*.tar.gz)"; \
	tar -tzf "$$artifact" | grep -v '/$$' > $(RELEASE_CHECK_DIR)/contents.txt; \
	echo "==> release-check: $$(basename "$$artifact"), $$(wc -l < $(RELEASE_CHECK_DIR)/contents.txt) files:"; \
	awk -F/ '{ print (NF > 2 ? $$1 "/" $$2 "/" : $$0) }' $(RELEASE_CHECK_DIR)/contents.txt | sort | uniq -c; \
	if grep -E '^(tests|extensions)/' $(RELEASE_CHECK_DIR)/contents.txt >&2; then \
		echo "ERROR: the artifact holds tests/ or extensions/, which cannot run from it (galaxy.yml build_ignore)" >&2; \
		exit 1; \
	fi; \
	echo "==> release-check: galaxy-importer $$($(GALAXY_VENV)/bin/python -c 'import importlib.metadata as m; print(m.version("galaxy-importer"))')"; \
	cd $(RELEASE_CHECK_DIR) && PATH="$(GALAXY_VENV)/bin:$$PATH" GALAXY_IMPORTER_CONFIG=$(ROOT)/.ci/galaxy-importer.cfg \
		$(GALAXY_VENV)/bin/python -m galaxy_importer.main "$$artifact" > importer.log 2>&1 \
		|| { cat importer.log; echo "ERROR: galaxy-importer failed" >&2; exit 1; }; \
	grep -v '^Loading ' importer.log; \
	if grep -E '^(WARNING|ERROR|CRITICAL)' importer.log >/dev/null; then \
		echo "ERROR: galaxy-importer reported the warnings or errors above" >&2; \
		exit 1; \
	fi; \
	tar -xzf "$$artifact" -C $(RELEASE_CHECK_DIR)/unpacked/$(COLLECTION_PATH)
	@echo "==> release-check: antsibull-docs lint-collection-docs --plugin-docs (the artifact unpacked)"
	@cd $(RELEASE_CHECK_DIR)/unpacked/$(COLLECTION_PATH) && PATH="$(GALAXY_VENV)/bin:$$PATH" \
		$(GALAXY_VENV)/bin/antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs \
		--validate-collection-refs all --disallow-unknown-collection-refs .
	@echo "==> release-check: the docsite rendered to HTML (antsibull-docs, Sphinx), from the artifact unpacked"
	@cd $(RELEASE_CHECK_DIR) && PATH="$(GALAXY_VENV)/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH=$(RELEASE_CHECK_DIR)/unpacked \
		$(GALAXY_VENV)/bin/python $(ROOT)/.ci/docsite.py build --dest $(RELEASE_CHECK_DIR)/docsite
	@echo "==> release-check: passed"
