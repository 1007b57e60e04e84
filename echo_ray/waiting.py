"""Bounded polling: wait for a condition with a deadline, never a bare sleep.

Used by the local-cluster launcher and by the tests, which must wait on conditions (a replica
up, a server answering) rather than for fixed times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str | Callable[[], str],
               interval_s: float = 0.05):
    """Poll `predicate()` until it returns something truthy and return that; TimeoutError
    naming `what` once `timeout_s` has passed. `what` may be a callable, called only at the
    timeout, so the message can say the last state seen. Exceptions from `predicate`
    propagate: raise in it to give up early (a process that died, a deploy that failed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what() if callable(what) else what
            raise TimeoutError(f"{name} not reached within {timeout_s:g}s")
        time.sleep(interval_s)
