"""The project's own files agree with each other (tests/integration/test_imports.py: importing
lakebook stays light)."""

import re
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = set(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        reqs |= {r for r in items if not r.startswith("lakebook[")}
    return reqs


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert {p for p in pip if p != "-e ."} == pyproject_requirements()
    assert "python=3.11" in env["dependencies"]


def test_every_dependency_is_pinned_in_the_constraints_file():
    pinned = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pinned[re.sub(r"[-_.]+", "-", name.lower())] = version
    assert pinned["torch"] == "2.13.0"  # the CPU build on local disk; others pull CUDA
    for requirement in pyproject_requirements():
        name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name.lower()) in pinned, f"{name} is not pinned in constraints.txt"


def test_all_extra_names_every_stage():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"]) - {"all", "dev"}
    all_extra = project["optional-dependencies"]["all"][0]
    assert set(all_extra[all_extra.index("[") + 1:-1].split(",")) == extras


def test_platform_is_not_a_package():
    assert not (REPO / "platform" / "__init__.py").exists()
    import platform

    assert platform.__file__.startswith(sys.base_prefix)  # the standard library's, not ours


def test_test_files_have_unique_names_across_the_tiers():
    """The tiers are not packages: two test files of one name make pytest refuse to collect."""
    names = [p.name for p in (REPO / "tests").glob("*/test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
