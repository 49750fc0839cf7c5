"""The names users give things (sources, fields, transforms, and the jobs, endpoints and
dashboards to come): lower-case identifiers that are safe as SQL names, file names and URL
parts alike."""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
IDENTIFIER_RULE = "lower case letters, digits and _, starting with a letter, at most 63 characters"


def is_identifier(name: str) -> bool:
    return bool(IDENTIFIER.match(name))
