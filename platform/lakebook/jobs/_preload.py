"""What the supervisors' fork server imports once (supervisor.PRELOAD names this module), so
that each run starts without importing."""

from ._papermill import import_papermill

import_papermill()

import nbconvert  # noqa: E402,F401

from . import supervisor  # noqa: E402,F401
