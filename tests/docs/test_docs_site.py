"""The documentation site builds with --strict, and the README stays a short entry point.

--strict turns every mkdocs warning (a broken link or anchor, a page missing from the nav, a
snippet that cannot be found) into a failure. The build writes into a temporary folder, needs no
network (the theme loads no web fonts) and takes a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    # no -q: mkdocs only counts the warnings it logs, so -q would let --strict pass them
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()
    # benchmarks/RESULTS.md is included into the benchmarks page, not copied by hand
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()[0].lstrip("# ")
    assert results in (tmp_path / "site" / "benchmarks" / "index.html").read_text()


def test_readme_starts_with_the_two_commands_and_stays_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"
    assert lines[3].startswith("make run") and lines[4].startswith("make test"), lines[:6]
