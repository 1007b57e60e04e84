import numpy as np
import pytest

from echo_ray.dtesn import MembraneTree, RidgeReadout, TreeSpec, count_rooted_trees
from echo_ray.dtesn.datasets import mackey_glass, nrmse, scale_to_unit


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_levels_follow_a000081(depth):
    tree = MembraneTree(TreeSpec.from_depth(depth, units=4))
    assert tree.level_sizes() == [count_rooted_trees(k + 1) for k in range(depth)]
    assert tree.depth == depth


def test_kinds_and_structure_of_depth_4():
    tree = MembraneTree(TreeSpec.from_depth(4, units=4))
    assert tree.kind[0] == "root" and tree.kind[1] == "trunk"
    assert [tree.kind[i] for i in (2, 3)] == ["branch", "branch"]
    assert all(tree.kind[i] == "leaf" for i in tree.leaves) and len(tree.leaves) == 4
    for i in range(1, len(tree)):
        assert tree.level[i] == tree.level[tree.parent[i]] + 1


def test_any_rooted_tree_can_shape_the_system():
    tree = MembraneTree(TreeSpec.from_tree(((), ((), ())), units=3))
    assert len(tree) == 5 and sorted(len(c) for c in tree.children) == [0, 0, 0, 2, 2]


def test_inner_membranes_read_children_states():
    spec = TreeSpec.from_depth(3, units=[20, 10, 8, 8], coupling=0.7)
    tree = MembraneTree(spec)
    U = np.random.default_rng(0).uniform(-1, 1, (30, 1))
    out = tree.run(U)
    # Rebuild the trunk's input by hand and check it reproduces the trunk's states.
    trunk = MembraneTree(spec, members=[1])
    np.testing.assert_allclose(trunk.run(U, upstream={2: out[2], 3: out[3]})[1], out[1])
    assert tree.reservoirs[1].input_dim == 16
    assert np.allclose(np.abs(tree.reservoirs[1].W_in[tree.reservoirs[1].W_in != 0]), 0.7)


def test_leaf_channels_route_modalities():
    spec = TreeSpec.from_depth(3, units=6, input_dim=3, leaf_channels=[[0], [1, 2]])
    tree = MembraneTree(spec)
    U = np.random.default_rng(1).uniform(-1, 1, (20, 3))
    out = tree.run(U)
    solo = MembraneTree(spec, members=[2])
    np.testing.assert_allclose(solo.run(U)[2], out[2])
    U2 = U.copy()
    U2[:, 0] = 0
    assert np.allclose(MembraneTree(spec).run(U2)[3], out[3])  # leaf 3 ignores column 0


def test_readout_on_root_states_learns_mackey_glass():
    x = scale_to_unit(mackey_glass(2000))
    tree = MembraneTree(TreeSpec.from_depth(3, units=[150, 80, 60, 60],
                                            reservoir={"spectral_radius": 1.2, "leak_rate": 0.3}))
    out = tree.run(x[:-1])
    X = np.hstack([out[m] for m in sorted(out)])
    ro = RidgeReadout(1e-6, warmup=100).fit(X[:1500], x[1:1501])
    assert nrmse(x[1501:], ro.predict(X[1500:])) < 0.02
