"""The secrets this process holds, kept out of what it writes.

A process that takes secrets (the ingest server, the ``lakebook`` command) tells this module
their values (``remember``); from then on every LakebookError's message and hint, and every
log record (its message and its traceback), has them replaced by ``***``. Values are
masked whatever their length: a secret is never shown, even at the cost of a garbled line.
"""

from __future__ import annotations

import logging
from typing import Iterable

MASK = "***"
_secrets: list[str] = []  # longest first: a secret inside another is masked with the longer one


def remember(values: Iterable[str]) -> None:
    """Mask these values in every error and log line of this process from now on."""
    new = {v for v in values if v} - set(_secrets)
    if not new:
        return
    if not _secrets:
        _mask_log_records()
    _secrets[:] = sorted(set(_secrets) | new, key=len, reverse=True)


def mask(text: str) -> str:
    """``text`` with every remembered secret replaced by ``***``."""
    for value in _secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


def _mask_log_records() -> None:
    """Mask secrets as each log record is made: whichever handler writes it (a file, stderr,
    a library's own), it holds no secret."""
    make_record = logging.getLogRecordFactory()

    def masked_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            _mask_record(record)
        except Exception:  # noqa: BLE001 - a message that cannot be formatted fails in its handler, as before
            pass
        return record

    logging.setLogRecordFactory(masked_record)


def _mask_record(record: logging.LogRecord) -> None:
    message = record.getMessage()
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))


# Words of a query parameter's name that make its value a credential (api_key, access_token,
# X-Amz-Signature); a name is split into words at every character that is not a letter or digit.
SECRET_WORDS = {"token", "key", "apikey", "secret", "password", "passwd", "pwd", "signature", "sig", "auth",
                "credential", "credentials"}


def is_secret_param(name: str) -> bool:
    """Whether a query parameter of this name carries a credential (``api_key``, ``access_token``)."""
    import re

    return bool(SECRET_WORDS & set(re.split(r"[^a-z0-9]+", name.lower())))


def url_without_secrets(url: str, secret_params: Iterable[str] = ()) -> str:
    """``url`` fit for a message or a listing: the values of its credential-like query
    parameters (and of ``secret_params``) and any password in it replaced by ``***``, then
    every remembered secret masked."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    named = set(secret_params)
    query = [(k, MASK if k in named or is_secret_param(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    return mask(urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*"))))
