"""The package's shape, read from its source: no import cycles (function-level imports
included), stages import only what is left of them in the data flow, nothing imports the
front doors, every LakebookError lives in errors.py, only config.py reads the environment,
and each subpackage's ``__init__`` exports exactly its public API."""

from __future__ import annotations

import ast
import graphlib
import importlib
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "platform"
PACKAGE = SOURCE / "lakebook"

# Left to right in the data flow; a module may import its own layer and those before it.
LAYERS = [
    {"errors", "names", "_proc", "redact"},
    {"config", "backends", "asgi", "run_io", "metrics"},
    {"contracts", "lake"},
    {"workspace"},
    {"catalog", "alerts"},
    {"ingest"},
    {"imports"},  # pull from HTTP APIs into the ingest log
    {"query", "transform"},
    {"features"},
    {"stream"},
    {"ml"},
    {"serving"},
    {"jobs"},
    {"dashboards"},  # serves notebooks; its snapshots run as jobs do and are a job's publish step
    {"monitor"},  # watches every stage before it: checks, alert state and routing, impact
    {"services", "sample_data"},
    {"up", "demo", "demo_imports", "scaffold", "doctor"},  # front doors below this line: nothing in the layers above imports them
    {"magics", "server", "cli", "__main__", ""},
]
FRONT_DOORS = {"magics", "server", "cli", "__main__"}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "labextension" in path.parts:
            continue
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every lakebook module ``module`` imports, at its top or inside a function."""
    path, is_package = MODULES[module]
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            if target and target.split(".")[0] == "lakebook":
                found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
    return found - {module}


GRAPH = {module: _imports(module) for module in MODULES}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(stage: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if stage in layer)


def test_every_module_has_a_layer():
    assert {_stage(m) for m in MODULES} <= set().union(*LAYERS)


def test_the_import_graph_has_no_cycles():
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_left_in_the_data_flow(module):
    stage = _stage(module)
    wrong = sorted(t for t in GRAPH[module]
                   if _stage(t) != stage and _layer(_stage(t)) > _layer(stage))
    assert not wrong, f"{module} imports {wrong}, which come later in the data flow"
    if stage not in ("", "__main__"):
        assert not [t for t in GRAPH[module] if _stage(t) in FRONT_DOORS and _stage(t) != stage]


def test_every_lakebook_error_is_defined_in_errors_py():
    errors = importlib.import_module("lakebook.errors")
    names = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.LakebookError)}
    for module, (path, _) in MODULES.items():
        if module == "lakebook.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not bases & names, f"{module} defines {node.name}, a LakebookError: it belongs in errors.py"


def test_only_config_reads_the_environment():
    for module, (path, _) in MODULES.items():
        if module == "lakebook.config":
            continue
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, f"{module} reads the environment"


def test_state_paths_are_named_by_the_workspace():
    for module, (path, _) in MODULES.items():
        if module == "lakebook.workspace":
            continue
        assert "state_dir /" not in path.read_text(), f"{module} builds a path under the state dir itself"


@pytest.mark.parametrize("package", sorted(m for m, (_, is_package) in MODULES.items() if is_package and m != "lakebook"))
def test_each_subpackage_exports_its_public_api(package):
    loaded = importlib.import_module(package)
    exported = getattr(loaded, "__all__", None)
    assert exported is not None, f"{package} has no __all__"
    assert len(exported) == len(set(exported)) and not [n for n in exported if n.startswith("_")]
    for name in exported:
        assert getattr(loaded, name, None) is not None, f"{package}.__all__ names {name}, which it does not have"
    defined = {n for n in vars(loaded) if not n.startswith("_") and n not in {"annotations"}
               and not isinstance(getattr(loaded, n), type(loaded))}
    assert defined <= set(exported), f"{package} has public names not in __all__: {sorted(defined - set(exported))}"
