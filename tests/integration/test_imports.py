"""Importing lakebook stays light: checked in fresh interpreters."""

import subprocess
import sys

HEAVY = {"pyarrow", "duckdb", "pandas", "sqlalchemy", "starlette", "uvicorn", "pyspark", "ray", "feast",
         "mlflow", "torch", "IPython", "numpy"}


def test_importing_lakebook_loads_no_heavy_library():
    code = "import sys, lakebook; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not HEAVY & set(eval(loaded))


def test_loading_a_workspace_and_the_cli_load_no_heavy_library(workspace_dir):
    code = (f"import sys; from lakebook.workspace import Workspace; import lakebook.cli; "
            f"Workspace.load({str(workspace_dir)!r}, environ={{}}); print(sorted({{m.split('.')[0] for m in sys.modules}}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not HEAVY & set(eval(loaded))


def test_importing_lakebook_does_not_import_jupyter_server():
    code = ("import sys, lakebook; points = lakebook._jupyter_server_extension_points; "
            "assert 'jupyter_server' not in sys.modules and 'tornado' not in sys.modules; "
            "print(points()[0]['app'].__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "LakebookApp"
