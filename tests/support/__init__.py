"""Helpers the test folders and the notebooks share, imported as `tests.support.<module>`
(pytest puts the repository root on sys.path: `pythonpath` in pyproject.toml)."""
