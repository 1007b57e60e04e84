"""Tracing (echo_ray/ops/tracing.py): off unless asked for; OTLP export reaches a collector;
on the live cluster one HTTP request yields one connected trace from the ingress through the
cognitive worker into the DTESN membrane actors, under the caller's trace id."""

from __future__ import annotations

import http.server
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from echo_ray.ops.tracing import OTLP_ENV, TRACE_DIR_ENV, is_connected, read_spans, traces
from echo_ray.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    """In a fresh interpreter: the global tracer provider can only be set once per process."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def clean_env(**extra: str) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")
           and k != TRACE_DIR_ENV}
    return {**env, **extra}


def test_off_by_default():
    assert "tracing_config" not in yaml.safe_load(
        (ROOT / "deployments" / "serve_config.yaml").read_text())
    done = run_python("""
        from opentelemetry import trace
        from echo_ray.ops import tracing
        assert tracing.span_processors() == []
        tracing.setup_ray_tracing()
        assert tracing.serve_span_processors() == []
        print(type(trace.get_tracer_provider()).__name__)
    """, clean_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ProxyTracerProvider"  # OpenTelemetry's no-op default


def test_spans_are_exported_over_otlp_to_a_collector():
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                        reason="opentelemetry-exporter-otlp-proto-http is not installed")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        done = run_python("""
            from opentelemetry import trace
            from echo_ray.ops.tracing import setup_ray_tracing
            setup_ray_tracing()
            with trace.get_tracer("check").start_as_current_span("echo-ray-otlp-check"):
                pass
            trace.get_tracer_provider().shutdown()  # flushes the batch processor
        """, clean_env(**{OTLP_ENV: endpoint}))
        assert done.returncode == 0, done.stderr
    finally:
        server.shutdown()
    assert received and received[0][0] == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(received[0][1])
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s.name for s in spans] == ["echo-ray-otlp-check"]
    service = {a.value.string_value for rs in request.resource_spans
               for a in rs.resource.attributes if a.key == "service.name"}
    assert service == {"echo-ray"}


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_one_request_yields_one_connected_trace(live_app):
    assert live_app.spans_dir is not None
    trace_id, parent = "5ce0e9a56015fec5aadfa328ae398115", "b7ad6b7169203331"
    # options.cache=false: the worker must run; 1,000 steps x 200 units is above the in-process
    # threshold (WORKER_INPROCESS_MAX_WORK), so the encode goes on to the membrane actors
    series = [0.11, 0.42, 0.93, 0.44] * 250
    r = httpx.post(f"{live_app.base_url}/v1/reasoning", timeout=120,
                   headers={"traceparent": f"00-{trace_id}-{parent}-01"},
                   json={"input": {"series": series, "horizon": 2},
                         "options": {"cache": False}})
    assert r.status_code == 200, r.text

    def whole_trace():
        spans = traces(read_spans(live_app.spans_dir)).get(trace_id, [])
        done = any(s["name"].startswith("MembraneActor.") and
                   s["name"].endswith("ray.remote_worker") for s in spans)
        return spans if done else None

    spans = wait_until(whole_trace, 30, "the request's spans in every process")
    names = [s["name"] for s in spans]
    assert is_connected(spans), names
    (root,) = [s for s in spans if s["parent_id"] == parent]  # the caller's span
    assert root["name"] == "POST /v1/reasoning"
    assert "replica_handle_request CognitiveWorker process" in names
    processes = {s["pid"] for s in spans}
    assert len(processes) >= 3, names  # ingress replica, worker replica, membrane actor
