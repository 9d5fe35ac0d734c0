"""``wind solve`` end to end: table, figure, summary, loaded games and clean errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from windalign.cli import main
from windalign.games import METHODS, random_game

SMALL = ["--size", "6", "--contexts", "4", "--no-progress"]


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
    assert "shape.npz: ref has shape (2, 4) but P has shape (2, 3, 3): ref needs K = 3" in err

    asym = tmp_path / "asym.npz"
    np.savez(asym, P=np.array([[0.5, 0.9], [0.9, 0.5]]), ref=np.array([0.5, 0.5]))
    err = _error(["solve", "--game", str(asym)], capsys)
    assert "asym.npz:P[0, 1] + " in err and "P + P^T = 1" in err

    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    assert "junk.npz is not an .npz archive; save it with np.savez" in _error(
        ["solve", "--game", str(junk)], capsys
    )

    cplx = tmp_path / "cplx.npz"
    np.savez(cplx, P=np.full((2, 2), 0.5 + 0j), ref=np.array([0.5, 0.5]))
    assert "cplx.npz:P must hold real numbers" in _error(["solve", "--game", str(cplx)], capsys)

    empty = tmp_path / "empty.npz"
    np.savez(empty, P=np.zeros((0, 2, 2)), ref=np.zeros((0, 2)))
    assert "the game has no contexts" in _error(["solve", "--game", str(empty)], capsys)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--beta", "-1"], "--beta must be a finite number > 0, got -1.0"),
        (["--beta", "nan"], "--beta must be a finite number > 0, got nan"),
        (["--max-iter", "-1"], "--max-iter must be >= 0, got -1"),
        (["--contexts", "0"], "--contexts must be >= 1, got 0"),
        (["--size", "0"], "--size must be >= 1, got 0"),
        (["--seed", "-3"], "--seed must be >= 0, got -3"),
        (["--nontransitive", "1.5"], "--nontransitive must be in [0, 1], got 1.5"),
        (["--tol", "nan"], "--tol must be a finite number > 0, got nan"),
        (["--tol=-1e-9"], "--tol must be a finite number > 0, got -1e-09"),
        (["--tol", "0"], "--tol must be a finite number > 0, got 0.0"),
        (["--methods", ","], "--methods is empty; choose from: newton"),
    ],
)
def test_bad_options_give_clear_errors(tmp_path, capsys, flags, message):
    assert message in _error(["solve", "--out", str(tmp_path), *flags], capsys)


def test_shared_oracle_and_float32_game_files_load(tmp_path, capsys):
    g = random_game(5, batch=(3,), seed=0)
    for name, P, ref, gap in [
        ("shared", g.P[0], g.ref, 1e-12),  # one oracle for every reference
        # float32 rounding leaves P + P^T - 1 ~ 3e-8; the game is projected onto exact oracles
        # in float64, so Newton reaches the float64 gap
        ("f32", g.P.astype(np.float32), g.ref.astype(np.float32), 1e-12),
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


def _strict_json(path):
    """Parse ``path`` refusing NaN / Infinity (not JSON)."""

    def refuse(name):
        raise AssertionError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_converged_column_and_strict_summary(tmp_path, capsys):
    argv = ["solve", *SMALL, "--methods", "newton", "mirror", "sppo", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[-1] == "converged"
    table = {line.split()[0]: line.split()[-1] for line in lines[1:4]}
    assert table == {"newton": "yes", "mirror": "yes", "sppo": "-"}
    summary = _strict_json(tmp_path / "summary.json")
    assert summary["exact_converged"] is True
    assert summary["methods"]["newton"]["converged"] is True
    assert summary["methods"]["sppo"] == summary["methods"]["sppo"] | {"exact": False}


def test_unconverged_exact_solver_warns_and_exits_3(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["solve", *SMALL, "--methods", "newton,mirror", "--max-iter", "5", "--out", str(out)]
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert "mirror  " in captured.out and captured.out.splitlines()[2].endswith("NO")
    assert "wind solve: warning: mirror did not converge" in captured.err
    assert "--allow-unconverged" in captured.err
    summary = _strict_json(out / "summary.json")
    assert summary["exact_converged"] is False
    assert summary["methods"]["mirror"]["converged"] is False
    assert json.loads((out / "status.json").read_text())["status"] == "complete"
    again = [*argv, "--overwrite", "--allow-unconverged"]
    assert main(again) == 0
    assert "warning: mirror did not converge" in capsys.readouterr().err


@pytest.mark.parametrize("beta", ["1e-6", "1e300", "0", "inf"])
def test_beta_outside_the_solver_range_is_refused(tmp_path, capsys, beta):
    err = _error(["solve", "--beta", beta, "--out", str(tmp_path / "run")], capsys)
    assert "--beta" in err and len(err.strip().splitlines()) == 1
    if beta in ("1e-6", "1e300"):
        assert "is outside [0.0001, 100], the range the exact solvers support" in err
    assert not (tmp_path / "run").exists()


def test_help_lists_the_methods_and_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    out = "".join(capsys.readouterr().out.split())  # help lines wrap anywhere, hyphens too
    assert "oneormoreof:" + ",".join(METHODS.names()) in out
    assert "separatedbyspacesorcommas" in out
    assert "3done,butanexactsolver" in out and "[0.0001,100]" in out


def test_methods_space_and_comma_separated_are_the_same(tmp_path, capsys):
    for i, form in enumerate((["newton", "sppo"], ["newton,sppo"], ["newton,", "sppo"])):
        out = tmp_path / str(i)
        assert main(["solve", *SMALL, "--methods", *form, "--out", str(out)]) == 0
        assert list(_strict_json(out / "summary.json")["methods"]) == ["newton", "sppo"]
    capsys.readouterr()


def test_duplicated_methods_are_refused(tmp_path, capsys):
    for form in (["newton", "newton"], ["newton,sppo,newton"]):
        err = _error(["solve", "--methods", *form, "--out", str(tmp_path / "r")], capsys)
        assert "--methods lists 'newton' twice; give each method once" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag", [["-K", "5"], ["-B", "3"], ["--seed", "1"], ["--size", "4"]])
def test_game_file_with_random_game_options_is_refused(tmp_path, capsys, flag):
    g = random_game(4, batch=(2,), seed=0)
    np.savez(tmp_path / "g.npz", P=g.P, ref=g.ref)
    argv = ["solve", "--game", str(tmp_path / "g.npz"), *flag, "--out", str(tmp_path / "o")]
    err = _error(argv, capsys)
    assert "describes a random game and cannot be combined with it: drop it" in err


def test_game_given_a_directory(tmp_path, capsys):
    err = _error(["solve", "--game", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert f"--game {tmp_path} is a directory, not a file; pass an .npz" in err


def test_game_given_dev_null(tmp_path, capsys):
    err = _error(["solve", "--game", "/dev/null", "--out", str(tmp_path / "o")], capsys)
    assert "--game /dev/null is a character device, not a file; pass an .npz" in err


def test_game_given_a_npy_file(tmp_path, capsys):
    np.save(tmp_path / "P.npy", np.full((2, 2), 0.5))
    err = _error(["solve", "--game", str(tmp_path / "P.npy"), "--out", str(tmp_path / "o")], capsys)
    assert "is a .npy file (a single array)" in err and "np.savez(path, P=P, ref=ref)" in err


def test_game_given_a_text_file(tmp_path, capsys):
    text = tmp_path / "game.txt"
    text.write_text("P = [[0.5, 0.5], [0.5, 0.5]]\n")
    err = _error(["solve", "--game", str(text), "--out", str(tmp_path / "o")], capsys)
    assert "game.txt is not an .npz archive; save it with np.savez" in err
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    err = _error(["solve", "--game", str(empty), "--out", str(tmp_path / "o")], capsys)
    assert "empty.npz is an empty file" in err


def test_game_with_object_arrays_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "obj.npz"
    np.savez(path, P=np.array([None, 1], dtype=object), ref=np.array([0.5, 0.5]))
    err = _error(["solve", "--game", str(path), "--out", str(tmp_path / "o")], capsys)
    assert "cannot read" in err and "np.savez" in err


@pytest.mark.parametrize(
    "flags", [["-B", "1000000", "-K", "1000"], ["-K", "10000000"], ["-B", "10000000000"]]
)
def test_sizes_too_large_for_memory_are_refused_before_allocating(tmp_path, capsys, flags):
    import time

    start = time.perf_counter()
    err = _error(["solve", *flags, "--out", str(tmp_path / "o")], capsys)
    assert time.perf_counter() - start < 5
    assert "of memory, more than the" in err and "lower -B or -K" in err
    assert not (tmp_path / "o").exists()
