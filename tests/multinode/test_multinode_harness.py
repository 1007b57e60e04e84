"""The multi-node harness itself: worker nodes join, each has a disk of its own, and killing
one node (its whole process group) is seen by the cluster."""

from __future__ import annotations

import time

import pytest

from tests.support.multinode import MultiNodeCluster, run_isolated, sandbox_unavailable

pytestmark = pytest.mark.multinode


def scenario_harness() -> dict:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = MultiNodeCluster.start(2)
    try:
        cluster.connect()

        @ray.remote(num_cpus=0)
        def write_and_list(tag: str) -> list[str]:
            from pathlib import Path

            d = Path.home() / ".cache" / "echo-ray-probe"
            d.mkdir(parents=True, exist_ok=True)
            (d / tag).write_text(tag)
            return sorted(p.name for p in d.iterdir())

        workers = [n for n in cluster.alive_nodes() if n["Resources"].get("CPU", 0) > 0]
        seen = {}
        for i, node in enumerate(workers):
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            seen[f"w{i}"] = ray.get(write_and_list.options(
                scheduling_strategy=strategy).remote(f"w{i}"), timeout=120)
        from pathlib import Path

        head_sees = (Path.home() / ".cache" / "echo-ray-probe").exists()
        t_kill = cluster.kill_worker(cluster.workers[0])
        cluster.wait_nodes(2, 60)
        return {"nodes": len(workers) + 1, "seen": seen, "head_sees": head_sees,
                "death_noticed_s": round(time.monotonic() - t_kill, 1)}
    finally:
        cluster.stop()


@pytest.mark.timeout(360)
def test_worker_nodes_have_private_disks_and_can_be_killed():
    reason = sandbox_unavailable()
    if reason:
        print(f"SKIP multinode: {reason}")
        pytest.skip(reason)
    out = run_isolated(__file__, "scenario_harness", timeout_s=300)
    print(out)
    assert out["nodes"] == 3
    assert out["seen"] == {"w0": ["w0"], "w1": ["w1"]}, "worker nodes share a disk"
    assert out["head_sees"] is False
    assert out["death_noticed_s"] < 60
