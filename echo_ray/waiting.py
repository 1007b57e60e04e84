"""Bounded polling: wait for a condition with a deadline, never a bare sleep.

Used by the local-cluster launcher and by the tests, which must wait on conditions (a replica
up, a server answering) rather than for fixed times.
"""

from __future__ import annotations

import time


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll `predicate()` until it returns something truthy and return that; TimeoutError
    naming `what` once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:g}s")
        time.sleep(interval_s)
