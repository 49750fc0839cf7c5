"""A small dashboard notebook for the dashboard tests: a text output, an Altair chart and an
ipywidgets dropdown whose choice is echoed in an Output widget."""

from __future__ import annotations

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
