"""The data contract model: what ``contracts/<source>.yaml`` may declare (loading.py reads the files).

A contract declares a source's fields (type, required, nullable, constraints, PII), its
event-time field, its entity keys and how an event id is formed.

A source is of one of two kinds. ``events`` (the default) takes JSON events over HTTP or
MQTT. ``blob`` takes whole files (``PUT /v1/blobs``, the drop folder) of one ``format``: a
tabular one (csv, json, ndjson, parquet) has its rows checked against the same fields and
rules, with ``event_time`` optional (the blob's stored time otherwise); ``binary`` has no
fields. A tabular blob source may say ``infer: true`` instead of listing fields: the fields
of its first file are then inferred and written beside the contract for review.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..names import IDENTIFIER_RULE, is_identifier, needs_quoting

FieldType = Literal["string", "int32", "int64", "float32", "float64", "bool", "timestamp", "date"]
FIELD_TYPES: tuple[str, ...] = FieldType.__args__  # type: ignore[attr-defined]
RESERVED_PREFIX = "_"
# The lake partitions by event date in folders named date=YYYY-MM-DD; a field of that name
# would clash with the partition column readers add.
RESERVED_NAMES = {"date"}


def allowed_field_name(name: str) -> bool:
    """Whether a contract field may have this name: an identifier, no leading ``_`` (the lake's
    own columns), not a reserved name (the partition column)."""
    return is_identifier(name) and not name.startswith(RESERVED_PREFIX) and name not in RESERVED_NAMES
SourceKind = Literal["events", "blob"]
BlobFormat = Literal["csv", "json", "ndjson", "parquet", "binary"]
TABULAR_FORMATS = ("csv", "json", "ndjson", "parquet")


_ENUM_VALUE = {
    "string": lambda v: type(v) is str,
    "int32": lambda v: type(v) is int and -(2**31) <= v < 2**31,
    "int64": lambda v: type(v) is int and -(2**63) <= v < 2**63,
    "float32": lambda v: type(v) in (int, float),
    "float64": lambda v: type(v) in (int, float),
    "bool": lambda v: type(v) is bool,
}


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    description: str = ""
    required: bool = False
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    enum: list[Any] | None = None
    regex: str | None = None
    max_length: int | None = Field(None, gt=0)
    pii: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
        return value

    @model_validator(mode="after")
    def _constraints_fit_type(self) -> "FieldSpec":
        numeric = self.type in ("int32", "int64", "float32", "float64")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"min/max apply to numeric types, not {self.type}")
        if (self.regex or self.max_length) and self.type != "string":
            raise ValueError(f"regex/max_length apply to string fields, not {self.type}")
        if self.enum and self.type in ("timestamp", "date"):
            raise ValueError(f"enum applies to string, integer, number and bool fields, not {self.type}")
        wrong = [v for v in self.enum or [] if not _ENUM_VALUE[self.type](v)]
        if wrong:
            raise ValueError(f"enum value {wrong[0]!r} is not a {self.type} value")
        return self


class Contract(BaseModel):
    """One source's data contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    owner: str = ""
    version: int = 1
    kind: SourceKind = Field("events", description="events (JSON over HTTP/MQTT) or blob (whole files)")
    format: BlobFormat | None = Field(None, description="the file format of a blob source")
    infer: bool = Field(False, description="a tabular blob source without fields: infer them from its first file")
    null_values: list[str] = Field(default_factory=lambda: [""], description="csv blobs: cell texts read as null")
    event_time: str | None = Field(None, description="the event-time field; a blob source may leave it out "
                                                     "(its rows then take the blob's stored time)")
    event_id: str | list[str] | None = Field(
        None, description="a field holding the id, a list of fields hashed into it, or none "
        "(the id is a hash of the whole event)",
    )
    entity_keys: list[str] = Field(default_factory=list)
    unknown_fields: Literal["reject", "drop"] = "reject"
    fields: dict[str, FieldSpec] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not is_identifier(value):
            raise ValueError(f"must be {IDENTIFIER_RULE}")
        return value

    @field_validator("fields")
    @classmethod
    def _field_names_ok(cls, fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in fields:
            if name.startswith(RESERVED_PREFIX) or not is_identifier(name):
                raise ValueError(f"field name {name!r} is not allowed (lower case, no leading _)")
            if name in RESERVED_NAMES:
                raise ValueError(f"field name {name!r} is reserved for the lake's partition column; rename it")
        return fields

    @model_validator(mode="after")
    def _kind_fits(self) -> "Contract":
        if self.kind == "events":
            if self.format is not None or self.infer:
                raise ValueError("format and infer apply to blob sources (kind: blob)")
            if self.event_time is None:
                raise ValueError("event_time is required (the field holding each event's time)")
            if not self.fields:
                raise ValueError("fields are required: the fields each event holds")
        elif self.format is None:
            raise ValueError(f"a blob source needs a format: one of {', '.join(BlobFormat.__args__)}")
        elif self.format == "binary" and (self.fields or self.infer or self.event_time):
            raise ValueError("a binary blob source has no fields, infer or event_time (its files are not read)")
        elif self.format != "binary" and not self.fields and not self.infer:
            raise ValueError(f"a {self.format} blob source needs fields, or infer: true to infer them from its first file")
        return self

    @model_validator(mode="after")
    def _references_exist(self) -> "Contract":
        ids = [self.event_id] if isinstance(self.event_id, str) else (self.event_id or [])
        times = [self.event_time] if self.event_time else []
        for role, names in (("event_time", times), ("event_id", ids), ("entity_keys", self.entity_keys)):
            for name in names:
                if name not in self.fields:
                    raise ValueError(f"{role} names {name!r}, which is not a field")
        if self.event_time and self.fields[self.event_time].type != "timestamp":
            raise ValueError(f"event_time field {self.event_time!r} must have type timestamp")
        return self

    @property
    def is_blob(self) -> bool:
        return self.kind == "blob"

    @property
    def tabular(self) -> bool:
        """Whether rows are read from this source's blobs (a blob source of a tabular format)."""
        return self.kind == "blob" and self.format in TABULAR_FORMATS

    def implicitly_required(self) -> set[str]:
        """Fields that must be present and non-null whatever the YAML says."""
        ids = [self.event_id] if isinstance(self.event_id, str) else (self.event_id or [])
        return {*([self.event_time] if self.event_time else []), *ids, *self.entity_keys}

    @property
    def pii_fields(self) -> list[str]:
        return [name for name, spec in self.fields.items() if spec.pii]

    @property
    def keyword_fields(self) -> list[str]:
        """Fields named by a SQL keyword: accepted (the name is the events' key), but a query
        must quote them ("at" in DuckDB, `at` in Spark SQL)."""
        return [name for name in self.fields if needs_quoting(name)]


def keyword_warning(contract: Contract) -> str | None:
    """What to tell about the contract's fields named by a SQL keyword; None when there are none."""
    names = contract.keyword_fields
    if not names:
        return None
    shown = ", ".join(names)
    return (f"field{'s' if len(names) > 1 else ''} {shown} of {contract.name!r} "
            f"{'are SQL keywords' if len(names) > 1 else 'is a SQL keyword'}: quote in queries, "
            f"e.g. SELECT \"{names[0]}\" FROM raw.{contract.name} (Spark SQL: `{names[0]}`), or rename the field")
