"""echo-ray test suite (a package so tests import `tests.support` normally)."""
