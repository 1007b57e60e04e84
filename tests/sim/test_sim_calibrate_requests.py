"""The requests `echo-ray calibrate` sends are valid and run through the real processing code."""

from __future__ import annotations

import pytest

from echo_ray.cognitive import PROCESSORS, LocalEngines, process
from echo_ray.sim.calibrate import DEFAULT_REQUESTS, calibrate


def test_one_request_per_processing_type_and_each_runs():
    assert sorted(DEFAULT_REQUESTS) == sorted(PROCESSORS)
    engines = LocalEngines()
    for kind, payload in DEFAULT_REQUESTS.items():
        result, _ = process(kind, payload, {}, engines)  # stateless: no session
        assert result, kind


def test_bad_arguments_are_refused_before_any_request(tmp_path):
    with pytest.raises(ValueError, match="types"):
        calibrate("http://127.0.0.1:9", tmp_path / "c.json", types=["nope"])
    with pytest.raises(ValueError, match="n must be"):
        calibrate("http://127.0.0.1:9", tmp_path / "c.json", n=0)
