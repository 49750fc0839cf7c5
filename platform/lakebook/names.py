"""The names users give things (sources, fields, transforms, and the jobs, endpoints and
dashboards to come): lower-case identifiers that are safe as SQL names, file names and URL
parts alike."""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
IDENTIFIER_RULE = "lower case letters, digits and _, starting with a letter, at most 63 characters"


def is_identifier(name: str) -> bool:
    return bool(IDENTIFIER.match(name))

# DuckDB keywords that cannot stand bare as a column name (duckdb_keywords(): categories
# 'reserved' and 'type_function'), checked against DuckDB by tests/unit/test_names.py. A field
# of such a name works quoted: "at" (DuckDB), `at` (Spark SQL).
SQL_KEYWORDS = frozenset("""
all analyse analyze and anti any array as asc asof asymmetric at authorization binary both by case
cast check collate collation column columns concurrently constraint create cross default deferrable
desc describe distinct do else end except false fetch for foreign freeze from full generated glob
group having ilike in initially inner intersect into is isnull join lambda lateral leading left like
limit map natural not notnull null offset on only or order outer overlaps pivot pivot_longer
pivot_wider placing positional primary qualify references returning right select semi show similar
some struct summarize symmetric table tablesample then to trailing true try_cast tuple union unique
unpack unpivot using variadic verbose when where window with
""".split())


def needs_quoting(name: str) -> bool:
    """Whether a column of this name must be quoted in SQL ("at", not at)."""
    return name.lower() in SQL_KEYWORDS
