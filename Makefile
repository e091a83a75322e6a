# Two commands make a fresh machine work: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The dashboard test drives Debian's Chromium (Playwright downloads no browser).
CHROMIUM ?= /usr/bin/chromium
# The local fleet (`frugal fleet`, its tests) puts Debian's HAProxy in front of the gateways and
# stunnel in front of a Redis for the TLS tests (the PyPI Redis is built without TLS).
HAPROXY  ?= /usr/sbin/haproxy
STUNNEL  ?= /usr/bin/stunnel4
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test fuzz redis fleet install install-test install-bench install-redis bench clean

demo: install
	$(BIN)/frugal demo

# Types first (mypy --strict on src/, configured in pyproject.toml), then the suite.
test: install-test
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

# A long fuzz of the OpenAPI document (schemathesis.toml); the suite runs a short one.
FUZZ_EXAMPLES ?= 500
fuzz: install-test
	FRUGAL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/api/test_fuzz.py

# A Redis 8 with the query engine on a free port of 127.0.0.1, until Ctrl-C stops it.
redis: install-redis
	$(BIN)/python -m frugal.local.redis_server

# Redis with Sentinel, three gateways and HAProxy in front, before the simulated provider (or
# FRUGAL_UPSTREAM_BASE_URL), on free ports of 127.0.0.1, until Ctrl-C stops it all.
fleet: install-redis $(HAPROXY)
	$(BIN)/frugal fleet

# The embedder is exported once per user, to ~/.cache/frugal/models ($XDG_CACHE_HOME/frugal/models,
# or FRUGAL_MODEL_DIR), apart from the cache's data: any FRUGAL_DATA_DIR finds it there. Run each
# time; it is a no-op when the model is already there.
install: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/frugal model export
install-test: $(VENV)/.installed-test $(CHROMIUM) $(HAPROXY) $(STUNNEL)
	HF_HUB_OFFLINE=1 $(BIN)/frugal model export

$(CHROMIUM) $(HAPROXY) $(STUNNEL):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium haproxy stunnel4

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: the local CPU wheel, not a CUDA build pulled in by sentence-transformers.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --editable '.[export]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	touch $(VENV)/.installed $(VENV)/.installed-redis $@

# Benchmarks write their results (markdown, PNG) under benchmarks/results/.
BENCHMARKS := overhead miss_path cache_hit_path qqp_thresholds store_lookup batching redis_store \
              threshold_tools bench_workloads load fleet
bench: $(addprefix bench-,$(BENCHMARKS))
bench-%: install-bench
	$(BIN)/python benchmarks/$*.py
bench-fleet: $(HAPROXY)  # HAProxy in front of the gateways

install-redis: install $(VENV)/.installed-redis
$(VENV)/.installed-redis: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[export,redis-server]'
	touch $@

install-bench: install $(VENV)/.installed-bench
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[export,bench]'
	touch $@

clean:
	rm -rf $(VENV) .frugal .pytest_cache
