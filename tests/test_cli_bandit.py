"""``wind bandit`` end to end (the real console script, once) and its error messages."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from windalign.bandit.methods import BENCH_METHODS
from windalign.cli import main

ROOT = Path(__file__).resolve().parents[1]
WIND = Path(sys.executable).with_name("wind")


def test_wind_bandit_quick_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    cmd = [str(WIND), "bandit", "--quick", "--out", str(out), "--no-progress"]
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    for name in ("config.yaml", "curves.csv", "tuning.csv", "summary.md", "win_rate_vs_queries.png",
                 "exploitability_vs_queries.png", "kl_to_equilibrium_vs_queries.png",
                 "win_rate_vs_kl.png", "wall_time.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    with (out / "curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == set(BENCH_METHODS.names())
    assert len({r["seed"] for r in rows}) >= 2
    summary = (out / "summary.md").read_text()
    assert "## (1) Dominance: queries (thousands) until the policy wins >= 1/2" in summary
    assert "summary.md" in done.stdout


def test_wind_bandit_config_errors_exit_2_with_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  query_budget: -5\n")
    assert main(["bandit", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "wind bandit: error: train.query_budget = -5 is invalid" in err
    assert main(["bandit", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    config = str(ROOT / "configs" / "bandit.yaml")
    assert main(["bandit", "--config", config, "--methods", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'; choose one of: wind-squared" in capsys.readouterr().err
