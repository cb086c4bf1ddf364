"""deploy/kind/up.sh and down.sh: valid bash, clean under shellcheck, and naming only files
that exist."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO
from tests.deploy.manifests import DEPLOY

SCRIPTS = sorted((DEPLOY / "kind").glob("*.sh"))


def test_the_scripts_are_there_and_executable():
    assert {s.name for s in SCRIPTS} == {"up.sh", "down.sh"}
    for script in SCRIPTS:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_parses_the_script(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_finds_nothing(script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    result = subprocess.run([shellcheck, "--severity=style", str(script)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_up_applies_files_of_this_repository():
    text = (DEPLOY / "kind" / "up.sh").read_text()
    named = re.findall(r'"\$\{(repo|here)\}/([^"]+)"', text)
    assert named
    for base, relative in named:
        path = (REPO if base == "repo" else DEPLOY / "kind") / relative
        assert path.exists(), f"up.sh names {path}, which does not exist"
