"""Fields inferred from a blob source's first file (``infer: true``), written beside its
contract as ``<source>.inferred.yaml`` for review: the contract takes them as its fields
until it lists its own (loading.py), and a reviewer copies them in, with rules, when ready."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import yaml

from .loading import inferred_path
from .model import allowed_field_name


def arrow_field_type(data_type: pa.DataType) -> str:
    """The contract field type closest to an Arrow type (text when none is)."""
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_integer(data_type):
        return "int64"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "float64"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    if pa.types.is_date(data_type):
        return "date"
    return "string"


def infer_fields(schema: pa.Schema) -> dict[str, dict]:
    """Contract fields for the columns of ``schema``, in its order. A column whose name no
    field may have (upper case, a leading ``_``, ``date``) makes the inference fail: its
    name is what the contract must say, and files are read by column name."""
    fields = {}
    for column in schema:
        name = column.name
        if not allowed_field_name(name):
            raise ValueError(f"column {name!r} cannot be a contract field (lower case, no leading _, not 'date')")
        fields[name] = {"type": arrow_field_type(column.type)}
    return fields


def write_inferred(contract_path: Path, source: str, blob: str, fields: dict[str, dict]) -> Path:
    """Write the inferred fields beside the contract; the file written."""
    path = inferred_path(contract_path)
    header = (f"# Fields inferred from {blob}, the first blob of source '{source}'. Review them, then copy\n"
              f"# them (with rules: required, min, max, enum, ...) into {contract_path.name} and delete this file.\n")
    path.write_text(header + yaml.safe_dump({"fields": fields}, sort_keys=False))
    return path
