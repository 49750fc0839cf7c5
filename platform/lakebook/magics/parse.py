"""Parse a ``%lake`` / ``%%lake`` line: options first, then ``NAME <<`` or a subcommand or SQL."""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass

from IPython.core.error import UsageError

SUBCOMMANDS = ("tables", "schema", "lineage")
_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*<<\s*(.*)$", re.DOTALL)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"%lake: {message} (see %lake?)")


_options = _Parser(prog="%lake", add_help=False)
_options.add_argument("-o", "--out", help="store the result as a pandas DataFrame in this variable")
_options.add_argument("-l", "--limit", type=int, help="return at most this many rows")
_options.add_argument("-e", "--engine", help="query engine (default: query.engine)")
_options.add_argument("-w", "--workspace", help="workspace folder (default: found from the current folder)")
_options.add_argument("-r", "--result", action="store_true", help="store the LakeResult, not a DataFrame, with -o / <<")
_TAKES_VALUE = {"-o", "--out", "-l", "--limit", "-e", "--engine", "-w", "--workspace"}


@dataclass
class Command:
    options: argparse.Namespace
    sql: str = ""
    subcommand: str | None = None
    argument: str | None = None


def parse(line: str, cell: str | None) -> Command:
    rest = line.strip()
    tokens: list[str] = []
    while rest.startswith("-"):
        head, _, rest = rest.partition(" ")
        tokens.append(head)
        rest = rest.lstrip()
        if head in _TAKES_VALUE:
            value, _, rest = rest.partition(" ")
            tokens.append(value)
            rest = rest.lstrip()
    options = _options.parse_args(tokens)
    assign = _ASSIGN.match(rest)
    if assign:
        if options.out:
            raise UsageError("%lake: use either -o NAME or NAME << SELECT ..., not both")
        options.out, rest = assign.group(1), assign.group(2)
    sql = "\n".join(part for part in (rest, cell or "") if part.strip())
    words = shlex.split(rest) if cell is None and rest and rest.split()[0] in SUBCOMMANDS else []
    if words:
        return Command(options, subcommand=words[0], argument=words[1] if len(words) > 1 else None)
    if not sql.strip():
        raise UsageError("%lake: nothing to run; write SQL after %%lake, or %lake tables / %lake schema TABLE")
    return Command(options, sql=sql)
