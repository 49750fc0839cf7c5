"""``%lake tables`` and ``%lake schema T``: catalog listings as DataFrames (``%lake lineage T``
prints catalog.lineage_lines)."""

from __future__ import annotations

import pandas as pd

from ..query import humanize_age


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

