"""``%lake tables`` and ``%lake schema T``: catalog listings as DataFrames."""

from __future__ import annotations

import pandas as pd

from ..query.result import humanize_age


def tables(catalog) -> pd.DataFrame:
    return pd.DataFrame(
        [{"table": t.qualified_name, "rows": t.row_count, "last event": t.last_event_time,
          "ingested": humanize_age(t.last_ingest_time), "owner": t.owner, "description": t.description}
         for t in catalog.tables()],
        columns=["table", "rows", "last event", "ingested", "owner", "description"],
    )


def schema(catalog, name: str) -> pd.DataFrame:
    table = catalog.table(name)
    return pd.DataFrame(
        [{"column": c.name, "type": c.type, "nullable": c.nullable, "pii": c.pii, "description": c.description}
         for c in table.columns],
        columns=["column", "type", "nullable", "pii", "description"],
    )


def lineage_lines(catalog, name: str) -> list[str]:
    """Upstream of a table as indented lines: table <- upstream (job) [columns]."""
    catalog.table(name)  # unknown names fail with a suggestion
    edges = catalog.lineage(name)
    if not edges:
        return [f"{name}: no upstream tables (a source, a seed, or not built yet)"]
    lines = [name]
    for e in edges:
        cols = ", ".join(f"{out} <- {'/'.join(src)}" for out, src in sorted(e["columns"].items()))
        lines.append(f"{'  ' * e['depth']}<- {e['upstream']}  (by {e['job']})" + (f"  [{cols}]" if cols else ""))
    return lines
