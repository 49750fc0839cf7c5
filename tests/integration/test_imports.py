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


def test_a_first_query_loads_neither_sqlalchemy_nor_pandas_nor_the_contracts(workspace_dir):
    from events import flight, log_events
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.workspace import Workspace

    workspace = Workspace.load(workspace_dir, environ={})
    log_events(workspace, "flights", [flight(i) for i in range(20)])
    flush_ingest_log_to_raw(workspace)
    code = (f"import sys; from lakebook.query import query; "
            f"print(query('SELECT count(*) AS n FROM raw.flights', {str(workspace_dir)!r}).arrow().to_pylist()); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'pandas') "
            f"or m.startswith('lakebook.contracts') or m == 'pyarrow.compute'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[{'n': 20}]", "[]"]
