"""Feast's online-store bytes, built for whole Arrow columns at once.

For every row these give exactly what Feast's per-row code gives (tests compare them):
``ValueProto.SerializeToString()`` of a feature value, the ``value_text`` the SQLite store
keeps beside it, ``serialize_entity_key`` (serialization version 3) of the entity key and
``Timestamp.SerializeToString()`` of the event time Redis keeps. Columns come as Feast's
materialization hands them to its converter: after its pandas round trip, which turns an
integer column with nulls into float64 (``as_feast_sees``). A value type or column type
without a vectorised encoder here goes through Feast's own converter, so every type is
covered and the bytes stay Feast's.
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
# Feast ValueType numbers (feast.value_type.ValueType), kept here so this module imports
# no Feast until a column needs Feast's own converter.
STRING, INT32, INT64, DOUBLE, FLOAT, BOOL = 2, 3, 4, 5, 6, 7
# value type: (Value proto field, wire type, the Arrow type Feast's converter receives unchanged)
_NATIVE = {
    DOUBLE: ("double_val", _FIXED64, pa.float64()),
    FLOAT: ("float_val", _FIXED32, pa.float32()),
    INT64: ("int64_val", _VARINT, pa.int64()),
    INT32: ("int32_val", _VARINT, pa.int32()),
    BOOL: ("bool_val", _VARINT, pa.bool_()),
    STRING: ("string_val", _LENGTH, pa.string()),
}
_FLOAT_EXACT = 2 ** 53  # integers below this size survive a trip through float64 (it rounds 2**53 + 1 down)


def _field_tag(name: str, wire: int) -> bytes:
    from feast.protos.feast.types.Value_pb2 import Value

    return bytes([Value.DESCRIPTOR.fields_by_name[name].number << 3 | wire])


# -- byte matrices: one row per value, ``lengths`` says how many of its bytes count ---------
def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of int64 values (negatives as ten bytes, as protobuf writes them)."""
    unsigned = values.astype(np.int64).view(np.uint64)
    groups = np.empty((len(unsigned), 10), dtype=np.uint8)
    for i in range(10):
        groups[:, i] = (unsigned >> np.uint64(7 * i)) & np.uint64(0x7F)
    used = groups != 0
    lengths = np.where(used.any(axis=1), 10 - np.argmax(used[:, ::-1], axis=1), 1)
    groups |= np.where(np.arange(10) < (lengths[:, None] - 1), 0x80, 0).astype(np.uint8)
    return groups, lengths


def _fixed(values: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    raw = np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(len(values), -1)
    return raw, np.full(len(values), raw.shape[1])


def _constant(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tile(np.frombuffer(data, dtype=np.uint8), (n, 1)), np.full(n, len(data))


def _binary(pieces: list[tuple[np.ndarray, np.ndarray]], keep: np.ndarray | None = None) -> pa.Array:
    """Each row's pieces, concatenated; a row not kept is empty bytes."""
    matrix = np.hstack([m for m, _ in pieces])
    mask = np.hstack([np.arange(m.shape[1]) < lengths[:, None] for m, lengths in pieces])
    if keep is not None:
        mask &= keep[:, None]
    offsets = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=offsets[1:])
    data = matrix[mask]
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(mask), [None, pa.py_buffer(offsets),
                                                                           pa.py_buffer(data)])


def _joined(*parts: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*(p.cast(pa.large_binary()) for p in parts), pa.scalar(b"", pa.large_binary()))


def _utf8(column: pa.Array) -> pa.Array:
    return column.cast(pa.large_string()).cast(pa.large_binary())


# -- columns as Feast's converter sees them -----------------------------------------------
def as_feast_sees(column: pa.Array, window_has_nulls: bool) -> pa.Array:
    """The column after Feast's pandas round trip: an integer column of a window with nulls
    becomes float64 (nulls NaN). Other types keep their values."""
    if pa.types.is_integer(column.type) and window_has_nulls:
        return column.cast(pa.float64(), safe=False)
    return column


def needs_window_nulls(column: pa.Array, value_type: int) -> bool:
    """Whether an integer column's bytes depend on nulls in rows the dedup dropped: only when
    the trip through float64 would change them (big integers, or a non-numeric type)."""
    if not pa.types.is_integer(column.type):
        return False
    if value_type not in (INT64, INT32, DOUBLE):
        return True
    extremes = pc.min_max(pc.abs_checked(column.cast(pa.float64(), safe=False)))
    return (extremes["max"].as_py() or 0) >= _FLOAT_EXACT


def _is_native(column: pa.Array, value_type: int) -> bool:
    native = _NATIVE.get(value_type)
    if native is None:
        return False
    wanted = native[2]
    return column.type == wanted or (wanted == pa.string() and column.type == pa.large_string())


# -- feature values --------------------------------------------------------------------------
def value_protos(column: pa.Array, value_type: int) -> list[bytes]:
    """Serialised ``ValueProto`` of every row; a null (or NaN) is the empty Value, b""."""
    if not _is_native(column, value_type):
        return [v.SerializeToString() for v in feast_protos(column, value_type)]
    field, wire, _ = _NATIVE[value_type]
    tag = _constant(_field_tag(field, wire), len(column))
    keep = np.array(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if value_type == STRING:
        text = _utf8(column)
        head = _binary([tag, _varints(pc.binary_length(text).fill_null(0).to_numpy())], keep)
        return _joined(head, text).fill_null(b"").to_pylist()
    values = column.fill_null(False if value_type == BOOL else 0).to_numpy(zero_copy_only=False)
    if value_type in (DOUBLE, FLOAT):
        keep &= ~np.isnan(values)
        payload = _fixed(values, "<f8" if value_type == DOUBLE else "<f4")
    else:
        payload = _varints(values.astype(np.int64))
    return _binary([tag, payload], keep).to_pylist()


def value_texts(column: pa.Array, value_type: int) -> list[str | None]:
    """The SQLite store's ``value_text``: the string, or ``str()`` of a number or bool."""
    if not _is_native(column, value_type):
        from feast.infra.online_stores.helpers import extract_text_and_num

        return [extract_text_and_num(v, False)[0] for v in feast_protos(column, value_type)]
    values = column.to_pylist()
    if value_type == STRING:
        return values
    if value_type in (DOUBLE, FLOAT):
        if value_type == FLOAT:  # what a float32 field reads back as
            values = column.cast(pa.float64(), safe=False).to_pylist()
        return [None if v is None or v != v else str(v) for v in values]
    return [None if v is None else str(v) for v in values]


def feast_protos(column: pa.Array, value_type: int) -> list:
    """Feast's own conversion of a column (the same numpy values its materialization passes)."""
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    round_trip = pa.Table.from_pandas(pa.table({"c": column}).to_pandas(), preserve_index=False)
    values = round_trip.column(0).combine_chunks().to_numpy(zero_copy_only=False)
    return python_values_to_proto_values(values, ValueType(value_type))


# -- entity keys -----------------------------------------------------------------------------
def entity_keys(columns: dict[str, pa.Array], value_types: dict[str, int]) -> list[bytes]:
    """``serialize_entity_key`` (version 3) of every row: key count, the join key names in
    sorted order, then each key's value as (type, length, bytes)."""
    names = sorted(columns)
    if not all(_key_native(columns[k], value_types[k]) for k in names):
        return _feast_entity_keys(columns, value_types)
    n = len(columns[names[0]])
    header = struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", STRING, len(k.encode())) + k.encode() for k in names)
    parts = [_binary([_constant(header, n)])]
    for k in names:
        parts += _key_value(columns[k], value_types[k])
    return _joined(*parts).to_pylist()


def _key_native(column: pa.Array, value_type: int) -> bool:
    return _is_native(column, value_type) and value_type in (STRING, INT64, INT32)


def _key_value(column: pa.Array, value_type: int) -> list[pa.Array]:
    n = len(column)
    if value_type == STRING:
        text = _utf8(column)
        lengths = pc.binary_length(text).to_numpy().astype("<u4")
        return [_binary([_constant(struct.pack("<I", STRING), n), _fixed(lengths, "<u4")]), text]
    width, fmt = (8, "<i8") if value_type == INT64 else (4, "<i4")
    head = _constant(struct.pack("<II", value_type, width), n)
    return [_binary([head, _fixed(column.to_numpy(zero_copy_only=False), fmt)])]


def _feast_entity_keys(columns: dict[str, pa.Array], value_types: dict[str, int]) -> list[bytes]:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    names = list(columns)
    values = [feast_protos(columns[k], value_types[k]) for k in names]
    return [serialize_entity_key(EntityKey(join_keys=names, entity_values=list(row)), 3) for row in zip(*values)]


# -- event times -----------------------------------------------------------------------------
def timestamp_protos(epoch_us: np.ndarray) -> list[bytes]:
    """``google.protobuf.Timestamp`` of each time: seconds, then nanos, a zero field left out."""
    seconds, micros = np.divmod(epoch_us.astype(np.int64), 1_000_000)
    pieces = []
    for tag, values in ((b"\x08", seconds), (b"\x10", micros * 1000)):
        present = values != 0
        body, lengths = _varints(values)
        pieces += [(_constant(tag, len(values))[0], present.astype(np.int64)), (body, np.where(present, lengths, 0))]
    return _binary(pieces).to_pylist()
