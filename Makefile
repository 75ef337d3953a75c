# kravlab: `make demo` runs the product with demo data, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DOCS_UI := backend/api_docs_vendor/.versions
CONSOLE_UI := frontend_api/static/vendor/.versions

.PHONY: install browser fonts demo serve test test-sqlite test-postgres lint bench-ingest bench-simulator bench-dunning bench-simulation-service bench-portfolio bench-book-months clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e . --group dev
	touch $(STAMP)

## The API docs' browser files (Scalar, Swagger UI) from npm, served by the app itself.
$(DOCS_UI): infra/api-docs-ui.sh
	bash infra/api-docs-ui.sh

## The console's browser files (htmx, uPlot) from npm, served by the app itself.
$(CONSOLE_UI): infra/console-ui.sh
	bash infra/console-ui.sh

## Debian's Chromium for tests/e2e, installed only when /usr/bin/chromium is missing.
browser:
	bash infra/browser.sh

## Debian's DejaVu fonts for the PDF letters, installed only when missing.
fonts:
	bash infra/fonts.sh

install: $(STAMP) $(DOCS_UI) $(CONSOLE_UI) fonts

## Migrate the embedded SQLite database, seed demo data, print logins, serve on :8000.
demo: $(STAMP) $(DOCS_UI) $(CONSOLE_UI) fonts
	$(BIN)/kravlab demo

serve: $(STAMP) $(DOCS_UI) $(CONSOLE_UI) fonts
	$(BIN)/kravlab serve

## The whole suite on SQLite, then on PostgreSQL (skipped with one line when unreachable,
## unless KRAVLAB_REQUIRE_SERVICES=1).
test: $(STAMP) $(DOCS_UI) $(CONSOLE_UI) browser
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: $(STAMP) $(DOCS_UI) $(CONSOLE_UI) browser fonts
	KRAVLAB_TEST_DB=sqlite $(BIN)/pytest

test-postgres: $(STAMP) $(DOCS_UI) $(CONSOLE_UI)
	KRAVLAB_TEST_DB=postgres $(BIN)/pytest tests/integration tests/security tests/faults

lint: $(STAMP)
	$(BIN)/ruff check backend tenants simulator frontend_api tests bench
	$(BIN)/ruff format --check backend tenants simulator frontend_api tests bench
	$(BIN)/mypy backend tenants simulator frontend_api

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-simulator: $(STAMP)
	$(BIN)/python bench/simulator.py

bench-dunning: $(STAMP)
	$(BIN)/python bench/dunning.py

bench-simulation-service: $(STAMP)
	$(BIN)/python bench/simulation_service.py

bench-portfolio: $(STAMP)
	$(BIN)/python bench/portfolio.py

bench-book-months: $(STAMP)
	$(BIN)/python bench/book_months.py --engine postgres
	$(BIN)/python bench/book_months.py --engine sqlite

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
