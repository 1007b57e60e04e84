"""Fixtures for the cognitive processors: one in-process engine factory for the whole run."""

from __future__ import annotations

import pytest

from echo_ray.cognitive import LocalEngines


@pytest.fixture(scope="session")
def engines() -> LocalEngines:
    """LocalEngine per TreeSpec, shared so each tree is built once."""
    return LocalEngines()

