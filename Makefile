# SmartID backend. `make help` lists every command; `make run` and `make test` come first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: help run test install lint fmt typecheck bench check schemas

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: install ## install everything, start PostgreSQL, NATS and every service on embedded defaults
	$(UV) run --frozen smartid run

test: install ## run the whole test suite against its own throwaway PostgreSQL and nats-server
	$(UV) run --frozen pytest

install: ## install uv (if missing) and every package of the workspace from uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || \
		python3 -m pip install --user --quiet uv 2>/dev/null || \
		python3 -m pip install --user --quiet --break-system-packages uv
	$(UV) sync --frozen --all-packages

lint: install ## ruff and import-linter
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

fmt: install ## format and fix what ruff can
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

typecheck: install ## mypy, strict
	$(UV) run --frozen mypy libs/events/src services/*/src bench

check: lint typecheck test ## everything CI could ask for

schemas: install ## regenerate the checked-in JSON Schemas and AsyncAPI document
	$(UV) run --frozen smartid schemas export

bench: install ## run the benchmarks and print their figures (not part of `make test`)
	$(UV) run --frozen python -m bench
