"""``%lake`` and ``%%lake``: SQL over the lake catalog from a notebook."""

from __future__ import annotations

from collections import ChainMap

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope
from traitlets import Bool, Integer

from ..errors import LakebookError
from .parse import parse


@magics_class
class LakeMagics(Magics):
    """Options are traitlets: ``%config LakeMagics.display_limit = 50``."""

    display_limit = Integer(None, allow_none=True, config=True, help="rows shown in a result table")
    autopandas = Bool(False, config=True, help="return pandas DataFrames instead of LakeResult")

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._workspaces: dict = {}

    def _workspace(self, path: str | None):
        from ..workspace import Workspace

        key = path or ""
        if key not in self._workspaces:
            self._workspaces[key] = Workspace.load(path)
        return self._workspaces[key]

    @needs_local_scope
    @line_cell_magic
    def lake(self, line: str, cell: str | None = None, local_ns=None):
        """Run SQL over the lake.

        %%lake [-o NAME] [--limit N] [--engine E] [-w DIR]   then SQL in the cell
        %lake NAME << SELECT ...      store the result as a DataFrame in NAME
        %lake tables                  list the catalog's tables
        %lake schema raw.flights      columns, types and docs of one table
        %lake lineage warehouse.flights_clean   upstream tables and the jobs that made it
        :name in SQL is bound to the notebook variable ``name``.
        """
        command = parse(line, cell)
        try:
            ws = self._workspace(command.options.workspace)
            if command.subcommand:
                return self._subcommand(ws, command)
            from ..query import session_for

            namespace = ChainMap(local_ns or {}, self.shell.user_ns)  # looked up, never copied
            result = session_for(ws, command.options.engine).query(command.sql, namespace, command.options.limit)
        except LakebookError as exc:
            raise UsageError(str(exc)) from None
        if self.display_limit:
            result.display_limit = self.display_limit
        if command.options.out:
            self.shell.user_ns[command.options.out] = result if command.options.result else result.df()
        return result.df() if self.autopandas else result

    def _subcommand(self, ws, command):
        from ..catalog import lineage_lines, open_catalog
        from .subcommands import schema, tables

        catalog = open_catalog(ws)
        if command.subcommand == "tables":
            return tables(catalog)
        if not command.argument:
            raise UsageError(f"%lake {command.subcommand} TABLE: name a table, e.g. %lake {command.subcommand} raw.flights")
        if command.subcommand == "lineage":
            print("\n".join(lineage_lines(catalog, command.argument)))
            return None
        return schema(catalog, command.argument)
