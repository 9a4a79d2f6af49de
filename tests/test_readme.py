"""The README opens with the two commands, and CI runs the second (its examples run in tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
CI = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first, second = code_blocks("bash")[:2]
    assert README.index(first) < README.index("##")  # before any section
    assert "upload-emulator serve" in first and "pip install ." in first
    assert "pytest" in second
    assert second.strip() in CI
