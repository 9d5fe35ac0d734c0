"""Every ``wind`` command line in the README and the docs parses as written, and a ``wind train``
line that names a config file of this checkout also validates (no model loads).

Lines of fenced code blocks, and the README's inline code spans that start with ``wind`` and
hold no placeholder (an upper-case word such as ``N`` or ``PRESET``, ``a|b`` choices, ``...``);
the docs' inline spans quote fragments (``--dtype float16``), not commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from windalign.cli import build_parser, dashed

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _placeholder(line: str) -> bool:
    return "|" in line or "..." in line or any(w.isupper() for w in re.findall(r"\w+", line))


def documented_commands() -> list[tuple[str, str]]:
    """``(page, command line)`` of every documented ``wind ...`` line (see the module doc)."""
    found = []
    for page in PAGES:
        text, name = page.read_text(), str(page.relative_to(ROOT))
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            block = re.sub(r"\\\n\s*", " ", block)  # continued lines
            for line in block.splitlines():
                line = re.sub(r"\s+#.*$", "", line.strip().removeprefix("$ "))
                if line.startswith("wind "):
                    found.append((name, line))
        prose = re.sub(r"```.*?```", "", text, flags=re.S) if page.name == "README.md" else ""
        for span in re.findall(r"`(wind [^`]+)`", prose):
            line = " ".join(span.split())
            if " --" in line and not _placeholder(line):
                found.append((name, line))
    return sorted(set(found))


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    kinds = {line.split()[1] for _, line in COMMANDS}
    assert len(COMMANDS) >= 10 and {"train", "evaluate", "bandit"} <= kinds, COMMANDS


@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[line for _, line in COMMANDS])
def test_documented_command_parses(page, line, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = shlex.split(line)[1:]
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(dashed(argv))
    except SystemExit as exit:
        pytest.fail(f"{page}: `{line}` does not parse (exit {exit.code})")
    assert not extra or getattr(args, "accepts_extra", False), f"{page}: `{line}`: {extra}"
    if args.command != "train":
        return
    from windalign.cli.train import _read_yaml, objective_view, parse_overrides, split_config

    typed = parse_overrides(extra)
    if args.config and Path(args.config).is_file():
        raw, _ = objective_view(_read_yaml(args.config), typed, args.config)
        split_config(raw)  # validates every key, loads nothing
