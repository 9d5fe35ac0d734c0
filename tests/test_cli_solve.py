"""``wind solve`` end to end: table, figure, summary, loaded games and clean errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from windalign.cli import main
from windalign.games import METHODS, random_game

SMALL = ["--size", "6", "--contexts", "4", "--max-iter", "300", "--no-progress"]


def test_solve_writes_table_figure_and_summary(tmp_path, capsys):
    assert main(["solve", *SMALL, "--beta", "0.2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in METHODS.names():
        assert f"\n{name} " in out
    assert f"figure: {tmp_path / 'gap.png'}" in out
    assert (tmp_path / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["methods"]) == METHODS.names()
    newton = summary["methods"]["newton"]
    assert newton["gap"] <= 1e-12 and newton["converged"]
    for row in summary["methods"].values():
        assert 0.0 <= row["win_rate_vs_ref"] <= 1.0 and row["exploitability"] >= 0.0


def test_solve_method_subset_and_loaded_game(tmp_path, capsys):
    g = random_game(5, batch=(3,), seed=1)
    game = tmp_path / "game.npz"
    np.savez(game, P=g.P, ref=g.ref)
    out_dir = tmp_path / "out"
    argv = ["solve", "--game", str(game), "--methods", "newton,sppo", "--out", str(out_dir)]
    assert main([*argv, "--no-progress"]) == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert list(summary["methods"]) == ["newton", "sppo"]
    assert summary["game"]["shape"] == [3, 5, 5]


def _error(argv, capsys):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_unknown_method_lists_the_registry(tmp_path, capsys):
    err = _error(["solve", "--methods", "newton,simplex", "--out", str(tmp_path)], capsys)
    assert "wind solve: error: unknown method 'simplex'" in err
    assert ", ".join(METHODS.names()) in err


def test_bad_game_files_give_clear_errors(tmp_path, capsys):
    missing = tmp_path / "nope.npz"
    assert "nope.npz does not exist" in _error(["solve", "--game", str(missing)], capsys)

    no_ref = tmp_path / "no_ref.npz"
    np.savez(no_ref, P=np.full((2, 2), 0.5))
    err = _error(["solve", "--game", str(no_ref)], capsys)
    assert "no_ref.npz lacks key(s) ref (has: P)" in err and "np.savez" in err

    shape = tmp_path / "shape.npz"
    np.savez(shape, P=np.full((2, 3, 3), 0.5), ref=np.full((2, 4), 0.25))
    err = _error(["solve", "--game", str(shape)], capsys)
    assert "P has shape (2, 3, 3) and ref (2, 4)" in err

    asym = tmp_path / "asym.npz"
    np.savez(asym, P=np.array([[0.5, 0.9], [0.9, 0.5]]), ref=np.array([0.5, 0.5]))
    err = _error(["solve", "--game", str(asym)], capsys)
    assert "asym.npz:P[0, 1] + " in err and "P + P^T = 1" in err

    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    assert "cannot read" in _error(["solve", "--game", str(junk)], capsys)

    cplx = tmp_path / "cplx.npz"
    np.savez(cplx, P=np.full((2, 2), 0.5 + 0j), ref=np.array([0.5, 0.5]))
    assert "cplx.npz:P must hold real numbers" in _error(["solve", "--game", str(cplx)], capsys)

    empty = tmp_path / "empty.npz"
    np.savez(empty, P=np.zeros((0, 2, 2)), ref=np.zeros((0, 2)))
    assert "is empty; store >= 1 context" in _error(["solve", "--game", str(empty)], capsys)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--beta", "-1"], "--beta must be a finite number > 0, got -1.0"),
        (["--beta", "nan"], "--beta must be a finite number > 0, got nan"),
        (["--max-iter", "-1"], "--max-iter must be >= 0, got -1"),
        (["--contexts", "0"], "--contexts must be >= 1, got 0"),
        (["--methods", ","], "--methods is empty; choose from: newton"),
    ],
)
def test_bad_options_give_clear_errors(tmp_path, capsys, flags, message):
    assert message in _error(["solve", "--out", str(tmp_path), *flags], capsys)


def test_shared_oracle_and_float32_game_files_load(tmp_path, capsys):
    g = random_game(5, batch=(3,), seed=0)
    for name, P, ref, gap in [
        ("shared", g.P[0], g.ref, 1e-12),  # one oracle for every reference
        # float32 rounding leaves P + P^T - 1 ~ 3e-8, which floors the gap at that scale
        ("f32", g.P.astype(np.float32), g.ref.astype(np.float32), 1e-6),
    ]:
        path = tmp_path / f"{name}.npz"
        np.savez(path, P=P, ref=ref)
        out = tmp_path / name
        argv = ["solve", "--game", str(path), "--methods", "newton", "--no-progress"]
        assert main([*argv, "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["methods"]["newton"]["gap"] < gap


def test_real_wind_executable(tmp_path):
    wind = Path(sys.executable).with_name("wind")
    proc = subprocess.run(
        [str(wind), "solve", *SMALL, "--methods", "newton,mirror", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "newton" in proc.stdout and f"figure: {tmp_path / 'gap.png'}" in proc.stdout
    assert (tmp_path / "gap.png").is_file() and (tmp_path / "summary.json").is_file()
