# One-command set-up on a fresh Debian/Ubuntu machine with python3 (and apt for the dataset).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data graphviz demo test test-slow bench peers clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel of torch 2.13.0 first, so no other requirement pulls a CUDA build
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# Debian's dataset-fashion-mnist puts the IDX files in $(FMNIST); without apt, use --download or NASFORGE_DATA.
data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing dataset-fashion-mnist"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

# graphviz draws the found architectures in `nasforge report` (the demo ends by writing its run's report)
graphviz:
	@if ! command -v dot >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing graphviz"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null; \
	fi

demo: setup data graphviz
	$(BIN)/nasforge demo

test: setup data
	$(BIN)/python -m pytest

test-slow: setup data
	$(BIN)/python -m pytest -m slow

peers:
	bash ../shared/peers/nni/setup.sh .peers/nni

clean:
	rm -rf $(VENV) runs .pytest_cache
