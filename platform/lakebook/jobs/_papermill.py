"""Papermill without a slow optional import.

jsonschema (through nbformat) imports the optional ``rfc3987_syntax`` when it is installed,
and that builds a grammar at import: about 3 s of a 4 s import of Papermill (measured here:
3.7-4.2 s with it, 1.0 s without), paid by every ``lakebook jobs`` process and every start of
the scheduler. It checks only the ``iri`` formats, which the notebook schema does not use, so
lakebook's job processes import jsonschema without it."""

from __future__ import annotations

import sys


def import_papermill():
    """``papermill``, with nbformat's jsonschema imported without ``rfc3987_syntax``."""
    sys.modules.setdefault("rfc3987_syntax", None)  # None: `import rfc3987_syntax` raises ImportError
    import papermill

    return papermill
