"""EchoRequestRouter's own in-flight bookkeeping, driven through Serve's two lifecycle hooks
in the orders Serve can call them (pure unit test: no cluster; the router is built without
Serve's constructor, which needs a running controller)."""

from __future__ import annotations

from types import SimpleNamespace

from ray.serve._private.common import DeploymentID, ReplicaID

from echo_ray.routing.router import EchoRequestRouter

DEP = DeploymentID(name="Probe", app_name="test")
A, B = ReplicaID("a", DEP), ReplicaID("b", DEP)


def router() -> EchoRequestRouter:
    r = EchoRequestRouter.__new__(EchoRequestRouter)
    r._strategy = None
    r._local_in_flight, r._started, r._completed_early = {}, {}, {}
    r.initialize_state("least_connections", seed=0)
    return r


def pending(request_id: str):
    return SimpleNamespace(metadata=SimpleNamespace(internal_request_id=request_id))


def test_routed_then_completed_leaves_nothing_in_flight():
    r = router()
    r.on_request_routed(pending("1"), A, None)
    assert r._local_in_flight == {A: 1}
    r.on_request_completed(A, "1")
    assert r._local_in_flight == {}


def test_completion_before_routed_does_not_leak_a_request_in_flight():
    """A fast request's done-callback can run before Serve reports it routed; counting it
    afterwards left the replica looking busy for ever (seen as a flaky routing test)."""
    r = router()
    r.on_request_completed(A, "1")
    r.on_request_routed(pending("1"), A, None)
    assert r._local_in_flight == {} and r._started == {} and r._completed_early == {}


def test_a_rejected_attempt_elsewhere_does_not_cancel_the_accepted_one():
    r = router()
    r.on_request_completed(B, "1")  # rejected by B (same request id), then accepted by A
    r.on_request_routed(pending("1"), A, None)
    assert r._local_in_flight == {A: 1}
    r.on_request_completed(A, "1")
    assert r._local_in_flight == {}
