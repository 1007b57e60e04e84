"""The notebooks are kept without outputs (they are executed by `pytest --nbmake notebooks`,
see notebooks/conftest.py) and honour SMOKE=1."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_autoscaling.ipynb",
                                           "03_cache.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_valid_stripped_and_has_a_smoke_size(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, \
            f"{path.name}: strip outputs (e.g. `jupyter nbconvert --clear-output --inplace`)"
    assert any('os.environ.get("SMOKE") == "1"' in c.source for c in code)
