# `make run`: the whole system on the demo topology (`make run TLS=1`: over HTTPS with a throw-away CA).
# `make test`: the whole suite. `make test-asan`: the C packet path under ASAN and UBSan (CI runs both).
# Both create or refresh .venv from pyproject.toml; `make test` also installs the
# Debian packages the tests drive (scripts/install-system-deps.sh).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -q

.PHONY: run test test-asan sysdeps bench capacity clean

$(STAMP): pyproject.toml $(wildcard media/native*.c media/native.h)  # editing the C rebuilds it
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	scripts/install-build-deps.sh $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

sysdeps:
	scripts/install-system-deps.sh

run: $(STAMP)  # exec: make's own child is the demo, whatever RUN_ARGS holds (it watches make for a SIGINT)
	exec $(BIN)/python scripts/run_demo.py $(if $(TLS),--tls) $(RUN_ARGS)

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-asan: $(STAMP)  # media.native under AddressSanitizer and UBSan: its tests and a 60-s fuzz run (scripts/test-asan.sh)
	scripts/test-asan.sh $(BIN)/python

capacity: $(STAMP) sysdeps  # synthetic HD streams over an emulated copy of the WAN (root); report in var/capacity
	$(BIN)/confctl capacity --measure $(CAPACITY_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench/admission.py

clean:
	rm -rf $(VENV) var .pytest_cache
