# The two commands of the README. Each creates .venv and installs what it needs on the way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
TYPECHECK  ?= .build/typecheck
MYPY_CACHE ?= .mypy_cache

AXE_JS     := .build/node/node_modules/axe-core/axe.min.js

.PHONY: publish test test-slow test-shifted lint typecheck lint-imports pytest browser-deps bench-linkcheck bench-linkcheck-mixed bench-monitor clean

publish: $(RUN_STAMP)
	$(BIN)/clinicpress publish

test: $(TEST_STAMP) lint typecheck lint-imports docs pytest

# The documentation site (mkdocs.yml): the generated reference pages are current (tools/gen_docs.py
# rewrites them), then the site builds with --strict into .build/site (a broken link fails it).
# No --quiet or -v: with either, mkdocs 1.6.1 counts no warning and --strict passes (mkdocs#4126).
.PHONY: docs
docs: $(TEST_STAMP)
	$(BIN)/python tools/gen_docs.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "clinicpress needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	@# The pip a venv starts with (23.x on Python 3.11) warns that lxml has no extra 'html_clean' (it
	@# predates normalised extra names, PEP 685): a pinned newer pip installs without a warning.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==26.0.1

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@ $(RUN_STAMP)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The top-level pipeline folders are subpackages of clinicpress (see pyproject.toml);
# mypy cannot follow that mapping, so it checks a tree of symlinks laid out as installed.
typecheck: $(TEST_STAMP)
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/clinicpress
	@for f in clinicpress/*.py; do ln -s ../../../$$f $(TYPECHECK)/clinicpress/; done
	@for d in clinicpress/*/; do [ -f $${d}__init__.py ] && ln -s ../../../$${d%/} $(TYPECHECK)/clinicpress/; done; true
	@for d in sources checks renderers outputs flows; do ln -s ../../../$$d $(TYPECHECK)/clinicpress/$$d; done
	cd $(TYPECHECK) && ../../$(BIN)/mypy --config-file ../../pyproject.toml --cache-dir ../../$(MYPY_CACHE) -p clinicpress

# The layer contracts of pyproject.toml ([tool.importlinter]), checked on the same tree as mypy.
lint-imports: typecheck
	cd $(TYPECHECK) && ../../$(BIN)/lint-imports --config ../../pyproject.toml

pytest: $(TEST_STAMP) browser-deps
	$(BIN)/python -m pytest

# The fast suite again with the product's clock two years ahead (CLINICPRESS_CLOCK_SHIFT_DAYS, inherited
# by every CLI process a test starts): no test may depend on the real date. .ci/run runs it.
SHIFT_DAYS ?= 730
test-shifted: $(TEST_STAMP) browser-deps
	CLINICPRESS_CLOCK_SHIFT_DAYS=$(SHIFT_DAYS) $(BIN)/python -m pytest

# The long fault-injection matrices, deselected from `make test`; .ci/run runs both.
test-slow: $(TEST_STAMP)
	$(BIN)/python -m pytest -m slow

# axe-core (npm) for the accessibility tests in Chromium; without npm those tests skip and say why.
browser-deps:
	@if [ ! -f $(AXE_JS) ]; then \
	  if command -v npm >/dev/null; then npm install --prefix .build/node --no-audit --no-fund --silent axe-core@4.14.1; \
	  else echo "npm not found: the browser accessibility tests will be skipped"; fi; \
	fi

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $@ $(TEST_STAMP) $(RUN_STAMP)

# Benchmarks (loopback only; each prints ratios against a baseline measured in the same run).
bench-linkcheck: $(BENCH_STAMP)
	$(BIN)/python -m bench.linkcheck

# clinicpress vs lychee on the plain mixed farm (2,000 links), equal budgets, no cache.
bench-linkcheck-mixed: $(BENCH_STAMP)
	$(BIN)/python -m bench.linkcheck_mixed --runs 3

bench-monitor: $(TEST_STAMP)
	$(BIN)/python bench/monitor_catalog.py

# Issue 16: every benchmark (medians of 3), one table of ratios in bench/results.md and the docs'
# Performance section. ~1 h at the default sizes; BENCH_ARGS="--quick" checks the harness (small
# sizes, one run; its table goes to /tmp and the docs page is left as it is).
.PHONY: bench
BENCH_ARGS ?=
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.suite --readme $(BENCH_ARGS)

# Mutation testing of the Guarantees' mechanisms (issue 18, docs/mutation.md): cosmic-ray in a scratch
# worktree beside this one (../mut; never in this tree), a score per module and the survivors.
# Tens of minutes on two cores: not part of `make test` nor of CI. MUTATION_ARGS="release --sample 20" …
MUTATION_STAMP := $(VENV)/.installed-mutation
MUTATION_ARGS ?=

$(MUTATION_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,mutation]'
	@touch $@ $(TEST_STAMP) $(RUN_STAMP)

.PHONY: mutation
mutation: $(MUTATION_STAMP)
	$(BIN)/python tools/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .build .mypy_cache .ruff_cache .pytest_cache published
