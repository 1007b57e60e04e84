"""The capacity-planning commands, mounted on a typer app the way echo_ray.cli mounts them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from echo_ray.sim.cli import register


@pytest.fixture()
def cli():
    app = register(typer.Typer())
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def trace(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("minute,requests\n" + "\n".join(f"{m},{600 + 40 * m}" for m in range(30)))
    return path


def test_help_lists_the_five_commands(cli):
    out = cli("--help").output
    for name in ("simulate", "compare", "scenarios", "calibrate", "replay"):
        assert name in out


def test_simulate_writes_tables_and_a_plot(cli, trace, tmp_path):
    out = tmp_path / "out"
    r = cli("simulate", "--trace", trace, "--policy", "ray-default", "--mode", "event",
            "--hours", 0.1, "--peak-replicas", 4, "--out", out)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "ray_default_summary.json").read_text())["summary"]
    minutes = pd.read_csv(out / "ray_default_minutes.csv")
    assert len(minutes) == 6 and summary["arrivals"] == minutes["arrivals"].sum()
    assert (out / "ray_default.png").stat().st_size > 10_000
    assert (out / "ray_default_requests.csv").is_file()


def test_compare_gives_one_row_per_policy(cli, trace, tmp_path):
    out = tmp_path / "cmp"
    r = cli("compare", "--trace", trace, "--policies", "ray-default,static-peak,static:3",
            "--mode", "fluid", "--hours", 0.5, "--peak-replicas", 6, "--out", out)
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "compare.csv")
    assert table["policy"].tolist() == ["ray_default", "static_peak", "static_3"]
    assert (out / "compare.png").is_file()


def test_bad_input_exits_with_a_message(cli, tmp_path):
    r = cli("simulate", "--trace", tmp_path / "missing.csv", "--out", tmp_path)
    assert r.exit_code == 2 and "trace must be" in r.output
    r = cli("simulate", "--trace", "nasa", "--policy", "magic", "--out", tmp_path)
    assert r.exit_code == 2
