# Two commands from a fresh clone: `make demo` and `make test`. Everything else is bootstrapped.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ANVIL := node_modules/.bin/anvil
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint typecheck chromium redis venv anvil clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

anvil: $(ANVIL)

# node_modules: anvil for the anvil tests, viem and ethers for the contenders sidecar.
$(ANVIL): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is required for the anvil and contender tests" >&2; exit 1; }
	npm install --no-audit --no-fund --silent
	touch $(ANVIL)

demo: $(STAMP)
	$(PY) -m lasso_rpc demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench fuzz
	$(VENV)/bin/ruff format --check src tests bench fuzz

typecheck: $(STAMP)
	$(VENV)/bin/mypy

chromium:
	bash scripts/ensure-chromium.sh

# redis-server for the shared-state tests (each test starts its own on a unix socket).
redis:
	bash scripts/ensure-redis.sh

test: $(STAMP) $(ANVIL) lint typecheck chromium redis
	LASSO_ANVIL=$(CURDIR)/$(ANVIL) $(VENV)/bin/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) node_modules battle_results
