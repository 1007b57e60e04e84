"""DTESN membranes on real Ray actors: identical outputs, chunking, checkpoint and recovery."""

import numpy as np
import pytest

from echo_ray.dtesn import MembraneTree, TreeSpec

pytestmark = pytest.mark.ray

SPEC = TreeSpec.from_depth(4, units=20, seed=11)


@pytest.fixture()
def system(ray_session, tmp_path):
    from echo_ray.dtesn.actors import DTESNSystem

    s = DTESNSystem(SPEC, chunk_size=64, checkpoint_dir=tmp_path)
    yield s
    s.shutdown()


def U(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1))


def test_actor_outputs_equal_in_process_tree(system):
    out = system.run(U(300))
    ref = MembraneTree(SPEC).run(U(300))
    assert system.n_actors == 8 and sorted(out) == list(range(8))
    for m in ref:
        np.testing.assert_allclose(out[m], ref[m], atol=1e-12)


def test_fewer_actors_hold_subtrees(ray_session, tmp_path):
    from echo_ray.dtesn.actors import DTESNSystem

    s = DTESNSystem(SPEC, n_actors=3, chunk_size=50, checkpoint_dir=tmp_path)
    try:
        assert s.groups == [[0], [1, 3, 5, 7], [2, 4, 6]]
        out = s.run(U(120))
        np.testing.assert_allclose(out[0], MembraneTree(SPEC).run(U(120))[0], atol=1e-12)
    finally:
        s.shutdown()


def kill_and_wait_restart(ray, actor, checkpointed_steps: int) -> None:
    """Kill a membrane actor and wait until Ray has restarted it from its checkpoint:
    `ray.kill` returns before the actor dies, so without the wait the next run may finish
    on the old actor (no recovery), or reach the new one at a step it expects."""
    from ray.exceptions import GetTimeoutError, RayActorError

    from echo_ray.waiting import wait_until

    ray.kill(actor, no_restart=False)

    def restarted() -> bool:
        try:
            return ray.get(actor.steps.remote(), timeout=5) == checkpointed_steps
        except (RayActorError, GetTimeoutError):
            return False

    wait_until(restarted, 60, "the killed membrane actor restarted from its checkpoint")


def test_killed_actor_resumes_from_checkpoint_with_identical_outputs(system, ray_session):
    system.run(U(100, 1))
    system.checkpoint()
    expected = system.run(U(200, 2))  # an uninterrupted run from the checkpoint
    system.restore()
    first = system.run(U(200, 2)[:100])  # past the checkpoint, then a leaf group dies
    kill_and_wait_restart(ray_session, system.actors[5], checkpointed_steps=100)
    rest = system.run(U(200, 2)[100:])
    assert system.recoveries == 1 and system.steps == 300
    for m in expected:
        np.testing.assert_allclose(np.vstack([first[m], rest[m]]), expected[m], atol=1e-12)


def test_kill_after_unsaved_progress_replays_the_log(system, ray_session):
    tree = MembraneTree(SPEC)
    system.run(U(100, 3))
    tree.run(U(100, 3))
    system.checkpoint()
    system.run(U(80, 4))  # not checkpointed: lives only in the actors and the system's log
    tree.run(U(80, 4))
    kill_and_wait_restart(ray_session, system.actors[0], checkpointed_steps=100)  # the root
    got = system.run(U(60, 5))
    ref = tree.run(U(60, 5))
    assert system.recoveries == 1 and system.steps == 240
    np.testing.assert_allclose(got[0], ref[0], atol=1e-12)


def test_resize_keeps_state(system):
    tree = MembraneTree(SPEC)
    system.run(U(90, 6))
    tree.run(U(90, 6))
    system.resize(2)
    assert system.n_actors == 2
    np.testing.assert_allclose(system.run(U(40, 7))[0], tree.run(U(40, 7))[0], atol=1e-12)


def test_encode_is_stateless_and_matches_local_engine(system):
    from echo_ray.dtesn.engine import LocalEngine

    system.run(U(50, 8))
    before = system.steps
    enc = system.encode(U(30, 9))
    local = LocalEngine(SPEC).encode(U(30, 9))
    batch = system.encode_batch([U(30, 9), U(12, 3)])
    np.testing.assert_allclose(batch[0][0], local[0], atol=1e-12)
    np.testing.assert_allclose(batch[1][4], LocalEngine(SPEC).encode(U(12, 3))[4], atol=1e-12)
    assert system.steps == before
    for m in local:
        np.testing.assert_allclose(enc[m], local[m], atol=1e-12)
    # the system's own state was left alone
    tree = MembraneTree(SPEC)
    tree.run(U(50, 8))
    np.testing.assert_allclose(system.run(U(10, 10))[0], tree.run(U(10, 10))[0], atol=1e-12)


def test_run_can_return_only_the_root(system):
    out = system.run(U(150, 11), members="root")
    assert list(out) == [0]
    np.testing.assert_allclose(out[0], MembraneTree(SPEC).run(U(150, 11))[0], atol=1e-12)
