import numpy as np
import pytest

from echo_ray.dtesn import Reservoir, RidgeReadout, TreeSpec
from echo_ray.dtesn.membrane_tree import MembraneTree


@pytest.mark.parametrize("U, msg", [
    (np.zeros((10, 3)), "U must have 2 features"),
    (np.zeros((2, 3, 4, 5)), "U must have 1 or 2 dimensions"),
    (np.array([["a", "b"]]), "real numeric dtype"),
    (np.array([[np.nan, 1.0]]), "NaN or inf"),
    (np.array([[np.inf, 1.0]]), "NaN or inf"),
    (np.zeros((0, 2)), "must not be empty"),
    (np.ones((3, 2), dtype=complex), "real"),
])
def test_reservoir_rejects_bad_sequences(U, msg):
    with pytest.raises(ValueError, match=msg):
        Reservoir(10, 2).run(U)


@pytest.mark.parametrize("kwargs, msg", [
    ({"spectral_radius": 0}, "spectral_radius must be a finite number > 0"),
    ({"spectral_radius": -1}, "spectral_radius"),
    ({"leak_rate": 0}, "leak_rate must be in"),
    ({"density": 1.5}, "density must be in"),
    ({"mode": "analog"}, "mode must be"),
    ({"method": "rk45"}, "method must be a ButcherTableau or one of"),
])
def test_reservoir_rejects_bad_settings(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Reservoir(10, 1, **kwargs)


def test_units_must_be_positive():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        Reservoir(0)


def test_readout_bad_input():
    with pytest.raises(ValueError, match="not fitted"):
        RidgeReadout().predict(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="same length"):
        RidgeReadout().fit(np.zeros((5, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="warmup"):
        RidgeReadout(warmup=10).fit(np.zeros((5, 2)), np.zeros((5, 1)))
    ro = RidgeReadout().fit(np.eye(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="3 features"):
        ro.predict(np.zeros((2, 5)))


def test_tree_spec_bad_input():
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        TreeSpec.from_depth(0)
    with pytest.raises(ValueError, match="earlier membrane index"):
        TreeSpec(parents=[-1, 2, 0])
    with pytest.raises(ValueError, match="coupling"):
        TreeSpec.from_depth(2, coupling=0)
    with pytest.raises(ValueError, match="leaf_channels"):
        TreeSpec.from_depth(2, input_dim=2, leaf_channels=[[5]])
    tree = MembraneTree(TreeSpec.from_depth(2, units=5, input_dim=2))
    with pytest.raises(ValueError, match="U must have 2 features"):
        tree.run(np.zeros((4, 3)))
