"""LakeResult: what ``%%lake`` and ``lakebook.query`` return.

Arrow-backed; renders as a table with a footer naming the row count, time, engine and,
for each catalog table the query read, how fresh it is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from ..catalog import TableInfo
from ..errors import MissingDependency


def humanize_age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "never"
    seconds = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _fmt_time(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "no events yet"


@dataclass
class LakeResult:
    table: pa.Table
    sql: str
    elapsed_ms: float
    engine: str
    sources: list[TableInfo] = field(default_factory=list)
    display_limit: int = 20

    def arrow(self) -> pa.Table:
        return self.table

    def df(self):
        """A pandas DataFrame."""
        return self.table.to_pandas()

    def pl(self):
        """A polars DataFrame."""
        try:
            import polars
        except ImportError:
            raise MissingDependency("polars", "notebook") from None
        return polars.from_arrow(self.table)

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    def freshness(self) -> list[str]:
        """One line per source table: last event time and when data last arrived."""
        return [
            f"{t.qualified_name}: last event {_fmt_time(t.last_event_time)}, "
            f"{'ingested' if t.kind in ('source', 'quarantine') else 'updated'} {humanize_age(t.last_ingest_time)}"
            for t in self.sources
        ]

    def summary(self) -> str:
        rows = self.table.num_rows
        return f"{rows:,} row{'s' if rows != 1 else ''} · {self.elapsed_ms:.1f} ms · {self.engine}"

    def footer(self) -> str:
        return " · ".join([self.summary(), *self.freshness()])

    def _head(self):
        return self.table.slice(0, self.display_limit).to_pandas()

    def _more_rows(self) -> int:
        return max(0, self.table.num_rows - self.display_limit)

    def _repr_html_(self) -> str:
        shown = self._head().to_html(index=False, border=0, classes="lakebook-result", max_cols=50)
        more = self._more_rows()
        note = f"<div>… {more:,} more rows (use -o NAME to keep them all)</div>" if more else ""
        lines = "".join(f"<div>{html.escape(line)}</div>" for line in [self.summary(), *self.freshness()])
        return f"{shown}{note}<div class='lakebook-footer' style='color:#666;font-size:90%'>{lines}</div>"

    def __repr__(self) -> str:
        text = self._head().to_string(index=False, max_cols=20) if self.table.num_columns else "(no columns)"
        if self._more_rows():
            text += f"\n… {self._more_rows():,} more rows"
        return "\n".join([text, self.summary(), *self.freshness()])
