"""What a %%lake statement is, read through DuckDB's own parser and tokenizer: whether it may
run, whether it can change catalog entries, and which catalog names it spells.

A statement may run when its type (DuckDB's parse) is one a read-only session needs; SET and
PRAGMA only as ``SET VARIABLE`` and the PRAGMAs that describe; EXPLAIN and PREPARE are judged
by the statement they wrap. Names are read from tokens, so comments, quotes, case and a
database prefix (``memory.raw.flights``) spell the same name.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from ..errors import ReadOnlyViolation
from ..lake import ZONES

# Statement types a cell may hold (SET and PRAGMA only in the forms _check_setting lets by).
_ALLOWED = {"SELECT", "EXPLAIN", "PREPARE", "EXECUTE", "CREATE", "DROP", "ALTER", "INSERT", "UPDATE", "DELETE",
            "MERGE_INTO", "MULTI", "SET", "PRAGMA"}
# Those that can create, replace or drop catalog entries: they run under the zone check.
_CHANGE_ENTRIES = {"CREATE", "DROP", "ALTER", "MULTI", "EXECUTE"}
_DESCRIBING_PRAGMAS = {"table_info", "show", "show_tables", "show_tables_expanded", "show_databases",
                       "database_list", "database_size", "storage_info", "version", "platform", "functions",
                       "collations", "user_agent"}
READ_ONLY_HINT = "query with SELECT; keep results with -o NAME or CREATE TEMP TABLE"
SETTINGS_HINT = ("the engine's settings come from lakebook.yaml (query.engine); "
                 "SET VARIABLE name = value and getvariable('name') are allowed")


class Token(NamedTuple):
    start: int
    text: str  # as written; keywords lower-cased
    kind: str  # identifier, keyword, operator, string_const, numeric_const


def tokens(sql: str) -> list[Token]:
    """DuckDB's tokens of ``sql``, comments left out."""
    import duckdb

    marks = duckdb.tokenize(sql)
    ends = [start for start, _ in marks[1:]] + [len(sql)]
    found = []
    for (start, kind), end in zip(marks, ends):
        if kind.name != "comment":
            text = sql[start:end].strip()
            found.append(Token(start, text.lower() if kind.name == "keyword" else text, kind.name))
    return found


def check_statement(statement, parse: Callable[[str], list]) -> bool:
    """Raise ReadOnlyViolation unless ``statement`` may run; True when it can change catalog entries."""
    try:
        kind = statement.type.name
    except ValueError:  # a statement type the duckdb module has no name for (UPDATE EXTENSIONS)
        kind = "this"
    if kind not in _ALLOWED:
        raise ReadOnlyViolation(f"{kind} statements are not allowed in %%lake: the lake is read-only here",
                                hint=READ_ONLY_HINT)
    if kind in ("SET", "PRAGMA"):
        _check_setting(kind, tokens(statement.query))
        return False
    if kind in ("EXPLAIN", "PREPARE"):
        return any([check_statement(inner, parse) for inner in parse(_wrapped(statement.query, kind))])
    return kind in _CHANGE_ENTRIES


def _check_setting(kind: str, parts: list[Token]) -> None:
    words = [t.text.lower() for t in parts[:2]]
    if kind == "SET":
        if words[:1] in (["set"], ["reset"]) and words[1:] == ["variable"]:
            return
        raise ReadOnlyViolation("settings cannot be changed in %%lake (SET, RESET, USE)", hint=SETTINGS_HINT)
    if words[:1] == ["pragma"] and len(words) > 1 and _unquoted(parts[1].text).lower() in _DESCRIBING_PRAGMAS:
        return
    shown = " ".join(t.text.upper() for t in parts[:2])
    raise ReadOnlyViolation(f"{shown} is not allowed in %%lake: only PRAGMAs that describe run here",
                            hint="e.g. PRAGMA table_info('raw.flights'), PRAGMA show_tables")


def _wrapped(sql: str, kind: str) -> str:
    """The statement an EXPLAIN [ANALYZE] [(options)] or a PREPARE name [(types)] AS wraps."""
    parts = tokens(sql)
    if kind == "EXPLAIN":
        i = 2 if len(parts) > 1 and parts[1].text in ("analyze", "analyse") else 1
        if i < len(parts) and parts[i].text == "(":
            i = _after_parentheses(parts, i)
    else:
        i = next((j + 1 for j, t in enumerate(parts) if t.text == "as"), len(parts))
    return sql[parts[i].start:] if i < len(parts) else ""


def _after_parentheses(parts: list[Token], i: int) -> int:
    depth = 0
    for j in range(i, len(parts)):
        depth += parts[j].text.count("(") - parts[j].text.count(")") if parts[j].kind == "operator" else 0
        if depth == 0:
            return j + 1
    return len(parts)


class Named(NamedTuple):
    tables: list[str]  # written as identifiers: raw.flights, "raw"."flights", memory.raw.flights
    quoted: list[str]  # written as a whole string literal: PRAGMA table_info('raw.flights')
    unknown: list[str]  # zone.name pairs the catalog does not hold


def spelled_names(parts: list[Token], known: dict[str, str]) -> Named:
    """The catalog names (as ``known`` maps lower-cased names to them) a statement spells."""
    named = Named([], [], [])
    for i, token in enumerate(parts):
        if token.kind == "string_const":
            name = known.get(token.text[1:-1].replace("''", "'").strip().lower())
            if name:
                named.quoted.append(name)
        elif token.text == "." and 0 < i < len(parts) - 1 and _is_name(parts[i - 1]) and _is_name(parts[i + 1]):
            zone, table = _unquoted(parts[i - 1].text).lower(), _unquoted(parts[i + 1].text).lower()
            name = known.get(f"{zone}.{table}")
            if name:
                named.tables.append(name)
            elif zone in ZONES:
                named.unknown.append(f"{zone}.{table}")
    return named


def _is_name(token: Token) -> bool:
    return token.kind in ("identifier", "keyword")


def _unquoted(identifier: str) -> str:
    if len(identifier) > 1 and identifier[0] == identifier[-1] == '"':
        return identifier[1:-1].replace('""', '"')
    return identifier


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
