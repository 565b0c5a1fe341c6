# The two commands a newcomer needs: `make up` runs the stack, `make test` tests it.
# Both install what they need first (scripts/bootstrap.sh, idempotent).

VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: bootstrap browser up down status test lint lock format clean-state bench bench-quick soak

bootstrap:
	@bash scripts/bootstrap.sh

up: bootstrap
	$(VENV)/ethgw up

down:
	$(VENV)/ethgw down

status:
	$(VENV)/ethgw cluster status

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy .
	$(VENV)/lint-imports

# Re-pins both locks after a change to pyproject.toml's lists; versions already pinned stay
# (uv prefers the output file's pins). The dev lock is constrained by the runtime lock, so a
# package pinned in both has one version. Each pin carries the hashes of its files on PyPI:
# the bootstrap and the Dockerfile install with --require-hashes.
lock: bootstrap
	$(VENV)/uv pip compile -q pyproject.toml --python-version 3.11 --generate-hashes \
		-o requirements.lock
	$(VENV)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		-c requirements.lock -o requirements-dev.lock

# -- the dashboard's browser tests need Debian's chromium (installed when missing) --
browser:
	@bash scripts/bootstrap_browser.sh

test: lint browser
	$(VENV)/pytest $(PYTEST_ARGS)

format: bootstrap
	$(VENV)/ruff format .
	$(VENV)/ruff check --fix .

# Deletes the chain, the Kafka log and the keys: the next `make up` starts afresh.
clean-state: down
	rm -rf .state

# -- bench (issue #7): the load benchmark; results/ (git-ignored) gets CSV, charts, summary --
BENCH_ARGS ?=

bench: bootstrap
	$(VENV)/ethgw bench $(BENCH_ARGS)

bench-quick: bootstrap
	$(VENV)/ethgw bench --quick $(BENCH_ARGS)

# -- soak (issue #8): not in CI; MINUTES=3 make soak for a shorter run -------------------
MINUTES ?= 10
soak: bootstrap
	$(VENV)/ethgw --log-level WARNING soak --minutes $(MINUTES)
