# Every target bootstraps .venv (python3 -m venv + pip install -e '.[dev]') when it is missing
# or older than pyproject.toml, so `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_OUT ?= benchmarks/out

.PHONY: install run stop demo test lint bench bench-dtesn bench-cache bench-forecast bench-routing bench-serve bench-autoscaling soak clean prometheus-tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

RAY_PORT ?= 6390

# `echo-ray start`: a local Ray head on 127.0.0.1:$(RAY_PORT) (reused if running; dashboard and
# HTTP on 127.0.0.1 only) with the app deployed, waiting until it answers. `make stop` stops both.
run: $(STAMP)
	$(BIN)/echo-ray start --port $(RAY_PORT)

stop: $(STAMP)
	-$(BIN)/echo-ray stop --address 127.0.0.1:$(RAY_PORT) --cluster

demo: $(STAMP)
	$(BIN)/python -m echo_ray.demo

test: $(STAMP) prometheus-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Prometheus and promtool for the observability tests: the machine's own if on PATH, else
# Debian's package unpacked into .venv/prometheus (no root install). Never fails: where it
# cannot be fetched the tests that need it skip and print why.
PROM_DIR := $(VENV)/prometheus
prometheus-tools: $(STAMP)
	@command -v prometheus >/dev/null 2>&1 || test -x $(PROM_DIR)/usr/bin/prometheus || ( \
	  rm -rf $(PROM_DIR) && mkdir -p $(PROM_DIR)/deb && cd $(PROM_DIR)/deb && \
	  { apt-get download prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } && \
	  dpkg-deb -x prometheus_*.deb .. && rm -rf ../deb && echo "prometheus unpacked into $(PROM_DIR)" \
	) || echo "prometheus: Debian package not available here; the Prometheus tests will skip"

lint: $(STAMP)
	$(BIN)/ruff check echo_ray tests benchmarks

bench: bench-dtesn bench-cache bench-forecast bench-routing bench-serve bench-autoscaling

bench-dtesn: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_dtesn.py --json $(BENCH_OUT)/dtesn.json

bench-cache: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_cache.py --json $(BENCH_OUT)/cache.json

bench-forecast: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_forecast.py --json $(BENCH_OUT)/forecast.json

bench-routing: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_routing.py --json $(BENCH_OUT)/routing.json

bench-serve: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_serve.py --json $(BENCH_OUT)/serve.json

bench-autoscaling: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_autoscaling.py --json $(BENCH_OUT)/autoscaling.json

soak: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/soak.py --minutes 10 --json $(BENCH_OUT)/soak.json

clean:
	rm -rf $(VENV) $(BENCH_OUT) .pytest_cache
