"""Run directories (``windalign.rundir``) and their use by ``wind solve`` / ``wind bandit``:
atomic files, strict JSON, refusal of foreign or finished directories, the lock, the status
lifecycle, commits that never leave a config without its results, and Ctrl-C / SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from windalign import __version__
from windalign.cli import main
from windalign.rundir import (
    RunDir,
    RunDirError,
    atomic_write,
    atomic_write_json,
    read_status,
)

ROOT = Path(__file__).resolve().parents[1]
WIND = Path(sys.executable).with_name("wind")
#: a quick bandit run of one method: a few seconds once started
QUICK = ["bandit", "--quick", "--methods", "wind-squared", "--no-progress"]
#: a run still going when a signal sent on seeing its "running" status arrives (the quick run's
#: 2 seeds ended before it on a fast AVX-512 machine, in two full-suite runs of three)
LONGER = [*QUICK, "--seeds", "60"]
#: holds the lock of the run directory argv[1] until a line arrives on stdin
HOLDER = """
import sys
from windalign.rundir import RunDir
with RunDir(sys.argv[1], ["holder"]):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def _strict(text: str):
    """``json.loads`` that rejects NaN / Infinity (which Python's json accepts by default)."""

    def bad(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=bad)


def _files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C at its default, as a terminal's foreground job has it. A
    background job of a non-interactive shell (``make test &``, ``nohup ... &``) inherits SIGINT
    ignored (POSIX), and Python then installs no Ctrl-C handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wind(*argv: str) -> subprocess.Popen:
    """Start the real ``wind`` executable (stdout, stderr captured as text)."""
    return subprocess.Popen(
        [str(WIND), *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip


def _wait_running(proc: subprocess.Popen, out: Path, timeout: float = 60.0) -> None:
    """Wait until ``proc`` has opened the run directory ``out`` (status "running")."""
    deadline = time.monotonic() + timeout
    while (read_status(out) or {}).get("status") != "running":
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


# -- atomic files and strict JSON ----------------------------------------------------------


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write(path, "old")
    atomic_write(path, b"new bytes")
    assert path.read_bytes() == b"new bytes" and _files(tmp_path) == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() would make it
    with pytest.raises(TypeError, match=r"a\.txt: data must be str or bytes"):
        atomic_write(path, 42)
    assert path.read_bytes() == b"new bytes" and _files(tmp_path) == ["a.txt"]


def test_json_is_strict_nan_and_inf_become_null(tmp_path):
    obj = {"gap": float("nan"), "hi": float("inf"), "xs": (1.0, -np.inf), "n": np.float32(2)}
    text = atomic_write_json(tmp_path / "s.json", obj).read_text()
    assert _strict(text) == {"gap": None, "hi": None, "xs": [1.0, None], "n": 2.0}


# -- refusing a directory, before any compute ------------------------------------------------


def test_a_file_as_out_is_rejected_before_any_compute(tmp_path, monkeypatch, capsys):
    import windalign.bandit.benchmark as benchmark
    import windalign.bandit.config as config
    import windalign.games.preference as preference

    def computed(*args, **kwargs):
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(preference, "random_game", computed)
    monkeypatch.setattr(config, "load_config", computed)
    monkeypatch.setattr(benchmark, "run_benchmark", computed)
    file = tmp_path / "results.txt"
    file.write_text("mine")
    for command in (["solve"], ["bandit", "--quick"]):
        assert main([*command, "--out", str(file)]) == 2
        err = capsys.readouterr().err
        assert err == f"wind {command[0]}: error: --out {file} is a file; give a directory\n"
    assert file.read_text() == "mine"
    with pytest.raises(RunDirError, match="is a file; give a directory"):
        RunDir(file)


def test_a_non_empty_foreign_directory_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(RunDirError) as err, RunDir(tmp_path, **flags):
            pytest.fail("entered a foreign directory")
        assert f"--out {tmp_path} is not empty and is not a windalign run directory" in str(err)
    assert _files(tmp_path) == ["notes.txt"]  # untouched: not even a .lock file


def test_temp_files_of_a_killed_writer_do_not_make_a_directory_foreign(tmp_path):
    (tmp_path / ".lock").write_text("123\n")
    (tmp_path / ".status.json.123.0123abcd.tmp").write_text("{")  # killed mid-write
    with RunDir(tmp_path):
        assert _files(tmp_path) == [".lock", "status.json"]


def test_a_finished_run_is_refused_and_overwrite_clears_it(tmp_path, capsys):
    with RunDir(tmp_path, ["wind", "first"]) as rd:
        rd.write("old.txt", "old")
        rd.write("sub/deep.txt", "old")
    for status in ("complete", "failed"):
        data = read_status(tmp_path) | {"status": status}
        atomic_write_json(tmp_path / "status.json", data)
        with pytest.raises(RunDirError) as err, RunDir(tmp_path):
            pass
        assert str(err.value) == (
            f"--out {tmp_path} already holds a {status} run of `wind first`; pass --overwrite "
            "to replace it or give another --out"
        )
    with RunDir(tmp_path, ["wind", "second"], overwrite=True) as rd:
        assert _files(tmp_path) == [".lock", "status.json"]  # old results gone before compute
        rd.write("new.txt", "new")
    assert _files(tmp_path) == [".lock", "new.txt", "status.json"]
    assert read_status(tmp_path)["command"] == ["wind", "second"]
    # the CLI: the same refusal as a one-line error, and --overwrite
    argv = ["solve", "-K", "4", "-B", "2", "--methods", "newton", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "already holds a complete run of `wind second`" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path), "--overwrite"]) == 0
    assert _files(tmp_path) == [".lock", "gap.png", "status.json", "summary.json"]


def test_resume_keeps_the_contents(tmp_path):
    with RunDir(tmp_path) as rd:
        rd.write("ckpt/step1.txt", "weights")
    with RunDir(tmp_path, resume=True) as rd:
        assert (tmp_path / "ckpt" / "step1.txt").read_text() == "weights"
        assert rd.status["status"] == "running"
    with pytest.raises(RunDirError, match="contradict"):
        RunDir(tmp_path, overwrite=True, resume=True)


# -- the lock --------------------------------------------------------------------------------


def test_a_second_writer_gets_a_clear_error_naming_the_pid(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for flags in ({}, {"overwrite": True}, {"resume": True}):
            with pytest.raises(RunDirError) as err, RunDir(out, **flags):
                pytest.fail("two writers in one run directory")
            assert str(err.value) == (
                f"--out {out} is in use by another wind process (pid {holder.pid}); wait for "
                "it to finish or give another --out"
            )
        assert read_status(out)["status"] == "running"  # the holder's run is left alone
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    assert read_status(out)["status"] == "complete"
    with RunDir(out, overwrite=True):  # released on exit
        pass


# -- the status lifecycle --------------------------------------------------------------------


def test_status_running_then_complete(tmp_path):
    with RunDir(tmp_path / "r", ["wind", "x"]) as rd:
        status = read_status(rd.path)
        assert status == rd.status
        assert status["status"] == "running" and status["ended"] is None
        assert status["error"] is None and status["pid"] == os.getpid()
        assert status["command"] == ["wind", "x"] and status["version"] == __version__
        (rd.staging / "scratch.png").write_bytes(b"png")
    status = read_status(rd.path)
    assert status["status"] == "complete" and status["ended"] >= status["started"]
    assert _files(rd.path) == [".lock", "status.json"]  # the staging area is gone


def test_keyboard_interrupt_gives_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt), RunDir(tmp_path) as rd:
        raise KeyboardInterrupt
    status = read_status(tmp_path)
    assert status["status"] == "interrupted" and "KeyboardInterrupt" in status["error"]
    assert status["ended"] is not None
    with RunDir(tmp_path, overwrite=True):  # the lock was released
        assert rd.status["status"] == "interrupted"


def test_an_exception_gives_failed_with_a_one_line_error(tmp_path):
    with pytest.raises(ZeroDivisionError), RunDir(tmp_path):
        raise ZeroDivisionError("bad\n  divisor")
    status = read_status(tmp_path)
    assert status["status"] == "failed" and status["error"] == "ZeroDivisionError: bad divisor"


def test_cli_ctrl_c_in_process_gives_130_and_one_line(tmp_path, monkeypatch, capsys):
    import windalign.plotting as plotting

    def interrupted(*args, **kwargs):  # Ctrl-C while the figure is drawn, after the solves
        raise KeyboardInterrupt

    monkeypatch.setattr(plotting, "line_plot", interrupted)
    argv = ["solve", "-K", "4", "-B", "2", "--methods", "newton", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "wind solve: interrupted\n"
    assert read_status(tmp_path)["status"] == "interrupted"
    assert _files(tmp_path) == [".lock", "status.json"]


# -- commits ---------------------------------------------------------------------------------


def test_commit_writes_the_set_in_order_with_staged_files(tmp_path, monkeypatch):
    import windalign.rundir as rundir

    order = []
    replace = os.replace

    def recording(src, dst):
        order.append(Path(dst).name)
        replace(src, dst)

    with RunDir(tmp_path) as rd:
        (rd.staging / "fig.png").write_bytes(b"png")
        monkeypatch.setattr(rundir.os, "replace", recording)
        paths = rd.commit({"curves.csv": "a,b\n", "fig.png": rd.staging / "fig.png",
                           "config.yaml": b"beta: 0.1\n"})  # fmt: skip
        assert paths == [tmp_path / n for n in ("curves.csv", "fig.png", "config.yaml")]
        assert order == ["curves.csv", "fig.png", "config.yaml"]
        assert read_status(tmp_path)["status"] == "running"  # complete only at the block's end
    assert (tmp_path / "fig.png").read_bytes() == b"png"
    assert read_status(tmp_path)["status"] == "complete"


def test_commit_failures_never_leave_a_config_without_its_results(tmp_path, monkeypatch):
    import windalign.rundir as rundir

    with RunDir(tmp_path / "a") as rd:  # a bad file: nothing becomes visible, no temp is left
        with pytest.raises(TypeError):
            rd.commit({"curves.csv": "a,b\n", "summary.md": None, "config.yaml": "x: 1\n"})
        assert _files(rd.path) == [".lock", "status.json"]
    replace = os.replace

    def crash_on_config(src, dst):
        if Path(dst).name == "config.yaml":
            raise OSError(28, "No space left on device")
        replace(src, dst)

    with pytest.raises(OSError), RunDir(tmp_path / "b") as rd:
        monkeypatch.setattr(rundir.os, "replace", crash_on_config)
        rd.commit({"curves.csv": "a,b\n", "config.yaml": "x: 1\n"})
    monkeypatch.undo()
    status = read_status(rd.path)
    assert status["status"] == "failed" and "No space left" in status["error"]
    assert not (rd.path / "config.yaml").exists()


def test_names_must_stay_inside_the_run_directory(tmp_path):
    with RunDir(tmp_path / "r") as rd:
        for name in ("../x", "/tmp/x", "status.json", ".lock", ".staging/x", ""):
            with pytest.raises(ValueError, match="cannot write"):
                rd.write(name, "x")
        with pytest.raises(ValueError, match="is not a file under"):
            rd.commit({"x.png": tmp_path / "elsewhere.png"})
        assert rd.write_json("m/s.json", {"x": float("nan")}).read_text() == '{\n  "x": null\n}\n'
    with pytest.raises(RuntimeError, match="is not open"):
        rd.write("late.txt", "x")


# -- the real command under signals and concurrency -------------------------------------------


def test_sigkill_during_a_bandit_run_leaves_running_and_no_config(tmp_path):
    out = tmp_path / "run"
    proc = _wind(*LONGER, "--out", str(out))
    _wait_running(proc, out)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert read_status(out)["status"] == "running"
    assert not (out / "config.yaml").exists()
    assert not {"curves.csv", "summary.md"} & set(_files(out))
    done = subprocess.run([str(WIND), *QUICK, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "already holds an unfinished run (status 'running', its process is gone)" in done.stderr


def test_ctrl_c_ends_a_bandit_run_with_130_and_one_line(tmp_path):
    out = tmp_path / "run"
    proc = _wind(*LONGER, "--out", str(out))
    _wait_running(proc, out)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr == "wind bandit: interrupted\n"
    status = read_status(out)
    assert status["status"] == "interrupted" and status["command"][:2] == ["wind", "bandit"]
    assert _files(out) == [".lock", "status.json"]


def test_two_concurrent_bandit_runs_one_wins_the_other_gets_the_lock_error(tmp_path):
    out = tmp_path / "same"
    procs = [_wind(*QUICK, "--out", str(out)) for _ in range(2)]
    results = [(p, *p.communicate(timeout=120)) for p in procs]
    won = [r for r in results if r[0].returncode == 0]
    lost = [r for r in results if r[0].returncode != 0]
    assert len(won) == 1 and len(lost) == 1, [r[2] for r in results]
    winner, (loser, _, err) = won[0][0], lost[0]
    assert loser.returncode == 2
    assert err == (
        f"wind bandit: error: --out {out} is in use by another wind process (pid {winner.pid}); "
        "wait for it to finish or give another --out\n"
    )
    status = read_status(out)
    assert status["status"] == "complete" and status["pid"] == winner.pid
    for name in ("config.yaml", "curves.csv", "tuning.csv", "summary.md", "wall_time.png"):
        assert (out / name).stat().st_size > 0, name
