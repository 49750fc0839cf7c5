"""LakeResult: what ``%%lake`` and ``lakebook.query`` return.

Arrow-backed; renders as a table with a footer naming the row count, time, engine and,
for each catalog table the query read, how fresh it is. The table is drawn from Arrow
directly (pandas is imported only for ``.df()``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

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

    def _more_rows(self) -> int:
        return max(0, self.table.num_rows - self.display_limit)

    def _repr_html_(self) -> str:
        shown = _html_table(self.table.slice(0, self.display_limit), max_columns=50)
        more = self._more_rows()
        note = f"<div>… {more:,} more rows (use -o NAME to keep them all)</div>" if more else ""
        lines = "".join(f"<div>{html.escape(line)}</div>" for line in [self.summary(), *self.freshness()])
        return f"{shown}{note}<div class='lakebook-footer' style='color:#666;font-size:90%'>{lines}</div>"

    def __repr__(self) -> str:
        text = _text_table(self.table.slice(0, self.display_limit), max_columns=20)
        if self._more_rows():
            text += f"\n… {self._more_rows():,} more rows"
        return "\n".join([text, self.summary(), *self.freshness()])


_CELL_WIDTH = 50


def _cells(table: pa.Table, max_columns: int) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, rows of display strings and which columns are numbers (right-aligned), the
    columns after ``max_columns`` folded into one "…"."""
    names, columns = table.column_names[:max_columns], table.columns[:max_columns]
    numeric = [pa.types.is_integer(c.type) or pa.types.is_floating(c.type) or pa.types.is_decimal(c.type)
               for c in columns]
    rows = [list(row) for row in zip(*[[_cell(v) for v in c.to_pylist()] for c in columns])]
    if table.num_columns > max_columns:
        names, numeric = [*names, "…"], [*numeric, False]
        rows = [[*row, "…"] for row in rows]
    return names, rows, numeric


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        text = f"{value:.6f}".rstrip("0").rstrip(".") if value == 0 or 1e-4 <= abs(value) < 1e15 else f"{value:.6g}"
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    return text if len(text) <= _CELL_WIDTH else text[:_CELL_WIDTH - 1] + "…"


def _text_table(table: pa.Table, max_columns: int) -> str:
    if not table.num_columns:
        return "(no columns)"
    names, rows, numeric = _cells(table, max_columns)
    widths = [max(len(cell) for cell in column) for column in zip(names, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(names), *(line(row) for row in rows)])


def _html_table(table: pa.Table, max_columns: int) -> str:
    names, rows, numeric = _cells(table, max_columns)
    align = [" style='text-align:right'" if n else "" for n in numeric]
    head = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    body = "".join("<tr>" + "".join(f"<td{a}>{html.escape(c)}</td>" for c, a in zip(row, align)) + "</tr>"
                   for row in rows)
    return f"<table class='lakebook-result'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
