"""The lock files are the exact versions `make` and CI install: they must cover pyproject.toml.

A dependency added to (or a range changed in) pyproject.toml without `make lock` fails here, not
on a server that installs from the lock.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", re.M)


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text(encoding="utf-8")
    return {canonicalize_name(n): v for n, v in _PIN.findall(text)}


def _project() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"runtime": project["dependencies"], "dev": project["optional-dependencies"]["dev"]}


def _check(requirements: list[str], pins: dict[str, str], lock: str) -> list[str]:
    problems = []
    for line in requirements:
        requirement = Requirement(line)
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not in {lock}")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{lock} pins {requirement.name}=={version}, outside {line!r}")
    return problems


def test_every_dependency_is_pinned_within_its_range():
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    project = _project()
    problems = _check(project["runtime"], runtime, "requirements.lock")
    problems += _check(project["runtime"] + project["dev"], dev, "requirements-dev.lock")
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_the_development_lock_keeps_the_runtime_versions():
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    differ = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differ, f"run `make lock`: versions differ between the lock files: {differ}"
