"""What the supervisors' fork server imports once (supervisor.PRELOAD names this module), so
that each run starts without importing; and the process's HTML exporter with one rendering of a
tiny notebook, so that the renderings the runs make do not load and compile nbconvert's templates
again (0.9 s cold against 0.075 s warm for a 20-cell notebook, measured here). The catalog
database's driver modules are imported too: a supervisor opens the job store first thing."""

from ._papermill import import_papermill

import_papermill()

import nbformat  # noqa: E402
import sqlalchemy.dialects.sqlite  # noqa: E402,F401

from . import supervisor  # noqa: E402,F401
from .definitions import load_jobs  # noqa: E402,F401
from .runner import html_exporter  # noqa: E402

html_exporter().from_notebook_node(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
