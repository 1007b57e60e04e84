"""OpenTelemetry traces across proxy -> ingress -> worker -> membrane actors; off by default.

Two hooks install the same exporter in every process of the cluster:

- Ray's tracing startup hook, for every task and actor call (the worker's calls into its
  DTESN membrane actors included):
  `ray start --head --tracing-startup-hook=echo_ray.ops.tracing:setup_ray_tracing`
- Serve's exporter hook, for the HTTP proxy and the replicas' request spans (Serve carries
  the context from the proxy through the ingress into the worker), in the Serve config:
  `tracing_config: {enabled: true, exporter_import_path:
  echo_ray.ops.tracing:serve_span_processors}`

Where spans go comes from each process's settings (echo_ray.settings, `tracing` section: set
the variables before `ray start`):
`OTEL_EXPORTER_OTLP_ENDPOINT` (e.g. http://jaeger:4318; Jaeger, Tempo and the
OpenTelemetry Collector read OTLP) exports over OTLP/HTTP, batched; `ECHO_RAY_TRACE_DIR`
writes one JSON-lines file of finished spans per process (tests, offline looks); with
neither set the hooks install nothing and tracing costs nothing.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

TRACE_DIR_ENV = "ECHO_RAY_TRACE_DIR"
OTLP_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_lock = threading.Lock()
_installed: dict[str, bool] = {}  # one exporter per process, whichever hook comes first


def span_processors() -> list:
    """The span processors the environment asks for (may be empty)."""
    from echo_ray.settings import get_settings

    tracing = get_settings().tracing
    processors = []
    if tracing.otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ImportError(f"{OTLP_ENV} is set but the OTLP exporter is missing: "
                              "pip install opentelemetry-exporter-otlp-proto-http") from None
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))  # reads OTEL_* itself
    if tracing.trace_dir:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        processors.append(SimpleSpanProcessor(JsonLinesExporter(tracing.trace_dir)))
    return processors


def _claim() -> bool:
    """True the first time in this process (the caller then installs the exporter)."""
    with _lock:
        if _installed.get("done"):
            return False
        _installed["done"] = True
        return True


def setup_ray_tracing() -> None:
    """Ray's tracing startup hook: a tracer provider with our exporter in this process."""
    processors = span_processors()
    if not processors or not _claim():
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": "echo-ray"}))
    for p in processors:
        provider.add_span_processor(p)
    trace.set_tracer_provider(provider)


def serve_span_processors() -> list:
    """Serve's exporter hook (Serve wants a function of no arguments): our processors,
    unless Ray's hook already installed them in this process (Serve's spans then go to
    that provider)."""
    return span_processors() if _claim() else []


class JsonLinesExporter:
    """A SpanExporter writing each finished span as one JSON line to <dir>/spans-<pid>.jsonl."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"spans-{os.getpid()}.jsonl"
        self._lock = threading.Lock()

    def export(self, spans) -> object:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = [json.dumps(span_record(s)) + "\n" for s in spans]
        with self._lock, open(self.path, "a") as fh:
            fh.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_record(span) -> dict:
    """The fields needed to rebuild a trace: ids as hex, parent, name, process."""
    ctx = span.get_span_context()
    parent = span.parent
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}",
            "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
            "name": span.name, "kind": str(span.kind), "pid": os.getpid(),
            "start": span.start_time, "end": span.end_time,
            "attributes": {k: str(v) for k, v in (span.attributes or {}).items()}}


def read_spans(directory: str | Path) -> list[dict]:
    """Every span written by JsonLinesExporter under `directory`."""
    out = []
    for path in sorted(Path(directory).glob("spans-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def traces(spans: list[dict]) -> dict[str, list[dict]]:
    """Spans grouped by trace id."""
    grouped: dict[str, list[dict]] = {}
    for s in spans:
        grouped.setdefault(s["trace_id"], []).append(s)
    return grouped


def is_connected(trace_spans: list[dict]) -> bool:
    """One root, and every other span's parent is a span of the same trace."""
    ids = {s["span_id"] for s in trace_spans}
    roots = [s for s in trace_spans if s["parent_id"] is None or s["parent_id"] not in ids]
    return len(roots) == 1
