# Every target bootstraps .venv (python3 -m venv + pip install -e '.[dev]') when it is missing
# or older than pyproject.toml, so `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_OUT ?= benchmarks/out

.PHONY: install run stop demo test lint docs lock cluster-secret bench bench-dtesn bench-cache bench-forecast bench-routing bench-serve bench-hop bench-load bench-autoscaling soak clean prometheus-tools sshd-tools

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

test: $(STAMP) prometheus-tools sshd-tools
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

# sshd for the `ray up` test (tests/multinode/test_multinode_ray_up.py, which starts it by
# process id inside its sandbox): the machine's own if installed, else Debian's openssh-server
# unpacked into .venv/openssh. Never installed as a package, never started as a service.
# Never fails: where it cannot be fetched the test skips and prints why. The test also needs
# ssh, ssh-keygen and rsync (Debian: openssh-client, rsync).
SSHD_DIR := $(VENV)/openssh
sshd-tools: $(STAMP)
	@test -x /usr/sbin/sshd || test -x $(SSHD_DIR)/usr/sbin/sshd || ( \
	  rm -rf $(SSHD_DIR) && mkdir -p $(SSHD_DIR)/deb && cd $(SSHD_DIR)/deb && \
	  { apt-get download openssh-server >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get download openssh-server >/dev/null 2>&1; }; } && \
	  dpkg-deb -x openssh-server_*.deb .. && rm -rf ../deb && echo "openssh-server unpacked into $(SSHD_DIR)" \
	) || echo "sshd: Debian's openssh-server not available here; the ray up test will skip"
	@command -v rsync >/dev/null 2>&1 || echo "rsync is not installed (apt-get install rsync); the ray up test will skip"

# The secrets the cluster configs read (deployments/cluster-env.sh): a random Redis password
# and Ray auth token in a git-ignored file that `ray up` copies to the nodes with the checkout.
# What is there is kept; what is missing is added.
SECRETS := deployments/secrets/redis.env
cluster-secret:
	@umask 077; grep -qs '^REDIS_PASSWORD=\|^REDIS_URL=' $(SECRETS) || { \
	  printf 'REDIS_PASSWORD=%s\n' "$$(python3 -c 'import secrets; print(secrets.token_hex(24))')" \
	  >> $(SECRETS) && echo "added REDIS_PASSWORD to $(SECRETS)"; }
	@umask 077; grep -qs '^RAY_AUTH_TOKEN=' $(SECRETS) || { \
	  printf 'RAY_AUTH_TOKEN=%s\n' "$$(python3 -c 'import secrets; print(secrets.token_hex(32))')" \
	  >> $(SECRETS) && echo "added RAY_AUTH_TOKEN to $(SECRETS)"; }

# ruff on all the code, mypy on the pure packages (files and strictness: [tool.mypy] in
# pyproject.toml). `.ci/run` runs this before `make test`.
lint: $(STAMP)
	$(BIN)/ruff check echo_ray tests benchmarks
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/) into site/; `make test` builds it with --strict
# too (tests/docs). `$(BIN)/mkdocs serve` serves it while you edit.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# requirements.lock: every runtime and dev dependency at the version tested, for the Python and
# platform of the Ray 2.60 image (deployments/kuberay/Dockerfile installs from it). Versions
# already in the lock are kept; `make lock UPGRADE=--upgrade` re-resolves them all.
LOCK_TARGET := --python-version 3.11.7 --python-platform x86_64-unknown-linux-gnu
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_TARGET) $(UPGRADE) \
	  --custom-compile-command 'make lock' -o requirements.lock

bench: bench-dtesn bench-cache bench-forecast bench-routing bench-serve bench-hop bench-autoscaling

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

bench-hop: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_hop.py --json $(BENCH_OUT)/hop.json

# Locust step load against an echo-ray it starts (and stops) itself; QUICK=1 for < 5 minutes,
# URL=http://host:port to load a running one instead.
bench-load: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_load.py --json $(BENCH_OUT)/$(if $(SESSIONS),sessions,load).json \
	  $(if $(QUICK),--quick) $(if $(URL),--url $(URL)) $(if $(SESSIONS),--sessions $(SESSIONS))

bench-autoscaling: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_autoscaling.py --json $(BENCH_OUT)/autoscaling.json

soak: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/soak.py --minutes 10 --json $(BENCH_OUT)/soak.json

clean:
	rm -rf $(VENV) $(BENCH_OUT) .pytest_cache .mypy_cache site
