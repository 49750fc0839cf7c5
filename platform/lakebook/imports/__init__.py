"""Imports: records pulled from HTTP JSON APIs (``imports/*.yaml``) into the ingest log, checked
by their source's contract like any event, with a cursor that moves only past logged pages."""

from .definitions import ImportDefinition, load_import, load_imports
from .run import ImportSummary, run_import
from .state import ImportStore

__all__ = ["ImportDefinition", "ImportStore", "ImportSummary", "import_rows", "load_import", "load_imports",
           "run_import"]


def import_rows(workspace) -> list[dict]:
    """Each import with its source, URL (credentials masked), last run, cursor and records
    taken; files that do not load as rows with their problem."""
    from ..redact import url_without_secrets

    found = load_imports(workspace)
    with ImportStore(workspace) as store:
        states = store.states()
    rows = []
    for name, definition in sorted(found.imports.items()):
        state = states.get(name)
        rows.append({"name": name, "source": definition.source,
                     "url": url_without_secrets(definition.url, definition.secret_params),
                     "last_run": state.last_run_at if state else None, "last_status": state.last_status if state else "",
                     "cursor": state.cursor if state else None, "records": state.records if state else 0,
                     "resumes_at_page": (state.resume or {}).get("request", {}).get("page") if state else None,
                     "problem": None})
    rows += [{"name": name, "source": None, "url": None, "last_run": None, "last_status": "", "cursor": None,
              "records": 0, "resumes_at_page": None, "problem": problem} for name, problem in sorted(found.problems.items())]
    return rows
