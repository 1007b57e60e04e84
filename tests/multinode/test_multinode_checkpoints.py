"""DTESN checkpoints on a multi-node cluster (issue 14, test (b)'s stateful system): a 0-CPU
head and two worker nodes, each with its own disk, REDIS_URL on every node.

- A DTESNSystem that would checkpoint to a node-local folder is refused, saying what to set;
  one created with checkpoints=False (the served app's) is not.
- A stateful system whose membrane actors sit on a worker node checkpoints (to Redis, the
  default once REDIS_URL is set), runs on, and loses that node (its whole process group). Ray
  restarts the actors on the other node, they reload the checkpoint from Redis, the system
  replays the input since, and its outputs equal an unbroken in-process run of the same input.
"""

from __future__ import annotations

import pytest

from tests.support.multinode import MultiNodeCluster, run_isolated, sandbox_unavailable

pytestmark = pytest.mark.multinode


def actor_nodes(prefix: str) -> dict[str, str]:
    """{actor name: node id} of the alive actors whose name starts with `prefix`."""
    from ray.util.state import list_actors

    return {a["name"]: a["node_id"] for a in list_actors(
        filters=[("state", "=", "ALIVE")], limit=1000) if (a["name"] or "").startswith(prefix)}


def scenario_checkpoints() -> dict:
    import os
    import time

    import numpy as np
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from echo_ray.clusterstate import NodeLocalStateRefused
    from echo_ray.dtesn import MembraneTree, TreeSpec
    from echo_ray.dtesn.actors import DTESNSystem
    from echo_ray.waiting import wait_until
    from tests.support.redis_server import RedisServer

    spec = TreeSpec.from_depth(3, units=20, seed=7)
    rng = np.random.default_rng(14)
    U = [rng.uniform(-1, 1, (n, 1)) for n in (300, 120, 200)]
    redis = RedisServer()
    redis.start()
    os.environ["REDIS_URL"] = redis.url  # this driver's settings, as every node's
    cluster = MultiNodeCluster.start(2, env={"REDIS_URL": redis.url})
    try:
        cluster.connect()
        out: dict = {}
        try:
            DTESNSystem(spec, checkpoint_dir="/tmp/echo-ray-checkpoints", name="refused")
            out["refused"] = None
        except NodeLocalStateRefused as exc:
            out["refused"] = str(exc)
        stateless = DTESNSystem(spec, n_actors=1, checkpoints=False, name="stateless")
        out["stateless_encodes"] = sorted(stateless.encode(U[0])) == list(range(len(spec.parents)))
        stateless.shutdown()

        by_port = {n["NodeManagerPort"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
        victim = cluster.workers[0]
        victim_id = by_port[victim.ports["node_manager"]]
        # Half a CPU each: never on the 0-CPU head, and both fit on the surviving worker.
        # Soft affinity prefers worker1 while it lives; the node of the root group is the one
        # killed, wherever Ray put it.
        place = {"num_cpus": 0.5,
                 "scheduling_strategy": NodeAffinitySchedulingStrategy(victim_id, soft=True)}
        system = DTESNSystem(spec, n_actors=2, chunk_size=100, name="stateful",
                             actor_options=place)
        out["location"] = system.location.kind if system.location else None
        got = [system.run(U[0])]
        out["checkpointed_steps"] = system.checkpoint()
        got.append(system.run(U[1]))  # after the checkpoint: only in the actors and the log
        before = actor_nodes("stateful:")
        node_of = {by_port[w.ports["node_manager"]]: w for w in cluster.workers}
        victim_id = before[f"stateful:{system.generation}:0"]  # the root group's actor
        victim = node_of[victim_id]
        out["actors_on_victim_before"] = sum(n == victim_id for n in before.values())
        t_kill = cluster.kill_worker(victim)
        got.append(system.run(U[2]))  # fails on the dead actors, recovers, then runs
        out["restore_s"] = round(time.monotonic() - t_kill, 2)
        out["recoveries"] = system.recoveries
        wait_until(lambda: len(actor_nodes("stateful:")) == len(before), 60,
                   "the restarted actors listed alive")
        after = actor_nodes("stateful:")
        out["actors_on_victim_after"] = sum(n == victim_id for n in after.values())
        tree = MembraneTree(spec)
        want = [tree.run(u) for u in U]
        out["max_abs_diff"] = max(float(np.max(np.abs(g[m] - w[m])))
                                  for g, w in zip(got, want, strict=True) for m in w)
        system.shutdown()
        return out
    finally:
        ray.shutdown()  # first: a driver whose head goes away exits its process
        cluster.stop()
        redis.stop()


@pytest.mark.redis
@pytest.mark.timeout(420)
def test_a_stateful_system_restores_on_another_node_from_redis():
    reason = sandbox_unavailable()
    if reason:
        print(f"SKIP multinode: {reason}")
        pytest.skip(reason)
    out = run_isolated(__file__, "scenario_checkpoints", timeout_s=360)
    print(out)
    assert out["refused"] and "alive nodes" in out["refused"] \
        and "ECHO_RAY_CHECKPOINT_URI" in out["refused"], out["refused"]
    assert out["stateless_encodes"]
    assert out["location"] == "redis"
    assert out["checkpointed_steps"] == 300
    assert out["actors_on_victim_before"] >= 1
    assert out["recoveries"] >= 1 and out["actors_on_victim_after"] == 0
    assert out["max_abs_diff"] <= 1e-12, out["max_abs_diff"]
