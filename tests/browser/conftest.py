"""Browser tests reuse the integration helpers (make_workspace, the `lakebook up` output reader)
and the session's workspace templates (built at most once for this directory)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from workspace_templates import model_template, spark_template, year_template  # noqa: E402,F401
