# Every target bootstraps .venv (python3 -m venv + pip install -e '.[dev]') when it is missing
# or older than pyproject.toml, so `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_OUT ?= benchmarks/out

.PHONY: install run stop demo test lint bench bench-dtesn bench-cache bench-forecast bench-routing bench-serve bench-autoscaling soak clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

RAY_PORT ?= 6390

# A local Ray cluster on an explicit port (dashboard and HTTP on 127.0.0.1 only), then the app.
run: $(STAMP)
	@$(BIN)/ray status --address=127.0.0.1:$(RAY_PORT) >/dev/null 2>&1 || \
	  $(BIN)/ray start --head --node-ip-address=127.0.0.1 --port=$(RAY_PORT) --dashboard-host=127.0.0.1 --disable-usage-stats
	RAY_AUTH_MODE=token RAY_ADDRESS=127.0.0.1:$(RAY_PORT) $(BIN)/python -m echo_ray.launch

stop: $(STAMP)
	-$(BIN)/ray stop

demo: $(STAMP)
	$(BIN)/python -m echo_ray.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

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
