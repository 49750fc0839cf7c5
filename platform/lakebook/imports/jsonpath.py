"""The JSON paths of import definitions: ``$`` (the whole document), ``data.items``,
``$.links.next``, ``results[0].rows``, ``items[-1]`` (the last), ``meta["next-cursor"]``. Keys and list indexes only:
enough to reach a list of records, a next link or a cursor in an API's response."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_STEP = re.compile(r"""\.?([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[(?:"([^"]*)"|'([^']*)')\]""")
_MISSING = object()


@lru_cache(maxsize=256)
def compile_path(path: str) -> tuple[str | int, ...]:
    """The steps of ``path`` (keys and indexes); a ValueError saying where it is not a path."""
    text = path.strip()
    text = text[1:] if text.startswith("$") else text
    steps: list[str | int] = []
    at = 0
    while at < len(text):
        match = _STEP.match(text, at)
        if match is None or (at == 0 and text.startswith(".") and not path.strip().startswith("$")):
            raise ValueError(f"{path!r} is not a JSON path (at {text[at:]!r}): write keys and [indexes], "
                             f"like data.items or $.links.next")
        key, index, double, single = match.groups()
        steps.append(int(index) if index is not None else next(s for s in (key, double, single) if s is not None))
        at = match.end()
    return tuple(steps)


def find(document: Any, path: str, default: Any = None) -> Any:
    """The value at ``path`` in ``document``, or ``default`` where a step is missing."""
    value = document
    for step in compile_path(path):
        value = _step(value, step)
        if value is _MISSING:
            return default
    return value


def _step(value: Any, step: str | int) -> Any:
    if isinstance(step, int):
        return value[step] if isinstance(value, list) and -len(value) <= step < len(value) else _MISSING
    return value.get(step, _MISSING) if isinstance(value, dict) else _MISSING
