"""The manual works as written: the MkDocs site builds with ``--strict``, and the examples of README.md and of every
page under docs/ run: Python blocks as pytest files (against the pytest plugin), curl blocks against a live
emulator, YAML blocks parse, and every setting they name exists."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from emulator.providers import PROVIDERS
from emulator.settings import ENV_PREFIX, Settings
from emulator.testing import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", flags=re.S | re.M)
TEST = re.compile(r"^(?:async )?def test_", flags=re.M)
# variables the docs name that are not settings of `serve`, each with where it is read
NOT_SETTINGS = {
    "UPLOAD_EMULATOR_CLIENTS_CACHE",  # tests/test_official_clients.py: where npm installs the clients
    # emulator/chaos/runner.py: what `upload-emulator chaos` hands the uploader it runs (set, not read, by it)
    "UPLOAD_EMULATOR_BASE_URL",
    "UPLOAD_EMULATOR_API_KEY",
    "UPLOAD_EMULATOR_FILE",
    "UPLOAD_EMULATOR_CONTENT_TYPE",
}


def blocks(language: str) -> list[tuple[Path, str]]:
    return [(page, body) for page in PAGES for lang, body in FENCE.findall(page.read_text()) if lang == language]


def test_the_site_builds_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "providers" / "segmentflow" / "index.html").is_file()


def test_every_page_is_in_the_nav_and_every_provider_has_one() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES[1:]:
        assert f" {page.relative_to(ROOT / 'docs').as_posix()}\n" in config, f"{page} is not in mkdocs.yml's nav"
    for name, provider in PROVIDERS.items():
        assert (ROOT / "docs" / "providers" / f"{name}.md").is_file(), f"no page for {name}"
        readme = PAGES[0].read_text()
        assert provider.keys.example in readme and provider.real_base_url in readme, f"{name} missing in README"


def test_every_magic_key_is_documented() -> None:
    control_plane = (ROOT / "docs" / "control-plane.md").read_text()
    for name, provider in PROVIDERS.items():
        page = (ROOT / "docs" / "providers" / f"{name}.md").read_text()
        missing = [key for key in provider.keys.magic if key not in control_plane + page]
        assert missing == [], f"{name}: magic keys missing from docs/control-plane.md and its page"


def test_python_examples_pass(pytester: pytest.Pytester) -> None:
    examples = blocks("python")
    assert len(examples) >= 3
    files = {}
    for number, (page, body) in enumerate(examples):
        assert TEST.search(body), f"a Python example of {page.name} is not a test, so nothing runs it"
        files[f"test_example_{number}_{page.stem.replace('-', '_')}"] = body
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=sum(len(TEST.findall(body)) for _, body in examples))


def test_curl_examples_answer_without_error() -> None:
    scripts = [body for _, body in blocks("bash") if body.lstrip().startswith("curl ")]
    assert scripts
    served = serve_in_thread()
    try:
        for script in scripts:
            prelude = 'set -euo pipefail\ncurl() { command curl --silent --show-error --fail-with-body "$@"; echo; }\n'
            done = subprocess.run(
                ["bash", "-c", prelude + script.replace("http://127.0.0.1:8080", served.url)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    finally:
        served.stop()


def test_yaml_examples_parse() -> None:
    examples = blocks("yaml")
    assert examples
    for page, body in examples:
        assert isinstance(yaml.safe_load(body), dict), f"a YAML example of {page.name} is not a mapping"


def test_every_variable_and_flag_named_is_a_setting() -> None:
    # an `internal` field is settable in code only (neither flag nor variable), so it is no setting to document
    public = [f for f in fields(Settings) if not f.metadata.get("internal")]
    settings = {ENV_PREFIX + f.name.upper() for f in public}
    for page in PAGES:
        named = set(re.findall(rf"\b{ENV_PREFIX}[A-Z_]+\b", page.read_text())) - NOT_SETTINGS
        assert named <= settings, f"{page.name} names {sorted(named - settings)}"
    table = (ROOT / "docs" / "settings.md").read_text()
    for f in public:
        assert f"`{ENV_PREFIX}{f.name.upper()}`" in table, f"docs/settings.md does not list {f.name}"


def test_docker_recipes_name_the_image_the_repository_builds() -> None:
    ci = (ROOT / "docs" / "ci.md").read_text()
    for command in re.findall(r"docker build [^\n\"]*", ci):
        dockerfile = shlex.split(command)[shlex.split(command).index("-f") + 1]
        assert (ROOT / dockerfile).is_file(), command


def test_every_command_line_shown_parses() -> None:
    """Each ``upload-emulator ...`` line of a bash block is accepted by that command's own parser."""
    from emulator.main import COMMANDS

    lines = [
        line.split("  #")[0].split(" &")[0].strip().removeprefix(".venv/bin/")
        for _, body in blocks("bash")
        for line in body.splitlines()
    ]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("upload-emulator ")]
    assert len(commands) >= 8
    for argv in commands:
        module = importlib.import_module(COMMANDS[argv[0]])
        module.parser().parse_args(argv[1:])  # argparse exits (2) on a flag or value it does not know
