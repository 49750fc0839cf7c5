"""Which request comes after a page, for each kind of pagination: a next link (in the body, or
the ``Link`` header's rel=next), a cursor the response names, or numbered pages until an empty
one. A request is plain JSON values, so an unfinished run's next request is stored as it is
and the next run sends it again (state.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin

from .definitions import CursorPages, ImportDefinition, NextLink, NumberedPages
from .jsonpath import find


@dataclass(frozen=True)
class PageRequest:
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    page: int = 1  # which page of the run this is (1-based), for progress and messages

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict) -> "PageRequest":
        return cls(value["url"], dict(value.get("params") or {}), int(value.get("page", 1)))


def first_request(definition: ImportDefinition, since: Any = None) -> PageRequest:
    """A run's first request: the URL, the definition's params, the stored cursor as the
    incremental parameter (unless None), and the first page number for numbered pages."""
    params: dict[str, Any] = dict(definition.params)
    if definition.incremental is not None and since is not None:
        params[definition.incremental.param] = since
    if isinstance(definition.pagination, NumberedPages):
        params[definition.pagination.param] = definition.pagination.start
    return PageRequest(definition.url, params)


def next_request(definition: ImportDefinition, request: PageRequest, document: Any, links: dict,
                 records: int) -> PageRequest | None:
    """The request after ``request``, whose response was ``document`` (with ``links``, the
    parsed Link header, and ``records`` records); None when that was the last page."""
    paging = definition.pagination
    if paging is None or records == 0:
        return None
    if isinstance(paging, NextLink):
        target = find(document, paging.path) if paging.path else links.get("next", {}).get("url")
        if not target or not isinstance(target, str):
            return None
        return PageRequest(urljoin(request.url, target), {}, request.page + 1)
    if isinstance(paging, CursorPages):
        cursor = find(document, paging.path)
        if cursor is None or cursor == "":
            return None
        return PageRequest(request.url, {**request.params, paging.param: cursor}, request.page + 1)
    number = int(request.params.get(paging.param, paging.start)) + 1
    return PageRequest(request.url, {**request.params, paging.param: number}, request.page + 1)


def highest(current: Any, values: list) -> Any:
    """The greatest of ``current`` and ``values`` (Nones skipped), compared as they are when all
    are numbers or all text, else as text."""
    found = [v for v in [current, *values] if v is not None and not isinstance(v, (dict, list))]
    if not found:
        return None
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in found)
    return max(found) if numbers or all(isinstance(v, str) for v in found) else max(found, key=str)
