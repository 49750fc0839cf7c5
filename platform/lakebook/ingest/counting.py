"""How many events a request body holds, counted from its bytes before any event is decoded,
so that a body of millions of tiny events is refused before it becomes millions of Python
objects. numpy works through the body a slice at a time: the memory used is a small multiple
of a slice, whatever the size of the body.
"""

from __future__ import annotations

import numpy as np

from ..errors import PayloadTooLarge

_SLICE = 1 << 20
_BLANK = np.zeros(256, dtype=bool)  # what bytes.strip() strips, newline aside
_BLANK[[9, 11, 12, 13, 32]] = True
_OPENS = np.zeros(256, dtype=np.int8)  # +1 for [ and {, -1 for ] and }
_OPENS[[91, 123]] = 1
_OPENS[[93, 125]] = -1


def check_event_count(body: bytes, separator: bytes, count, limit: int | None) -> None:
    """PayloadTooLarge if ``count(body)`` is over ``limit``. A body with fewer ``separator``
    bytes than ``limit`` holds no more events than that: only a bigger one is counted."""
    if limit is not None and body.count(separator) >= limit:
        check_events(count(body), limit)


def check_events(n: int, limit: int | None) -> None:
    """PayloadTooLarge if ``n`` events are over ``limit`` (None: no limit)."""
    if limit is not None and n > limit:
        raise PayloadTooLarge(f"the body holds {n:,} events, over the limit of {limit:,} events per request",
                              hint="send them in smaller batches (ingest.max_events_per_request)")


def ndjson_lines(body: bytes) -> int:
    """The lines of an NDJSON body that are not blank (the lines decode_events reads)."""
    data = np.frombuffer(body, dtype=np.uint8)
    lines, after_newline = 0, True
    for start in range(0, len(data), _SLICE):
        part = data[start:start + _SLICE]
        kept = part[~_BLANK[part]]  # newlines and the bytes of content
        if not len(kept):
            continue
        newline = kept == 10
        previous = np.concatenate(([after_newline], newline[:-1]))
        lines += int(np.count_nonzero(~newline & previous))  # the first content byte of each line
        after_newline = bool(newline[-1])
    return lines


def json_array_items(body: bytes) -> int:
    """The items of a JSON array body: its commas outside strings and nested values, plus one
    (one for an empty array too). The count of a body that is not JSON means nothing; such a
    body is refused when it is parsed."""
    if b"\\" in body:  # neither \\\\ nor \\" ends a string: both become two other bytes
        body = body.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    data = np.frombuffer(body, dtype=np.uint8)
    commas, depth, in_string = 0, 0, False
    for start in range(0, len(data), _SLICE):
        part = data[start:start + _SLICE]
        inside = np.logical_xor.accumulate(part == 34) ^ in_string  # an opening quote and what follows it
        in_string = bool(inside[-1])
        outside = part[~inside]
        marks = outside[(_OPENS[outside] != 0) | (outside == 44)]
        depths = depth + np.cumsum(_OPENS[marks], dtype=np.int64)
        commas += int(np.count_nonzero((marks == 44) & (depths == 1)))
        depth = int(depths[-1]) if len(depths) else depth
    return commas + 1
