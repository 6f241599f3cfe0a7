# pit: make demo | make test | make bench
# Each target installs what it needs: a .venv with pip, and gpg, mairix and
# rsync with apt-get where they are missing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= demo-pit

.PHONY: all demo test bench sysdeps clean install

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP) sysdeps

sysdeps:
	@scripts/sysdeps.sh

demo: install
	$(BIN)/python -m pit.demo $(DEMO)

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis
