"""The README's examples work as written: its first two commands, and its copy-paste pytest example."""

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


def test_readme_pytest_example_passes(pytester):
    (example,) = [block for block in code_blocks("python") if "emulator_control" in block]
    pytester.makepyfile(test_readme_example=example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
