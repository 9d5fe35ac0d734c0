"""Layering (docs/architecture.md): each layer imports only the layers above it."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("windalign.games", "torch"),
        ("windalign.cli", "torch"),
        ("windalign.registry", "numpy"),
        ("windalign.config", "numpy"),
        ("windalign.resources", "numpy"),
        ("windalign.cli.options", "numpy"),
        ("windalign.objectives", "transformers"),
        ("windalign.preferences", "transformers"),
        ("windalign.llm", "transformers"),  # lazy: only a used name imports the trainer
        ("windalign.llm.data", "torch"),
    ],
)
def test_module_does_not_import(module: str, forbidden: str) -> None:
    code = f"import sys, {module}; bad = {forbidden!r} in sys.modules; sys.exit(3 if bad else 0)"
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == 0, f"importing {module} pulled in {forbidden}"


def test_wind_solve_runs_without_torch(tmp_path) -> None:
    """`wind solve` end to end in a process where importing torch fails."""
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from windalign.cli import main\n"
        f"sys.exit(main(['solve', '--size', '5', '--contexts', '2', '--max-iter', '50',"
        " '--allow-unconverged',"
        f" '--no-progress', '--out', {str(tmp_path)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "gap.png").is_file()
