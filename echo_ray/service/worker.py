"""The cognitive worker deployment: loads the session, runs one processing type on the DTESN
(small encodes in the replica, large ones on membranes in Ray actors: `placement`), saves the
session only if it changed and only if nobody else changed it meanwhile (optimistic versions;
the request is re-run on a conflict)."""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import ValidationError
from ray import serve

from echo_ray.autoscaling.replica_load import ReplicaLoad
from echo_ray.routing.stats import RoutingStatsMixin
from echo_ray.sessions import (
    SessionCorrupt,
    SessionNotFound,
    StoreUnavailable,
    VersionConflict,
    session_store,
)
from echo_ray.settings import Settings, get_settings

from .engines import EngineCache
from .errors import describe_validation

log = logging.getLogger("echo_ray.worker")
CONFLICT_RETRIES = 3


def failure(status: int, code: str, message: str, retry_after: int | None = None) -> dict:
    return {"ok": False, "status": status, "code": code, "message": message,
            "retry_after": retry_after}


class CognitiveProcessor:
    """Plain class (no Serve) so tests and the simulator can use it in-process."""

    def __init__(self, settings: Settings, engines: EngineCache):
        self.settings = settings
        self.store = session_store(settings)
        self.engines = engines
        self.errors = 0
        self.handled = 0

    def warm_up(self) -> float:
        """Run every type's example request once on a scratch state (no session, nothing
        stored): builds the DTESN engines (membrane actors) and everything else a type's first
        request pays for. Returns the seconds it took."""
        from echo_ray.cognitive import process as run_type
        from echo_ray.cognitive.examples import EXAMPLE_REQUESTS

        t0 = time.perf_counter()
        state: dict = {}
        for kind, payload in EXAMPLE_REQUESTS.items():
            run_type(kind, payload, state, self.engines)
        run_type("memory", {"op": "retrieve", "query": {"text": "echo"}, "k": 3}, state,
                 self.engines)
        return time.perf_counter() - t0

    def process(self, kind: str, payload: dict, session_id: str | None) -> dict:
        from echo_ray.cognitive import process as run_type

        self.handled += 1
        for _ in range(CONFLICT_RETRIES):
            try:
                if session_id:
                    meta, state = self.store.load(session_id)
                else:
                    meta, state = None, {}
                t0 = time.perf_counter()
                result, changed = run_type(kind, payload, state, self.engines)
                elapsed = time.perf_counter() - t0
                changed = changed and meta is not None
                version = meta.version if meta else None
                if changed:
                    version = self.store.save(session_id, state, meta.version).version
                return {"ok": True, "result": result, "changed": changed,
                        "session_version": version, "elapsed_s": elapsed}
            except VersionConflict:
                continue
            except SessionNotFound:
                return failure(404, "session_not_found",
                               f"session {session_id} does not exist or has expired")
            except StoreUnavailable as exc:
                return failure(503, "session_store_unavailable", str(exc), retry_after=1)
            except SessionCorrupt as exc:  # e.g. a pickle planted in the store: never loaded
                log.error("%s", exc)
                return failure(500, "session_corrupt", str(exc))
            except ValidationError as exc:
                return failure(422, "invalid_request", describe_validation(exc.errors()))
            except (ValueError, TypeError, KeyError) as exc:
                return failure(422, "invalid_request", str(exc).strip("'\""))
            except Exception as exc:  # logged, never leaked as a traceback
                self.errors += 1
                log.exception("processing %s failed", kind)
                return failure(500, "internal_error", f"internal error ({type(exc).__name__})")
        return failure(409, "session_conflict",
                       f"session {session_id} kept changing under concurrent requests; retry")


class _ServerError(Exception):
    def __init__(self, out: dict):
        self.out = out


@serve.deployment(max_ongoing_requests=8, max_queued_requests=64, ray_actor_options={"num_cpus": 0})
class CognitiveWorker(RoutingStatsMixin):
    """Serve replica around CognitiveProcessor, warmed up in its constructor (settings
    `service.worker_warm_up`). Reports routing stats (CPU, memory, in-flight,
    latency EWMA, error rate) and fails its health check when its DTESN actors stop answering
    or its error rate spikes, so Serve replaces it and the router stops sending to it."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        try:
            ctx = serve.get_replica_context()
            replica, where = ctx.replica_id.unique_id, f"{ctx.app_name}/{ctx.deployment}"
        except Exception:
            replica, where = "local", "local"
        # Membrane actor groups follow their own load through the scaling optimizer
        # (echo_ray/autoscaling/loop.py): a resource per group, "app/deployment/replica/dtesn-key".
        self.scaling_loop = None
        interval = self.settings.scaling.membrane_interval_s
        if interval > 0:
            from echo_ray.autoscaling.loop import ScalingLoop

            self.scaling_loop = ScalingLoop(interval, name=f"echo-ray-scaling-loop:{replica}",
                                            actor_namespace=self.settings.cluster.namespace)
        self._resource_prefix = f"{where}/{replica}/dtesn-"
        self._warming_up = self.settings.service.worker_warm_up
        self.engines = EngineCache(
            use_actors=True, name_prefix=f"echo-{replica}", on_new=self._engine_created,
            inprocess_max_work=self.settings.service.worker_inprocess_max_work)
        self.core = CognitiveProcessor(self.settings, self.engines)
        if self._warming_up:
            # Serve routes to a replica once its constructor returns: it starts warm, and a
            # scale-up does not hand users seconds-long first requests (engine and membrane
            # actor creation). A failure here fails the replica's start (Serve retries it).
            t0 = time.perf_counter()
            self.core.warm_up()
            self.engines.wait_for_actors()  # the warm-up's small requests ran in-process
            log.info("replica %s warmed up in %.1f s", replica, time.perf_counter() - t0)
            # The warm-up is not user load: under the scaling loop, its calls made each new
            # membrane group look busy and grow to 2 actors in the middle of the warm-up,
            # which doubled a replica's start (RESULTS.md). The groups join the loop now.
            self._warming_up = False
            for key, engine in self.engines.items():
                engine.load.forget()
                self._engine_created(key, engine)
        self.load = ReplicaLoad()
        from ray.util import metrics

        self.processing_s = metrics.Histogram(
            "echo_ray_processing_seconds", "DTESN processing time per request (membrane "
            "evolution included), by processing type", tag_keys=("type",),
            boundaries=[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30])

    def process(self, kind: str, payload: dict, session_id: str | None) -> dict:
        out = self._process(kind, payload, session_id)
        if out["ok"]:
            self.processing_s.observe(out["elapsed_s"], {"type": kind})
        return out

    def _engine_created(self, key: str, engine) -> None:
        if self.scaling_loop is None or self._warming_up:
            return
        from echo_ray.autoscaling.loop import membrane_config

        self.scaling_loop.add(self._resource_prefix + key, engine,
                              membrane_config(self.settings.scaling, engine.max_size))
        self.scaling_loop.start()

    def record_autoscaling_stats(self) -> dict:
        """Request rate, p95 latency and error rate for the ForecastPolicy (Serve pulls it)."""
        return self.load.stats()

    def _process(self, kind: str, payload: dict, session_id: str | None) -> dict:
        try:
            with self.replica_stats.track(), self.load.track():  # 5xx count as errors
                out = self.core.process(kind, payload, session_id)
                if not out["ok"] and out["status"] >= 500:
                    raise _ServerError(out)
        except _ServerError as failed:
            out = failed.out
        return out

    def ping(self) -> bool:
        return True

    def placement(self) -> dict[str, int]:
        """Encodes run in this replica and on its membrane actors so far."""
        return self.engines.placement()

    async def dependency_problem(self) -> str | None:
        engines = self.engines.engines()
        layouts = [getattr(e, "generation", None) for e in engines]
        actors = self.engines.actors()
        if not actors:
            return None
        try:
            await asyncio.wait_for(asyncio.gather(*(a.steps.remote() for a in actors)), 10)
        except Exception as exc:
            if [getattr(e, "generation", None) for e in engines] != layouts:
                return None  # a group was resized meanwhile: its old actors are gone
            return f"a DTESN membrane actor is not answering ({type(exc).__name__})"
        return None

    def __del__(self):
        try:
            if self.scaling_loop is not None:
                self.scaling_loop.stop(timeout_s=5)
            self.engines.shutdown()
        except Exception:
            pass
