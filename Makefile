# pit: make demo | make test | make bench | make bench-scale | make model-long
# Each target installs what it needs: a .venv with pip, and gpg, mairix and
# rsync with apt-get where they are missing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= demo-pit

.PHONY: all demo test bench bench-scale parity tamper model-long fuzz-notary sysdeps clean install

all: test

# The checkout is installed as a plain path entry (editable_mode=compat):
# setuptools' default editable finder costs every Python start-up ~8 ms,
# which the short runs (an incremental `pit replay | pit-specialist`) feel.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $@

# Bytecode, brought up to date on every install (a no-op when it is): a
# program that has to compile its modules first starts ~30 ms later.
install: $(STAMP) sysdeps
	$(BIN)/python -m compileall -q pit filters moderator bench

sysdeps:
	@scripts/sysdeps.sh

demo: install
	$(BIN)/python -m pit.demo $(DEMO)

test: install
	$(BIN)/python -m pytest -q

# The tamper matrix over every byte of its archive (make test samples >= 1,000);
# TAMPER_SEED draws which byte replaces each one.
TAMPER_SEED ?= 9162
tamper: install
	PIT_TAMPER_ALL=1 PIT_TAMPER_SEED=$(TAMPER_SEED) $(BIN)/python -m pytest -q -s tests/test_tamper.py

bench: install
	$(BIN)/python -m bench

# Members, records and tickers at scale (bench/scale.py); bigger points with
# e.g. make bench-scale SCALE="--members 1000,10000,100000 --records 100000,1000000"
SCALE ?=
bench-scale: install
	$(BIN)/python -m bench.scale $(SCALE)

# The verifier against stock gpg over the full matrix (every key, time,
# hash and mode; rsa3072 too): `make test` runs a reduced one.
parity: install
	PIT_PARITY_FULL=1 $(BIN)/python -m pytest -q -s tests/test_gpg_parity.py

# The whole pit against its model (tests/pit_model.py) for 100,000 signed
# messages: 100 seeded sessions of 1,000; prints each session and the
# disagreements (exit 1 if any).  About an hour on two cores.
MODEL_SEEDS    ?= 1-100
MODEL_MESSAGES ?= 1000
MODEL_BATCH    ?= 40
model-long: install
	$(BIN)/python tests/model_session.py --seeds $(MODEL_SEEDS) --messages $(MODEL_MESSAGES) --batch $(MODEL_BATCH)

# Hostile input through the real notary (tests/hostile.py): FUZZ_N inputs
# from seed FUZZ_SEED (each seed signs its own originals to mutate).
FUZZ_N    ?= 100000
FUZZ_SEED ?= 1
fuzz-notary: install
	$(BIN)/python tests/hostile.py --n $(FUZZ_N) --seed $(FUZZ_SEED)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis
