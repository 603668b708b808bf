# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch is pinned to the local CPU wheel; an unpinned torch would pull several GB of CUDA packages
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt
DEMO := demo/sample.zarr

.PHONY: demo test test-ray lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml constraints.txt
	$(PIP_INSTALL) -e ".[test,formats,urdf,train,deliver]"
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/genima-data demo $(DEMO)
	$(BIN)/genima-data render-targets $(DEMO) --random-bg procedural
	$(BIN)/genima-data convert $(DEMO) demo/sample_h5 --to hdf5
	$(BIN)/genima-data convert $(DEMO) demo/genima_rlbench --to rlbench
	$(BIN)/genima-data validate $(DEMO)
	$(BIN)/genima-data info $(DEMO)
	$(BIN)/genima-data preview $(DEMO) --out demo/preview.png

test: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

# the Ray engine's tests (they skip without Ray): Ray adds ~240 MB and ~25 s, so it is not in `make test`
test-ray: $(VENV)/.test
	$(PIP_INSTALL) -e ".[ray]"
	$(BIN)/python -m pytest -q tests/test_parallel_ray.py

format: $(VENV)/.test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
