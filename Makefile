# The two commands a newcomer needs: `make up` runs the stack, `make test` tests it.
# Both install what they need first (scripts/bootstrap.sh, idempotent).

VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: bootstrap up down status test lint format clean-state soak

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

test: lint
	$(VENV)/pytest $(PYTEST_ARGS)

format: bootstrap
	$(VENV)/ruff format .
	$(VENV)/ruff check --fix .

# Deletes the chain, the Kafka log and the keys: the next `make up` starts afresh.
clean-state: down
	rm -rf .state

# -- soak (issue #8): not in CI; MINUTES=3 make soak for a shorter run -------------------
MINUTES ?= 10
soak: bootstrap
	$(VENV)/ethgw --log-level WARNING soak --minutes $(MINUTES)
