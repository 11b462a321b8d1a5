# One entry point for laptops and CI. `make demo` and `make test` are the README's two
# commands: each installs what it needs, starts a Docker Engine if none answers and
# builds the sandbox image if it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install engine image image-full lint typecheck test unit wheel-smoke bench demo docs sync gc clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

engine:
	bash scripts/ensure-docker.sh

image: install engine
	$(BIN)/e2b-tools image build

# The full variant (Java, Go, Rust, Ruby, R) that the suite's full-image tests run in.
image-full: image
	$(BIN)/e2b-tools image build --variant full

lint: install
	$(BIN)/ruff check e2b_tools adapters tests bench examples scripts
	$(BIN)/ruff format --check e2b_tools adapters tests bench examples scripts

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

# The built wheel, installed with each extra alone in a fresh venv, used from outside
# the checkout (scripts/wheel_smoke.py).
wheel-smoke: image
	$(BIN)/python scripts/wheel_smoke.py

test: image image-full
	$(BIN)/pytest tests
	$(MAKE) --no-print-directory lint typecheck wheel-smoke

bench: image
	$(BIN)/python bench/bench.py

demo: image
	$(BIN)/python examples/demo.py

gc: install
	$(BIN)/e2b-tools gc

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

docs: install
	$(BIN)/python scripts/gen_tools_doc.py
	$(BIN)/python scripts/gen_config_doc.py

# e2b_tools/_sync.py, the blocking API, is generated from the async classes.
sync: install
	$(BIN)/python scripts/gen_sync.py
