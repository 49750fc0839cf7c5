"""A small dashboard notebook for the dashboard tests: a text output, an Altair chart and an
ipywidgets dropdown whose choice is echoed in an Output widget."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import nbformat

MARKER = "delays-dashboard-ready"
CODE = [
    f"print('{MARKER}')",
    "import altair as alt\nimport pandas as pd\nalt.renderers.enable('mimetype')  # Vega-Lite 5, drawn offline\n"
    "frame = pd.DataFrame({'hour': list(range(6)), 'delay': [3, 5, 2, 8, 4, 6]})\n"
    "alt.Chart(frame).mark_bar().encode(x='hour:O', y='delay:Q')",
    "import ipywidgets as widgets\n"
    "from IPython.display import display\n"
    "choice = widgets.Dropdown(options=['JFK', 'LGA', 'EWR'], value='JFK', description='airport')\n"
    "shown = widgets.Output()\n"
    "def show(change=None):\n"
    "    shown.clear_output()\n"
    "    with shown:\n"
    "        print(f'airport is {choice.value}')\n"
    "choice.observe(show, names='value')\n"
    "show()\n"
    "display(choice, shown)",
]


def write_dashboard(root: Path, relative: str = "notebooks/delays.ipynb", code: list[str] | None = None) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Delays")] +
                                        [nbformat.v4.new_code_cell(c) for c in (code or CODE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def expired_share(ws, dashboard: str = "delays", token_id: str = "expired0001") -> str:
    """A share token of ``dashboard`` that expired a minute ago, recorded as any other."""
    from lakebook.dashboards.store import DashboardStore, ShareRow, now_utc
    from lakebook.dashboards.tokens import mint, share_secret

    past = now_utc() - timedelta(minutes=1)
    with DashboardStore(ws) as store:
        store.add_share(ShareRow(id=token_id, dashboard=dashboard, created_at=past - timedelta(hours=1),
                                 created_by="test", expires_at=past, revoked=False))
    return mint(share_secret(ws.share_key_path), token_id, dashboard, past)
